"""Layer objectives: what one layer of the greedy stack is trained to do.

Every objective is an ``nn.Module`` with the same small interface, so the greedy trainer
never needs to know which one it trains:

- ``encoder``: the ``nn.Linear(n_in, n_out)`` that is exported to the plain classifier;
- ``activation``: the name of the encoder's activation (see ``pretrain.models``);
- ``encode(x)``: ``(N, n_in) -> (N, n_out)`` deterministic codes fed to the next layer;
- ``decode(h)``: ``(N, n_out) -> (N, n_in)`` the layer's reconstruction of its input;
- ``reconstruction_loss(x)``: scalar tensor, the clean evaluation loss on a batch;
- ``train_step(x, optimizer)``: one update on a batch, returns the (detached) training loss;
- ``decoder_state()``: extra tensors (decoder bias, untied decoder weight) kept in the checkpoint.

Losses are summed over the ``n_in`` features and averaged over the batch, so a loss of 3.0
with ``loss="mse"`` is Hinton & Salakhutdinov's "squared error per image" on pixel data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .models import activation_module

LOSSES = ("cross-entropy", "mse")
NOISES = ("none", "mask", "gaussian")


class CrossEntropyWithLogits(torch.autograd.Function):
    """``sum_j BCE(sigmoid(z_ij), x_ij)`` averaged over rows i; same value and gradient as
    ``F.binary_cross_entropy_with_logits(z, x, reduction="none").sum(1).mean()``.

    Written out because this torch build's ``log_sigmoid`` and ``log1p`` are not vectorized on
    the CPU: they took ~13% of an autoencoder step. ``log(1 + exp(-|z|))`` differs from log1p by
    < 1e-7 per value, and the gradient ``sigmoid(z) - x`` is exact.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, x)
        per_value = z.clamp(min=0) - x * z + torch.exp(-z.abs()).add_(1).log_()
        return per_value.sum() / z.shape[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, x = ctx.saved_tensors
        return torch.sigmoid(z).sub_(x).mul_(grad / z.shape[0]), None


class LayerObjective(nn.Module):
    """Base class: an encoder ``nn.Linear`` and its activation, plus how to train it."""

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

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The loss whose gradient trains the layer; defaults to the clean reconstruction loss."""
        return self.reconstruction_loss(x)

    def train_step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One optimizer step on batch ``x`` ``(B, n_in)``; returns the detached batch loss."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(x)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def decoder_state(self) -> dict[str, torch.Tensor]:
        return {}

    def on_epoch_start(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Hook for per-epoch schedules (e.g. the RBM's momentum); ``epoch`` counts from 0."""

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


class AutoencoderLayer(LayerObjective):
    """One-hidden-layer autoencoder ``x -> act(W x + b) -> dec(W' h + c)``.

    Args:
        n_in, n_out: input and code sizes.
        activation: encoder activation, ``sigmoid`` | ``tanh`` | ``relu`` | ``linear``.
        tied: decoder weight is ``W.T`` (one weight matrix) instead of its own matrix.
        loss: ``cross-entropy`` (inputs must be in [0, 1]; the decoder outputs sigmoid
            probabilities) or ``mse`` (linear decoder output).
        noise, noise_level: corruption applied to the input during training only
            (denoising autoencoder): ``mask`` zeroes a fraction ``noise_level`` of the inputs,
            ``gaussian`` adds N(0, noise_level²). The loss always targets the clean input.
        generator: RNG for the initial weights and the corruption noise.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str = "sigmoid",
        tied: bool = True,
        loss: str = "cross-entropy",
        noise: str = "none",
        noise_level: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__(n_in, n_out, activation)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        if noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; choose from {', '.join(NOISES)}")
        if noise == "mask" and not 0 <= noise_level < 1:
            raise ValueError(f"masking noise level must be in [0, 1), got {noise_level}")
        if noise_level < 0:
            raise ValueError(f"noise level must be >= 0, got {noise_level}")
        self.tied, self.loss, self.noise, self.noise_level = tied, loss, noise, noise_level
        self.generator = generator
        self.decoder_bias = nn.Parameter(torch.zeros(n_in))
        self.decoder_weight = None if tied else nn.Parameter(torch.empty(n_in, n_out))
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Glorot & Bengio's uniform range, ×4 for sigmoid as in the Theano dA tutorial.
        scale = 4.0 if self.activation == "sigmoid" else 1.0
        bound = scale * math.sqrt(6.0 / sum(self.encoder.weight.shape))
        for w in (self.encoder.weight, self.decoder_weight):
            if w is not None:
                w.uniform_(-bound, bound, generator=self.generator)
        self.encoder.bias.zero_()

    def _decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        weight = self.encoder.weight.t() if self.tied else self.decoder_weight
        return F.linear(h, weight, self.decoder_bias)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """``(N, n_out) -> (N, n_in)``: the decoder's reconstruction of the layer's input."""
        out = self._decode_logits(h)
        return torch.sigmoid(out) if self.loss == "cross-entropy" else out

    def _loss(self, x_in: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self._decode_logits(self.encode(x_in))
        if self.loss == "cross-entropy":
            return CrossEntropyWithLogits.apply(out, target)
        return (out - target).square().sum(dim=1).mean()

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The training-time corruption of ``x`` (identity without noise)."""
        if self.noise == "mask" and self.noise_level > 0:
            keep = torch.rand(x.shape, device=x.device, generator=self.generator) >= self.noise_level
            return x * keep
        if self.noise == "gaussian" and self.noise_level > 0:
            return x + self.noise_level * torch.randn(x.shape, device=x.device, generator=self.generator)
        return x

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        return self._loss(x, x)

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        return self._loss(self.corrupt(x), x)

    def decoder_state(self) -> dict[str, torch.Tensor]:
        state = {"bias": self.decoder_bias.detach().clone()}
        if not self.tied:
            state["weight"] = self.decoder_weight.detach().clone()
        return state
