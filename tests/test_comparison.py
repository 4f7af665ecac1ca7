"""The benchmark's smoke mode (pipeline, statistics and figures are produced) and its statistics."""

from __future__ import annotations

import json
import math

import pytest

from experiments import hinton_comparison as hc
from experiments.stats import betainc, confidence_interval, mean_std, paired_difference, t_cdf, t_quantile
from pretrain.checkpoint import write_json


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


def test_epochs_to_target():
    assert hc.epochs_to([5.0, 2.5, 2.0, 1.5]) == 3
    assert hc.epochs_to([5.0, 3.0]) is None


# ------------------------------------------------------------------------- the smoke mode
def _smoke(tiny_mnist_dir, tmp_path, *extra):
    args = ["--protocol", "smoke", "--data-dir", str(tiny_mnist_dir), "--output", str(tmp_path / "res"), "--quiet"]
    assert hc.main([*args, *extra]) == 0
    (folder,) = (tmp_path / "res").iterdir()
    return folder


def test_smoke_mode_writes_results_table_and_figures(tiny_mnist_dir, tmp_path):
    arms = ["autoencoder", "denoising", "rbm", "xavier-uniform", "he-normal", "lsuv", "zeros"]
    folder = _smoke(tiny_mnist_dir, tmp_path, "--arms", *arms, "--labels", "50", "all")
    results = json.loads((folder / "results.json").read_text())
    assert folder.name.startswith("hinton-smoke-sigmoid-")
    for name in ("test_error_curves.png", "final_errors.png", "error_vs_labels.png"):
        assert (folder / name).stat().st_size > 1000
    table = (folder / "table.md").read_text()
    assert "**all labels**" in table and "**50 labels**" in table and "| autoencoder |" in table

    assert results["protocol"]["arms"] == arms and results["seeds"] == [0, 1]
    runs = results["runs"]
    assert len(runs) == 2 * len(arms) * 2  # label counts x arms x seeds
    assert set(results["pretraining"]) == {f"{a}/{s}" for a in hc.PRETRAINED_ARMS for s in (0, 1)}
    for r in runs:
        assert not r["diverged"] and len(r["test_error"]) == 1 and 0 <= r["final_test_errors"] <= 100
        assert r["final_test_error"] == pytest.approx(r["final_test_errors"])  # 100 test images: count = percent
        assert r["lr"] == results["lr_search"][r["labels"]][r["arm"]]["chosen"]
        assert (r["pretrain_seconds"] > 0) == (r["arm"] in hc.PRETRAINED_ARMS)

    # the summary is recomputed from the per-seed numbers alone
    write_json(tmp_path / "again.json", hc.summarize(results))
    assert results["summary"] == json.loads((tmp_path / "again.json").read_text())
    for key in ("all", "50"):
        by = {(r["arm"], r["seed"]): r["final_test_error"] for r in runs if r["labels"] == key}
        for arm in arms:
            e = results["summary"][key][arm]
            mean, std = mean_std([by[arm, 0], by[arm, 1]])
            assert e["test_error_mean"] == pytest.approx(mean) and e["test_error_std"] == pytest.approx(std)
            if arm != "xavier-uniform":
                d = e["vs_xavier-uniform"]
                assert d["differences"] == pytest.approx([by[arm, s] - by["xavier-uniform", s] for s in (0, 1)])
        assert "vs_xavier-uniform" not in results["summary"][key]["xavier-uniform"]


def test_same_seed_same_start_and_shared_head(tiny_mnist_dir):
    p = hc.make_protocol("smoke", data_dir=str(tiny_mnist_dir))
    data = hc.load_dataset(p.data, p.data_dir, p.val_size)
    a = hc.build_start(p, "he-normal", 1, data, {})
    b = hc.build_start(p, "he-normal", 1, data, {})
    c = hc.build_start(p, "zeros", 1, data, {})
    d = hc.build_start(p, "he-normal", 2, data, {})
    assert all((x == y).all() for x, y in zip(a.parameters(), b.parameters()))
    assert (a[-1].weight == c[-1].weight).all()  # every arm of a seed gets the same head
    assert not (a[-1].weight == d[-1].weight).all()
    assert (c[0].weight == 0).all()


def test_bad_input_is_one_line_and_writes_nothing(tiny_mnist_dir, tmp_path, capsys):
    base = ["--protocol", "smoke", "--data-dir", str(tiny_mnist_dir), "--output", str(tmp_path / "res")]
    assert hc.main([*base, "--arms", "nonsense"]) == 2
    assert hc.main([*base, "--network", "relu", "--arms", "rbm"]) == 2
    assert hc.main([*base, "--labels", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("experiments.hinton_comparison: error:") for line in err)
    assert not (tmp_path / "res").exists()


def test_stack_cache_is_reused_and_runs_never_share_a_folder(tiny_mnist_dir, tmp_path):
    args = ["--arms", "autoencoder", "xavier-uniform", "--seeds", "1", "--cache", str(tmp_path / "cache")]
    first = _smoke(tiny_mnist_dir, tmp_path, *args)
    args = ["--protocol", "smoke", "--data-dir", str(tiny_mnist_dir), "--output", str(tmp_path / "res"), "--quiet"]
    assert (
        hc.main(
            [
                *args,
                "--arms",
                "autoencoder",
                "xavier-uniform",
                "--seeds",
                "1",
                "--cache",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    second = next(f for f in (tmp_path / "res").iterdir() if f != first)
    a, b = (json.loads((f / "results.json").read_text()) for f in (first, second))
    assert "cached" not in a["pretraining"]["autoencoder/0"] and "cached" in b["pretraining"]["autoencoder/0"]
    assert a["pretraining"]["autoencoder/0"]["seconds"] == b["pretraining"]["autoencoder/0"]["seconds"]
    assert [r["final_test_errors"] for r in a["runs"]] == [r["final_test_errors"] for r in b["runs"]]
    assert all("cached" in r for r in b["runs"]) and not any("cached" in r for r in a["runs"])
