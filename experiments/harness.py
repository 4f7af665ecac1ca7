"""The shared harness of the fine-tuning studies: starts (arms), budgets, cells and learning-rate tuning.

Every arm builds the same MLP and fine-tunes it with the same optimizer, schedule, batch size,
budget and data order; the start of the hidden layers is the only difference. Seed ``s`` gives
every arm the same labelled subset, validation subset, data order and head init, so arms
are compared seed by seed (paired). Pretrained arms pretrain their stack on the unlabelled
training images (never the validation or test images), once per (objective, network, seed).

Learning rates are tuned on ``TUNING_SEED``, which is never a reported seed, by validation error
only (ties broken by validation loss); the test set of a tuning run is never looked at. When
the best rate sits at an edge of the grid the grid is extended past that edge, up to
``Tuning.max_extensions`` times per side; an arm that still ends at an edge is ``capped``,
one for which no rate trains (every rate diverged or stayed at chance) ``did not train``.

``finished_cell`` is the unit of every study: given the network, activation, arm, labels,
seed and tuned rate it returns the cell, training it only when the result folder lacks it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from experiments.results import CODE_VERSION, fingerprint, read_cell, stack_path, write_cell
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
TUNING_SEED = 1000  # learning rates are chosen on this seed; reported seeds are 0, 1, 2, ...
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

    def config(self, labels: int | None, n_all: int, lr: float, seed: int) -> FinetuneConfig:
        """The ``FinetuneConfig`` of one run with ``labels`` examples (None: all ``n_all``)."""
        steps = self.budget.steps(n_all if labels is None else labels, self.batch_size)
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
        settings["epochs"] = self.epochs
        return GreedyConfig.from_flat(settings)


@dataclass(frozen=True)
class Tuning:
    """The learning-rate grid: ``grid`` first, then ``step`` times past an edge, ``max_extensions`` per side."""

    grid: tuple[float, ...] = (0.1, 0.3, 1.0)
    step: float = math.sqrt(10)
    max_extensions: int = 4


@dataclass
class Harness:
    """What every cell of a study shares: the data, where cells and stacks live, the protocol."""

    dataset: Dataset
    folder: Path
    training: Training = field(default_factory=Training)
    pretraining: Pretraining = field(default_factory=Pretraining)
    cache: Path | None = None
    data_key: dict = field(init=False)

    def __post_init__(self) -> None:
        self.data_key = fingerprint(self.dataset)

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
        key = {"objective": objective, "network": network.name, "seed": seed}
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
    def cell_key(self, network: Network, arm: str, labels: int | None, seed: int, lr: float) -> dict:
        """Everything a cell's number depends on."""
        config = self.training.config(labels, len(self.dataset.train), lr, seed)
        key = {
            "code": CODE_VERSION,
            "role": "tuning" if seed == TUNING_SEED else "reported",
            "network": asdict(network),
            "arm": arm,
            "labels": labels,
            "seed": seed,
            "lr": lr,
            "finetune": asdict(config),
            "data": self.data_key,
        }
        if arm in STACK_ARMS:
            key["pretraining"] = self.pretraining.config(arm, network, seed).to_dict()
        return key

    def cell(self, network: Network, arm: str, labels: int | None, seed: int, lr: float) -> dict:
        """The finished cell: read back when the folder has it, else trained and written."""
        key = self.cell_key(network, arm, labels, seed, lr)
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
                "converged": r.stopped_early and r.fitted,
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
                "n_train": r.n_train,
                "n_val": r.n_val,
            }
            if reported:
                outcome.update(test_error=100 * r.test_error_final, test_errors=r.test_errors, n_test=r.n_test)
        record = {**outcome, "finetune_seconds": time.perf_counter() - t0, "pretrain_seconds": pre_seconds}
        return write_cell(self.folder, key, record)

    def finished_cell(
        self, hidden: list[int], activation: str, arm: str, labels: int | None, seed: int, lr: float, name: str = ""
    ) -> dict:
        """The reported cell of ``arm`` on the ``784-hidden-10`` ``activation`` network at the tuned ``lr``."""
        network = Network(name or f"{activation}-{'-'.join(map(str, hidden))}", tuple(hidden), activation)
        return self.cell(network, arm, labels, seed, lr)

    # ------------------------------------------------------------------------- tuning
    def tune(self, network: Network, arm: str, labels: int | None, tuning: Tuning) -> dict:
        """Choose ``arm``'s rate on ``TUNING_SEED`` by validation error, extending the grid past an edge.

        Returns ``choice``'s verdict on the tuning cells once the grid needs no more extension.
        """
        cells = {lr: self.cell(network, arm, labels, TUNING_SEED, lr) for lr in tuning.grid}
        while True:
            verdict = choice(cells, tuning)
            side = verdict["extend"]
            if side is None:
                return verdict
            rates = sorted(cells)
            lr = _round(rates[0] / tuning.step if side == "down" else rates[-1] * tuning.step)
            cells[lr] = self.cell(network, arm, labels, TUNING_SEED, lr)


def choice(cells: dict[float, dict], tuning: Tuning) -> dict:
    """The verdict of a grid of tuning cells (``{rate: cell}``), from their validation numbers alone.

    The best rate trained with the lowest validation error (ties: lowest validation loss).
    ``status``: ``interior``; ``capped`` (at an edge that was extended ``max_extensions`` times);
    ``did not train`` (no rate trained; ``lr`` is None); ``extend`` names the side to extend
    next (``"down"``/``"up"``) while the best sits at an edge that may still grow, else None.
    """
    rates = sorted(cells)
    trials = {f"{lr:g}": None if cells[lr]["diverged"] else cells[lr]["val_error_best"] for lr in rates}
    extended = {
        "down": sum(lr < min(tuning.grid) for lr in rates),
        "up": sum(lr > max(tuning.grid) for lr in rates),
    }
    verdict = {"lr": None, "status": "did not train", "extend": None, "trials": trials, "extended": extended}
    trained = [lr for lr in rates if cells[lr]["trained"]]
    if not trained:
        return verdict
    best = min(trained, key=lambda lr: (cells[lr]["val_error_best"], cells[lr]["val_loss_best"]))
    edges = [side for side, edge in (("down", best == rates[0]), ("up", best == rates[-1])) if edge]
    free = [side for side in edges if extended[side] < tuning.max_extensions]
    status = "capped" if edges and not free else "interior" if not edges else "edge"
    return {**verdict, "lr": best, "status": status, "extend": free[0] if free else None}


def _round(lr: float) -> float:
    """Three significant digits, so that extended rates have short, stable names."""
    return float(f"{lr:.3g}")


def _percent(values) -> list[float]:
    return [100.0 * float(v) for v in values]


def group_of(arm: str) -> str:
    """``pretrained``, ``plain`` or ``naive``."""
    return "pretrained" if arm in STACK_ARMS else "naive" if arm in NAIVE_ARMS else "plain"
