"""The comparison: summaries of hand-made cells against hand-computed values, failures, the statistics family,
verdicts across budgets, the budget plan of each protocol, and the smoke protocol end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments import comparison, depth_study, tables
from experiments.comparison import Group, budget_verdicts, planned_runs, still_improving
from experiments.harness import TUNING_SEEDS, Harness
from experiments.results import all_cells, write_cell
from pretrain.data import load_dataset

from .conftest import make_digits

T2 = 4.302653  # the 0.975 quantile of Student's t with 2 degrees of freedom (tables)


def p_df2(t: float) -> float:
    """Two-sided p of a t statistic with 2 degrees of freedom, in closed form: 1 - |t| / sqrt(2 + t^2)."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


# ---------------------------------------------------------------------------------- hand-made cells
@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digits(tmp_path_factory.mktemp("digits") / "d")


def hand_made(tmp_path: Path, digits: Path, arms: dict, budgets=(1.0,), **settings):
    """A smoke protocol whose folder holds hand-made cells: per arm and budget, the tuning cells (rate 0.3
    wins on both tuning seeds) and reported cells at 0.3 with the given outcomes (a test error %, or
    ``diverged``, ``not trained``, or ``("not fitted", test error)``). Returns (protocol, harness)."""
    seeds = max(len(o) for o in arms.values())
    p = comparison.make_protocol(
        "smoke", data_dir=str(digits), output=str(tmp_path), arms=list(arms), labels=[None],
        budgets=list(budgets), seeds=seeds, **settings,
    )  # fmt: skip
    h = Harness(load_dataset(p.data, p.data_dir, p.val_size), p.folder, p.training, p.pretraining)
    net = comparison.network_named(p.networks[0])

    def write(arm, seed, lr, budget, val=3.0, outcome=None):
        key = h.cell_key(net, arm, None, seed, lr, budget)
        if outcome == "diverged":
            return write_cell(h.folder, key, {"diverged": True, "trained": False, "message": "nan", "torch": "t",
                                              "finetune_seconds": 1.0, "pretrain_seconds": 2.0})  # fmt: skip
        fitted = not (isinstance(outcome, tuple) and outcome[0] == "not fitted")
        record = {
            "diverged": False, "trained": outcome != "not trained", "fitted": fitted, "converged": fitted,
            "stopped_early": True, "steps": [1], "train_error": [0.0], "val_error": [val / 100], "best_step": 1,
            "steps_run": 1, "max_steps": 1, "steps_per_epoch": 1, "val_error_best": val, "val_loss_best": 0.1,
            "train_error_final": 0.0 if fitted else 2.0, "train_loss_final": 0.01, "n_train": 350, "n_val": 50,
            "finetune_seconds": 1.0, "pretrain_seconds": 2.0, "torch": "t",
        }  # fmt: skip
        if seed not in TUNING_SEEDS:
            error = 90.0 if outcome == "not trained" else outcome[1] if not fitted else outcome
            record.update(test_error=error, test_errors=round(error), n_test=100)
        write_cell(h.folder, key, record)

    for arm, outcomes in arms.items():
        for budget in budgets:
            for lr, val in zip((0.1, 0.3, 1.0), (5.0, 3.0, 4.0)):
                write(arm, TUNING_SEEDS[0], lr, budget, val)
            write(arm, TUNING_SEEDS[1], 0.3, budget, 3.0)
            for seed, outcome in enumerate(outcomes):
                write(arm, seed, 0.3, budget, outcome=outcome)
    return p, h


