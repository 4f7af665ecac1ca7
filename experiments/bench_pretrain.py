"""Throughput of autoencoder-layer pretraining, as a fraction of this machine's fp32 matmul peak.

    python -m experiments.bench_pretrain [--batch-sizes 128 256] [--seconds 3]

For each layer shape and batch size it times ``AutoencoderLayer.train_step`` (the trainer's inner
loop: forward, backward, optimizer step) on in-memory batches and reports the median samples/s of 5 windows and achieved
GFLOP/s. Flops counted per sample for a tied autoencoder layer n_in→n_out: 5 GEMMs of 2·n_in·n_out
(encode, decode, decoder input-gradient, decoder and encoder weight-gradients; the input needs no
gradient). Element-wise work (activations, loss, optimizer) is not counted, so it only lowers the
fraction. The peak is the best n×n fp32 matmul rate measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from experiments.common import gemm_peak_gflops, results_dir, write_json
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.objectives import AutoencoderLayer

SHAPES = [(784, 500), (500, 250), (250, 100), (784, 1000)]


def time_layer(n_in: int, n_out: int, batch: int, seconds: float, optimizer: str, windows: int = 5) -> float:
    """Median samples/s over ``windows`` timing windows of ``train_step`` for one sigmoid
    cross-entropy layer on random [0, 1] data (the median shrugs off a stray background job)."""
    g = torch.Generator().manual_seed(0)
    layer = AutoencoderLayer(n_in, n_out, generator=g)
    trainer = GreedyPretrainer(GreedyConfig(layers=[n_out], optimizer=optimizer))
    opt = trainer._optimizer(layer)
    x = torch.rand(batch * 16, n_in, generator=g)
    batches = x.split(batch)
    for b in batches[:5]:  # warm-up
        layer.train_step(b, opt)
    rates = []
    for _ in range(windows):
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / windows:
            for b in batches:
                layer.train_step(b, opt)
            done += x.shape[0]
        rates.append(done / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256], help="mini-batch sizes to time")
    p.add_argument("--seconds", type=float, default=3.0, help="timing window per configuration")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="optimizer as in pretrain.stack")
    p.add_argument("--out", default="results", help="folder for the results JSON")
    a = p.parse_args()

    peak = gemm_peak_gflops()
    print(f"fp32 matmul peak (2048², {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s")
    rows = []
    print(f"{'layer':>10} {'batch':>6} {'samples/s':>10} {'GFLOP/s':>8} {'of peak':>8}")
    for n_in, n_out in SHAPES:
        for batch in a.batch_sizes:
            rate = time_layer(n_in, n_out, batch, a.seconds, a.optimizer)
            gflops = rate * 5 * 2 * n_in * n_out / 1e9
            rows.append(
                {
                    "n_in": n_in,
                    "n_out": n_out,
                    "batch": batch,
                    "samples_per_s": rate,
                    "gflops": gflops,
                    "fraction_of_peak": gflops / peak,
                }
            )
            print(f"{f'{n_in}→{n_out}':>10} {batch:>6} {rate:>10.0f} {gflops:>8.1f} {gflops / peak:>8.0%}")
    out = results_dir(a.out, "bench_pretrain")
    write_json(
        out / "results.json",
        {
            "peak_gflops": peak,
            "optimizer": a.optimizer,
            "rows": rows,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    )
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
