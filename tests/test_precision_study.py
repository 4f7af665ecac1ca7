"""The fp32-vs-bf16 study's verdict, on hand-made cells."""

import math

from experiments.precision import RATES, markdown, summarize


def cell(labels, arm, seed, precision, error):
    key = {"labels": labels, "arm": arm, "seed": seed, "finetune": {"precision": precision}}
    return {"key": key, "trained": True, "test_error": error, "finetune_seconds": 1.0}


def test_a_shift_within_the_seed_spread_is_noise_and_a_larger_one_is_not():
    fp32 = [1.70, 1.80, 1.90]  # sd 0.10
    cells = [cell(None, "rbm", s, "fp32", e) for s, e in enumerate(fp32)]
    cells += [cell(None, "rbm", s, "bf16", e + d) for s, (e, d) in enumerate(zip(fp32, [0.05, -0.04, 0.02]))]
    cells += [cell(None, "he-normal", s, "fp32", e) for s, e in enumerate(fp32)]
    cells += [cell(None, "he-normal", s, "bf16", e + 0.5 + 0.01 * s) for s, e in enumerate(fp32)]
    cells.append(cell(None, "rbm", 7, "bf16", 50.0))  # a seed beyond --seeds is ignored
    rows = {r["arm"]: r for r in summarize(cells, seeds=3)["rows"]}
    assert set(rows) == {"rbm", "he-normal"} and rows["rbm"]["n"] == 3
    assert math.isclose(rows["rbm"]["diff"]["mean"], 0.01, abs_tol=1e-9)
    assert math.isclose(rows["rbm"]["seed_sd"], 0.10, rel_tol=1e-9)
    assert rows["rbm"]["within_seed_noise"] and not rows["he-normal"]["within_seed_noise"]
    assert rows["rbm"]["lr"] == RATES[("all", "rbm")]


def test_untrained_seeds_are_left_out_of_the_pairs():
    cells = [cell(1000, "rbm", s, p, 8.0 + s) for s in range(3) for p in ("fp32", "bf16")]
    cells[-1]["trained"] = False  # seed 2, bf16
    summary = summarize(cells, seeds=3)
    assert summary["rows"][0]["n"] == 2 and summary["all_within_seed_noise"]
    summary.update(seconds=60.0, machine={"processor": "x", "cpus": 2, "torch": "t", "cpu_flags": {"amx_bf16": False}})
    assert "within seed noise" in markdown(summary)
