"""``python -m pretrain.doctor``: exit 0 on healthy starts, 1 with warnings, 2 on bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pretrain.checkpoint import save_atomic
from pretrain.doctor import main, model_from_checkpoint
from pretrain.mlp import build_mlp

SEED_NET = ["--layers", "50", "50", "50", "50", "50", "--examples", "500"]


@pytest.mark.parametrize(
    "args",
    [
        ["--init", "xavier-uniform", "--activation", "tanh"],
        ["--init", "he-normal", "--activation", "relu"],
        ["--init", "xavier-uniform", "--activation", "sigmoid"],
    ],
)
def test_healthy_starts_exit_0(args, capsys):
    assert main(args + SEED_NET) == 0
    out = capsys.readouterr().out
    assert "healthy: no warnings" in out and "warning:" not in out
    assert len([line for line in out.splitlines() if line.strip().split(" ")[0].isdigit()]) == 5  # one row a layer


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--init", "small-normal", "--activation", "tanh"], "layer 5: activations vanish (std "),
        (["--init", "small-normal", "--activation", "tanh"], "gradients shrink "),
        (["--init", "large-normal", "--activation", "tanh"], "% saturated"),
        (["--init", "large-normal", "--activation", "relu"], "activations explode"),
        (["--init", "zeros", "--activation", "sigmoid"], "all units identical: symmetric start"),
        (["--init", "constant:0.05", "--activation", "tanh"], "all units identical: symmetric start"),
    ],
)
def test_bad_starts_exit_1(args, expected, capsys):
    assert main(args + SEED_NET) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("warning: ") and expected in line for line in out.splitlines()), out


def test_checkpoint_with_data_file_and_json(tmp_path, blobs_npz, capsys):
    model = build_mlp(16, [12, 8], 3, "tanh")
    g = torch.Generator().manual_seed(0)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, generator=g)
    ckpt = {"state_dict": model.state_dict(), "metadata": {"activations": ["tanh", "tanh"], "data": {"name": "x"}}}
    path = save_atomic(ckpt, tmp_path / "c.pt")
    rebuilt = model_from_checkpoint(ckpt)
    assert [type(m) for m in rebuilt] == [type(m) for m in model]
    report = tmp_path / "r.json"
    code = main(["--checkpoint", str(path), "--data", str(blobs_npz), "--examples", "100", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cross-entropy" in out  # labels plus a 3-way head: the classifier's own loss
    saved = json.loads(report.read_text())
    assert [s["n_units"] for s in saved["layers"]] == [12, 8] and saved["warnings"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "bogus", "--layers", "5"], "unknown init"),
        (["--init", "zeros"], "needs --layers"),
        (["--checkpoint", "/nonexistent/c.pt"], "not found"),
        (["--checkpoint", "/nonexistent/c.pt", "--layers", "5"], "go with --init"),
        (["--init", "zeros", "--layers", "5", "--data", "nothing.csv"], "unknown data set"),
        (["--init", "zeros", "--layers", "5", "--loss", "cross-entropy"], "labels"),
    ],
)
def test_bad_input_exit_2(args, message, capsys, tmp_path):
    assert main(args + ["--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_inputs_must_match_data_file(blobs_npz, capsys):
    assert main(["--init", "xavier-uniform", "--layers", "5", "--inputs", "7", "--data", str(blobs_npz)]) == 2
    assert "--inputs 7 does not match the data's 16 features" in capsys.readouterr().err


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--layers", "5"])  # neither --checkpoint nor --init
    assert caught.value.code == 2
    assert "one of the arguments" in capsys.readouterr().err