def test_summary_mean_interval_p_and_holm_against_hand_computed_values(tmp_path, digits):
    arms = {
        "autoencoder": [1.0, 2.0, 3.0],
        "denoising": [2.0, 1.5, 2.5],
        "xavier-uniform": [2.0, 4.0, 5.0],
        "he-normal": [1.5, 2.0, 2.0],
    }
    p, h = hand_made(tmp_path, digits, arms)
    s = comparison.summarize(p, h, all_cells(p.folder))
    got = s["networks"]["tiny"]["labels"]["all"]["budgets"]["1"]["arms"]
    ae = got["autoencoder"]
    assert (ae["lr"], ae["status"], ae["n"], ae["test_error_median"]) == (0.3, "interior", 3, 2.0)
    ci = ae["test_error_ci"]  # mean 2, sd 1, half-width t * 1 / sqrt(3)
    assert (ci["mean"], ci["std"]) == (2.0, 1.0)
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((2 - T2 / math.sqrt(3), 2 + T2 / math.sqrt(3)), abs=1e-5)
    # autoencoder - xavier: -1, -2, -2: mean -5/3, sd 1/sqrt(3), t = (5/3) / (1/3) = 5
    d = ae["vs_xavier-uniform"]
    assert d["differences"] == [-1.0, -2.0, -2.0] and d["n"] == 3
    assert d["mean"] == pytest.approx(-5 / 3) and d["ci_low"] == pytest.approx(-5 / 3 - T2 / 3, abs=1e-5)
    assert d["p"] == pytest.approx(p_df2(5.0), abs=1e-6)
    # the family: autoencoder and denoising against xavier and he. Raw p: t = 5, 1/sqrt(7), 2 and 0.5
    raw = {
        ("autoencoder", "xavier-uniform"): p_df2(5.0),  # 0.03775
        ("autoencoder", "he-normal"): p_df2(1 / math.sqrt(7)),  # 0.74180: diffs -0.5, 0, 1
        ("denoising", "xavier-uniform"): p_df2(2.0),  # 0.18350: diffs 0, -2.5, -2.5
        ("denoising", "he-normal"): p_df2(0.5),  # 0.66667: diffs 0.5, -0.5, 0.5
    }
    # Holm by hand: 0.037750 x 4 = 0.150998; 0.18350 x 3 = 0.55051; 0.66667 x 2 = 1.333 -> 1 (the cap); then 1
    holm = {
        ("autoencoder", "xavier-uniform"): 4 * p_df2(5.0),
        ("denoising", "xavier-uniform"): 3 * p_df2(2.0),
        ("denoising", "he-normal"): 1.0,
        ("autoencoder", "he-normal"): 1.0,
    }
    for (arm, base), value in raw.items():
        d = got[arm][f"vs_{base}"]
        assert d["family"] == "primary"
        assert d["p"] == pytest.approx(value, abs=1e-6), (arm, base)
        assert d["p_holm"] == pytest.approx(holm[(arm, base)], abs=1e-6), (arm, base)
    assert holm[("autoencoder", "xavier-uniform")] == pytest.approx(0.150998, abs=1e-6)
    assert s["family"]["comparisons"] == 4 and s["family"]["secondary"] == 1  # he-normal vs xavier-uniform
    he = got["he-normal"]["vs_xavier-uniform"]
    assert he["family"] == "secondary" and "p_holm" not in he and "vs_he-normal" not in got["xavier-uniform"]
    table = tables.markdown({"protocol": json.loads(comparison._to_json(p)), **s})
    assert "-1.67 [-3.10, -0.23] n=3 Holm p=0.15 |" in table and "p=1 (secondary)" not in table
    assert "n=3 Holm p=1 |" in table and "4 comparisons, Holm-corrected" in table


def test_failed_seeds_are_counted_and_left_out_of_means_and_paired_differences(tmp_path, digits):
    arms = {
        "autoencoder": [1.0, 2.0, 3.0, "diverged"],
        "xavier-uniform": [2.0, "not trained", 5.0, ("not fitted", 3.0)],
    }
    p, h = hand_made(tmp_path, digits, arms)
    s = comparison.summarize(p, h, all_cells(p.folder))
    got = s["networks"]["tiny"]["labels"]["all"]["budgets"]["1"]["arms"]
    ae, xa = got["autoencoder"], got["xavier-uniform"]
    assert (ae["n"], ae["n_run"], ae["failed_seeds"]) == (3, 4, [[3, "diverged"]])
    assert ae["failures"] == {"not trained": 0, "diverged": 1, "not fitted": 0}
    assert ae["test_error_ci"]["mean"] == 2.0
    # not trained: out; not fitted: counted, but it trained, so it stays in the mean
    assert xa["failures"] == {"not trained": 1, "diverged": 0, "not fitted": 1} and xa["n"] == 3
    assert xa["test_error_ci"]["mean"] == pytest.approx((2 + 5 + 3) / 3)
    d = ae["vs_xavier-uniform"]  # only seeds 0 and 2 trained in both arms
    assert d["differences"] == [-1.0, -2.0] and d["n"] == 2 and d["mean"] == -1.5
    table = tables.markdown({"protocol": json.loads(comparison._to_json(p)), **s})
    assert "| 1/4 (diverged 1) |" in table and "| 2/4 (not trained 1, not fitted 1) |" in table
    assert "2.00 ± 1.00 [-0.48, 4.48] (n=3)" in table and "n=2 Holm p=" in table


