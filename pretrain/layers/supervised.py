"""Supervised greedy layers: each new layer is trained with a temporary softmax head on the labels.

This is the "supervised greedy layer-wise" arm of Bengio, Lamblin, Popovici & Larochelle (NIPS 2007):
layer k learns ``h = act(W x + b)`` on the frozen codes ``x`` of the layers below it, through a
linear head ``softmax(V h + c)`` trained jointly on the labels by cross-entropy. When the layer is
done the head is thrown away; only ``W, b`` go on (and into the checkpoint). Belilovsky, Eickenberg
& Oyallon (ICML 2019) scaled the same idea to ImageNet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PretrainError
from .base import LayerObjective, Objective


@dataclass
class SupervisedConfig:
    """The supervised greedy objective's own options.

    - ``n_classes``: outputs of the temporary head; None: inferred from the labels when fitting
      (the trainer then records the number it used).
    """

    n_classes: int | None = None

    def __post_init__(self) -> None:
        if self.n_classes is not None and self.n_classes < 2:
            raise PretrainError(f"the supervised objective needs at least 2 classes, got {self.n_classes}")


class SupervisedLayer(LayerObjective):
    """``x -> act(W x + b)`` trained through a temporary head ``V h + c`` by cross-entropy on labels.

    Args:
        n_in, n_out: input and code sizes.
        activation: encoder activation, ``sigmoid`` | ``tanh`` | ``relu`` | ``linear``.
        n_classes: outputs of the temporary head.
        generator: RNG for the initial weights.
    """

    reconstructs = False

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str = "sigmoid",
        n_classes: int = 10,
        generator: torch.Generator | None = None,
    ):
        super().__init__(n_in, n_out, activation)
        self.head: nn.Linear | None = nn.Linear(n_out, n_classes)
        with torch.no_grad():
            # Glorot & Bengio's uniform range, ×4 for sigmoid, as the autoencoder layers start
            scale = 4.0 if activation == "sigmoid" else 1.0
            for linear, gain in ((self.encoder, scale), (self.head, 1.0)):
                bound = gain * math.sqrt(6.0 / sum(linear.weight.shape))
                linear.weight.uniform_(-bound, bound, generator=generator)
                linear.bias.zero_()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, n_in) -> (N, n_classes)``: the temporary head's class scores."""
        if self.head is None:
            raise PretrainError("this supervised layer is finished: its temporary head was discarded")
        return self.head(self.encode(x))

    def reconstruction_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy of the head on labels ``y`` ``(N,)`` (the objective's loss; nothing is reconstructed)."""
        if y is None:
            raise PretrainError("the supervised objective needs labels")
        return F.cross_entropy(self.logits(x), y)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        raise PretrainError("a supervised layer has no decoder: it cannot reconstruct its input")

    def finish(self) -> None:
        self.head = None


def _units(options: SupervisedConfig, x_range: torch.Tensor, k: int) -> str:
    return "softmax"


def _build(n_in, n_out, activation, options: SupervisedConfig, units, generator, common) -> SupervisedLayer:
    if options.n_classes is None:
        raise PretrainError("the supervised objective needs n_classes (the trainer infers it from the labels)")
    return SupervisedLayer(n_in, n_out, activation, options.n_classes, generator)


SUPERVISED = Objective(SupervisedConfig, _units, _build, needs_labels=True)
