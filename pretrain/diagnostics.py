"""Per-layer activation and gradient statistics of an MLP on one batch (the initialization tutorial's diagnostics).

A *hidden layer* is an ``nn.Linear`` followed by an activation module (in the order the model's
leaf modules are registered, so nested ``nn.Sequential`` blocks work too); a final ``nn.Linear``
with no activation after it is the head. For each hidden layer, on a batch ``x`` ``(N, D)``:

- forward: mean, std and second moment of the activations ``h`` ``(N, units)``; ``unit_std``, the
  per-unit std over the batch averaged over units (how much a unit's output varies with the input);
  the fraction saturated (``|tanh| > 0.99``; sigmoid ``< 0.01`` or ``> 0.99``); the fraction of dead
  ReLU units (output exactly 0 for every example of the batch); a histogram;
- backward, for a loss: the Frobenius norm of the gradient of the layer's weight ``(out, in)`` and of
  its input ``(N, in)``;
- symmetry: ``row_spread``, the largest difference between the incoming weights (and bias) of any
  two units, which is exactly 0 for a symmetric start such as zeros or a constant.

Forward hooks capture the tensors and are removed afterwards; gradients come from
``torch.autograd.grad``, so parameters' ``.grad``, the training mode and the weights are untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PretrainError
from .mlp import Layer, mlp_layers

SATURATION = 0.99  # |tanh| above this, or sigmoid outside [1 - this, this], counts as saturated
HIST_BINS = 50


@dataclass
class LayerStats:
    """Statistics of hidden layer ``index`` (1 = the layer next to the input) on one batch.

    ``saturated`` is ``None`` for activations with no saturation (ReLU, linear); ``dead`` is ``None``
    for anything but ReLU. Gradient norms are ``None`` when no gradients were asked for.
    """

    index: int
    activation: str
    n_in: int
    n_units: int
    mean: float
    std: float
    second_moment: float
    unit_std: float
    saturated: float | None
    dead: float | None
    row_spread: float
    max_abs_weight: float
    hist_counts: list[int] = field(repr=False)
    hist_edges: list[float] = field(repr=False)
    weight_grad_norm: float | None = None
    input_grad_norm: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Report:
    """Per-hidden-layer statistics plus the loss the gradients were taken of."""

    layers: list[LayerStats]
    loss: float | None
    loss_name: str | None
    n_examples: int

    def table(self) -> str:
        """One row per hidden layer: the numbers the doctor and the experiments print."""
        head = (
            f"{'layer':>5}  {'act':>7}  {'in→out':>9}  {'mean':>9}  {'std':>9}  {'E[h²]':>9}  {'sat%':>6}  "
            f"{'dead%':>6}  {'|dL/dW|':>9}  {'|dL/dx|':>9}  {'row diff':>9}"
        )
        rows = [head]
        for s in self.layers:
            rows.append(
                f"{s.index:>5}  {s.activation:>7}  {f'{s.n_in}→{s.n_units}':>9}  {s.mean:>9.3g}  {s.std:>9.3g}  "
                f"{s.second_moment:>9.3g}  {_pct(s.saturated):>6}  {_pct(s.dead):>6}  "
                f"{_num(s.weight_grad_norm):>9}  {_num(s.input_grad_norm):>9}  {s.row_spread:>9.3g}"
            )
        return "\n".join(rows)

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "loss_name": self.loss_name,
            "n_examples": self.n_examples,
            "layers": [s.as_dict() for s in self.layers],
        }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def hidden_layers(model: nn.Module) -> list[Layer]:
    """The hidden layers of ``model`` (see ``pretrain.mlp.mlp_layers``); at least one, or ``PretrainError``."""
    layers, _ = mlp_layers(model)
    if not layers:
        raise PretrainError("the model has no hidden layer (an nn.Linear followed by an activation)")
    return layers


def row_spread(linear: nn.Linear) -> float:
    """Largest ``|W[i] - W[j]|`` entry (bias included) over all pairs of units ``i, j`` of a layer."""
    w = linear.weight.detach()
    if linear.bias is not None:
        w = torch.cat([w, linear.bias.detach()[:, None]], dim=1)
    if w.shape[0] < 2:
        return 0.0
    return float((w.max(dim=0).values - w.min(dim=0).values).max())


def random_projection_loss(seed: int = 0) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """A loss for models with no labels: ``mean_n <out_n, g_n>`` with a fixed ``g ~ N(0, 1)``.

    Back-propagating a unit-variance random error, as in Glorot & Bengio's analysis: the gradient
    reaching the top layer has the same scale whatever the model, so only the layers change it.
    """

    def loss(out: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype).to(out.device)
        return (out * g).sum() / out.shape[0]

    return loss


def cross_entropy_loss(out: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    if y is None:
        raise PretrainError("cross-entropy needs labels")
    if out.ndim != 2 or int(y.max()) >= out.shape[1]:
        raise PretrainError(f"cross-entropy: the model has {out.shape[-1]} outputs, the labels go up to {int(y.max())}")
    return F.cross_entropy(out, y)


def diagnose(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    loss: str | Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = "auto",
    bins: int = HIST_BINS,
) -> Report:
    """Forward (and backward, unless ``loss`` is ``None``) statistics of every hidden layer.

    Args:
        model: an ``nn.Sequential``-like MLP (see ``hidden_layers``); left exactly as it was.
        x: ``(N, D)`` input batch on the model's device.
        y: ``(N,)`` labels, or ``None``.
        loss: ``"auto"`` (cross-entropy when ``y`` is given and the model ends in a linear head with enough
            outputs, else ``"random"``), ``"cross-entropy"``, ``"random"`` (see ``random_projection_loss``), a
            callable ``loss(output, y) -> scalar``, or ``None`` for forward statistics only.
    """
    layers = hidden_layers(model)
    if x.ndim != 2 or x.shape[1] != layers[0].linear.in_features:
        raise PretrainError(
            f"data of shape {tuple(x.shape)} does not fit a model with {layers[0].linear.in_features} inputs"
        )
    if x.shape[0] < 2:
        raise PretrainError("diagnostics need a batch of at least 2 examples")

    inputs: dict[int, torch.Tensor] = {}
    outputs: dict[int, torch.Tensor] = {}
    want_grad = loss is not None

    def pre_hook(k):
        def hook(_module, args):
            (inp,) = args
            if want_grad and not inp.requires_grad:  # the model's input: make it a leaf we can differentiate
                inp = inp.detach().requires_grad_(True)
            inputs[k] = inp
            return (inp,)

        return hook

    def out_hook(k):
        def hook(_module, _args, out):
            outputs[k] = out

        return hook

    handles = []
    weights = [layer.linear.weight for layer in layers]
    flags = [w.requires_grad for w in weights]
    try:
        if want_grad:  # a frozen model's weights still get gradients here; the flags are restored below
            for w in weights:
                w.requires_grad_(True)
        for k, (_, linear, act, _) in enumerate(layers):
            handles.append(linear.register_forward_pre_hook(pre_hook(k)))
            handles.append((act or linear).register_forward_hook(out_hook(k)))  # a linear layer: its own output
        with torch.set_grad_enabled(want_grad):
            out = model(x)
            loss_value, loss_name, grads_w, grads_x = None, None, None, None
            if want_grad:
                loss_fn, loss_name = _resolve_loss(loss, out, y, mlp_layers(model)[1] is not None)
                value = loss_fn(out, y)
                targets = weights + [inputs[k] for k in range(len(layers))]
                grads = torch.autograd.grad(value, targets, allow_unused=True)
                grads_w, grads_x = grads[: len(layers)], grads[len(layers) :]
                loss_value = float(value.detach())
    finally:
        for h in handles:
            h.remove()
        for w, flag in zip(weights, flags):
            w.requires_grad_(flag)

    stats = []
    for k, (_, linear, _, name) in enumerate(layers):
        h = outputs[k].detach().float()
        stats.append(
            _layer_stats(
                k + 1,
                name,
                linear,
                h,
                bins,
                None if grads_w is None else _norm(grads_w[k]),
                None if grads_x is None else _norm(grads_x[k]),
            )
        )
    return Report(stats, loss_value, loss_name, x.shape[0])


def _norm(g: torch.Tensor | None) -> float:
    return 0.0 if g is None else float(g.detach().float().norm())


def _resolve_loss(loss, out: torch.Tensor, y: torch.Tensor | None, has_head: bool):
    if callable(loss):
        return loss, getattr(loss, "__name__", "custom")
    if loss == "auto":
        is_scores = has_head and y is not None and out.ndim == 2 and out.shape[1] > int(y.max())
        loss = "cross-entropy" if is_scores else "random"
    if loss == "cross-entropy":
        return cross_entropy_loss, "cross-entropy"
    if loss == "random":
        return random_projection_loss(0), "random"
    raise PretrainError(f"unknown loss {loss!r}; use auto, cross-entropy or random")


def _layer_stats(index, name, linear, h, bins, grad_w, grad_x) -> LayerStats:
    saturated = dead = None
    if name == "tanh":
        saturated = float((h.abs() > SATURATION).float().mean())
    elif name == "sigmoid":
        saturated = float(((h < 1 - SATURATION) | (h > SATURATION)).float().mean())
    if name == "relu":
        dead = float((h == 0).all(dim=0).float().mean())
    lo, hi = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}.get(name, (float(h.min()), float(h.max())))
    if name == "relu":
        lo = 0.0
    if not (math.isfinite(lo) and math.isfinite(hi)):
        counts, edges = [], []
    else:
        hi = hi if hi > lo else lo + 1.0
        counts = torch.histc(h, bins=bins, min=lo, max=hi).long().tolist()
        edges = torch.linspace(lo, hi, bins + 1).tolist()
    return LayerStats(
        index=index,
        activation=name,
        n_in=linear.in_features,
        n_units=linear.out_features,
        mean=float(h.mean()),
        std=float(h.std()),
        second_moment=float((h * h).mean()),
        unit_std=float(h.std(dim=0).mean()),
        saturated=saturated,
        dead=dead,
        row_spread=row_spread(linear),
        max_abs_weight=float(linear.weight.detach().abs().max()),
        hist_counts=counts,
        hist_edges=edges,
        weight_grad_norm=grad_w,
        input_grad_norm=grad_x,
    )


# Thresholds of ``health_warnings``: the tutorial's bad starts cross them by orders of magnitude, its good ones do not.
VANISH_STD = 1e-3  # activation std (over examples and units, as in the tutorial) below this: the signal is gone
VANISH_RATIO = 1e-2  # ... or below this fraction of layer 1's
SATURATED_MAX = 0.5  # fraction of saturated activations above which a layer warns
DEAD_MAX = 0.1  # fraction of dead ReLU units above which a layer warns
GROWTH_MAX = 1e2  # E[h²] growing this much from layer 1 to the top: activations explode
GRAD_RATIO_MAX = 1e3  # input-gradient norm changing this much from the top layer to layer 1
SYMMETRY_TOL = 1e-6  # row spread at most this × the largest |weight|: all units alike (up to float round-off)


def sci(v: float) -> str:
    """``3e-05 -> '3e-5'``, ``1000000 -> '1e6'``: one significant digit, short exponent."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    mant, exp = f"{v:.0e}".split("e")
    return f"{mant}e{int(exp)}"


