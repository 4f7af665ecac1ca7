"""One fine-tuning protocol, four starts: the README table of test error, epochs and seconds on full MNIST.

    flock /tmp/pretrain-cpu.lock python -m experiments.finetune_table \
        --checkpoint checkpoints/mnist-autoencoder-sigmoid-500-250-100.pt --data-dir data

Arms: ``pretrained:CHECKPOINT`` (the 500-250-100 sigmoid stack), ``xavier-uniform``,
``he-normal`` and ``torch-default``, all on the same 784-500-250-100-10 sigmoid MLP. Each arm
gets its learning rate from the same grid, picked by the lowest validation error after
``--grid-epochs`` epochs; then one real run with that rate: up to ``--epochs`` epochs with early
stopping on the validation split (``--patience``), the weights of the best validation epoch
scored once on the test set. Same seed, optimizer, batch size, schedule and data order for
every arm: only the init differs. Writes ``finetune_table.md`` and ``finetune_table.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from pretrain.checkpoint import write_json
from pretrain.data import apply_input_scaling, load_dataset
from pretrain.errors import DivergenceError
from pretrain.finetuning import FinetuneConfig, finetune
from pretrain.init import make_classifier

BASELINES = ("xavier-uniform", "he-normal", "torch-default")


def arm_model(init: str, dataset, seed: int):
    model, info = make_classifier(init, n_in=dataset.n_features, n_classes=10, hidden=None, seed=seed)
    data = dataset if info["input_scaling"] is None else apply_input_scaling(dataset, info["input_scaling"])
    return model, data, info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="checkpoints/mnist-autoencoder-sigmoid-500-250-100.pt")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--grid", type=float, nargs="+", default=[0.1, 0.3, 1.0], help="learning rates tried per arm")
    p.add_argument("--grid-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust to a shared CPU)")
    p.add_argument("--out", default="experiments/results", help="folder for finetune_table.{md,json}")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not Path(a.checkpoint).is_file():
        raise SystemExit(f"no checkpoint at {a.checkpoint}; make it with python -m pretrain.stack --layers 500 250 100")

    dataset = load_dataset("mnist", a.data_dir)
    arms = {"pretrained": f"pretrained:{a.checkpoint}", **{b: b for b in BASELINES}}
    base = {"optimizer": a.optimizer, "batch_size": a.batch_size, "seed": a.seed}
    t_all = time.perf_counter()
    load_start = os.getloadavg()
    report: dict = {"arms": {}, "protocol": {**vars(a), "momentum": FinetuneConfig().momentum}}
    for arm, init in arms.items():
        grid = {}
        for lr in a.grid:
            model, data, _ = arm_model(init, dataset, a.seed)
            cfg = FinetuneConfig(**base, lr=lr, epochs=a.grid_epochs, patience=None)
            try:
                r = finetune(model, data, cfg)
                grid[lr] = {"val_error": min(r.val_error), "val_curve": r.val_error, "seconds": r.seconds}
            except DivergenceError as err:
                grid[lr] = {"val_error": math.inf, "diverged": str(err)}
            print(f"{arm:>15} grid lr {lr:g}: best val error {100 * grid[lr]['val_error']:.2f}%", flush=True)
        lr = min(a.grid, key=lambda v: (grid[v]["val_error"], v))
        model, data, info = arm_model(init, dataset, a.seed)
        cfg = FinetuneConfig(**base, lr=lr, epochs=a.epochs, patience=a.patience)
        r = finetune(model, data, cfg)
        report["arms"][arm] = {"init": init, "lr": lr, "grid": grid, "config": asdict(cfg), **r.to_dict()}
        print(
            f"{arm:>15} lr {lr:g}: test error {100 * r.test_error_final:.2f}% ({r.test_errors}/{r.n_test}), "
            f"best epoch {r.best_epoch} of {r.epochs_run}, {r.seconds:.0f} s",
            flush=True,
        )
    report["total_seconds"] = time.perf_counter() - t_all
    report["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "finetune_table.json", report)
    (out / "finetune_table.md").write_text(markdown(report, a))
    print(markdown(report, a))
    print(f"wrote {out / 'finetune_table.md'} and {out / 'finetune_table.json'} in {report['total_seconds']:.0f} s")


def markdown(report: dict, a) -> str:
    opt = f"SGD, momentum {report['protocol']['momentum']:g}" if a.optimizer == "sgd" else "Adam"
    lines = [
        "| init | lr (picked on val) | test error | best epoch / epochs run | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for arm, r in report["arms"].items():
        lines.append(
            f"| {arm} | {r['lr']:g} | {100 * r['test_error_final']:.2f}% ({r['test_errors']}/{r['n_test']}) "
            f"| {r['best_epoch']} / {r['epochs_run']} | {r['seconds']:.1f} |"
        )
    grid = ", ".join(f"{v:g}" for v in a.grid)
    lines += [
        "",
        f"784-500-250-100-10 sigmoid MLP, full MNIST (55 000 train / 5 000 val / 10 000 test), seed {a.seed}; "
        f"{opt}, batch {a.batch_size}, constant learning rate picked per arm from {{{grid}}} by validation error "
        f"after {a.grid_epochs} epochs; then up to {a.epochs} epochs with early stopping (patience {a.patience}) "
        f"and the best-validation weights scored once on the test set. Seconds: wall time of that run on "
        f"{report['machine']['torch_threads']} CPU thread(s), evaluation included.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
