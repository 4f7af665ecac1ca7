"""The Markdown tables of a comparison summary (``experiments.comparison``, reused by the depth study).

Per network, label count and budget: one row per arm (``ARM_HEADER``'s columns), the verdicts across
budgets, and the rules under every table (``notes``); the paper protocol adds the published numbers.
Everything here reads the summary alone, so ``--report`` rebuilds the tables from the cells.
"""

from __future__ import annotations

from experiments.harness import CHANCE_MARGIN

# Published MNIST test errors %, each with its source, quoted beside the paper protocol (not measured here)
PUBLISHED = (
    ("RBM-pretrained 784-500-500-2000-10, fine-tuned", 1.2, "Hinton & Salakhutdinov 2006, Science 313"),
    ("randomly started backprop (best published before them)", 1.6, "Hinton & Salakhutdinov 2006"),
    ("SVM", 1.4, "Hinton & Salakhutdinov 2006"),
    ("DBN", 1.34, "Deep Learning Tutorials, deeplearning.net/tutorial/DBN.html"),
    ("stacked denoising autoencoders (SdA)", 1.3, "Deep Learning Tutorials, deeplearning.net/tutorial/SdA.html"),
    ("MLP", 1.65, "Deep Learning Tutorials, deeplearning.net/tutorial/mlp.html"),
)


def format_ci(e: dict) -> str:
    ci = e["test_error_ci"]
    if not e["n"]:
        return "—"
    if ci["n"] < 2:
        return f"{ci['mean']:.2f} (n=1)"
    partial = f" (n={e['n']})" if e["n"] < e.get("n_run", e["n"]) else ""
    return f"{ci['mean']:.2f} ± {ci['std']:.2f} [{ci['ci_low']:.2f}, {ci['ci_high']:.2f}]{partial}"


def format_diff(d: dict | None) -> str:
    """``mean [95% CI] n=k`` and the p-value: Holm-adjusted for the primary family, else raw and marked."""
    if d is None or not d["n"]:
        return "—"
    if d["n"] < 2:
        return f"{d['mean']:+.2f} n=1"
    text = f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] n={d['n']}"
    if d.get("family") == "primary" and "p_holm" in d:
        return f"{text} Holm p={d['p_holm']:.2g}{'*' if d['p_holm'] < 0.05 else ''}"
    return f"{text} p={d['p']:.2g} (secondary)"


def format_failures(e: dict) -> str:
    """``k/n``, and what failed: ``2/5 (not trained 1, diverged 1)``."""
    k = sum(e["failures"].values())
    parts = ", ".join(f"{why} {n}" for why, n in e["failures"].items() if n)
    return f"{k}/{e['n_run']}" + (f" ({parts})" if parts else "")


def format_seconds(e: dict) -> str:
    pre = "—" if e.get("pretrain_seconds") is None else f"{e['pretrain_seconds']:.3g}"
    return f"{pre} / {e['finetune_seconds']:.3g}"


def arm_row(arm: str, e: dict) -> str:
    """One arm's table row (``ARM_HEADER``'s columns)."""
    if e["lr"] is None:
        return f"| {arm} | — | {e['status']} | — | — | — | — | — | — |"
    mark = {"capped": " (cap)", "edge": " (edge, tuning unfinished)"}.get(e["status"], "")
    mark += " (safer)" if e.get("safer") else ""
    fit = "—" if not e["n"] else f"{e['train_error_final']:.2f} / {e['train_loss_final']:.3g}"
    med = "—" if not e["n"] else f"{e['test_error_median']:.2f}"
    return (
        f"| {arm} | {e['lr']:g}{mark} | {format_ci(e)} | {med} | {format_failures(e)} | {fit} | {format_seconds(e)} "
        f"| {format_diff(e.get('vs_xavier-uniform'))} | {format_diff(e.get('vs_he-normal'))} |"
    )


