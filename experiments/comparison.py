"""``python -m experiments.comparison``: does a greedy layer-wise pretrained start beat Xavier and He, and where?

Protocols (``--protocol``):

- ``converged`` (default): the sigmoid 784-500-250-100-10 and its ReLU variant; arms autoencoder,
  denoising, rbm (sigmoid only), xavier-uniform, he-normal, lsuv, torch-default (``--naive`` adds
  the naive starts); 100, 1,000 and all labels; 5 paired seeds; every run trained to convergence.
- ``paper``: Hinton & Salakhutdinov (2006): 784-500-500-2000-10, the hinton2006 RBM for 50 epochs
  per layer, fine-tuning to convergence capped at 200 epochs whose first 5 train the head only;
  arms rbm, autoencoder, xavier-uniform, he-normal; all labels; 3 seeds.
- ``quick``: a budget-limited look in minutes; every output says so.
- ``smoke``: a tiny network for the tests.

Each arm's rate is tuned on a seed that is never reported (see ``experiments.harness``); then
every reported seed runs at that rate. A run with N labels validates on a stratified
min(N, 5000) examples of the validation split (outside the N); all labels on the whole split.
Every finished run is a cell file under ``<output>/comparison-<protocol>/cells``; a run
continues from the cells it finds. At the end: ``summary.json``, ``table.md`` and figures.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm.auto import tqdm

from experiments.figures import error_vs_labels, validation_curves
from experiments.harness import (
    ALL_ARMS,
    BASELINES,
    NAIVE_ARMS,
    PRETRAINED_ARMS,
    TUNING_SEED,
    Budget,
    Harness,
    Network,
    Pretraining,
    Training,
    Tuning,
    choice,
)
from experiments.results import all_cells, cell_path, digest, label_key, machine
from experiments.stats import confidence_interval, holm, mean_std, paired_difference
from pretrain.checkpoint import check_writable, write_json, write_text
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main
from pretrain.data import load_dataset
from pretrain.errors import PretrainError
from pretrain.mlp import ACTIVATIONS

NETWORKS = {
    "sigmoid": Network("sigmoid", (500, 250, 100), "sigmoid"),  # the network the comparison reports first
    "relu": Network("relu", (500, 250, 100), "relu"),
    "hinton": Network("hinton", (500, 500, 2000), "sigmoid"),  # Hinton & Salakhutdinov 2006, MNIST
    "tiny": Network("tiny", (32, 16), "sigmoid"),  # the smoke protocol's
}
DEFAULT_ARMS = ("autoencoder", "denoising", "rbm", "xavier-uniform", "he-normal", "lsuv", "torch-default")
# Hinton & Salakhutdinov (2006), Science 313, MNIST test error % (their published table, for comparison)
HINTON_2006 = {"pretrained, fine-tuned": 1.2, "random-start backprop": 1.6, "SVM": 1.4}


def network_named(name: str) -> Network:
    """One of ``NETWORKS``, or ``<activation>-<width>-<width>...`` (e.g. ``sigmoid-500-500``) for any other."""
    if name in NETWORKS:
        return NETWORKS[name]
    activation, *widths = name.split("-")
    if activation in ACTIVATIONS and widths and all(w.isdigit() and int(w) > 0 for w in widths):
        return Network(name, tuple(map(int, widths)), activation)
    raise PretrainError(f"unknown network {name!r}; choose from {', '.join(NETWORKS)} or <activation>-<width>-...")


@dataclass
class Protocol:
    """Every setting of one comparison (saved in ``summary.json``)."""

    name: str = "converged"
    study: str = "comparison"  # the results folder is <output>/<study>-<name>
    networks: list[str] = field(default_factory=lambda: ["sigmoid", "relu"])
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    seeds: int = 5
    labels: list[int | None] = field(default_factory=lambda: [100, 1000, None])
    tuning: Tuning = field(default_factory=Tuning)
    training: Training = field(default_factory=Training)
    pretraining: Pretraining = field(default_factory=Pretraining)
    budget_limited: bool = False
    data: str = "mnist"
    data_dir: str = "data"
    val_size: int = 5000
    output: str = "experiments/results"
    cache: str | None = "checkpoints"
    workers: int = 2
    threads: int = 1
    quiet: bool = False

    @property
    def folder(self) -> Path:
        return Path(self.output) / f"{self.study}-{self.name}"

    def arms_for(self, network: str) -> list[str]:
        """The arms that apply to ``network`` (Bernoulli RBMs pretrain sigmoid units only)."""
        return [a for a in self.arms if a != "rbm" or network_named(network).activation == "sigmoid"]

    def groups(self) -> list[tuple[str, int | None, str]]:
        """Every (network, labels, arm), the most expensive (all labels) first."""
        by_cost = sorted(self.labels, key=lambda n: -(n or math.inf))
        return [(net, n, arm) for n in by_cost for net in self.networks for arm in self.arms_for(net)]

    def stacks(self) -> list[tuple[str, str, int]]:
        """Every (objective, network, seed) a pretrained arm needs, the tuning seed included."""
        seeds = [TUNING_SEED, *range(self.seeds)]
        return [(a, net, s) for net in self.networks for a in self.arms_for(net) if a in PRETRAINED_ARMS for s in seeds]


PROTOCOLS: dict[str, dict] = {
    "converged": {},
    "paper": {
        "networks": ["hinton"],
        "arms": ["rbm", "autoencoder", "xavier-uniform", "he-normal"],
        "seeds": 3,
        "labels": [None],
        "tuning": Tuning(grid=(0.03, 0.1, 0.3)),
        # 50 epochs of decay, capped at 200 epochs, validation every epoch, batches of 100 as in rbm.m
        "training": Training(
            batch_size=100,
            freeze_epochs=5,
            budget=Budget(decay_epochs=50, cap_factor=4.0, evals_per_decay=50, patience=10),
        ),
        "pretraining": Pretraining(epochs=50),
    },
    "quick": {
        "networks": ["sigmoid"],
        "arms": ["autoencoder", "xavier-uniform", "he-normal"],
        "seeds": 3,
        "labels": [1000, None],
        "tuning": Tuning(max_extensions=0),
        "training": Training(
            budget=Budget(decay_epochs=2, min_decay_steps=200, cap_factor=1.0, evals_per_decay=8, patience=3)
        ),
        "pretraining": Pretraining(epochs=1),
        "budget_limited": True,
    },
    "smoke": {
        "networks": ["tiny"],
        "arms": ["autoencoder", "rbm", "xavier-uniform", "he-normal"],
        "seeds": 2,
        "labels": [50, None],
        "training": Training(
            batch_size=32,
            val_cap=40,
            budget=Budget(decay_epochs=1, min_decay_steps=24, cap_factor=1.0, evals_per_decay=4, patience=8),
        ),
        "pretraining": Pretraining(epochs=1),
        "val_size": 50,
        "workers": 1,
        "budget_limited": True,
    },
}


def make_protocol(name: str = "converged", **overrides) -> Protocol:
    """The named protocol with ``overrides`` on top (None values are ignored).

    Besides ``Protocol`` fields: ``lr_grid``, ``max_extensions``, ``batch_size``,
    ``pretrain_epochs`` and ``naive`` (add the naive arms).
    """
    if name not in PROTOCOLS:
        raise PretrainError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    o = {k: v for k, v in overrides.items() if v is not None}
    p = Protocol(name=name, **PROTOCOLS[name])
    grid, extensions = o.pop("lr_grid", None), o.pop("max_extensions", None)
    if grid is not None or extensions is not None:
        p.tuning = replace(
            p.tuning,
            grid=tuple(grid) if grid is not None else p.tuning.grid,
            max_extensions=p.tuning.max_extensions if extensions is None else extensions,
        )
    if "batch_size" in o:
        p.training = replace(p.training, batch_size=o.pop("batch_size"))
    if "pretrain_epochs" in o:
        p.pretraining = replace(p.pretraining, epochs=o.pop("pretrain_epochs"))
    if o.pop("naive", False):
        p.arms = [*p.arms, *(a for a in NAIVE_ARMS if a not in p.arms)]
    p = replace(p, **o)
    _check(p)
    return p


def _check(p: Protocol) -> None:
    unknown = [a for a in p.arms if a not in ALL_ARMS]
    if unknown or not p.arms:
        raise PretrainError(f"unknown arm(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ALL_ARMS)}")
    if not p.networks:
        raise PretrainError(f"give at least one network; choose from {', '.join(NETWORKS)} or <activation>-<width>-...")
    for name in p.networks:
        network_named(name)
    if "rbm" in p.arms and not any(network_named(n).activation == "sigmoid" for n in p.networks):
        raise PretrainError("the rbm arm needs a sigmoid network (Bernoulli hidden units)")
    if any(n is not None and n < 1 for n in p.labels):
        raise PretrainError(f"--labels must be positive counts or 'all', got {p.labels}")
    if not p.tuning.grid or any(not (lr > 0 and math.isfinite(lr)) for lr in p.tuning.grid):
        raise PretrainError(f"--lr-grid needs positive learning rates, got {list(p.tuning.grid)}")
    if p.tuning.max_extensions < 0:
        raise PretrainError(f"--max-extensions must be >= 0, got {p.tuning.max_extensions}")


# ------------------------------------------------------------------------------ running
@functools.lru_cache(maxsize=1)
def _harness(protocol_json: str) -> Harness:
    """One harness per process (the data loaded once per worker), built from the protocol's JSON."""
    p = _from_json(protocol_json)
    torch.set_num_threads(p.threads)
    dataset = load_dataset(p.data, p.data_dir, p.val_size)
    cache = Path(p.cache) if p.cache else None
    return Harness(dataset, p.folder, p.training, p.pretraining, cache)


