"""Hinton & Salakhutdinov (2006), MNIST: a pretrained 784-1000-500-250-30 autoencoder against PCA.

    python -m experiments.deep_autoencoder --data-dir /tmp/dd     # from a clone's root

Runs, on the MNIST test set, with the paper's metric (squared error per image, summed over the
784 pixels in [0, 1], averaged over images):

- the pretrained deep autoencoder, for each ``--objectives`` (autoencoder and/or rbm layers):
  greedy pretraining, unrolling, end-to-end fine-tuning (Adam, cross-entropy on pixels);
- the same shape from a random start, fine-tuned for the same wall time (fine-tuning epochs
  plus as many epochs as the first objective's pretraining took);
- PCA with 30 components;
- a 784-1000-500-250-2 autoencoder against the first two principal components (Fig. 3).

Writes ``experiments/results/deep_autoencoder.{json,md}`` (table, per-epoch curves, times)
and ``experiments/figures/deep_autoencoder_{reconstructions,codes}.png`` (Figs. 2 and 3).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import matplotlib
import torch

from experiments.common import note_overwrites
from pretrain.checkpoint import check_writable, write_json, write_text
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main
from pretrain.data import load_dataset
from pretrain.deep_autoencoder import (
    PCA,
    DeepAutoencoderConfig,
    DeepAutoencoderTrainer,
    mirrored_activations,
    random_autoencoder,
    squared_error_per_image,
    unroll,
)
from pretrain.figures import save_figure
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers import OBJECTIVES
from pretrain.training import PRECISIONS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PAPER = {"deep autoencoder": 3.00, "logistic PCA": 8.01, "PCA": 13.87}


def pretrain_config(objective: str, layers: list[int], epochs: int, seed: int, precision: str = "fp32") -> GreedyConfig:
    """Greedy config of one objective; ``rbm`` uses Hinton & Salakhutdinov's own recipe."""
    common = {"layers": layers, "top_activation": "linear", "epochs": epochs, "seed": seed, "precision": precision}
    if objective == "rbm":
        from pretrain.layers.rbm import HINTON2006

        return GreedyConfig.from_flat({**common, **HINTON2006})
    return GreedyConfig(objective=objective, **common)


def deep_run(data, objective: str | None, layers: list[int], args, finetune_epochs: int, progress: bool) -> dict:
    """Pretrain with ``objective`` (None: random start), unroll, fine-tune; errors, curves and times."""
    x, x_val, x_test = data.train.x, data.val.x, data.test.x
    out: dict = {"objective": objective or "random start", "layers": [x.shape[1], *layers]}
    t0 = time.perf_counter()
    if objective is None:
        acts = ["sigmoid"] * (len(layers) - 1) + ["linear"]
        gen = torch.Generator().manual_seed(args.seed)
        model = random_autoencoder([x.shape[1], *layers], acts, mirrored_activations(acts), gen)
        out["pretrain_seconds"] = 0.0
    else:
        cfg = pretrain_config(objective, layers, args.pretrain_epochs, args.seed, args.precision)
        stack = GreedyPretrainer(cfg).fit(x, x_val, progress=progress)
        out["pretrain_seconds"] = time.perf_counter() - t0
        out["pretrain_epochs"] = args.pretrain_epochs
        out["pretrain_layer_seconds"] = [h.seconds for h in stack.history_]
        model = unroll(stack)
        out["test_error_before_finetuning"] = squared_error_per_image(x_test, model.reconstruct(x_test))
    ft = DeepAutoencoderConfig(
        epochs=finetune_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, precision=args.precision
    )
    tuner = DeepAutoencoderTrainer(model, ft).fit(x, x_val, progress=progress, desc=f"fine-tune {out['objective']}")
    out["finetune_epochs"] = finetune_epochs
    out["finetune_seconds"] = tuner.history.seconds
    out["seconds_per_finetune_epoch"] = tuner.history.seconds / finetune_epochs
    out["total_seconds"] = time.perf_counter() - t0
    out["val_error_per_epoch"] = tuner.history.val_error
    out["test_error"] = squared_error_per_image(x_test, tuner.model.reconstruct(x_test))
    out["trend"] = extrapolate(tuner.history.val_error, PAPER["deep autoencoder"], out["seconds_per_finetune_epoch"])
    out["model"] = tuner.model
    return out


