"""``python -m experiments.depth_study``: at which depth does a pretrained start still beat Xavier and He?

Bengio et al. (NIPS 2007) and Erhan et al. (JMLR 2010) found that pretraining helps more as networks
get deeper, and that it acts as a regulariser (higher training error, lower test error). This study
measures that on MNIST with this project's converged protocol: hidden depth 1 to 5 (``--depths``) at
width 500 (``--width``), sigmoid (``--activation tanh`` for tanh), with arms

- an unsupervised pretrained start (``--unsupervised``: ``denoising`` by default, or ``rbm``),
- the supervised greedy start (each layer trained through a temporary softmax head on the labels of
  the run, then the head thrown away; Bengio et al. 2007's "supervised greedy" arm),
- xavier-uniform and he-normal (``--torch-default`` adds torch-default),

at 1,000 and all labels, over 3 paired seeds, at the base budget B; with all labels a budget check at
4B (``--check-budget``) at depths 1, 3 and 5 (``--check-depths``) for the best pretrained arm and the
better of Xavier and He. Tuning, failures, statistics, verdicts and cells are the comparison's
(``experiments.harness``, ``experiments.comparison``, rules in ``docs/comparison.md``). Cells go to
``<output>/depth-<activation>/cells``; a run continues from the cells it finds.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, replace

from experiments.comparison import (
    Protocol,
    best_arm,
    estimate,
    make_protocol,
    print_estimate,
    run_cells,
    summarize,
)
from experiments.figures import error_vs_depth, train_vs_test
from experiments.harness import BASELINES, STACK_ARMS, Harness
from experiments.results import all_cells, machine
from experiments.stats import paired_difference
from experiments.tables import ARM_HEADER, arm_row, notes
from pretrain.checkpoint import write_json, write_text
from pretrain.cli import ArgumentParser, positive_int, run_main
from pretrain.data import load_dataset
from pretrain.errors import PretrainError
from pretrain.training import PRECISIONS

ARMS = ("supervised", "xavier-uniform", "he-normal")
UNSUPERVISED = ("denoising", "rbm", "autoencoder")
# What the 2007 and 2010 papers report could not be retrieved from a copy of their tables here.
LITERATURE = (
    "Bengio, Lamblin, Popovici & Larochelle (NIPS 2007) compare RBM, autoencoder, supervised greedy and no "
    "pretraining on MNIST, and Erhan et al. (JMLR 2010) plot MNIST test error against depth 1–5 with and "
    "without pretraining. Their tables and figures could not be retrieved here, so none of their numbers are "
    "quoted beside ours."
)


def network_name(activation: str, width: int, depth: int) -> str:
    return "-".join([activation, *[str(width)] * depth])


def protocol(
    depths: list[int],
    width: int = 500,
    activation: str = "sigmoid",
    unsupervised: str = "denoising",
    smoke: bool = False,
    torch_default: bool = False,
    check_budget: float = 4.0,
    check_depths: tuple[int, ...] = (1, 3, 5),
    **overrides,
) -> Protocol:
    """The study's protocol: the converged (or, with ``smoke``, the smoke) protocol's training, tuning and
    statistics on ``depths`` networks of ``width`` units, 1,000 and all labels, 3 seeds, at B; all labels
    also at ``check_budget`` × B on ``check_depths`` for the best pretrained arm and the better baseline."""
    if unsupervised == "rbm" and activation != "sigmoid":
        raise PretrainError("the rbm arm needs sigmoid hidden units (Bernoulli); use --unsupervised denoising")
    if check_budget < 1:
        raise PretrainError(f"--check-budget must be at least 1 (the base budget), got {check_budget}")
    base = make_protocol("smoke" if smoke else "converged", **overrides)
    arms = [unsupervised, *ARMS, *(["torch-default"] if torch_default else [])]
    settings = {"arms": arms, "seeds": 3, "labels": [1000, None]}
    settings.update({k: v for k, v in overrides.items() if k in settings and v is not None})
    if smoke and overrides.get("labels") is None:
        settings["labels"] = base.labels
    return replace(
        base,
        study="depth",
        name=activation + ("-smoke" if smoke else ""),
        networks=[network_name(activation, width, d) for d in depths],
        budgets=[1.0, check_budget],
        budgets_few=[1.0],
        budget_arms=["best-pretrained", "best-baseline"],
        budget_networks=[network_name(activation, width, d) for d in depths if d in check_depths],
        extend_budget=None,
        **settings,
    )


def depth_summary(p: Protocol, harness: Harness, cells: list[dict]) -> dict:
    """Per label count and depth, every arm's statistics at B (from ``comparison.summarize``, so from the
    cells alone), the best pretrained arm against the better of Xavier and He paired by seed, and the
    budget check: the same at every larger budget run, with the comparison's verdicts across budgets."""
    base = summarize(p, harness, cells)
    out = {
        "labels": {},
        "family": base["family"],
        "seeds": base["seeds"],
        "tuning_seeds": base["tuning_seeds"],
        "unused_cells": base["unused_cells"],
        "torch_versions": base["torch_versions"],
    }
    for net in p.networks:
        depth = len(base["networks"][net]["sizes"]) - 2
        for key, block in base["networks"][net]["labels"].items():
            if "1" not in block["budgets"]:
                continue
            arms = block["budgets"]["1"]["arms"]
            row = {"network": net, "title": base["networks"][net]["title"], "arms": arms, "n_labels": block["n_labels"]}
            row["best_pretrained_vs_best_baseline"] = best_against_baselines(arms, len(base["seeds"]))
            row["check"] = {
                budget: {
                    "arms": at["arms"],
                    "best_pretrained_vs_best_baseline": best_against_baselines(at["arms"], len(base["seeds"])),
                }
                for budget, at in block["budgets"].items()
                if budget != "1"
            }
            row["verdicts"] = block["verdicts"] if row["check"] else []
            out["labels"].setdefault(key, {})[str(depth)] = row
    return out