def _to_json(p: Protocol) -> str:
    return json.dumps(asdict(p), sort_keys=True)


def _from_json(text: str) -> Protocol:
    d = json.loads(text)
    budget = Budget(**d["training"].pop("budget"))
    return Protocol(
        **{
            **d,
            "tuning": Tuning(**{**d["tuning"], "grid": tuple(d["tuning"]["grid"])}),
            "training": Training(**d["training"], budget=budget),
            "pretraining": Pretraining(**d["pretraining"]),
        }
    )


def _stack_task(protocol_json: str, objective: str, network: str, seed: int) -> float:
    """Pretrain (or find in the cache) one stack; its pretraining seconds."""
    return _harness(protocol_json).stack(objective, network_named(network), seed)[1]["seconds"]


def _group_task(protocol_json: str, network: str, labels: int | None, arm: str) -> dict:
    """Tune one arm at one label count on one network, then run every reported seed at the chosen rate."""
    p, h = _from_json(protocol_json), _harness(protocol_json)
    verdict = h.tune(network_named(network), arm, labels, p.tuning)
    if verdict["lr"] is not None:
        for seed in range(p.seeds):
            h.cell(network_named(network), arm, labels, seed, verdict["lr"])
    return verdict


def run(p: Protocol) -> Path:
    """Run (or continue) every cell of the protocol, then write the report; return its folder."""
    started = time.perf_counter()
    harness = run_cells(p)
    summary = report(p, harness, time.perf_counter() - started)
    if not p.quiet:
        print(markdown(summary))
    print(f"wrote {p.folder}/summary.json, table.md and figures")
    return p.folder


