"""Benchmark: one CD-1 epoch of a 784→500 RBM over 60,000 MNIST images at batch 100.

Prints and writes (``results/bench_rbm-*/bench_rbm.json``) the seconds per epoch of

- ``layer``: ``RBMLayer.train_step`` over pre-shuffled batches with the trainer's SGD optimizer
  (the update itself: CD statistics, momentum, weight cost);
- ``trainer``: one epoch of ``GreedyPretrainer`` (adds batch gathering and loss logging; its
  per-epoch diagnostics and validation pass are not timed, as in ``LayerHistory.seconds``);
- ``naive``: a plain 15-line torch loop of the same update, for comparison,

and each as a fraction of the fp32 matmul peak measured in the same run
(``experiments.common.gemm_peak_gflops``). Flops counted: the five ``B×D×H`` matrix products
of a CD-1 update (positive hidden, reconstruction, negative hidden, positive and negative
weight statistics), 2 flops per multiply-add: ``10·N·D·H`` per epoch. Element-wise work
(sigmoids, sampling, bias statistics, the optimizer) is not counted.

    flock /tmp/pretrain-cpu.lock python -m experiments.bench_rbm --data-dir /tmp/dd
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from experiments.common import gemm_peak_gflops, results_dir
from pretrain.checkpoint import write_json
from pretrain.data import load_dataset
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers.rbm import HINTON2006, RBMLayer


def mnist_60k(data_dir: str) -> torch.Tensor:
    d = load_dataset("mnist", data_dir, val_size=5000)
    return torch.cat([d.train.x, d.val.x])  # all 60,000 training images


def time_layer(x: torch.Tensor, hidden: int, batch: int, seed: int) -> float:
    cfg = GreedyConfig.from_flat({"layers": [hidden], **HINTON2006, "batch_size": batch})
    g = torch.Generator().manual_seed(seed)
    layer = RBMLayer(x.shape[1], hidden, init_std=0.1, generator=g)
    opt = GreedyPretrainer(cfg)._optimizer(layer)
    layer.on_epoch_start(0, opt)
    parts = x[torch.randperm(x.shape[0], generator=g)].split(batch)
    t0 = time.perf_counter()
    total = torch.zeros(())
    for b in parts:
        total += layer.train_step(b, opt)
    total.item()
    return time.perf_counter() - t0


def time_trainer(x: torch.Tensor, hidden: int, batch: int, seed: int) -> float:
    cfg = GreedyConfig.from_flat({"layers": [hidden], "epochs": 1, "seed": seed, **HINTON2006, "batch_size": batch})
    p = GreedyPretrainer(cfg).fit(x)
    return p.history_[0].seconds


def time_naive(x: torch.Tensor, hidden: int, batch: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    w = 0.1 * torch.randn(x.shape[1], hidden, generator=g)
    hb, vb = torch.zeros(hidden), torch.zeros(x.shape[1])
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="data", help="where MNIST is cached")
    ap.add_argument("--hidden", type=int, default=500, help="hidden units")
    ap.add_argument("--batch-size", type=int, default=100, help="mini-batch size")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per variant (after one warm-up)")
    ap.add_argument("--results", default="results", help="results root folder")
    a = ap.parse_args()

    x = mnist_60k(a.data_dir)
    n, d = x.shape
    flops = 10 * n * d * a.hidden
    peak = gemm_peak_gflops()
    out = {
        "n": n,
        "d": d,
        "hidden": a.hidden,
        "batch_size": a.batch_size,
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "gemm_peak_gflops": peak,
        "flops_per_epoch": flops,
        "flops_counted": "10*N*D*H: five BxDxH matmuls per CD-1 batch, 2 flops per multiply-add",
    }
    print(f"fp32 matmul peak (2048², same run): {peak:.1f} GFLOP/s; {torch.get_num_threads()} threads")
    print(f"CD-1 {d}→{a.hidden}, batch {a.batch_size}, {n} images: {flops / 1e9:.1f} GFLOP counted per epoch")
    for name, fn in (("layer", time_layer), ("trainer", time_trainer), ("naive", time_naive)):
        fn(x[: 20 * a.batch_size], a.hidden, a.batch_size, 0)  # warm-up
        times = [fn(x, a.hidden, a.batch_size, seed) for seed in range(a.repeats)]
        best, med = min(times), statistics.median(times)
        gflops = flops / best / 1e9
        out[name] = {
            "seconds": times,
            "best_s": best,
            "median_s": med,
            "gflops": gflops,
            "peak_fraction": gflops / peak,
        }
        print(
            f"{name:>8}: best {best:.3f} s, median {med:.3f} s per epoch; "
            f"{gflops:.1f} GFLOP/s = {gflops / peak:.0%} of the measured peak"
        )
    path = write_json(results_dir(a.results, "bench_rbm") / "bench_rbm.json", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
