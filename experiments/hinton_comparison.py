"""``python -m experiments.hinton_comparison``: pretrained starts against Xavier, He and the naive starts.

Every arm builds the same MLP and fine-tunes it with the same optimizer, schedule, batch size,
epochs and data order; the start of the hidden layers is the only difference. Seed ``s`` gives
every arm the same data order, the same labelled subset and the same head init (``HEAD_INIT``
drawn from a generator seeded with ``s``), so arms are compared seed by seed (paired). Each arm's
learning rate is picked from the same grid by validation error on the first seed (never on test);
that search run is reused as the first seed's run, the other seeds run at the chosen rate.

Pretrained arms pretrain their stack once per seed on the 55,000 unlabelled training images
(the validation images stay unseen by every arm), and the pretraining time is counted in their
wall time. Outputs go to a new folder ``<output>/hinton-<protocol>-<network>-<time>``:
``results.json`` (config and every per-seed number), ``table.md`` and three PNGs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from experiments.common import results_dir
from experiments.stats import confidence_interval, mean_std, paired_difference
from pretrain.checkpoint import write_json
from pretrain.cli import ArgumentParser, positive_float, positive_int, run_main
from pretrain.data import Dataset, load_dataset
from pretrain.errors import DivergenceError, PretrainError
from pretrain.mlp import build_mlp

PRETRAINED_ARMS = ("autoencoder", "denoising", "rbm")
PLAIN_ARMS = ("xavier-uniform", "he-normal", "lecun-normal", "orthogonal", "lsuv", "torch-default")
NAIVE_ARMS = ("small-normal", "large-normal", "zeros")
ALL_ARMS = PRETRAINED_ARMS + PLAIN_ARMS + NAIVE_ARMS
BASELINES = ("xavier-uniform", "he-normal")  # every arm's paired difference is taken against these
TARGET_VAL_ERROR = 2.0  # %: "epochs to reach 2% validation error"
HEAD_SEED_OFFSET = 7919  # the head's generator is seeded with seed + this, apart from the body's

# name -> (hidden sizes, activation)
NETWORKS: dict[str, tuple[list[int], str]] = {
    "sigmoid": ([500, 250, 100], "sigmoid"),  # the design card's network (the default)
    "relu": ([500, 250, 100], "relu"),  # pretrained ReLU autoencoders against He
    "hinton": ([500, 500, 2000], "sigmoid"),  # Hinton & Salakhutdinov 2006, MNIST classification
}


@dataclass
class Protocol:
    """Every setting of one benchmark run (saved in ``results.json``).

    ``labels``: labelled training examples per fine-tuning run, ``None`` meaning all of them.
    ``epochs`` applies with all labels; runs with fewer labels get ``label_epochs`` epochs.
    ``pretrain_epochs``: epochs per layer of every pretrained arm (autoencoder, denoising, RBM).
    Fine-tuning keeps the weights of the epoch with the lowest validation error (``finetune``
    restores them); ``patience=None`` runs every epoch.
    """

    name: str = "quick"
    network: str = "sigmoid"
    hidden: list[int] = field(default_factory=lambda: [500, 250, 100])
    activation: str = "sigmoid"
    arms: list[str] = field(default_factory=lambda: [*BASELINES, *(a for a in ALL_ARMS if a not in BASELINES)])
    seeds: int = 3
    labels: list[int | None] = field(default_factory=lambda: [None, 1000])
    epochs: int = 6
    label_epochs: int = 15
    lr_grid: list[float] = field(default_factory=lambda: [0.03, 0.1, 0.3])
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_size: int = 100
    patience: int | None = None
    freeze_epochs: int = 0
    pretrain_epochs: int = 2
    pretrain_lr: float = 1e-3
    pretrain_batch_size: int = 128
    noise_level: float = 0.25
    rbm_preset: str = "hinton2006"
    data: str = "mnist"
    data_dir: str = "data"
    val_size: int = 5000
    output: str = "results"
    cache: str | None = None
    threads: int | None = None
    quiet: bool = False

    def epochs_for(self, labels: int | None) -> int:
        return self.epochs if labels is None else self.label_epochs


PROTOCOLS: dict[str, dict] = {
    # All default arms x 3 seeds on the design card's network in <= 20 minutes on 2 CPU cores.
    "quick": {},
    # Hinton & Salakhutdinov's 784-500-500-2000-10: 50 RBM epochs per layer (their rbm.m maxepoch),
    # 200 fine-tuning epochs of which the first 5 train only the head (their backpropclassify.m).
    "paper": {
        "network": "hinton",
        "arms": ["rbm", "autoencoder", "xavier-uniform", "he-normal"],
        "labels": [None],
        "epochs": 200,
        "freeze_epochs": 5,
        "pretrain_epochs": 50,
        "lr_grid": [0.01, 0.03, 0.1],
    },
    # CI: tiny data and network, 1 epoch, 2 seeds; checks the pipeline, not the numbers.
    "smoke": {
        "hidden": [32, 16],
        "seeds": 2,
        "epochs": 1,
        "label_epochs": 1,
        "pretrain_epochs": 1,
        "lr_grid": [0.03, 0.1],
        "labels": [None, 50],
        "val_size": 50,
    },
}


def make_protocol(name: str = "quick", **overrides) -> Protocol:
    """The named protocol's settings with ``overrides`` (``None`` values are ignored) on top."""
    if name not in PROTOCOLS:
        raise PretrainError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    settings = {**PROTOCOLS[name], **{k: v for k, v in overrides.items() if v is not None}}
    network = settings.get("network", "sigmoid")
    if network not in NETWORKS:
        raise PretrainError(f"unknown network {network!r}; choose from {', '.join(NETWORKS)}")
    hidden, activation = NETWORKS[network]
    settings.setdefault("hidden", hidden)
    settings.setdefault("activation", activation)
    if activation != "sigmoid" and "arms" not in settings:
        settings["arms"] = [a for a in Protocol().arms if a != "rbm"]  # Bernoulli RBMs pretrain sigmoid units only
    protocol = Protocol(name=name, **settings)
    _check(protocol)
    return protocol


