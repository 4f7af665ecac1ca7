"""A study's tasks on a Dask cluster (``--scheduler``): same cells as a local run, dead workers, a lost scheduler.

The clusters listen on 127.0.0.1 only. The ``cluster`` tests share one 2-worker ``LocalCluster``;
the one that kills a worker runs last.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments import cluster, comparison
from experiments.results import all_cells

from .conftest import make_digits

TIMINGS = {"finetune_seconds", "pretrain_seconds"}  # wall times: the only fields two runs of a cell may differ in
# a smaller study, for the tests of faults
SMALL = ["--arms", "autoencoder", "xavier-uniform", "--labels", "all", "--lr-grid", "0.3", "--max-extensions", "1"]
SMALL += ["--seeds", "1"]


def _study(data: Path, out: Path, *extra: str) -> int:
    args = ["--protocol", "smoke", "--data-dir", str(data), "--output", str(out), "--cache", str(out / "cache")]
    return comparison.main([*args, "--quiet", *extra])


def _cells(out: Path) -> dict[str, dict]:
    """Every cell of the smoke study under ``out``, by key, without its wall times."""
    cells = all_cells(out / "comparison-smoke")
    return {json.dumps(c["key"], sort_keys=True): {k: v for k, v in c.items() if k not in TIMINGS} for c in cells}


def _stamps(out: Path) -> dict[Path, int]:
    """The modification time of every cell and cached stack under ``out``."""
    files = [*(out / "comparison-smoke" / "cells").rglob("*.json"), *(out / "cache").glob("*.pt")]
    return {p: p.stat().st_mtime_ns for p in files}


def _record_writes(monkeypatch) -> list[Path]:
    """The files the client writes for its tasks, in order."""
    written: list[Path] = []
    real = cluster.atomic_write

    def recording(path, write):
        written.append(Path(path))
        return real(path, write)

    monkeypatch.setattr(cluster, "atomic_write", recording)
    return written


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory) -> Path:
    """The whole smoke study run locally, in this process."""
    out = tmp_path_factory.mktemp("local")
    assert _study(digits, out, "--workers", "1") == 0
    return out


@pytest.fixture(scope="module")
def reference_small(digits, tmp_path_factory) -> Path:
    """The ``SMALL`` study run locally, in this process."""
    out = tmp_path_factory.mktemp("local-small")
    assert _study(digits, out, *SMALL, "--workers", "1") == 0
    return out


@pytest.fixture(scope="module")
def local_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
        yield c


def _listening_addresses() -> set[str]:
    """The addresses this process listens on (TCP)."""
    import psutil

    return {c.laddr.ip for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def _worker_killing_once(protocol_json: str, marker: str, fn, *args):
    """Run the task ``fn``, then, the first time only (``marker`` not yet there), kill this worker process."""
    value = fn(protocol_json, *args)
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return value


# ----------------------------------------------------------------------------- no Dask
def test_without_a_scheduler_dask_is_never_imported():
    code = (
        "import json, sys\n"
        "from experiments import cluster, comparison, depth_study\n"
        "assert cluster.run_phases('{\"output\": \"x\"}', [[(json.loads, ())]], quiet=True) == [[{'output': 'x'}]]\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unreachable_scheduler_is_one_line_and_exit_2_and_a_rerun_resumes(digits, tmp_path, capfd):
    import dask
    import distributed  # noqa: F401 (its config defaults, before dask.config.set overrides one)

    out = tmp_path / "res"
    assert _study(digits, out, "--arms", "xavier-uniform", *SMALL[3:]) == 0  # one arm done
    before = _stamps(out)
    capfd.readouterr()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert _study(digits, out, *SMALL, "--scheduler", f"tcp://127.0.0.1:{_closed_port()}") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "experiments.comparison: error: cannot reach the Dask scheduler at tcp://"
    )
    assert _stamps(out) == before  # the finished cells are kept as they were
    assert _study(digits, out, *SMALL, "--workers", "1") == 0
    after = _stamps(out)
    assert {p: after[p] for p in before} == before and len(after) > len(before)  # resumed: only the rest trained


def test_the_depth_study_takes_a_scheduler_too(digits, tmp_path, capfd):
    import dask
    import distributed  # noqa: F401 (its config defaults, before dask.config.set overrides one)

    from experiments import depth_study

    args = ["--smoke", "--depths", "1", "--width", "8", "--seeds", "1", "--labels", "all", "--quiet"]
    args += ["--data-dir", str(digits), "--output", str(tmp_path), "--cache", str(tmp_path / "cache")]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert depth_study.main([*args, "--scheduler", f"tcp://127.0.0.1:{_closed_port()}"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("experiments.depth_study: error: cannot reach the Dask scheduler")


# ----------------------------------------------------------------------- LocalCluster
@pytest.mark.cluster
def test_the_smoke_study_through_a_scheduler_gives_the_local_cells(
    reference, local_cluster, digits, tmp_path, monkeypatch
):
    written = _record_writes(monkeypatch)
    out = tmp_path / "dask"
    assert _study(digits, out, "--scheduler", local_cluster.scheduler_address) == 0
    cells = _cells(out)
    assert cells.keys() == _cells(reference).keys() and cells == _cells(reference)
    assert len(written) == len(set(written))  # every file written once
    assert set(written) == set(_stamps(out))  # every cell and stack came back through the client
    with local_cluster.get_client() as client:  # the data set was loaded once per worker
        loads = client.run(lambda: __import__("experiments.comparison").comparison._harness.cache_info().misses)
        assert sorted(loads.values()) == [1, 1]
        listening = client.run(_listening_addresses)
    assert set().union(_listening_addresses(), *listening.values()) == {"127.0.0.1"}  # scheduler, nannies, workers


@pytest.mark.cluster
def test_a_lost_scheduler_mid_study_stops_with_one_line_and_a_rerun_resumes(
    reference_small, local_cluster, digits, tmp_path, capfd
):
    import dask
    import distributed  # noqa: F401 (its config defaults, before dask.config.set overrides one)

    out, env = tmp_path / "res", {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    where = tmp_path / "scheduler.json"
    base = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [*base, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(where)],
        stderr=subprocess.DEVNULL,
        env=env,
    )
    worker = None
    try:
        while not where.exists():
            time.sleep(0.1)
        address = json.loads(where.read_text())["address"]
        worker = subprocess.Popen(
            [*base, "distributed.cli.dask_worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
            + ["--no-dashboard", "--no-nanny"],
            stderr=subprocess.DEVNULL,
            env=env,
        )

        def stop_scheduler_after_some_cells():
            while len(list(out.rglob("*.json"))) < 3 and scheduler.poll() is None:
                time.sleep(0.05)
            scheduler.kill()

        threading.Thread(target=stop_scheduler_after_some_cells, daemon=True).start()
        capfd.readouterr()
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            assert _study(digits, out, *SMALL, "--scheduler", address) == 2
    finally:
        for process in (scheduler, worker):
            if process is not None:
                process.kill()
                process.wait()
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("experiments.comparison: error: lost the Dask scheduler at tcp://")
    before = _stamps(out)
    assert len(before) >= 3
    assert _study(digits, out, *SMALL, "--scheduler", local_cluster.scheduler_address) == 0
    after = _stamps(out)
    assert {p: after[p] for p in before} == before  # finished cells kept, not retrained
    assert _cells(out) == _cells(reference_small)


@pytest.mark.cluster
def test_a_task_error_stops_the_study_and_is_not_retried(local_cluster, tmp_path):
    text = json.dumps({"output": str(tmp_path / "out"), "cache": None})
    tries = tmp_path / "tries"
    with pytest.raises(ValueError, match="a task's own error"):
        cluster.run_phases(text, [[(_failing, (str(tries),))]], scheduler=local_cluster.scheduler_address, quiet=True)
    assert tries.read_text() == "x"  # one try


def _failing(protocol_json: str, tries: str):
    with open(tries, "a") as f:
        f.write("x")
    raise ValueError("a task's own error")


@pytest.mark.cluster
def test_a_worker_killed_mid_study_loses_no_cell_and_writes_none_twice(
    reference_small, local_cluster, digits, tmp_path, monkeypatch
):
    marker, real = tmp_path / "killed", cluster.run_phases

    def one_task_kills_its_worker(protocol_json, phases, **kwargs):
        phases = [list(phase) for phase in phases]
        fn, args = phases[1][0]  # the first task after the stacks
        phases[1][0] = (_worker_killing_once, (str(marker), fn, *args))
        return real(protocol_json, phases, **kwargs)

    monkeypatch.setattr(comparison, "run_phases", one_task_kills_its_worker)
    written = _record_writes(monkeypatch)
    out = tmp_path / "dask"
    assert _study(digits, out, *SMALL, "--scheduler", local_cluster.scheduler_address) == 0
    assert marker.exists()  # a worker did die, after its task had trained its cells
    assert _cells(out) == _cells(reference_small)
    assert len(written) == len(set(written))