def test_the_primary_family_is_each_pretrained_arm_against_each_baseline_once_at_the_largest_budget(tmp_path, digits):
    errors = [1.0, 2.0, 2.5]
    arms = {a: [e + i for e in errors] for i, a in enumerate(["autoencoder", "denoising", "xavier-uniform"])}
    arms |= {"he-normal": [2.0, 2.2, 3.9], "lsuv": [3.0, 1.0, 2.0]}
    p, h = hand_made(tmp_path, digits, arms, budgets=(1.0, 2.0), extend_budget=0)
    s = comparison.summarize(p, h, all_cells(p.folder))
    # 2 pretrained arms x 2 baselines, at 2B; secondary: at 1B the same 4, he-vs-xavier and lsuv against both
    # (7), at 2B he-vs-xavier and lsuv against both (3)
    assert s["family"]["comparisons"] == 4 and s["family"]["secondary"] == 10
    block = s["networks"]["tiny"]["labels"]["all"]
    assert set(block["budgets"]) == {"1", "2"}
    assert [(v["arm"], v["baseline"], v["budgets"]) for v in block["verdicts"]] == [
        (a, b, ["1", "2"]) for a in ("autoencoder", "denoising") for b in ("xavier-uniform", "he-normal")
    ]
    assert block["budgets"]["2"]["arms"]["autoencoder"]["vs_he-normal"]["family"] == "primary"
    assert block["budgets"]["1"]["arms"]["autoencoder"]["vs_he-normal"]["family"] == "secondary"


def diff(mean: float, low: float, high: float, n: int = 5) -> dict:
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n, "p": 0.01}


def test_a_finding_needs_the_same_sign_at_the_two_largest_budgets_and_an_interval_excluding_0():
    def at(**by_budget):
        return {k: {"arms": {"rbm": {"vs_xavier-uniform": d}}} for k, d in by_budget.items()}

    cases = [
        (at(**{"1": diff(-0.5, -0.8, -0.2), "2": diff(-0.3, -0.5, -0.1), "4": diff(-0.2, -0.4, -0.05)}),
         "finding: lower for rbm"),
        (at(**{"1": diff(-0.5, -0.8, -0.2), "2": diff(-0.1, -0.3, 0.1), "4": diff(0.2, 0.1, 0.3)}),
         "budget-dependent (sign differs at 2B): moves toward xavier-uniform from 1B to 4B"),
        (at(**{"1": diff(0.5, 0.2, 0.8), "4": diff(0.1, -0.1, 0.3)}),
         "budget-dependent (interval includes 0 at 4B): moves toward rbm from 1B to 4B"),
        (at(**{"1": diff(0.4, 0.1, 0.7)}), "one budget: lower for xavier-uniform"),
    ]  # fmt: skip
    for budgets, expected in cases:
        (v,) = budget_verdicts(budgets)
        assert v["verdict"] == expected
        largest = max(budgets, key=float)
        assert v["primary"] is budgets[largest]["arms"]["rbm"]["vs_xavier-uniform"]
        assert v["primary"]["family"] == "primary"


def entry(*errors) -> dict:
    return {
        "n": len(errors),
        "val_error_best": sum(errors) / len(errors),
        "val_error_per_seed": {str(s): e for s, e in enumerate(errors)},
        "test_error_per_seed": {str(s): 100.0 - e for s, e in enumerate(errors)},  # the test set decides nothing
    }


def test_an_all_label_group_extends_while_its_best_arm_still_improves():
    before = {"rbm": entry(1.9, 2.0, 2.1), "he-normal": entry(2.0, 2.1, 2.2)}
    assert still_improving(before, {"rbm": entry(1.7, 1.8, 1.85), "he-normal": entry(1.9, 2.0, 2.0)})
    assert not still_improving(before, {"rbm": entry(1.7, 2.1, 1.9), "he-normal": entry(1.9, 2.0, 2.0)})
    assert not still_improving(before, {"rbm": entry(1.9, 2.0, 2.1), "he-normal": entry(1.95, 2.05, 2.2)})
    p = comparison.make_protocol("converged")
    assert p.axis("sigmoid", None) == [1.0, 2.0, 4.0] and p.axis("relu", 100) == [1.0, 4.0]
    assert p.extension("sigmoid", None) == 8.0 and p.extension("sigmoid", 1000) is None
    group = Group(p, "sigmoid", None, lookup=None)
    for arm in p.arms_for("sigmoid"):
        group._entries[(arm, 2.0)] = entry(2.0, 2.1, 2.2)
        group._entries[(arm, 4.0)] = entry(2.0, 2.1, 2.2)
    assert group.arms_at(8.0) == [] and group.budgets() == [1.0, 2.0, 4.0]
    group._entries[("rbm", 4.0)] = entry(1.7, 1.8, 1.85)
    assert group.arms_at(8.0) == p.arms_for("sigmoid") and group.budgets() == [1.0, 2.0, 4.0, 8.0]


