"""``python -m experiments.comparison``: does a greedy layer-wise pretrained start beat Xavier and He, and where?

Protocols (``--protocol``):

- ``converged`` (default): the sigmoid 784-500-250-100-10 and its ReLU variant; arms autoencoder,
  denoising, rbm (sigmoid only), xavier-uniform, he-normal, lsuv, torch-default (``--naive`` adds
  the naive starts); 100, 1,000 and all labels; 5 paired seeds; every run trained to convergence;
  all-label groups at 1, 2 and 4 times the base budget B (8B when the best arm still improves
  from 2B to 4B), the others at B and 4B.
- ``paper``: Hinton & Salakhutdinov (2006): 784-500-500-2000-10, the hinton2006 RBM for 50 epochs
  per layer, fine-tuning to convergence capped at 200 epochs whose first 5 train the head only;
  arms rbm, autoencoder, denoising, xavier-uniform, he-normal; all labels; 3 seeds; 2B for rbm and
  the better of Xavier and He.
- ``quick``: a budget-limited look in minutes; every output says so.
- ``smoke``: a tiny network for the tests.

Each arm's rate is tuned on two seeds that are never reported (see ``experiments.harness``), again at
every budget past B; then every reported seed runs at that rate. A run with N labels validates on a
stratified min(N, 5000) examples of the validation split (outside the N); all labels on the whole
split. Every finished run is a cell file under ``<output>/comparison-<protocol>/cells``; a run
continues from the cells it finds. At the end: ``summary.json``, ``table.md`` and figures. The rules
(budgets, tuning, failures, the statistics family, code versions) are in ``docs/comparison.md``.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from experiments.cluster import run_phases
from experiments.common import usable_cpus
from experiments.figures import error_vs_budget, error_vs_labels, validation_curves
from experiments.harness import (
    ALL_ARMS,
    BASELINES,
    NAIVE_ARMS,
    PRETRAINED_ARMS,
    STACK_ARMS,
    TUNING_SEEDS,
    Budget,
    Harness,
    Network,
    Pretraining,
    Training,
    Tuning,
    failure,
    neighbour_grid,
    tune_rates,
)
from experiments.results import all_cells, cell_path, digest, label_key, machine
from experiments.stats import confidence_interval, holm, mean_std, median, paired_difference
from experiments.tables import markdown
from pretrain.checkpoint import check_writable, write_json, write_text
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main
from pretrain.data import load_dataset
from pretrain.errors import PretrainError
from pretrain.finetuning import FinetuneConfig
from pretrain.mlp import ACTIVATIONS
from pretrain.training import PRECISIONS

NETWORKS = {
    "sigmoid": Network("sigmoid", (500, 250, 100), "sigmoid"),  # the network the comparison reports first
    "relu": Network("relu", (500, 250, 100), "relu"),
    "hinton": Network("hinton", (500, 500, 2000), "sigmoid"),  # Hinton & Salakhutdinov 2006, MNIST
    "tiny": Network("tiny", (32, 16), "sigmoid"),  # the smoke protocol's
}
DEFAULT_ARMS = ("autoencoder", "denoising", "rbm", "xavier-uniform", "he-normal", "lsuv", "torch-default")
BUDGET_SELECTORS = ("all", "best-pretrained", "best-baseline")  # besides arm names, for --budget-arms


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
    """Every setting of one comparison (saved in ``summary.json``).

    The budget axis: all-label groups run at every factor of ``budgets`` (× the base budget B),
    groups with fewer labels at ``budgets_few``; past B only the networks in ``budget_networks``
    (None: all) and the arms ``budget_arms`` names (``all``, arm names, ``best-pretrained``,
    ``best-baseline``: the pretrained arm / the baseline with the lowest mean validation error at B).
    An all-label group extends to ``extend_budget`` when its best arm at the largest budget still
    improved on the one before by more than its interval.
    """

    name: str = "converged"
    study: str = "comparison"  # the results folder is <output>/<study>-<name>
    networks: list[str] = field(default_factory=lambda: ["sigmoid", "relu"])
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    seeds: int = 5
    labels: list[int | None] = field(default_factory=lambda: [100, 1000, None])
    budgets: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    budgets_few: list[float] = field(default_factory=lambda: [1.0, 4.0])
    budget_arms: list[str] = field(default_factory=lambda: ["all"])
    budget_networks: list[str] | None = None
    extend_budget: float | None = 8.0
    tuning: Tuning = field(default_factory=Tuning)
    training: Training = field(default_factory=Training)
    pretraining: Pretraining = field(default_factory=Pretraining)
    budget_limited: bool = False
    data: str = "mnist"
    data_dir: str = "data"
    val_size: int = 5000
    output: str = "experiments/results"
    cache: str | None = "checkpoints"
    workers: int = field(default_factory=usable_cpus)  # one single-threaded worker per core (docs/speed.md)
    threads: int = 1
    scheduler: str | None = None  # a dask.distributed scheduler's address: run the tasks there, not in workers
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

    def axis(self, network: str, labels: int | None) -> list[float]:
        """The budgets (× B) of the group (``network``, ``labels``), B first, without the extension."""
        if self.budget_networks is not None and network not in self.budget_networks:
            return [1.0]
        return sorted(set(self.budgets if labels is None else self.budgets_few) | {1.0})

    def extension(self, network: str, labels: int | None) -> float | None:
        """The budget the group may extend to (all-label groups with at least two budgets), else None."""
        axis = self.axis(network, labels)
        ok = labels is None and len(axis) > 1 and self.extend_budget is not None and self.extend_budget > axis[-1]
        return self.extend_budget if ok else None

    def stacks(self) -> list[tuple[str, str, int]]:
        """Every (objective, network, seed) a pretrained arm needs, the tuning seeds included."""
        seeds = [*TUNING_SEEDS, *range(self.seeds)]
        return [(a, net, s) for net in self.networks for a in self.arms_for(net) if a in PRETRAINED_ARMS for s in seeds]


PROTOCOLS: dict[str, dict] = {
    "converged": {},
    "paper": {
        "networks": ["hinton"],
        "arms": ["rbm", "autoencoder", "denoising", "xavier-uniform", "he-normal"],
        "seeds": 3,
        "labels": [None],
        "budgets": [1.0, 2.0],
        "budgets_few": [1.0],
        "budget_arms": ["rbm", "best-baseline"],
        "extend_budget": None,
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
        "budgets": [1.0],
        "budgets_few": [1.0],
        "extend_budget": None,
        "tuning": Tuning(max_extensions=0, require_fit=False),
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
        "budgets": [1.0, 2.0],
        "budgets_few": [1.0],
        "extend_budget": 4.0,
        "training": Training(
            batch_size=32,
            val_cap=40,
            budget=Budget(
                decay_epochs=1, min_decay_steps=80, cap_factor=1.0, evals_per_decay=8, patience=4, fit_error=0.2
            ),
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
    ``pretrain_epochs`` and ``naive`` (add the naive arms); ``extend_budget=0`` turns the extension off.
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
    if "precision" in o:
        precision = o.pop("precision")
        p.training = replace(p.training, precision=precision)
        p.pretraining = replace(p.pretraining, precision=precision)
    if o.pop("naive", False):
        p.arms = [*p.arms, *(a for a in NAIVE_ARMS if a not in p.arms)]
    if o.get("extend_budget") == 0:
        o["extend_budget"] = None
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
    for name, axis in (("--budgets", p.budgets), ("--budgets-few", p.budgets_few)):
        if not axis or any(not (math.isfinite(f) and f >= 1) for f in axis):
            raise PretrainError(f"{name} needs factors of the base budget, each at least 1, got {axis}")
    bad = [a for a in p.budget_arms if a not in BUDGET_SELECTORS and a not in ALL_ARMS]
    if bad:
        raise PretrainError(f"unknown budget arm(s) {', '.join(bad)}; give arms or {', '.join(BUDGET_SELECTORS)}")


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


# A cell lookup for one arm: (seed, lr, budget) -> the cell, trained or read back (or None: not there)
Lookup = Callable[[int, float, float], "dict | None"]


class Group:
    """One (network, labels) group's arm entries per budget, computed on demand through ``lookup(arm)``.

    Running, ``lookup`` trains what is missing; summarizing, it only finds cells. Both go through
    the same rules, so a summary recomputes exactly the choices the run made.
    """

    def __init__(self, p: Protocol, network: str, labels: int | None, lookup: Callable[[str], Lookup]):
        self.p, self.network, self.labels, self.lookup = p, network, labels, lookup
        self._entries: dict[tuple[str, float], dict] = {}

    def entry(self, arm: str, budget: float) -> dict:
        """``arm``'s tuning verdict and reported seeds at ``budget`` (see ``arm_entry``)."""
        if (arm, budget) not in self._entries:
            get, p = self.lookup(arm), self.p
            grid = p.tuning.grid if budget == 1 else neighbour_grid(self.entry(arm, 1.0), p.tuning)
            verdict = tune_rates(lambda seed, lr: get(seed, lr, budget), grid, p.tuning)
            reported = [get(s, verdict["lr"], budget) for s in range(p.seeds)] if verdict["lr"] is not None else []
            self._entries[(arm, budget)] = arm_entry(verdict, [c for c in reported if c is not None])
        return self._entries[(arm, budget)]

    def budgets(self) -> list[float]:
        """The axis and, when taken, the extension."""
        axis, ext = self.p.axis(self.network, self.labels), self.p.extension(self.network, self.labels)
        return axis + ([ext] if ext is not None and self.arms_at(ext) else [])

    def arms_at(self, budget: float) -> list[str]:
        """The arms that run at ``budget`` (from the entries at B and, for the extension, at the axis' end)."""
        p, arms = self.p, self.p.arms_for(self.network)
        axis = p.axis(self.network, self.labels)
        if budget == 1:
            return arms
        if budget in axis:
            if "all" in p.budget_arms:
                return arms
            named = [a for a in p.budget_arms if a in arms]
            picked = set(named)
            if any(s in p.budget_arms for s in ("best-pretrained", "best-baseline")):
                at_base = {a: self.entry(a, 1.0) for a in arms}
                picked |= {best_arm(at_base, STACK_ARMS) if "best-pretrained" in p.budget_arms else None}
                picked |= {best_arm(at_base, BASELINES) if "best-baseline" in p.budget_arms else None}
            return [a for a in arms if a in picked]
        if budget == p.extension(self.network, self.labels):
            top = self.arms_at(axis[-1])
            before = {a: self.entry(a, axis[-2]) for a in top}
            return top if still_improving(before, {a: self.entry(a, axis[-1]) for a in top}) else []
        return []