def health_warnings(report: Report) -> list[str]:
    """Plain-language warnings about a report, e.g. ``"layer 4: activations vanish (std 3e-5)"``; [] if healthy."""
    out: list[str] = []
    layers = report.layers
    first = layers[0]
    for s in layers:
        if not all(math.isfinite(v) for v in (s.mean, s.std, s.second_moment)):
            out.append(f"layer {s.index}: activations are NaN or infinite")
            continue
        if s.std < VANISH_STD or (s.index > 1 and s.std < VANISH_RATIO * first.std):
            out.append(f"layer {s.index}: activations vanish (std {sci(s.std)})")
        if s.saturated is not None and s.saturated > SATURATED_MAX:
            out.append(f"layer {s.index}: {100 * s.saturated:.0f}% saturated")
        if s.dead is not None and s.dead > DEAD_MAX:
            out.append(f"layer {s.index}: {100 * s.dead:.0f}% dead ReLUs")
    top = layers[-1]
    if len(layers) > 1 and first.second_moment > 0 and top.second_moment / first.second_moment > GROWTH_MAX:
        ratio = top.second_moment / first.second_moment
        out.append(f"activations explode: E[h²] grows {sci(ratio)}× from layer 1 to layer {top.index}")
    if len(layers) > 1 and top.input_grad_norm is not None:
        g_top, g_first = top.input_grad_norm, first.input_grad_norm
        if g_top == 0 and g_first == 0:
            out.append("gradients are zero at every layer")
        elif g_top == 0:
            out.append(f"gradients vanish: 0 at layer {top.index}, {sci(g_first)} at layer 1")
        elif g_first == 0:
            out.append(f"gradients vanish: {sci(g_top)} at layer {top.index}, 0 at layer 1")
        elif g_first / g_top > GRAD_RATIO_MAX:
            out.append(f"gradients grow {sci(g_first / g_top)}× from layer {top.index} to layer 1")
        elif g_top / g_first > GRAD_RATIO_MAX:
            out.append(f"gradients shrink {sci(g_top / g_first)}× from layer {top.index} to layer 1")
    symmetric = [s.index for s in layers if s.n_units > 1 and s.row_spread <= SYMMETRY_TOL * s.max_abs_weight]
    if symmetric:
        which = "every layer" if len(symmetric) == len(layers) else "layer " + ", ".join(map(str, symmetric))
        out.append(f"all units identical: symmetric start ({which})")
    return out
