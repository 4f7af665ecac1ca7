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
            per_value = F.binary_cross_entropy_with_logits(out, target, reduction="none")
        else:
            per_value = (out - target).square()
        return per_value.sum(dim=1).mean()

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
