"""``python -m experiments.benchmark``: speed of every training loop here, against this machine's fp32 matmul peak.

    python -m experiments.benchmark [--only layers rbm workloads depth processes] [--seconds 3]

Sections (all by default; about 3 minutes on 2 cores):

- ``layers``: ``AutoencoderLayer.train_step`` (forward, backward, fused Adam) per layer shape and batch
  size, median samples/s of 5 windows, each window timed in alternation with the matmul peak;
- ``rbm``: one CD-1 epoch of a 784→500 RBM at batch 100 over 60,000 rows: the layer's update alone, the
  greedy trainer's epoch, and a plain 15-line torch loop of the same update for comparison;
- ``workloads``: one epoch of autoencoder and RBM pretraining of a 784→500 layer and of fine-tuning a
  784-500-250-100-10 classifier;
- ``depth``: greedy pretraining time of 1–4 equal layers (it should grow linearly);
- ``processes``: ``pretrain.stack`` (784→500, 1 epoch) as 1 process against 2 ``gloo`` processes.

Flops counted: an autoencoder step or a CD-1 update is 5 matrix products of 2·n_in·n_out per sample;
a classifier step is 3× its forward flops less the input gradient it does not need. Element-wise work
(activations, losses, sampling, optimizers) is not counted, so it only lowers the fraction. Data are
random, of MNIST's shape: speed does not depend on the values. Writes ``results.json`` into a new
folder under ``--out`` and the Markdown tables to ``--table``.
"""

from __future__ import annotations

import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common import gemm_peak_gflops, results_dir
from pretrain.checkpoint import atomic_write, check_writable, write_json
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main
from pretrain.data import Dataset, Split
from pretrain.finetuning import FinetuneConfig, finetune
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers import AutoencoderLayer, RBMLayer
from pretrain.layers.rbm import HINTON2006
from pretrain.mlp import build_mlp
from pretrain.version import versions

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("layers", "rbm", "workloads", "depth", "processes")
SHAPES = [(784, 500), (500, 250), (250, 100), (784, 1000)]
CLASSIFIER = [784, 500, 250, 100, 10]
RBM_CONFIG = {"layers": [500], **HINTON2006}


def layer_flops(n_in: int, n_out: int) -> float:
    """Flops per sample of one autoencoder step or CD-1 update: 5 products of 2·n_in·n_out."""
    return 5 * 2 * n_in * n_out


def classifier_flops(sizes: list[int]) -> float:
    forward = sum(2 * a * b for a, b in zip(sizes, sizes[1:]))
    return 3 * forward - 2 * sizes[0] * sizes[1]


# ----------------------------------------------------------------------- layers
def time_autoencoder_step(n_in: int, n_out: int, batch: int, seconds: float, windows: int = 5) -> dict:
    """Median samples/s of ``train_step`` on one sigmoid cross-entropy layer, and of the peak beside it.

    Layer and peak are timed in alternation: a slow spell of a shared machine hits both alike.
    """
    g = torch.Generator().manual_seed(0)
    layer = AutoencoderLayer(n_in, n_out, generator=g)
    opt = GreedyPretrainer(GreedyConfig(layers=[n_out]))._optimizer(layer)
    parts = torch.rand(batch * 16, n_in, generator=g).split(batch)
    for b in parts[:5]:  # warm-up
        layer.train_step(b, opt)
    rates, fractions, peaks = [], [], []
    for _ in range(windows):
        peaks.append(gemm_peak_gflops(seconds=0.5))
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / windows:
            for b in parts:
                layer.train_step(b, opt)
            done += batch * len(parts)
        rates.append(done / (time.perf_counter() - t0))
        fractions.append(rates[-1] * layer_flops(n_in, n_out) / 1e9 / peaks[-1])
    rate = statistics.median(rates)
    return {
        "layer": f"{n_in}→{n_out}",
        "batch": batch,
        "samples_per_s": rate,
        "gflops": rate * layer_flops(n_in, n_out) / 1e9,
        "peak_gflops": statistics.median(peaks),
        "fraction_of_peak": statistics.median(fractions),
    }


# -------------------------------------------------------------------------- rbm
def rbm_epoch_layer(x: torch.Tensor, seed: int) -> float:
    cfg = GreedyConfig.from_flat(RBM_CONFIG)
    g = torch.Generator().manual_seed(seed)
    layer = RBMLayer(x.shape[1], 500, init_std=0.1, generator=g)
    opt = GreedyPretrainer(cfg)._optimizer(layer)
    layer.on_epoch_start(0, opt)
    parts = x[torch.randperm(x.shape[0], generator=g)].split(cfg.batch_size)
    t0 = time.perf_counter()
    total = torch.zeros(())
    for b in parts:
        total += layer.train_step(b, opt)
    total.item()
    return time.perf_counter() - t0


