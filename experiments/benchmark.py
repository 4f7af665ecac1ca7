"""``python -m experiments.benchmark``: every training loop against a plain PyTorch loop of the same update.

    python -m experiments.benchmark [--only machine finetune pretrain peers workers depth kernels] [--pairs 5]

Every figure is a ratio measured in the same run, so it compares across machines; the machine's CPU
flags and its fp32 and bf16 matmul peaks (2048², timed between the pairs) are recorded with it.

- ``finetune``: ``pretrain.finetuning.finetune`` against a plain loop (slice the next 128 rows,
  forward, cross-entropy, backward, ``torch.optim.SGD`` step), 1 thread by default, sigmoid
  784-500-250-100-10 and 784-500-500-2000-10, fp32 and bf16 autocast. ``finetune`` is timed with
  the comparison's validation schedule (an evaluation on ``--val`` rows every ``--eval-every`` steps,
  cosine schedule, best weights kept); the plain loop never validates. Timed in alternating pairs of
  windows of ``--eval-every`` steps; the ratio is the median over pairs of plain time / finetune time
  (above 1: ``finetune`` is faster). "Its steps alone" takes out one validation, timed in the same pair.
- ``pretrain``: one epoch of the greedy trainer (``GreedyPretrainer.fit``, its batch loop) against a
  plain loop of the same update, per layer shape: the autoencoder step (tied sigmoid layer,
  cross-entropy, Adam, batch 128), the CD-1 update (Hinton & Salakhutdinov's settings, batch 100)
  and the supervised layer (sigmoid layer and softmax head, Adam, batch 128); plus the trainer in bf16.
- ``peers``: one CD-1 epoch of a 784→500 RBM at batch 100, per example, against scikit-learn's
  ``BernoulliRBM`` (and ClustPy when it is installed).
- ``workers``: two fine-tuning runs as 2 processes × 1 thread against 1 process × 2 threads, for both
  networks: the studies' ``--workers``/``--threads`` rule.
- ``depth``: greedy pretraining time of 1–4 equal layers (it should grow linearly).
- ``kernels`` (run it alone, with its own ``--table``): the products of the hand-written fine-tuning
  chain at batch 128, per layer shape of both networks: ``pretrain.training.linear`` (oneDNN with the
  activation fused, on a CPU) against MKL's ``addmm`` and a separate activation pass, for the
  forward pass and for the input gradient.

Flops counted: 2 per multiply-add of the matrix products only (element-wise work only lowers the
share of peak). A classifier step is 3× its forward flops less the input gradient it does not need;
an autoencoder step or a CD-1 update is 5 products of 2·n_in·n_out per example. Data are random, of
MNIST's shape: speed does not depend on the values. ``--clock cpu`` times the thread's CPU time
instead of wall time (1 thread only), for a machine that other jobs share. Writes ``results.json``
into a new folder under ``--out`` and the Markdown tables to ``--table``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from experiments.common import gemm_peak_gflops, results_dir
from pretrain.checkpoint import atomic_write, check_writable, write_json
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main
from pretrain.data import Dataset, Split
from pretrain.errors import PretrainError
from pretrain.finetuning import FinetuneConfig, evaluate, finetune
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers.rbm import HINTON2006
from pretrain.mlp import build_mlp
from pretrain.training import cpu_flags, linear
from pretrain.version import versions

SECTIONS = ("machine", "finetune", "pretrain", "peers", "workers", "depth", "kernels")
NETWORKS = ([784, 500, 250, 100, 10], [784, 500, 500, 2000, 10])
LAYER_SHAPES = ((784, 500), (500, 250), (250, 100), (500, 2000))
OBJECTIVES = {
    "autoencoder": {"objective": "autoencoder", "batch_size": 128},
    "CD-1": {**HINTON2006, "batch_size": 100},
    "supervised": {"objective": "supervised", "batch_size": 128, "n_classes": 10},
}
BATCH = 128
LR = 0.01


def classifier_flops(sizes: list[int]) -> float:
    """Flops per example of one classifier training step."""
    forward = sum(2 * a * b for a, b in zip(sizes, sizes[1:]))
    return 3 * forward - 2 * sizes[0] * sizes[1]


def layer_flops(objective: str, n_in: int, n_out: int, classes: int = 10) -> float:
    """Flops per example of one pretraining update of an ``n_in→n_out`` layer."""
    if objective == "supervised":
        return 2 * 2 * n_in * n_out + 3 * 2 * n_out * classes
    return 5 * 2 * n_in * n_out


def random_data(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g), torch.randint(0, 10, (n,), generator=g)


def peaks(seconds: float = 0.3) -> dict:
    """fp32 and bf16 ``2048² @ 2048²`` throughput now, in GFLOP/s (short: timed between pairs)."""
    out = {"fp32": gemm_peak_gflops(seconds=seconds)}
    a = torch.randn(2048, 2048).bfloat16()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ a
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t0) / 1e9)
    out["bf16"] = best
    return out


def machine() -> dict:
    """What the figures depend on: CPU, its bf16 flags, threads, versions."""
    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {"cpu": model, "flags": cpu_flags(), "threads": torch.get_num_threads(), "versions": versions()}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


# ------------------------------------------------------------------------------ fine-tuning
def plain_finetune(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, precision: str) -> float:
    """Seconds of ``steps`` steps of the plain loop anyone writes (it never validates)."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    amp = _autocast(precision)
    t0 = time.perf_counter()
    for i in range(steps):
        lo = (i * BATCH) % (x.shape[0] - BATCH + 1)
        with amp:
            loss = F.cross_entropy(model(x[lo : lo + BATCH]), y[lo : lo + BATCH])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def finetune_pairs(
    sizes: list[int], precision: str, pairs: int, eval_every: int, n_val: int, n: int, peak_s: float = 0.3
) -> dict:
    """Plain loop and ``finetune`` in alternating windows of ``eval_every`` steps; per-step times and ratios."""
    x, y = random_data(n, sizes[0])
    xv, yv = random_data(n_val, sizes[0], seed=1)
    data = Dataset("random", Split(x, y), Split(xv, yv), Split(xv[:10], yv[:10]))
    plain_model = build_mlp(sizes[0], sizes[1:-1], sizes[-1], "sigmoid")
    ours_model = build_mlp(sizes[0], sizes[1:-1], sizes[-1], "sigmoid")
    config = FinetuneConfig(
        lr=LR, schedule="cosine", final_lr=0.01, decay_steps=40 * eval_every, max_steps=eval_every,
        eval_every=eval_every, patience=None, batch_size=BATCH, precision=precision,
    )  # fmt: skip
    plain_finetune(plain_model, x, y, 5, precision)  # warm-up
    finetune(ours_model, data, FinetuneConfig(max_steps=5, eval_every=5, precision=precision), score_test=False)
    plain_t, ours_t, ratios, step_ratios, peak = [], [], [], [], []
    for _ in range(pairs):
        peak.append(peaks(peak_s)["fp32"])
        p = plain_finetune(plain_model, x, y, eval_every, precision)
        o = finetune(ours_model, data, config, score_test=False).seconds
        t0 = time.perf_counter()
        with _autocast(precision):  # what one of finetune's validations costs
            evaluate(ours_model, data.val)
        e = time.perf_counter() - t0
        plain_t.append(p / eval_every)
        ours_t.append(o / eval_every)
        ratios.append(p / o)
        step_ratios.append(p / max(o - e, 1e-9))
    flops = classifier_flops(sizes) * BATCH
    fp32_peak = statistics.median(peak)
    plain_s, ours_s = statistics.median(plain_t), statistics.median(ours_t)
    return {
        "network": "-".join(map(str, sizes)),
        "precision": precision,
        "plain_ms": 1e3 * plain_s,
        "finetune_ms": 1e3 * ours_s,
        "speedup": statistics.median(ratios),
        "steps_speedup": statistics.median(step_ratios),
        "plain_of_peak": flops / plain_s / 1e9 / fp32_peak,
        "finetune_of_peak": flops / ours_s / 1e9 / fp32_peak,
        "fp32_peak_gflops": fp32_peak,
        "eval_every": eval_every,
        "n_val": n_val,
    }


