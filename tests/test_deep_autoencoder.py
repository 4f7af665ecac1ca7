"""Unrolling a pretrained stack, fine-tuning it end to end, the PCA baseline, and the CLI."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pretrain.checkpoint import load_checkpoint
from pretrain.deep_autoencoder import (
    PCA,
    DeepAutoencoder,
    DeepAutoencoderConfig,
    DeepAutoencoderTrainer,
    mirrored_activations,
    random_autoencoder,
    squared_error_per_image,
    unroll,
)
from pretrain.errors import PretrainError
from pretrain.greedy import GreedyConfig, GreedyPretrainer, stack_checkpoint
from pretrain.mlp import build_mlp

from .conftest import make_blobs


def _pixels(n: int = 200, d: int = 16) -> torch.Tensor:
    return torch.from_numpy(make_blobs(n, d)[0])


def _stack(x: torch.Tensor, **kw) -> GreedyPretrainer:
    cfg = GreedyConfig.from_flat(
        {"layers": kw.pop("layers", [12, 8, 3]), "epochs": kw.pop("epochs", 2), "batch_size": 32, **kw}
    )
    return GreedyPretrainer(cfg).fit(x)


def test_decoder_weights_are_encoder_transposed():
    x = _pixels()
    stack = _stack(x, top_activation="linear")
    model = unroll(stack)
    n = len(stack.layers_)
    for k, layer in enumerate(stack.layers_):
        dec = model.decoder[2 * (n - 1 - k)]
        torch.testing.assert_close(model.encoder[2 * k].weight, layer.encoder.weight, rtol=0, atol=0)
        torch.testing.assert_close(dec.weight, layer.encoder.weight.t(), rtol=0, atol=0)
        torch.testing.assert_close(dec.bias, layer.decoder_bias, rtol=0, atol=0)
    assert [type(m) for m in model.encoder] == [nn.Linear, nn.Sigmoid, nn.Linear, nn.Sigmoid, nn.Linear, nn.Identity]
    assert model.decoder_activations == ["sigmoid", "sigmoid", "sigmoid"]


@pytest.mark.parametrize("objective, tied", [("autoencoder", True), ("autoencoder", False), ("rbm", True)])
def test_unrolled_model_reconstructs_like_the_stack(objective, tied):
    x = _pixels()
    stack = _stack(x, top_activation="linear", tied=tied, objective=objective)
    expected = stack.reconstruct(x)
    assert squared_error_per_image(x, expected) > 0.1  # a real, imperfect reconstruction
    torch.testing.assert_close(unroll(stack).reconstruct(x), expected)
    if not tied:
        dec = unroll(stack).decoder[-2]
        torch.testing.assert_close(dec.weight, stack.layers_[0].decoder_weight, rtol=0, atol=0)


def test_unroll_from_checkpoint_matches_unroll_from_pretrainer():
    x = _pixels()
    stack = _stack(x, top_activation="linear")
    ckpt = stack_checkpoint(stack, {"name": "blobs"})
    torch.testing.assert_close(unroll(ckpt).reconstruct(x), unroll(stack).reconstruct(x), rtol=0, atol=0)


def test_mse_layers_unroll_to_linear_decoder_outputs():
    x = 3 * torch.randn(150, 10, generator=torch.Generator().manual_seed(1))  # not in [0, 1]: auto picks mse
    stack = _stack(x, layers=[6, 3], activation="tanh", top_activation="linear")
    model = unroll(stack)
    assert model.decoder_activations == ["linear", "linear"]  # both layers' inputs are outside [0, 1]
    torch.testing.assert_close(model.reconstruct(x), stack.reconstruct(x))


def test_gaussian_visible_rbm_unrolls_to_a_linear_raw_unit_output():
    x = 3 * torch.randn(150, 10, generator=torch.Generator().manual_seed(1)) + 5
    stack = _stack(x, layers=[6, 3], objective="rbm", top_activation="linear", visible="gaussian", lr=0.01)
    assert [h.loss for h in stack.history_] == ["gaussian", "bernoulli"]
    model = unroll(stack)
    assert model.decoder_activations == ["sigmoid", "linear"]
    torch.testing.assert_close(model.reconstruct(x), stack.reconstruct(x))


def test_unroll_rejects_an_unfitted_stack_and_other_objects():
    with pytest.raises(PretrainError, match="not fully trained"):
        unroll(GreedyPretrainer(GreedyConfig(layers=[4])))
    with pytest.raises(PretrainError, match="stack checkpoint"):
        unroll({"state_dict": {}})


def test_linear_autoencoder_reaches_pca_error_on_a_linear_subspace():
    g = torch.Generator().manual_seed(0)
    d, rank, code = 12, 4, 2
    basis, _ = torch.linalg.qr(torch.randn(d, rank, generator=g))
    scales = torch.tensor([3.0, 2.0, 1.0, 0.5])
    x = (torch.randn(500, rank, generator=g) * scales) @ basis.T + torch.randn(d, generator=g)
    pca = PCA.fit(x, code)
    pca_error = squared_error_per_image(x, pca.reconstruct(x))
    assert pca_error == pytest.approx(1.0**2 + 0.5**2, rel=0.15)  # the two discarded variances

    model = random_autoencoder([d, 6, code], ["linear", "linear"], ["linear", "linear"], g)
    cfg = DeepAutoencoderConfig(epochs=40, batch_size=50, lr=1e-2, loss="mse", seed=0)
    tuner = DeepAutoencoderTrainer(model, cfg).fit(x)
    ae_error = squared_error_per_image(x, tuner.model.reconstruct(x))
    assert pca_error <= ae_error * 1.001  # PCA is optimal among rank-2 linear reconstructions
    assert ae_error <= 1.03 * pca_error


def test_finetuning_lowers_the_error_and_is_deterministic():
    x = _pixels(256)
    stack = _stack(x, top_activation="linear")
    before = squared_error_per_image(x, unroll(stack).reconstruct(x))
    cfg = DeepAutoencoderConfig(epochs=5, batch_size=32, lr=3e-3, seed=3)
    a = DeepAutoencoderTrainer(unroll(stack), cfg).fit(x, x[:64])
    b = DeepAutoencoderTrainer(unroll(stack), cfg).fit(x, x[:64])
    after = squared_error_per_image(x, a.model.reconstruct(x))
    assert after < 0.7 * before
    assert a.history.train_loss == b.history.train_loss
    assert len(a.history.val_error) == 5


def test_finetuner_resume_matches_an_uninterrupted_run():
    x = _pixels(128)
    model = random_autoencoder([16, 8, 3], ["sigmoid", "linear"], mirrored_activations(["sigmoid", "linear"]))
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = DeepAutoencoderConfig(epochs=4, batch_size=32, optimizer="sgd", lr=0.1, seed=1)
    full = DeepAutoencoderTrainer(model, cfg).fit(x)

    fresh = random_autoencoder([16, 8, 3], ["sigmoid", "linear"], ["sigmoid", "sigmoid"])
    fresh.load_state_dict(state0)
    saved = {}

    def stop_after_two(t: DeepAutoencoderTrainer) -> None:
        if len(t.history.train_loss) == 2:
            saved.update(t.state_dict())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        DeepAutoencoderTrainer(fresh, cfg).fit(x, on_epoch=stop_after_two)
    resumed = DeepAutoencoderTrainer.from_state_dict(saved).fit(x)
    assert resumed.history.train_loss == full.history.train_loss
    torch.testing.assert_close(resumed.model.state_dict(), full.model.state_dict(), rtol=0, atol=0)


def test_cross_entropy_needs_a_sigmoid_output_and_unit_data():
    model = random_autoencoder([4, 2], ["linear"], ["linear"])
    with pytest.raises(PretrainError, match="sigmoid output"):
        DeepAutoencoderTrainer(model, DeepAutoencoderConfig(epochs=1)).fit(torch.rand(8, 4))
    model = random_autoencoder([4, 2], ["linear"], ["sigmoid"])
    with pytest.raises(PretrainError, match=r"\[0, 1\]"):
        DeepAutoencoderTrainer(model, DeepAutoencoderConfig(epochs=1)).fit(torch.randn(8, 4))
    with pytest.raises(PretrainError, match="unknown loss"):
        DeepAutoencoderConfig(loss="hinge")


def test_pca_metric_and_shapes():
    x = torch.rand(50, 6, generator=torch.Generator().manual_seed(0))
    pca = PCA.fit(x, 6)
    torch.testing.assert_close(pca.reconstruct(x), x, atol=1e-5, rtol=0)  # all components: exact
    assert PCA.fit(x, 2).transform(x).shape == (50, 2)
    assert squared_error_per_image(torch.zeros(2, 3), torch.ones(2, 3)) == 3.0
    with pytest.raises(PretrainError):
        PCA.fit(x, 7)


def test_state_dicts_load_into_plain_sequentials():
    model = random_autoencoder([10, 6, 2], ["sigmoid", "linear"], ["sigmoid", "sigmoid"])
    enc = nn.Sequential(nn.Linear(10, 6), nn.Sigmoid(), nn.Linear(6, 2))
    enc.load_state_dict(model.encoder.state_dict(), strict=False)  # Identity has no parameters
    x = torch.rand(5, 10)
    torch.testing.assert_close(enc(x), model.encoder(x))
    dec = build_mlp(2, [6, 10], None, ["sigmoid", "sigmoid"])
    dec.load_state_dict(model.decoder.state_dict())
    rebuilt = DeepAutoencoder.from_state(model.spec(), model.encoder.state_dict(), model.decoder.state_dict())
    torch.testing.assert_close(rebuilt(x), model(x))


# ---------------------------------------------------------------------------------- the CLI
def _cli(*args):
    from pretrain import autoencoder

    return autoencoder.main([*map(str, args)])


def test_cli_trains_saves_and_prints_the_test_error(blobs_npz, tmp_path, capsys):
    out = tmp_path / "ae.pt"
    common = ["--data", blobs_npz, "--val-size", 20, "--epochs", 1, "--finetune-epochs", 2, "--quiet"]
    assert _cli("--layers", 8, 2, *common, "--output", out) == 0
    text = capsys.readouterr().out
    assert "test squared error per image" in text
    ckpt = load_checkpoint(out)
    meta = ckpt["metadata"]
    assert meta["sizes"] == [16, 8, 2] and meta["init"] == "pretrained"
    encoder = nn.Sequential(nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 2), nn.Identity())
    encoder.load_state_dict(ckpt["encoder"])
    decoder = build_mlp(2, [8, 16], None, meta["decoder_activations"])
    decoder.load_state_dict(ckpt["decoder"])
    x = torch.rand(4, 16)
    model = DeepAutoencoder.from_state(meta, ckpt["encoder"], ckpt["decoder"])
    torch.testing.assert_close(decoder(encoder(x)), model(x))
    assert meta["test_error"] == pytest.approx(float(text.split("test squared error per image:")[1].split()[0]), 1e-3)
    assert not list(tmp_path.glob("*.resume.pt"))


def test_cli_random_start_and_existing_stack(blobs_npz, tmp_path, capsys):
    common = ["--data", blobs_npz, "--val-size", 20, "--finetune-epochs", 1, "--quiet"]
    assert _cli("--layers", 8, 2, *common, "--init", "random", "--output", tmp_path / "r.pt") == 0
    assert load_checkpoint(tmp_path / "r.pt")["metadata"]["init"] == "random"
    stack = GreedyPretrainer(GreedyConfig(layers=[8, 2], epochs=1)).fit(_pixels())
    from pretrain.checkpoint import save_atomic

    save_atomic(stack_checkpoint(stack, {"name": "x"}), tmp_path / "s.pt")
    assert _cli("--layers", 8, 2, *common, "--stack", tmp_path / "s.pt", "--output", tmp_path / "u.pt") == 0
    assert load_checkpoint(tmp_path / "u.pt")["metadata"]["init"] == "pretrained"


def test_cli_resume_continues_interrupted_finetuning(blobs_npz, tmp_path, monkeypatch):
    import pretrain.autoencoder as ae

    out = tmp_path / "ae.pt"
    args = ["--layers", 8, 2, "--data", blobs_npz, "--val-size", 20, "--epochs", 1, "--finetune-epochs", 3]
    args += ["--quiet", "--output", out]
    assert _cli(*args) == 0
    full = load_checkpoint(out)
    out.unlink()
    real_save = ae.save_atomic

    def save_then_interrupt(obj, path):
        real_save(obj, path)
        if str(path).endswith(".resume.pt") and len(obj["state_dict"]["history"]["train_loss"]) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ae, "save_atomic", save_then_interrupt)
    assert _cli(*args) == 130
    assert (tmp_path / "ae.resume.pt").is_file() and not out.exists()
    monkeypatch.setattr(ae, "save_atomic", real_save)
    assert _cli(*args, "--finetune-lr", 0.5, "--resume") == 2  # other settings: refused
    assert _cli(*args, "--resume") == 0
    resumed = load_checkpoint(out)
    assert resumed["metadata"]["history"]["train_loss"] == full["metadata"]["history"]["train_loss"]
    torch.testing.assert_close(resumed["encoder"], full["encoder"], rtol=0, atol=0)
    assert not (tmp_path / "ae.resume.pt").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", 8, 0], "not positive"),
        (["--layers", 8, "--finetune-loss", "hinge"], "invalid choice"),
        (["--layers", 8, "--data", "missing.npz"], "not found"),
        (["--layers", 8, "--resume"], "nothing to resume"),
        (["--layers", 8, "--stack", "nope.pt"], "not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys, blobs_npz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--data" not in args:
        args = [*args, "--data", blobs_npz]
    try:
        code = _cli(*args, "--output", tmp_path / "o.pt", "--quiet")
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("o*.pt"))


def _other_stack(path, layers, d=16):
    stack = GreedyPretrainer(GreedyConfig(layers=layers, epochs=1)).fit(torch.rand(40, d))
    from pretrain.checkpoint import save_atomic

    save_atomic(stack_checkpoint(stack, {"name": "x"}), path)
    return path


DIVERGING_FINETUNE = ["--finetune-optimizer", "sgd", "--finetune-lr", "1e30"]


# One case per stage that can fail; each must leave no file and no folder behind, the pretrained
# <output>.stack.pt included (it is written before fine-tuning starts).
@pytest.mark.parametrize(
    "stage, args, message",
    [
        ("pretraining", ["--optimizer", "sgd", "--lr", "1e30"], "loss became"),
        ("unroll", ["--stack", "{tmp}/s8-3.pt"], "the stack has layers"),
        ("data", ["--stack", "{tmp}/s9.pt"], "inputs, the data has"),
        ("fine-tune loss", ["--loss", "mse", "--finetune-loss", "cross-entropy"], "sigmoid output"),
        ("fine-tune divergence", ["--loss", "mse", "--finetune-loss", "mse", *DIVERGING_FINETUNE], "became"),
    ],
)
def test_cli_exit_2_at_any_stage_leaves_nothing_behind(stage, args, message, blobs_npz, tmp_path, capsys):
    _other_stack(tmp_path / "s8-3.pt", [8, 3])
    _other_stack(tmp_path / "s9.pt", [8, 2], d=9)
    before = set(tmp_path.rglob("*"))
    out = tmp_path / "new" / "deeper" / "ae.pt"
    args = [a.format(tmp=tmp_path) for a in args]
    common = ["--data", blobs_npz, "--val-size", 20, "--epochs", 1, "--finetune-epochs", 2, "--quiet"]
    assert _cli("--layers", 8, 2, *common, *args, "--output", out) == 2, stage
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert set(tmp_path.rglob("*")) == before, stage


def test_cli_failure_keeps_a_stack_it_did_not_write(blobs_npz, tmp_path, capsys):
    out = tmp_path / "ae.pt"
    common = ["--layers", 8, 2, "--data", blobs_npz, "--val-size", 20, "--epochs", 1, "--quiet", "--output", out]
    assert _cli(*common, "--finetune-epochs", 1) == 0
    stack_file = out.with_suffix(".stack.pt")
    assert stack_file.is_file()  # a successful run keeps its stack beside the checkpoint
    out.unlink()
    # a rerun that resumes from that stack and then diverges must not delete it
    assert _cli(*common, "--resume", "--finetune-loss", "mse", *DIVERGING_FINETUNE) == 2
    assert stack_file.is_file() and not out.exists()
