"""Cells and cached stacks cannot go stale: their keys carry a digest of the code behind their numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from experiments import comparison, results
from experiments.harness import Harness, Network, Pretraining, Training
from experiments.results import CELL_MODULES, all_cells, code_text, code_version, stack_modules, stack_path
from pretrain.data import load_dataset

from .conftest import make_digits

NET = Network("tiny", (16,), "sigmoid")


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    dataset = load_dataset("mnist", str(make_digits(tmp_path / "digits")), 50)
    return Harness(dataset, tmp_path / "res", Training(), Pretraining(epochs=1), tmp_path / "cache")


MODULES = {*CELL_MODULES, *(m for arm in ("rbm", "autoencoder", "supervised") for m in stack_modules(arm))}
SOURCES = {name: results.module_source(name) for name in MODULES}  # one snapshot, whatever is edited meanwhile


def edited(module: str = "", extra: str = ""):
    """A source reader of the snapshot with ``extra`` appended to ``module``'s source."""
    return lambda name: SOURCES[name] + (extra if name == module else "")


def test_code_text_ignores_docstrings_comments_and_formatting_but_not_code():
    a = 'def f(x):\n    """Doc."""\n    return x + 1  # comment\n'
    assert code_text(a) == code_text("def f(x):\n    return (x+1)\n")
    assert code_text(a) != code_text("def f(x):\n    return x + 2\n")


def test_the_code_version_follows_the_source_of_its_modules(monkeypatch):
    monkeypatch.setattr(results, "module_source", edited())
    cell, rbm = code_version(CELL_MODULES), code_version(stack_modules("rbm"))
    assert "pretrain.finetuning" in CELL_MODULES and "pretrain.layers.rbm" in stack_modules("rbm")
    monkeypatch.setattr(results, "module_source", edited("pretrain.layers.rbm", "\nEXTRA = 1\n"))
    assert code_version(CELL_MODULES) == cell and code_version(stack_modules("rbm")) != rbm
    monkeypatch.setattr(results, "module_source", edited("pretrain.layers.rbm", "\n# a comment only\n"))
    assert code_version(stack_modules("rbm")) == rbm


def test_changing_an_objective_invalidates_its_cached_stacks_and_cells_but_not_a_plain_arms(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "module_source", edited())
    dataset = load_dataset("mnist", str(make_digits(tmp_path / "digits")), 50)
    harness = Harness(dataset, tmp_path / "res", Training(), Pretraining(epochs=1), tmp_path / "cache")
    keys = {arm: harness.cell_key(NET, arm, None, 0, 0.3) for arm in ("xavier-uniform", "rbm", "autoencoder")}
    harness.stack("autoencoder", NET, 0)
    harness.stack("autoencoder", NET, 0)  # read back
    assert len(list(harness.cache.glob("stack-autoencoder-*.pt"))) == 1

    monkeypatch.setattr(results, "module_source", edited("pretrain.layers.autoencoder", "\nEXTRA = 1\n"))
    changed = Harness(harness.dataset, harness.folder, harness.training, harness.pretraining, harness.cache)
    assert changed.cell_key(NET, "xavier-uniform", None, 0, 0.3) == keys["xavier-uniform"]
    assert changed.cell_key(NET, "rbm", None, 0, 0.3) == keys["rbm"] and changed.code["rbm"] == harness.code["rbm"]
    assert changed.cell_key(NET, "autoencoder", None, 0, 0.3) != keys["autoencoder"]
    changed.stack("autoencoder", NET, 0)  # its objective changed: pretrained again, next to the old one
    assert len(list(harness.cache.glob("stack-autoencoder-*.pt"))) == 2

    monkeypatch.setattr(results, "module_source", edited("pretrain.finetuning", "\nEXTRA = 1\n"))
    tuned = Harness(harness.dataset, harness.folder, harness.training, harness.pretraining, harness.cache)
    assert tuned.cell_key(NET, "xavier-uniform", None, 0, 0.3) != keys["xavier-uniform"]  # every cell
    assert tuned.code["autoencoder"] == harness.code["autoencoder"]  # but no stack


def test_a_cell_records_the_torch_version_and_its_budget(harness):
    c = harness.cell(NET, "xavier-uniform", 50, 0, 0.3, budget=2.0)
    assert c["torch"] == str(torch.__version__) and c["key"]["budget"] == 2.0
    assert (
        c["key"]["finetune"]["decay_steps"]
        == 2 * harness.cell_key(NET, "xavier-uniform", 50, 0, 0.3)["finetune"]["decay_steps"]
    )
    assert "-2B-" in next((harness.folder / "cells").rglob("*.json")).name
    assert {"train_loss_final", "failure", "fitted"} <= set(c)
    key = stack_path(harness.cache, {"objective": "rbm", "network": "tiny", "seed": 0}).name
    assert key.startswith("stack-rbm-tiny-seed0-")


def test_report_counts_stale_cells_and_does_not_crash_on_them(tmp_path):
    data = make_digits(tmp_path / "digits")
    p = comparison.make_protocol(
        "smoke", data_dir=str(data), output=str(tmp_path / "res"), cache=str(tmp_path / "cache"), quiet=True,
        arms=["xavier-uniform"], labels=[None], budgets=[1.0], seeds=1,
    )  # fmt: skip
    old = p.folder / "cells" / "tiny" / "all" / "xavier-uniform" / "reported-seed0-lr0.3-0123456789abcdef.json"
    old.parent.mkdir(parents=True)
    # a cell of the previous code: a hand-kept version string, no budget in its key, no failure fields
    key = {"code": "steps-1", "role": "reported", "seed": 0, "lr": 0.3, "arm": "xavier-uniform", "labels": None}
    old.write_text(json.dumps({"key": {**key, "network": {"name": "tiny"}}, "diverged": False, "test_error": 1.0}))
    comparison.run(p)
    summary = json.loads((p.folder / "summary.json").read_text())
    assert summary["unused_cells"] == 1 and len(all_cells(p.folder)) > 1
    assert "match no run of this protocol and code" in (p.folder / "table.md").read_text()
