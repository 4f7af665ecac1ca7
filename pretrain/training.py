"""What every training loop here shares: optimizers, flushing denormal floats, and mixed precision."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.optim import optimizer as optim_base

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "bf16")
CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def make_optimizer(
    params: Iterable, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, fused: bool = True
) -> torch.optim.Optimizer:
    """``sgd`` (with ``momentum``, no Nesterov) or ``adam``; ``params`` may be parameter groups.

    ``weight_decay`` is L2 and applies to groups that do not set their own. Both use torch's fused
    kernels by default (one pass per step instead of several element-wise passes per parameter);
    ``fused=False`` where some parameters start getting gradients only after others have stepped (torch's
    fused SGD with momentum fails on such a mix of started and unstarted momentum buffers).
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``. A fused ``torch.optim.SGD`` without hooks gets the same kernel on the same
    state (bit for bit) without torch.optim's per-call Python: about 80 µs a step, a sixth of a CD-1
    step on a 250→100 layer. Anything else takes ``optimizer.step()``."""
    if not _direct_sgd(optimizer):
        optimizer.step()
        return
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        momentum, state = group["momentum"], optimizer.state
        buffers = [state[p].get("momentum_buffer") for p in params] if momentum else []
        first = bool(momentum) and any(b is None for b in buffers)
        if first:
            buffers = [torch.empty_like(p) for p in params]
            for p, b in zip(params, buffers):
                state[p]["momentum_buffer"] = b
        torch._fused_sgd_(
            params,
            [p.grad for p in params],
            buffers,
            weight_decay=group["weight_decay"],
            momentum=momentum,
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            is_first_step=first,
            grad_scale=None,
            found_inf=None,
        )


def _direct_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`optimizer_step` may call the fused SGD kernel itself: nothing that `step()` adds is in use."""
    return (
        type(optimizer) is torch.optim.SGD
        and hasattr(torch, "_fused_sgd_")
        and not (optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks)
        and not (optim_base._global_optimizer_pre_hooks or optim_base._global_optimizer_post_hooks)
        and getattr(optimizer, "grad_scale", None) is None
        and all(g["fused"] and not g["differentiable"] for g in optimizer.param_groups)
        and all(p.grad is None or not p.grad.is_sparse for g in optimizer.param_groups for p in g["params"])
    )


@contextmanager
def denormals_flushed():
    """Flush denormal floats to zero on the CPU inside the block, then restore the default.

    Sigmoid codes of upper layers underflow into the denormal range, where x86 arithmetic is
    slow: without this, a 256→256 layer on such codes trained 1.5× slower than the first layer.
    Values below 1.2e-38 become 0, deterministically.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> dict[str, bool]:
    """Which of ``CPU_FLAGS`` (bf16 instructions and matrix units) the CPU reports; all False if unreadable."""
    try:
        text = Path(path).read_text()
    except OSError:
        return dict.fromkeys(CPU_FLAGS, False)
    words = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            words.update(line.split(":", 1)[-1].split())
    return {flag: flag in words for flag in CPU_FLAGS}


def has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bf16 matrices natively: AMX tiles or AVX512-BF16 dot products.

    On an AMD EPYC with AVX512-BF16 and no AMX a bf16 autocast training step measured 1.5× faster than
    fp32 (784-500-250-100-10, batch 128, 1 thread), so both count.
    """
    flags = cpu_flags()
    return flags.get("amx_bf16", False) or flags.get("avx512_bf16", False)


@functools.cache
def _warn_slow_bf16() -> None:
    # once per process: the warning says what to expect, it does not stop the run
    warnings.warn(
        "bf16 on a CPU without bf16 matrix instructions (AMX or AVX512-BF16): it runs, but expect it to be "
        "slower than fp32 (use --precision fp32)",
        stacklevel=3,
    )


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context for forward passes and losses at ``precision``: ``fp32`` (nothing) or ``bf16``.

    bf16 is ``torch.autocast`` with bfloat16: matmuls run in bf16, parameters, gradients and the
    optimizer state stay fp32. On a CPU without bf16 matrix instructions it warns once and still runs.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if device_type == "cpu" and not has_bf16_matrix_units():
        _warn_slow_bf16()
    return torch.autocast(device_type, dtype=torch.bfloat16)


_IN_PLACE = {nn.Sigmoid: torch.Tensor.sigmoid_, nn.Tanh: torch.Tensor.tanh_, nn.ReLU: torch.Tensor.relu_}
_BACKWARD = {
    nn.Sigmoid: torch.ops.aten.sigmoid_backward,
    nn.Tanh: torch.ops.aten.tanh_backward,
    nn.ReLU: lambda g, h: torch.ops.aten.threshold_backward(g, h, 0),
}

_ATTRIBUTE = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", None: "none"}


