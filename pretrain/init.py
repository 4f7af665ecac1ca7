"""Named weight initializers for the ``nn.Linear`` layers of any model.

Every scheme acts in place on each ``nn.Linear`` (the classifier head included), with
``fan_in``/``fan_out`` the layer's ``in_features``/``out_features``. Biases are set to 0
unless the scheme says otherwise. Nothing is truncated.

=================  =============================================================  ==========
scheme             weight distribution                                            bias
=================  =============================================================  ==========
zeros              0                                                              0
constant[:K]       K everywhere (default K = 0.01)                                0
small-normal       N(0, 1) · 0.01, i.e. std 0.01                                  0
large-normal       N(0, 1), std 1                                                 0
xavier-uniform     U(±a), a = √(6 / (fan_in + fan_out)), gain 1 (Glorot & Bengio) 0
xavier-normal      N(0, 2 / (fan_in + fan_out)), gain 1 (Glorot & Bengio 2010)    0
he-uniform         U(±a), a = √(6 / fan_in): fan_in mode, ReLU gain √2 (He et al.) 0
he-normal          N(0, 2 / fan_in): fan_in mode, ReLU gain √2 (He et al. 2015)   0
lecun-normal       N(0, 1 / fan_in): fan_in mode, gain 1 (LeCun et al. 1998)      0
orthogonal         a (semi-)orthogonal matrix, gain 1 (Saxe et al. 2014)          0
torch-default      what ``nn.Linear`` does itself: kaiming_uniform(a=√5), which   U(±1/√fan_in)
                   is U(±1/√fan_in), variance 1/(3·fan_in). It is *not* He init:
                   its variance is 1/6 of he-uniform's.
lsuv               orthogonal, then each layer in forward order is rescaled on a  0
                   data batch until the variance of its output (pre-activation)
                   is 1 ± ``tol`` (Mishkin & Matas 2016). Needs ``data``.
pretrained:PATH    hidden layers loaded from a stack checkpoint; the head gets    (loaded)
                   ``HEAD_INIT``.
=================  =============================================================  ==========

Schemes are deterministic under ``generator`` (``None`` means a generator seeded with 0).
A start that trains (``greedy``: hidden layers pretrained in place) is not an initializer; it lives
with ``make_classifier`` in ``pretrain.classifier``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import PretrainError
from .mlp import load_pretrained, mlp_layers

INIT_SCHEMES: tuple[str, ...] = (
    "zeros",
    "constant",
    "small-normal",
    "large-normal",
    "xavier-uniform",
    "xavier-normal",
    "he-uniform",
    "he-normal",
    "lecun-normal",
    "orthogonal",
    "torch-default",
    "lsuv",
    "pretrained:PATH",
)
DEFAULT_CONSTANT = 0.01
# Init of the classifier head on top of pretrained (``pretrained:PATH``, or pretrained in place) hidden layers.
HEAD_INIT = "xavier-uniform"
LSUV_TOL = 0.1  # |Var(output) - 1| at which a layer counts as unit-variance
LSUV_MAX_ITER = 10
LSUV_BATCH = 1024  # rows of ``data`` used to measure output variances


def _linears(model: nn.Module) -> list[nn.Linear]:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise PretrainError(f"{type(model).__name__} has no nn.Linear layer to initialize")
    return layers


def _torch_default(layer: nn.Linear, g: torch.Generator) -> None:
    # Same as nn.Linear.reset_parameters, but drawing from ``g``.
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=g)
    if layer.bias is not None:
        bound = 1 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=g)


def _weight_init(name: str, constant: float):
    """``fn(weight, generator)`` for a data-free scheme, or None if ``name`` is not one."""
    return {
        "zeros": lambda w, g: nn.init.zeros_(w),
        "constant": lambda w, g: nn.init.constant_(w, constant),
        "small-normal": lambda w, g: nn.init.normal_(w, 0.0, 0.01, generator=g),
        "large-normal": lambda w, g: nn.init.normal_(w, 0.0, 1.0, generator=g),
        "xavier-uniform": lambda w, g: nn.init.xavier_uniform_(w, generator=g),
        "xavier-normal": lambda w, g: nn.init.xavier_normal_(w, generator=g),
        "he-uniform": lambda w, g: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu", generator=g),
        "he-normal": lambda w, g: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=g),
        "lecun-normal": lambda w, g: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear", generator=g),
        "orthogonal": lambda w, g: nn.init.orthogonal_(w, generator=g),
    }.get(name)


def parse_scheme(scheme: str, schemes: tuple[str, ...] = INIT_SCHEMES) -> tuple[str, str | None]:
    """``"constant:0.5" -> ("constant", "0.5")``; raise ``PretrainError`` for a name not in ``schemes``."""
    name, _, arg = scheme.partition(":")
    known = [s.split(":")[0] for s in schemes]
    if name not in known:
        raise PretrainError(f"unknown init {scheme!r}; choose from {', '.join(schemes)}")
    if name == "pretrained" and not arg:
        raise PretrainError("--init pretrained needs a checkpoint path: pretrained:PATH")
    if arg and name not in ("constant", "pretrained"):
        raise PretrainError(f"init {name!r} takes no argument, got {scheme!r}")
    return name, (arg or None)


@torch.no_grad()
def initialize(
    model: nn.Module,
    scheme: str,
    *,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
) -> nn.Module:
    """Apply ``scheme`` in place to every ``nn.Linear`` of ``model``; return ``model``.

    ``data``: ``(N, D)`` inputs, needed by ``lsuv``.
    """
    name, arg = parse_scheme(scheme)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    layers = _linears(model)
    if name == "lsuv":
        if data is None:
            raise PretrainError(f"init {name!r} is data-driven: give it a batch of inputs (N, D)")
        if data.ndim != 2 or data.shape[1] != layers[0].in_features:
            raise PretrainError(
                f"init {name!r}: data has shape {tuple(data.shape)}, the model takes {layers[0].in_features} inputs"
            )
    if name == "pretrained":
        load_pretrained(model, arg)
        init_head(model, g)
        return model
    if name == "torch-default":
        for layer in layers:
            _torch_default(layer, g)
        return model
    if name == "constant":
        try:
            constant = float(arg) if arg is not None else DEFAULT_CONSTANT
        except ValueError:
            raise PretrainError(f"init constant:K needs a number K, got {arg!r}") from None
        if not math.isfinite(constant):
            raise PretrainError(f"init constant:K needs a finite K, got {arg!r}")
    else:
        constant = DEFAULT_CONSTANT
    fill = _weight_init("orthogonal" if name == "lsuv" else name, constant)
    for layer in layers:
        fill(layer.weight, g)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    if name == "lsuv":
        _lsuv(model, layers, data, g)
    return model


def init_head(model: nn.Module, generator: torch.Generator) -> None:
    """Give the model's head (a last ``nn.Linear`` with no activation after it) ``HEAD_INIT``, bias 0."""
    _, head = mlp_layers(model)
    if head is not None:
        _weight_init(HEAD_INIT, DEFAULT_CONSTANT)(head.linear.weight, generator)
        if head.linear.bias is not None:
            nn.init.zeros_(head.linear.bias)


def _lsuv(model: nn.Module, layers: list[nn.Linear], data: torch.Tensor, g: torch.Generator) -> None:
    rows = torch.randperm(data.shape[0], generator=g)[:LSUV_BATCH]
    device = layers[0].weight.device
    batch = data[rows.to(data.device)].to(device)
    if batch.shape[0] < 2:
        raise PretrainError("init 'lsuv' needs at least 2 rows of data to measure a variance")
    for layer in layers:
        seen: list[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda m, i, out, seen=seen: seen.append(out))
        try:
            for _ in range(LSUV_MAX_ITER):
                seen.clear()
                model(batch)
                var = float(seen[-1].var())
                if not math.isfinite(var) or var < 1e-12:
                    raise PretrainError(f"init 'lsuv': the output of {layer} has variance {var}; cannot rescale it")
                if abs(var - 1.0) < LSUV_TOL:
                    break
                layer.weight.div_(math.sqrt(var))
        finally:
            hook.remove()
