"""``--precision bf16``: autocast with fp32 weights, end to end, close to fp32; one warning without bf16 units."""

import warnings

import pytest
import torch

from pretrain import autoencoder as autoencoder_cli
from pretrain import finetune as finetune_cli
from pretrain import stack as stack_cli
from pretrain import training
from pretrain.checkpoint import load_checkpoint
from pretrain.errors import PretrainError
from pretrain.finetuning import FinetuneConfig, finetune
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers.rbm import HINTON2006

from .test_speed_paths import blobs, net


@pytest.fixture
def quiet_bf16(monkeypatch):
    """bf16 as on a CPU with AMX: no warning, so the tests see only what they test."""
    monkeypatch.setattr(training, "cpu_flags", lambda path="/proc/cpuinfo": dict.fromkeys(training.CPU_FLAGS, True))


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 sse\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert training.cpu_flags(info) == {"avx512_bf16": True, "amx_bf16": False, "amx_tile": False}
    assert training.cpu_flags(tmp_path / "missing") == dict.fromkeys(training.CPU_FLAGS, False)


def test_bf16_without_bf16_units_warns_once_and_still_runs(monkeypatch):
    flags = {"avx512_bf16": False, "amx_bf16": False, "amx_tile": False}
    monkeypatch.setattr(training, "cpu_flags", lambda path="/proc/cpuinfo": flags)
    training._warn_slow_bf16.cache_clear()
    with pytest.warns(UserWarning, match="without bf16 matrix instructions") as caught:
        for _ in range(3):
            with training.autocast("bf16", "cpu"):
                out = torch.ones(4, 4) @ torch.ones(4, 4)
    assert len(caught) == 1 and out.dtype == torch.bfloat16
    training._warn_slow_bf16.cache_clear()


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_bf16_with_amx_or_avx512_bf16_or_fp32_does_not_warn(monkeypatch, flag):
    monkeypatch.setattr(
        training, "cpu_flags", lambda path="/proc/cpuinfo": {"amx_bf16": False, "avx512_bf16": False, flag: True}
    )
    training._warn_slow_bf16.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with training.autocast("bf16", "cpu"), training.autocast("fp32", "cpu"):
            pass
    with pytest.raises(ValueError, match="precision"):
        training.autocast("fp16", "cpu")


def test_unknown_precision_is_refused():
    with pytest.raises(PretrainError, match="precision"):
        FinetuneConfig(precision="fp16")
    with pytest.raises(PretrainError, match="precision"):
        GreedyConfig(layers=[4], precision="half")


def test_bf16_finetune_keeps_fp32_weights_and_ends_close_to_fp32(quiet_bf16):
    data = blobs()
    results, models = {}, {}
    for precision in ("fp32", "bf16"):
        models[precision] = net(torch.nn.Sigmoid)
        cfg = FinetuneConfig(lr=0.3, epochs=8, batch_size=32, patience=None, precision=precision)
        results[precision] = finetune(models[precision], data, cfg)
    assert all(p.dtype == torch.float32 for p in models["bf16"].parameters())
    fp32, bf16 = results["fp32"], results["bf16"]
    assert abs(fp32.train_loss[-1] - bf16.train_loss[-1]) < 0.05 * fp32.train_loss[0]
    assert abs(fp32.test_error_final - bf16.test_error_final) <= 0.05


@pytest.mark.parametrize("settings", [{}, {"objective": "supervised"}, {**HINTON2006, "batch_size": 20}])
def test_bf16_pretraining_of_every_objective_ends_close_to_fp32(settings, quiet_bf16):
    data = blobs()
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = GreedyConfig.from_flat({"layers": [8, 4], "epochs": 3, **settings, "precision": precision})
        p = GreedyPretrainer(cfg).fit(data.train.x, data.val.x, y=data.train.y, y_val=data.val.y)
        assert all(t.dtype == torch.float32 for layer in p.layers_ for t in layer.parameters())
        losses[precision] = [h.val_loss[-1] for h in p.history_]
    for a, b in zip(losses["fp32"], losses["bf16"]):
        assert b == pytest.approx(a, rel=0.05, abs=0.02)


def test_commands_run_end_to_end_in_bf16(blobs_npz, tmp_path, capsys, quiet_bf16):
    stack = tmp_path / "s.pt"
    common = ["--data", blobs_npz, "--val-size", 24, "--quiet", "--precision", "bf16"]
    assert stack_cli.main([*map(str, ["--layers", 8, 4, "--epochs", 2, "--output", stack, *common])]) == 0
    assert load_checkpoint(stack)["metadata"]["config"]["precision"] == "bf16"
    clf = tmp_path / "c.pt"
    args = ["--init", f"pretrained:{stack}", "--epochs", 2, "--output", clf, *common]
    assert finetune_cli.main([*map(str, args)]) == 0
    ae = tmp_path / "ae.pt"
    args = ["--layers", 8, 2, "--epochs", 1, "--finetune-epochs", 2, "--output", ae, *common]
    assert autoencoder_cli.main([*map(str, args)]) == 0
    assert load_checkpoint(ae)["metadata"]["finetune"]["precision"] == "bf16"
    assert "test squared error per image" in capsys.readouterr().out
