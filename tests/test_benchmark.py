import json

from experiments import benchmark


def test_benchmark_runs_a_section_and_writes_its_table_and_json(tmp_path):
    table = tmp_path / "bench.md"
    assert benchmark.main(["--only", "depth", "--n", "512", "--out", str(tmp_path), "--table", str(table)]) == 0
    text = table.read_text()
    assert "| depth (256-wide layers) |" in text and "| 4 |" in text and "GFLOP/s" in text
    (folder,) = tmp_path.glob("benchmark-*")
    saved = json.loads((folder / "results.json").read_text())
    assert [r["depth"] for r in saved["depth"]] == [1, 2, 3, 4] and all(r["seconds"] > 0 for r in saved["depth"])
    assert "layers" not in saved and saved["peak_gflops"] > 0


def test_tables_cover_every_section():
    rows = {
        "threads": 2,
        "n": 60000,
        "peak_gflops": 180.0,
        "layers": [{"layer": "784→500", "batch": 128, "samples_per_s": 1e4, "gflops": 90.0, "fraction_of_peak": 0.5}],
        "rbm": [{"variant": "layer", "best_s": 2.0, "fraction_of_peak": 0.6}],
        "workloads": [{"workload": "fine-tune", "samples_per_s": 3e4, "fraction_of_peak": 0.55}],
        "depth": [{"depth": 1, "seconds": 1.0}, {"depth": 2, "seconds": 2.1}],
        "processes": [{"processes": 2, "threads_each": 1, "samples_per_s": 9e3, "wall_s": 5.0}],
    }
    text = benchmark.tables(rows)
    for expected in ("| 784→500 | 128 | 10,000 | 90.0 | 50% |", "| layer | 2.00 | 60% |", "| 2 | 2.10 | 2.10× |"):
        assert expected in text
    assert "60,000 rows" in text and "| fine-tune | 30,000 | 55% |" in text
