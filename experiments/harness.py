"""The shared harness of the fine-tuning studies: starts (arms), budgets, cells and learning-rate tuning.

Every arm builds the same MLP and fine-tunes it with the same optimizer, schedule, batch size,
budget and data order; the start of the hidden layers is the only difference. Seed ``s`` gives
every arm the same labelled subset, validation subset, data order and head init, so arms
are compared seed by seed (paired). Pretrained arms pretrain their stack on the unlabelled
training images (never the validation or test images), once per (objective, network, seed).

Learning rates are tuned on two seeds (``TUNING_SEEDS``) that are never reported, by validation
error only (ties broken by validation loss); the test set of a tuning run is never looked at.
``choice`` holds the rules: every rate runs on the first tuning seed; a rate *fails* when it
diverged, never got below ``CHANCE_MARGIN`` of chance (``not trained``) or is not fitted at its
restored checkpoint, and a rate that failed on either seed is out. The best rate left is the one
with the lowest validation error, except that when the rate above it failed, the next lower
rate is preferred if its validation error is within one binomial standard error of the best.
When the choice sits at an edge of the grid the grid is extended past that edge, up to
``Tuning.max_extensions`` times per side (an arm that still ends at an edge is ``capped``).
The choice then runs on the second tuning seed; if it fails there it is out and the choice is
made again. An arm for which no rate trains at all ``did not train``; one whose every trained
rate failed has ``no rate passed``.

Budgets scale: a cell at budget ``f`` runs ``Budget.scaled(f)`` (decay and cap both ``f`` times
longer). At ``f != 1`` an arm's rate is tuned again over ``neighbour_grid`` of its choice at
``f = 1`` (the choice and one grid step either side, extended past an edge by the same rules).

``finished_cell`` is the unit of every study: given the network, activation, arm, labels,
seed, tuned rate and budget it returns the cell, training it only when the result folder lacks it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from experiments.results import (
    CELL_MODULES,
    code_version,
    fingerprint,
    read_cell,
    stack_modules,
    stack_path,
    write_cell,
)
from pretrain.checkpoint import load_checkpoint, save_atomic
from pretrain.data import Dataset
from pretrain.errors import DivergenceError, PretrainError
from pretrain.finetuning import FinetuneConfig, finetune, labelled_subsets
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.init import HEAD_INIT, initialize
from pretrain.layers.rbm import PRESETS
from pretrain.mlp import build_mlp

PRETRAINED_ARMS = ("autoencoder", "denoising", "rbm")
# pretrained greedily on the labelled examples of the run, a temporary softmax head per layer
SUPERVISED_ARMS = ("supervised",)
PLAIN_ARMS = ("xavier-uniform", "he-normal", "lecun-normal", "orthogonal", "lsuv", "torch-default")
NAIVE_ARMS = ("small-normal", "large-normal", "zeros")
ALL_ARMS = PRETRAINED_ARMS + SUPERVISED_ARMS + PLAIN_ARMS + NAIVE_ARMS
STACK_ARMS = PRETRAINED_ARMS + SUPERVISED_ARMS  # arms whose hidden layers come from a pretrained stack
BASELINES = ("xavier-uniform", "he-normal")  # every arm's paired difference is taken against these
HEAD_SEED_OFFSET = 7919  # the head's generator is seeded with seed + this, apart from the body's
TUNING_SEEDS = (1000, 1001)  # rates are chosen on the first and confirmed on the second; reported: 0, 1, 2, ...
CHANCE_MARGIN = 0.9  # a run trained if its best validation error is below this fraction of chance


@dataclass(frozen=True)
class Network:
    """A classifier body: ``hidden`` sizes with one ``activation``; ``name`` labels its cells."""

    name: str
    hidden: tuple[int, ...]
    activation: str

    def sizes(self, n_in: int, n_out: int) -> list[int]:
        return [n_in, *self.hidden, n_out]


@dataclass(frozen=True)
class Budget:
    """How long a fine-tuning run with N labels may train, all in optimizer steps.

    With ``s = ceil(N / batch)`` steps per epoch: the rate decays (cosine) over
    ``decay = max(min_decay_steps, decay_epochs · s)`` steps and then stays at ``final_lr``
    of its start; the cap is ``cap_factor · decay``; validation every ``decay / evals_per_decay``
    steps; stop after ``patience`` evaluations without a lower validation error once the
    training error of an evaluation window is at most ``fit_error`` (after twice as many when
    it never gets there: such a run is flagged "not fitted").
    """

    decay_epochs: float = 15.0
    min_decay_steps: int = 3000  # 1,000 left sigmoid Xavier and He starts unfitted on 1,000 labels
    cap_factor: float = 2.0
    evals_per_decay: int = 40
    patience: int = 8
    final_lr: float = 0.01
    fit_error: float = 0.005

    def scaled(self, factor: float) -> Budget:
        """This budget ``factor`` times longer: the decay (both its floor and its epochs), hence the cap,
        the evaluation interval and the patience in steps."""
        if factor == 1:
            return self
        return replace(
            self, decay_epochs=self.decay_epochs * factor, min_decay_steps=round(self.min_decay_steps * factor)
        )

    def steps(self, n_labels: int, batch_size: int) -> dict:
        """``decay_steps``, ``max_steps``, ``eval_every`` and ``patience`` for ``n_labels`` examples."""
        per_epoch = math.ceil(n_labels / min(batch_size, n_labels))
        decay = max(self.min_decay_steps, round(self.decay_epochs * per_epoch))
        return {
            "decay_steps": decay,
            "max_steps": round(self.cap_factor * decay),
            "eval_every": max(1, decay // self.evals_per_decay),
            "patience": self.patience,
            "unfitted_patience": 2 * self.patience,
        }


@dataclass(frozen=True)
class Training:
    """The fine-tuning protocol every arm shares (besides its rate, which is tuned)."""

    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_size: int = 128
    freeze_epochs: int = 0
    val_cap: int = 5000  # N labels validate on min(N, val_cap) examples; all labels on the whole split
    budget: Budget = field(default_factory=Budget)
    precision: str = "fp32"  # or bf16: autocast with fp32 weights

    def config(self, labels: int | None, n_all: int, lr: float, seed: int, budget: float = 1.0) -> FinetuneConfig:
        """The ``FinetuneConfig`` of one run with ``labels`` examples (None: all ``n_all``) at ``budget`` × B."""
        steps = self.budget.scaled(budget).steps(n_all if labels is None else labels, self.batch_size)
        return FinetuneConfig(
            optimizer=self.optimizer,
            lr=lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            final_lr=self.budget.final_lr,
            fit_error=self.budget.fit_error,
            batch_size=self.batch_size,
            freeze_epochs=self.freeze_epochs,
            labels=labels,
            val_labels=None if labels is None else min(labels, self.val_cap),
            seed=seed,
            precision=self.precision,
            **steps,
        )


@dataclass(frozen=True)
class Pretraining:
    """How the pretrained arms pretrain their stack (all layers, greedily)."""

    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 128
    noise_level: float = 0.25
    rbm_preset: str = "hinton2006"
    precision: str = "fp32"  # or bf16: autocast with fp32 weights

    def config(self, objective: str, network: Network, seed: int) -> GreedyConfig:
        settings = {"layers": list(network.hidden), "activation": network.activation, "seed": seed}
        if objective == "rbm":
            if self.rbm_preset not in PRESETS:
                raise PretrainError(f"unknown RBM preset {self.rbm_preset!r}; choose from {', '.join(PRESETS)}")
            settings.update({**PRESETS[self.rbm_preset], "objective": "rbm"})
        else:
            settings.update(objective=objective, lr=self.lr, batch_size=self.batch_size)
            if objective == "denoising":
                settings.update(noise_level=self.noise_level)
        settings.update(epochs=self.epochs, precision=self.precision)
        return GreedyConfig.from_flat(settings)


@dataclass(frozen=True)
class Tuning:
    """The learning-rate grid: ``grid`` first, then ``step`` times past an edge, ``max_extensions`` per side.

    ``require_fit``: a rate whose run is not fitted at its restored checkpoint fails (off only for
    budget-limited protocols, whose runs are not meant to fit).
    """

    grid: tuple[float, ...] = (0.1, 0.3, 1.0)
    step: float = math.sqrt(10)
    max_extensions: int = 4
    require_fit: bool = True


@dataclass
class Harness:
    """What every cell of a study shares: the data, where cells and stacks live, the protocol."""

    dataset: Dataset
    folder: Path
    training: Training = field(default_factory=Training)
    pretraining: Pretraining = field(default_factory=Pretraining)
    cache: Path | None = None
    data_key: dict = field(init=False)
    code: dict = field(init=False)  # "cell" and each stack objective: the digest of the code behind their numbers

    def __post_init__(self) -> None:
        self.data_key = fingerprint(self.dataset)
        self.code = {"cell": code_version(CELL_MODULES)}
        self.code.update({arm: code_version(stack_modules(arm)) for arm in STACK_ARMS})

    # ------------------------------------------------------------------------- starts
    def stack(self, objective: str, network: Network, seed: int, labels: int | None = None) -> tuple[dict, dict]:
        """The pretrained encoder (``build_mlp`` keys) and its record (seconds, config, losses).

        Unsupervised objectives pretrain on every training image. The supervised arm pretrains on
        the ``labels`` examples (and validation subset) of the run with ``seed``, with as many
        updates per layer as the unsupervised arms get. Read from the cache when a stack with the
        same config on the same data is there.
        """
        config = self.pretraining.config(objective, network, seed)
        x, x_val, y, y_val = self.dataset.train.x, self.dataset.val.x, None, None
        key = {"objective": objective, "network": network.name, "seed": seed, "code": self.code[objective]}
        if objective in SUPERVISED_ARMS:
            train, val = labelled_subsets(self.dataset, self.training.config(labels, len(x), 1.0, seed))
            x, x_val, y, y_val = train.x, val.x, train.y, val.y
            config = replace(config, epochs=math.ceil(config.epochs * len(self.dataset.train) / len(x)))
            key["labels"] = labels
        key.update(config=config.to_dict(), data=self.data_key)
        cached = stack_path(self.cache, key) if self.cache is not None else None
        if cached is not None and cached.is_file():
            saved = load_checkpoint(cached)
            return saved["state_dict"], saved["metadata"]
        t0 = time.perf_counter()
        pretrainer = GreedyPretrainer(config).fit(x, x_val, y=y, y_val=y_val)
        record = {
            "seconds": time.perf_counter() - t0,
            "config": config.to_dict(),
            "train_loss": [h.train_loss for h in pretrainer.history_],
            "val_loss": [h.val_loss for h in pretrainer.history_],
        }
        state = pretrainer.state_dict_sequential()
        if cached is not None:
            save_atomic({"state_dict": state, "metadata": record}, cached)
        return state, record

    def start(self, network: Network, arm: str, seed: int, stack: dict | None = None) -> nn.Sequential:
        """The arm's start for ``seed``: the body from the arm (or ``stack``), the head the same for every arm."""
        data = self.dataset
        model = build_mlp(data.n_features, list(network.hidden), data.n_classes, network.activation)
        if arm in STACK_ARMS:
            missing, unexpected = model.load_state_dict(stack, strict=False)
            assert not unexpected and len(missing) == 2, (missing, unexpected)  # only the head is left
        else:
            x = data.train.x if arm == "lsuv" else None
            initialize(model, arm, generator=torch.Generator().manual_seed(seed), data=x)
        initialize(model[-1], HEAD_INIT, generator=torch.Generator().manual_seed(seed + HEAD_SEED_OFFSET))
        return model

    # -------------------------------------------------------------------------- cells
    def cell_key(
        self, network: Network, arm: str, labels: int | None, seed: int, lr: float, budget: float = 1.0
    ) -> dict:
        """Everything a cell's number depends on (the code: ``code["cell"]``, plus the stack's for a stack arm)."""
        config = self.training.config(labels, len(self.dataset.train), lr, seed, budget)
        key = {
            "code": self.code["cell"],
            "role": "tuning" if seed in TUNING_SEEDS else "reported",
            "network": asdict(network),
            "arm": arm,
            "labels": labels,
            "seed": seed,
            "lr": lr,
            "budget": budget,
            "finetune": asdict(config),
            "data": self.data_key,
        }
        if arm in STACK_ARMS:
            key["pretraining"] = self.pretraining.config(arm, network, seed).to_dict()
            key["stack_code"] = self.code[arm]
        return key

    def cell(self, network: Network, arm: str, labels: int | None, seed: int, lr: float, budget: float = 1.0) -> dict:
        """The finished cell: read back when the folder has it, else trained and written."""
        key = self.cell_key(network, arm, labels, seed, lr, budget)
        found = read_cell(self.folder, key)
        if found is not None:
            return found
        stack, pre_seconds = None, 0.0
        if arm in STACK_ARMS:
            stack, record = self.stack(arm, network, seed, labels)
            pre_seconds = record["seconds"]
        model = self.start(network, arm, seed, stack)
        config = FinetuneConfig(**key["finetune"])
        reported = key["role"] == "reported"
        t0 = time.perf_counter()
        try:
            r = finetune(model, self.dataset, config, score_test=reported)
        except DivergenceError as err:
            outcome = {"diverged": True, "message": str(err), "trained": False}
        else:
            chance = 1 - 1 / self.dataset.n_classes
            outcome = {
                "diverged": False,
                "trained": r.val_error_best < CHANCE_MARGIN * chance,
                "converged": r.stopped_early and r.fitted,  # fitted: at the restored checkpoint
                "stopped_early": r.stopped_early,
                "fitted": r.fitted,
                "steps": r.steps,
                "train_error": _percent(r.train_error),
                "val_error": _percent(r.val_error),
                "best_step": r.best_step,
                "steps_run": r.steps_run,
                "max_steps": r.max_steps,
                "steps_per_epoch": r.steps_per_epoch,
                "val_error_best": 100 * r.val_error_best,
                "val_loss_best": r.val_loss_best,
                "train_error_final": 100 * r.train_error_final,
                "train_loss_final": r.train_loss_final,
                "n_train": r.n_train,
                "n_val": r.n_val,
            }
            if reported:
                outcome.update(test_error=100 * r.test_error_final, test_errors=r.test_errors, n_test=r.n_test)
        record = {
            **outcome,
            "failure": failure({**outcome}, require_fit=True),
            "finetune_seconds": time.perf_counter() - t0,
            "pretrain_seconds": pre_seconds,
            "torch": str(torch.__version__),
        }
        return write_cell(self.folder, key, record)

    def finished_cell(
        self,
        hidden: list[int],
        activation: str,
        arm: str,
        labels: int | None,
        seed: int,
        lr: float,
        name: str = "",
        budget: float = 1.0,
    ) -> dict:
        """The reported cell of ``arm`` on the ``784-hidden-10`` ``activation`` network at the tuned ``lr``."""
        network = Network(name or f"{activation}-{'-'.join(map(str, hidden))}", tuple(hidden), activation)
        return self.cell(network, arm, labels, seed, lr, budget)

    # ------------------------------------------------------------------------- tuning
    def tune(
        self,
        network: Network,
        arm: str,
        labels: int | None,
        tuning: Tuning,
        budget: float = 1.0,
        grid: tuple[float, ...] | None = None,
    ) -> dict:
        """Choose ``arm``'s rate at ``budget`` by ``choice``'s rules, training the tuning cells it needs."""

        def get(seed: int, lr: float) -> dict:
            return self.cell(network, arm, labels, seed, lr, budget)

        return tune_rates(get, grid or tuning.grid, tuning)


