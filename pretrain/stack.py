"""``python -m pretrain.stack --layers 500 250 100``: pretrain a stack greedily, save a checkpoint."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from . import distributed, figures
from .checkpoint import check_writable, load_checkpoint, save_atomic
from .cli import (
    ArgumentParser,
    add_data_arguments,
    positive_float,
    positive_int,
    resolve_device,
    run_main,
    val_size_arg,
)
from .data import load_dataset
from .errors import PretrainError
from .greedy import GreedyConfig, GreedyPretrainer, stack_checkpoint
from .layers import OBJECTIVES
from .layers.autoencoder import LOSSES, NOISES
from .layers.rbm import PRESETS, VISIBLE
from .mlp import ACTIVATIONS
from .training import OPTIMIZERS, PRECISIONS


@dataclass
class StackRun:
    """One ``pretrain.stack`` run: the greedy config plus where data and results live."""

    greedy: GreedyConfig
    data: str = "mnist"
    data_dir: str = "data"
    val_size: float | None = None
    output: str | None = None
    device: str = "auto"
    resume: bool = False
    figures: bool = False
    quiet: bool = False

    @property
    def output_path(self) -> Path:
        if self.output:
            return Path(self.output)
        g = self.greedy
        name = Path(self.data).stem if self.data.endswith((".npz", ".pt")) else self.data
        sizes = "-".join(map(str, g.layers))
        return Path("checkpoints") / f"{name}-{g.objective}-{g.activation}-{sizes}.pt"

    @property
    def resume_path(self) -> Path:
        return self.output_path.with_suffix(".resume.pt")


def run(cfg: StackRun) -> Path:
    """Pretrain, save the checkpoint atomically, optionally write figures; return its path.

    Under ``torchrun`` every rank trains on its shard of the data (see ``pretrain.distributed``);
    only rank 0 writes the resume file, the checkpoint, figures and progress bars.
    """
    owns_group = not distributed.is_distributed()
    try:
        return _run(cfg)
    finally:
        if owns_group:
            distributed.shutdown()


def _run(cfg: StackRun) -> Path:
    out, resume_path = cfg.output_path, cfg.resume_path
    check_writable(out)
    device = distributed.init_from_env(resolve_device(cfg.device))
    main = distributed.is_main()
    run_args = {"data": cfg.data, "data_dir": cfg.data_dir, "val_size": cfg.val_size}
    if cfg.resume:
        if not resume_path.is_file():
            raise PretrainError(f"nothing to resume: {resume_path} does not exist")
        state = load_checkpoint(resume_path)
        saved = {**_flat(state["state_dict"]["config"]), **state["metadata"]["run"]}
        differ = [
            f"--{k.replace('_', '-')} {saved.get(k)} (now {v})"
            for k, v in {**_flat(cfg.greedy.to_dict()), **run_args}.items()
            if v is not None and saved.get(k) != v  # None: a default the run may have resolved
        ]
        if differ:
            raise PretrainError(f"{resume_path} was started with other settings: {', '.join(differ)}")
        pretrainer = GreedyPretrainer.from_state_dict(state["state_dict"], device)
    else:
        pretrainer = GreedyPretrainer(cfg.greedy, device)
    dataset = load_dataset(cfg.data, cfg.data_dir, cfg.val_size)

    def save_progress(p: GreedyPretrainer) -> None:
        if main:
            save_atomic({"state_dict": p.state_dict(), "metadata": {"run": run_args}}, resume_path)

    created_resume = not resume_path.exists()
    new_dirs = [d for d in out.parents if not d.exists()]  # deepest first
    try:
        pretrainer.fit(
            dataset.train.x,
            dataset.val.x,
            y=dataset.train.y,
            y_val=dataset.val.y,
            progress=main and not cfg.quiet,
            on_epoch=save_progress,
        )
    except PretrainError:  # e.g. divergence: leave nothing behind
        if created_resume and main:
            resume_path.unlink(missing_ok=True)
        for d in new_dirs if main else []:
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
        raise
    data_info = {
        "name": dataset.name,
        "scaling": dataset.scaling,
        "n_train": len(dataset.train),
        "n_val": len(dataset.val),
        "image_shape": list(dataset.image_shape or []),
        **run_args,
    }
    if not main:
        return out
    save_atomic(stack_checkpoint(pretrainer, data_info), out)
    resume_path.unlink(missing_ok=True)
    if cfg.figures:
        _write_figures(pretrainer, dataset, out)
    if not cfg.quiet:
        print(summary_table(pretrainer))
    print(f"saved {out}")
    return out


def _flat(config: dict) -> dict:
    """A saved ``GreedyConfig`` with its objective's options on the top level, as the flags are."""
    return {**{k: v for k, v in config.items() if k != "options"}, **(config.get("options") or {})}