def test_the_paper_protocol_and_the_depth_study_run_their_larger_budget_for_the_arms_the_issue_names():
    p = comparison.make_protocol("paper")
    assert p.arms == ["rbm", "autoencoder", "denoising", "xavier-uniform", "he-normal"] and p.seeds == 3
    assert p.axis("hinton", None) == [1.0, 2.0] and p.extension("hinton", None) is None
    assert p.training.config(None, 55000, 0.1, 0).max_steps == 200 * 550  # at most 200 epochs of 550 batches
    group = Group(p, "hinton", None, lookup=None)
    means = {"rbm": 1.3, "autoencoder": 1.2, "denoising": 1.25, "xavier-uniform": 1.6, "he-normal": 1.5}
    for arm, m in means.items():
        group._entries[(arm, 1.0)] = entry(m, m, m)
    assert group.arms_at(2.0) == ["rbm", "he-normal"]  # rbm, though autoencoder is better, and the better of X/He

    d = depth_study.protocol([1, 2, 3, 4, 5])
    assert d.arms == ["denoising", "supervised", "xavier-uniform", "he-normal"] and d.seeds == 3
    assert [d.axis(n, None) for n in d.networks] == [[1.0, 4.0], [1.0], [1.0, 4.0], [1.0], [1.0, 4.0]]
    assert all(d.axis(n, 1000) == [1.0] for n in d.networks) and d.extension(d.networks[0], None) is None
    group = Group(d, d.networks[0], None, lookup=None)
    for arm, m in {"denoising": 1.9, "supervised": 1.8, "xavier-uniform": 2.0, "he-normal": 2.1}.items():
        group._entries[(arm, 1.0)] = entry(m, m, m)
    assert group.arms_at(4.0) == ["supervised", "xavier-uniform"]
    assert "torch-default" in depth_study.protocol([1], torch_default=True).arms


def test_planned_runs_count_the_budget_axis_and_the_second_tuning_seed():
    # per arm: 3 rates + 1 confirmation + the reported seeds, at every budget of the axis
    p = comparison.make_protocol("converged")
    plan = planned_runs(p)
    per = 3 + 1 + 5
    sigmoid = 7 * per * (2 + 2 + 3)  # 7 arms; 100 and 1,000 labels at B and 4B, all labels at B, 2B and 4B
    relu = 6 * per * (2 + 2 + 3)  # no rbm
    assert sum(plan["runs"].values()) == sigmoid + relu == 819
    assert sum(plan["extensions"].values()) == (7 + 6) * per
    paper = planned_runs(comparison.make_protocol("paper"))
    assert paper["runs"] == {("hinton", None, 1.0): 5 * 7, ("hinton", None, 2.0): 2 * 7} and not paper["extensions"]
    depth = planned_runs(depth_study.protocol([1, 2, 3, 4, 5]))  # 4 arms, 3 seeds: 7 runs per arm and budget
    assert sum(depth["runs"].values()) == 5 * 2 * 4 * 7 + 3 * 2 * 7  # the 4B check: depths 1, 3, 5, two arms
    assert len(comparison.supervised_stacks(depth_study.protocol([1, 2]))) == 2 * 2 * (2 + 3)  # nets, labels, seeds


# -------------------------------------------------------------------------------- tiny data
def _smoke(data_dir: Path, out: Path, *extra) -> Path:
    args = ["--protocol", "smoke", "--data-dir", str(data_dir), "--output", str(out), "--cache", str(out / "cache")]
    assert comparison.main([*args, "--quiet", *extra]) == 0
    return out / "comparison-smoke"