# ------------------------------------------------------------------------------ pretraining
def plain_autoencoder_epoch(x: torch.Tensor, n_out: int, batch: int) -> float:
    """A tied sigmoid autoencoder, cross-entropy on the pixels, ``torch.optim.Adam``: the plain way."""
    g = torch.Generator().manual_seed(0)
    w = (0.1 * torch.randn(n_out, x.shape[1], generator=g)).requires_grad_()
    b, c = torch.zeros(n_out, requires_grad=True), torch.zeros(x.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w, b, c], lr=1e-3)
    t0 = time.perf_counter()
    for lo in range(0, x.shape[0], batch):
        v = x[lo : lo + batch]
        h = torch.sigmoid(v @ w.t() + b)
        loss = F.binary_cross_entropy_with_logits(h @ w + c, v, reduction="sum") / v.shape[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def plain_rbm_epoch(x: torch.Tensor, n_out: int, batch: int) -> float:
    """Hinton's ``rbm.m`` CD-1 update written out in torch (momentum 0.5, weight cost 0.0002), with its
    per-batch reconstruction error, which ``rbm.m`` sums for its progress line as the trainer does."""
    g = torch.Generator().manual_seed(0)
    w = 0.1 * torch.randn(x.shape[1], n_out, generator=g)
    hb, vb = torch.zeros(n_out), torch.zeros(x.shape[1])
    wi, hi, vi = torch.zeros_like(w), torch.zeros_like(hb), torch.zeros_like(vb)
    lr, wc, m = 0.1, 0.0002, 0.5
    err = torch.zeros(())
    t0 = time.perf_counter()
    for lo in range(0, x.shape[0], batch):
        v = x[lo : lo + batch]
        ph = torch.sigmoid(v @ w + hb)
        h = (torch.rand(ph.shape, generator=g) < ph).float()
        nv = torch.sigmoid(h @ w.t() + vb)
        nh = torch.sigmoid(nv @ w + hb)
        wi = m * wi + lr * ((v.t() @ ph - nv.t() @ nh) / v.shape[0] - wc * w)
        hi = m * hi + lr * (ph - nh).mean(0)
        vi = m * vi + lr * (v - nv).mean(0)
        w, hb, vb = w + wi, hb + hi, vb + vi
        err = err + ((v - nv) ** 2).sum()
    return time.perf_counter() - t0


def plain_supervised_epoch(x: torch.Tensor, y: torch.Tensor, n_out: int, batch: int) -> float:
    """A sigmoid layer and a softmax head, cross-entropy, ``torch.optim.Adam``."""
    torch.manual_seed(0)
    encoder, head = torch.nn.Linear(x.shape[1], n_out), torch.nn.Linear(n_out, 10)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
    t0 = time.perf_counter()
    for lo in range(0, x.shape[0], batch):
        loss = F.cross_entropy(head(torch.sigmoid(encoder(x[lo : lo + batch]))), y[lo : lo + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def plain_epoch(objective: str, x: torch.Tensor, y: torch.Tensor, n_out: int) -> float:
    batch = OBJECTIVES[objective]["batch_size"]
    if objective == "autoencoder":
        return plain_autoencoder_epoch(x, n_out, batch)
    if objective == "CD-1":
        return plain_rbm_epoch(x, n_out, batch)
    return plain_supervised_epoch(x, y, n_out, batch)


def trainer_epoch(objective: str, x: torch.Tensor, y: torch.Tensor, n_out: int, precision: str = "fp32") -> float:
    """Seconds of one epoch of the greedy trainer's batch loop (validation and diagnostics excluded)."""
    cfg = GreedyConfig.from_flat({**OBJECTIVES[objective], "layers": [n_out], "epochs": 1, "precision": precision})
    return GreedyPretrainer(cfg).fit(x, y=y).history_[0].seconds


def pretrain_pairs(objective: str, n_in: int, n_out: int, pairs: int, n: int, peak_s: float = 0.3) -> dict:
    x, y = random_data(n, n_in)
    plain_epoch(objective, x[:512], y[:512], n_out)  # warm-up
    trainer_epoch(objective, x[:512], y[:512], n_out)
    plain_t, ours_t, bf16_t, ratios, peak = [], [], [], [], []
    for _ in range(pairs):
        peak.append(peaks(peak_s)["fp32"])
        p = plain_epoch(objective, x, y, n_out)
        o = trainer_epoch(objective, x, y, n_out)
        plain_t.append(p)
        ours_t.append(o)
        ratios.append(p / o)
        bf16_t.append(trainer_epoch(objective, x, y, n_out, "bf16"))
    flops = layer_flops(objective, n_in, n_out) * n
    fp32_peak = statistics.median(peak)
    plain_s, ours_s = statistics.median(plain_t), statistics.median(ours_t)
    return {
        "objective": objective,
        "layer": f"{n_in}→{n_out}",
        "batch": OBJECTIVES[objective]["batch_size"],
        "plain_s": plain_s,
        "trainer_s": ours_s,
        "speedup": statistics.median(ratios),
        "plain_of_peak": flops / plain_s / 1e9 / fp32_peak,
        "trainer_of_peak": flops / ours_s / 1e9 / fp32_peak,
        "bf16_speedup": ours_s / statistics.median(bf16_t),
        "fp32_peak_gflops": fp32_peak,
    }


# ------------------------------------------------------------------------------------ peers
def peer_rbms(n: int, repeats: int) -> list[dict]:
    """Microseconds per example of one CD-1 epoch, 784→500, batch 100: ours and the peers available."""
    x, _ = random_data(n, 784)
    rows = [{"implementation": "pretrain (GreedyPretrainer, rbm)", "us_per_example": None}]
    trainer_epoch("CD-1", x[:512], None, 500)
    rows[0]["us_per_example"] = 1e6 * min(trainer_epoch("CD-1", x, None, 500) for _ in range(repeats)) / n
    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    xn = x.numpy().astype(np.float64)
    with threadpool_limits(torch.get_num_threads()):
        best = float("inf")
        for seed in range(repeats):
            rbm = BernoulliRBM(n_components=500, learning_rate=0.1, batch_size=100, n_iter=1, random_state=seed)
            t0 = time.perf_counter()
            rbm.fit(xn)
            best = min(best, time.perf_counter() - t0)
    rows.append({"implementation": "scikit-learn BernoulliRBM (float64)", "us_per_example": 1e6 * best / n})
    if importlib.util.find_spec("clustpy") is None:
        rows.append({"implementation": "ClustPy", "us_per_example": None, "note": "not installed"})
    ours = rows[0]["us_per_example"]
    for row in rows:
        row["vs_pretrain"] = None if row["us_per_example"] is None else row["us_per_example"] / ours
    return rows


# ---------------------------------------------------------------------------------- workers
def worker_job(
    sizes: list[int], runs: int, threads: int, steps: int, eval_every: int, n_val: int, barrier=None
) -> tuple:
    """``runs`` fine-tuning runs one after the other with ``threads`` threads, started together with the
    other workers at ``barrier``; ``(start, end)`` on the system-wide monotonic clock."""
    torch.set_num_threads(threads)
    x, y = random_data(4096, sizes[0])
    xv, yv = random_data(n_val, sizes[0], seed=1)
    data = Dataset("random", Split(x, y), Split(xv, yv), Split(xv[:10], yv[:10]))
    config = FinetuneConfig(lr=LR, schedule="cosine", max_steps=steps, eval_every=eval_every, patience=None)
    finetune(build_mlp(sizes[0], sizes[1:-1], sizes[-1], "sigmoid"), data, FinetuneConfig(max_steps=3))  # warm-up
    if barrier is not None:
        barrier.wait()
    t0 = time.monotonic()
    for _ in range(runs):
        finetune(build_mlp(sizes[0], sizes[1:-1], sizes[-1], "sigmoid"), data, config, score_test=False)
    return t0, time.monotonic()


def worker_layouts(sizes: list[int], steps: int, eval_every: int, n_val: int) -> list[dict]:
    """Two runs as 2 processes × 1 thread, then as 1 process × 2 threads (one run after the other)."""
    rows, context = [], get_context("spawn")
    for processes, threads in ((2, 1), (1, 2)):
        with context.Manager() as manager, ProcessPoolExecutor(processes, mp_context=context) as pool:
            args = (sizes, 2 // processes, threads, steps, eval_every, n_val, manager.Barrier(processes))
            spans = [f.result() for f in [pool.submit(worker_job, *args) for _ in range(processes)]]
        wall = max(end for _, end in spans) - min(start for start, _ in spans)
        rows.append(
            {
                "network": "-".join(map(str, sizes)),
                "layout": f"{processes}×{threads}",
                "steps_per_s": 2 * steps / wall,
            }
        )
    rows[0]["vs_other"] = rows[0]["steps_per_s"] / rows[1]["steps_per_s"]
    rows[1]["vs_other"] = 1 / rows[0]["vs_other"]
    return rows


# ------------------------------------------------------------------------------------ depth
def depth_times(n: int, width: int = 256) -> list[dict]:
    x, _ = random_data(n, width)
    GreedyPretrainer(GreedyConfig(layers=[width], epochs=1)).fit(x[:1024])  # warm-up
    rows = []
    for depth in (1, 2, 3, 4):
        t0 = time.perf_counter()
        GreedyPretrainer(GreedyConfig(layers=[width] * depth, epochs=1)).fit(x)
        rows.append({"depth": depth, "seconds": time.perf_counter() - t0})
    return rows


# ---------------------------------------------------------------------------------- kernels
# the chain's two kinds of product, as (MKL addmm and a separate activation, pretrain.training.linear)
KERNELS = {
    "forward, sigmoid": (
        lambda x, w, b: torch.addmm(b, x, w.t()).sigmoid_(),
        lambda x, w, b: linear(x, w, b, nn.Sigmoid),
    ),
    "input gradient": (lambda dz, w, b: torch.mm(dz, w), lambda dz, w, b: linear(dz, w.t(), None, None)),
}


def kernel_rows(pairs: int, calls: int = 50) -> list[dict]:
    """Milliseconds per call of the chain's products at batch 128, ``addmm`` against ``linear``; median of pairs."""
    shapes = sorted({(a, b) for sizes in NETWORKS for a, b in zip(sizes, sizes[1:])}, reverse=True)
    rows = []
    for n_in, n_out in shapes:
        g = torch.Generator().manual_seed(0)
        w, b = 0.05 * torch.randn(n_out, n_in, generator=g), torch.zeros(n_out)
        inputs = {
            "forward, sigmoid": torch.rand(BATCH, n_in, generator=g),
            "input gradient": torch.randn(BATCH, n_out, generator=g),
        }
        for what, fns in KERNELS.items():
            times: list[list[float]] = [[], []]
            for _ in range(pairs + 1):  # the first pair warms up
                for k, fn in enumerate(fns):
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        fn(inputs[what], w, b)
                    times[k].append((time.perf_counter() - t0) / calls)
            addmm_ms, linear_ms = (1e3 * statistics.median(t[1:]) for t in times)
            rows.append({"layer": f"{n_in}→{n_out}", "product": what, "addmm_ms": addmm_ms, "linear_ms": linear_ms})
    return rows


# ----------------------------------------------------------------------------------- report
def _na(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def tables(r: dict) -> str:
    m = r["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items())
    lines = [
        f"Machine: {m['cpu']}; {flags}; {m['threads']} thread(s); clock: {r['clock']}.",
        f"Matmul peak (2048²): fp32 **{r['peaks']['fp32']:.0f} GFLOP/s**, bf16 **{r['peaks']['bf16']:.0f} GFLOP/s**.",
    ]
    if "finetune" in r:
        e = r["finetune"][0]
        lines += [
            "",
            f"Fine-tuning, batch {BATCH}, sigmoid; `finetune` validates on {e['n_val']:,} rows every "
            f"{e['eval_every']} steps, the plain loop never:",
            "",
            "| network | precision | plain loop ms/step | `finetune` ms/step | `finetune` vs plain "
            "| its steps alone vs plain | plain of fp32 peak | `finetune` of fp32 peak |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {x['network']} | {x['precision']} | {x['plain_ms']:.2f} | {x['finetune_ms']:.2f} "
            f"| {x['speedup']:.2f}× | {x['steps_speedup']:.2f}× | {x['plain_of_peak']:.0%} "
            f"| {x['finetune_of_peak']:.0%} |"
            for x in r["finetune"]
        ]
    if "pretrain" in r:
        lines += [
            "",
            f"Pretraining, one epoch of {r['n']:,} rows:",
            "",
            "| update | layer | batch | plain loop s | trainer s | trainer vs plain | plain of peak "
            "| trainer of peak | bf16 trainer vs fp32 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {x['objective']} | {x['layer']} | {x['batch']} | {x['plain_s']:.3f} | {x['trainer_s']:.3f} "
            f"| {x['speedup']:.2f}× | {x['plain_of_peak']:.0%} | {x['trainer_of_peak']:.0%} "
            f"| {x['bf16_speedup']:.2f}× |"
            for x in r["pretrain"]
        ]
    if "peers" in r:
        lines += ["", "CD-1, 784→500, batch 100, one epoch:", "", "| implementation | µs per example | × pretrain |"]
        lines += ["|---|---:|---:|"]
        lines += [
            f"| {x['implementation']} | {_na(x['us_per_example'], '.1f')} | {_na(x['vs_pretrain'], '.2f')}"
            + (f" ({x['note']})" if x.get("note") else "")
            + " |"
            for x in r["peers"]
        ]
    if "workers" in r:
        lines += ["", "Two fine-tuning runs at once:", "", "| network | processes × threads | steps/s | vs other |"]
        lines += ["|---|---|---:|---:|"]
        lines += [
            f"| {x['network']} | {x['layout']} | {x['steps_per_s']:.1f} | {x['vs_other']:.2f}× |" for x in r["workers"]
        ]
    if "depth" in r:
        base = r["depth"][0]["seconds"]
        lines += ["", "| depth (256-wide layers) | seconds | × depth 1 |", "|---:|---:|---:|"]
        lines += [f"| {x['depth']} | {x['seconds']:.2f} | {x['seconds'] / base:.2f}× |" for x in r["depth"]]
    if "kernels" in r:
        lines += ["", f"The fine-tuning chain's products, batch {BATCH}, ms per call:", ""]
        lines += ["| layer | product | MKL `addmm` (+ activation) | `linear` | `linear` vs `addmm` |"]
        lines += ["|---|---|---:|---:|---:|"]
        lines += [
            f"| {x['layer']} | {x['product']} | {x['addmm_ms']:.3f} | {x['linear_ms']:.3f} "
            f"| {x['addmm_ms'] / x['linear_ms']:.2f}× |"
            for x in r["kernels"]
        ]
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split("-")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise PretrainError(f"a network is layer sizes joined by '-', e.g. 784-500-10; got {text!r}")
    return sizes


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments.benchmark", description=__doc__.splitlines()[0])
    p.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=[x for x in SECTIONS if x != "kernels"],
        help="sections to run (kernels only when named: its table goes to experiments/results/kernels.md)",
    )
    p.add_argument("--pairs", type=positive_int, default=5, help="timed pairs (plain, ours) per row; medians")
    p.add_argument("--n", type=positive_int, default=16384, help="rows of random data per epoch")
    p.add_argument(
        "--networks",
        type=_sizes,
        nargs="+",
        default=list(NETWORKS),
        metavar="SIZES",
        help="finetune and workers: networks as 784-500-250-100-10 (default: that one and 784-500-500-2000-10)",
    )
    p.add_argument("--peak-seconds", type=positive_float, default=0.3, help="timing of each matmul peak measurement")
    p.add_argument("--eval-every", type=positive_int, default=161, help="finetune: steps between evaluations")
    p.add_argument("--val", type=positive_int, default=5000, help="finetune: validation rows")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (the workers section sets its own)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall time, or this thread's CPU time")
    p.add_argument("--out", default="results", help="root folder for the new results folder")
    p.add_argument("--table", default="experiments/results/benchmark.md", help="Markdown tables written here")
    return p


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    r = {"clock": a.clock, "n": a.n, "machine": machine(), "peaks": peaks(a.peak_seconds)}
    if "finetune" in a.only:
        r["finetune"] = [
            finetune_pairs(sizes, precision, a.pairs, a.eval_every, a.val, a.n, a.peak_seconds)
            for sizes in a.networks
            for precision in ("fp32", "bf16")
        ]
    if "pretrain" in a.only:
        r["pretrain"] = [
            pretrain_pairs(o, *shape, a.pairs, a.n, a.peak_seconds) for o in OBJECTIVES for shape in LAYER_SHAPES
        ]
    if "peers" in a.only:
        r["peers"] = peer_rbms(a.n, min(a.pairs, 3))
    if "workers" in a.only:
        r["workers"] = [row for s in a.networks for row in worker_layouts(s, 2 * a.eval_every, a.eval_every, a.val)]
    if "depth" in a.only:
        r["depth"] = depth_times(a.n)
    if "kernels" in a.only:
        r["kernels"] = kernel_rows(a.pairs)
    return r


def main(argv: list[str] | None = None) -> int:
    def go() -> int:
        a = build_parser().parse_args(argv)
        if a.clock == "cpu" and a.threads != 1:
            raise PretrainError("--clock cpu times one thread; use it with --threads 1")
        check_writable(a.table)
        folder = results_dir(a.out, "benchmark")
        clock = mock.patch("time.perf_counter", time.thread_time) if a.clock == "cpu" else contextlib.nullcontext()
        with clock:
            r = run(a)
        text = tables(r)
        print(text, end="")
        write_json(folder / "results.json", r)
        atomic_write(a.table, lambda f: f.write(text.encode()))
        print(f"wrote {folder / 'results.json'} and {a.table}")
        return 0

    return run_main("experiments.benchmark", go)


if __name__ == "__main__":
    sys.exit(main())
