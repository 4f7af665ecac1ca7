"""The comparison: statistics, tuning verdicts, the smoke protocol end to end, resuming and the estimate."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import pytest

from experiments import comparison
from experiments.harness import TUNING_SEED, Harness, Tuning, choice
from experiments.results import all_cells
from experiments.stats import (
    betainc,
    confidence_interval,
    holm,
    mean_std,
    paired_difference,
    t_cdf,
    t_quantile,
    t_test_p,
)
from pretrain.data import load_dataset

from .conftest import make_digits


# ----------------------------------------------------------------- statistics, hand-checkable
def test_mean_std_uses_n_minus_1():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


@pytest.mark.parametrize(
    "df, q",  # two-sided 95% critical values from standard t tables
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423), (1e7, 1.9600)],
)
def test_t_quantile_matches_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q, abs=1e-4)


def test_t_cdf_closed_forms():
    # df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi; df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 10.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3)  # I_x(1, 1) = x
    assert betainc(2.0, 1.0, 0.5) == pytest.approx(0.25)  # I_x(a, 1) = x^a


def test_paired_difference_by_hand():
    # differences 0.5, 1.0, 1.5: mean 1, std 0.5, half-width t_{0.975,2} * 0.5 / sqrt(3) = 1.24207
    d = paired_difference([1.5, 2.0, 2.5], [1.0, 1.0, 1.0])
    assert d["differences"] == [0.5, 1.0, 1.5]
    assert (d["mean"], d["std"], d["n"]) == (1.0, 0.5, 3)
    assert d["ci_low"] == pytest.approx(1 - 4.302653 * 0.5 / math.sqrt(3), abs=1e-5)
    assert d["ci_high"] == pytest.approx(1 + 1.242069, abs=1e-5)


def test_paired_difference_drops_missing_pairs_and_needs_same_seeds():
    d = paired_difference([1.0, None, 3.0, float("nan")], [0.0, 1.0, 1.0, 1.0])
    assert d["differences"] == [1.0, 2.0]
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])
    one = confidence_interval([4.0])
    assert one["n"] == 1 and math.isnan(one["ci_low"])


def test_t_test_p_and_holm_by_hand():
    # t = 1 / (0.5 / sqrt(3)) = 3.4641 with 2 df: two-sided p = 2 (1 - F(t)) = 1 - t / sqrt(2 + t^2) = 0.07418
    assert t_test_p(1.0, 0.5, 3) == pytest.approx(1 - 3.4641016 / math.sqrt(2 + 12), abs=1e-6)
    assert paired_difference([1.5, 2.0, 2.5], [1.0, 1.0, 1.0])["p"] == pytest.approx(0.0741799, abs=1e-6)
    assert math.isnan(t_test_p(1.0, 0.5, 1))
    # Holm: sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), NaN left out of the family
    assert holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


# ------------------------------------------------------------------------------ tuning verdicts
def _cell(val: float | None, loss: float = 1.0, trained: bool = True) -> dict:
    if val is None:
        return {"diverged": True, "trained": False}
    return {"diverged": False, "trained": trained, "val_error_best": val, "val_loss_best": loss}


def test_choice_extends_past_an_edge_up_to_the_cap():
    t = Tuning(grid=(0.1, 0.3, 1.0), max_extensions=2)
    assert choice({0.1: _cell(5), 0.3: _cell(4), 1.0: _cell(6)}, t) | {"trials": None} == {
        "lr": 0.3, "status": "interior", "extend": None, "trials": None, "extended": {"down": 0, "up": 0},
    }  # fmt: skip
    v = choice({0.1: _cell(5), 0.3: _cell(4), 1.0: _cell(3)}, t)
    assert (v["lr"], v["status"], v["extend"]) == (1.0, "edge", "up")
    v = choice({0.1: _cell(5), 0.3: _cell(4), 1.0: _cell(3), 3.16: _cell(2), 10.0: _cell(1)}, t)
    assert (v["lr"], v["status"], v["extend"]) == (10.0, "capped", None)
    v = choice({0.1: _cell(3), 0.3: _cell(4), 1.0: _cell(None)}, t)  # best at the bottom, top diverged
    assert (v["lr"], v["status"], v["extend"]) == (0.1, "edge", "down") and v["trials"]["1"] is None
    v = choice({0.1: _cell(3, loss=0.5), 0.3: _cell(3, loss=0.4), 1.0: _cell(4)}, t)  # tie: lower validation loss
    assert v["lr"] == 0.3 and v["status"] == "interior"


def test_choice_did_not_train_gets_no_rate():
    t = Tuning(grid=(0.1, 0.3, 1.0))
    for cells in (
        {0.1: _cell(None), 0.3: _cell(None), 1.0: _cell(None)},
        {0.1: _cell(90, trained=False), 0.3: _cell(89, trained=False), 1.0: _cell(None)},
    ):
        v = choice(cells, t)
        assert (v["lr"], v["status"], v["extend"]) == (None, "did not train", None)


# -------------------------------------------------------------------------------- tiny data
@pytest.fixture
def digits_dir(tmp_path: Path) -> Path:
    return make_digits(tmp_path / "digits")


def _smoke(data_dir: Path, out: Path, *extra) -> Path:
    args = ["--protocol", "smoke", "--data-dir", str(data_dir), "--output", str(out), "--cache", str(out / "cache")]
    assert comparison.main([*args, "--quiet", *extra]) == 0
    return out / "comparison-smoke"


def test_smoke_protocol_end_to_end_tables_from_cells_alone(digits_dir, tmp_path):
    folder = _smoke(digits_dir, tmp_path / "res")
    summary = json.loads((folder / "summary.json").read_text())
    for name in ("error_vs_labels-tiny.png", "val_curves-tiny-50.png", "val_curves-tiny-all.png"):
        assert (folder / name).stat().st_size > 1000
    table = (folder / "table.md").read_text()
    assert table.startswith("**Budget-limited") and "50 labels" in table and "| autoencoder |" in table
    cells = all_cells(folder)
    reported = [c for c in cells if c["key"]["seed"] != TUNING_SEED]
    assert {c["key"]["seed"] for c in reported} == {0, 1}
    assert all("test_error" not in c for c in cells if c["key"]["seed"] == TUNING_SEED)  # tuning never sees test
    for c in reported:  # N labels validate on min(N, val_cap) examples, all labels on the whole split
        assert c["n_val"] == (40 if c["key"]["labels"] == 50 else 50)
        assert c["n_train"] == (50 if c["key"]["labels"] == 50 else 350)
    # the summary is recomputed from the per-seed cell files alone
    p = comparison.make_protocol("smoke", data_dir=str(digits_dir), output=str(tmp_path / "res"))
    harness = Harness(load_dataset(p.data, p.data_dir, p.val_size), folder, p.training, p.pretraining)
    again = json.loads(json.dumps(comparison.summarize(p, harness, all_cells(folder))))
    assert again["networks"] == summary["networks"] and again["family"] == summary["family"]
    e = summary["networks"]["tiny"]["labels"]["all"]["arms"]["he-normal"]
    cells_he = [c for c in reported if c["key"]["arm"] == "he-normal" and c["key"]["labels"] is None]
    assert e["test_error_per_seed"] == {str(c["key"]["seed"]): c["test_error"] for c in cells_he}
    assert e["n"] == 2 and e["test_error_ci"]["mean"] == pytest.approx(mean_std([c["test_error"] for c in cells_he])[0])
    assert summary["family"]["comparisons"] == 2 * (3 + 3)  # 2 label counts x (3 arms vs xavier + 3 vs he)


def test_shuffled_test_labels_change_no_choice(tmp_path):
    a = _smoke(make_digits(tmp_path / "a"), tmp_path / "ra")
    b = _smoke(make_digits(tmp_path / "b", shuffle_test_labels=True), tmp_path / "rb")
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    for key, block in sa["networks"]["tiny"]["labels"].items():
        for arm, e in block["arms"].items():
            f = sb["networks"]["tiny"]["labels"][key]["arms"][arm]
            assert (e["lr"], e["status"], e["trials"]) == (f["lr"], f["status"], f["trials"]), (key, arm)
            assert (e["best_step"], e["steps_run"]) == (f["best_step"], f["steps_run"]), (key, arm)

    def curves(folder):
        return [(c["key"]["arm"], c["key"]["lr"], c["best_step"], c["val_error"]) for c in all_cells(folder)]

    assert curves(a) == curves(b)


def test_grid_extends_in_a_real_run_and_resume_trains_nothing(digits_dir, tmp_path):
    args = ["--lr-grid", "1", "--arms", "xavier-uniform", "--labels", "all"]
    folder = _smoke(digits_dir, tmp_path / "res", *args)
    e = json.loads((folder / "summary.json").read_text())["networks"]["tiny"]["labels"]["all"]["arms"]["xavier-uniform"]
    assert "1" in e["trials"] and len(e["trials"]) >= 3  # a one-rate grid is its own two edges: extended both ways
    assert e["status"] in ("interior", "capped") and e["n"] == 2
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "cells").rglob("*.json")}
    _smoke(digits_dir, tmp_path / "res", *args)
    assert {p: p.stat().st_mtime_ns for p in (folder / "cells").rglob("*.json")} == stamps


def test_did_not_train_on_random_labels(tiny_mnist_dir, tmp_path):
    folder = _smoke(tiny_mnist_dir, tmp_path / "res", "--arms", "xavier-uniform", "he-normal", "--labels", "all")
    arms = json.loads((folder / "summary.json").read_text())["networks"]["tiny"]["labels"]["all"]["arms"]
    assert {e["status"] for e in arms.values()} == {"did not train"} and all(e["lr"] is None for e in arms.values())
    assert "| xavier-uniform | — | did not train |" in (folder / "table.md").read_text()
    assert not [c for c in all_cells(folder) if c["key"]["seed"] != TUNING_SEED]


def test_estimate_predicts_the_same_small_run(digits_dir, tmp_path, capsys):
    # arms that train at this one rate, so every group runs its reported seeds as the estimate assumes
    arms = ["autoencoder", "xavier-uniform", "he-normal"]
    args = ["--lr-grid", "0.3", "--max-extensions", "0", "--seeds", "3", "--arms", *arms]
    p = comparison.make_protocol(
        "smoke", data_dir=str(digits_dir), output=str(tmp_path / "res"), cache=str(tmp_path / "cache"), quiet=True,
        lr_grid=[0.3], max_extensions=0, seeds=3, arms=arms,
    )  # fmt: skip
    tries = []
    for attempt in range(3):  # timings on a shared CPU: a busy neighbour may spoil one attempt
        out = tmp_path / f"res{attempt}"
        predicted = comparison.estimate(replace(p, output=str(out)))["total_seconds"]
        t0 = time.perf_counter()
        comparison.run(replace(p, output=str(out)))
        tries.append((predicted, time.perf_counter() - t0))
        if 0.75 * tries[-1][1] <= predicted <= 1.25 * tries[-1][1]:
            break
    else:
        pytest.fail(f"(predicted, measured) seconds: {tries}")
    assert args  # the same settings on the command line print the estimate
    cli = ["--protocol", "smoke", "--data-dir", str(digits_dir), "--cache", str(tmp_path / "cache"), "--estimate"]
    assert comparison.main([*cli, *args]) == 0
    assert "predicted wall time" in capsys.readouterr().out


def test_bad_input_is_one_line_and_writes_nothing(digits_dir, tmp_path, capsys):
    base = ["--protocol", "smoke", "--data-dir", str(digits_dir), "--output", str(tmp_path / "res")]
    assert comparison.main([*base, "--arms", "nonsense"]) == 2
    assert comparison.main([*base, "--networks", "relu", "--arms", "rbm"]) == 2
    assert comparison.main([*base, "--labels", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("experiments.comparison: error:") for line in err)
    assert not (tmp_path / "res").exists()
