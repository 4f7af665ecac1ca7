"""What every training loop here shares: optimizers, flushing denormal floats, and mixed precision."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import torch

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
    """Whether this CPU has AMX bf16 tiles, the only CPU units where bf16 matmuls clearly beat fp32."""
    return cpu_flags()["amx_bf16"]


@functools.cache
def _warn_slow_bf16() -> None:
    # once per process: the warning says what to expect, it does not stop the run
    warnings.warn(
        "bf16 on a CPU without AMX bf16 units: it runs, but expect it no faster than fp32 (use --precision fp32)",
        stacklevel=3,
    )


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context for forward passes and losses at ``precision``: ``fp32`` (nothing) or ``bf16``.

    bf16 is ``torch.autocast`` with bfloat16: matmuls run in bf16, parameters, gradients and the
    optimizer state stay fp32. On a CPU without bf16 matrix units it warns once and still runs.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if device_type == "cpu" and not has_bf16_matrix_units():
        _warn_slow_bf16()
    return torch.autocast(device_type, dtype=torch.bfloat16)
