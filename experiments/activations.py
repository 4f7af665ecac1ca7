"""The activation experiment: per-layer activation histograms and gradient norms at initialisation.

x ~ N(0, 1) of size 100, ``--depth`` hidden layers of 50 units (5 as in the initialization tutorial; 10 or 20
for the deeper variant), activations tanh, sigmoid and relu, inits small-normal (N(0, 0.01²)), large-normal (N(0, 1)),
xavier-uniform and he-normal from ``pretrain.init`` (biases 0), plus, for sigmoid, a stack pretrained greedily
in-process (``pretrain.greedy``, sigmoid autoencoders, Adam) on 10,000 other draws of the same N(0, 1) inputs.

Writes, for depth D:
- ``experiments/figures/activations-{tanh,sigmoid,relu}-d{D}.png``: a grid of histograms, one row per init and
  one column per layer (at most 10 evenly spaced layers), like the initialization tutorial's figures;
- ``experiments/figures/gradients-d{D}.png``: activation std and input-gradient norm by layer;
- ``experiments/results/activations-d{D}.md``: the table of statistics and the doctor's warnings;
- ``results/activations-d{D}-<stamp>/results.json``: everything, including the histograms.

Gradients are those of a fixed random projection of the top layer's output (``diagnostics.random_projection_loss``):
the network has no labels, and this back-propagates the same unit-variance error into every model.

    python -m experiments.activations              # the tutorial's 5 layers
    python -m experiments.activations --depth 20   # the deeper variant
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from experiments.common import note_overwrites, results_dir  # noqa: E402
from pretrain.checkpoint import check_writable, write_json, write_text  # noqa: E402
from pretrain.cli import ArgumentParser, positive_int, run_main  # noqa: E402
from pretrain.diagnostics import Report, diagnose, health_warnings  # noqa: E402
from pretrain.figures import save_figure  # noqa: E402
from pretrain.greedy import GreedyConfig, GreedyPretrainer  # noqa: E402
from pretrain.init import initialize  # noqa: E402
from pretrain.mlp import build_mlp  # noqa: E402

ACTIVATIONS = ("tanh", "sigmoid", "relu")
INITS = ("small-normal", "large-normal", "xavier-uniform", "he-normal")
PRETRAINED = "pretrained (greedy)"
N_IN, WIDTH = 100, 50


def pretrained_sigmoid_stack(depth: int, seed: int, epochs: int, n: int = 10_000, quiet: bool = True):
    """A sigmoid ``100-50-...-50`` stack, each layer an autoencoder trained greedily on fresh x ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed + 1_000)
    x = torch.randn(n, N_IN, generator=g)
    cfg = GreedyConfig(layers=[WIDTH] * depth, activation="sigmoid", epochs=epochs, batch_size=128, lr=1e-3, seed=seed)
    p = GreedyPretrainer(cfg).fit(x, progress=not quiet)
    model = build_mlp(N_IN, [WIDTH] * depth, None, "sigmoid")
    model.load_state_dict(p.state_dict_sequential())
    losses = [h.train_loss[-1] for h in p.history_]
    return model, losses


def run_all(depth: int, examples: int, seed: int, pretrain_epochs: int, quiet: bool) -> dict:
    """``{activation: {init: Report}}`` on one shared batch x ~ N(0, 1) ``(examples, 100)``."""
    x = torch.randn(examples, N_IN, generator=torch.Generator().manual_seed(seed))
    reports: dict[str, dict[str, Report]] = {}
    extra = {}
    for act in ACTIVATIONS:
        reports[act] = {}
        for name in INITS:
            model = build_mlp(N_IN, [WIDTH] * depth, None, act)
            initialize(model, name, generator=torch.Generator().manual_seed(seed))
            reports[act][name] = diagnose(model, x)
        if act == "sigmoid":
            t0 = time.perf_counter()
            model, losses = pretrained_sigmoid_stack(depth, seed, pretrain_epochs, quiet=quiet)
            extra = {"pretrain_seconds": time.perf_counter() - t0, "pretrain_final_losses": losses}
            reports[act][PRETRAINED] = diagnose(model, x)
    return {"reports": reports, **extra}


def shown_layers(depth: int, most: int = 10) -> list[int]:
    """Indices (0-based) of at most ``most`` evenly spaced layers, first and last included."""
    if depth <= most:
        return list(range(depth))
    return sorted({round(i * (depth - 1) / (most - 1)) for i in range(most)})


def histogram_grid(act: str, reports: dict[str, Report], depth: int, path: Path) -> Path:
    cols = shown_layers(depth)
    rows = list(reports)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.7 * len(cols), 1.35 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        for c, k in enumerate(cols):
            ax = axes[r][c]
            s = reports[name].layers[k]
            edges = s.hist_edges
            widths = [b - a for a, b in zip(edges, edges[1:])]
            ax.bar(edges[:-1], s.hist_counts, width=widths, align="edge", color="C0", linewidth=0)
            ax.set_yticks([])
            ax.tick_params(labelsize=6, pad=1)
            ax.set_title(f"layer {k + 1}  std {s.std:.2g}", fontsize=6.5, pad=2)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle(f"{act}: activations of each hidden layer, x ~ N(0,1), {depth} layers of {WIDTH}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96), pad=0.4, h_pad=0.5, w_pad=0.3)
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return path


def gradient_plot(reports: dict, depth: int, path: Path) -> Path:
    fig, axes = plt.subplots(2, len(ACTIVATIONS), figsize=(11, 6), squeeze=False)
    layers = list(range(1, depth + 1))
    for c, act in enumerate(ACTIVATIONS):
        for i, (name, rep) in enumerate(reports[act].items()):
            style = {"color": f"C{i}", "marker": "o", "markersize": 3, "label": name}
            axes[0][c].plot(layers, [max(s.std, 1e-30) for s in rep.layers], **style)
            axes[1][c].plot(layers, [max(s.input_grad_norm, 1e-30) for s in rep.layers], **style)
        axes[0][c].set_title(act, fontsize=10)
        for r, label in enumerate(("activation std", "‖dL/d input‖ of the layer")):
            axes[r][c].set_yscale("log")
            axes[r][c].set_xlabel("hidden layer")
            axes[r][c].set_ylabel(label, fontsize=8)
            axes[r][c].grid(alpha=0.3, which="both", linewidth=0.4)
    axes[0][1].legend(fontsize=7)
    fig.suptitle(f"By layer at initialisation: x ~ N(0,1), {depth} layers of {WIDTH}, random-projection loss")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)
    return path


