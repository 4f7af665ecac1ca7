"""The machine's matmul peak, timestamped result folders and overwrite notes, for the benchmark and the experiments."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

import torch


def gemm_peak_gflops(n: int = 2048, seconds: float = 2.0, device: str = "cpu") -> float:
    """Best fp32 ``n×n @ n×n`` throughput over repeated timings, in GFLOP/s (2·n³ flops each)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def usable_cpus() -> int:
    """CPU cores this process may run on: the studies' default number of worker processes.

    The rule (docs/speed.md, "Workers and threads"): one single-threaded worker per core. Two
    fine-tuning runs side by side as 2 processes × 1 thread measured faster than the same runs one
    after the other in 1 process × 2 threads, whose small matrix products wait on both threads.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def results_dir(root: str | Path, name: str) -> Path:
    """A new folder ``root/name-YYYYmmdd-HHMMSS[-k]`` that no earlier run wrote to."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = Path(root) / (f"{name}-{stamp}" + (f"-{k}" if k else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free results folder under {root}")


def note_overwrites(paths) -> list[Path]:
    """Say on stderr which of ``paths`` exist and will be overwritten (e.g. a clone's committed results).

    Studies write their tables to fixed names relative to the working directory (``experiments/results``
    in a clone's root), so a rerun replaces the committed ones; ``--tables-dir`` and friends move them.
    Returns the existing paths.
    """
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing:
        print(f"note: this run overwrites {', '.join(map(str, existing))}", file=sys.stderr)
    return existing
