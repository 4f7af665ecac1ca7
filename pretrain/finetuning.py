"""Supervised fine-tuning of a classifier: one protocol for every init, so arms differ only in their init.

Budgets are counted in optimizer steps. Validation error is measured every ``eval_every`` steps;
early stopping keeps the weights of the lowest validation error and restores them at the end.
The test set is looked at once, at the very end, on those restored weights.

Everything random here (the labelled subset, the validation subset and the mini-batch order)
draws from generators seeded by ``config.seed`` alone. The model comes in already initialized
(see ``pretrain.classifier.make_classifier``, which seeds the init, head included, with the same
seed), so two runs with the same config and the same init give identical metrics on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .data import Dataset, Split, dense_chunks, dense_rows
from .errors import DivergenceError, PretrainError, require
from .training import (
    OPTIMIZERS,
    PRECISIONS,
    LinearChain,
    autocast,
    denormals_flushed,
    make_optimizer,
    optimizer_step,
)

SCHEDULES = ("constant", "cosine", "exponential")
MONITORS = ("val_error", "train_loss")
_EVAL_CHUNK = 1024  # rows per evaluation forward pass: small enough to stay in cache, faster than 512 or 8192 on a CPU


@dataclass
class FinetuneConfig:
    """Every hyperparameter of a fine-tuning run (saved with the classifier).

    - ``optimizer``: ``sgd`` (with ``momentum``, Nesterov off) or ``adam``; ``weight_decay`` is L2.
    - The step cap is ``max_steps``, or ``epochs`` passes over the labelled examples when unset.
    - ``schedule`` (per step): ``constant``; ``cosine`` from ``lr`` down to ``lr · final_lr`` over
      ``decay_steps`` (default: the cap), then held there; ``exponential``: ``lr · gamma^epoch``.
    - ``eval_every``: optimizer steps between validation evaluations (None: once per epoch).
    - ``patience``: stop after this many evaluations without a lower validation error (None:
      never). With ``fit_error`` set, not before the training error of the steps between two
      evaluations has been at most ``fit_error`` (the run has fitted its training set); a run
      that has not fitted stops after ``unfitted_patience`` evaluations without a lower
      validation error (None: never). The best-validation weights are restored at the end.
    - ``monitor``: what patience and the best weights judge, ``val_error`` (default) or ``train_loss``
      (the mean training loss since the previous evaluation: stopping without a validation set).
    - ``tol``: an evaluation counts as an improvement only when it beats the best so far by more than
      ``tol`` (in the monitored value's units); the best weights are still the lowest value's.
    - ``restore_best``: end with the best evaluation's weights (default), or with the last ones.
    - ``freeze_epochs``: the first N epochs train only the head (the last ``nn.Linear``).
    - ``labels``: fine-tune on a stratified subset of this many training examples (None: all).
    - ``val_labels``: validate on a stratified subset of this many validation examples (None: all).
    - ``precision``: ``fp32``, or ``bf16`` (autocast of the training steps and the validation; weights
      and optimizer state stay fp32; the final training and test errors are scored in fp32).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    gamma: float = 0.95
    epochs: int = 30
    max_steps: int | None = None
    decay_steps: int | None = None
    final_lr: float = 0.0
    eval_every: int | None = None
    batch_size: int = 128
    patience: int | None = 5
    fit_error: float | None = None
    unfitted_patience: int | None = None
    freeze_epochs: int = 0
    labels: int | None = None
    val_labels: int | None = None
    seed: int = 0
    precision: str = "fp32"
    monitor: str = "val_error"
    tol: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        def positive_or_none(value, name: str) -> None:
            require(value is None or value > 0, f"{name} must be positive, got {value}")

        require(
            self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"
        )
        require(
            self.precision in PRECISIONS, f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}"
        )
        require(self.monitor in MONITORS, f"unknown monitor {self.monitor!r}; choose from {', '.join(MONITORS)}")
        require(math.isfinite(self.tol) and self.tol >= 0, f"tol must be >= 0, got {self.tol}")
        require(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        require(math.isfinite(self.lr) and self.lr > 0, f"learning rate must be positive, got {self.lr}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            f"weight decay must be >= 0, got {self.weight_decay}",
        )
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(0 <= self.final_lr <= 1, f"final lr must be a fraction in [0, 1] of lr, got {self.final_lr}")
        require(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        require(self.batch_size > 0, f"batch size must be positive, got {self.batch_size}")
        require(self.freeze_epochs >= 0, f"freeze epochs must be >= 0, got {self.freeze_epochs}")
        require(
            self.fit_error is None or 0 <= self.fit_error <= 1, f"fit error must be in [0, 1], got {self.fit_error}"
        )
        for name in ("max_steps", "decay_steps", "eval_every", "patience", "unfitted_patience"):
            positive_or_none(getattr(self, name), name.replace("_", " "))
        require(self.labels is None or self.labels > 0, f"--labels must be positive, got {self.labels}")
        require(
            self.val_labels is None or self.val_labels > 0, f"validation labels must be positive, got {self.val_labels}"
        )


@dataclass
class FinetuneResult:
    """Metrics per evaluation (errors are fractions in [0, 1]) and the outcome of one run.

    ``steps[i]`` is the number of optimizer steps done at evaluation ``i``; ``train_loss`` and
    ``train_error`` average the mini-batches since the previous evaluation, ``val_error`` and
    ``val_loss`` are measured at it. ``best_step`` is the evaluation with the lowest validation
    error, whose weights the model ends with; ``train_error_final`` is their error on all the
    labelled training examples, ``train_loss_final`` their mean cross-entropy there,
    ``test_error_final`` their test error (NaN when not scored). ``stopped_early``: stopped by
    ``patience`` before the cap; ``patience_stopped``: stopped by ``patience``, before or at the cap
    (False: the cap ended a run that was still improving). ``fitted``: the restored weights'
    ``train_error_final`` is at most ``fit_error`` (always True when it is not set); while training,
    the patience rule counts a run as fitted once the training error of some evaluation window
    reached ``fit_error``.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_step: int = 0
    steps_run: int = 0
    max_steps: int = 0
    steps_per_epoch: int = 0
    stopped_early: bool = False
    patience_stopped: bool = False
    fitted: bool = False
    train_error_final: float = float("nan")
    train_loss_final: float = float("nan")
    val_error_best: float = float("nan")
    val_loss_best: float = float("nan")
    test_error_final: float = float("nan")
    test_errors: int = 0
    n_test: int = 0
    n_train: int = 0
    n_val: int = 0
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


def batch_loss(
    logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None, w_sum: float | None = None
) -> torch.Tensor:
    """Mean cross-entropy of a batch; with per-example weights ``w``: ``sum(w_i · ce_i) / sum(w_i)``.

    ``w_sum``: ``w.sum()`` when already known (saves a pass); a batch of zero weight gives NaN.
    """
    if w is None:
        return F.cross_entropy(logits, y)
    per_example = F.cross_entropy(logits, y, reduction="none").float()
    return (per_example * w).sum() / (w.sum() if w_sum is None else w_sum)


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split) -> tuple[int, float]:
    """``(misclassified count, summed cross-entropy)`` over ``split`` (fp32 unless autocast)."""
    wrong = torch.zeros((), dtype=torch.long, device=split.x.device)
    loss = torch.zeros((), dtype=torch.float64, device=split.x.device)
    chain = None if torch.is_autocast_enabled(split.x.device.type) else LinearChain.of(model)
    forward = model if chain is None else chain.logits  # the chain: oneDNN's fused kernels on a CPU
    for x, y in zip(dense_chunks(split.x, _EVAL_CHUNK), split.y.split(_EVAL_CHUNK)):
        logits = forward(x)
        wrong += (logits.argmax(1) != y).sum()
        loss += F.cross_entropy(logits, y, reduction="sum").double()
    return int(wrong), float(loss)


def error_rate(model: nn.Module, split: Split) -> tuple[float, int]:
    """``(fraction, count)`` of misclassified examples of ``split``."""
    wrong, _ = evaluate(model, split)
    return wrong / max(len(split), 1), wrong


def labelled_subsets(dataset: Dataset, config: FinetuneConfig) -> tuple[Split, Split]:
    """The training and validation examples a run with ``config`` uses (stratified, seeded by ``config.seed``).

    The validation subset comes from the validation split, so it never overlaps the labelled
    training examples.
    """
    train, val = dataset.train, dataset.val
    if config.labels is not None:
        idx = stratified_subset(train.y, config.labels, torch.Generator().manual_seed(config.seed * 1_000_003 + 1))
        train = train.take(idx)
    if config.val_labels is not None and config.val_labels < len(val):
        idx = stratified_subset(val.y, config.val_labels, torch.Generator().manual_seed(config.seed * 1_000_003 + 3))
        val = val.take(idx)
    return train, val


def _check(model: nn.Module, dataset: Dataset) -> nn.Linear:
    for name, split in (("training", dataset.train), ("validation", dataset.val), ("test", dataset.test)):
        if split.y is None:
            raise PretrainError(f"{dataset.name}: the {name} split has no labels; fine-tuning needs y")
        if len(split) == 0:
            raise PretrainError(f"{dataset.name}: the {name} split is empty")
    w = dataset.train.w
    if w is not None and (w.shape != (len(dataset.train),) or not bool(torch.isfinite(w).all() and (w >= 0).all())):
        raise PretrainError(f"{dataset.name}: example weights must be {len(dataset.train)} finite values >= 0")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PretrainError("the model has no nn.Linear layer")
    if linears[0].in_features != dataset.n_features:
        raise PretrainError(f"the model takes {linears[0].in_features} inputs, {dataset.name} has {dataset.n_features}")
    n_classes = 1 + max(int(s.y.max()) for s in (dataset.train, dataset.val, dataset.test))
    if linears[-1].out_features < n_classes:
        raise PretrainError(f"the model has {linears[-1].out_features} outputs, {dataset.name} has {n_classes} classes")
    return linears[-1]


def lr_factor(config: FinetuneConfig, step: int, cap: int, steps_per_epoch: int) -> float:
    """The learning rate of optimizer step ``step`` (counting from 0) as a fraction of ``config.lr``."""
    if config.schedule == "cosine":
        progress = min(step / (config.decay_steps or cap), 1.0)
        return config.final_lr + (1 - config.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "exponential":
        return config.gamma ** (step // steps_per_epoch)
    return 1.0


def finetune(
    model: nn.Sequential, dataset: Dataset, config: FinetuneConfig, *, progress: bool = False, score_test: bool = True
) -> FinetuneResult:
    """Train ``model`` (in place, on its own device) on ``dataset``'s labels; return the metrics.

    Cross-entropy on the model's outputs (logits). ``score_test=False`` leaves the test set
    unlooked-at (for tuning runs). Raises ``DivergenceError`` naming the step and epoch when
    the training loss becomes NaN or infinite, ``PretrainError`` for bad input.
    Runs with denormal floats flushed to zero, as the greedy trainer does.
    """
    with denormals_flushed():
        return _finetune(model, dataset, config, progress, score_test)


def _finetune(
    model: nn.Sequential, dataset: Dataset, config: FinetuneConfig, progress: bool, score_test: bool
) -> FinetuneResult:
    head = _check(model, dataset)
    device = next(model.parameters()).device
    data = dataset.to(device)
    train, val = labelled_subsets(data, config)
    n_total = len(train)
    x, y, *w = distributed.shard(
        train.x, train.y, *([] if train.w is None else [train.w])
    )  # under torchrun: this rank's rows only
    w = w[0].float() if w else None
    batch_size = min(distributed.local_batch_size(config.batch_size), x.shape[0])  # global batch: batch_size
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    cap = config.max_steps or config.epochs * steps_per_epoch
    eval_every = config.eval_every or steps_per_epoch
    freeze_steps = config.freeze_epochs * steps_per_epoch
    order_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + 2)

    params = list(model.parameters())
    trainable = [p.requires_grad for p in params]  # restored at the end; frozen-by-the-user stays frozen
    head_params = {id(p) for p in head.parameters()}
    opt = make_optimizer(
        params, config.optimizer, config.lr, config.momentum, config.weight_decay, fused=freeze_steps == 0
    )
    net, net_frozen = model, None

    result = FinetuneResult(max_steps=cap, steps_per_epoch=steps_per_epoch, n_train=n_total, n_val=len(val))
    result.fitted = config.fit_error is None
    best_val, best_value, best_state, since_best = math.inf, math.inf, None, 0
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device)
    seen = 0
    bar = tqdm(total=cap, disable=not progress, desc="fine-tune", unit="step", dynamic_ncols=True)
    amp = autocast(config.precision, device)
    # plain fp32 Linear/activation chains get hand-written gradients; anything else goes through autograd
    plain = config.precision == "fp32" and freeze_steps == 0 and not distributed.is_distributed()
    chain = LinearChain.of(model) if plain else None
    momenta: dict[int, torch.Tensor] = {}  # SGD's momentum buffers when the chain takes the step itself
    # a step gathers its rows into the same buffers (cheaper than advanced indexing, and cache-hot)
    xs, ys = None if x.is_sparse else x.new_empty(batch_size, x.shape[1]), y.new_empty(batch_size)
    ws, batch_w = (None, []) if w is None else (w.new_empty(batch_size), [])
    last_factor = None
    t_start = time.perf_counter()
    try:
        step = 0
        while step < cap:
            frozen = step < freeze_steps
            if frozen != net_frozen:
                for p, want in zip(params, trainable):
                    p.requires_grad_(want and (not frozen or id(p) in head_params))
                # DDP averages the gradients across ranks during backward; it syncs the parameters
                # that require grad when built, so it is rebuilt when the head-only epochs end
                net, net_frozen = (distributed.ddp(model) if distributed.is_distributed() else model), frozen
                model.train()
            k = step % steps_per_epoch
            if k == 0:
                order = torch.randperm(x.shape[0], generator=order_gen).to(device)
                if w is not None:  # one host read per epoch
                    batch_w = w[order].split(batch_size)
                    batch_w = torch.stack([t.sum() for t in batch_w]).tolist()
            idx = order[k * batch_size : (k + 1) * batch_size]
            xb = dense_rows(x, idx, None if xs is None else xs[: idx.shape[0]])  # sparse x: dense per batch
            yb = torch.index_select(y, 0, idx, out=ys[: idx.shape[0]])
            factor = lr_factor(config, step, cap, steps_per_epoch)
            if factor != last_factor:
                for group in opt.param_groups:
                    group["lr"] = config.lr * factor
                last_factor = factor
            step += 1
            wb = None if w is None else torch.index_select(w, 0, idx, out=ws[: idx.shape[0]])
            n_b = yb.shape[0] if w is None else batch_w[k]
            # a batch of zero total weight makes no update (under DDP every rank must step); the
            # evaluation schedule goes on regardless
            if n_b > 0 or distributed.is_distributed():
                if chain is not None and config.optimizer == "sgd":
                    lr = config.lr * factor
                    loss, logits = chain.sgd_step(xb, yb, wb, n_b, lr, config.momentum, config.weight_decay, momenta)
                else:
                    if chain is not None:
                        loss, logits = chain.gradients(xb, yb, wb, n_b)
                    else:
                        with amp:
                            logits = net(xb)
                            loss = batch_loss(logits, yb, wb, max(n_b, 1e-12))
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                    optimizer_step(opt)
                loss_sum += loss.detach() * n_b
                mistakes = logits.detach().argmax(1) != yb
                wrong += mistakes.sum() if wb is None else (mistakes * wb).sum()
                seen += n_b
            if step % eval_every and step < cap:
                continue
            # ------------------------------------------------------------- evaluation
            n_seen = max(distributed.all_reduce_sum(torch.tensor(float(seen), device=device)).item(), 1e-12)
            train_loss = distributed.all_reduce_sum(loss_sum).item() / n_seen
            if not math.isfinite(train_loss):
                raise DivergenceError(
                    f"step {step} (epoch {math.ceil(step / steps_per_epoch)}): the training loss became "
                    f"{train_loss}; try a smaller learning rate than --lr {config.lr:g}"
                )
            train_err = distributed.all_reduce_sum(wrong).item() / n_seen
            loss_sum.zero_(), wrong.zero_()
            seen = 0
            model.eval()
            with amp:  # bf16 runs validate in bf16 too; the final scores are fp32
                val_wrong, val_loss = evaluate(model, val)
            model.train()
            val_err = val_wrong / len(val)
            result.steps.append(step)
            result.train_loss.append(train_loss)
            result.train_error.append(train_err)
            result.val_error.append(val_err)
            result.val_loss.append(val_loss / len(val))
            result.fitted = result.fitted or train_err <= config.fit_error
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{train_loss:.4g}", val_err=f"{100 * val_err:.2f}%", frozen=frozen, refresh=False)
            value = val_err if config.monitor == "val_error" else train_loss
            improved = value < best_value - config.tol  # against the best before this evaluation
            if value < best_value:
                best_value, best_val, result.best_step = value, val_err, step
                result.val_loss_best = val_loss / len(val)
                if config.restore_best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if improved:
                since_best = 0
                continue
            since_best += 1
            limit = config.patience if result.fitted else config.unfitted_patience
            if limit is not None and since_best >= limit:
                result.stopped_early, result.patience_stopped = step < cap, True
                break
    finally:
        bar.close()
        for p, want in zip(params, trainable):
            p.requires_grad_(want)
    result.steps_run = step
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t_start
    result.val_error_best = best_val
    train_wrong, train_loss_sum = evaluate(model, train)
    result.train_error_final, result.train_loss_final = train_wrong / len(train), train_loss_sum / len(train)
    result.fitted = config.fit_error is None or result.train_error_final <= config.fit_error  # at the restored weights
    if score_test:
        result.n_test = len(data.test)
        result.test_error_final, result.test_errors = error_rate(model, data.test)
    return result