def extrapolate(errors: list[float], target: float, seconds_per_epoch: float) -> dict:
    """Fit ``error ≈ a · epoch^(-b)`` to the second half of the curve; epochs and time to ``target``."""
    n = len(errors)
    if n < 4:
        return {}
    half = list(range(n // 2, n))
    xs = torch.tensor([math.log(e + 1) for e in half], dtype=torch.float64)
    ys = torch.tensor([math.log(errors[e]) for e in half], dtype=torch.float64)
    slope = float(((xs - xs.mean()) * (ys - ys.mean())).sum() / (xs - xs.mean()).square().sum())
    log_a = float(ys.mean() - slope * xs.mean())
    out = {"fit": f"error = a * epoch^-b on epochs {half[0] + 1}..{n}", "a": math.exp(log_a), "b": -slope}
    if slope < 0:
        epochs = math.exp((math.log(target) - log_a) / slope)
        out.update(epochs_to_target=epochs, hours_to_target=epochs * seconds_per_epoch / 3600)
    return out


def by_class(y: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of every class, class by class."""
    return torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in range(int(y.max()) + 1)])


def fig_reconstructions(x, rows: dict[str, torch.Tensor], path: Path) -> Path:
    """Fig. 2: the test digits (top row) and each method's reconstructions below them."""
    rows = {"test digits": x, **rows}
    fig, axes = plt.subplots(len(rows), x.shape[0], figsize=(x.shape[0] * 0.7, len(rows) * 0.78))
    for r, (name, images) in enumerate(rows.items()):
        for c in range(x.shape[0]):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(28, 28).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def fig_codes(codes: dict[str, torch.Tensor], y: torch.Tensor, path: Path) -> Path:
    """Fig. 3: 2-D codes of test digits, coloured by class, one panel per method."""
    fig, axes = plt.subplots(1, len(codes), figsize=(5.2 * len(codes), 5))
    for ax, (name, z) in zip(axes, codes.items()):
        for c in range(10):
            pts = z[y == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=3, color=plt.cm.tab10(c), label=str(c), rasterized=True)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)
    return path


def save_partial(res: dict, results: Path) -> None:
    """The runs finished so far (a long run killed later still leaves its numbers)."""
    runs = [{k: v for k, v in r.items() if k != "model"} for r in res["deep"]]
    write_json(results / "deep_autoencoder.partial.json", {**res, "deep": runs})


def markdown_table(res: dict) -> str:
    """The error table, paper beside measured, and the time of every run."""
    lines = [
        "| model (30-d code) | paper | measured | pretraining | fine-tuning | total |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in res["deep"]:
        name = f"deep autoencoder, pretrained ({run['objective']})"
        paper = f"{PAPER['deep autoencoder']:.2f}"
        if run["objective"] == "random start":
            name, paper = "deep autoencoder, random start (same wall time)", "fails (no number)"
        lines.append(
            f"| {name} | {paper} | {run['test_error']:.2f} | {run['pretrain_seconds']:.0f} s "
            f"({run.get('pretrain_epochs', 0)} ep/layer) | {run['finetune_seconds']:.0f} s "
            f"({run['finetune_epochs']} ep) | {run['total_seconds'] / 60:.1f} min |"
        )
    lines.append(f"| logistic PCA | {PAPER['logistic PCA']:.2f} | not run | | | |")
    lines.append(f"| PCA | {PAPER['PCA']:.2f} | {res['pca']['test_error']:.2f} | | | {res['pca']['seconds']:.1f} s |")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m experiments.deep_autoencoder",
        description="Hinton & Salakhutdinov (2006) on MNIST: a pretrained 784-1000-500-250-30 deep autoencoder "
        "against a random start given the same time and PCA-30; a 2-D code net against PCA-2.",
    )
    p.add_argument("--data-dir", default="data", help="where MNIST is cached")
    p.add_argument(
        "--objectives",
        nargs="+",
        default=[o for o in ("rbm", "autoencoder") if o in OBJECTIVES],
        choices=[o for o in ("autoencoder", "rbm", "denoising") if o in OBJECTIVES],
        help="pretraining objectives to compare (rbm: Hinton & Salakhutdinov's recipe); the first is used for "
        "the random-start budget and the 2-D net",
    )
    p.add_argument("--layers", type=positive_int, nargs="+", default=[1000, 500, 250, 30], help="encoder widths")
    p.add_argument("--pretrain-epochs", type=positive_int, default=10, help="pretraining epochs per layer")
    p.add_argument("--finetune-epochs", type=positive_int, default=40, help="fine-tuning epochs of the 30-d nets")
    p.add_argument("--code2-finetune-epochs", type=positive_int, default=15, help="fine-tuning epochs of the 2-D net")
    p.add_argument("--batch-size", type=positive_int, default=128, help="fine-tuning mini-batch size")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="fine-tuning Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of every run")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32, or bf16 autocast with fp32 weights")
    p.add_argument("--subset", type=positive_int, default=None, help="use only this many training images (smoke tests)")
    p.add_argument("--no-random", action="store_true", help="skip the random-start control")
    p.add_argument("--no-code2", action="store_true", help="skip the 2-D net and Fig. 3")
    p.add_argument("--results", default="experiments/results", help="folder for the table and JSON")
    p.add_argument("--figures", default="experiments/figures", help="folder for the PNGs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main("experiments.deep_autoencoder", lambda: run(args) and 0)


def run(args) -> dict:
    """Every run of the study with the parsed ``args``; writes the table, the JSON and the figures."""
    torch.manual_seed(args.seed)
    results, figures = Path(args.results), Path(args.figures)
    for path in (results / "deep_autoencoder.json", figures / "deep_autoencoder_codes.png"):
        check_writable(path)
    names = ["deep_autoencoder.json", "deep_autoencoder.md"]
    pictures = ["deep_autoencoder_reconstructions.png"] + ([] if args.no_code2 else ["deep_autoencoder_codes.png"])
    note_overwrites([results / n for n in names] + [figures / n for n in pictures])
    progress = not args.quiet

    data = load_dataset("mnist", args.data_dir)
    if args.subset:
        data.train.x, data.train.y = data.train.x[: args.subset], data.train.y[: args.subset]
    x, x_test, y_test = data.train.x, data.test.x, data.test.y
    code = args.layers[-1]
    res: dict = {
        "paper": PAPER,
        "metric": "squared error per test image, summed over 784 pixels in [0, 1], averaged over 10,000 images",
        "n_train": len(data.train),
        "n_val": len(data.val),
        "threads": torch.get_num_threads(),
        "args": vars(args),
    }

    t0 = time.perf_counter()
    pca = PCA.fit(x, code)
    pca_recon = pca.reconstruct(x_test)
    res["pca"] = {"components": code, "test_error": squared_error_per_image(x_test, pca_recon)}
    res["pca"]["seconds"] = time.perf_counter() - t0
    print(f"PCA-{code}: {res['pca']['test_error']:.3f}", flush=True)

    res["deep"] = []
    for objective in args.objectives:
        run = deep_run(data, objective, args.layers, args, args.finetune_epochs, progress)
        print(f"pretrained ({objective}): {run['test_error']:.3f} in {run['total_seconds']:.0f} s", flush=True)
        res["deep"].append(run)
        save_partial(res, results)
    if not args.no_random:
        first = res["deep"][0]
        extra = round(first["pretrain_seconds"] / first["seconds_per_finetune_epoch"])
        run = deep_run(data, None, args.layers, args, args.finetune_epochs + extra, progress)
        print(f"random start: {run['test_error']:.3f} in {run['total_seconds']:.0f} s", flush=True)
        res["deep"].append(run)
        save_partial(res, results)

    best = min((r for r in res["deep"] if r["objective"] != "random start"), key=lambda r: r["test_error"])
    digits = x_test[by_class(y_test, 1)]
    rows = {f"deep AE ({best['objective']})": best["model"].reconstruct(digits)}
    rows[f"PCA-{code}"] = pca.reconstruct(digits)
    random_runs = [r for r in res["deep"] if r["objective"] == "random start"]
    if random_runs:
        rows["random-start AE"] = random_runs[0]["model"].reconstruct(digits)
    res["figure_reconstructions"] = str(
        fig_reconstructions(digits, rows, figures / "deep_autoencoder_reconstructions.png")
    )

    if not args.no_code2:
        layers2 = [*args.layers[:-1], 2]
        run2 = deep_run(data, args.objectives[0], layers2, args, args.code2_finetune_epochs, progress)
        pca2 = PCA.fit(x, 2)
        idx = by_class(y_test, 500)
        codes = {
            "first two principal components": pca2.transform(x_test[idx]),
            f"784-{'-'.join(map(str, layers2))} autoencoder ({args.objectives[0]})": run2["model"].encode(x_test[idx]),
        }
        res["code2"] = {k: v for k, v in run2.items() if k != "model"}
        res["code2"]["pca2_test_error"] = squared_error_per_image(x_test, pca2.reconstruct(x_test))
        res["figure_codes"] = str(fig_codes(codes, y_test[idx], figures / "deep_autoencoder_codes.png"))
        print(
            f"2-D codes: autoencoder {run2['test_error']:.2f} vs PCA-2 {res['code2']['pca2_test_error']:.2f}",
            flush=True,
        )

    for run in res["deep"]:
        del run["model"]
    res["table"] = markdown_table(res)
    write_json(results / "deep_autoencoder.json", res)
    write_text(results / "deep_autoencoder.md", res["table"] + "\n")
    (results / "deep_autoencoder.partial.json").unlink(missing_ok=True)
    print(res["table"])
    return res


if __name__ == "__main__":
    sys.exit(main())
