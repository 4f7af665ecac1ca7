"""The studies' PNGs, drawn from a summary and the cells it was computed from (never from a driver).

``error_vs_labels``: test error against the number of labels, 95% t intervals over seeds.
``validation_curves``: validation error against optimizer steps, one line per reported seed.
``error_vs_depth``: test error against hidden depth, 95% t intervals over seeds.
``train_vs_test``: training error at the chosen checkpoint against test error (the regulariser signature).
``error_vs_budget``: test error against the fine-tuning budget (× the base budget B), 95% t intervals over seeds.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from experiments.harness import group_of  # noqa: E402
from experiments.results import label_count  # noqa: E402
from pretrain.figures import save_figure  # noqa: E402

GROUP_STYLE = {"pretrained": "-", "plain": "--", "naive": ":"}


def _plain_log_ticks(axis) -> None:
    """Tick labels like 1, 2, 5, 10 instead of 10^0 on a log axis."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def _colors(arms: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {arm: cmap(i % cmap.N) for i, arm in enumerate(arms)}


def error_vs_labels(network: dict, arms: list[str], n_all: int, path: Path) -> Path:
    """Mean test error (%) against labels per arm, error bars the 95% t interval over seeds.

    ``network``: one network's summary, ``{"labels": {key: {"arms": {arm: entry}}}}``.
    """
    colors = _colors(arms)
    keys = sorted(network["labels"], key=lambda k: label_count(k, n_all))
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for i, arm in enumerate(arms):
        xs, ys, lo, hi = [], [], [], []
        for k in keys:
            e = network["labels"][k]["arms"].get(arm)
            if e and e["n"]:
                ci = e["test_error_ci"]
                x = label_count(k, n_all) * (1 + 0.03 * (i - len(arms) / 2))  # spread the bars apart
                xs.append(x), ys.append(ci["mean"])
                half = 0.0 if ci["n"] < 2 else ci["mean"] - ci["ci_low"]
                lo.append(half), hi.append(half)
        if xs:
            style = GROUP_STYLE[group_of(arm)] + "o"
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style, color=colors[arm], label=arm, ms=3, capsize=3, lw=1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ticks = [label_count(k, n_all) for k in keys]
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel(f"labelled training examples (all = {n_all:,})")
    ax.set_ylabel("test error % (log scale)")
    ax.set_title(f"{network['title']}: test error, mean and 95% t interval over seeds", fontsize=10)
    return _finish(fig, ax, path)


def validation_curves(cells: list[dict], arms: list[str], title: str, path: Path) -> Path:
    """Validation error (%) against optimizer steps: one thin line per reported cell, a color per arm."""
    colors = _colors(arms)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for arm in arms:
        runs = [c for c in cells if c["key"]["arm"] == arm and not c["diverged"]]
        for j, c in enumerate(runs):
            style = GROUP_STYLE[group_of(arm)]
            label = arm if j == 0 else None
            ax.plot(c["steps"], c["val_error"], style, color=colors[arm], lw=1, alpha=0.7, label=label)
            ax.plot([c["best_step"]], [c["val_error_best"]], "o", color=colors[arm], ms=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("optimizer step (log scale); dot: the restored best-validation step")
    ax.set_ylabel("validation error % (log scale)")
    ax.set_title(title, fontsize=10)
    return _finish(fig, ax, path)


def error_vs_depth(by_depth: dict, arms: list[str], title: str, path: Path) -> Path:
    """Mean test error (%) against hidden depth, one line per arm, error bars the 95% t interval over seeds.

    ``by_depth``: ``{depth: {"arms": {arm: entry}}}`` as ``experiments.depth_study`` summarizes it.
    """
    colors = _colors(arms)
    depths = sorted(by_depth, key=int)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for i, arm in enumerate(arms):
        xs, ys, half = [], [], []
        for d in depths:
            e = by_depth[d]["arms"].get(arm)
            if e and e["n"]:
                ci = e["test_error_ci"]
                xs.append(int(d) + 0.04 * (i - len(arms) / 2))  # spread the bars apart
                ys.append(ci["mean"])
                half.append(0.0 if ci["n"] < 2 else ci["mean"] - ci["ci_low"])
        if xs:
            style = GROUP_STYLE[group_of(arm)] + "o"
            ax.errorbar(xs, ys, yerr=half, fmt=style, color=colors[arm], label=arm, ms=3, capsize=3, lw=1.5)
    ax.set_xticks([int(d) for d in depths])
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("test error %")
    ax.set_title(f"{title}: test error, mean and 95% t interval over seeds", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def train_vs_test(by_depth: dict, arms: list[str], title: str, path: Path) -> Path:
    """Training error at the chosen checkpoint against test error, a point per arm and depth (labelled).

    A regulariser moves points left-up to right-down: more training error, less test error.
    """
    colors = _colors(arms)
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    for arm in arms:
        pts = [(d, by_depth[d]["arms"].get(arm)) for d in sorted(by_depth, key=int)]
        pts = [(d, e["train_error_final"], e["test_error_ci"]["mean"]) for d, e in pts if e and e["n"]]
        if pts:
            ax.plot(
                [p[1] for p in pts],
                [p[2] for p in pts],
                GROUP_STYLE[group_of(arm)] + "o",
                color=colors[arm],
                label=arm,
                ms=4,
                lw=1,
            )
            for d, x, y in pts:
                ax.annotate(d, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("training error % at the chosen checkpoint")
    ax.set_ylabel("test error %")
    ax.set_title(f"{title}: training against test error (numbers: depth)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


def error_vs_budget(budgets: dict, arms: list[str], title: str, path: Path) -> Path:
    """Mean test error (%) against the budget factor, one line per arm, error bars the 95% t interval over the
    seeds that trained.

    ``budgets``: ``{"1": {"budget": 1.0, "arms": {arm: entry}}, "2": ...}`` as ``experiments.comparison``
    summarizes one (network, labels) group.
    """
    colors = _colors(arms)
    factors = sorted(b["budget"] for b in budgets.values())
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for i, arm in enumerate(arms):
        xs, ys, half = [], [], []
        for b in sorted(budgets.values(), key=lambda b: b["budget"]):
            e = b["arms"].get(arm)
            if e and e["n"]:
                ci = e["test_error_ci"]
                xs.append(b["budget"] * (1 + 0.02 * (i - len(arms) / 2)))  # spread the bars apart
                ys.append(ci["mean"])
                half.append(0.0 if ci["n"] < 2 else ci["mean"] - ci["ci_low"])
        if xs:
            style = GROUP_STYLE[group_of(arm)] + "o"
            ax.errorbar(xs, ys, yerr=half, fmt=style, color=colors[arm], label=arm, ms=3, capsize=3, lw=1.5)
    ax.set_xscale("log", base=2)
    ax.set_xticks(factors, [f"{f:g}B" for f in factors])
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("fine-tuning budget (B: the base budget; decay and cap scaled together)")
    ax.set_ylabel("test error %")
    ax.set_title(f"{title}: test error against budget, mean and 95% t interval over seeds", fontsize=10)
    return _finish(fig, ax, path)


def _finish(fig, ax, path: Path) -> Path:
    """Grid, a legend when something is labelled, then save: the end of every line figure here."""
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return path
