"""``python -m experiments.precision``: does bf16 autocast change the comparison's numbers beyond seed noise?

The comparison's headline cells (the sigmoid 784-500-250-100-10; arms rbm, he-normal and
xavier-uniform; 1,000 and all labels) run through the comparison's own harness at fixed rates,
once in fp32 and once in bf16 (fine-tuning, and the RBM's pretraining), on the same paired
seeds. For each (labels, arm) the table gives both means, the paired bf16 − fp32 difference with
its 95% interval, and the seed-to-seed standard deviation it is judged against: bf16 is "within
seed noise" when the interval holds 0 and the mean difference is smaller than that deviation.
Cells are kept under ``<output>/precision/cells``, so an interrupted run continues.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from experiments.comparison import NETWORKS
from experiments.harness import Harness, Pretraining, Training
from experiments.results import all_cells, label_key, machine
from experiments.stats import mean_std, paired_difference
from pretrain.checkpoint import check_writable, write_json, write_text
from pretrain.cli import ArgumentParser, positive_int, run_main
from pretrain.data import load_dataset
from pretrain.training import cpu_flags

PRECISIONS = ("fp32", "bf16")
# the rates the converged comparison chose for these cells (its tables), one step below a
# collapsing choice for he-normal with 1,000 labels
RATES = {
    ("1000", "rbm"): 1.0,
    ("1000", "he-normal"): 0.3,
    ("1000", "xavier-uniform"): 0.3,
    ("all", "rbm"): 1.0,
    ("all", "he-normal"): 0.3,
    ("all", "xavier-uniform"): 0.3,
}


def harnesses(dataset, folder: Path, cache: Path | None) -> dict[str, Harness]:
    """One harness per precision over the same data, folder and stack cache."""
    return {
        p: Harness(dataset, folder, replace(Training(), precision=p), replace(Pretraining(), precision=p), cache)
        for p in PRECISIONS
    }


def run_cells(hs: dict[str, Harness], seeds: int, quiet: bool) -> None:
    """Every (labels, arm, seed, precision) cell; cells already in the folder are read back."""
    network = NETWORKS["sigmoid"]
    jobs = [(lk, arm, s, p) for (lk, arm) in RATES for s in range(seeds) for p in PRECISIONS]
    for lk, arm, seed, precision in tqdm(jobs, disable=quiet, desc="precision", unit="cell", dynamic_ncols=True):
        labels = None if lk == "all" else int(lk)
        hs[precision].cell(network, arm, labels, seed, RATES[(lk, arm)])


def summarize(cells: list[dict], seeds: int) -> dict:
    """Per (labels, arm): each precision's test errors, the paired difference and the verdict."""
    rows = []
    for lk, arm in RATES:
        errors: dict[str, dict[int, float]] = {p: {} for p in PRECISIONS}
        seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for c in cells:
            key = c["key"]
            if label_key(key["labels"]) != lk or key["arm"] != arm or key["seed"] >= seeds:
                continue
            precision = key["finetune"].get("precision", "fp32")
            if c.get("trained") and "test_error" in c:
                errors[precision][key["seed"]] = c["test_error"]
                seconds[precision].append(c["finetune_seconds"])
        paired = sorted(set(errors["fp32"]) & set(errors["bf16"]))
        if not paired:
            continue
        fp32, bf16 = [errors["fp32"][s] for s in paired], [errors["bf16"][s] for s in paired]
        diff = paired_difference(bf16, fp32)
        noise = mean_std(fp32)[1]
        within = diff["ci_low"] <= 0 <= diff["ci_high"] and abs(diff["mean"]) < noise
        rows.append(
            {
                "labels": lk,
                "arm": arm,
                "lr": RATES[(lk, arm)],
                "n": len(paired),
                "fp32": mean_std(fp32),
                "bf16": mean_std(bf16),
                "diff": diff,
                "seed_sd": noise,
                "within_seed_noise": within,
                "finetune_seconds": {p: mean_std(v)[0] for p, v in seconds.items() if v},
            }
        )
    return {"rows": rows, "all_within_seed_noise": bool(rows) and all(r["within_seed_noise"] for r in rows)}


def markdown(summary: dict) -> str:
    lines = [
        "**bf16 against fp32 on the comparison's headline cells** (sigmoid 784-500-250-100-10, fixed rates, "
        "paired seeds; test error %)",
        "",
        "| labels | arm | lr | n | fp32 mean ± sd | bf16 mean ± sd | bf16 − fp32 [95% CI] | seed sd | verdict |"
        " fine-tune s fp32 / bf16 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in summary["rows"]:
        d, s = r["diff"], r["finetune_seconds"]
        lines.append(
            f"| {r['labels']} | {r['arm']} | {r['lr']:g} | {r['n']} | {r['fp32'][0]:.2f} ± {r['fp32'][1]:.2f} "
            f"| {r['bf16'][0]:.2f} ± {r['bf16'][1]:.2f} | {d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] "
            f"| {r['seed_sd']:.2f} | {'within seed noise' if r['within_seed_noise'] else 'differs'} "
            f"| {s.get('fp32', float('nan')):.1f} / {s.get('bf16', float('nan')):.1f} |"
        )
    verdict = "every cell within seed noise" if summary["all_within_seed_noise"] else "not every cell within noise"
    m = summary["machine"]
    flags = ", ".join(f for f, on in m["cpu_flags"].items() if on) or "none"
    lines += [
        "",
        f"Verdict: {verdict}. Machine: {m['processor']}, {m['cpus']} CPUs, torch {m['torch']}, bf16 CPU flags: "
        f"{flags}; wall time {summary['seconds'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments.precision", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=positive_int, default=5, help="paired seeds 0..N-1 per cell (5)")
    p.add_argument("--data-dir", default="data", help="where MNIST is read or written (data)")
    p.add_argument("--output", default="experiments/results", help="results root; cells go to OUTPUT/precision")
    p.add_argument("--cache", default="checkpoints", help="pretrained stacks are cached here (checkpoints)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    def go() -> int:
        a = build_parser().parse_args(argv)
        folder = Path(a.output) / "precision"
        check_writable(folder / "summary.json")
        torch.set_num_threads(a.threads)
        started = time.perf_counter()
        dataset = load_dataset("mnist", a.data_dir, 5000)
        hs = harnesses(dataset, folder, Path(a.cache) if a.cache else None)
        run_cells(hs, a.seeds, a.quiet)
        summary = summarize(all_cells(folder), a.seeds)
        summary.update(seconds=time.perf_counter() - started, machine={**machine(), "cpu_flags": cpu_flags()})
        write_json(folder / "summary.json", summary)
        write_text(folder / "table.md", markdown(summary))
        print(markdown(summary))
        return 0

    return run_main("experiments.precision", go)


if __name__ == "__main__":
    raise SystemExit(main())