def rbm_epoch_trainer(x: torch.Tensor, seed: int) -> float:
    p = GreedyPretrainer(GreedyConfig.from_flat({**RBM_CONFIG, "epochs": 1, "seed": seed})).fit(x)
    return p.history_[0].seconds  # the training loop, without the per-epoch validation and diagnostics


def rbm_epoch_naive(x: torch.Tensor, seed: int, batch: int = 100) -> float:
    g = torch.Generator().manual_seed(seed)
    w = 0.1 * torch.randn(x.shape[1], 500, generator=g)
    hb, vb = torch.zeros(500), torch.zeros(x.shape[1])
    wi, hi, vi = torch.zeros_like(w), torch.zeros_like(hb), torch.zeros_like(vb)
    lr, wc, m = 0.1, 0.0002, 0.5
    t0 = time.perf_counter()
    for v in x[torch.randperm(x.shape[0], generator=g)].split(batch):
        ph = torch.sigmoid(v @ w + hb)
        h = (torch.rand(ph.shape, generator=g) < ph).float()
        nv = torch.sigmoid(h @ w.t() + vb)
        nh = torch.sigmoid(nv @ w + hb)
        wi = m * wi + lr * ((v.t() @ ph - nv.t() @ nh) / v.shape[0] - wc * w)
        hi = m * hi + lr * (ph - nh).mean(0)
        vi = m * vi + lr * (v - nv).mean(0)
        w, hb, vb = w + wi, hb + hi, vb + vi
    return time.perf_counter() - t0


def rbm_epochs(x: torch.Tensor, repeats: int) -> list[dict]:
    flops = layer_flops(x.shape[1], 500) * x.shape[0]
    peak = gemm_peak_gflops()
    rows = []
    for name, fn in (("layer", rbm_epoch_layer), ("trainer", rbm_epoch_trainer), ("naive loop", rbm_epoch_naive)):
        fn(x[:2000], 0)  # warm-up
        best = min(fn(x, seed) for seed in range(repeats))
        rows.append({"variant": name, "best_s": best, "fraction_of_peak": flops / best / 1e9 / peak})
    return rows


# -------------------------------------------------------------------- workloads
def pretrain_rate(x: torch.Tensor, settings: dict) -> float:
    """Samples/s of one epoch of one 500-unit layer (the trainer's loop, diagnostics excluded)."""
    cfg = GreedyConfig.from_flat({"layers": [500], "epochs": 1, **settings})
    GreedyPretrainer(cfg).fit(x[:1024])  # warm-up
    return GreedyPretrainer(cfg).fit(x).history_[0].samples_per_s


def finetune_rate(x: torch.Tensor, y: torch.Tensor) -> float:
    model = build_mlp(CLASSIFIER[0], CLASSIFIER[1:-1], CLASSIFIER[-1], "sigmoid")
    small = Split(x[:100], y[:100])
    finetune(copy.deepcopy(model), Dataset("warm-up", small, small, small), FinetuneConfig(epochs=1))
    r = finetune(model, Dataset("random", Split(x, y), small, small), FinetuneConfig(epochs=1, patience=None))
    return x.shape[0] / r.seconds  # r.seconds also holds the (tiny) evaluation of 100 + 100 examples