def _onednn_linear():
    """oneDNN's linear with a fused activation (the kernel torch.compile picks on a CPU), or None."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _onednn_linear()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: type | None) -> torch.Tensor:
    """``act(x @ weightᵀ + bias)``, a new tensor; ``act``: ``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU`` or None.

    fp32 on a CPU goes to oneDNN with the activation fused: faster than MKL's ``addmm`` on a 500→2000
    layer and much faster on a 2000→10 head at batch 128, not on 784→500 or 250→100 (docs/speed.md).
    Anything else: ``addmm`` and the activation in place.
    """
    if _ONEDNN_LINEAR is not None and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32:
        return _ONEDNN_LINEAR(x, weight, bias, _ATTRIBUTE[act], [None], "")
    z = torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
    return z if act is None else _IN_PLACE[act](z)


class LinearChain:
    """Cross-entropy gradients of a chain ``Linear, act, Linear, act, ..., Linear`` written by hand.

    The same gradients as autograd on ``F.cross_entropy(model(x), y)`` (to float rounding), computed
    with one matrix product per weight gradient and per hidden input gradient and no graph: on a
    784-500-250-100-10 sigmoid net at batch 128 this made a training step about 5% faster than autograd.
    ``act`` is ``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU`` or ``nn.Identity`` (or absent between two linears).
    Build it with :meth:`of`, which returns None for any other model (then use autograd).
    """

    def __init__(self, pairs: list[tuple[nn.Linear, type | None]]):
        self.pairs = pairs  # (linear, type of the activation after it or None)

    @classmethod
    def of(cls, model: nn.Module) -> LinearChain | None:
        """The chain of ``model`` (an ``nn.Sequential`` of linears and those activations ending in a linear,
        every parameter trainable, no hooks), else None."""
        if not isinstance(model, nn.Sequential) or len(model) == 0 or not isinstance(model[-1], nn.Linear):
            return None
        pairs: list[tuple[nn.Linear, type | None]] = []
        for module in model:
            if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
                return None
            if isinstance(module, nn.Linear) and type(module) is nn.Linear:
                pairs.append((module, None))
            elif type(module) in (*_IN_PLACE, nn.Identity) and pairs and pairs[-1][1] is None:
                pairs[-1] = (pairs[-1][0], None if type(module) is nn.Identity else type(module))
            else:
                return None
        if model._forward_hooks or model._forward_pre_hooks or not all(p.requires_grad for p in model.parameters()):
            return None
        if len({id(linear) for linear, _ in pairs}) < len(pairs):  # a layer used twice shares its gradient
            return None
        return cls(pairs)

    def _forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, w_sum: float | None):
        """Every layer's output, the batch loss and its gradient with respect to the logits."""
        hs = [x]
        for layer, act in self.pairs:
            hs.append(linear(hs[-1], layer.weight, layer.bias, act))
        log_p = torch.log_softmax(hs[-1], 1)
        picked = log_p.gather(1, y[:, None]).squeeze(1)
        g = log_p.exp_()  # d loss / d logits = (softmax - onehot) · weight
        g[torch.arange(y.shape[0], device=y.device), y] -= 1
        if w is None:
            loss = -picked.mean()
            g.mul_(1.0 / y.shape[0])
        else:
            loss = -(picked * w).sum() / w_sum
            g.mul_((w / w_sum)[:, None])
        return hs, loss, g

    def _input_grad(self, j: int, g: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor | None:
        """The loss gradient with respect to layer ``j``'s pre-activation input (None for the first layer)."""
        if not j:
            return None
        g = linear(g, self.pairs[j][0].weight.t(), None, None)
        act = self.pairs[j - 1][1]
        return g if act is None else _BACKWARD[act](g, hs[j])

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The chain's output ``(N, classes)`` for inputs ``x`` ``(N, features)``: the model's forward pass."""
        for layer, act in self.pairs:
            x = linear(x, layer.weight, layer.bias, act)
        return x

    @torch.no_grad()
    def gradients(
        self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None, w_sum: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Set every parameter's ``.grad`` to that of the batch loss; return ``(loss, logits)``, detached.

        The loss is the mean cross-entropy, or ``sum(w_i · ce_i) / w_sum`` with weights ``w``.
        """
        hs, loss, g = self._forward(x, y, w, w_sum)
        for j in range(len(self.pairs) - 1, -1, -1):
            layer = self.pairs[j][0]
            layer.weight.grad = torch.mm(g.t(), hs[j])
            if layer.bias is not None:
                layer.bias.grad = g.sum(0)
            g = self._input_grad(j, g, hs)
        return loss, hs[-1]

    @torch.no_grad()
    def sgd_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor | None,
        w_sum: float | None,
        lr: float,
        momentum: float,
        weight_decay: float,
        buffers: dict[int, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of ``torch.optim.SGD(lr, momentum, weight_decay)`` (no dampening, no Nesterov) on the batch
        loss, with the momentum update folded into each weight-gradient product (``buf = m·buf + gᵀh``)
        instead of a separate pass over the gradients. ``buffers``: the momentum buffers by parameter id
        (empty at the first step). Returns ``(loss, logits)``. About 3% faster than ``gradients`` and a fused
        SGD step on the networks of the comparison."""
        hs, loss, g = self._forward(x, y, w, w_sum)
        for j in range(len(self.pairs) - 1, -1, -1):
            layer = self.pairs[j][0]
            g_in = self._input_grad(j, g, hs)  # before this layer's weights change
            for p, is_weight in ((layer.weight, True), (layer.bias, False)):
                if p is None:
                    continue
                buf = buffers.get(id(p))
                if buf is None:
                    buf = buffers[id(p)] = torch.zeros_like(p)
                if is_weight:
                    torch.addmm(buf, g.t(), hs[j], beta=momentum, out=buf)
                else:
                    buf.mul_(momentum).add_(g.sum(0))
                if weight_decay:
                    buf.add_(p, alpha=weight_decay)
                p.add_(buf, alpha=-lr)
            g = g_in
        return loss, hs[-1]
