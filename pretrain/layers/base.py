"""The layer-objective interface: what one layer of the greedy stack is trained to do.

Every objective is an ``nn.Module`` with the same small interface, so the greedy trainer
never needs to know which one it trains:

- ``encoder``: the ``nn.Linear(n_in, n_out)`` that is exported to the plain classifier;
- ``activation``: the name of the encoder's activation (see ``pretrain.mlp``);
- ``encode(x)``: ``(N, n_in) -> (N, n_out)`` deterministic codes fed to the next layer;
- ``decode(h)``: ``(N, n_out) -> (N, n_in)`` the layer's reconstruction of its input;
- ``reconstruction_loss(x, y=None)``: scalar tensor, the clean evaluation loss on a batch (``y``:
  labels, for objectives that need them);
- ``train_step(x, optimizer, y=None)``: one update on a batch, returns the (detached) training loss;
- ``finish()``: drops what only training needed (e.g. a temporary head) once the layer is done;
- ``decoder_state()``: extra tensors (decoder bias, untied decoder weight) kept in the checkpoint.

Losses are summed over the ``n_in`` features and averaged over the batch, so a loss of 3.0
with ``loss="mse"`` is Hinton & Salakhutdinov's "squared error per image" on pixel data.

An objective is registered once, as an :class:`Objective` in ``pretrain.layers.OBJECTIVES``:
its options dataclass (the settings only it uses) and how to build layer k from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..mlp import activation_module
from ..training import optimizer_step


class LayerObjective(nn.Module):
    """Base class: an encoder ``nn.Linear`` and its activation, plus how to train it."""

    reconstructs = True  # whether ``decode`` gives back the layer's input

    def __init__(self, n_in: int, n_out: int, activation: str):
        super().__init__()
        self.encoder = nn.Linear(n_in, n_out)
        self.activation = activation
        self.act = activation_module(activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, n_in) -> (N, n_out)``: the frozen layer's codes for the next layer."""
        return self.act(self.encoder(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reconstruction_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The loss whose gradient trains the layer; defaults to the clean evaluation loss."""
        return self.reconstruction_loss(x, y)

    def train_step(
        self, x: torch.Tensor, optimizer: torch.optim.Optimizer, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One optimizer step on batch ``x`` ``(B, n_in)`` (labels ``y`` ``(B,)`` if the objective needs
        them); returns the detached batch loss."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(x, y)
        loss.backward()
        optimizer_step(optimizer)
        return loss.detach()

    def decoder_state(self) -> dict[str, torch.Tensor]:
        return {}

    def on_epoch_start(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Hook for per-epoch schedules (e.g. the RBM's momentum); ``epoch`` counts from 0."""

    def finish(self) -> None:
        """Hook run once when the layer is done (and when a finished layer is rebuilt to be reloaded)."""

    def prepare(self, x: torch.Tensor) -> None:
        """Hook run once with the layer's whole training input ``(N, n_in)`` before its first epoch
        (not again on resume), e.g. to store an input standardisation."""

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer parameter groups; by default every trainable parameter, with ``weight_decay``."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": weight_decay}]

    def export_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the ``nn.Linear`` this layer exports to a plain ``nn.Sequential``."""
        return self.encoder.weight.detach().clone(), self.encoder.bias.detach().clone()

    def epoch_diagnostics(self, x_train: torch.Tensor, x_val: torch.Tensor | None) -> dict[str, float]:
        """Extra per-epoch figures on a training sample and the validation inputs (none by default)."""
        return {}


@dataclass(frozen=True)
class Objective:
    """A registry entry: an objective's own options and how the greedy trainer builds its layers.

    - ``options``: the dataclass of the settings only this objective uses (validated on creation);
    - ``units(options, x_range, k)``: the unit or loss type of layer ``k`` (0-based) for inputs
      whose ``[min, max]`` is ``x_range``, resolved once when the layer is created (e.g.
      ``cross-entropy`` for an autoencoder on inputs in [0, 1], ``gaussian`` visible units for an RBM
      on real inputs); it raises ``PretrainError`` when the options do not fit the inputs;
    - ``build(n_in, n_out, activation, options, units, generator, common)``: a new layer, where
      ``common`` is the trainer's ``GreedyConfig`` (batch size, momentum, ...);
    - ``needs_labels``: the trainer passes each batch's labels to ``train_step`` (and the
      validation labels to ``reconstruction_loss``); fitting without labels is refused.
    """

    options: type
    units: Callable[[object, torch.Tensor, int], str]
    build: Callable[..., LayerObjective]
    needs_labels: bool = False