def test_smoke_protocol_end_to_end_tables_from_cells_alone(digits, tmp_path):
    folder = _smoke(digits, tmp_path / "res", "--arms", "autoencoder", "xavier-uniform", "he-normal")
    summary = json.loads((folder / "summary.json").read_text())
    for name in ("error_vs_labels-tiny.png", "error_vs_budget-tiny-all.png", "val_curves-tiny-50.png"):
        assert (folder / name).stat().st_size > 1000
    table = (folder / "table.md").read_text()
    assert table.startswith("**Budget-limited") and "50 labels, budget 1B" in table and "all labels, budget 2B" in table
    assert "| autoencoder |" in table and "verdicts across budgets" in table
    cells = all_cells(folder)
    reported = [c for c in cells if c["key"]["seed"] not in TUNING_SEEDS]
    assert {c["key"]["seed"] for c in reported} == {0, 1}
    assert {c["key"]["seed"] for c in cells} - {0, 1} == set(TUNING_SEEDS)
    assert all("test_error" not in c for c in cells if c["key"]["seed"] in TUNING_SEEDS)  # tuning never sees test
    assert {c["key"]["budget"] for c in cells if c["key"]["labels"] == 50} == {1.0}
    assert {1.0, 2.0} <= {c["key"]["budget"] for c in cells if c["key"]["labels"] is None}
    for c in reported:  # N labels validate on min(N, val_cap) examples, all labels on the whole split
        assert c["n_val"] == (40 if c["key"]["labels"] == 50 else 50)
        assert c["n_train"] == (50 if c["key"]["labels"] == 50 else 350)
    # the summary is recomputed from the per-seed cell files alone
    p = comparison.make_protocol(
        "smoke", data_dir=str(digits), output=str(tmp_path / "res"), arms=["autoencoder", "xavier-uniform", "he-normal"]
    )
    harness = Harness(load_dataset(p.data, p.data_dir, p.val_size), folder, p.training, p.pretraining)
    again = json.loads(json.dumps(comparison.summarize(p, harness, all_cells(folder))))
    assert again["networks"] == summary["networks"] and again["family"] == summary["family"]
    assert summary["unused_cells"] == 0
    e = summary["networks"]["tiny"]["labels"]["all"]["budgets"]["2"]["arms"]["he-normal"]
    cells_he = [
        c for c in reported if c["key"]["arm"] == "he-normal" and c["key"]["labels"] is None and c["key"]["budget"] == 2
    ]
    trained = {str(c["key"]["seed"]): c["test_error"] for c in cells_he if c["trained"] and not c["diverged"]}
    assert e["test_error_per_seed"] == trained and e["n_run"] == len(cells_he) == 2
    # --report rebuilds the same tables from the cells and keeps the run's wall time
    assert summary["seconds"] > 0 and "Wall time of this invocation" in table
    _smoke(digits, tmp_path / "res", "--arms", "autoencoder", "xavier-uniform", "he-normal", "--report")
    assert json.loads((folder / "summary.json").read_text())["seconds"] == summary["seconds"]
    assert (folder / "table.md").read_text() == table


def test_shuffled_test_labels_change_no_choice(tmp_path):
    args = ["--arms", "autoencoder", "xavier-uniform", "--labels", "all", "--extend-budget", "0", "--seeds", "1"]
    a = _smoke(make_digits(tmp_path / "a"), tmp_path / "ra", *args)
    b = _smoke(make_digits(tmp_path / "b", shuffle_test_labels=True), tmp_path / "rb", *args)
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    for budget, block in sa["networks"]["tiny"]["labels"]["all"]["budgets"].items():
        for arm, e in block["arms"].items():
            f = sb["networks"]["tiny"]["labels"]["all"]["budgets"][budget]["arms"][arm]
            assert (e["lr"], e["status"], e["trials"], e["out"]) == (f["lr"], f["status"], f["trials"], f["out"])
            assert (e["best_step"], e["steps_run"]) == (f["best_step"], f["steps_run"]), (budget, arm)

    def curves(folder):
        return [(c["key"]["arm"], c["key"]["lr"], c["best_step"], c["val_error"]) for c in all_cells(folder)]

    assert curves(a) == curves(b)