def best_arm(entries: dict[str, dict], among) -> str | None:
    """Of ``among``, the arm with the lowest mean validation error over its trained seeds (None: none trained).

    Validation, never test: which arms run on and whether a group extends are decisions of the protocol,
    and the test set is looked at only for the final tables.
    """
    done = [a for a in entries if a in among and entries[a]["n"]]
    return min(done, key=lambda a: entries[a]["val_error_best"]) if done else None


def still_improving(before: dict[str, dict], last: dict[str, dict]) -> bool:
    """Whether the best arm at the last budget improved on the budget before by more than its interval:
    its paired difference in validation error (last − before, over seeds trained at both) has an
    interval entirely below 0."""
    best = best_arm(last, list(last))
    if best is None or best not in before:
        return False
    seeds = sorted(set(last[best]["val_error_per_seed"]) | set(before[best]["val_error_per_seed"]), key=int)
    d = paired_difference(
        [last[best]["val_error_per_seed"].get(s) for s in seeds],
        [before[best]["val_error_per_seed"].get(s) for s in seeds],
    )
    return d["n"] >= 2 and d["ci_high"] < 0


def _stack_task(protocol_json: str, objective: str, network: str, seed: int) -> float:
    """Pretrain (or find in the cache) one stack; its pretraining seconds."""
    return _harness(protocol_json).stack(objective, network_named(network), seed)[1]["seconds"]


