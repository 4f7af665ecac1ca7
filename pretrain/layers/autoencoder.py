"""(Denoising) autoencoder layers: ``x -> act(W x + b) -> dec(W' h + c)``, trained to reconstruct ``x``.

Losses are summed over the ``n_in`` features and averaged over the batch, so a loss of 3.0
with ``loss="mse"`` is Hinton & Salakhutdinov's "squared error per image" on pixel data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PretrainError, require
from .base import LayerObjective, Objective

LOSSES = ("cross-entropy", "mse")
NOISES = ("none", "mask", "gaussian")


@dataclass
class AutoencoderConfig:
    """The autoencoder's own options.

    - ``tied``: the decoder weight is the encoder's transpose (else a matrix of its own);
    - ``loss``: ``cross-entropy`` (inputs in [0, 1]), ``mse``, or ``auto`` (cross-entropy for a
      layer whose inputs lie in [0, 1], else mse);
    - ``noise``/``noise_level``: training-time corruption (``mask`` zeroes a fraction of the inputs,
      ``gaussian`` adds N(0, level²)); the loss always targets the clean input.
    """

    tied: bool = True
    loss: str = "auto"
    noise: str = "none"
    noise_level: float = 0.0

    def __post_init__(self) -> None:
        require(self.loss in ("auto", *LOSSES), f"unknown loss {self.loss!r}; choose from auto, {', '.join(LOSSES)}")
        require(self.noise in NOISES, f"unknown noise {self.noise!r}; choose from {', '.join(NOISES)}")
        require(
            self.noise_level >= 0 and (self.noise != "mask" or self.noise_level < 1),
            f"noise level must be >= 0 (and < 1 for masking), got {self.noise_level}",
        )


@dataclass
class DenoisingConfig(AutoencoderConfig):
    """A denoising autoencoder's options: by default a quarter of the inputs are masked."""

    noise: str = "mask"
    noise_level: float = 0.25


def loss_for_inputs(loss: str, x_range: torch.Tensor, k: int) -> str:
    """Resolve ``auto`` for layer ``k`` (0-based) on inputs spanning ``x_range`` ``[min, max]``."""
    lo, hi = float(x_range.min()), float(x_range.max())
    in_unit = lo >= 0.0 and hi <= 1.0
    if loss == "auto":
        return "cross-entropy" if in_unit else "mse"
    if loss == "cross-entropy" and not in_unit:
        raise PretrainError(
            f"layer {k + 1}: inputs lie in [{lo:.3g}, {hi:.3g}], but cross-entropy needs [0, 1]; "
            "use --loss mse or rescale the data"
        )
    return loss


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

    def reconstruction_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._loss(x, x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._loss(self.corrupt(x), x)

    def decoder_state(self) -> dict[str, torch.Tensor]:
        state = {"bias": self.decoder_bias.detach().clone()}
        if not self.tied:
            state["weight"] = self.decoder_weight.detach().clone()
        return state


def _build(n_in, n_out, activation, options: AutoencoderConfig, units, generator, common) -> AutoencoderLayer:
    return AutoencoderLayer(
        n_in, n_out, activation, options.tied, units, options.noise, options.noise_level, generator=generator
    )


def _units(options: AutoencoderConfig, x_range: torch.Tensor, k: int) -> str:
    return loss_for_inputs(options.loss, x_range, k)


AUTOENCODER = Objective(AutoencoderConfig, _units, _build)
DENOISING = Objective(DenoisingConfig, _units, _build)