def _check(p: Protocol) -> None:
    unknown = [a for a in p.arms if a not in ALL_ARMS]
    if unknown:
        raise PretrainError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ALL_ARMS)}")
    if not p.arms:
        raise PretrainError("give at least one arm")
    if "rbm" in p.arms and p.activation != "sigmoid":
        raise PretrainError(f"the rbm arm needs a sigmoid network (Bernoulli hidden units), not {p.activation}")
    if p.seeds < 1:
        raise PretrainError(f"--seeds must be at least 1, got {p.seeds}")
    if any(n is not None and n < 1 for n in p.labels):
        raise PretrainError(f"--labels must be positive counts or 'all', got {p.labels}")
    if not p.lr_grid or any(not (lr > 0 and math.isfinite(lr)) for lr in p.lr_grid):
        raise PretrainError(f"--lr-grid needs positive learning rates, got {p.lr_grid}")


# --------------------------------------------------------------------------- starts
def pretrain_stack(p: Protocol, objective: str, seed: int, dataset: Dataset) -> tuple[dict, dict]:
    """Pretrain the hidden layers with ``objective`` on the unlabelled training images.

    Returns the encoder state dict (``build_mlp`` keys) and a record: seconds, config, per-layer
    losses. With ``p.cache`` set, a stack pretrained before with the same config on the
    same data is read back from there (its record keeps the seconds it took then).
    """
    from pretrain.checkpoint import load_checkpoint, save_atomic
    from pretrain.greedy import GreedyConfig, GreedyPretrainer

    settings = {"layers": list(p.hidden), "activation": p.activation, "epochs": p.pretrain_epochs, "seed": seed}
    if objective == "rbm":
        settings.update(rbm_settings(p.rbm_preset))
        settings["epochs"] = p.pretrain_epochs
    else:
        settings.update(objective=objective, lr=p.pretrain_lr, batch_size=p.pretrain_batch_size)
        if objective == "denoising":
            settings.update(noise="mask", noise_level=p.noise_level)
    config = GreedyConfig.from_flat(settings)
    key = _digest([config.to_dict(), _fingerprint(dataset)])
    cached = Path(p.cache) / f"stack-{objective}-{key}.pt" if p.cache else None
    if cached is not None and cached.is_file():
        saved = load_checkpoint(cached)
        return saved["state_dict"], {**saved["metadata"], "cached": str(cached)}
    t0 = time.perf_counter()
    pretrainer = GreedyPretrainer(config).fit(dataset.train.x, dataset.val.x)
    seconds = time.perf_counter() - t0
    record = {
        "seconds": seconds,
        "config": config.to_dict(),
        "key": key,
        "train_loss": [h.train_loss for h in pretrainer.history_],
        "val_loss": [h.val_loss for h in pretrainer.history_],
    }
    state = pretrainer.state_dict_sequential()
    if cached is not None:
        save_atomic({"state_dict": state, "metadata": record}, cached)
    return state, record


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(dataset: Dataset) -> list:
    return [dataset.name, len(dataset.train), len(dataset.val), len(dataset.test), float(dataset.train.x.sum())]