def failure(cell: dict, require_fit: bool = True) -> str | None:
    """Why a run failed: ``diverged``, ``not trained`` (stayed near chance) or ``not fitted`` (at its
    restored checkpoint; only with ``require_fit``), else None."""
    if cell["diverged"]:
        return "diverged"
    if not cell["trained"]:
        return "not trained"
    if require_fit and not cell["fitted"]:
        return "not fitted"
    return None


def standard_error(cell: dict) -> float:
    """The binomial standard error (in points) of a cell's best validation error on its ``n_val`` examples."""
    p = cell["val_error_best"] / 100
    return 100 * math.sqrt(p * (1 - p) / cell["n_val"])


def choice(cells: dict[float, dict], confirmed: dict[float, dict], grid: tuple[float, ...], tuning: Tuning) -> dict:
    """The verdict on tuning cells (``{rate: cell}`` of the first and the second tuning seed) from their
    validation numbers alone, by the rules in this module's docstring.

    ``lr``: the choice (None when no rate is left); ``status``: ``interior``, ``edge`` (the grid is
    still to be extended: ``extend`` names the side, ``"down"``/``"up"``), ``capped``, ``did not
    train`` or ``no rate passed``; ``confirm``: the rate to run on the second seed next (None when
    the choice is confirmed or there is none); ``out``: every rate that failed, and why;
    ``safer``: the choice moved one rate down from a best rate below a failed one.
    """
    rates = sorted(cells)
    fit = tuning.require_fit
    out = {}
    for lr in rates:
        why = failure(cells[lr], fit)
        if why is None and lr in confirmed and (second := failure(confirmed[lr], fit)) is not None:
            why = f"{second} (second seed)"
        if why is not None:
            out[f"{lr:g}"] = why
    verdict = {
        "lr": None,
        "status": "did not train" if not any(cells[lr]["trained"] for lr in rates) else "no rate passed",
        "extend": None,
        "confirm": None,
        "safer": False,
        "rates": rates,
        "trials": {f"{lr:g}": None if cells[lr]["diverged"] else cells[lr]["val_error_best"] for lr in rates},
        "confirmations": {
            f"{lr:g}": None if c["diverged"] else c["val_error_best"] for lr, c in sorted(confirmed.items())
        },
        "out": out,
        "extended": {"down": sum(lr < min(grid) for lr in rates), "up": sum(lr > max(grid) for lr in rates)},
    }
    ok = [lr for lr in rates if f"{lr:g}" not in out]
    if not ok:
        return verdict
    best = min(ok, key=lambda lr: (cells[lr]["val_error_best"], cells[lr]["val_loss_best"]))
    i = rates.index(best)
    if i + 1 < len(rates) and f"{rates[i + 1]:g}" in out and i > 0 and rates[i - 1] in ok:
        lower = rates[i - 1]
        if cells[lower]["val_error_best"] - cells[best]["val_error_best"] <= standard_error(cells[best]):
            best, verdict["safer"] = lower, True
    edges = [side for side, edge in (("down", best == rates[0]), ("up", best == rates[-1])) if edge]
    free = [side for side in edges if verdict["extended"][side] < tuning.max_extensions]
    status = "capped" if edges and not free else "interior" if not edges else "edge"
    extend = free[0] if free else None
    confirm = best if extend is None and best not in confirmed else None
    return {**verdict, "lr": best, "status": status, "extend": extend, "confirm": confirm}