def _write_figures(pretrainer: GreedyPretrainer, dataset, out: Path) -> None:
    if dataset.image_shape is None:
        print("note: --figures needs square image data; no figures written", file=sys.stderr)
        return
    weight = pretrainer.layers_[0].encoder.weight
    paths = [figures.save_filters(weight, dataset.image_shape, out.with_suffix(".filters.png"))]
    if all(layer.reconstructs for layer in pretrainer.layers_):
        x = dataset.test.x[:50].to(pretrainer.device)
        x_hat = pretrainer.reconstruct(x)
        recon_path = out.with_suffix(".reconstructions.png")
        paths.append(figures.save_reconstructions(x, x_hat, dataset.image_shape, recon_path))
    for p in paths:
        print(f"wrote {p}")


def summary_table(pretrainer: GreedyPretrainer) -> str:
    """Layer, in→out, final train and validation loss, seconds and samples/s, one row a layer."""
    rows = [f"{'layer':>5}  {'in→out':>11}  {'loss':>13}  {'train':>9}  {'val':>9}  {'seconds':>8}  {'samples/s':>10}"]
    for k, h in enumerate(pretrainer.history_):
        rows.append(
            f"{k + 1:>5}  {f'{h.n_in}→{h.n_out}':>11}  {h.loss:>13}  {h.train_loss[-1]:>9.4f}  "
            f"{h.val_loss[-1]:>9.4f}  {h.seconds:>8.1f}  {h.samples_per_s:>10.0f}"
        )
    for k, h in enumerate(pretrainer.history_):
        if h.diagnostics and h.diagnostics[-1]:
            rows.append(
                f"layer {k + 1} diagnostics: " + ", ".join(f"{n} {v:.4g}" for n, v in h.diagnostics[-1].items())
            )
    return "\n".join(rows)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m pretrain.stack",
        description="Pretrain a stack of hidden layers greedily, one layer at a time, each as an "
        "autoencoder, RBM or (with labels) supervised layer on the codes of the frozen layers below it. "
        "The checkpoint's state_dict "
        "loads into a plain nn.Sequential(Linear, act, Linear, act, ..., head).",
    )
    p.add_argument(
        "--layers",
        type=positive_int,
        nargs="+",
        required=True,
        metavar="N",
        help="hidden layer sizes, bottom first, e.g. 500 250 100",
    )
    add_data_arguments(p)
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="autoencoder",
        help="layer objective: (denoising) autoencoder, rbm, or supervised (a temporary softmax head on the "
        "labels, discarded when the layer is done; needs labelled data)",
    )
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="sigmoid", help="hidden activation")
    p.add_argument(
        "--top-activation",
        choices=list(ACTIVATIONS),
        default=None,
        help="activation of the last layer only (default: --activation), e.g. linear for a code layer",
    )
    p.add_argument("--epochs", type=positive_int, default=10, help="training epochs per layer")
    p.add_argument("--batch-size", type=positive_int, default=128, help="mini-batch size")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer for each layer")
    p.add_argument("--momentum", type=float, default=0.9, help="momentum (sgd only)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    p.add_argument(
        "--tied",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decoder weight is the encoder's transpose (--no-tied: a separate matrix)",
    )
    p.add_argument(
        "--loss",
        choices=["auto", *LOSSES],
        default="auto",
        help="reconstruction loss; auto: cross-entropy for inputs in [0, 1], else mse",
    )
    p.add_argument(
        "--noise",
        choices=NOISES,
        default=None,
        help="input corruption while training (default: mask for --objective denoising, none for autoencoder): "
        "mask zeroes inputs, gaussian adds noise",
    )
    p.add_argument(
        "--noise-level",
        type=float,
        default=None,
        help="fraction of inputs zeroed (mask) or noise std σ (gaussian) (default: 0.25 for denoising)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and data order")
    p.add_argument(
        "--linear-lr",
        type=positive_float,
        default=None,
        help="learning rate of layers with a linear activation, e.g. a linear code layer (default: --lr)",
    )
    rbm = p.add_argument_group("RBM layers (--objective rbm)")
    rbm.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="hinton2006: Hinton & Salakhutdinov's rbm.m/rbmhidlinear.m recipe (objective rbm, sgd, CD-1, "
        "lr 0.1, linear-layer lr 0.001, weight cost 0.0002, momentum 0.5 then 0.9 after epoch 5, batch 100, "
        "initial weights 0.1·N(0,1)); flags given explicitly override it",
    )
    rbm.add_argument("--cd-k", type=positive_int, default=1, help="Gibbs steps per update (CD-k)")
    rbm.add_argument("--persistent", action="store_true", help="persistent CD: negative chains continue across batches")
    rbm.add_argument(
        "--sample-hidden",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sample the hidden states driving each reconstruction (--no-sample-hidden: mean field)",
    )
    rbm.add_argument(
        "--sample-visible",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="sample the reconstructed visible states (default: probabilities, as Hinton's code)",
    )
    rbm.add_argument(
        "--visible",
        choices=VISIBLE,
        default="auto",
        help="first layer's visible units: bernoulli needs inputs in [0, 1], gaussian standardises "
        "them; auto picks by the input range",
    )
    rbm.add_argument("--init-std", type=positive_float, default=0.01, help="initial weights are N(0, std²)")
    rbm.add_argument(
        "--final-momentum",
        type=float,
        default=None,
        help="sgd momentum after --momentum-epochs epochs (default: keep --momentum)",
    )
    rbm.add_argument(
        "--momentum-epochs", type=int, default=5, help="epochs trained with --momentum before --final-momentum"
    )
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
        help="checkpoint path, .pt or .safetensors (pickle-free) "
        "(default: checkpoints/<data>-<objective>-<activation>-<sizes>.pt)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run of the same --output from its last finished epoch",
    )
    p.add_argument(
        "--figures",
        action="store_true",
        help="also write PNGs next to the checkpoint: first-layer filters and reconstructions",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary table")
    return p


def parse_args(argv: list[str] | None = None) -> StackRun:
    return stack_run_from_args(apply_preset(build_parser(), argv).parse_args(argv))


def apply_preset(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Make the ``--preset`` named in ``argv`` the parser's defaults, so explicit flags still win."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    name = pre.parse_known_args(argv)[0].preset
    if name in PRESETS:
        parser.set_defaults(**PRESETS[name])
    return parser


def stack_run_from_args(a: argparse.Namespace) -> StackRun:
    """The ``StackRun`` of parsed ``build_parser`` arguments (CLIs that extend the parser reuse it)."""
    greedy = GreedyConfig.from_flat({k: v for k, v in vars(a).items() if k in GreedyConfig.setting_names()})
    val = val_size_arg(a.val_size)
    return StackRun(greedy, a.data, a.data_dir, val, a.output, a.device, a.resume, a.figures, a.quiet)


def main(argv: list[str] | None = None) -> int:
    return run_main("pretrain.stack", lambda: run(parse_args(argv)) and 0)


if __name__ == "__main__":
    sys.exit(main())
