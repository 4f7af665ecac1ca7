"""scikit-learn's "Restricted Boltzmann Machine features for digit classification", side by side.

    flock /tmp/pretrain-cpu.lock python -m experiments.sklearn_digits

The example's data and pipeline as scikit-learn writes them: the 8×8 digits nudged by one pixel
in each of the four directions (5× the rows), ``minmax_scale`` to [0, 1], ``train_test_split``
(``test_size=0.2, random_state=0``), and ``Pipeline([features, LogisticRegression(C=6000)])``
against ``LogisticRegression(C=100)`` on the raw pixels.

Feature pipelines: the example sets ``learning_rate=0.06, n_iter=10, n_components=100`` on a
``BernoulliRBM``; the same three settings, unchanged, go to a ``GreedyLayerwiseTransformer`` (its
defaults are BernoulliRBM's: one RBM, persistent CD-1, plain SGD, batch 10), next to its autoencoder
and denoising objectives (Adam 1e-3, batch 10, 10 epochs). One ``GridSearchCV`` (3 folds) over
``n_components`` and ``learning_rate`` runs unchanged on both RBMs.

Classifiers, with the same hidden layer (100 units) and the same budget (``MLPClassifier``'s
defaults: Adam at 1e-3, batch ``min(200, n)``, ``max_iter=200``, ``tol=1e-4``, ``n_iter_no_change=10``,
``alpha=1e-4``): ``MLPClassifier`` with its default ReLU and with the logistic (sigmoid) units ours
use, and ``PretrainedMLPClassifier`` (RBM pretraining as in the example: learning rate 0.06, 10
epochs, batch 10), on every label and on 10% of them. With 10%, ``PretrainedMLPClassifier`` runs
twice: on the labelled rows only, and pretrained on every row with ``unlabeled_label=-1`` on the rest.

Every arm runs with ``random_state`` 0..4 (the 10% of labels kept also change with it); tables give
mean ± sd over the 5 seeds. One deviation: the example's ``LogisticRegression(solver="newton-cg",
tol=1)`` stops after 0 iterations under scikit-learn 1.9 (chance accuracy), so every logistic
regression here keeps ``newton-cg`` with its default ``tol``. Everything runs on one thread (torch
and BLAS). Writes ``sklearn_digits.{md,json}``.
"""

from __future__ import annotations

import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.ndimage import convolve
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import BernoulliRBM, MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale
from threadpoolctl import threadpool_limits

from experiments.common import note_overwrites
from pretrain.checkpoint import check_writable, write_json, write_text
from pretrain.cli import ArgumentParser, run_main
from pretrain.errors import PretrainError
from pretrain.sklearn import GreedyLayerwiseTransformer, PretrainedMLPClassifier

EXAMPLE_RBM = {"learning_rate": 0.06, "n_iter": 10, "n_components": 100}  # as the example sets them
GRID = {"features__n_components": [50, 100], "features__learning_rate": [0.02, 0.06]}
BUDGET = {"hidden_layer_sizes": (100,), "max_iter": 200}  # every other setting: MLPClassifier's default
PRETRAINING = {"pretrain_learning_rate": 0.06, "pretrain_n_iter": 10}  # the example's RBM
LABELLED_FRACTION = 0.1
UNLABELLED = -1


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


def feature_arms(seed: int) -> dict:
    """Row name -> estimator, every feature step inside the example's pipeline."""
    steps = {
        "scikit-learn BernoulliRBM": BernoulliRBM(random_state=seed).set_params(**EXAMPLE_RBM),
        "GreedyLayerwiseTransformer (rbm, its default)": GreedyLayerwiseTransformer(random_state=seed).set_params(
            **EXAMPLE_RBM
        ),
        "GreedyLayerwiseTransformer, autoencoder": GreedyLayerwiseTransformer(
            100, objective="autoencoder", random_state=seed
        ),
        "GreedyLayerwiseTransformer, denoising": GreedyLayerwiseTransformer(
            100, objective="denoising", random_state=seed
        ),
    }
    rows = {"LogisticRegression on raw pixels (C=100)": logistic(100.0)}
    for name, step in steps.items():
        rows[f"{name} + LogisticRegression (C=6000)"] = Pipeline([("features", step), ("logistic", logistic(6000))])
    return rows


