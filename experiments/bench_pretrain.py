"""Throughput of autoencoder-layer pretraining, as a fraction of this machine's fp32 matmul peak.

    python -m experiments.bench_pretrain [--batch-sizes 128 256] [--seconds 3]

For each layer shape and batch size it times ``AutoencoderLayer.train_step`` (the trainer's inner
loop: forward, backward, optimizer step) on in-memory batches and reports the median samples/s of
5 windows and the achieved GFLOP/s. Flops counted per sample for a tied autoencoder layer
n_in→n_out: 5 GEMMs of 2·n_in·n_out (encode, decode, decoder input-gradient, decoder and encoder
weight-gradients; the input needs no gradient). Element-wise work (activations, loss, optimizer)
is not counted, so it only lowers the fraction. The peak is the best 2048² fp32 matmul rate,
timed in alternation with the layer.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from experiments.common import gemm_peak_gflops, results_dir
from pretrain.checkpoint import write_json
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers import AutoencoderLayer

SHAPES = [(784, 500), (500, 250), (250, 100), (784, 1000)]


def time_layer(n_in: int, n_out: int, batch: int, seconds: float, optimizer: str, windows: int = 5) -> dict:
    """Samples/s of ``train_step`` for one sigmoid cross-entropy layer on random [0, 1] data.

    The layer and the matmul peak are timed in alternation, ``windows`` times, and the medians
    are reported: a slow spell of a shared machine then hits both sides of the fraction alike.
    """
    g = torch.Generator().manual_seed(0)
    layer = AutoencoderLayer(n_in, n_out, generator=g)
    opt = GreedyPretrainer(GreedyConfig(layers=[n_out], optimizer=optimizer))._optimizer(layer)
    x = torch.rand(batch * 16, n_in, generator=g)
    batches = x.split(batch)
    for b in batches[:5]:  # warm-up
        layer.train_step(b, opt)
    rates, fractions, peaks = [], [], []
    for _ in range(windows):
        peaks.append(gemm_peak_gflops(seconds=0.5))
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / windows:
            for b in batches:
                layer.train_step(b, opt)
            done += x.shape[0]
        rates.append(done / (time.perf_counter() - t0))
        fractions.append(rates[-1] * 5 * 2 * n_in * n_out / 1e9 / peaks[-1])
    rate = statistics.median(rates)
    return {
        "n_in": n_in,
        "n_out": n_out,
        "batch": batch,
        "samples_per_s": rate,
        "gflops": rate * 5 * 2 * n_in * n_out / 1e9,
        "peak_gflops": statistics.median(peaks),
        "fraction_of_peak": statistics.median(fractions),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256], help="mini-batch sizes to time")
    p.add_argument("--seconds", type=float, default=3.0, help="timing per configuration (split into 5 windows)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="optimizer as in pretrain.stack")
    p.add_argument("--out", default="results", help="folder for the results JSON")
    a = p.parse_args()

    print(f"{torch.get_num_threads()} threads; peak = best 2048² fp32 matmul, timed beside each configuration")
    print(f"{'layer':>10} {'batch':>6} {'samples/s':>10} {'GFLOP/s':>8} {'peak':>6} {'of peak':>8}")
    rows = []
    for n_in, n_out in SHAPES:
        for batch in a.batch_sizes:
            r = time_layer(n_in, n_out, batch, a.seconds, a.optimizer)
            rows.append(r)
            print(
                f"{f'{n_in}→{n_out}':>10} {batch:>6} {r['samples_per_s']:>10.0f} {r['gflops']:>8.1f} "
                f"{r['peak_gflops']:>6.0f} {r['fraction_of_peak']:>8.0%}"
            )
    out = results_dir(a.out, "bench_pretrain")
    meta = {"optimizer": a.optimizer, "torch": torch.__version__, "threads": torch.get_num_threads()}
    write_json(out / "results.json", {**meta, "rows": rows})
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
