"""``python -m pretrain.doctor``: is this start healthy? Per-layer statistics and plain warnings.

Give a checkpoint (``--checkpoint``), or an init scheme with layer sizes and an activation
(``--init xavier-uniform --layers 50 50 50 50 50 --activation tanh``), plus a data set
(``--data normal`` draws x ~ N(0, 1), the initialization tutorial's input; or ``mnist``, or a ``.npz``/``.pt`` file).
It prints a per-layer table (see ``pretrain.diagnostics``) and warnings such as
``layer 4: activations vanish (std 3e-5)``. Exit code 0: healthy; 1: warnings; 2: bad input.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from .checkpoint import check_writable, load_checkpoint, write_json
from .classifier import start
from .cli import ArgumentParser, positive_int, run_main
from .data import NAMED, load_dataset
from .diagnostics import Report, diagnose, health_warnings
from .errors import PretrainError
from .mlp import ACTIVATIONS, build_mlp, model_from_checkpoint


@dataclass
class DoctorConfig:
    """One doctor run; exactly one of ``checkpoint`` and ``init`` is set."""

    checkpoint: str | None = None
    init: str | None = None
    layers: list[int] | None = None
    activation: str = "tanh"
    inputs: int | None = None
    classes: int | None = None
    data: str | None = None
    data_dir: str = "data"
    examples: int = 1000
    loss: str = "auto"
    seed: int = 0
    json: str | None = None

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.init is None):
            raise PretrainError("give either --checkpoint PATH or --init NAME")
        if self.init is not None and not self.layers:
            raise PretrainError("--init needs --layers, e.g. --layers 50 50 50 50 50")
        if self.activation not in ACTIVATIONS:
            raise PretrainError(f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}")
        if self.checkpoint is not None and (self.layers or self.classes or self.inputs):
            raise PretrainError("--layers, --classes and --inputs go with --init; a checkpoint has its own sizes")
        if self.examples < 2:
            raise PretrainError("--examples must be at least 2")


def load_batch(cfg: DoctorConfig, n_in: int | None) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """``(x (N, D), y (N,) or None, description)``: ``cfg.examples`` rows of the data set, chosen by the seed."""
    g = torch.Generator().manual_seed(cfg.seed)
    name = cfg.data or "normal"
    if name == "normal":
        width = n_in or 100
        return torch.randn(cfg.examples, width, generator=g), None, f"x ~ N(0, 1), {cfg.examples}×{width}"
    ds = load_dataset(name, cfg.data_dir)
    split = ds.train
    rows = torch.randperm(len(split), generator=g)[: cfg.examples]
    y = None if split.y is None else split.y[rows]
    return split.x[rows], y, f"{ds.name}, {len(rows)} training examples"


def run(cfg: DoctorConfig) -> tuple[Report, list[str]]:
    """Build or load the model, diagnose it on the batch, print the table and warnings."""
    if cfg.json:
        check_writable(cfg.json)
    if cfg.checkpoint is not None:
        ckpt = load_checkpoint(cfg.checkpoint)
        model = model_from_checkpoint(ckpt)
        n_in = model[0].in_features
        if cfg.data is None:  # default to the data the stack was trained on, when it is a named set
            trained_on = ckpt["metadata"].get("data", {}).get("name")
            cfg.data = trained_on if trained_on in NAMED else "normal"
        x, y, what = load_batch(cfg, n_in)
        source = f"checkpoint {cfg.checkpoint}"
    else:
        x, y, what = load_batch(cfg, cfg.inputs)
        if cfg.inputs is not None and cfg.inputs != x.shape[1]:
            raise PretrainError(f"--inputs {cfg.inputs} does not match the data's {x.shape[1]} features")
        model = build_mlp(x.shape[1], list(cfg.layers), cfg.classes, cfg.activation)
        start(model, cfg.init, generator=torch.Generator().manual_seed(cfg.seed), data=x)
        sizes = [x.shape[1], *cfg.layers, *([cfg.classes] if cfg.classes else [])]
        source = f"init {cfg.init}, {cfg.activation}, {'-'.join(map(str, sizes))}"
    if x.shape[1] != model[0].in_features:
        raise PretrainError(f"the data has {x.shape[1]} features, the model takes {model[0].in_features}")
    report = diagnose(model, x, y, loss=cfg.loss)
    warnings = health_warnings(report)
    print(f"{source}; data: {what}; gradients of the {report.loss_name} loss")
    print(report.table())
    for w in warnings:
        print(f"warning: {w}")
    print(f"{len(warnings)} warning(s)" if warnings else "healthy: no warnings")
    if cfg.json:
        write_json(cfg.json, {**report.as_dict(), "warnings": warnings})
    return report, warnings


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m pretrain.doctor",
        description="Check a start: per-layer activation and gradient statistics on a data batch, with plain "
        "warnings (vanishing or exploding activations, saturation, dead ReLUs, shrinking gradients, symmetric "
        "starts). Exit code 0 when healthy, 1 when it warns, 2 for bad input.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", default=None, help="a stack or classifier checkpoint to check")
    src.add_argument(
        "--init",
        default=None,
        help="an init scheme of pretrain.init (xavier-uniform, he-normal, small-normal, zeros, constant:K, ...)",
    )
    p.add_argument("--layers", type=positive_int, nargs="+", default=None, metavar="N", help="hidden sizes (--init)")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="tanh", help="hidden activation (--init)")
    p.add_argument("--inputs", type=positive_int, default=None, help="input width for --data normal (default 100)")
    p.add_argument("--classes", type=positive_int, default=None, help="add a linear head of this size (--init)")
    p.add_argument(
        "--data",
        default=None,
        help=f"normal (x ~ N(0, 1)), a named data set ({', '.join(NAMED)}) or a .npz/.pt file; "
        "default: the checkpoint's named data set, else normal",
    )
    p.add_argument("--data-dir", default="data", help="where named data sets are cached")
    p.add_argument("--examples", type=positive_int, default=1000, help="batch size of the check")
    p.add_argument(
        "--loss",
        choices=["auto", "cross-entropy", "random"],
        default="auto",
        help="loss whose gradients are measured; auto: cross-entropy with labels and a head, else a fixed "
        "random projection of the output",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the init, the N(0, 1) data and the batch")
    p.add_argument("--json", default=None, help="also write the statistics and warnings to this JSON file")
    return p


def parse_args(argv: list[str] | None = None) -> DoctorConfig:
    a = build_parser().parse_args(argv)
    return DoctorConfig(
        checkpoint=a.checkpoint,
        init=a.init,
        layers=a.layers,
        activation=a.activation,
        inputs=a.inputs,
        classes=a.classes,
        data=a.data,
        data_dir=a.data_dir,
        examples=a.examples,
        loss=a.loss,
        seed=a.seed,
        json=a.json,
    )


def main(argv: list[str] | None = None) -> int:
    def go() -> int:
        _, warnings = run(parse_args(argv))
        return 1 if warnings else 0

    return run_main("pretrain.doctor", go)


if __name__ == "__main__":
    sys.exit(main())