def run_cells(p: Protocol) -> Harness:
    """Pretrain every stack, tune every (network, labels, arm) and run its reported seeds; cells found are kept."""
    torch.set_num_threads(p.threads)
    harness = _harness(_to_json(p))
    dataset = harness.dataset
    if dataset.n_classes is None:
        raise PretrainError(f"{p.data} has no labels; the comparison needs a labelled data set")
    too_many = [n for n in p.labels if n is not None and n >= len(dataset.train)]
    if too_many:
        raise PretrainError(f"--labels {too_many[0]} is not fewer than the {len(dataset.train)} training examples")
    check_writable(p.folder / "summary.json")
    text = _to_json(p)
    stacks, groups = p.stacks(), p.groups()
    bar = tqdm(total=len(stacks) + len(groups), disable=p.quiet, unit="job", dynamic_ncols=True, desc=p.name)
    if p.workers == 1:
        for job in stacks:
            _stack_task(text, *job)
            bar.update(1)
        for job in groups:
            bar.set_postfix_str(f"{job[0]}, {label_key(job[1])} labels, {job[2]}")
            _group_task(text, *job)
            bar.update(1)
    else:
        with ProcessPoolExecutor(p.workers, mp_context=get_context("spawn")) as pool:
            for phase, task in ((stacks, _stack_task), (groups, _group_task)):
                for future in as_completed([pool.submit(task, text, *job) for job in phase]):
                    future.result()
                    bar.update(1)
    bar.close()
    return harness


