"""The greedy layer-wise trainer: layer k trains alone on the codes of layers 1..k-1.

The codes of the frozen layers are computed once per layer (not per batch), so the total
cost grows linearly with depth. A finished layer is never touched again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .data import batches, dense_chunks, dense_rows
from .errors import DivergenceError, PretrainError, require
from .layers import OBJECTIVES, LayerObjective
from .layers.rbm import HIDDEN
from .mlp import ACTIVATIONS, build_mlp
from .training import OPTIMIZERS, PRECISIONS, autocast, denormals_flushed, make_optimizer
from .version import versions

FORMAT = "pretrain.stack/1"


@dataclass
class GreedyConfig:
    """Every hyperparameter of a greedy pretraining run (saved in the checkpoint).

    What every objective shares lives here; ``options`` holds the objective's own settings, an
    instance of ``OBJECTIVES[objective].options`` (``AutoencoderConfig``, ``DenoisingConfig``,
    ``RBMConfig``; None means its defaults, a dict is converted).

    ``lr`` applies to the optimizer named by ``optimizer``; ``momentum`` only to SGD.
    ``top_activation`` (default: ``activation``) is the last layer's, e.g. ``linear`` for a code layer.
    ``linear_lr`` (default: ``lr``) is the learning rate of layers with a linear activation.
    ``weight_decay`` is L2 on every parameter, except where an objective says otherwise (the RBM
    puts it on the weights only).
    ``precision``: ``fp32``, or ``bf16`` (autocast of each training step's forward pass and loss;
    weights and optimizer state stay fp32).
    """

    layers: list[int]
    objective: str = "autoencoder"
    options: Any = None
    activation: str = "sigmoid"
    top_activation: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    linear_lr: float | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        require(len(self.layers) > 0, "give at least one layer size")
        require(
            all(isinstance(n, int) and n > 0 for n in self.layers),
            f"layer sizes must be positive integers, got {self.layers}",
        )
        require(
            self.objective in OBJECTIVES,
            f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}",
        )
        options_type = OBJECTIVES[self.objective].options
        if self.options is None:
            self.options = options_type()
        elif isinstance(self.options, dict):
            unknown = sorted(set(self.options) - {f.name for f in fields(options_type)})
            require(not unknown, f"{self.objective} has no option {', '.join(unknown)}")
            self.options = options_type(**self.options)
        require(
            type(self.options) is options_type,
            f"the {self.objective} objective takes {options_type.__name__} options, not {type(self.options).__name__}",
        )
        require(
            self.activation in ACTIVATIONS,
            f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}",
        )
        require(
            self.top_activation in (None, *ACTIVATIONS),
            f"unknown top activation {self.top_activation!r}; choose from {', '.join(ACTIVATIONS)}",
        )
        require(
            self.optimizer in OPTIMIZERS,
            f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}",
        )
        require(
            self.precision in PRECISIONS, f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}"
        )
        require(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        require(self.batch_size > 0, f"batch size must be positive, got {self.batch_size}")
        require(self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, got {self.lr}")
        require(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(
            self.linear_lr is None or (self.linear_lr > 0 and math.isfinite(self.linear_lr)),
            f"linear-layer learning rate must be positive, got {self.linear_lr}",
        )
        require(
            self.objective != "rbm" or all(a in HIDDEN for a in self.activations),
            f"an RBM's hidden units are sigmoid (Bernoulli) or linear (Gaussian), got {self.activations}",
        )

    @property
    def activations(self) -> list[str]:
        """The activation of every layer, bottom first."""
        top = self.top_activation or self.activation
        return [self.activation] * (len(self.layers) - 1) + [top]

    @classmethod
    def from_flat(cls, settings: dict) -> GreedyConfig:
        """A config from one flat dict of settings, as command-line flags and presets give them.

        Keys that are options of the chosen objective go into ``options``; options of other
        objectives are dropped (a flag that does not apply); a value of None means the default.
        Also reads the flat ``config`` of checkpoints written before objectives had options.
        """
        common = {f.name for f in fields(cls)} - {"options"}
        objective = settings.get("objective") or "autoencoder"
        if objective not in OBJECTIVES:
            raise PretrainError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
        own = {f.name for f in fields(OBJECTIVES[objective].options)}
        if objective == "autoencoder" and "options" not in settings:
            own -= {"noise", "noise_level"}  # a plain autoencoder ignored these before
        unknown = sorted(set(settings) - cls.setting_names() - {"options"})
        if unknown:
            raise PretrainError(f"unknown settings: {', '.join(unknown)}")
        values = {k: v for k, v in settings.items() if k in common and v is not None}
        options = settings.get("options") or {k: v for k, v in settings.items() if k in own and v is not None}
        return cls(**values, options=options)

    @classmethod
    def setting_names(cls) -> set[str]:
        """Every name ``from_flat`` takes: the common fields and every objective's options."""
        common = {f.name for f in fields(cls)} - {"options"}
        return common | {f.name for spec in OBJECTIVES.values() for f in fields(spec.options)}

    def to_dict(self) -> dict:
        """Plain types only (saved in checkpoints); ``from_flat`` reads it back."""
        return asdict(self)


