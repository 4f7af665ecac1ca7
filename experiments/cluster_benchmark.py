"""``python -m experiments.cluster_benchmark``: the smoke study on a 2-worker Dask cluster against the local pool.

    python -m experiments.cluster_benchmark [--repeats 3] [--train 400]

Runs the comparison's ``smoke`` protocol (every stack and cell, no report) on synthetic MNIST-shaped
digits (``--train`` noisy copies of 10 random prototypes, so that the runs learn), fresh each time:

- in this process (``--workers 1``), and on the local pool (``--workers 2``, 2 spawned processes);
- on a ``dask.distributed.LocalCluster`` of 2 worker processes × 1 thread on 127.0.0.1, started
  once beforehand as a user's running cluster would be (its start is timed apart). The first run
  on it is "cold": the workers import torch and load the data then.

Runs alternate between the pool and the cluster, ``--repeats`` times; the figures are medians and the
ratio is cluster / pool (at most 1.5 is the target). It also times what a pretrained stack costs to
ship to a worker against recomputing it there: the smoke network's stack and the converged
protocol's 784-500-250-100 stack (one pretraining epoch on ``--pretrain-examples`` random
images, scaled linearly to 5 epochs on MNIST's 55,000). Writes ``--table`` (Markdown) and the same
numbers as JSON beside it, with the machine's load average before and after: on a busy machine
the pool and the cluster compete with other jobs for the cores, and the figures say little.
"""

from __future__ import annotations

import io
import os
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from experiments import comparison
from experiments.harness import Pretraining
from experiments.results import machine
from pretrain.checkpoint import atomic_write, check_writable, write_json, write_text
from pretrain.cli import ArgumentParser, positive_int, run_main
from pretrain.greedy import GreedyPretrainer

MNIST_TRAIN = 55_000  # the converged protocol pretrains on MNIST's training split
CONVERGED_EPOCHS = Pretraining().epochs


def write_digits(root: Path, n_train: int, n_test: int = 100, seed: int = 0) -> Path:
    """An MNIST-layout folder of noisy copies of 10 random 28×28 prototypes (learnable, unlike noise)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    protos = rng.random((10, 784))
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = (np.clip(protos[y] + 0.5 * rng.standard_normal((n, 784)), 0, 1) * 255).astype(np.uint8)
        for name, array in ((f"{prefix}-images-idx3-ubyte", x.reshape(n, 28, 28)), (f"{prefix}-labels-idx1-ubyte", y)):
            magic = 0x801 if array.ndim == 1 else 0x803
            content = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
            atomic_write(raw / name, lambda f, content=content: f.write(content))
    return root


def timed_study(p: comparison.Protocol) -> float:
    t0 = time.perf_counter()
    comparison.run_cells(p)
    return time.perf_counter() - t0


def stack_bytes(network, objective: str, x: torch.Tensor, x_val: torch.Tensor) -> tuple[float, bytes]:
    """Seconds of one pretraining epoch (all layers) and the bytes of the stack as the cache stores it."""
    config = Pretraining(epochs=1).config(objective, network, seed=0)
    t0 = time.perf_counter()
    pretrainer = GreedyPretrainer(config).fit(x, x_val)
    seconds = time.perf_counter() - t0
    buffer = io.BytesIO()
    torch.save({"state_dict": pretrainer.state_dict_sequential(), "metadata": {"seconds": seconds}}, buffer)
    return seconds, buffer.getvalue()


def ship_seconds(client, data: bytes, repeats: int = 5) -> float:
    """Median seconds for bytes on the client to reach one worker and then another, less an empty task's."""
    workers = sorted(client.nthreads())

    def once(payload: bytes) -> float:
        t0 = time.perf_counter()
        held = client.submit(bytes, payload, workers=workers[:1], pure=False)
        client.submit(len, held, workers=workers[-1:], pure=False).result()
        return time.perf_counter() - t0

    overhead = statistics.median(once(b"") for _ in range(repeats))
    return max(0.0, statistics.median(once(data) for _ in range(repeats)) - overhead)