# ------------------------------------------------------------------------------ summary
def summarize(p: Protocol, harness: Harness, cells: list[dict]) -> dict:
    """Per network, label count and arm: the tuning verdict and the statistics of the reported seeds.

    Computed from ``cells`` alone (those whose key matches this protocol; others are ignored).
    Paired differences against each baseline form one family per protocol, Holm-corrected.
    """
    index = {digest(c["key"]): c for c in cells}
    n_all = len(harness.dataset.train)
    out = {"networks": {}, "seeds": list(range(p.seeds)), "tuning_seed": TUNING_SEED}
    family = []  # (network, labels, arm, baseline) of every paired difference
    for net in p.networks:
        network = network_named(net)
        sizes = network.sizes(harness.dataset.n_features, harness.dataset.n_classes)
        entry = {"title": f"{network.activation} {'-'.join(map(str, sizes))}", "sizes": sizes, "labels": {}}
        for labels in sorted(p.labels, key=lambda n: n or math.inf):
            arms = {}
            for arm in p.arms_for(net):

                def find(seed: int, lr: float, network=network, arm=arm, labels=labels):
                    return index.get(digest(harness.cell_key(network, arm, labels, seed, lr)))

                rates = {c["key"]["lr"] for c in cells if c["key"]["seed"] == TUNING_SEED}
                tuned = {lr: c for lr in rates if (c := find(TUNING_SEED, lr)) is not None}
                if not tuned:
                    continue
                verdict = choice(tuned, p.tuning)
                reported = [find(s, verdict["lr"]) for s in range(p.seeds)] if verdict["lr"] is not None else []
                arms[arm] = _arm_entry(verdict, [c for c in reported if c is not None], n_all)
            for arm, e in arms.items():
                for base in BASELINES:
                    if base in arms and base != arm and e["n"] and arms[base]["n"]:
                        e[f"vs_{base}"] = paired_difference(
                            [e["test_error_per_seed"].get(str(s)) for s in range(p.seeds)],
                            [arms[base]["test_error_per_seed"].get(str(s)) for s in range(p.seeds)],
                        )
                        family.append((net, label_key(labels), arm, base))
            entry["labels"][label_key(labels)] = {"arms": arms, "n_labels": labels or n_all}
        out["networks"][net] = entry
    ps = [out["networks"][n]["labels"][k]["arms"][a][f"vs_{b}"]["p"] for n, k, a, b in family]
    for (n, k, a, b), adjusted in zip(family, holm(ps)):
        out["networks"][n]["labels"][k]["arms"][a][f"vs_{b}"]["p_holm"] = adjusted
    out["family"] = {
        "comparisons": len(family),
        "tested": sum(math.isfinite(v) for v in ps),
        "baselines": list(BASELINES),
        "correction": "Holm",
    }
    return out


