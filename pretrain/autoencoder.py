"""``python -m pretrain.autoencoder --layers 1000 500 250 30``: pretrain, unroll, fine-tune a deep autoencoder.

Stage 1 is exactly ``pretrain.stack`` (same flags, progress and resume file), writing its stack
checkpoint to ``<output>.stack.pt``; stage 2 unrolls it and fine-tunes the whole autoencoder,
saving its progress after every epoch to ``<output>.resume.pt``. The final checkpoint holds the
encoder and the decoder as plain ``nn.Sequential`` state dicts; the test squared error per
image (summed over features) is printed beside PCA's with the same code size.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import stack
from .checkpoint import check_writable, load_checkpoint, save_atomic
from .cli import ArgumentParser, positive_float, positive_int, resolve_device, run_main
from .data import load_dataset
from .deep_autoencoder import (
    PCA,
    DeepAutoencoderConfig,
    DeepAutoencoderTrainer,
    autoencoder_checkpoint,
    mirrored_activations,
    random_autoencoder,
    squared_error_per_image,
    unroll,
)
from .errors import PretrainError
from .layers.autoencoder import LOSSES
from .training import OPTIMIZERS

INITS = ("pretrained", "random")


@dataclass
class AutoencoderRun:
    """One ``pretrain.autoencoder`` run: the pretraining run, fine-tuning, and where to start from."""

    stack: stack.StackRun
    finetune: DeepAutoencoderConfig
    init: str = "pretrained"
    stack_checkpoint: str | None = None  # unroll this stack instead of pretraining one

    @property
    def output_path(self) -> Path:
        if self.stack.output:
            return Path(self.stack.output)
        s = self.stack
        name = Path(s.data).stem if s.data.endswith((".npz", ".pt")) else s.data
        sizes = "-".join(map(str, s.greedy.layers))
        start = s.greedy.objective if self.init == "pretrained" else "random"
        return Path("checkpoints") / f"{name}-autoencoder-{start}-{sizes}.pt"

    @property
    def pretrain_path(self) -> Path:
        return self.output_path.with_suffix(".stack.pt")

    @property
    def resume_path(self) -> Path:
        return self.output_path.with_suffix(".resume.pt")

    def settings(self) -> dict:
        """Everything a resumed run must share with the run it continues."""
        s = self.stack
        return {
            "data": s.data,
            "data_dir": s.data_dir,
            "val_size": s.val_size,
            "init": self.init,
            "stack": self.stack_checkpoint,
            **asdict(s.greedy),
            **{f"finetune_{k}": v for k, v in asdict(self.finetune).items()},
        }


def run(cfg: AutoencoderRun) -> Path:
    """Pretrain (or start at random), fine-tune, save the checkpoint; return its path."""
    out, pre = cfg.output_path, cfg.pretrain_path
    check_writable(out)
    # exit 2 at any stage leaves nothing behind: not the stack this run pretrained, nor new folders
    created_stack = not pre.exists()
    new_dirs = [d for d in out.parents if not d.exists()]  # deepest first
    try:
        return _run(cfg)
    except PretrainError:
        if created_stack:
            pre.unlink(missing_ok=True)
        for d in new_dirs:
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
        raise


def _run(cfg: AutoencoderRun) -> Path:
    out, resume_path = cfg.output_path, cfg.resume_path
    device = resolve_device(cfg.stack.device)
    if cfg.stack.resume and resume_path.is_file():
        state = load_checkpoint(resume_path)
        _check_same_settings(resume_path, state["metadata"]["settings"], cfg.settings())
        tuner = DeepAutoencoderTrainer.from_state_dict(state["state_dict"], device)
        origin = state["metadata"]["origin"]
    else:
        model, origin = _starting_model(cfg)
        tuner = DeepAutoencoderTrainer(model, cfg.finetune, device)
    if tuner.model.sizes[1:] != cfg.stack.greedy.layers:
        raise PretrainError(f"the stack has layers {tuner.model.sizes[1:]}, not --layers {cfg.stack.greedy.layers}")
    dataset = load_dataset(cfg.stack.data, cfg.stack.data_dir, cfg.stack.val_size)
    if dataset.n_features != tuner.model.sizes[0]:
        raise PretrainError(f"the stack takes {tuner.model.sizes[0]} inputs, the data has {dataset.n_features}")

    meta = {"settings": cfg.settings(), "origin": origin}
    created_resume = not resume_path.exists()
    try:
        tuner.fit(
            dataset.train.x,
            dataset.val.x,
            progress=not cfg.stack.quiet,
            on_epoch=lambda t: save_atomic({"state_dict": t.state_dict(), "metadata": meta}, resume_path),
        )
    except PretrainError:
        if created_resume:
            resume_path.unlink(missing_ok=True)
        raise
    test_x = dataset.test.x.to(device)
    test_error = squared_error_per_image(test_x, tuner.model.reconstruct(test_x))
    data_info = {"name": dataset.name, "scaling": dataset.scaling, "image_shape": list(dataset.image_shape or [])}
    extra = {"init": cfg.init, "origin": origin, "data": {**data_info, **cfg.settings()}, "test_error": test_error}
    save_atomic(autoencoder_checkpoint(tuner, extra), out)
    resume_path.unlink(missing_ok=True)

    code = tuner.model.sizes[-1]
    print(f"test squared error per image: {test_error:.4f}  ({cfg.init} start, {tuner.history.seconds:.0f} s)")
    if code < min(dataset.n_features, len(dataset.train)):
        pca = PCA.fit(dataset.train.x, code)
        pca_error = squared_error_per_image(dataset.test.x, pca.reconstruct(dataset.test.x))
        print(f"PCA with {code} components:   {pca_error:.4f}")
    print(f"saved {out}")
    return out


def _starting_model(cfg: AutoencoderRun):
    """The model fine-tuning starts from, and a short note of where it came from."""
    g = cfg.stack.greedy
    if cfg.init == "random":
        if cfg.stack.resume:
            raise PretrainError(f"nothing to resume: {cfg.resume_path} does not exist")
        x = load_dataset(cfg.stack.data, cfg.stack.data_dir, cfg.stack.val_size).train.x
        output = "sigmoid" if float(x.min()) >= 0 and float(x.max()) <= 1 else "linear"
        generator = torch.Generator().manual_seed(g.seed)
        model = random_autoencoder(
            [x.shape[1], *g.layers], g.activations, mirrored_activations(g.activations, output), generator
        )
        return model, "random"
    if cfg.stack_checkpoint:
        if cfg.stack.resume:
            raise PretrainError(f"nothing to resume: {cfg.resume_path} does not exist")
        return unroll(load_checkpoint(cfg.stack_checkpoint)), str(cfg.stack_checkpoint)
    pre = cfg.pretrain_path
    stage = replace(cfg.stack, output=str(pre), figures=False)
    if not cfg.stack.resume:
        stack.run(stage)
    elif stage.resume_path.is_file():
        stack.run(stage)  # continues the interrupted pretraining
    elif pre.is_file():
        _check_same_settings(pre, load_checkpoint(pre)["metadata"]["config"], asdict(g))
    else:
        raise PretrainError(f"nothing to resume: neither {cfg.resume_path} nor {stage.resume_path} exists")
    return unroll(load_checkpoint(pre)), str(pre)


def _check_same_settings(path: Path, saved: dict, now: dict) -> None:
    differ = [f"--{k.replace('_', '-')} {saved.get(k)} (now {v})" for k, v in now.items() if saved.get(k) != v]
    if differ:
        raise PretrainError(f"{path} was started with other settings: {', '.join(differ)}")


def build_parser() -> ArgumentParser:
    """``pretrain.stack``'s flags (the pretraining stage), plus fine-tuning and the starting point."""
    p = stack.build_parser()
    p.prog = "python -m pretrain.autoencoder"
    p.description = (
        "Deep autoencoder (Hinton & Salakhutdinov 2006): pretrain a stack greedily, unroll it into an "
        "encoder and a mirrored decoder (transposed weights, visible biases), fine-tune end to end, and "
        "print the test squared error per image. The encoder loads into a plain nn.Sequential."
    )
    p.set_defaults(top_activation="linear")
    for action in p._actions:  # argparse has no public way to reword an inherited flag
        if action.dest == "top_activation":
            action.help = "activation of the code layer (default: linear, as in the paper)"
        elif action.dest == "epochs":
            action.help = "pretraining epochs per layer"
        elif action.dest == "output":
            action.help = (
                "checkpoint path (default: checkpoints/<data>-autoencoder-<start>-<sizes>.pt); "
                "the pretrained stack goes beside it as <output>.stack.pt"
            )
    f = p.add_argument_group("fine-tuning")
    f.add_argument(
        "--init",
        choices=INITS,
        default="pretrained",
        help="start from the pretrained stack, or from random weights (the control)",
    )
    f.add_argument(
        "--stack",
        default=None,
        metavar="PATH",
        help="unroll this stack checkpoint (from pretrain.stack) instead of pretraining one",
    )
    f.add_argument("--finetune-epochs", type=positive_int, default=20, help="end-to-end fine-tuning epochs")
    f.add_argument("--finetune-batch-size", type=positive_int, default=128, help="fine-tuning mini-batch size")
    f.add_argument("--finetune-lr", type=positive_float, default=1e-3, help="fine-tuning learning rate")
    f.add_argument("--finetune-optimizer", choices=OPTIMIZERS, default="adam", help="fine-tuning optimizer")
    f.add_argument("--finetune-momentum", type=float, default=0.9, help="fine-tuning momentum (sgd only)")
    f.add_argument("--finetune-weight-decay", type=float, default=0.0, help="fine-tuning L2 weight decay")
    f.add_argument(
        "--finetune-loss",
        choices=LOSSES,
        default="cross-entropy",
        help="cross-entropy on pixels in [0, 1] (sigmoid output), or mse",
    )
    return p


def parse_args(argv: list[str] | None = None) -> AutoencoderRun:
    a = stack.apply_preset(build_parser(), argv).parse_args(argv)
    finetune = DeepAutoencoderConfig(
        epochs=a.finetune_epochs,
        batch_size=a.finetune_batch_size,
        lr=a.finetune_lr,
        optimizer=a.finetune_optimizer,
        momentum=a.finetune_momentum,
        weight_decay=a.finetune_weight_decay,
        loss=a.finetune_loss,
        seed=a.seed,
        precision=a.precision,
    )
    return AutoencoderRun(stack.stack_run_from_args(a), finetune, a.init, a.stack)


def main(argv: list[str] | None = None) -> int:
    return run_main("pretrain.autoencoder", lambda: run(parse_args(argv)) and 0)


if __name__ == "__main__":
    sys.exit(main())