def measure(repeats: int, n_train: int, pretrain_examples: int) -> dict:
    from distributed import Client, LocalCluster

    torch.set_num_threads(1)
    out: dict = {"repeats": repeats, "train": n_train, "machine": machine(), "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="cluster-benchmark-") as tmp:
        data = write_digits(Path(tmp) / "digits", n_train)

        def protocol(tag: str, k: int, **settings) -> comparison.Protocol:
            folder = Path(tmp) / f"{tag}-{k}"
            base = comparison.make_protocol("smoke", data_dir=str(data), quiet=True)
            return replace(base, output=str(folder), cache=str(folder / "cache"), **settings)

        t0 = time.perf_counter()
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            out["cluster_start_seconds"] = time.perf_counter() - t0
            runs = {"serial": [], "pool": [], "dask": []}
            for k in range(repeats):
                runs["pool"].append(timed_study(protocol("pool", k, workers=2)))
                runs["dask"].append(timed_study(protocol("dask", k, scheduler=cluster.scheduler_address)))
            runs["serial"].append(timed_study(protocol("serial", 0, workers=1)))
            out["runs"] = runs
            warm = runs["dask"][1:] or runs["dask"]
            out["median_seconds"] = {
                "serial": statistics.median(runs["serial"]),
                "pool": statistics.median(runs["pool"]),
                "dask_cold": runs["dask"][0],
                "dask_warm": statistics.median(warm),
            }
            out["ratio_dask_to_pool"] = {
                "cold": runs["dask"][0] / out["median_seconds"]["pool"],
                "warm": out["median_seconds"]["dask_warm"] / out["median_seconds"]["pool"],
                "all": statistics.median(runs["dask"]) / out["median_seconds"]["pool"],
            }
            with Client(cluster.scheduler_address, set_as_default=False) as client:
                smoke_images = n_train - comparison.make_protocol("smoke").val_size
                out["stacks"] = ship_or_recompute(client, pretrain_examples, smoke_images)
    out["load_average_after"] = os.getloadavg()
    return out


def ship_or_recompute(client, n: int, smoke_images: int) -> dict:
    """Per network: the stack's bytes, the seconds to ship it between workers, the seconds to pretrain it."""
    generator = torch.Generator().manual_seed(0)
    x, x_val = torch.rand(n, 784, generator=generator), torch.rand(max(1, n // 10), 784, generator=generator)
    rows = {}
    for label, network, epochs, scale in (
        (f"smoke 784-32-16 (1 epoch, {smoke_images} images; scaled)", comparison.NETWORKS["tiny"], 1, smoke_images / n),
        (
            f"converged 784-500-250-100 ({CONVERGED_EPOCHS} epochs, 55,000 images; scaled)",
            comparison.NETWORKS["sigmoid"],
            CONVERGED_EPOCHS,
            MNIST_TRAIN / n,
        ),
    ):
        for objective in ("autoencoder", "rbm"):
            epoch, data = stack_bytes(network, objective, x, x_val)
            rows[f"{label}, {objective}"] = {
                "bytes": len(data),
                "ship_seconds": ship_seconds(client, data),
                "pretrain_seconds": epoch * epochs * scale,
            }
    return rows


def markdown(r: dict) -> str:
    s, ratio = r["median_seconds"], r["ratio_dask_to_pool"]
    m = r["machine"]
    lines = [
        f"Smoke study on synthetic digits ({r['train']} training images), {r['repeats']} alternating runs, "
        f"medians; {m['cpus']} CPUs, torch {m['torch']}; load average (1, 5, 15 min) "
        f"{_load(r['load_average_before'])} before, {_load(r['load_average_after'])} after (all jobs on the machine).",
        "",
        "| how | seconds |",
        "|---|---:|",
        f"| in this process (`--workers 1`) | {s['serial']:.1f} |",
        f"| local pool (`--workers 2`) | {s['pool']:.1f} |",
        f"| 2-worker Dask LocalCluster, first run (cold workers) | {s['dask_cold']:.1f} |",
        f"| 2-worker Dask LocalCluster, later runs | {s['dask_warm']:.1f} |",
        f"| starting the LocalCluster (once) | {r['cluster_start_seconds']:.1f} |",
        "",
        f"Dask / local pool: {ratio['warm']:.2f}× (later runs), {ratio['cold']:.2f}× (first run), "
        f"{ratio['all']:.2f}× (median of all).",
        "",
        "| stack | bytes | ship to a worker (s) | pretrain there (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in r["stacks"].items():
        lines.append(f"| {name} | {row['bytes']:,} | {row['ship_seconds']:.3f} | {row['pretrain_seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments.cluster_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=positive_int, default=3, help="runs of each way, alternating")
    p.add_argument("--train", type=positive_int, default=400, help="synthetic training images")
    p.add_argument(
        "--pretrain-examples", type=positive_int, default=2000, help="random images of the pretraining-time probe"
    )
    p.add_argument(
        "--table", default="experiments/results/cluster_benchmark.md", help="Markdown output; .json beside it"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    def go() -> None:
        a = build_parser().parse_args(argv)
        table = Path(a.table)
        check_writable(table)
        r = measure(a.repeats, a.train, a.pretrain_examples)
        write_json(table.with_suffix(".json"), r)
        write_text(table, markdown(r))
        print(markdown(r))
        print(f"wrote {table} and {table.with_suffix('.json')}")

    return run_main("experiments.cluster_benchmark", go)


if __name__ == "__main__":
    sys.exit(main())
