"""scikit-learn's "Restricted Boltzmann Machine features for digit classification", side by side.

    flock /tmp/pretrain-cpu.lock python -m experiments.sklearn_digits

The example's data and pipeline as scikit-learn writes them: the 8×8 digits nudged by one pixel
in each of the four directions (5× the rows), ``minmax_scale`` to [0, 1], ``train_test_split``
(``test_size=0.2, random_state=0``), and ``Pipeline([features, LogisticRegression(C=6000)])``
against ``LogisticRegression(C=100)`` on the raw pixels. The feature step is scikit-learn's
``BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0)`` or our
``GreedyLayerwiseTransformer`` with 100 units: an RBM on the same recipe (persistent CD-1, SGD
without momentum, learning rate 0.06, batch 10, 10 epochs), an autoencoder and a denoising
autoencoder (Adam 1e-3, batch 10, 10 epochs). A ``GridSearchCV`` (3 folds) over two of our
parameters shows the transformer inside a search. ``PretrainedMLPClassifier`` rows pretrain the
same RBM and fine-tune the whole MLP, on every label or on 10% of them (``y == -1`` elsewhere).

One deviation: the example's ``LogisticRegression(solver="newton-cg", tol=1)`` stops after 0
iterations under scikit-learn 1.9 (chance accuracy), so every logistic regression here keeps
``newton-cg`` with its default ``tol``. Everything runs on one thread (torch and BLAS), so fit
times compare the methods, not how they use a shared CPU. Writes ``sklearn_digits.{md,json}``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.ndimage import convolve
from sklearn import datasets
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale
from threadpoolctl import threadpool_limits

from experiments.common import note_overwrites
from pretrain.checkpoint import atomic_write, check_writable, write_json
from pretrain.cli import ArgumentParser, run_main
from pretrain.sklearn import UNLABELLED, GreedyLayerwiseTransformer, PretrainedMLPClassifier

# Our RBM on BernoulliRBM's recipe: persistent CD-1, plain SGD at 0.06, batch 10, 10 epochs.
RBM_RECIPE = {
    "objective": "rbm",
    "batch_size": 10,
    "pretrain_options": {"optimizer": "sgd", "momentum": 0.0, "persistent": True},
}
LABELLED_FRACTION = 0.1


def nudge_dataset(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's: the 8×8 images plus copies moved by 1 pixel left, right, down and up (5× the rows)."""
    direction_vectors = [
        [[0, 1, 0], [0, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0], [0, 1, 0]],
    ]

    def shift(x, w):
        return convolve(x.reshape((8, 8)), mode="constant", weights=w).ravel()

    X = np.concatenate([X] + [np.apply_along_axis(shift, 1, X, vector) for vector in direction_vectors])
    Y = np.concatenate([Y for _ in range(5)], axis=0)
    return X, Y


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = datasets.load_digits(return_X_y=True)
    X = np.asarray(X, "float32")
    X, Y = nudge_dataset(X, y)
    X = minmax_scale(X, feature_range=(0, 1))  # 0-1 scaling
    return train_test_split(X, Y, test_size=0.2, random_state=0)


def logistic(C: float) -> LogisticRegression:
    return LogisticRegression(solver="newton-cg", C=C)


def ours(objective: str, seed: int) -> GreedyLayerwiseTransformer:
    settings = {**RBM_RECIPE, "lr": 0.06} if objective == "rbm" else {"objective": objective, "batch_size": 10}
    return GreedyLayerwiseTransformer((100,), epochs=10, random_state=seed, **settings)


def arms(seed: int, grid: dict) -> dict:
    """Row name -> (estimator, labelled fraction)."""
    rbm = BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=seed)
    features = {
        "scikit-learn BernoulliRBM": rbm,
        "GreedyLayerwiseTransformer, rbm": ours("rbm", seed),
        "GreedyLayerwiseTransformer, autoencoder": ours("autoencoder", seed),
        "GreedyLayerwiseTransformer, denoising": ours("denoising", seed),
    }
    rows = {"LogisticRegression on raw pixels (C=100)": (logistic(100.0), 1.0)}
    for name, step in features.items():
        pipe = Pipeline([("features", step), ("logistic", logistic(6000))])
        rows[f"{name} + LogisticRegression (C=6000)"] = (pipe, 1.0)
    search_pipe = Pipeline([("features", ours("autoencoder", seed)), ("logistic", logistic(6000))])
    grid_text = ", ".join(f"{k.split('__')[1]} ∈ {{{', '.join(map(str, v))}}}" for k, v in grid.items())
    rows[f"GridSearchCV(GreedyLayerwiseTransformer + LogisticRegression), {grid_text}"] = (
        GridSearchCV(search_pipe, grid, cv=3),
        1.0,
    )
    clf = PretrainedMLPClassifier((100,), pretrain_epochs=10, pretrain_lr=0.06, random_state=seed, **RBM_RECIPE)
    rows["PretrainedMLPClassifier (rbm pretraining, fine-tuned)"] = (clf, 1.0)
    pct = f"{LABELLED_FRACTION:.0%}"
    rows[f"PretrainedMLPClassifier, {pct} labels, pretrained on every row (y == -1 elsewhere)"] = (
        clone(clf),
        LABELLED_FRACTION,
    )
    rows[f"PretrainedMLPClassifier, {pct} labels, those rows only"] = (clone(clf), -LABELLED_FRACTION)
    return rows