def classifier_arms(seed: int, fraction: float) -> dict:
    """Row name -> (estimator, whether unlabelled rows are passed with y == -1)."""
    rows = {
        "MLPClassifier (relu, its default)": (MLPClassifier(**BUDGET, random_state=seed), False),
        "MLPClassifier (logistic)": (MLPClassifier(**BUDGET, activation="logistic", random_state=seed), False),
        "PretrainedMLPClassifier (rbm, sigmoid)": (
            PretrainedMLPClassifier(**BUDGET, **PRETRAINING, random_state=seed),
            False,
        ),
    }
    if fraction < 1:
        semi = PretrainedMLPClassifier(**BUDGET, **PRETRAINING, unlabeled_label=UNLABELLED, random_state=seed)
        rows["PretrainedMLPClassifier, pretrained on every row (unlabeled_label=-1)"] = (semi, True)
    return rows


def labels_kept(n: int, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of ``fraction`` of the rows, the same for every arm of a seed."""
    keep = np.zeros(n, dtype=bool)
    keep[np.random.default_rng(seed).permutation(n)[: round(fraction * n)]] = True
    return keep


def fit_and_score(estimator, X, y, X_test, y_test) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(X, y)
    seconds = time.perf_counter() - t0
    out = {
        "accuracy": float(np.mean(estimator.predict(X_test) == y_test)),
        "fit_seconds": seconds,
        "n_rows": int(len(y)),
        "n_labels": int(np.sum(y != UNLABELLED)),
        "cut_by_max_iter": any(issubclass(w.category, ConvergenceWarning) for w in caught),
    }
    if isinstance(estimator, (MLPClassifier, PretrainedMLPClassifier)):
        out["n_iter"] = int(estimator.n_iter_)
    return out


def run(seeds: list[int]) -> dict:
    X_train, X_test, Y_train, Y_test = digits()
    report: dict = {"features": {}, "classifiers": {}, "grid": {}}
    for seed in seeds:
        for name, estimator in feature_arms(seed).items():
            r = fit_and_score(estimator, X_train, Y_train, X_test, Y_test)
            report["features"].setdefault(name, []).append(r)
            print(f"seed {seed}  {r['accuracy']:.4f}  {r['fit_seconds']:6.1f} s  {name}", flush=True)
        for fraction in (LABELLED_FRACTION, 1.0):
            keep = labels_kept(len(Y_train), fraction, seed)
            for name, (estimator, semi) in classifier_arms(seed, fraction).items():
                X, y = (X_train, np.where(keep, Y_train, UNLABELLED)) if semi else (X_train[keep], Y_train[keep])
                r = fit_and_score(estimator, X, y, X_test, Y_test)
                report["classifiers"].setdefault(f"{fraction:.0%}", {}).setdefault(name, []).append(r)
                print(
                    f"seed {seed}  {r['accuracy']:.4f}  {r['fit_seconds']:6.1f} s  {fraction:.0%}  {name}", flush=True
                )
    for name, rbm in (
        ("scikit-learn BernoulliRBM", BernoulliRBM(random_state=0).set_params(**EXAMPLE_RBM)),
        ("GreedyLayerwiseTransformer", GreedyLayerwiseTransformer(random_state=0).set_params(**EXAMPLE_RBM)),
    ):
        search = GridSearchCV(Pipeline([("features", rbm), ("logistic", logistic(6000))]), GRID, cv=3)
        r = fit_and_score(search, X_train, Y_train, X_test, Y_test)
        r["best_params"] = {k.split("__")[1]: v for k, v in search.best_params_.items()}
        report["grid"][name] = r
        print(f"grid  {r['accuracy']:.4f}  {r['fit_seconds']:6.1f} s  {name}  {r['best_params']}", flush=True)
    report.update(
        data={"n_train": len(Y_train), "n_test": len(Y_test), "n_features": X_train.shape[1]},
        seeds=list(seeds),
        example_rbm=EXAMPLE_RBM,
        grid_params={k.split("__")[1]: v for k, v in GRID.items()},
        versions={"scikit-learn": sklearn.__version__, "torch": str(torch.__version__)},
        machine=f"{platform.processor() or platform.machine()}, 1 thread",
    )
    return report


def _mean_sd(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    v = scale * np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def markdown(report: dict) -> str:
    d, n = report["data"], len(report["seeds"])
    lines = [
        f"Feature pipelines (test accuracy %, mean ± sd over {n} seeds; fit time in s, mean):",
        "",
        "| features + LogisticRegression | test accuracy (%) | fit time (s) |",
        "|---|---:|---:|",
    ]
    for name, runs in report["features"].items():
        lines.append(
            f"| {name} | {_mean_sd([r['accuracy'] for r in runs])} | {np.mean([r['fit_seconds'] for r in runs]):.1f} |"
        )
    grid = ", ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in report["grid_params"].items())
    lines += [
        "",
        f"The same `GridSearchCV` ({grid}, 3 folds, seed 0) on both RBMs, unchanged:",
        "",
        "| grid search over | best parameters | test accuracy (%) | fit time (s) |",
        "|---|---|---:|---:|",
    ]
    for name, r in report["grid"].items():
        best = ", ".join(f"{k}={v}" for k, v in r["best_params"].items())
        lines.append(f"| {name} | {best} | {100 * r['accuracy']:.2f} | {r['fit_seconds']:.1f} |")
    fractions = list(report["classifiers"])
    names = list(dict.fromkeys(name for f in fractions for name in report["classifiers"][f]))
    lines += [
        "",
        f"Classifiers, one hidden layer of 100 units, the same budget (test accuracy %, mean ± sd over {n} seeds; "
        "epochs run, mean; runs that reached `max_iter` still improving):",
        "",
        "| classifier | " + " | ".join(f"{f} of the labels" for f in fractions) + " | epochs | cut by max_iter |",
        "|---|" + "---:|" * len(fractions) + "---:|---:|",
    ]
    for name in names:
        cells, runs_all = [], []
        for f in fractions:
            runs = report["classifiers"][f].get(name)
            cells.append("—" if runs is None else _mean_sd([r["accuracy"] for r in runs]))
            runs_all += runs or []
        epochs = " / ".join(
            f"{np.mean([r['n_iter'] for r in report['classifiers'][f][name]]):.0f}"
            for f in fractions
            if name in report["classifiers"][f]
        )
        cut = sum(r["cut_by_max_iter"] for r in runs_all)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {epochs} | {cut} of {len(runs_all)} |")
    lines += [
        "",
        f"scikit-learn's nudged 8×8 digits: {d['n_train']} training and {d['n_test']} test rows, "
        f"{d['n_features']} pixels in [0, 1]; seeds {', '.join(map(str, report['seeds']))} (10% of the labels: "
        f"{round(LABELLED_FRACTION * d['n_train'])} rows, drawn per seed); scikit-learn "
        f"{report['versions']['scikit-learn']}, torch {report['versions']['torch']}; one thread. Epochs: "
        "`n_iter_`, per column. Fit time: wall time of `fit` on a 2-core machine shared with other work "
        "(it varies up to 2× between runs; the accuracies do not). Made by `python -m experiments.sklearn_digits`; "
        "see its docstring for every setting.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m experiments.sklearn_digits", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="number of seeds: random_state 0..N-1 (default 5)")
    p.add_argument("--out", default="experiments/results", help="folder for sklearn_digits.{md,json}")
    a = p.parse_args(argv)

    def go() -> int:
        if a.seeds < 1:
            raise PretrainError(f"--seeds must be at least 1, got {a.seeds}")
        out = Path(a.out)
        check_writable(out / "sklearn_digits.json")
        note_overwrites([out / "sklearn_digits.json", out / "sklearn_digits.md"])
        torch.set_num_threads(1)
        with threadpool_limits(1):
            report = run(list(range(a.seeds)))
        write_json(out / "sklearn_digits.json", report)
        text = markdown(report)
        write_text(out / "sklearn_digits.md", text)
        print(text)
        return 0

    return run_main("experiments.sklearn_digits", go)


if __name__ == "__main__":
    sys.exit(main())
