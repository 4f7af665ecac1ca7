"""The studies' error paths: bad input is one line on stderr and exit code 2, as for the commands.

Each study is run in-process from an empty working directory with a usage error and with an output
it cannot write; both must fail before any training, write nothing, and print no traceback.
"""

from __future__ import annotations

import importlib

import pytest

# (module, a usage error, flags whose output path lies under a regular file)
STUDIES = [
    ("comparison", ["--seeds", "0"], ["--protocol", "quick", "--report", "--output", "{file}"]),
    ("depth_study", ["--depths", "0"], ["--smoke", "--report", "--data-dir", "{file}", "--output", "out"]),
    ("deep_autoencoder", ["--layers", "0"], ["--results", "{file}"]),
    ("activations", ["--depth", "0"], ["--tables-dir", "{file}"]),
    ("symmetry", ["--steps", "0"], ["--tables-dir", "{file}"]),
    ("sklearn_digits", ["--seed", "x"], ["--out", "{file}"]),
]


def run_study(module: str, argv: list[str]) -> int:
    if module == "sklearn_digits":
        pytest.importorskip("sklearn")
    main = importlib.import_module(f"experiments.{module}").main
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return exc.code


@pytest.mark.parametrize("kind", ["usage", "unwritable"])
@pytest.mark.parametrize("module, usage, unwritable", STUDIES, ids=[s[0] for s in STUDIES])
def test_study_bad_input_is_one_line_and_exit_2(module, usage, unwritable, kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    before = set(tmp_path.rglob("*"))
    argv = usage if kind == "usage" else [a.format(file=tmp_path / "file") for a in unwritable]
    code = run_study(module, argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err[-2000:]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err[-2000:]
    assert lines[0].startswith(f"python -m experiments.{module}: error: ") or lines[0].startswith(
        f"experiments.{module}: error: "
    )
    assert set(tmp_path.rglob("*")) == before