def tune_rates(get: Callable[[int, float], dict | None], grid: tuple[float, ...], tuning: Tuning) -> dict:
    """Run ``choice`` to its end: ``get(seed, lr)`` gives a tuning cell (trained or read back).

    When ``get`` returns None (a cell not there yet, for a summary of a study in progress) the
    verdict so far comes back with ``status`` ``unfinished`` and no rate.
    """
    first, second = TUNING_SEEDS
    cells, confirmed = {}, {}
    todo = [(first, lr) for lr in grid]
    while True:
        for seed, lr in todo:
            cell = get(seed, lr)
            if cell is None:
                verdict = choice(cells, confirmed, grid, tuning) if cells else {"trials": {}, "rates": []}
                return {**verdict, "lr": None, "status": "unfinished", "extend": None, "confirm": None}
            (cells if seed == first else confirmed)[lr] = cell
        verdict = choice(cells, confirmed, grid, tuning)
        if verdict["extend"] is not None:
            rates = sorted(cells)
            todo = [(first, _round(rates[0] / tuning.step if verdict["extend"] == "down" else rates[-1] * tuning.step))]
        elif verdict["confirm"] is not None:
            todo = [(second, verdict["confirm"])]
        else:
            return verdict


def neighbour_grid(base: dict, tuning: Tuning) -> tuple[float, ...]:
    """The grid of a retune at another budget: the choice at B (``base``, a verdict) and the rate it
    tried next to it on either side (one ``step`` past it where it tried none); the whole grid when
    B chose no rate."""
    if base.get("lr") is None:
        return tuning.grid
    rates, lr = sorted(base["rates"]), base["lr"]
    i = rates.index(lr)
    below = rates[i - 1] if i > 0 else _round(lr / tuning.step)
    above = rates[i + 1] if i + 1 < len(rates) else _round(lr * tuning.step)
    return (below, lr, above)


def _round(lr: float) -> float:
    """Three significant digits, so that extended rates have short, stable names."""
    return float(f"{lr:.3g}")


def _percent(values) -> list[float]:
    return [100.0 * float(v) for v in values]


def group_of(arm: str) -> str:
    """``pretrained``, ``plain`` or ``naive``."""
    return "pretrained" if arm in STACK_ARMS else "naive" if arm in NAIVE_ARMS else "plain"