@dataclass
class LayerHistory:
    """Per-epoch losses of one layer (summed over features, averaged over examples)."""

    n_in: int
    n_out: int
    loss: str
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    done: bool = False
    diagnostics: list[dict[str, float]] = field(default_factory=list)  # per epoch, see epoch_diagnostics

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


class GreedyPretrainer:
    """Fit a stack of layer objectives greedily; export it as a plain ``nn.Sequential``.

    >>> p = GreedyPretrainer(GreedyConfig(layers=[500, 250, 100])).fit(x_train, x_val)
    >>> model = p.to_sequential()          # Linear, Sigmoid, Linear, Sigmoid, Linear, Sigmoid
    >>> codes = p.transform(x_test)        # (N, 100)
    """

    def __init__(self, config: GreedyConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.layers_: list[LayerObjective] = []
        self.history_: list[LayerHistory] = []
        self._resume: dict | None = None  # saved optimizer and RNG state of an unfinished layer
        self._live: tuple | None = None  # (optimizer, generator) of the layer being trained
        self._online: tuple | None = None  # (optimizer, generator) kept between partial_fit calls

    # ----------------------------------------------------------------- training
    def fit(
        self,
        x: torch.Tensor,
        x_val: torch.Tensor | None = None,
        *,
        y: torch.Tensor | None = None,
        y_val: torch.Tensor | None = None,
        progress: bool = False,
        on_epoch: Callable[[GreedyPretrainer], None] | None = None,
    ) -> GreedyPretrainer:
        """Train every layer not yet finished. ``x``: ``(N, D)``; ``x_val``: ``(M, D)`` or None.

        ``x`` (and ``x_val``) may be a sparse COO tensor: its rows are made dense one batch (or one
        chunk of at most 8192 rows) at a time, never all at once; a layer that needs its whole input
        at once (a Gaussian-visible RBM's standardisation) refuses it.

        ``y`` ``(N,)`` and ``y_val`` ``(M,)``: integer labels, used only by objectives that need them
        (``supervised``), which refuse to fit without ``y``.
        ``on_epoch(self)`` runs after every epoch (the CLI saves its resume file there).
        Training runs with denormal floats flushed to zero (see ``denormals_flushed``).
        """
        with denormals_flushed():
            return self._fit(x, x_val, y, y_val, progress, on_epoch)

    def _fit(self, x, x_val, y, y_val, progress, on_epoch) -> GreedyPretrainer:
        if x.ndim != 2:
            raise PretrainError(f"training data must have shape (N, D), got {tuple(x.shape)}")
        y, y_val = self._labels(x, y, y_val)
        codes = x.to(self.device)
        codes, *rest = distributed.shard(codes, *([] if y is None else [y]))  # under torchrun: this rank's rows
        labels = rest[0] if rest else None
        codes_val = None if x_val is None else x_val.to(self.device)
        labels_val = None if x_val is None else y_val
        for k in range(len(self.config.layers)):
            if k >= len(self.history_) or not self.history_[k].done:
                self._fit_layer(k, codes, codes_val, labels, labels_val, progress, on_epoch)
            if k + 1 < len(self.config.layers):
                codes = self._encode(self.layers_[k], codes)
                codes_val = None if codes_val is None else self._encode(self.layers_[k], codes_val)
        return self

    def _labels(self, x, y, y_val) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The labels on the device when the objective needs them (else None); infers ``n_classes``."""
        cfg = self.config
        if not OBJECTIVES[cfg.objective].needs_labels:
            return None, None
        if y is None:
            raise PretrainError(f"the {cfg.objective} objective needs labels, and the data has none")
        if y.shape != (x.shape[0],) or y.dtype.is_floating_point:
            raise PretrainError(f"labels must be integers of shape ({x.shape[0]},), got {tuple(y.shape)} {y.dtype}")
        if cfg.options.n_classes is None:  # the run's config records the number it used
            top = distributed.global_range(y.float()).max()
            cfg.options = replace(cfg.options, n_classes=int(top) + 1)
        return y.to(self.device), None if y_val is None else y_val.to(self.device)

    def _fit_layer(self, k, x, x_val, y, y_val, progress, on_epoch) -> None:
        cfg = self.config
        generator = torch.Generator(self.device).manual_seed(cfg.seed * 1_000_003 + k)
        if k == len(self.layers_):  # a fresh layer (not one being resumed)
            self._new_layer(k, x, generator)
        layer, history = self.layers_[k], self.history_[k]
        layer.generator = generator
        optimizer = self._optimizer(layer)
        distributed.average_grads_on_step(optimizer)  # under torchrun: all-reduce grads before each step
        if self._resume is not None:
            optimizer.load_state_dict(self._resume["optimizer"])
            generator.set_state(self._resume["generator"])
            self._resume = None

        batch_size = distributed.local_batch_size(cfg.batch_size)  # the global batch is cfg.batch_size
        n_total = x.shape[0] * distributed.world_size()
        n_batches = math.ceil(x.shape[0] / batch_size)
        start = len(history.train_loss)
        bar = tqdm(
            total=cfg.epochs * n_batches,
            initial=start * n_batches,
            disable=not progress,
            desc=f"layer {k + 1}/{len(cfg.layers)} {x.shape[1]}→{cfg.layers[k]}",
            unit="batch",
            dynamic_ncols=True,
            leave=True,
        )
        layer.train()
        amp = autocast(cfg.precision, self.device)
        # each step gathers its rows into the same buffers (cheaper than advanced indexing, and cache-hot)
        xb_buf = None if x.is_sparse else x.new_empty(min(batch_size, x.shape[0]), x.shape[1])
        yb_buf = None if y is None else y.new_empty(min(batch_size, x.shape[0]))
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            layer.on_epoch_start(epoch, optimizer)
            total = torch.zeros((), device=self.device)
            for i, idx in enumerate(batches(x.shape[0], batch_size, generator, self.device)):
                batch = dense_rows(x, idx, None if xb_buf is None else xb_buf[: idx.shape[0]])
                labels = None if y is None else torch.index_select(y, 0, idx, out=yb_buf[: idx.shape[0]])
                with amp:
                    total.add_(layer.train_step(batch, optimizer, labels), alpha=batch.shape[0])
                if progress and i % 50 == 49:  # a host read only when someone is watching
                    bar.set_postfix(loss=f"{total.item() / ((i + 1) * batch_size):.4g}", refresh=False)
                bar.update(1)
            history.seconds += time.perf_counter() - t0
            history.samples += n_total
            train_loss = distributed.all_reduce_sum(total).item() / n_total
            val_loss = float("nan") if x_val is None else self._mean_loss(layer, x_val, y_val)
            bad = [
                f"{name} loss became {v}"
                for name, v in (("training", train_loss), ("validation", val_loss))
                if not math.isfinite(v) and not (name == "validation" and x_val is None)
            ]
            if bad:
                bar.close()
                raise DivergenceError(
                    f"layer {k + 1}, epoch {epoch + 1}: the {' and '.join(bad)}; "
                    f"try a smaller learning rate than --lr {cfg.lr:g}"
                )
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            n_diag = min(x.shape[0], 5000 if x_val is None else x_val.shape[0])
            history.diagnostics.append(
                layer.epoch_diagnostics(dense_rows(x, torch.arange(n_diag, device=x.device)), x_val)
            )
            history.done = epoch + 1 == cfg.epochs
            bar.set_postfix(loss=f"{train_loss:.4g}", val=f"{val_loss:.4g}")
            if on_epoch is not None:
                self._live = (optimizer, generator)
                on_epoch(self)
        self._live = None
        bar.close()
        layer.finish()
        layer.eval()
        layer.requires_grad_(False)

    def _new_layer(self, k: int, x: torch.Tensor, generator: torch.Generator) -> None:
        """Build layer ``k`` for its inputs ``x`` (unit type from their range, ``prepare``) and its history."""
        cfg = self.config
        spec = OBJECTIVES[cfg.objective]
        xr = _value_range(x) if x.is_sparse else distributed.global_range(x)  # [min, max] over all ranks' shards
        units = spec.units(cfg.options, xr, k)
        layer = spec.build(x.shape[1], cfg.layers[k], cfg.activations[k], cfg.options, units, generator, cfg)
        if (
            x.is_sparse
            and type(layer).prepare is not LayerObjective.prepare
            and getattr(layer, "gaussian_visible", True)
        ):
            raise PretrainError(
                f"layer {k + 1} ({cfg.objective}, {units} units) needs its whole input at once; give dense data"
            )
        layer.prepare(x)
        self.layers_.append(layer.to(self.device))
        distributed.broadcast_module(layer)  # e.g. rank 0's input standardisation
        self.history_.append(LayerHistory(x.shape[1], cfg.layers[k], units))

    def partial_fit(self, x: torch.Tensor) -> GreedyPretrainer:
        """One pass over ``x`` ``(N, D)`` in shuffled mini-batches: online learning of a one-layer stack.

        The first call builds the layer from ``x`` (its unit type, any input standardisation); later
        calls continue with the same optimizer state and random generator. Each call appends one
        entry to ``history_[0].train_loss``. One layer only: a layer above would learn from codes that
        are still changing. ``x`` may be sparse COO, as in ``fit``.
        """
        cfg = self.config
        if len(cfg.layers) != 1 or OBJECTIVES[cfg.objective].needs_labels:
            raise PretrainError("partial_fit trains a one-layer stack with an unsupervised objective")
        if distributed.is_distributed():
            raise PretrainError("partial_fit runs in one process; use fit under torchrun")
        with denormals_flushed():
            x = x.to(self.device)
            generator = torch.Generator(self.device).manual_seed(cfg.seed * 1_000_003 + len(self.history_))
            if not self.layers_:
                self._new_layer(0, x, generator)
            layer, history = self.layers_[0], self.history_[0]
            if self._online is None:  # the first call, or the first after fit: a fresh optimizer
                layer.generator = generator
                self._online = (self._optimizer(layer), generator)
            optimizer, generator = self._online
            layer.train().requires_grad_(True)
            layer.on_epoch_start(len(history.train_loss), optimizer)
            t0 = time.perf_counter()
            total = torch.zeros((), device=self.device)
            for idx in batches(x.shape[0], cfg.batch_size, generator, self.device):
                total += layer.train_step(dense_rows(x, idx), optimizer) * idx.numel()
            loss = total.item() / x.shape[0]
            if not math.isfinite(loss):
                raise DivergenceError(f"partial_fit: the training loss became {loss}; try a smaller learning rate")
            history.seconds += time.perf_counter() - t0
            history.samples += x.shape[0]
            history.train_loss.append(loss)
            history.val_loss.append(float("nan"))
            history.done = True
            layer.eval().requires_grad_(False)
        return self

    def _optimizer(self, layer: LayerObjective) -> torch.optim.Optimizer:
        cfg = self.config
        lr = cfg.linear_lr if layer.activation == "linear" and cfg.linear_lr is not None else cfg.lr
        return make_optimizer(layer.param_groups(cfg.weight_decay), cfg.optimizer, lr, cfg.momentum)

    @staticmethod
    @torch.no_grad()
    def _encode(layer: LayerObjective, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        return torch.cat([layer.encode(part) for part in dense_chunks(x, chunk)])

    @staticmethod
    @torch.no_grad()
    def _mean_loss(layer: LayerObjective, x: torch.Tensor, y: torch.Tensor | None, chunk: int = 8192) -> float:
        labels = [None] * math.ceil(x.shape[0] / chunk) if y is None else y.split(chunk)
        total = sum(float(layer.reconstruction_loss(p, t)) * p.shape[0] for p, t in zip(dense_chunks(x, chunk), labels))
        return total / x.shape[0]

    # ------------------------------------------------------------ using the stack
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, layers[-1])``: the top codes of the fitted stack."""
        x = x.to(self.device)
        for layer in self.layers_:
            x = self._encode(layer, x)
        return x

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N, D)``: encode through every layer, then decode back down."""
        h = self.transform(x)
        for layer in reversed(self.layers_):
            h = layer.decode(h)
        return h

    def state_dict_sequential(self) -> dict[str, torch.Tensor]:
        """Encoder weights under the keys of ``build_mlp``: ``0.weight``, ``0.bias``, ``2.weight``..."""
        return {
            f"{2 * k}.{name}": p.detach().cpu().clone()
            for k, layer in enumerate(self.layers_)
            for name, p in zip(("weight", "bias"), layer.export_linear())
        }

    def to_sequential(self) -> nn.Sequential:
        """The fitted stack as ``Linear, act, Linear, act, ...`` (a new, trainable copy)."""
        model = build_mlp(self.history_[0].n_in, list(self.config.layers), None, self.config.activations)
        model.load_state_dict(self.state_dict_sequential())
        return model

    # ---------------------------------------------------------- resume support
    def state_dict(self) -> dict:
        """Everything needed to continue training: layers, histories, optimizer and RNG state."""
        state = {
            "config": self.config.to_dict(),
            "layers": [{k: v.detach().cpu() for k, v in layer.state_dict().items()} for layer in self.layers_],
            "history": [_history_dict(h) for h in self.history_],
        }
        if self._live is not None and not self.history_[-1].done:
            optimizer, generator = self._live
            state["optimizer"] = optimizer.state_dict()
            state["generator"] = generator.get_state()
        return state

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> GreedyPretrainer:
        """Rebuild a (possibly unfinished) pretrainer saved by ``state_dict``."""
        self = cls(GreedyConfig.from_flat(state["config"]), device)
        cfg = self.config
        spec = OBJECTIVES[cfg.objective]
        for k, (weights, hist) in enumerate(zip(state["layers"], state["history"])):
            layer = spec.build(hist["n_in"], hist["n_out"], cfg.activations[k], cfg.options, hist["loss"], None, cfg)
            if hist["done"]:
                layer.finish()  # e.g. a supervised layer's temporary head is not saved
            layer.load_state_dict(weights)
            self.layers_.append(layer.to(self.device))
            self.history_.append(LayerHistory(**{f: hist[f] for f in _HISTORY_FIELDS if f in hist}))
            if hist["done"]:
                layer.eval().requires_grad_(False)
        if "optimizer" in state:
            self._resume = {"optimizer": state["optimizer"], "generator": state["generator"]}
        return self


def _value_range(x: torch.Tensor) -> torch.Tensor:
    """``[min, max]`` of a sparse ``x``, its implicit zeros included."""
    values = x.coalesce().values()
    has_zeros = values.numel() < x.shape[0] * x.shape[1]
    parts = [values.float(), values.new_zeros(1 if has_zeros or values.numel() == 0 else 0).float()]
    full = torch.cat(parts)
    return torch.stack([full.min(), full.max()])


_HISTORY_FIELDS = ("n_in", "n_out", "loss", "train_loss", "val_loss", "seconds", "samples", "done", "diagnostics")


def _history_dict(h: LayerHistory) -> dict:
    return {f: getattr(h, f) for f in _HISTORY_FIELDS}


def stack_checkpoint(pretrainer: GreedyPretrainer, data: dict) -> dict:
    """The exported checkpoint dict of a fitted stack. ``data``: name, scaling, image shape."""
    cfg = pretrainer.config
    histories = [
        {
            "n_in": h.n_in,
            "n_out": h.n_out,
            "loss": h.loss,
            "train_loss": list(h.train_loss),
            "val_loss": list(h.val_loss),
            "seconds": h.seconds,
            "samples_per_s": h.samples_per_s,
            "diagnostics": [dict(d) for d in h.diagnostics],
        }
        for h in pretrainer.history_
    ]
    return {
        "state_dict": pretrainer.state_dict_sequential(),
        "decoders": [layer.decoder_state() for layer in pretrainer.layers_],
        "metadata": {
            "format": FORMAT,
            "sizes": [pretrainer.history_[0].n_in, *cfg.layers],
            "activation": cfg.activation,
            "activations": cfg.activations,
            "objective": cfg.objective,
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "data": dict(data),
            "input_scaling": dict(data.get("scaling", {"divide_by": 1.0})),
            "layers": histories,
            "versions": versions(),
        },
    }
