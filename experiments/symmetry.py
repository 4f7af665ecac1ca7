"""The symmetry experiment on MNIST: zero and constant starts never break symmetry, random ones do at once.

Every start trains the same ``784-500-250-100-10`` classifier (``--layers``, ``--activation``) with the same
plain SGD loop (momentum, cross-entropy, in-memory MNIST batches in one seeded order) for ``--steps`` steps.
For each hidden layer we record the *row spread*: the largest difference between the incoming weights (and
bias) of any two of its units (``pretrain.diagnostics.row_spread``), which is exactly 0 while all units of the
layer are identical. A symmetric network computes what a network with *one* unit per hidden layer computes,
so its accuracy is compared with a ``784-1-1-1-10`` network trained the same way from a random start.

Writes ``experiments/results/symmetry.md``, ``experiments/figures/symmetry.png`` and the full
``results/symmetry-<stamp>/results.json``.

    python -m experiments.symmetry --data-dir /tmp/dd --pretrained /tmp/ck/a.pt
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from experiments.common import note_overwrites, results_dir  # noqa: E402
from pretrain.checkpoint import check_writable, write_json, write_text  # noqa: E402
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main  # noqa: E402
from pretrain.data import load_dataset  # noqa: E402
from pretrain.diagnostics import hidden_layers, row_spread  # noqa: E402
from pretrain.figures import save_figure  # noqa: E402
from pretrain.init import initialize  # noqa: E402
from pretrain.mlp import ACTIVATIONS, build_mlp  # noqa: E402

SYMMETRIC = ("zeros", "constant:0.01", "constant:0.05")
RANDOM = ("small-normal", "xavier-uniform", "he-normal")
SMALL = "1 unit per layer (xavier-uniform)"


@torch.no_grad()
def accuracy(model, x, y, chunk: int = 5000) -> float:
    correct = sum(int((model(xs).argmax(1) == ys).sum()) for xs, ys in zip(x.split(chunk), y.split(chunk)))
    return correct / len(y)


def spreads(model) -> list[float]:
    return [row_spread(layer.linear) for layer in hidden_layers(model)]


def scales(model) -> list[float]:
    return [float(layer.linear.weight.detach().abs().max()) for layer in hidden_layers(model)]


def train(model, ds, steps: int, lr: float, batch_size: int, seed: int, every: int, quiet: bool, label: str) -> dict:
    """Plain SGD (momentum 0.9) on cross-entropy; row spreads at step 0, 1 and every ``every`` steps."""
    x, y = ds.train.x, ds.train.y
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    trace = {"step": [0], "spread": [spreads(model)], "scale": [scales(model)]}
    order = torch.randperm(len(y), generator=g)
    pos = 0
    t0 = time.perf_counter()
    for step in tqdm(range(1, steps + 1), disable=quiet, desc=label, leave=False):
        if pos + batch_size > len(y):
            order, pos = torch.randperm(len(y), generator=g), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        if step == 1 or step % every == 0 or step == steps:
            trace["step"].append(step)
            trace["spread"].append(spreads(model))
            trace["scale"].append(scales(model))
    return {
        **trace,
        "max_abs_weight": scales(model),
        "seconds": time.perf_counter() - t0,
        "test_accuracy": accuracy(model, ds.test.x, ds.test.y),
        "train_accuracy": accuracy(model, x[:10000], y[:10000]),
        "head_spread": row_spread(model[-1]),
    }


def run_all(a) -> dict:
    ds = load_dataset("mnist", a.data_dir)
    starts = list(SYMMETRIC) + list(RANDOM) + ([f"pretrained:{a.pretrained}"] if a.pretrained else [])
    runs = {}
    for start in starts:
        model = build_mlp(ds.n_features, a.layers, 10, a.activation)
        initialize(model, start, generator=torch.Generator().manual_seed(a.seed))
        label = "pretrained" if start.startswith("pretrained:") else start
        runs[label] = train(model, ds, a.steps, a.lr, a.batch_size, a.seed, a.every, a.quiet, label)
    small = build_mlp(ds.n_features, [1] * len(a.layers), 10, a.activation)
    initialize(small, "xavier-uniform", generator=torch.Generator().manual_seed(a.seed))
    runs[SMALL] = train(small, ds, a.steps, a.lr, a.batch_size, a.seed, a.every, a.quiet, "small")
    return runs


def markdown(runs: dict, a) -> str:
    arch = "-".join(map(str, [784, *a.layers, 10]))
    lines = [
        "# Symmetric starts on MNIST",
        "",
        f"`{arch}` {a.activation} classifier, plain SGD (lr {a.lr:g}, momentum 0.9, batch {a.batch_size}) for "
        f"{a.steps} steps, seed {a.seed}; test accuracy on the 10,000 MNIST test images. Row spread: the largest "
        "difference between the incoming weights (and bias) of two units of a hidden layer; 0 means every unit "
        "of the layer is identical. Written by `python -m experiments.symmetry"
        + (f" --pretrained {a.pretrained}" if a.pretrained else "")
        + "`.",
        "",
        f"| start | row spread at step 0 (per layer) | after 1 step | after {a.steps} steps | largest \\|w\\| after "
        "| test accuracy |",
        "|---|---|---|---|---|---:|",
    ]

    def fmt(values: list[float]) -> str:
        return " / ".join("0" if v == 0 else f"{v:.2g}" for v in values)

    for name, r in runs.items():
        if name == SMALL:  # one unit per layer: nothing to compare
            lines.append(f"| {name} | (1 unit) | (1 unit) | (1 unit) | - | {100 * r['test_accuracy']:.2f}% |")
            continue
        lines.append(
            f"| {name} | {fmt(r['spread'][0])} | {fmt(r['spread'][1])} | {fmt(r['spread'][-1])} | "
            f"{fmt(r['max_abs_weight'])} | {100 * r['test_accuracy']:.2f}% |"
        )
    return "\n".join(lines) + "\n"


def figure(runs: dict, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.3, 1]})
    floor = 1e-12
    for i, (name, r) in enumerate(runs.items()):
        if name == SMALL:
            continue
        rel = [sp[0] / sc[0] if sc[0] > 0 else 0.0 for sp, sc in zip(r["spread"], r["scale"])]
        ax1.plot(r["step"], [max(v, floor) for v in rel], marker="o", markersize=2.5, color=f"C{i}", label=name)
    ax1.set_yscale("log")
    ax1.set_ylim(floor / 3, 30)
    ax1.axhline(floor, color="k", linewidth=0.6, linestyle=":")
    ax1.text(0, floor * 2, "0 or below 1e-12 (float round-off): identical units", fontsize=7)
    ax1.set_xlabel("SGD step")
    ax1.set_ylabel("layer-1 row spread / max |w|")
    ax1.legend(fontsize=7, ncol=2)
    ax1.set_title("Do the hidden units ever differ?", fontsize=10)
    names = list(runs)
    accs = [100 * runs[n]["test_accuracy"] for n in names]
    colors = ["0.3" if n == SMALL else f"C{i}" for i, n in enumerate(names)]
    ax2.barh(range(len(names)), accs, color=colors)
    ax2.set_yticks(range(len(names)), names, fontsize=7)
    ax2.invert_yaxis()
    for k, v in enumerate(accs):
        ax2.text(v + 0.5, k, f"{v:.1f}%", va="center", fontsize=7)
    ax2.set_xlim(0, 110)
    ax2.set_xlabel("MNIST test accuracy (%)")
    ax2.set_title("Accuracy after the same training", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)
    return path


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m experiments.symmetry",
        description="Train zero, constant and random starts on MNIST and report whether hidden units stay identical.",
    )
    p.add_argument("--layers", type=positive_int, nargs="+", default=[500, 250, 100], help="hidden sizes")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="sigmoid", help="hidden activation")
    p.add_argument("--steps", type=positive_int, default=3000, help="SGD steps per start")
    p.add_argument("--lr", type=positive_float, default=0.1, help="SGD learning rate")
    p.add_argument("--batch-size", type=positive_int, default=128, help="mini-batch size")
    p.add_argument("--every", type=positive_int, default=25, help="record the row spreads every this many steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the inits and the batch order")
    p.add_argument("--data-dir", default="data", help="where MNIST is cached")
    p.add_argument("--pretrained", default=None, help="also start from this stack checkpoint (pretrained:PATH)")
    p.add_argument("--figures-dir", default="experiments/figures", help="where the PNG goes")
    p.add_argument("--tables-dir", default="experiments/results", help="where the Markdown table goes")
    p.add_argument("--results", default="results", help="root folder of the full JSON results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)

    def go() -> int:
        figs, tables = Path(a.figures_dir), Path(a.tables_dir)
        table = tables / "symmetry.md"
        for path in (figs / "symmetry.png", table, Path(a.results) / "x.json"):
            check_writable(path)
        note_overwrites([figs / "symmetry.png", table])
        runs = run_all(a)
        paths = [figure(runs, figs / "symmetry.png")]
        write_text(table, markdown(runs, a))
        paths.append(table)
        paths.append(write_json(results_dir(a.results, "symmetry") / "results.json", {"config": vars(a), "runs": runs}))
        print(table.read_text())
        for p in paths:
            print(f"wrote {p}")
        return 0

    return run_main("experiments.symmetry", go)


if __name__ == "__main__":
    sys.exit(main())