def _group_task(protocol_json: str, network: str, labels: int | None, arm: str, budget: float) -> dict | None:
    """Tune one arm of one (network, labels) group at one budget, then run every reported seed at the chosen
    rate; None when the arm does not run at that budget (decided from the cells of the earlier phases)."""
    p, h = _from_json(protocol_json), _harness(protocol_json)
    net = network_named(network)

    def lookup(a: str) -> Lookup:
        return lambda seed, lr, b: h.cell(net, a, labels, seed, lr, b)

    group = Group(p, network, labels, lookup)
    return group.entry(arm, budget) if arm in group.arms_at(budget) else None


def phases(p: Protocol) -> list[list[tuple[Callable, tuple]]]:
    """The work, as phases of ``(task, args)`` that run in order (the tasks inside one phase are independent):
    stacks; every arm at B; every budget of the axis past B; the extensions."""
    axis_jobs, extension_jobs = [], []
    for net, labels, arm in p.groups():
        axis_jobs += [(net, labels, arm, f) for f in p.axis(net, labels)[1:]]
        if (ext := p.extension(net, labels)) is not None:
            extension_jobs.append((net, labels, arm, ext))
    return [
        [(_stack_task, job) for job in p.stacks()],
        [(_group_task, (*g, 1.0)) for g in p.groups()],
        [(_group_task, job) for job in axis_jobs],
        [(_group_task, job) for job in extension_jobs],
    ]


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
    """Pretrain every stack, tune every (network, labels, arm, budget) and run its reported seeds; cells found
    are kept."""
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
    run_phases(text, phases(p), workers=p.workers, scheduler=p.scheduler, shared=_shared(p), quiet=p.quiet, desc=p.name)
    return harness