def rbm_settings(preset: str) -> dict:
    """``GreedyConfig`` fields of the named RBM preset (e.g. ``hinton2006``), ``objective="rbm"`` included."""
    from pretrain.layers.rbm import PRESETS

    if preset not in PRESETS:
        raise PretrainError(f"unknown RBM preset {preset!r}; choose from {', '.join(PRESETS)}")
    return {"objective": "rbm", **PRESETS[preset]}


def build_start(p: Protocol, arm: str, seed: int, dataset: Dataset, stacks: dict) -> nn.Sequential:
    """The arm's start for ``seed``: body from the arm, head the same for every arm."""
    from pretrain.init import HEAD_INIT, initialize

    model = build_mlp(dataset.n_features, list(p.hidden), dataset.n_classes, p.activation)
    body = torch.Generator().manual_seed(seed)
    if arm in PRETRAINED_ARMS:
        missing, unexpected = model.load_state_dict(stacks[(arm, seed)], strict=False)
        assert not unexpected and len(missing) == 2, (missing, unexpected)  # only the head is left
    else:
        data = dataset.train.x if arm == "lsuv" else None
        initialize(model, arm, generator=body, data=data)
    initialize(model[-1], HEAD_INIT, generator=torch.Generator().manual_seed(seed + HEAD_SEED_OFFSET))
    return model


# ------------------------------------------------------------------------ fine-tuning
def finetune_run(p: Protocol, model: nn.Module, dataset: Dataset, lr: float, seed: int, labels: int | None) -> dict:
    """Fine-tune ``model`` once; per-epoch curves and final numbers in percent, or ``diverged``."""
    from pretrain.finetuning import FinetuneConfig, finetune

    config = FinetuneConfig(
        optimizer=p.optimizer,
        lr=lr,
        momentum=p.momentum,
        weight_decay=p.weight_decay,
        schedule=p.schedule,
        epochs=p.epochs_for(labels),
        batch_size=p.batch_size,
        patience=p.patience,
        freeze_epochs=p.freeze_epochs,
        labels=labels,
        seed=seed,
    )
    t0 = time.perf_counter()
    try:
        result = finetune(model, dataset, config)
    except DivergenceError as err:
        return {"diverged": True, "message": str(err), "seconds": time.perf_counter() - t0}
    return {
        "diverged": False,
        "seconds": time.perf_counter() - t0,
        "train_loss": list(result.train_loss),
        "train_error": _percent(result.train_error),
        "val_error": _percent(result.val_error),
        "test_error": _percent(result.test_error),
        "best_epoch": result.best_epoch,
        "final_test_error": 100.0 * result.test_error_final,
        "final_test_errors": int(result.test_errors),
    }


def _ft_settings(p: Protocol, labels: int | None) -> dict:
    """What a fine-tuning run depends on besides its arm, seed, lr and stack."""
    keep = ("hidden", "activation", "optimizer", "momentum", "weight_decay", "schedule", "batch_size", "patience")
    return {**{k: getattr(p, k) for k in keep}, "freeze_epochs": p.freeze_epochs, "epochs": p.epochs_for(labels)}


def _percent(values) -> list[float]:
    """Error fractions in [0, 1] to percent."""
    return [100.0 * float(v) for v in values]


