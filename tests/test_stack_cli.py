"""End-to-end tests of ``python -m pretrain.stack`` on tiny synthetic data."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from pretrain.stack import main

from .conftest import make_blobs


def run(args, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_export_contract_end_to_end(blobs_npz, tmp_path, capsys):
    out = tmp_path / "ck" / "s.pt"
    code, stdout, _ = run(
        ["--layers", 12, 8, 4, "--data", blobs_npz, "--epochs", 2, "--val-size", 24, "--output", out, "--figures"],
        capsys,
    )
    assert code == 0 and f"saved {out}" in stdout
    assert "in→out" in stdout and "16→12" in stdout and "samples/s" in stdout
    ckpt = torch.load(out, weights_only=True)
    meta = ckpt["metadata"]
    assert meta["sizes"] == [16, 12, 8, 4] and meta["activation"] == "sigmoid" and meta["objective"] == "autoencoder"
    assert meta["config"]["lr"] == 1e-3 and meta["seed"] == 0 and meta["input_scaling"] == {"divide_by": 1.0}
    assert len(meta["layers"]) == 3 and len(meta["layers"][0]["val_loss"]) == 2
    assert set(meta["versions"]) == {"torch", "pretrain"} and meta["data"]["name"] == "blobs.npz"
    # someone who never read this code writes a classifier and loads the stack into it
    clf = nn.Sequential(
        nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 4), nn.Sigmoid(), nn.Linear(4, 3)
    )
    result = clf.load_state_dict(ckpt["state_dict"], strict=False)
    assert result.missing_keys == ["6.weight", "6.bias"] and not result.unexpected_keys
    assert (tmp_path / "ck" / "s.filters.png").stat().st_size > 0
    assert (tmp_path / "ck" / "s.reconstructions.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "s.filters.png",
        "s.pt",
        "s.reconstructions.png",
    ]  # the resume file is gone once the run is complete


def test_same_seed_writes_identical_weights(blobs_npz, tmp_path, capsys):
    paths = [tmp_path / f"{k}.pt" for k in range(3)]
    for path, seed in zip(paths, [5, 5, 6]):
        assert (
            run(
                ["--layers", 6, "--data", blobs_npz, "--epochs", 2, "--seed", seed, "--output", path, "--quiet"], capsys
            )[0]
            == 0
        )
    a, b, c = (torch.load(p, weights_only=True)["state_dict"] for p in paths)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])


def test_resume_continues_an_interrupted_run(blobs_npz, tmp_path, capsys, monkeypatch):
    import pretrain.greedy as greedy

    base = ["--layers", 8, 4, "--data", blobs_npz, "--epochs", 3, "--quiet"]
    assert run([*base, "--output", tmp_path / "full.pt"], capsys)[0] == 0

    original = greedy.GreedyPretrainer._fit_layer

    def interrupted(self, k, x, x_val, y, y_val, progress, on_epoch):
        def stop_after_one(p):
            on_epoch(p)
            if k == 1 and len(p.history_[1].train_loss) == 1:
                raise KeyboardInterrupt

        return original(self, k, x, x_val, y, y_val, progress, stop_after_one)

    monkeypatch.setattr(greedy.GreedyPretrainer, "_fit_layer", interrupted)
    out = tmp_path / "cut.pt"
    code, _, err = run([*base, "--output", out], capsys)
    assert code == 130 and not out.exists() and (tmp_path / "cut.resume.pt").exists()
    monkeypatch.undo()

    code, _, err = run([*base, "--output", out, "--lr", 0.5, "--resume"], capsys)
    assert code == 2 and "other settings" in err and "--lr" in err
    assert run([*base, "--output", out, "--resume"], capsys)[0] == 0
    full, resumed = (torch.load(p, weights_only=True) for p in (tmp_path / "full.pt", out))
    assert all(torch.equal(full["state_dict"][k], resumed["state_dict"][k]) for k in full["state_dict"])
    assert full["metadata"]["layers"][1]["val_loss"] == resumed["metadata"]["layers"][1]["val_loss"]
    assert not (tmp_path / "cut.resume.pt").exists()


def _bad_file(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "required: --layers"),
        (["--layers"], "expected at least one argument"),
        (["--layers", "0"], "0 is not positive"),
        (["--layers", "500", "-3"], "-3 is not positive"),
        (["--layers", "2.5"], "'2.5' is not an integer"),
        (["--layers", "abc"], "'abc' is not an integer"),
        (["--layers", "4", "--data", "cifar-99"], "unknown data set 'cifar-99'"),
        (["--layers", "4", "--data", "{tmp}/missing.npz"], "data file not found"),
        (["--layers", "4", "--data", "{tmp}/junk.npz"], "cannot read data file"),
        (["--layers", "4", "--data", "{tmp}/rank3.npz"], "must have shape (N, D)"),
        (["--layers", "4", "--data", "{tmp}/wide.npz", "--loss", "cross-entropy"], "cross-entropy needs [0, 1]"),
        (
            [
                "--layers",
                "4",
                "--data",
                "{tmp}/huge.npz",
                "--loss",
                "mse",
                "--optimizer",
                "sgd",
                "--lr",
                "10",
                "--activation",
                "linear",
                "--quiet",
            ],
            "smaller learning rate",
        ),
        (["--layers", "4", "--output", "{tmp}"], "is a directory"),
        (["--layers", "4", "--output", "{tmp}/junk.npz/x.pt"], "Not a directory"),
        (["--layers", "4", "--output", "/proc/nope/o.pt"], "cannot write the output file /proc/nope/o.pt"),
        (["--layers", "4", "--resume"], "nothing to resume"),
        (["--layers", "4", "--lr", "-1"], "not a positive number"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    x, _ = make_blobs(n=64, d=8)
    _bad_file(tmp_path, "rank3.npz", X=np.zeros((4, 2, 2), np.float32))
    _bad_file(tmp_path, "wide.npz", X=x * 5 - 2)
    _bad_file(tmp_path, "huge.npz", X=x * 1e3)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _, err = run(["--data-dir", tmp_path / "d", *(a.format(tmp=tmp_path) for a in args)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_module_runs_with_help_and_no_traceback_on_bad_input(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "pretrain.stack", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    for flag in [
        "--layers",
        "--data",
        "--data-dir",
        "--objective",
        "--activation",
        "--epochs",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--noise",
        "--weight-decay",
        "--tied",
        "--seed",
        "--device",
        "--output",
        "--resume",
        "--quiet",
        "--figures",
    ]:
        assert flag in help_text.stdout
    bad = subprocess.run([sys.executable, "-m", "pretrain.stack", "--layers", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