ARM_HEADER = [
    "| arm | lr | test error % mean ± sd [95% CI] | median | failed k/n | train error % / loss at restore "
    "| pretrain s / fine-tune s | Δ vs xavier-uniform [95% CI] | Δ vs he-normal [95% CI] |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def _order(arms: dict) -> list[str]:
    return sorted(arms, key=lambda a: (not arms[a]["n"], _mean(arms[a])))


def markdown(summary: dict) -> str:
    """Per network and label count: one table per budget (arms sorted by mean test error) and the verdicts."""
    p, lines = summary["protocol"], []
    if p["budget_limited"]:
        lines += [f"**Budget-limited ({p['name']} protocol): these runs stop at a small step cap; not a verdict.**", ""]
    for entry in summary["networks"].values():
        for key, block in entry["labels"].items():
            for budget, at in block["budgets"].items():
                arms = at["arms"]
                seeds = max((e["n_run"] for e in arms.values()), default=0)
                lines += [
                    f"**{entry['title']}, {key} labels, budget {budget}B** ({block['n_labels']:,} training examples, "
                    f"validation on {_n_val(arms)}), up to {seeds} paired seeds",
                    "",
                    *ARM_HEADER,
                    *(arm_row(arm, arms[arm]) for arm in _order(arms)),
                    "",
                ]
            if block["verdicts"]:
                lines += [
                    f"**{entry['title']}, {key} labels: verdicts across budgets** (Δ = pretrained − baseline, points)",
                    "",
                    "| pretrained | baseline | Δ per budget (n) | verdict |",
                    "|---|---|---|---|",
                ]
                for v in block["verdicts"]:
                    per = ", ".join(f"{b}B {m:+.2f} ({n})" for b, m, n in zip(v["budgets"], v["means"], v["n"]))
                    lines.append(f"| {v['arm']} | {v['baseline']} | {per} | {v['verdict']} |")
                lines.append("")
    lines += notes(summary)
    if p["name"] == "paper":
        lines += ["", *published()]
    if summary.get("seconds"):
        lines.append(f"Wall time of this invocation: {summary['seconds'] / 60:.1f} min on {_machine(summary)}.")
    return "\n".join(lines) + "\n"


def notes(summary: dict) -> list[str]:
    """The rules under every table."""
    p, fam = summary["protocol"], summary["family"]
    t, b = p["training"], p["training"]["budget"]
    seeds = " and ".join(map(str, summary["tuning_seeds"]))
    lines = [
        f"Rates tuned per arm and budget on seeds {seeds} (never reported) from {list(p['tuning']['grid'])} at B, "
        f"extended ×{p['tuning']['step']:.3g} past an edge up to {p['tuning']['max_extensions']} times per side "
        "((cap): still at an edge after that); past B over the choice at B and one grid step either side. "
        "By validation error only. A rate that diverged, stayed near chance or "
        f"{'was not fitted at its restored checkpoint ' if p['tuning']['require_fit'] else ''}on either tuning seed "
        "is out; (safer): the next lower rate was chosen, within one standard error of the best, because the rate "
        "above the best failed.",
        f"Base budget B: {t['optimizer']} (momentum {t['momentum']}), batch {t['batch_size']}, cosine decay to "
        f"{b['final_lr']:g}× over max({b['min_decay_steps']} steps, {b['decay_epochs']:g} epochs), cap "
        f"{b['cap_factor']:g}× that; validation {b['evals_per_decay']} times per decay; stop after {b['patience']} "
        f"evaluations without a lower validation error once a window's training error is ≤ {100 * b['fit_error']:g}%; "
        "the best-validation weights are restored and scored once on the test set. fB: decay and cap f times "
        f"longer. Pretraining: {p['pretraining']['epochs']} epochs per layer.",
        f"Failed k/n: reported seeds not trained (best validation error not below {100 * CHANCE_MARGIN:g}% of "
        "chance), diverged, or not "
        "fitted at the restored checkpoint. Mean, sd, interval and median are over the seeds that trained (not "
        "fitted ones included); train error and loss: at the restored checkpoint. Seconds: mean per seed "
        "(pretraining: of the seed's stack).",
        f"N labels validate on min(N, {t['val_cap']}) stratified examples of the validation split; all labels on the "
        "whole split.",
        "Δ: paired difference in points (arm − baseline) over the seeds both arms trained (n), 95% t interval. "
        f"Primary family: each pretrained arm against {' and '.join(fam['baselines'])} per network and label count "
        f"at the largest budget both ran, {fam['comparisons']} comparisons, Holm-corrected (Holm p; *: below 0.05). "
        f"The other {fam['secondary']} differences are secondary: raw p, not adjusted.",
        "Verdict: a finding when the difference has the same sign at the two largest budgets and its interval "
        "excludes 0 at the largest; else budget-dependent, with the arm the budget moves it toward.",
    ]
    if summary.get("unused_cells"):
        lines.append(
            f"{summary['unused_cells']} cell(s) in the folder match no run of this protocol and code (other settings "
            "or older code) and are not used."
        )
    if summary.get("torch_versions"):
        lines.append(f"torch of the cells used: {', '.join(summary['torch_versions'])}.")
    return lines


def published() -> list[str]:
    """The published numbers the paper protocol is read against, each with its source."""
    lines = [
        "Published MNIST test errors (not measured here):",
        "",
        "| model | test error % | source |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {err} | {source} |" for name, err, source in PUBLISHED]
    lines += [
        "",
        "Hinton & Salakhutdinov's 1.6% is the best result published before them for a randomly started net, not a "
        "run of their recipe from a random start; the matched xavier-uniform and he-normal rows above are the "
        "real comparison.",
    ]
    return lines


def _mean(e: dict) -> float:
    return e["test_error_ci"]["mean"] if e["n"] else 0.0


def _n_val(arms: dict) -> str:
    sizes = sorted({e["n_val"] for e in arms.values() if e.get("n_val")})
    return ", ".join(f"{n:,}" for n in sizes) + " examples" if sizes else "—"


def _machine(summary: dict) -> str:
    m = summary["machine"]
    return f"{m['cpus']} CPUs ({summary['protocol']['workers']} workers × {summary['protocol']['threads']} threads)"
