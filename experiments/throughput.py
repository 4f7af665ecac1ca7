"""Throughput of pretraining and fine-tuning on this machine, against its fp32 matmul peak.

    python -m experiments.throughput [--n 65536] [--table experiments/results/throughput.md]

In one run (about 1 minute on 2 cores) it measures:

1. the fp32 matmul peak (best 2048² ``torch.mm``, ``experiments.common.gemm_peak_gflops``);
2. samples/s of one epoch of autoencoder and RBM (CD-1) pretraining of a 784→500 sigmoid layer and of
   fine-tuning a 784-500-250-100-10 classifier, on random data of MNIST's shape, with the GFLOP/s
   that implies and its fraction of the peak. Flops counted per sample: an autoencoder layer and a
   CD-1 update are both 5 matrix products of 2·n_in·n_out (see ``experiments.bench_pretrain``); the
   classifier is 3× its forward flops less the input gradient it does not need. Element-wise work is
   not counted, so it only lowers the fraction;
3. greedy pretraining time against depth: 1, 2, 3 and 4 equal 256→256 layers (input width 256);
4. ``pretrain.stack`` (784→500 autoencoder, 1 epoch) as 1 process against 2 ``gloo`` processes under
   ``torchrun``, each a fresh subprocess; samples/s is rank 0's training loop (start-up excluded).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import gemm_peak_gflops, results_dir
from pretrain.checkpoint import write_json
from pretrain.data import Dataset, Split
from pretrain.finetuning import FinetuneConfig, finetune
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.mlp import build_mlp

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = [784, 500, 250, 100, 10]


def layer_flops(n_in: int, n_out: int) -> float:
    """Flops per sample of one autoencoder step or CD-1 update: 5 products of 2·n_in·n_out."""
    return 5 * 2 * n_in * n_out


def classifier_flops(sizes: list[int]) -> float:
    forward = sum(2 * a * b for a, b in zip(sizes, sizes[1:]))
    return 3 * forward - 2 * sizes[0] * sizes[1]


def pretrain_rate(objective: str, x: torch.Tensor, width: int) -> float:
    """Samples/s of one epoch of one ``width``-unit layer (the trainer's loop, diagnostics excluded)."""
    extra = {"optimizer": "sgd", "lr": 0.1, "batch_size": 100} if objective == "rbm" else {}
    cfg = GreedyConfig(layers=[width], objective=objective, epochs=1, **extra)
    GreedyPretrainer(cfg).fit(x[:1024])  # warm-up
    p = GreedyPretrainer(cfg).fit(x)
    return p.history_[0].samples_per_s


def finetune_rate(x: torch.Tensor, y: torch.Tensor) -> float:
    model = build_mlp(CLASSIFIER[0], CLASSIFIER[1:-1], CLASSIFIER[-1], ["sigmoid"] * 3)
    small = Split(x[:100], y[:100])
    data = Dataset("random", Split(x, y), small, small)
    finetune(copy.deepcopy(model), Dataset("warm-up", small, small, small), FinetuneConfig(epochs=1))
    r = finetune(model, data, FinetuneConfig(epochs=1, patience=None))
    return x.shape[0] / r.seconds  # r.seconds also holds the (tiny) evaluation of 100+100 examples


def depth_times(n: int, width: int, generator: torch.Generator) -> list[dict]:
    x = torch.rand(n, width, generator=generator)
    GreedyPretrainer(GreedyConfig(layers=[width], epochs=1)).fit(x[:1024])  # warm-up
    rows = []
    for depth in (1, 2, 3, 4):
        cfg = GreedyConfig(layers=[width] * depth, epochs=1)
        t0 = time.perf_counter()
        p = GreedyPretrainer(cfg).fit(x)
        wall = time.perf_counter() - t0
        rows.append({"depth": depth, "seconds": wall, "train_seconds": sum(h.seconds for h in p.history_)})
    return rows


def stack_subprocess(npz: Path, out: Path, processes: int, threads: int) -> dict:
    """One ``pretrain.stack`` run in a fresh process (or ``processes`` under torchrun)."""
    args = ["-m", "pretrain.stack", "--data", str(npz), "--layers", "500", "--epochs", "1", "--quiet"]
    args += ["--output", str(out), "--device", "cpu"]
    if processes > 1:
        args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"pretrain.stack failed:\n{proc.stderr[-2000:]}")
    meta = torch.load(out, weights_only=True)["metadata"]["layers"][0]
    return {
        "processes": processes,
        "threads_each": threads,
        "samples_per_s": meta["samples_per_s"],
        "train_seconds": meta["seconds"],
        "wall_seconds": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=65536, help="training examples per measurement")
    p.add_argument("--width", type=int, default=256, help="layer width of the depth-scaling runs")
    p.add_argument("--out", default="results", help="folder for the results JSON")
    p.add_argument("--table", default=None, help="also write the Markdown tables to this file")
    a = p.parse_args()

    g = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    peak = gemm_peak_gflops()
    lines = [f"fp32 matmul peak (2048², {threads} threads, torch {torch.__version__}): **{peak:.1f} GFLOP/s**", ""]

    x = torch.rand(a.n, 784, generator=g)
    y = torch.randint(0, 10, (a.n,), generator=g)
    rates = {
        "autoencoder 784→500 (Adam, batch 128)": (pretrain_rate("autoencoder", x, 500), layer_flops(784, 500)),
        "RBM 784→500 (CD-1, SGD, batch 100)": (pretrain_rate("rbm", x, 500), layer_flops(784, 500)),
        "fine-tune 784-500-250-100-10 (SGD, batch 128)": (finetune_rate(x, y), classifier_flops(CLASSIFIER)),
    }
    lines += ["| workload | samples/s | GFLOP/s | of peak |", "|---|---:|---:|---:|"]
    rate_rows = []
    for name, (rate, flops) in rates.items():
        gf = rate * flops / 1e9
        lines.append(f"| {name} | {rate:,.0f} | {gf:.1f} | {gf / peak:.0%} |")
        rate_rows.append({"workload": name, "samples_per_s": rate, "gflops": gf, "fraction_of_peak": gf / peak})

    depth = depth_times(a.n, a.width, g)
    base = depth[0]["seconds"]
    lines += ["", f"| depth ({a.width}-wide layers) | seconds | × depth 1 |", "|---:|---:|---:|"]
    lines += [f"| {r['depth']} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}× |" for r in depth]

    folder = results_dir(a.out, "throughput")
    npz = folder / "random784.npz"
    np.savez(npz, X=(x.numpy() * 255).astype(np.uint8))
    procs = [
        stack_subprocess(npz, folder / "p1.pt", 1, threads),
        stack_subprocess(npz, folder / "p1t1.pt", 1, 1),
        stack_subprocess(npz, folder / "p2.pt", 2, 1),
    ]
    npz.unlink()
    lines += [
        "",
        "| pretrain.stack 784→500, 1 epoch | samples/s | training s | wall s (incl. start-up) |",
        "|---|---:|---:|---:|",
    ]
    for r in procs:
        label = f"{r['processes']} process{'es' if r['processes'] > 1 else ''} × {r['threads_each']} thread"
        label += "s" if r["threads_each"] > 1 else ""
        lines.append(f"| {label} | {r['samples_per_s']:,.0f} | {r['train_seconds']:.2f} | {r['wall_seconds']:.1f} |")

    table = "\n".join(lines)
    print(table)
    write_json(
        folder / "throughput.json",
        {"peak_gflops": peak, "threads": threads, "n": a.n, "rates": rate_rows, "depth": depth, "processes": procs},
    )
    if a.table:
        Path(a.table).write_text(table + "\n")
        print(f"wrote {a.table}")
    print(f"wrote {folder / 'throughput.json'}")


if __name__ == "__main__":
    main()