def best_against_baselines(arms: dict, seeds: int) -> dict | None:
    """Test error of the best pretrained arm minus that of the better baseline, per seed (over the seeds
    both trained); "best" and "better" by mean validation error, so the test set picks nothing."""
    pre, base = best_arm(arms, STACK_ARMS), best_arm(arms, BASELINES)
    if pre is None or base is None:
        return None
    per_seed = [[arms[a]["test_error_per_seed"].get(str(s)) for s in range(seeds)] for a in (pre, base)]
    return {"pretrained": pre, "baseline": base, **paired_difference(*per_seed)}


def _best_row(depth: str, budget: str, d: dict | None) -> str | None:
    if d is None or not d["n"]:
        return None
    interval = f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" if d["n"] > 1 else ""
    return f"| {depth} | {budget}B | {d['pretrained']} | {d['baseline']} | {d['mean']:+.2f}{interval} | {d['n']} |"


def markdown(summary: dict) -> str:
    """Per label count: a row per depth and arm at B; the best pretrained arm against the better baseline at
    B and at every budget of the check; the verdicts across budgets."""
    p = summary["protocol"]
    lines = (
        [f"**Budget-limited ({p['name']}): tiny runs for tests, not a verdict.**", ""] if p["budget_limited"] else []
    )
    for key, by_depth in summary["labels"].items():
        depths = sorted(by_depth, key=int)
        lines += [
            f"**{key} labels, budget 1B** ({p['networks'][0].split('-')[0]}, width {summary['width']}, up to "
            f"{len(summary['seeds'])} paired seeds)",
            "",
            "| depth " + ARM_HEADER[0],
            "|---:" + ARM_HEADER[1],
        ]
        for depth in depths:
            arms = by_depth[depth]["arms"]
            for arm in sorted(arms, key=lambda a: arms[a]["test_error_ci"]["mean"] if arms[a]["n"] else math.inf):
                lines.append(f"| {depth} " + arm_row(arm, arms[arm]))
        lines += [
            "",
            "| depth | budget | best pretrained | better of Xavier/He | Δ test error [95% CI] | n |",
            "|---:|---:|---|---|---:|---:|",
        ]
        for depth in depths:
            rows = [("1", by_depth[depth]["best_pretrained_vs_best_baseline"])]
            rows += [(b, c["best_pretrained_vs_best_baseline"]) for b, c in by_depth[depth]["check"].items()]
            lines += [r for b, d in rows if (r := _best_row(depth, b, d)) is not None]
        checked = [d for d in depths if by_depth[d]["check"]]
        if checked:
            lines += ["", f"**{key} labels: budget check**", "", "| depth " + ARM_HEADER[0], "|---:" + ARM_HEADER[1]]
            for depth in checked:
                for budget, c in by_depth[depth]["check"].items():
                    lines += [f"| {depth} " + arm_row(f"{arm} ({budget}B)", e) for arm, e in c["arms"].items()]
            lines += ["", "| depth | pretrained | baseline | Δ per budget (n) | verdict |", "|---:|---|---|---|---|"]
            for depth in checked:
                for v in by_depth[depth]["verdicts"]:
                    per = ", ".join(f"{b}B {m:+.2f} ({n})" for b, m, n in zip(v["budgets"], v["means"], v["n"]))
                    lines.append(f"| {depth} | {v['arm']} | {v['baseline']} | {per} | {v['verdict']} |")
        lines.append("")
    lines += [
        "Train error: at the restored best-validation checkpoint; pretraining acting as a regulariser shows as a "
        "higher train error with a lower test error. The best-pretrained rows pick both sides by their mean test "
        "error, so their intervals are descriptive, not a test.",
        *notes(summary),
        LITERATURE,
    ]
    if summary.get("seconds"):
        lines.append(f"Wall time of this invocation: {summary['seconds'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def report(p: Protocol, harness: Harness, width: int, seconds: float | None = None) -> dict:
    """Summarize the folder's cells; write ``summary.json``, ``table.md`` and the two figures per label count."""
    summary = {
        "protocol": asdict(p),
        "width": width,
        **depth_summary(p, harness, all_cells(p.folder)),
        "machine": machine(),
        "seconds": seconds,
    }
    write_json(p.folder / "summary.json", summary)
    write_text(p.folder / "table.md", markdown(summary))
    for key, by_depth in summary["labels"].items():
        title = f"{p.networks[0].split('-')[0]}, width {width}, {key} labels"
        error_vs_depth(by_depth, p.arms, title, p.folder / f"error_vs_depth-{key}.png")
        train_vs_test(by_depth, p.arms, title, p.folder / f"train_vs_test-{key}.png")
    return summary


def label_count(text: str) -> int | None:
    """``all`` (None) or a positive count, for ``--labels``."""
    return None if text == "all" else positive_int(text)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments.depth_study", description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=positive_int, nargs="+", default=[1, 2, 3, 4, 5], help="hidden depths")
    p.add_argument("--width", type=positive_int, default=500, help="units per hidden layer")
    p.add_argument("--activation", choices=["sigmoid", "tanh"], default="sigmoid", help="hidden activation")
    p.add_argument(
        "--unsupervised",
        choices=UNSUPERVISED,
        default="denoising",
        help="the unsupervised pretrained arm (rbm: sigmoid only)",
    )
    p.add_argument("--torch-default", action="store_true", help="add the torch-default arm")
    p.add_argument("--check-budget", type=float, default=4.0, help="the budget check's budget (× B), all labels")
    p.add_argument("--check-depths", type=positive_int, nargs="+", default=[1, 3, 5], help="depths of the budget check")
    p.add_argument("--seeds", type=positive_int, default=3, help="reported paired seeds 0..N-1")
    p.add_argument(
        "--labels",
        type=label_count,
        nargs="+",
        default=None,
        help="labelled training examples per run: counts and/or 'all' (default: 1000 all)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=None, help="processes running cells side by side (one per CPU core)"
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fine-tuning and pretraining: fp32, or bf16 autocast with fp32 weights",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the cells on the Dask cluster of this scheduler (e.g. tcp://host:8786) instead of --workers "
        "local processes; needs the [dask] extra",
    )
    p.add_argument("--data-dir", default="data", help="where MNIST is cached")
    p.add_argument("--output", default="experiments/results", help="root of the results folder")
    p.add_argument("--cache", default="checkpoints", help="folder for pretrained stacks (reused across runs)")
    p.add_argument("--smoke", action="store_true", help="the tiny smoke protocol's budget (for tests)")
    p.add_argument("--report", action="store_true", help="only rebuild the tables and figures from the cells")
    p.add_argument("--estimate", action="store_true", help="probe this machine, print the predicted wall time, stop")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    return p


def main(argv: list[str] | None = None) -> int:
    def go() -> int:
        a = build_parser().parse_args(argv)
        p = protocol(
            a.depths,
            a.width,
            a.activation,
            a.unsupervised,
            a.smoke,
            a.torch_default,
            a.check_budget,
            tuple(a.check_depths),
            seeds=a.seeds,
            labels=a.labels,
            workers=a.workers,
            precision=a.precision,
            scheduler=a.scheduler,
            data_dir=a.data_dir,
            output=a.output,
            cache=a.cache or None,
            quiet=a.quiet,
        )
        started = time.perf_counter()
        if a.estimate:
            print_estimate(p, estimate(p))
            return 0
        if a.report:
            harness = Harness(load_dataset(p.data, p.data_dir, p.val_size), p.folder, p.training, p.pretraining)
            summary = report(p, harness, a.width)
        else:
            harness = run_cells(p)
            summary = report(p, harness, a.width, time.perf_counter() - started)
        if not a.quiet:
            print(markdown(summary))
        print(f"wrote {p.folder}/summary.json, table.md and figures")
        return 0

    return run_main("experiments.depth_study", go)


if __name__ == "__main__":
    sys.exit(main())
