"""Result folders and cells: one small JSON file per finished fine-tuning run, keyed by all it depends on.

A cell's key holds everything that changes its number (arm, seed, labels, network, learning
rate, fine-tuning and pretraining settings, a fingerprint of the data and ``CODE_VERSION``);
its file name ends in a digest of that key. A run that finds a cell's file reads it back
instead of training again, so an interrupted study continues from the cells it has, on this
machine or on another one that has the committed cells.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import torch

from pretrain.checkpoint import write_json
from pretrain.data import Dataset

# Bump when a change to the training code (pretrain.finetuning, the starts, the pretraining
# objectives) changes the number a cell holds: old cells then no longer match any key.
CODE_VERSION = "steps-1"


def digest(obj) -> str:
    """16 hex digits of the SHA-1 of ``obj`` as sorted JSON."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(dataset: Dataset) -> dict:
    """Name, split sizes and a digest of every tensor of ``dataset``: equal only for the same data."""
    h = hashlib.sha1()
    for split in (dataset.train, dataset.val, dataset.test):
        for t in (split.x, split.y):
            if t is not None:
                h.update(t.contiguous().cpu().numpy().tobytes())
    sizes = [len(dataset.train), len(dataset.val), len(dataset.test)]
    return {"name": dataset.name, "sizes": sizes, "sha1": h.hexdigest()[:16]}


def label_key(labels: int | None) -> str:
    """``"all"`` for every label, else the count as text."""
    return "all" if labels is None else str(labels)


def label_count(key: str, n_all: int) -> int:
    """The number of labelled examples ``key`` stands for (``n_all`` for ``"all"``)."""
    return n_all if key == "all" else int(key)


def cell_path(folder: Path, key: dict) -> Path:
    """``folder/cells/<network>/<labels>/<arm>/<role>-seed<k>-lr<lr>-<digest>.json``."""
    name = f"{key['role']}-seed{key['seed']}-lr{key['lr']:g}-{digest(key)}.json"
    return folder / "cells" / key["network"]["name"] / label_key(key["labels"]) / key["arm"] / name


def read_cell(folder: Path, key: dict) -> dict | None:
    """The finished cell with exactly this key, or None."""
    path = cell_path(folder, key)
    if not path.is_file():
        return None
    cell = json.loads(path.read_text())
    return cell if cell.get("key") == json.loads(json.dumps(key)) else None


def write_cell(folder: Path, key: dict, record: dict) -> dict:
    """Write ``{"key": key, **record}`` atomically under ``folder``; return it as read back."""
    cell = {"key": key, **record}
    write_json(cell_path(folder, key), cell)
    return json.loads(json.dumps(cell))


def all_cells(folder: Path) -> list[dict]:
    """Every cell under ``folder`` (sorted by path, so the order does not depend on the file system)."""
    return [json.loads(p.read_text()) for p in sorted((folder / "cells").rglob("*.json"))]


def stack_path(cache: Path, key: dict) -> Path:
    """Where a pretrained stack with this key is cached (an ignored folder: stacks are large)."""
    return cache / f"stack-{key['objective']}-{key['network']}-seed{key['seed']}-{digest(key)}.pt"


def machine() -> dict:
    """What the wall times were measured on."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
