import json

import pytest
import torch

from experiments import benchmark


def test_a_small_run_writes_its_tables_json_and_the_cpu_flags(tmp_path):
    table = tmp_path / "bench.md"
    argv = ["--only", "finetune", "depth", "--pairs", "1", "--n", "512", "--eval-every", "4", "--val", "64"]
    argv += ["--networks", "20-8-10", "--peak-seconds", "0.01"]
    assert benchmark.main([*argv, "--out", str(tmp_path), "--table", str(table)]) == 0
    text = table.read_text()
    assert "avx512_bf16" in text and "amx_bf16" in text and "GFLOP/s" in text
    assert "| 20-8-10 | fp32 |" in text and "| 20-8-10 | bf16 |" in text and "| 4 |" in text
    (folder,) = tmp_path.glob("benchmark-*")
    saved = json.loads((folder / "results.json").read_text())
    assert [r["depth"] for r in saved["depth"]] == [1, 2, 3, 4] and all(r["seconds"] > 0 for r in saved["depth"])
    assert {r["precision"] for r in saved["finetune"]} == {"fp32", "bf16"}
    assert all(r["speedup"] > 0 and r["plain_ms"] > 0 for r in saved["finetune"])
    assert "pretrain" not in saved and saved["peaks"]["fp32"] > 0 and saved["peaks"]["bf16"] > 0
    assert set(saved["machine"]["flags"]) == {"avx512_bf16", "amx_bf16", "amx_tile"}


def test_every_plain_pretraining_loop_runs_and_the_trainer_is_timed():
    x, y = benchmark.random_data(64, 20)
    for objective in benchmark.OBJECTIVES:
        assert benchmark.plain_epoch(objective, x, y, 8) > 0
        assert benchmark.trainer_epoch(objective, x, y, 8) > 0


def test_cpu_clock_needs_one_thread(tmp_path, capsys):
    assert benchmark.main(["--clock", "cpu", "--threads", "2", "--table", str(tmp_path / "t.md")]) == 2
    assert "--threads 1" in capsys.readouterr().err


def test_tables_cover_every_section():
    machine = {"cpu": "Test CPU", "flags": {"avx512_bf16": True, "amx_bf16": False, "amx_tile": False}, "threads": 1}
    rows = {
        "clock": "wall",
        "n": 16384,
        "machine": machine,
        "peaks": {"fp32": 100.0, "bf16": 200.0},
        "finetune": [
            {
                "network": "784-500-250-100-10",
                "precision": "fp32",
                "plain_ms": 3.0,
                "finetune_ms": 2.9,
                "speedup": 1.03,
                "steps_speedup": 1.1,
                "plain_of_peak": 0.5,
                "finetune_of_peak": 0.52,
                "eval_every": 161,
                "n_val": 5000,
            }
        ],  # fmt: skip
        "pretrain": [
            {
                "objective": "CD-1",
                "layer": "784→500",
                "batch": 100,
                "plain_s": 2.0,
                "trainer_s": 1.0,
                "speedup": 2.0,
                "plain_of_peak": 0.3,
                "trainer_of_peak": 0.6,
                "bf16_speedup": 1.5,
            }
        ],  # fmt: skip
        "peers": [
            {"implementation": "pretrain", "us_per_example": 30.0, "vs_pretrain": 1.0},
            {"implementation": "ClustPy", "us_per_example": None, "vs_pretrain": None, "note": "not installed"},
        ],
        "workers": [
            {"network": "784-500-250-100-10", "layout": "2×1", "steps_per_s": 300.0, "vs_other": 1.2},
            {"network": "784-500-250-100-10", "layout": "1×2", "steps_per_s": 250.0, "vs_other": 0.83},
        ],
        "depth": [{"depth": 1, "seconds": 1.0}, {"depth": 2, "seconds": 2.1}],
        "kernels": [{"layer": "500→2000", "product": "input gradient", "addmm_ms": 3.0, "linear_ms": 2.5}],
    }
    text = benchmark.tables(rows)
    for expected in (
        "Test CPU; avx512_bf16 yes, amx_bf16 no, amx_tile no",
        "| 784-500-250-100-10 | fp32 | 3.00 | 2.90 | 1.03× | 1.10× | 50% | 52% |",
        "| CD-1 | 784→500 | 100 | 2.000 | 1.000 | 2.00× | 30% | 60% | 1.50× |",
        "| ClustPy | n/a | n/a (not installed) |",
        "| 784-500-250-100-10 | 2×1 | 300.0 | 1.20× |",
        "| 2 | 2.10 | 2.10× |",
        "5,000 rows every 161 steps",
        "| 500→2000 | input gradient | 3.000 | 2.500 | 1.20× |",
    ):
        assert expected in text


@pytest.mark.parametrize("objective", list(benchmark.OBJECTIVES))
def test_flops_are_counted_per_example(objective):
    assert benchmark.layer_flops(objective, 784, 500) > 2 * 784 * 500
    assert benchmark.classifier_flops([784, 500, 10]) == 3 * 2 * (784 * 500 + 500 * 10) - 2 * 784 * 500


def test_a_worker_job_times_its_runs_after_the_warm_up():
    threads = torch.get_num_threads()
    try:
        start, end = benchmark.worker_job([20, 8, 10], runs=2, threads=1, steps=4, eval_every=2, n_val=16)
    finally:
        torch.set_num_threads(threads)
    assert end > start


def test_kernels_time_both_products_of_every_layer_shape_and_only_when_named():
    rows = benchmark.kernel_rows(pairs=1, calls=1)
    shapes = {f"{a}→{b}" for sizes in benchmark.NETWORKS for a, b in zip(sizes, sizes[1:])}
    assert {r["layer"] for r in rows} == shapes and len(rows) == 2 * len(shapes)
    assert all(r["addmm_ms"] > 0 and r["linear_ms"] > 0 for r in rows)
    assert "kernels" not in benchmark.build_parser().parse_args([]).only
