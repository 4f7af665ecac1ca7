"""The benchmark's PNGs, drawn from a ``results.json`` dict: curves, label efficiency, final errors."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from experiments.stats import mean_std  # noqa: E402

GROUP_STYLE = {"pretrained": "-", "plain": "--", "naive": ":"}


def _group(arm: str) -> str:
    from experiments.hinton_comparison import NAIVE_ARMS, PRETRAINED_ARMS

    return "pretrained" if arm in PRETRAINED_ARMS else "naive" if arm in NAIVE_ARMS else "plain"


def _plain_log_ticks(axis) -> None:
    """Tick labels like 1, 2, 5, 10 instead of 10^0 on a log axis."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def _colors(arms: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab20" if len(arms) > 10 else "tab10")
    return {arm: cmap(i % cmap.N) for i, arm in enumerate(arms)}


def _main_key(results: dict) -> str:
    """The label count the curves and bars show: all labels if run, else the largest count."""
    keys = list(results["summary"])
    return "all" if "all" in keys else max(keys, key=int)


def save_figures(results: dict, out: Path) -> list[Path]:
    """Write the PNGs that apply to ``results`` into ``out``; return their paths."""
    paths = [test_error_curves(results, out / "test_error_curves.png"), final_errors(results, out / "final_errors.png")]
    if len(results["summary"]) > 1:
        paths.append(error_vs_labels(results, out / "error_vs_labels.png"))
    return paths


def test_error_curves(results: dict, path: Path) -> Path:
    """Test error (%) over fine-tuning epochs: mean over seeds, band from min to max seed, per arm."""
    key = _main_key(results)
    arms = results["protocol"]["arms"]
    colors = _colors(arms)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for arm in arms:
        curves = [
            r["test_error"] for r in results["runs"] if r["arm"] == arm and r["labels"] == key and not r["diverged"]
        ]
        if not curves:
            continue
        length = min(map(len, curves))
        epochs = list(range(1, length + 1))
        cols = [[c[i] for c in curves] for i in range(length)]
        mean = [mean_std(c)[0] for c in cols]
        ax.plot(epochs, mean, GROUP_STYLE[_group(arm)], color=colors[arm], label=arm, lw=1.8, marker="o", ms=2.5)
        ax.fill_between(epochs, [min(c) for c in cols], [max(c) for c in cols], color=colors[arm], alpha=0.18, lw=0)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("test error % (log scale)")
    ax.set_title(
        f"Test error while fine-tuning, {key} labels: mean of {len(results['seeds'])} seeds, band min–max", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper right")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def final_errors(results: dict, path: Path) -> Path:
    """Bar per arm: mean final test error (%), error bar one sample std, dots the seeds."""
    key = _main_key(results)
    summary = results["summary"][key]
    arms = sorted((a for a in summary if summary[a]["n"]), key=lambda a: summary[a]["test_error_mean"])
    colors = _colors(results["protocol"]["arms"])
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(arms) + 2), 4.5), layout="constrained")
    means = [summary[a]["test_error_mean"] for a in arms]
    stds = [summary[a]["test_error_std"] for a in arms]
    ax.bar(range(len(arms)), means, yerr=stds, capsize=4, color=[colors[a] for a in arms], edgecolor="black", lw=0.5)
    for i, a in enumerate(arms):
        seeds = [
            r["final_test_error"] for r in results["runs"] if r["arm"] == a and r["labels"] == key and not r["diverged"]
        ]
        ax.plot([i] * len(seeds), seeds, "k.", ms=4)
        ax.text(i, means[i] * 1.08, f"{means[i]:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(arms)), arms, rotation=40, ha="right")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    shown = [v for v in means if v > 0] or [1.0]
    ax.set_ylim(min(shown) / 2, max(m + s for m, s in zip(means, stds)) * 1.6)
    ax.set_ylabel("final test error % (log scale)")
    ax.set_title(
        f"Final test error, {key} labels: mean ± std over {len(results['seeds'])} seeds (dots: seeds)", fontsize=10
    )
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def error_vs_labels(results: dict, path: Path) -> Path:
    """Final test error (%) against the number of labels, one line per arm, error bars one std."""
    n_all = results["dataset"]["n_train"]
    keys = sorted(results["summary"], key=lambda k: n_all if k == "all" else int(k))
    arms = results["protocol"]["arms"]
    colors = _colors(arms)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for arm in arms:
        xs, ys, es = [], [], []
        for k in keys:
            e = results["summary"][k].get(arm)
            if e and e["n"] and math.isfinite(e["test_error_mean"]):
                xs.append(n_all if k == "all" else int(k))
                ys.append(e["test_error_mean"])
                es.append(e["test_error_std"])
        if xs:
            ax.errorbar(
                xs,
                ys,
                yerr=es,
                fmt=GROUP_STYLE[_group(arm)] + "o",
                color=colors[arm],
                label=arm,
                ms=3,
                capsize=3,
                lw=1.5,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ticks = [n_all if k == "all" else int(k) for k in keys]
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel(f"labelled training examples (all = {n_all:,})")
    ax.set_ylabel("final test error % (log scale)")
    ax.set_title(f"Label efficiency: mean ± std over {len(results['seeds'])} seeds", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
