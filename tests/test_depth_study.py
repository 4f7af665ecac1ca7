"""The depth study: tiny end to end with its budget check, tables from the per-seed cells alone, the
best-against-baseline pairing."""

import json

import pytest

from experiments import depth_study
from experiments.harness import TUNING_SEEDS, Harness
from experiments.results import all_cells
from pretrain.checkpoint import write_json
from pretrain.data import load_dataset

from .conftest import make_digits


def test_tiny_study_end_to_end_and_its_tables_come_from_the_cells_alone(tmp_path):
    data = make_digits(tmp_path / "digits")
    args = ["--smoke", "--depths", "1", "2", "--width", "16", "--seeds", "2", "--workers", "1", "--quiet"]
    args += ["--data-dir", str(data), "--output", str(tmp_path / "res"), "--cache", str(tmp_path / "cache")]
    assert depth_study.main(args) == 0
    folder = tmp_path / "res" / "depth-sigmoid-smoke"
    for name in ("error_vs_depth-all.png", "train_vs_test-all.png", "error_vs_depth-50.png"):
        assert (folder / name).stat().st_size > 1000
    table = (folder / "table.md").read_text()
    assert table.startswith("**Budget-limited") and "| 2 | supervised |" in table and "better of Xavier/He" in table
    assert "could not be retrieved" in table  # the papers' numbers are not guessed
    assert "all labels: budget check" in table and "| 1 | 4B |" in table and "| 2 | 4B |" not in table

    cells = all_cells(folder)
    arms = {c["key"]["arm"] for c in cells}
    assert arms == {"denoising", "supervised", "xavier-uniform", "he-normal"}  # torch-default only by flag
    assert {tuple(c["key"]["network"]["hidden"]) for c in cells} == {(16,), (16, 16)}
    assert all("test_error" not in c for c in cells if c["key"]["seed"] in TUNING_SEEDS)
    # the 4B check: depth 1 of the two (1, 3 and 5 by default), all labels, two arms: the best pretrained
    # arm and the better of Xavier and He at B
    checked = [c for c in cells if c["key"]["budget"] == 4.0]
    assert {(len(c["key"]["network"]["hidden"]), c["key"]["labels"]) for c in checked} == {(1, None)}
    at_base = json.loads((folder / "summary.json").read_text())["labels"]["all"]["1"]
    best = at_base["best_pretrained_vs_best_baseline"]
    assert {c["key"]["arm"] for c in checked} == {best["pretrained"], best["baseline"]}
    for c in cells:  # a supervised stack is pretrained on the run's labelled examples: its key says which
        assert ("pretraining" in c["key"]) == (c["key"]["arm"] in ("denoising", "supervised"))

    saved = json.loads((folder / "summary.json").read_text())
    p = depth_study.protocol([1, 2], 16, smoke=True, seeds=2, data_dir=str(data), output=str(tmp_path / "res"))
    harness = Harness(load_dataset(p.data, p.data_dir, p.val_size), folder, p.training, p.pretraining)
    again = depth_study.depth_summary(p, harness, cells)
    write_json(tmp_path / "again.json", again)
    assert saved["labels"] == json.loads((tmp_path / "again.json").read_text())["labels"]
    assert set(saved["labels"]) == {"50", "all"} and set(saved["labels"]["all"]) == {"1", "2"}
    (folder / "table.md").unlink()
    assert depth_study.main([*args, "--report"]) == 0  # rebuilt from the cells, nothing retrained
    rebuilt = (folder / "table.md").read_text().splitlines()
    assert rebuilt == [line for line in table.splitlines() if not line.startswith("Wall time")]
    assert len(all_cells(folder)) == len(cells)


def test_best_pretrained_arm_against_the_better_baseline_is_paired_by_seed():
    def arm(*errors):
        mean = sum(errors) / len(errors)
        return {"n": len(errors), "val_error_best": mean, "test_error_per_seed": dict(enumerate(errors))}

    arms = {
        "denoising": arm(2.0, 2.2, 2.4),
        "supervised": arm(1.8, 2.0, 2.1),  # the best pretrained arm
        "xavier-uniform": arm(2.5, 2.5, 2.6),
        "he-normal": arm(2.1, 2.3, 2.2),  # the better baseline
    }
    for a in arms.values():
        a["test_error_per_seed"] = {str(k): v for k, v in a["test_error_per_seed"].items()}
    d = depth_study.best_against_baselines(arms, 3)
    assert (d["pretrained"], d["baseline"]) == ("supervised", "he-normal")
    assert d["differences"] == pytest.approx([-0.3, -0.3, -0.1]) and d["n"] == 3
    assert depth_study.best_against_baselines({"he-normal": arms["he-normal"]}, 3) is None


def test_the_estimate_prints_a_prediction(tmp_path, capsys):
    data = make_digits(tmp_path / "digits")
    args = ["--smoke", "--depths", "1", "--width", "16", "--seeds", "1", "--data-dir", str(data), "--estimate"]
    assert depth_study.main([*args, "--output", str(tmp_path / "res"), "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "predicted wall time" in out and "supervised/sigmoid-16" in out
    assert not (tmp_path / "res").exists()