def markdown_table(result: dict, depth: int, seed: int, examples: int) -> str:
    lines = [
        f"# Activation statistics at initialisation, depth {depth}",
        "",
        f"x ~ N(0, 1), {examples}×{N_IN}, {depth} hidden layers of {WIDTH}, seed {seed}. "
        "Written by `python -m experiments.activations"
        + (f" --depth {depth}" if depth != 5 else "")
        + "`. sat%: |tanh| > 0.99, sigmoid < 0.01 or > 0.99; dead%: ReLU units that are 0 on the whole batch; "
        "‖dL/dW‖, ‖dL/dx‖: gradient norms of the layer's weight and input for a fixed random projection loss.",
        "",
        "| activation | init | layer | mean | std | E[h²] | sat% | dead% | ‖dL/dW‖ | ‖dL/dx‖ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    warn_lines = ["", "## What `python -m pretrain.doctor` says about each start", ""]
    for act, by_init in result["reports"].items():
        for name, rep in by_init.items():
            for s in rep.layers:
                sat = "-" if s.saturated is None else f"{100 * s.saturated:.1f}"
                dead = "-" if s.dead is None else f"{100 * s.dead:.1f}"
                lines.append(
                    f"| {act} | {name} | {s.index} | {s.mean:.3g} | {s.std:.3g} | {s.second_moment:.3g} | {sat} | "
                    f"{dead} | {s.weight_grad_norm:.3g} | {s.input_grad_norm:.3g} |"
                )
            warnings = health_warnings(rep)
            shown = "; ".join(warnings[:4]) + (f"; … ({len(warnings)} in all)" if len(warnings) > 4 else "")
            warn_lines.append(f"- **{act}, {name}**: " + (shown if warnings else "healthy"))
    if "pretrain_final_losses" in result:
        losses = ", ".join(f"{v:.3g}" for v in result["pretrain_final_losses"])
        warn_lines += [
            "",
            f"Pretrained sigmoid stack: final per-layer reconstruction losses {losses} "
            f"({result['pretrain_seconds']:.1f} s of greedy pretraining on this machine).",
        ]
    return "\n".join(lines + warn_lines) + "\n"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m experiments.activations",
        description="The activation experiment: histograms of every hidden layer's activations and gradient norms by "
        "layer, for tanh/sigmoid/relu and small-normal/large-normal/xavier-uniform/he-normal starts plus a "
        "greedily pretrained sigmoid stack.",
    )
    p.add_argument("--depth", type=positive_int, default=5, help="hidden layers of 50 units (try 10, 20)")
    p.add_argument("--examples", type=positive_int, default=1000, help="rows of x ~ N(0, 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the inits")
    p.add_argument("--pretrain-epochs", type=positive_int, default=5, help="greedy epochs per layer (sigmoid stack)")
    p.add_argument("--figures-dir", default="experiments/figures", help="where the PNGs go")
    p.add_argument("--tables-dir", default="experiments/results", help="where the Markdown table goes")
    p.add_argument("--results", default="results", help="root folder of the full JSON results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)

    def go() -> int:
        figs, tables = Path(a.figures_dir), Path(a.tables_dir)
        for path in (figs / "x.png", tables / "x.md", Path(a.results) / "x.json"):
            check_writable(path)
        figures = [figs / f"activations-{act}-d{a.depth}.png" for act in ACTIVATIONS]
        note_overwrites([*figures, figs / f"gradients-d{a.depth}.png", tables / f"activations-d{a.depth}.md"])
        result = run_all(a.depth, a.examples, a.seed, a.pretrain_epochs, a.quiet)
        paths = [histogram_grid(act, result["reports"][act], a.depth, path) for act, path in zip(ACTIVATIONS, figures)]
        paths.append(gradient_plot(result["reports"], a.depth, figs / f"gradients-d{a.depth}.png"))
        table = tables / f"activations-d{a.depth}.md"
        write_text(table, markdown_table(result, a.depth, a.seed, a.examples))
        paths.append(table)
        out = results_dir(a.results, f"activations-d{a.depth}")
        data = {
            "config": vars(a),
            **{k: v for k, v in result.items() if k != "reports"},
            "reports": {
                act: {name: {**rep.as_dict(), "warnings": health_warnings(rep)} for name, rep in by.items()}
                for act, by in result["reports"].items()
            },
        }
        paths.append(write_json(out / "results.json", data))
        for act, by in result["reports"].items():
            for name, rep in by.items():
                w = health_warnings(rep)
                print(
                    f"{act:>7} {name:>20}: std layer 1 {rep.layers[0].std:.3g} → layer {a.depth} "
                    f"{rep.layers[-1].std:.3g}; {len(w)} warning(s)"
                )
        for p in paths:
            print(f"wrote {p}")
        return 0

    return run_main("experiments.activations", go)


if __name__ == "__main__":
    sys.exit(main())
