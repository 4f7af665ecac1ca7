"""``python -m pretrain.finetune --init pretrained:X.pt``: fine-tune a classifier, save it and its metrics."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import distributed
from .checkpoint import check_writable, save_atomic, write_json
from .classifier import START_SCHEMES, make_classifier
from .cli import (
    ArgumentParser,
    add_data_arguments,
    positive_float,
    positive_int,
    resolve_device,
    run_main,
    val_size_arg,
)
from .data import apply_input_scaling, load_dataset
from .errors import PretrainError
from .finetuning import SCHEDULES, FinetuneConfig, FinetuneResult, finetune
from .init import parse_scheme
from .mlp import ACTIVATIONS, CLASSIFIER_FORMAT
from .training import OPTIMIZERS, PRECISIONS
from .version import versions


@dataclass
class FinetuneRun:
    """One ``pretrain.finetune`` run: init and architecture, the fine-tuning config, where things live."""

    init: str = "torch-default"
    layers: list[int] | None = None
    activation: str | None = None
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    data: str = "mnist"
    data_dir: str = "data"
    val_size: float | None = None
    output: str | None = None
    metrics: str | None = None
    device: str = "auto"
    quiet: bool = False

    @property
    def output_path(self) -> Path:
        if self.output:
            return Path(self.output)
        name, arg = parse_scheme(self.init, START_SCHEMES)
        tag = Path(arg).stem if name == "pretrained" else self.init.replace(":", "")
        data = Path(self.data).stem if self.data.endswith((".npz", ".pt")) else self.data
        return Path("checkpoints") / f"classifier-{data}-{tag}-seed{self.finetune.seed}.pt"

    @property
    def metrics_path(self) -> Path:
        return Path(self.metrics) if self.metrics else self.output_path.with_suffix(".json")


def run(cfg: FinetuneRun) -> tuple[Path, FinetuneResult]:
    """Build, initialize and fine-tune the classifier; write checkpoint and metrics JSON last.

    Under ``torchrun`` the model trains with DistributedDataParallel, each rank on its shard of
    the training set (see ``pretrain.distributed``); only rank 0 writes files and progress bars.
    """
    owns_group = not distributed.is_distributed()
    try:
        return _run(cfg)
    finally:
        if owns_group:
            distributed.shutdown()


def _run(cfg: FinetuneRun) -> tuple[Path, FinetuneResult]:
    name, _ = parse_scheme(cfg.init, START_SCHEMES)
    out, metrics_path = cfg.output_path, cfg.metrics_path
    check_writable(out)
    check_writable(metrics_path)
    device = distributed.init_from_env(resolve_device(cfg.device))
    dataset = load_dataset(cfg.data, cfg.data_dir, cfg.val_size)
    if dataset.train.y is None:
        raise PretrainError(f"{cfg.data}: no labels (y); fine-tuning needs them")
    n_classes = 1 + max(int(s.y.max()) for s in (dataset.train, dataset.val, dataset.test))
    model, info = make_classifier(
        cfg.init,
        n_in=dataset.n_features,
        n_classes=n_classes,
        hidden=cfg.layers,
        activation=cfg.activation,
        seed=cfg.finetune.seed,
        data=dataset.train.x if name in ("lsuv", "greedy") else None,
    )
    if info["input_scaling"] is not None:
        dataset = apply_input_scaling(dataset, info["input_scaling"], where=cfg.init.partition(":")[2])
    model = model.to(device)
    result = finetune(model, dataset, cfg.finetune, progress=distributed.is_main() and not cfg.quiet)
    if not distributed.is_main():
        return out, result

    run_info = {
        "init": cfg.init,
        "data": cfg.data,
        "data_dir": cfg.data_dir,
        "val_size": cfg.val_size,
        "device": str(device),
    }
    metadata = {
        "format": CLASSIFIER_FORMAT,
        "sizes": info["sizes"],
        "activations": info["activations"],
        "n_classes": n_classes,
        "input_scaling": info["input_scaling"] or dict(dataset.scaling),
        "init": cfg.init,
        "finetune": asdict(cfg.finetune),
        "run": run_info,
        "result": {k: v for k, v in result.to_dict().items() if not isinstance(v, list)},
        "data": {"name": dataset.name, "n_train": len(dataset.train), "n_val": len(dataset.val)},
        "versions": versions(),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    metrics = {**run_info, "config": asdict(cfg.finetune), "sizes": info["sizes"], **result.to_dict()}
    save_atomic({"state_dict": state, "metadata": metadata}, out)
    write_json(metrics_path, metrics)
    if not cfg.quiet:
        print(summary(cfg, info, result))
    print(f"saved {out} and {metrics_path}")
    return out, result


def summary(cfg: FinetuneRun, info: dict, r: FinetuneResult) -> str:
    """One screen: the setup, a few evaluations of the curve, and the final test error."""
    f = cfg.finetune
    arch = "-".join(map(str, info["sizes"][1:]))
    opt = f"{f.optimizer} lr {f.lr:g}" + (f" momentum {f.momentum:g}" if f.optimizer == "sgd" else "")
    lines = [
        f"init {cfg.init}   {arch} {'/'.join(sorted(set(info['activations'])))}   {opt}   schedule {f.schedule}",
        f"{r.n_train} training labels, {r.n_val} validation, batch {f.batch_size}, freeze {f.freeze_epochs}, "
        f"seed {f.seed}",
        f"{'step':>7}  {'train loss':>10}  {'train err':>9}  {'val err':>8}",
    ]
    best = r.steps.index(r.best_step)
    for i in sorted({0, *range(max(0, len(r.steps) - 8), len(r.steps)), best}):
        mark = "  <- best val" if i == best else ""
        lines.append(
            f"{r.steps[i]:>7}  {r.train_loss[i]:>10.4f}  {100 * r.train_error[i]:>8.2f}%  "
            f"{100 * r.val_error[i]:>7.2f}%{mark}"
        )
    stop = "early stop" if r.stopped_early else "step cap"
    lines.append(
        f"test error {100 * r.test_error_final:.2f}% ({r.test_errors}/{r.n_test}), training error "
        f"{100 * r.train_error_final:.2f}%, at step {r.best_step} of {r.steps_run} ({stop}), {r.seconds:.1f} s"
    )
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m pretrain.finetune",
        description="Fine-tune an MLP classifier from any init (a pretrained stack or a baseline "
        "initializer) with one protocol: the same optimizer, schedule, batch size, epochs and "
        "data order for every init under the same seed.",
    )
    p.add_argument(
        "--init",
        default="torch-default",
        help=f"weight init: {', '.join(START_SCHEMES)} (constant:K sets K; pretrained:PATH loads a stack)",
    )
    p.add_argument(
        "--layers",
        type=positive_int,
        nargs="+",
        default=None,
        metavar="N",
        help="hidden layer sizes (default: the checkpoint's with pretrained:PATH, else 500 250 100)",
    )
    p.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        default=None,
        help="hidden activation (default: the checkpoint's with pretrained:PATH, else sigmoid)",
    )
    add_data_arguments(p)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd (with momentum) or adam")
    p.add_argument("--lr", type=positive_float, default=0.1, help="learning rate")
    p.add_argument("--momentum", type=float, default=0.9, help="momentum (sgd only)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="constant",
        help="learning-rate schedule: constant, cosine to 0 over the step cap, or exponential (x --gamma per epoch)",
    )
    p.add_argument("--gamma", type=positive_float, default=0.95, help="per-epoch decay of the exponential schedule")
    p.add_argument("--epochs", type=positive_int, default=30, help="maximum training epochs (the step cap)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="step cap instead of --epochs (none)")
    p.add_argument(
        "--eval-every", type=positive_int, default=None, help="steps between validation evaluations (one epoch)"
    )
    p.add_argument("--batch-size", type=positive_int, default=128, help="mini-batch size")
    p.add_argument(
        "--patience",
        type=int,
        default=5,
        help="early stopping: stop after this many evaluations without a better validation error (0: never)",
    )
    p.add_argument(
        "--freeze-epochs", type=int, default=0, help="train only the head for the first N epochs (backpropclassify: 5)"
    )
    p.add_argument(
        "--labels",
        type=int,
        default=None,
        help="fine-tune on a stratified subset of this many labelled training examples (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the init, the labelled subset and the data order")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32, or bf16 autocast with fp32 weights (faster on GPUs and CPUs with AMX or AVX512-BF16)",
    )
    p.add_argument(
        "--output",
        default=None,
        help="classifier checkpoint path, .pt or .safetensors (pickle-free) "
        "(default: checkpoints/classifier-<data>-<init>-seed<seed>.pt)",
    )
    p.add_argument("--metrics", default=None, help="per-epoch metrics JSON (default: the --output path with .json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return p


def parse_args(argv: list[str] | None = None) -> FinetuneRun:
    a = build_parser().parse_args(argv)
    if a.patience < 0:
        raise PretrainError(f"--patience must be >= 0, got {a.patience}")
    config = FinetuneConfig(
        optimizer=a.optimizer,
        lr=a.lr,
        momentum=a.momentum,
        weight_decay=a.weight_decay,
        schedule=a.schedule,
        gamma=a.gamma,
        epochs=a.epochs,
        max_steps=a.max_steps,
        eval_every=a.eval_every,
        batch_size=a.batch_size,
        patience=a.patience or None,
        freeze_epochs=a.freeze_epochs,
        labels=a.labels,
        seed=a.seed,
        precision=a.precision,
    )
    val = val_size_arg(a.val_size)
    parse_scheme(a.init, START_SCHEMES)  # an unknown init fails before any data is loaded
    return FinetuneRun(
        a.init, a.layers, a.activation, config, a.data, a.data_dir, val, a.output, a.metrics, a.device, a.quiet
    )


def main(argv: list[str] | None = None) -> int:
    return run_main("pretrain.finetune", lambda: run(parse_args(argv)) and 0)


if __name__ == "__main__":
    sys.exit(main())