def epochs_to(val_error: list[float], target: float = TARGET_VAL_ERROR) -> int | None:
    """First epoch (counting from 1) whose validation error (%) is at most ``target``; None if never."""
    return next((i + 1 for i, v in enumerate(val_error) if v <= target), None)


# ----------------------------------------------------------------------- the benchmark
def run(p: Protocol) -> Path:
    """Run every arm x seed x label count, write results.json, table.md and figures; return the folder."""
    if p.threads:
        torch.set_num_threads(p.threads)
    dataset = load_dataset(p.data, p.data_dir, p.val_size)
    if dataset.n_classes is None:
        raise PretrainError(f"{p.data} has no labels; the benchmark needs a labelled data set")
    too_many = [n for n in p.labels if n is not None and n > len(dataset.train)]
    if too_many:
        raise PretrainError(f"--labels {too_many[0]} is more than the {len(dataset.train)} training examples")
    out = results_dir(p.output, f"hinton-{p.name}-{p.network}")
    seeds = list(range(p.seeds))
    n_pre = sum(a in PRETRAINED_ARMS for a in p.arms) * len(seeds)
    n_fit = len(p.labels) * len(p.arms) * (len(p.lr_grid) + len(seeds) - 1)
    bar = tqdm(total=n_pre + n_fit, disable=p.quiet, unit="run", dynamic_ncols=True, desc="benchmark")
    started = time.perf_counter()

    stacks, pretraining = {}, {}
    for arm in (a for a in p.arms if a in PRETRAINED_ARMS):
        for seed in seeds:
            bar.set_postfix_str(f"pretrain {arm} seed {seed}")
            stacks[(arm, seed)], pretraining[f"{arm}/{seed}"] = pretrain_stack(p, arm, seed, dataset)
            bar.update(1)

    runs, lr_search = [], {}
    for labels in p.labels:
        key = label_key(labels)
        lr_search[key] = {}
        for arm in p.arms:
            pre_s = lambda s, arm=arm: pretraining[f"{arm}/{s}"]["seconds"] if arm in PRETRAINED_ARMS else 0.0  # noqa: E731

            def fit(seed: int, lr: float, arm=arm, labels=labels, key=key) -> dict:
                bar.set_postfix_str(f"{key} labels, {arm}, seed {seed}, lr {lr:g}")
                stack = pretraining[f"{arm}/{seed}"]["key"] if arm in PRETRAINED_ARMS else None
                what = [arm, seed, lr, labels, _ft_settings(p, labels), stack, _fingerprint(dataset)]
                cached = Path(p.cache) / f"run-{_digest(what)}.json" if p.cache else None
                if cached is not None and cached.is_file():
                    record = {**json.loads(cached.read_text()), "cached": str(cached)}
                else:
                    record = finetune_run(p, build_start(p, arm, seed, dataset, stacks), dataset, lr, seed, labels)
                    if cached is not None:
                        write_json(cached, record)
                bar.update(1)
                return record

            # the search runs on the first seed, judged by validation error only
            trials = {lr: fit(seeds[0], lr) for lr in p.lr_grid}
            chosen = min(p.lr_grid, key=lambda lr: (_best_val(trials[lr]), lr))
            lr_search[key][arm] = {
                "chosen": chosen,
                "best_val_error": {f"{lr:g}": _best_val(trials[lr]) for lr in p.lr_grid},
            }
            for seed in seeds:
                if seed == seeds[0]:
                    record = trials[chosen]
                else:
                    record = fit(seed, chosen)
                record = {"arm": arm, "labels": key, "seed": seed, "lr": chosen, **record}
                record["pretrain_seconds"] = pre_s(seed)
                record["wall_seconds"] = record["pretrain_seconds"] + record["seconds"]
                record["epochs_to_2pct_val"] = None if record["diverged"] else epochs_to(record["val_error"])
                runs.append(record)
            # kept up to date so that an interrupted run still leaves every finished number behind
            write_json(out / "partial.json", {"protocol": asdict(p), "seeds": seeds, "runs": runs})
    bar.close()

    results = {
        "protocol": asdict(p),
        "seeds": seeds,
        "dataset": {
            "name": dataset.name,
            "n_features": dataset.n_features,
            "n_classes": dataset.n_classes,
            "n_train": len(dataset.train),
            "n_val": len(dataset.val),
            "n_test": len(dataset.test),
        },
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "processor": platform.processor() or platform.machine(),
        },
        "total_seconds": time.perf_counter() - started,
        "pretraining": pretraining,
        "lr_search": lr_search,
        "runs": runs,
    }
    results["summary"] = summarize(results)
    write_json(out / "results.json", results)
    (out / "partial.json").unlink(missing_ok=True)
    (out / "table.md").write_text(markdown_table(results))
    from experiments.hinton_figures import save_figures

    figures = save_figures(results, out)
    if not p.quiet:
        print(markdown_table(results))
    print(f"wrote {out}/results.json, table.md and {len(figures)} figures in {results['total_seconds']:.0f} s")
    return out


