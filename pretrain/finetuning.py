"""Supervised fine-tuning of a classifier: one protocol for every init, so arms differ only in their init.

Everything random here (the labelled subset and the mini-batch order) draws from generators
seeded by ``config.seed`` alone. The model comes in already initialized (see
``pretrain.init.make_classifier``, which seeds the init, head included, with the same
seed), so two runs with the same config and the same init give identical metrics on the CPU.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .data import Dataset, Split, batches
from .errors import DivergenceError, PretrainError
from .training import OPTIMIZERS, denormals_flushed, make_optimizer

SCHEDULES = ("constant", "cosine", "exponential")
_EVAL_CHUNK = 8192


@dataclass
class FinetuneConfig:
    """Every hyperparameter of a fine-tuning run (saved with the classifier).

    - ``optimizer``: ``sgd`` (with ``momentum``, Nesterov off) or ``adam``; ``weight_decay`` is L2.
    - ``schedule`` (per epoch): ``constant``; ``cosine`` from ``lr`` to 0 over ``epochs``;
      ``exponential``: ``lr · gamma^epoch``.
    - ``patience``: stop after this many epochs without a lower validation error (None: never);
      the weights of the best validation epoch are restored at the end.
    - ``freeze_epochs``: the first N epochs train only the head (the last ``nn.Linear``).
    - ``labels``: fine-tune on a stratified subset of this many training examples (None: all).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    gamma: float = 0.95
    epochs: int = 30
    batch_size: int = 128
    patience: int | None = 5
    freeze_epochs: int = 0
    labels: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise PretrainError(msg)

        need(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        need(math.isfinite(self.lr) and self.lr > 0, f"learning rate must be positive, got {self.lr}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            f"weight decay must be >= 0, got {self.weight_decay}",
        )
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        need(self.batch_size > 0, f"batch size must be positive, got {self.batch_size}")
        need(self.patience is None or self.patience > 0, f"patience must be positive, got {self.patience}")
        need(self.freeze_epochs >= 0, f"freeze epochs must be >= 0, got {self.freeze_epochs}")
        need(self.labels is None or self.labels > 0, f"--labels must be positive, got {self.labels}")


@dataclass
class FinetuneResult:
    """Per-epoch metrics (errors are fractions in [0, 1]) and the outcome of one run.

    ``train_loss``/``train_error`` are averaged over the epoch's mini-batches while training;
    ``val_error``/``test_error`` are measured after each epoch. ``test_error_final`` is the test
    error of ``best_epoch`` (1-based, lowest validation error), whose weights the model ends with.
    """

    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    test_error_final: float = float("nan")
    test_errors: int = 0
    n_test: int = 0
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    n_train: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def stratified_subset(y: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` examples with class proportions as in ``y`` (largest-remainder rounding)."""
    if n <= 0 or n > y.shape[0]:
        raise PretrainError(f"--labels must be between 1 and the {y.shape[0]} training examples, got {n}")
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * n / y.shape[0]
    take = quota.floor().long()
    left = n - int(take.sum())
    if left:  # largest remainders first; ties go to the lower class index
        order = torch.argsort(-(quota - take), stable=True)
        take[order[:left]] += 1
    picked = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(y == c).flatten()
        picked.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    return torch.sort(torch.cat(picked)).values


@torch.no_grad()
def error_rate(model: nn.Module, split: Split) -> tuple[float, int]:
    """``(fraction, count)`` of misclassified examples of ``split``."""
    wrong = 0
    for x, y in zip(split.x.split(_EVAL_CHUNK), split.y.split(_EVAL_CHUNK)):
        wrong += int((model(x).argmax(1) != y).sum())
    return wrong / max(len(split), 1), wrong


def _check(model: nn.Module, dataset: Dataset) -> tuple[nn.Linear, int]:
    for name, split in (("training", dataset.train), ("validation", dataset.val), ("test", dataset.test)):
        if split.y is None:
            raise PretrainError(f"{dataset.name}: the {name} split has no labels; fine-tuning needs y")
        if len(split) == 0:
            raise PretrainError(f"{dataset.name}: the {name} split is empty")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PretrainError("the model has no nn.Linear layer")
    if linears[0].in_features != dataset.n_features:
        raise PretrainError(f"the model takes {linears[0].in_features} inputs, {dataset.name} has {dataset.n_features}")
    n_classes = 1 + max(int(s.y.max()) for s in (dataset.train, dataset.val, dataset.test))
    if linears[-1].out_features < n_classes:
        raise PretrainError(f"the model has {linears[-1].out_features} outputs, {dataset.name} has {n_classes} classes")
    return linears[-1], n_classes


def _lr_factor(config: FinetuneConfig):
    if config.schedule == "cosine":
        return lambda e: 0.5 * (1 + math.cos(math.pi * e / config.epochs))
    if config.schedule == "exponential":
        return lambda e: config.gamma**e
    return lambda e: 1.0


def finetune(
    model: nn.Sequential, dataset: Dataset, config: FinetuneConfig, *, progress: bool = False
) -> FinetuneResult:
    """Train ``model`` (in place, on its own device) on ``dataset``'s labels; return the metrics.

    Cross-entropy on the model's outputs (logits). Raises ``DivergenceError`` naming the epoch
    when the training loss becomes NaN or infinite, ``PretrainError`` for bad input.
    Runs with denormal floats flushed to zero, as the greedy trainer does.
    """
    with denormals_flushed():
        return _finetune(model, dataset, config, progress)


def _finetune(model: nn.Sequential, dataset: Dataset, config: FinetuneConfig, progress: bool) -> FinetuneResult:
    head, _ = _check(model, dataset)
    device = next(model.parameters()).device
    data = dataset.to(device)
    x, y = data.train.x, data.train.y
    if config.labels is not None:
        subset_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + 1)
        idx = stratified_subset(dataset.train.y, config.labels, subset_gen).to(device)
        x, y = x[idx], y[idx]
    n_total = x.shape[0]
    x, y = distributed.shard(x, y)  # under torchrun: this rank's rows only
    batch_size = distributed.local_batch_size(config.batch_size)  # the global batch is config.batch_size
    order_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + 2)

    params = list(model.parameters())
    trainable = [p.requires_grad for p in params]  # restored at the end; frozen-by-the-user stays frozen
    head_params = {id(p) for p in head.parameters()}
    opt = make_optimizer(params, config.optimizer, config.lr, config.momentum, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config))
    net, net_frozen = model, None

    result = FinetuneResult(n_train=n_total, n_test=len(data.test))
    best_val, best_state, since_best = math.inf, None, 0
    n_batches = math.ceil(x.shape[0] / batch_size)
    bar = tqdm(
        total=config.epochs * n_batches, disable=not progress, desc="fine-tune", unit="batch", dynamic_ncols=True
    )
    t_start = time.perf_counter()
    try:
        for epoch in range(config.epochs):
            frozen = epoch < config.freeze_epochs
            for p, want in zip(params, trainable):
                p.requires_grad_(want and (not frozen or id(p) in head_params))
            if distributed.is_distributed() and frozen != net_frozen:
                # DDP averages the gradients across ranks during backward; it syncs the parameters
                # that require grad when built, so it is rebuilt when the head-only epochs end
                net, net_frozen = distributed.ddp(model), frozen
            model.train()
            loss_sum = torch.zeros((), device=device)
            wrong = torch.zeros((), dtype=torch.long, device=device)
            for i, idx in enumerate(batches(x.shape[0], batch_size, order_gen, device)):
                logits = net(x[idx])
                loss = F.cross_entropy(logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * idx.numel()
                wrong += (logits.detach().argmax(1) != y[idx]).sum()
                if i % 50 == 49:
                    bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)
                bar.update(1)
            scheduler.step()
            train_loss = distributed.all_reduce_sum(loss_sum).item() / n_total
            if not math.isfinite(train_loss):
                raise DivergenceError(
                    f"epoch {epoch + 1}: the training loss became {train_loss}; "
                    f"try a smaller learning rate than --lr {config.lr:g}"
                )
            model.eval()
            val_err, _ = error_rate(model, data.val)
            test_err, _ = error_rate(model, data.test)
            result.train_loss.append(train_loss)
            result.train_error.append(distributed.all_reduce_sum(wrong).item() / n_total)
            result.val_error.append(val_err)
            result.test_error.append(test_err)
            result.epochs_run = epoch + 1
            bar.set_postfix(loss=f"{train_loss:.4g}", val_err=f"{100 * val_err:.2f}%", frozen=frozen)
            if val_err < best_val:
                best_val, since_best, result.best_epoch = val_err, 0, epoch + 1
                best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
                if config.patience is not None and since_best >= config.patience:
                    result.stopped_early = epoch + 1 < config.epochs
                    break
    finally:
        bar.close()
        for p, want in zip(params, trainable):
            p.requires_grad_(want)
    result.seconds = time.perf_counter() - t_start
    model.load_state_dict(best_state)
    model.eval()
    result.test_error_final, result.test_errors = error_rate(model, data.test)
    return result