def workloads(x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    peak = gemm_peak_gflops()
    rates = {
        "autoencoder 784→500 (Adam, batch 128)": (pretrain_rate(x, {}), layer_flops(784, 500)),
        "RBM 784→500 (CD-1, SGD, batch 100)": (pretrain_rate(x, HINTON2006), layer_flops(784, 500)),
        "fine-tune 784-500-250-100-10 (SGD, batch 128)": (finetune_rate(x, y), classifier_flops(CLASSIFIER)),
    }
    return [
        {"workload": name, "samples_per_s": rate, "fraction_of_peak": rate * flops / 1e9 / peak}
        for name, (rate, flops) in rates.items()
    ]


# ------------------------------------------------------------------------ depth
def depth_times(x: torch.Tensor, width: int = 256) -> list[dict]:
    x = x[:, :width]
    GreedyPretrainer(GreedyConfig(layers=[width], epochs=1)).fit(x[:1024])  # warm-up
    rows = []
    for depth in (1, 2, 3, 4):
        t0 = time.perf_counter()
        GreedyPretrainer(GreedyConfig(layers=[width] * depth, epochs=1)).fit(x)
        rows.append({"depth": depth, "seconds": time.perf_counter() - t0})
    return rows


# -------------------------------------------------------------------- processes
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
    layer = torch.load(out, weights_only=True)["metadata"]["layers"][0]
    out.unlink()
    return {"processes": processes, "threads_each": threads, "samples_per_s": layer["samples_per_s"], "wall_s": wall}


def processes(x: torch.Tensor, folder: Path) -> list[dict]:
    npz = folder / "random784.npz"
    np.savez(npz, X=(x.numpy() * 255).astype(np.uint8))
    threads = torch.get_num_threads()
    try:
        runs = [(1, threads), (1, 1), (2, max(1, threads // 2))]
        return [stack_subprocess(npz, folder / f"p{p}t{t}.pt", p, t) for p, t in runs]
    finally:
        npz.unlink()


# ------------------------------------------------------------------------ report
def tables(r: dict) -> str:
    lines = [f"fp32 matmul peak (2048², {r['threads']} threads): **{r['peak_gflops']:.1f} GFLOP/s**"]
    if "layers" in r:
        lines += ["", "| autoencoder layer | batch | samples/s | GFLOP/s | of peak |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {x['layer']} | {x['batch']} | {x['samples_per_s']:,.0f} | {x['gflops']:.1f} "
            f"| {x['fraction_of_peak']:.0%} |"
            for x in r["layers"]
        ]
    if "rbm" in r:
        lines += ["", f"| CD-1 784→500 epoch, {r['n']:,} rows, batch 100 | best s | of peak |", "|---|---:|---:|"]
        lines += [f"| {x['variant']} | {x['best_s']:.2f} | {x['fraction_of_peak']:.0%} |" for x in r["rbm"]]
    if "workloads" in r:
        lines += ["", "| one epoch of | samples/s | of peak |", "|---|---:|---:|"]
        lines += [
            f"| {x['workload']} | {x['samples_per_s']:,.0f} | {x['fraction_of_peak']:.0%} |" for x in r["workloads"]
        ]
    if "depth" in r:
        base = r["depth"][0]["seconds"]
        lines += ["", "| depth (256-wide layers) | seconds | × depth 1 |", "|---:|---:|---:|"]
        lines += [f"| {x['depth']} | {x['seconds']:.2f} | {x['seconds'] / base:.2f}× |" for x in r["depth"]]
    if "processes" in r:
        lines += ["", "| pretrain.stack 784→500, 1 epoch | samples/s | wall s (incl. start-up) |", "|---|---:|---:|"]
        lines += [
            f"| {x['processes']} process(es) × {x['threads_each']} thread(s) | {x['samples_per_s']:,.0f} "
            f"| {x['wall_s']:.1f} |"
            for x in r["processes"]
        ]
    return "\n".join(lines) + "\n"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments.benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    p.add_argument("--n", type=positive_int, default=60000, help="rows of random data per epoch measurement")
    p.add_argument("--seconds", type=positive_float, default=3.0, help="timing per layer configuration")
    p.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[128, 256], help="layers: batch sizes")
    p.add_argument("--repeats", type=positive_int, default=3, help="rbm: timed epochs per variant (best is kept)")
    p.add_argument("--out", default="results", help="root folder for the new results folder")
    p.add_argument("--table", default="experiments/results/benchmark.md", help="Markdown tables written here")
    return p


def main(argv: list[str] | None = None) -> int:
    def go() -> int:
        a = build_parser().parse_args(argv)
        check_writable(a.table)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(a.n, 784, generator=g)
        y = torch.randint(0, 10, (a.n,), generator=g)
        folder = results_dir(a.out, "benchmark")
        r = {"threads": torch.get_num_threads(), "n": a.n, "versions": versions(), "peak_gflops": gemm_peak_gflops()}
        if "layers" in a.only:
            r["layers"] = [time_autoencoder_step(*s, b, a.seconds) for s in SHAPES for b in a.batch_sizes]
        if "rbm" in a.only:
            r["rbm"] = rbm_epochs(x, a.repeats)
        if "workloads" in a.only:
            r["workloads"] = workloads(x, y)
        if "depth" in a.only:
            r["depth"] = depth_times(x)
        if "processes" in a.only:
            r["processes"] = processes(x, folder)
        text = tables(r)
        print(text, end="")
        write_json(folder / "results.json", r)
        atomic_write(a.table, lambda f: f.write(text.encode()))
        print(f"wrote {folder / 'results.json'} and {a.table}")
        return 0

    return run_main("experiments.benchmark", go)


if __name__ == "__main__":
    sys.exit(main())