def _shared(p: Protocol) -> list[str]:
    """What a task may read (shipped to Dask workers): the study's cells and its arms' cached stacks."""
    seeds = [*TUNING_SEEDS, *range(p.seeds)]
    stacks = [
        str(Path(p.cache) / f"stack-{arm}-{net}-seed{seed}-*")  # results.stack_path's names
        for net in p.networks
        for arm in p.arms_for(net)
        if arm in STACK_ARMS and p.cache
        for seed in seeds
    ]
    return [str(p.folder / "cells"), *stacks]


# ------------------------------------------------------------------------------ summary
def summarize(p: Protocol, harness: Harness, cells: list[dict]) -> dict:
    """Per network, label count, budget and arm: the tuning verdict and the statistics of the reported seeds;
    per group the verdict of every pretrained arm against each baseline across budgets.

    Computed from ``cells`` alone: those whose key matches this protocol and code; the others are
    counted as ``unused_cells`` and ignored. The primary family (Holm): each pretrained arm against
    each baseline, per network and label count, at the largest budget both ran at; every other
    difference is secondary (unadjusted).
    """
    index = {digest(c["key"]): c for c in cells}
    used: set[str] = set()
    n_all = len(harness.dataset.train)
    out = {"networks": {}, "seeds": list(range(p.seeds)), "tuning_seeds": list(TUNING_SEEDS)}
    family = []  # the primary differences
    for net in p.networks:
        network = network_named(net)
        sizes = network.sizes(harness.dataset.n_features, harness.dataset.n_classes)
        entry = {"title": f"{network.activation} {'-'.join(map(str, sizes))}", "sizes": sizes, "labels": {}}
        for labels in sorted(p.labels, key=lambda n: n or math.inf):

            def lookup(arm: str, network=network, labels=labels) -> Lookup:
                def get(seed: int, lr: float, budget: float) -> dict | None:
                    key = digest(harness.cell_key(network, arm, labels, seed, lr, budget))
                    if key in index:
                        used.add(key)
                    return index.get(key)

                return get

            group = Group(p, net, labels, lookup)
            budgets = {}
            for f in group.budgets():
                arms = {a: group.entry(a, f) for a in group.arms_at(f)}
                arms = {a: e for a, e in arms.items() if e["trials"]}  # not started: left out
                _differences(arms, p.seeds)
                if arms:
                    budgets[f"{f:g}"] = {"budget": f, "arms": arms}
            verdicts = budget_verdicts(budgets)
            family += [v["primary"] for v in verdicts if v["primary"] is not None]
            entry["labels"][label_key(labels)] = {"n_labels": labels or n_all, "budgets": budgets, "verdicts": verdicts}
        out["networks"][net] = entry
    ps = [d["p"] for d in family]
    for d, adjusted in zip(family, holm(ps)):
        d["p_holm"] = adjusted
    secondary = sum(
        d.get("family") == "secondary"
        for entry in out["networks"].values()
        for block in entry["labels"].values()
        for at in block["budgets"].values()
        for e in at["arms"].values()
        for d in (e.get(f"vs_{b}") for b in BASELINES)
        if d is not None
    )
    out["family"] = {
        "comparisons": len(family),
        "tested": sum(math.isfinite(v) for v in ps),
        "secondary": secondary,
        "baselines": list(BASELINES),
        "correction": "Holm",
    }
    out["unused_cells"] = len(cells) - len(used)
    out["torch_versions"] = sorted({c["torch"] for c in cells if digest(c["key"]) in used and "torch" in c})
    return out


def _differences(arms: dict[str, dict], seeds: int) -> None:
    """Every arm's paired difference against each baseline (each pair once), marked secondary."""
    for arm, e in arms.items():
        for base in BASELINES:
            if base == arm or base not in arms or (arm in BASELINES and BASELINES.index(arm) < BASELINES.index(base)):
                continue
            if e["n"] and arms[base]["n"]:
                e[f"vs_{base}"] = {
                    **paired_difference(
                        [e["test_error_per_seed"].get(str(s)) for s in range(seeds)],
                        [arms[base]["test_error_per_seed"].get(str(s)) for s in range(seeds)],
                    ),
                    "family": "secondary",
                }