def test_grid_extends_in_a_real_run_and_resume_trains_nothing(digits, tmp_path):
    args = ["--lr-grid", "1", "--arms", "xavier-uniform", "--labels", "all"]
    folder = _smoke(digits, tmp_path / "res", *args)
    s = json.loads((folder / "summary.json").read_text())
    e = s["networks"]["tiny"]["labels"]["all"]["budgets"]["1"]["arms"]["xavier-uniform"]
    assert "1" in e["trials"] and len(e["trials"]) >= 3  # a one-rate grid is its own two edges: extended both ways
    assert e["status"] in ("interior", "capped") and e["n_run"] == 2 and e["confirmations"]
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "cells").rglob("*.json")}
    _smoke(digits, tmp_path / "res", *args)
    assert {p: p.stat().st_mtime_ns for p in (folder / "cells").rglob("*.json")} == stamps


def test_did_not_train_on_random_labels(tiny_mnist_dir, tmp_path):
    args = ["--arms", "xavier-uniform", "he-normal", "--labels", "all", "--budgets", "1"]
    folder = _smoke(tiny_mnist_dir, tmp_path / "res", *args)
    arms = json.loads((folder / "summary.json").read_text())["networks"]["tiny"]["labels"]["all"]["budgets"]["1"]
    assert {e["status"] for e in arms["arms"].values()} == {"did not train"}
    assert all(e["lr"] is None for e in arms["arms"].values())
    assert "| xavier-uniform | — | did not train |" in (folder / "table.md").read_text()
    assert not [c for c in all_cells(folder) if c["key"]["seed"] not in TUNING_SEEDS]


def test_estimate_prints_a_prediction_with_the_budget_axis(digits, tmp_path, capsys):
    cli = ["--protocol", "smoke", "--data-dir", str(digits), "--cache", str(tmp_path / "cache"), "--estimate"]
    assert comparison.main([*cli, "--arms", "autoencoder", "xavier-uniform", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    # 2 arms x (3 + 1 + 3): 50 labels at B; all labels at B and 2B; the extension to 4B apart
    assert "4 arm groups, 42 fine-tuning runs" in out and "predicted wall time" in out
    assert "tiny/all/2B" in out and "extensions, if every all-label group takes one" in out
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def _finished(folder: Path, labels: int | None, steps: int, name: str, budget: float | None = 1.0) -> None:
    config = {"max_steps": 1000, "decay_steps": 300, "patience": 2, "eval_every": 50, "labels": labels}
    path = folder / "cells" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = {"finetune": config} if budget is None else {"finetune": config, "budget": budget}
    path.write_text(json.dumps({"key": key, "steps": list(range(50, steps + 1, 50))}))


def test_stopping_fractions_average_each_regime_over_every_study(tmp_path):
    _finished(tmp_path / "comparison-a", None, 200, "x")  # 200 of its longest 400
    _finished(tmp_path / "depth-b", None, 400, "y", budget=2.0)  # ran to its longest
    _finished(tmp_path / "comparison-a", 100, 100, "z")
    _finished(tmp_path / "comparison-a", 100, 400, "old", budget=None)  # a cell without a budget: not used
    assert comparison.stopping_fractions(tmp_path) == {
        "all": (0.75, 2),
        "all/1B": (0.5, 1),
        "all/2B": (1.0, 1),
        "few": (0.25, 1),
        "few/1B": (0.25, 1),
    }
    assert comparison.stopping_fractions(tmp_path / "nothing") == {}


def test_estimate_scales_runs_by_how_early_finished_runs_stopped(digits, tmp_path, capsys):
    out = tmp_path / "res"
    _finished(out / "comparison-earlier", None, 200, "x")
    p = comparison.make_protocol(
        "smoke", data_dir=str(digits), output=str(out), arms=["xavier-uniform"], labels=[None], seeds=2
    )
    e = comparison.estimate(p)
    comparison.print_estimate(p, e)
    assert "all/1B runs stop on average at 0.50 of their longest (1 finished runs)" in capsys.readouterr().out
    fixed_and_stacks = e["fixed_seconds"] + e["pretraining_seconds"] / p.workers
    assert e["total_seconds"] - fixed_and_stacks == pytest.approx((e["upper_bound_seconds"] - fixed_and_stacks) / 2)


def test_bad_input_is_one_line_and_writes_nothing(digits, tmp_path, capsys):
    base = ["--protocol", "smoke", "--data-dir", str(digits), "--output", str(tmp_path / "res")]
    assert comparison.main([*base, "--arms", "nonsense"]) == 2
    assert comparison.main([*base, "--networks", "relu", "--arms", "rbm"]) == 2
    assert comparison.main([*base, "--labels", "100000"]) == 2
    assert comparison.main([*base, "--budgets", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("experiments.comparison: error:") for line in err)
    assert not (tmp_path / "res").exists()