def label_key(labels: int | None) -> str:
    return "all" if labels is None else str(labels)


def _best_val(record: dict) -> float:
    return math.inf if record["diverged"] else min(record["val_error"])


# ------------------------------------------------------------------------ statistics
def summarize(results: dict) -> dict:
    """Per label count and arm: mean ± std test error (%) and count, paired differences, epochs, wall time.

    Computed only from the per-seed records in ``results["runs"]``.
    """
    summary = {}
    done = {r["arm"] for r in results["runs"]}
    arms = [a for a in results["protocol"]["arms"] if a in done]
    for key in dict.fromkeys(r["labels"] for r in results["runs"]):
        rows = [r for r in results["runs"] if r["labels"] == key]

        def per_seed(arm, field, rows=rows):
            by_seed = {r["seed"]: r for r in rows if r["arm"] == arm}
            return [None if by_seed[s]["diverged"] else by_seed[s][field] for s in results["seeds"] if s in by_seed]

        summary[key] = {}
        for arm in arms:
            errors = [v for v in per_seed(arm, "final_test_error") if v is not None]
            counts = [v for v in per_seed(arm, "final_test_errors") if v is not None]
            reached = [v for v in per_seed(arm, "epochs_to_2pct_val")]
            walls = [r["wall_seconds"] for r in rows if r["arm"] == arm]
            mean, std = mean_std(errors)
            entry = {
                "lr": next(r["lr"] for r in rows if r["arm"] == arm),
                "n": len(errors),
                "diverged": sum(r["diverged"] for r in rows if r["arm"] == arm),
                "test_error_mean": mean,
                "test_error_std": std,
                "test_error_ci": confidence_interval(errors),
                "test_errors_per_seed": counts,
                "test_errors_mean": mean_std(counts)[0],
                "epochs_to_2pct_val": reached,
                "epochs_to_2pct_val_mean": mean_std([v for v in reached if v is not None])[0],
                "wall_seconds_mean": mean_std(walls)[0],
            }
            for base in BASELINES:
                if base in arms and base != arm:
                    entry[f"vs_{base}"] = paired_difference(
                        per_seed(arm, "final_test_error"), per_seed(base, "final_test_error")
                    )
            summary[key][arm] = entry
    return summary