def budget_verdicts(budgets: dict[str, dict]) -> list[dict]:
    """Per pretrained arm and baseline of a group: its differences per budget and the verdict.

    A finding needs the same sign at the two largest budgets and a 95% interval excluding 0 at the
    largest; else the difference is budget-dependent (``moves``: which arm the change from the first
    to the last budget favours). With one budget there is no budget check (``one budget``).
    """
    out = []
    arms = sorted({a for b in budgets.values() for a in b["arms"] if a in STACK_ARMS})
    for arm in arms:
        for base in BASELINES:
            diffs = {
                k: b["arms"][arm][f"vs_{base}"]
                for k, b in budgets.items()
                if arm in b["arms"] and f"vs_{base}" in b["arms"][arm] and b["arms"][arm][f"vs_{base}"]["n"] >= 2
            }
            if not diffs:
                continue
            keys = sorted(diffs, key=float)
            last = diffs[keys[-1]]
            last["family"] = "primary"
            excludes = last["ci_low"] > 0 or last["ci_high"] < 0
            favours = arm if last["mean"] < 0 else base
            same_sign = len(keys) > 1 and diffs[keys[-2]]["mean"] * last["mean"] > 0
            if len(keys) == 1:
                verdict = f"one budget: {'lower for ' + favours if excludes else 'interval includes 0'}"
            elif same_sign and excludes:
                verdict = f"finding: lower for {favours}"
            else:
                why = f"sign differs at {keys[-2]}B" if not same_sign else f"interval includes 0 at {keys[-1]}B"
                moved = last["mean"] - diffs[keys[0]]["mean"]
                way = "does not move" if moved == 0 else f"moves toward {arm if moved < 0 else base}"
                verdict = f"budget-dependent ({why}): {way} from {keys[0]}B to {keys[-1]}B"
            out.append(
                {
                    "arm": arm,
                    "baseline": base,
                    "budgets": keys,
                    "means": [diffs[k]["mean"] for k in keys],
                    "n": [diffs[k]["n"] for k in keys],
                    "verdict": verdict,
                    "primary": last,
                }
            )
    return out


def arm_entry(verdict: dict, reported: list[dict]) -> dict:
    """One arm at one budget: its tuning verdict and the statistics of its reported cells.

    Failures (``not trained``, ``diverged``, ``not fitted`` at the restored checkpoint) are counted;
    the test error statistics are over the seeds that trained (not fitted ones included, and
    counted), never over a diverged or untrained seed.
    """
    why = {c["key"]["seed"]: failure(c) for c in reported}
    ok = [c for c in reported if why[c["key"]["seed"]] in (None, "not fitted")]
    errors = {str(c["key"]["seed"]): c["test_error"] for c in ok}
    stacked = [c["pretrain_seconds"] for c in reported if c["key"]["arm"] in STACK_ARMS]
    return {
        "lr": verdict["lr"],
        "status": verdict["status"],
        "safer": verdict.get("safer", False),
        "trials": verdict["trials"],
        "confirmations": verdict.get("confirmations", {}),
        "out": verdict.get("out", {}),
        "rates": verdict.get("rates", []),
        "n": len(errors),
        "n_run": len(reported),
        "failures": {k: sum(w == k for w in why.values()) for k in ("not trained", "diverged", "not fitted")},
        "failed_seeds": sorted([s, w] for s, w in why.items() if w is not None),
        "test_error_per_seed": errors,
        "val_error_per_seed": {str(c["key"]["seed"]): c["val_error_best"] for c in ok},
        "test_errors_per_seed": [c["test_errors"] for c in ok],
        "test_error_ci": confidence_interval(list(errors.values())),
        "test_error_median": median(list(errors.values())),
        "train_error_final": mean_std([c["train_error_final"] for c in ok])[0],
        "train_loss_final": mean_std([c["train_loss_final"] for c in ok])[0],
        "val_error_best": mean_std([c["val_error_best"] for c in ok])[0],
        "best_step": mean_std([c["best_step"] for c in ok])[0],
        "steps_run": mean_std([c["steps_run"] for c in ok])[0],
        "epochs_run": mean_std([c["steps_run"] / c["steps_per_epoch"] for c in ok])[0],
        "converged": sum(c["converged"] for c in ok),
        "n_val": ok[0]["n_val"] if ok else None,
        "pretrain_seconds": mean_std(stacked)[0] if stacked else None,
        "finetune_seconds": mean_std([c["finetune_seconds"] for c in reported])[0],
    }


def at_budget(entry: dict, budget: str = "1") -> dict:
    """A network's summary with each label count's arms at one budget (``{"labels": {key: {"arms": ...}}}``),
    the shape the per-label figures take."""
    labels = {k: b["budgets"][budget] for k, b in entry["labels"].items() if budget in b["budgets"]}
    return {**entry, "labels": labels}