def _arm_entry(verdict: dict, reported: list[dict], n_all: int) -> dict:
    ok = [c for c in reported if not c["diverged"]]
    errors = {str(c["key"]["seed"]): c["test_error"] for c in ok}
    walls = [c["pretrain_seconds"] + c["finetune_seconds"] for c in reported]
    return {
        "lr": verdict["lr"],
        "status": verdict["status"],
        "trials": verdict["trials"],
        "n": len(errors),
        "diverged": len(reported) - len(ok),
        "test_error_per_seed": errors,
        "test_errors_per_seed": [c["test_errors"] for c in ok],
        "test_error_ci": confidence_interval(list(errors.values())),
        "train_error_final": mean_std([c["train_error_final"] for c in ok])[0],
        "val_error_best": mean_std([c["val_error_best"] for c in ok])[0],
        "best_step": mean_std([c["best_step"] for c in ok])[0],
        "steps_run": mean_std([c["steps_run"] for c in ok])[0],
        "epochs_run": mean_std([c["steps_run"] / c["steps_per_epoch"] for c in ok])[0],
        "converged": sum(c["converged"] for c in ok),
        "not_converged": sorted(
            (c["key"]["seed"], "not fitted" if not c["fitted"] else "still improving") for c in ok if not c["converged"]
        ),
        "n_val": ok[0]["n_val"] if ok else None,
        "wall_seconds": mean_std(walls)[0],
    }


def report(p: Protocol, harness: Harness, seconds: float | None = None) -> dict:
    """Summarize the folder's cells; write ``summary.json``, ``table.md`` and the figures."""
    cells = all_cells(p.folder)
    summary = {
        "protocol": asdict(p),
        **summarize(p, harness, cells),
        "dataset": {"name": harness.dataset.name, "n_train": len(harness.dataset.train), **harness.data_key},
        "machine": machine(),
        "seconds": seconds,
    }
    write_json(p.folder / "summary.json", summary)
    write_text(p.folder / "table.md", markdown(summary))
    n_all = len(harness.dataset.train)
    for net, entry in summary["networks"].items():
        arms = p.arms_for(net)
        if len(entry["labels"]) > 1:
            error_vs_labels(entry, arms, n_all, p.folder / f"error_vs_labels-{net}.png")
        for key in entry["labels"]:
            chosen = [
                c
                for c in cells
                if c["key"]["network"]["name"] == net
                and label_key(c["key"]["labels"]) == key
                and c["key"]["seed"] != TUNING_SEED
                and entry["labels"][key]["arms"].get(c["key"]["arm"], {}).get("lr") == c["key"]["lr"]
                and c["key"]["seed"] < p.seeds
            ]
            title = f"{entry['title']}, {key} labels: validation error of every reported seed"
            validation_curves(chosen, arms, title, p.folder / f"val_curves-{net}-{key}.png")
    return summary


# ------------------------------------------------------------------------------- tables
def format_ci(e: dict) -> str:
    ci = e["test_error_ci"]
    if not e["n"]:
        return "—"
    if ci["n"] < 2:
        return f"{ci['mean']:.2f}"
    return f"{ci['mean']:.2f} ± {ci['std']:.2f} [{ci['ci_low']:.2f}, {ci['ci_high']:.2f}]"


def format_diff(d: dict | None) -> str:
    if d is None or not d["n"]:
        return "—"
    if d["n"] < 2:
        return f"{d['mean']:+.2f}"
    star = "*" if d.get("p_holm", 1.0) < 0.05 else ""
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] p={d.get('p_holm', math.nan):.2g}{star}"