def _fmt_diff(d: dict | None) -> str:
    if d is None:
        return "—"
    if d["n"] < 2:
        return f"{d['mean']:+.2f}" if d["n"] else "—"
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def markdown_table(results: dict) -> str:
    """One Markdown table per label count, arms sorted by mean test error."""
    p, lines = results["protocol"], []
    sizes = "-".join(map(str, [results["dataset"].get("n_features", 784), *p["hidden"], 10]))
    for key, arms in results["summary"].items():
        n_seeds = len(results["seeds"])
        lines += [
            f"**{key} labels** — {p['activation']} {sizes}, {n_seeds} paired seeds; test error on "
            f"{results['dataset']['n_test']:,} images; Δ = paired difference in points, 95% t interval",
            "",
            "| arm | lr | test error % (mean ± std) | errors per seed | Δ vs xavier-uniform | Δ vs he-normal "
            "| epochs to 2% val | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for arm, e in sorted(
            arms.items(), key=lambda kv: (math.isnan(kv[1]["test_error_mean"]), kv[1]["test_error_mean"])
        ):
            reached = [v for v in e["epochs_to_2pct_val"] if v is not None]
            epochs = "never" if not reached else f"{e['epochs_to_2pct_val_mean']:.1f}"
            if reached and len(reached) < len(e["epochs_to_2pct_val"]):
                epochs += f" ({len(reached)}/{len(e['epochs_to_2pct_val'])} seeds)"
            error = "diverged" if not e["n"] else f"{e['test_error_mean']:.2f} ± {e['test_error_std']:.2f}"
            if e["diverged"] and e["n"]:
                error += f" ({e['diverged']} diverged)"
            grid = p["lr_grid"]
            edge = "†" if len(grid) > 1 and e["lr"] in (min(grid), max(grid)) else ""
            lines.append(
                f"| {arm} | {e['lr']:g}{edge} | {error} | {', '.join(map(str, e['test_errors_per_seed']))} "
                f"| {_fmt_diff(e.get('vs_xavier-uniform'))} | {_fmt_diff(e.get('vs_he-normal'))} "
                f"| {epochs} | {e['wall_seconds_mean']:.0f} |"
            )
        lines.append("")
    lines.append(
        f"lr: chosen per arm from {p['lr_grid']} by validation error on seed 0 († at the edge of the grid). "
        f"Wall s: pretraining plus one fine-tuning run. Fine-tuning: {p['optimizer']} (momentum {p['momentum']}), "
        f"{p['schedule']} schedule, batch {p['batch_size']}, {p['epochs']} epochs with all labels, "
        f"{p['label_epochs']} with fewer; pretraining: {p['pretrain_epochs']} epochs per layer."
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- cost estimate
def estimate_cost(p: Protocol) -> dict:
    """Time one pretraining epoch per layer and one fine-tuning epoch; extrapolate one seed's cost.

    One seed costs ``pretrain_epochs`` x (a pretraining epoch) per pretrained arm plus
    ``epochs`` x (a fine-tuning epoch) per arm; the learning-rate search on the first seed
    multiplies the fine-tuning part by the grid size once.
    """
    if p.threads:
        torch.set_num_threads(p.threads)
    dataset = load_dataset(p.data, p.data_dir, p.val_size)
    probe = replace(p, pretrain_epochs=1, epochs=1, label_epochs=1, cache=None)
    pre_epoch = {}
    for arm in (a for a in p.arms if a in PRETRAINED_ARMS):
        pre_epoch[arm] = pretrain_stack(probe, arm, 0, dataset)[1]["seconds"]
    model = build_start(probe, "xavier-uniform", 0, dataset, {})
    fit_epoch = finetune_run(probe, model, dataset, p.lr_grid[0], 0, None)["seconds"]
    per_seed = sum(pre_epoch.values()) * p.pretrain_epochs + len(p.arms) * p.epochs * fit_epoch
    search = len(p.arms) * (len(p.lr_grid) - 1) * p.epochs * fit_epoch
    return {
        "pretrain_epoch_seconds": pre_epoch,
        "finetune_epoch_seconds": fit_epoch,
        "one_seed_seconds": per_seed,
        "lr_search_extra_seconds": search,
        "total_seconds": per_seed * p.seeds + search,
    }


# ---------------------------------------------------------------------------- the CLI
def _labels(text: str) -> int | None:
    return None if text == "all" else positive_int(text)


def build_parser() -> ArgumentParser:
    q = Protocol()
    p = ArgumentParser(
        prog="python -m experiments.hinton_comparison",
        description="Paired-seed benchmark of pretrained starts (autoencoder, denoising, RBM) against "
        "Xavier, He, LeCun, orthogonal, LSUV, torch-default and the naive starts, all fine-tuned the "
        "same way. Flags left unset take the --protocol's value (shown defaults are the quick protocol's).",
    )
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="quick", help="preset of every setting below")
    p.add_argument("--network", choices=list(NETWORKS), default=None, help=f"network (quick: {q.network})")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=None, help="override the hidden sizes")
    p.add_argument("--arms", nargs="+", default=None, metavar="ARM", help=f"arms to run: {', '.join(ALL_ARMS)}")
    p.add_argument("--seeds", type=positive_int, default=None, help=f"paired seeds 0..N-1 (quick: {q.seeds})")
    p.add_argument(
        "--labels",
        type=_labels,
        nargs="+",
        default=None,
        help="labelled training examples per fine-tuning run, e.g. 100 600 1000 3000 all (quick: 1000 all)",
    )
    p.add_argument("--epochs", type=positive_int, default=None, help=f"fine-tuning epochs, all labels ({q.epochs})")
    p.add_argument(
        "--label-epochs",
        type=positive_int,
        default=None,
        help=f"fine-tuning epochs with fewer labels ({q.label_epochs})",
    )
    p.add_argument(
        "--lr-grid", type=positive_float, nargs="+", default=None, help=f"learning rates searched per arm {q.lr_grid}"
    )
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=None, help=f"fine-tuning optimizer ({q.optimizer})")
    p.add_argument("--momentum", type=float, default=None, help=f"SGD momentum ({q.momentum})")
    p.add_argument("--weight-decay", type=float, default=None, help=f"L2 weight decay ({q.weight_decay})")
    p.add_argument("--schedule", default=None, help=f"learning-rate schedule ({q.schedule})")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"fine-tuning batch ({q.batch_size})")
    p.add_argument(
        "--patience", type=positive_int, default=None, help="stop after N epochs without a better val error (never)"
    )
    p.add_argument("--freeze-epochs", type=int, default=None, help=f"epochs training the head only ({q.freeze_epochs})")
    p.add_argument("--pretrain-epochs", type=positive_int, default=None, help=f"epochs per layer ({q.pretrain_epochs})")
    p.add_argument("--pretrain-lr", type=positive_float, default=None, help=f"autoencoder Adam lr ({q.pretrain_lr})")
    p.add_argument("--rbm-preset", default=None, help=f"RBM preset ({q.rbm_preset})")
    p.add_argument("--data", default=None, help="a named data set or .npz/.pt file with labels (mnist)")
    p.add_argument("--data-dir", default=None, help="where named data sets are cached (data)")
    p.add_argument("--val-size", type=positive_int, default=None, help=f"validation examples ({q.val_size})")
    p.add_argument("--output", default=None, help=f"root of the results folders ({q.output})")
    p.add_argument(
        "--cache",
        default=None,
        help="folder where pretrained stacks and fine-tuning runs are kept; a later run with the same settings "
        "reads them back instead of recomputing them (none)",
    )
    p.add_argument(
        "--threads", type=positive_int, default=None, help="torch CPU threads (torch's default; 1 on a busy CPU)"
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="time one pretraining and one fine-tuning epoch, print the extrapolated cost of a seed, and stop",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[Protocol, bool]:
    a = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(a).items() if k not in ("protocol", "estimate", "quiet")}
    return make_protocol(a.protocol, **overrides, quiet=a.quiet or None), a.estimate


def main(argv: list[str] | None = None) -> int:
    def go() -> None:
        protocol, estimate = parse_args(argv)
        if not estimate:
            run(protocol)
            return
        cost = estimate_cost(protocol)
        print(f"protocol {protocol.name}: {protocol.activation} {protocol.hidden}, arms {', '.join(protocol.arms)}")
        for arm, s in cost["pretrain_epoch_seconds"].items():
            print(f"  one {arm} pretraining epoch (all layers): {s:.1f} s x {protocol.pretrain_epochs} epochs")
        print(f"  one fine-tuning epoch: {cost['finetune_epoch_seconds']:.1f} s x {protocol.epochs} epochs per arm")
        print(f"  one seed, all arms: {cost['one_seed_seconds'] / 3600:.2f} h (extrapolated from one epoch each)")
        print(f"  learning-rate search adds {cost['lr_search_extra_seconds'] / 3600:.2f} h once")
        print(f"  {protocol.seeds} seeds in all: {cost['total_seconds'] / 3600:.2f} h")

    return run_main("experiments.hinton_comparison", go)


if __name__ == "__main__":
    sys.exit(main())