def report(p: Protocol, harness: Harness, seconds: float | None = None) -> dict:
    """Summarize the folder's cells; write ``summary.json``, ``table.md`` and the figures.

    ``seconds``: the wall time of the run; None (a rebuild from the cells) keeps the one already recorded.
    """
    if seconds is None and (previous := p.folder / "summary.json").is_file():
        seconds = json.loads(previous.read_text()).get("seconds")
    cells = all_cells(p.folder)
    summary = {
        "protocol": asdict(p),
        **summarize(p, harness, cells),
        "dataset": {"name": harness.dataset.name, "n_train": len(harness.dataset.train), **harness.data_key},
        "code": harness.code,
        "machine": machine(),
        "seconds": seconds,
    }
    write_json(p.folder / "summary.json", summary)
    write_text(p.folder / "table.md", markdown(summary))
    n_all = len(harness.dataset.train)
    for net, entry in summary["networks"].items():
        arms = p.arms_for(net)
        base = at_budget(entry)
        if len(base["labels"]) > 1:
            error_vs_labels(base, arms, n_all, p.folder / f"error_vs_labels-{net}.png")
        for key, block in entry["labels"].items():
            if len(block["budgets"]) > 1:
                title = f"{entry['title']}, {key} labels"
                error_vs_budget(block["budgets"], arms, title, p.folder / f"error_vs_budget-{net}-{key}.png")
        for key, block in base["labels"].items():
            chosen = [
                c
                for c in cells
                if c["key"]["network"]["name"] == net
                and label_key(c["key"]["labels"]) == key
                and c["key"].get("budget") == 1
                and c["key"]["seed"] < p.seeds
                and block["arms"].get(c["key"]["arm"], {}).get("lr") == c["key"]["lr"]
                and c["key"].get("code") == harness.code["cell"]
            ]
            title = f"{entry['title']}, {key} labels: validation error of every reported seed at B"
            validation_curves(chosen, arms, title, p.folder / f"val_curves-{net}-{key}.png")
    return summary


# ----------------------------------------------------------------------------- estimate
def planned_runs(p: Protocol) -> dict:
    """How many fine-tuning runs of each length the protocol plans, without the extensions.

    Per (network, labels, arm) at B: the grid on the first tuning seed, one confirmation on the
    second and the reported seeds; past B, for the arms that run there: the three rates of the
    retune, one confirmation and the reported seeds. Grid extensions and choices made again after a
    failed confirmation are not counted. ``{(network, labels, budget): runs}``; ``extensions``: the
    runs an extension would add, per (network, labels, budget).
    """
    runs, extensions = {}, {}
    for net in p.networks:
        arms = len(p.arms_for(net))
        past = arms if "all" in p.budget_arms else min(arms, len(set(p.budget_arms)))
        for labels in p.labels:
            for f in p.axis(net, labels):
                first = len(p.tuning.grid) if f == 1 else 3  # the grid at B, the retune's three rates past it
                runs[(net, labels, f)] = (first + 1 + p.seeds) * (arms if f == 1 else past)
            if (ext := p.extension(net, labels)) is not None:
                extensions[(net, labels, ext)] = (3 + 1 + p.seeds) * past
    return {"runs": runs, "extensions": extensions}