def markdown(summary: dict) -> str:
    """One table per network and label count, arms sorted by mean test error; notes below."""
    p, lines = summary["protocol"], []
    if p["budget_limited"]:
        lines += [f"**Budget-limited ({p['name']} protocol): these runs stop at a small step cap; not a verdict.**", ""]
    fam = summary["family"]
    for entry in summary["networks"].values():
        for key, block in entry["labels"].items():
            arms = block["arms"]
            seeds = max((e["n"] for e in arms.values()), default=0)
            lines += [
                f"**{entry['title']}, {key} labels** ({block['n_labels']:,} training examples, "
                f"validation on {_n_val(arms)}), up to {seeds} paired seeds",
                "",
                "| arm | lr | test error % mean ± std [95% CI] | seeds | train error % | steps to best / run "
                "| epochs run | converged | Δ vs xavier-uniform [95% CI] Holm p | Δ vs he-normal [95% CI] Holm p |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            order = sorted(arms, key=lambda a: (not arms[a]["n"], _mean(arms[a])))
            for arm in order:
                e = arms[arm]
                if e["status"] == "did not train":
                    lines.append(f"| {arm} | — | did not train | 0 | — | — | — | — | — | — |")
                    continue
                mark = {"capped": " (cap)", "edge": " (edge, tuning unfinished)"}.get(e["status"], "")
                conv = f"{e['converged']}/{e['n']}" + "".join(f"; seed {s}: {why}" for s, why in e["not_converged"])
                lines.append(
                    f"| {arm} | {e['lr']:g}{mark} | {format_ci(e)} | {e['n']} | {e['train_error_final']:.2f} "
                    f"| {e['best_step']:.0f} / {e['steps_run']:.0f} | {e['epochs_run']:.1f} | {conv} "
                    f"| {format_diff(e.get('vs_xavier-uniform'))} | {format_diff(e.get('vs_he-normal'))} |"
                )
            lines.append("")
    t = p["training"]
    lines += [
        f"Rates tuned per arm on seed {summary['tuning_seed']} (never reported) from {list(p['tuning']['grid'])}, "
        f"extended ×{p['tuning']['step']:.3g} past an edge up to {p['tuning']['max_extensions']} times per side "
        "((cap): still at an edge after that); by validation error only.",
        f"Fine-tuning: {t['optimizer']} (momentum {t['momentum']}), batch {t['batch_size']}, cosine decay to "
        f"{t['budget']['final_lr']:g}× over max({t['budget']['min_decay_steps']} steps, "
        f"{t['budget']['decay_epochs']:g} epochs), cap {t['budget']['cap_factor']:g}× that; validation "
        f"{t['budget']['evals_per_decay']} times per decay; stop after {t['budget']['patience']} evaluations "
        f"without a lower validation error once the training error of a window is ≤ "
        f"{100 * t['budget']['fit_error']:g}%; the best-validation weights are restored and scored once on the test "
        f"set. Converged k/n: stopped that way before the cap. Train error: at the restored checkpoint. "
        f"Pretraining: {p['pretraining']['epochs']} epochs per layer.",
        f"N labels validate on min(N, {t['val_cap']}) stratified examples of the validation split; all labels on the "
        "whole split.",
        f"Δ: paired difference in points (arm − baseline), 95% t interval; p: paired t test, Holm-corrected over "
        f"the family of all {fam['comparisons']} differences against {' and '.join(fam['baselines'])} in this "
        "protocol (*: below 0.05).",
    ]
    if p["name"] == "paper":
        ref = ", ".join(f"{k} {v}%" for k, v in HINTON_2006.items())
        lines.append(f"Hinton & Salakhutdinov (2006) report on MNIST: {ref}.")
    if summary.get("seconds"):
        lines.append(f"Wall time of this invocation: {summary['seconds'] / 60:.1f} min on {_machine(summary)}.")
    return "\n".join(lines) + "\n"


def _mean(e: dict) -> float:
    return e["test_error_ci"]["mean"] if e["n"] else 0.0


def _n_val(arms: dict) -> str:
    sizes = sorted({e["n_val"] for e in arms.values() if e.get("n_val")})
    return ", ".join(f"{n:,}" for n in sizes) + " examples" if sizes else "—"


def _machine(summary: dict) -> str:
    m = summary["machine"]
    return f"{m['cpus']} CPUs ({summary['protocol']['workers']} workers × {summary['protocol']['threads']} threads)"


# ----------------------------------------------------------------------------- estimate
def estimate(p: Protocol) -> dict:
    """Predict the wall time of ``run(p)`` from a real probe on this machine.

    The probe pretrains one stack per (objective, network) for one epoch per layer, runs one
    real fine-tuning cell per (network, labels) (at most ``probe_steps`` steps of it) and
    writes a report of its cells. A run is predicted to take ``decay + patience · eval_every``
    steps (the cosine's end plus a patience), capped; each group runs its grid plus one cell per
    seed; the work is shared by ``workers`` processes. Cells already in the folder are not
    discounted.
    """
    probe_steps = 2000
    torch.set_num_threads(p.threads)
    t0 = time.perf_counter()
    dataset = load_dataset(p.data, p.data_dir, p.val_size)
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(p, output=tmp, cache=None, seeds=1)
        h = Harness(dataset, probe.folder, p.training, replace(p.pretraining, epochs=1), None)
        fixed = time.perf_counter() - t0
        epoch = {}
        for objective, net, _ in dict.fromkeys((o, n, 0) for o, n, _ in p.stacks()):
            epoch[(objective, net)] = _timed(lambda o=objective, n=net: h.stack(o, network_named(n), 0))
        run_seconds = {}
        for net in p.networks:
            for labels in p.labels:
                config = p.training.config(labels, len(dataset.train), p.tuning.grid[0], 0)
                steps = min(config.max_steps, config.decay_steps + config.patience * config.eval_every)
                short = min(steps, probe_steps)
                budget = replace(
                    p.training.budget,
                    patience=10**9,
                    cap_factor=1.0,
                    min_decay_steps=short,
                    decay_epochs=0,
                    evals_per_decay=max(1, short // config.eval_every),  # the real run's evaluation interval
                )
                h.training = replace(p.training, budget=budget)
                where = (network_named(net), "xavier-uniform", labels, TUNING_SEED, p.tuning.grid[0])

                def probe_cell(where=where) -> None:
                    cell_path(h.folder, h.cell_key(*where)).unlink(missing_ok=True)  # train it, do not read it back
                    h.cell(*where)

                run_seconds[(net, labels)] = _timed(probe_cell) * steps / short
        t1 = time.perf_counter()
        report(probe, h)
        fixed += time.perf_counter() - t1
    n_runs = len(p.tuning.grid) + p.seeds
    finetuning = sum(n_runs * run_seconds[(net, n)] for net, n, _ in p.groups())
    pretraining = sum(epoch[(o, net)] * p.pretraining.epochs for o, net, _ in p.stacks())
    return {
        "pretrain_epoch_seconds": {f"{o}/{n}": s for (o, n), s in epoch.items()},
        "run_seconds": {f"{n}/{label_key(k)}": s for (n, k), s in run_seconds.items()},
        "runs": n_runs * len(p.groups()),
        "stacks": len(p.stacks()),
        "pretraining_seconds": pretraining,
        "finetuning_seconds": finetuning,
        "fixed_seconds": fixed,
        "total_seconds": fixed + (pretraining + finetuning) / p.workers,
    }


def _timed(work, repeat_below: float = 1.0) -> float:
    """Seconds ``work()`` takes; the least of three tries when one is short (a busy CPU spoils single timings)."""
    times = []
    while len(times) < 3:
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
        if times[0] >= repeat_below:
            break
    return min(times)


# ---------------------------------------------------------------------------------- CLI
def _labels(text: str) -> int | None:
    return None if text == "all" else positive_int(text)


def build_parser() -> ArgumentParser:
    d = Protocol()
    p = ArgumentParser(
        prog="python -m experiments.comparison",
        description="Paired-seed comparison of pretrained starts (autoencoder, denoising, RBM) against Xavier, He, "
        "LSUV and torch-default, each arm's rate tuned on its own seed and every run trained to convergence. "
        "Flags left unset take the --protocol's value (defaults shown are the converged protocol's).",
    )
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="converged", help="preset of every setting below")
    p.add_argument("--networks", nargs="+", default=None, help=f"networks: {', '.join(NETWORKS)} ({d.networks})")
    p.add_argument("--arms", nargs="+", default=None, metavar="ARM", help=f"arms: {', '.join(ALL_ARMS)}")
    p.add_argument("--naive", action="store_true", help=f"add the naive arms {', '.join(NAIVE_ARMS)}")
    p.add_argument("--seeds", type=positive_int, default=None, help=f"reported paired seeds 0..N-1 ({d.seeds})")
    p.add_argument(
        "--labels", type=_labels, nargs="+", default=None, help="labelled examples per run, e.g. 100 1000 all"
    )
    p.add_argument("--lr-grid", type=positive_float, nargs="+", default=None, help=f"first rates ({d.tuning.grid})")
    p.add_argument(
        "--max-extensions", type=int, default=None, help=f"grid extensions per side ({d.tuning.max_extensions})"
    )
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"fine-tuning batch ({d.training.batch_size})")
    p.add_argument(
        "--pretrain-epochs", type=positive_int, default=None, help=f"epochs per layer ({d.pretraining.epochs})"
    )
    p.add_argument("--data", default=None, help=f"a named data set or .npz/.pt file with labels ({d.data})")
    p.add_argument("--data-dir", default=None, help=f"where named data sets are cached ({d.data_dir})")
    p.add_argument("--val-size", type=positive_int, default=None, help=f"validation split ({d.val_size})")
    p.add_argument("--output", default=None, help=f"root of the comparison-<protocol> folders ({d.output})")
    p.add_argument("--cache", default=None, help=f"folder of cached pretrained stacks ({d.cache})")
    p.add_argument("--workers", type=positive_int, default=None, help=f"processes running cells ({d.workers})")
    p.add_argument("--threads", type=positive_int, default=None, help=f"torch threads per process ({d.threads})")
    p.add_argument("--estimate", action="store_true", help="probe this machine, print the predicted wall time, stop")
    p.add_argument("--report", action="store_true", help="only rebuild the tables and figures from the cells")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[Protocol, str]:
    a = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(a).items() if k not in ("protocol", "estimate", "report", "quiet")}
    mode = "estimate" if a.estimate else "report" if a.report else "run"
    return make_protocol(a.protocol, **overrides, quiet=a.quiet or None), mode


def main(argv: list[str] | None = None) -> int:
    def go() -> None:
        p, mode = parse_args(argv)
        if mode == "run":
            run(p)
        elif mode == "report":
            check_writable(p.folder / "summary.json")
            print(markdown(report(p, _harness(_to_json(p)))))
        else:
            e = estimate(p)
            print(f"protocol {p.name}: {len(p.groups())} groups, {e['runs']} fine-tuning runs, {e['stacks']} stacks")
            for k, s in e["pretrain_epoch_seconds"].items():
                print(f"  one pretraining epoch (all layers) {k}: {s:.1f} s x {p.pretraining.epochs}")
            for k, s in e["run_seconds"].items():
                print(f"  one fine-tuning run {k}: {s:.1f} s")
            print(
                f"  predicted wall time: {e['total_seconds'] / 60:.1f} min with {p.workers} workers "
                f"(pretraining {e['pretraining_seconds'] / 60:.1f}, fine-tuning {e['finetuning_seconds'] / 60:.1f} "
                f"process-minutes)"
            )

    return run_main("experiments.comparison", go)


if __name__ == "__main__":
    sys.exit(main())
