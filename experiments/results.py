"""Result folders and cells: one small JSON file per finished fine-tuning run, keyed by all it depends on.

A cell's key holds everything that changes its number (arm, seed, labels, network, learning
rate, budget, fine-tuning and pretraining settings, a fingerprint of the data and the code
version); its file name ends in a digest of that key. A run that finds a cell's file reads it
back instead of training again, so an interrupted study continues from the cells it has, on
this machine or on another one that has the committed cells.

The code version is not kept by hand: ``code_version`` digests the source of the modules that
determine a number (``CELL_MODULES`` for every cell, ``stack_modules(objective)`` for a
pretrained stack and the cells started from it), so any change to that code makes the old cells
and cached stacks miss. Docstrings, comments and formatting are not part of the digest.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import platform
from pathlib import Path

import torch

from pretrain.checkpoint import write_json
from pretrain.data import Dataset

# What a fine-tuning cell's number depends on, whatever its start
CELL_MODULES = (
    "pretrain.finetuning",
    "pretrain.training",
    "pretrain.mlp",
    "pretrain.init",
    "pretrain.data",
    "pretrain.distributed",
    "experiments.harness",
)
# What a pretrained stack depends on besides its objective's own module
STACK_MODULES = ("pretrain.greedy", "pretrain.layers.base", "pretrain.training", "pretrain.mlp", "pretrain.data")
OBJECTIVE_MODULES = {
    "autoencoder": "pretrain.layers.autoencoder",
    "denoising": "pretrain.layers.autoencoder",
    "rbm": "pretrain.layers.rbm",
    "supervised": "pretrain.layers.supervised",
}


def module_source(name: str) -> str:
    """The source text of the importable module ``name``."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ValueError(f"no source for module {name!r}")
    return Path(spec.origin).read_text()


def code_text(source: str) -> str:
    """``source`` without docstrings, comments or formatting: its syntax tree, dumped."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def stack_modules(objective: str) -> tuple[str, ...]:
    """The modules a stack pretrained with ``objective`` depends on."""
    return (*STACK_MODULES, OBJECTIVE_MODULES[objective])


def code_version(modules: tuple[str, ...]) -> str:
    """16 hex digits of the digest of the code (``code_text``) of ``modules``, in the given order."""
    h = hashlib.sha1()
    for name in modules:
        h.update(name.encode() + b"\0" + code_text(module_source(name)).encode() + b"\0")
    return h.hexdigest()[:16]


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
    """``folder/cells/<network>/<labels>/<arm>/<role>-seed<k>-lr<lr>[-<f>B]-<digest>.json`` (``f``: the budget)."""
    budget = f"-{key['budget']:g}B" if "budget" in key else ""
    name = f"{key['role']}-seed{key['seed']}-lr{key['lr']:g}{budget}-{digest(key)}.json"
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