def estimate(p: Protocol) -> dict:
    """Predict the wall time of ``run(p)`` from a real probe on this machine.

    The probe pretrains one stack per (objective, network) for one epoch per layer, runs one
    real fine-tuning cell per (network, labels) (at most ``probe_steps`` steps of it) and
    writes a report of its cells. A run is predicted to take ``run_steps`` (the cosine's end plus
    a patience, capped) times the ``stopping_fractions`` share of its labels and budget (of its labels
    alone where no run at that budget has finished, 1 where none has), at the probe's seconds per
    step; ``planned_runs`` says how many runs of each budget; the work is shared by ``workers``
    processes. An extension (e.g. 8B) is predicted separately: it runs only when a group's best arm
    still improves. Cells already in the folder are not discounted.
    """
    probe_steps = 2000
    torch.set_num_threads(p.threads)
    t0 = time.perf_counter()
    dataset = load_dataset(p.data, p.data_dir, p.val_size)
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(p, output=tmp, cache=None, seeds=1, budgets=[1.0], budgets_few=[1.0], extend_budget=None)
        h = Harness(dataset, probe.folder, p.training, replace(p.pretraining, epochs=1), None)
        fixed = time.perf_counter() - t0
        epoch = {}
        for objective, net, _ in dict.fromkeys((o, n, 0) for o, n, _ in p.stacks() + supervised_stacks(p)):
            epoch[(objective, net)] = _timed(lambda o=objective, n=net: h.stack(o, network_named(n), 0))
        step_seconds = {}
        for net in p.networks:
            for labels in p.labels:
                config = p.training.config(labels, len(dataset.train), p.tuning.grid[0], 0)
                short = min(run_steps(config), probe_steps)
                budget = replace(
                    p.training.budget,
                    patience=10**9,
                    cap_factor=1.0,
                    min_decay_steps=short,
                    decay_epochs=0,
                    evals_per_decay=max(1, short // config.eval_every),  # the real run's evaluation interval
                )
                h.training = replace(p.training, budget=budget)
                where = (network_named(net), "xavier-uniform", labels, TUNING_SEEDS[0], p.tuning.grid[0])

                def probe_cell(where=where) -> None:
                    cell_path(h.folder, h.cell_key(*where)).unlink(missing_ok=True)  # train it, do not read it back
                    h.cell(*where)

                step_seconds[(net, labels)] = _timed(probe_cell) / short
        t1 = time.perf_counter()
        report(probe, h)
        fixed += time.perf_counter() - t1

    fractions = stopping_fractions(Path(p.output))

    def share(labels: int | None, f: float) -> float:
        """The share of its longest length a run is expected to take (1 with nothing to go by)."""
        return (fractions.get(regime(labels, f)) or fractions.get(regime(labels)) or (1.0, 0))[0]

    def seconds(net: str, labels: int | None, f: float, expected: bool = True) -> float:
        longest = step_seconds[(net, labels)] * run_steps(p.training.config(labels, len(dataset.train), 1.0, 0, f))
        return longest * (share(labels, f) if expected else 1.0)

    plan = planned_runs(p)
    finetuning = sum(n * seconds(net, labels, f) for (net, labels, f), n in plan["runs"].items())
    longest = sum(n * seconds(net, labels, f, False) for (net, labels, f), n in plan["runs"].items())
    extension = sum(n * seconds(net, labels, f) for (net, labels, f), n in plan["extensions"].items())
    pretraining = sum(epoch[(o, net)] * p.pretraining.epochs for o, net, _ in p.stacks() + supervised_stacks(p))
    return {
        "pretrain_epoch_seconds": {f"{o}/{n}": s for (o, n), s in epoch.items()},
        "run_seconds": {
            f"{net}/{label_key(labels)}/{f:g}B": seconds(net, labels, f)
            for net, labels, f in sorted(plan["runs"], key=str)
        },
        "runs": sum(plan["runs"].values()),
        "extension_runs": sum(plan["extensions"].values()),
        "stacks": len(p.stacks() + supervised_stacks(p)),
        "pretraining_seconds": pretraining,
        "finetuning_seconds": finetuning,
        "extension_seconds": extension / p.workers,
        "fixed_seconds": fixed,
        "total_seconds": fixed + (pretraining + finetuning) / p.workers,
        "upper_bound_seconds": fixed + (pretraining + longest) / p.workers,
        "stopping_fractions": {k: {"fraction": f, "runs": n} for k, (f, n) in fractions.items()},
    }


def supervised_stacks(p: Protocol) -> list[tuple[str, str, int]]:
    """The supervised arm's stacks, one per (network, labels, seed): as ``(objective, network, seed)``, as
    ``Protocol.stacks`` lists the others. Each costs about one unsupervised stack: it makes as many updates
    on the run's labelled examples as those make on every training image."""
    seeds = [*TUNING_SEEDS, *range(p.seeds)]
    return [
        ("supervised", net, s)
        for net in p.networks
        for arm in p.arms_for(net)
        if arm == "supervised"
        for _ in p.labels
        for s in seeds
    ]


def run_steps(config) -> int:
    """The most steps a run is expected to take: the decay plus one patience of evaluations, at most the cap."""
    return min(config.max_steps, config.decay_steps + config.patience * config.eval_every)


def regime(labels: int | None, budget: float | None = None) -> str:
    """``all`` or ``few`` labels (runs on few labels stop much earlier in their budget), then the budget:
    ``all/4B``."""
    kind = "all" if labels is None else "few"
    return kind if budget is None else f"{kind}/{budget:g}B"


def stopping_fractions(output: Path) -> dict[str, tuple[float, int]]:
    """The mean share of ``run_steps`` that the finished runs under ``<output>/*/cells`` took.

    ``{regime: (fraction, runs)}`` per ``regime(labels, budget)`` and per ``regime(labels)`` over every
    budget; a regime without finished runs is absent. Early stopping ends most runs well before their
    decay does, and the more so the longer the budget (in the converged rerun: runs with 100 or 1,000
    labels at about 0.3 of it, all-label runs at 0.7 at B down to 0.5 at 4B), so the estimate scales each
    run by these shares.
    """
    shares: dict[str, list[float]] = {}
    for folder in sorted(output.glob("*/cells")):
        for cell in all_cells(folder.parent):
            key = cell.get("key", {})
            config, steps, budget = key.get("finetune"), cell.get("steps"), key.get("budget")
            if not config or not steps or budget is None:
                continue
            share = min(1.0, steps[-1] / run_steps(FinetuneConfig(**config)))
            for name in (regime(config["labels"]), regime(config["labels"], budget)):
                shares.setdefault(name, []).append(share)
    return {k: (sum(v) / len(v), len(v)) for k, v in sorted(shares.items())}


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


def _factor(text: str) -> float:
    value = positive_float(text)
    if value < 1:
        raise PretrainError(f"a budget factor must be at least 1 (the base budget), got {text}")
    return value


def build_parser() -> ArgumentParser:
    d = Protocol()
    p = ArgumentParser(
        prog="python -m experiments.comparison",
        description="Paired-seed comparison of pretrained starts (autoencoder, denoising, RBM) against Xavier, He, "
        "LSUV and torch-default, each arm's rate tuned and confirmed on two seeds of its own, every run trained to "
        "convergence, at several budgets. Flags left unset take the --protocol's value (defaults shown are the "
        "converged protocol's).",
    )
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="converged", help="preset of every setting below")
    p.add_argument("--networks", nargs="+", default=None, help=f"networks: {', '.join(NETWORKS)} ({d.networks})")
    p.add_argument("--arms", nargs="+", default=None, metavar="ARM", help=f"arms: {', '.join(ALL_ARMS)}")
    p.add_argument("--naive", action="store_true", help=f"add the naive arms {', '.join(NAIVE_ARMS)}")
    p.add_argument("--seeds", type=positive_int, default=None, help=f"reported paired seeds 0..N-1 ({d.seeds})")
    p.add_argument(
        "--labels", type=_labels, nargs="+", default=None, help="labelled examples per run, e.g. 100 1000 all"
    )
    p.add_argument(
        "--budgets", type=_factor, nargs="+", default=None, help=f"budgets (× B) of all-label groups ({d.budgets})"
    )
    p.add_argument(
        "--budgets-few",
        type=_factor,
        nargs="+",
        default=None,
        help=f"budgets (× B) of groups with fewer labels ({d.budgets_few})",
    )
    p.add_argument(
        "--extend-budget",
        type=float,
        default=None,
        help=f"budget an all-label group extends to while its best arm still improves; 0: never ({d.extend_budget})",
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
    p.add_argument(
        "--workers", type=positive_int, default=None, help=f"processes running cells (one per CPU core: {d.workers})"
    )
    p.add_argument("--threads", type=positive_int, default=None, help=f"torch threads per process ({d.threads})")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the tasks on the Dask cluster of this scheduler (e.g. tcp://host:8786) instead of --workers "
        "local processes; needs the [dask] extra",
    )
    p.add_argument("--estimate", action="store_true", help="probe this machine, print the predicted wall time, stop")
    p.add_argument("--report", action="store_true", help="only rebuild the tables and figures from the cells")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help=f"fine-tuning and pretraining: fp32, or bf16 autocast with fp32 weights ({d.training.precision})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[Protocol, str]:
    a = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(a).items() if k not in ("protocol", "estimate", "report", "quiet")}
    mode = "estimate" if a.estimate else "report" if a.report else "run"
    return make_protocol(a.protocol, **overrides, quiet=a.quiet or None), mode