def labels_kept(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of ``fraction`` of the rows, the same for every arm."""
    keep = np.zeros(len(y), dtype=bool)
    keep[np.random.default_rng(seed).permutation(len(y))[: round(fraction * len(y))]] = True
    return keep


def run(seed: int, grid: dict) -> dict:
    X_train, X_test, Y_train, Y_test = digits()
    results = {}
    for name, (estimator, fraction) in arms(seed, grid).items():
        X, y = X_train, Y_train
        if fraction != 1.0:
            keep = labels_kept(Y_train, abs(fraction), seed)
            X, y = (X, np.where(keep, y, UNLABELLED)) if fraction > 0 else (X[keep], y[keep])
        t0 = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - t0
        pred = estimator.predict(X_test)
        results[name] = {
            "accuracy": float(np.mean(pred == Y_test)),
            "macro_f1": float(f1_score(Y_test, pred, average="macro")),
            "fit_seconds": seconds,
            "n_train_rows": int(len(y)),
            "n_labels": int(np.sum(y != UNLABELLED)),
        }
        if isinstance(estimator, GridSearchCV):
            results[name]["best_params"] = {k: str(v) for k, v in estimator.best_params_.items()}
        print(f"{results[name]['accuracy']:.4f}  {seconds:6.1f} s  {name}", flush=True)
    return {
        "data": {"n_train": len(Y_train), "n_test": len(Y_test), "n_features": X_train.shape[1]},
        "seed": seed,
        "grid": {k: [str(v) for v in vs] for k, vs in grid.items()},
        "results": results,
        "versions": {"scikit-learn": sklearn.__version__, "torch": str(torch.__version__)},
        "machine": f"{platform.processor() or platform.machine()}, 1 thread",
    }


def markdown(report: dict) -> str:
    d = report["data"]
    lines = [
        "| model | test accuracy | macro F1 | fit time (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        best = ", ".join(f"{k.split('__')[1]}={v}" for k, v in r.get("best_params", {}).items())
        lines.append(
            f"| {name}{f' (best: {best})' if best else ''} | {100 * r['accuracy']:.2f}% | "
            f"{100 * r['macro_f1']:.2f}% | {r['fit_seconds']:.1f} |"
        )
    lines += [
        "",
        f"scikit-learn's nudged 8×8 digits: {d['n_train']} training and {d['n_test']} test rows, "
        f"{d['n_features']} pixels in [0, 1]; seed {report['seed']}; "
        f"scikit-learn {report['versions']['scikit-learn']}, torch {report['versions']['torch']}; one thread. "
        "Fit time: wall time of `fit` (feature learning, "
        "logistic regression, and for GridSearchCV every fold plus the refit), from one run on a 2-core "
        "machine shared with other work: runs differ by up to 2× in time, not at all in accuracy. Made by "
        "`python -m experiments.sklearn_digits`; see its docstring for every setting.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m experiments.sklearn_digits", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seed of every estimator")
    p.add_argument("--out", default="experiments/results", help="folder for sklearn_digits.{md,json}")
    a = p.parse_args(argv)

    def go() -> int:
        out = Path(a.out)
        check_writable(out / "sklearn_digits.json")
        note_overwrites([out / "sklearn_digits.json", out / "sklearn_digits.md"])
        grid = {"features__objective": ["autoencoder", "denoising"], "features__lr": [1e-3, 3e-3]}
        torch.set_num_threads(1)
        with threadpool_limits(1):
            report = run(a.seed, grid)
        write_json(out / "sklearn_digits.json", report)
        text = markdown(report)
        atomic_write(out / "sklearn_digits.md", lambda f: f.write(text.encode()))
        print(text)
        return 0

    return run_main("experiments.sklearn_digits", go)


if __name__ == "__main__":
    sys.exit(main())