def print_estimate(p: Protocol, e: dict) -> None:
    """The estimate, as the command prints it."""
    print(f"protocol {p.name}: {len(p.groups())} arm groups, {e['runs']} fine-tuning runs, {e['stacks']} stacks")
    for k, s in e["pretrain_epoch_seconds"].items():
        print(f"  one pretraining epoch (all layers) {k}: {s:.1f} s x {p.pretraining.epochs}")
    for k, s in e["run_seconds"].items():
        print(f"  one fine-tuning run {k}: {s:.1f} s")
    for k, v in e["stopping_fractions"].items():
        print(f"  {k} runs stop on average at {v['fraction']:.2f} of their longest ({v['runs']} finished runs)")
    print(
        f"  predicted wall time: {e['total_seconds'] / 60:.1f} min with {p.workers} workers "
        f"(pretraining {e['pretraining_seconds'] / 60:.1f}, fine-tuning {e['finetuning_seconds'] / 60:.1f} "
        f"process-minutes); at most {e['upper_bound_seconds'] / 60:.1f} min if every run went to the end of its "
        f"decay plus one patience"
    )
    if e["extension_runs"]:
        print(
            f"  extensions, if every all-label group takes one: up to {e['extension_seconds'] / 60:.1f} min more "
            f"({e['extension_runs']} runs)"
        )


def main(argv: list[str] | None = None) -> int:
    def go() -> None:
        p, mode = parse_args(argv)
        if mode == "run":
            run(p)
        elif mode == "report":
            check_writable(p.folder / "summary.json")
            print(markdown(report(p, _harness(_to_json(p)))))
        else:
            print_estimate(p, estimate(p))

    return run_main("experiments.comparison", go)


if __name__ == "__main__":
    sys.exit(main())
