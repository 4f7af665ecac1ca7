"""The supervised greedy objective: a temporary softmax head per layer, thrown away when the layer is done."""

import numpy as np
import pytest
import torch

from pretrain.errors import PretrainError
from pretrain.greedy import GreedyConfig, GreedyPretrainer, stack_checkpoint
from pretrain.mlp import build_mlp
from pretrain.stack import main

from .conftest import make_blobs


@pytest.fixture
def blobs():
    x, y = make_blobs(n=240, d=16, classes=3)
    return torch.from_numpy(x), torch.from_numpy(y)


def fit(x, y, **kw):
    cfg = GreedyConfig(**{"layers": [12, 8, 4], "objective": "supervised", "epochs": 4, "batch_size": 32, **kw})
    return GreedyPretrainer(cfg).fit(x[:200], x[200:], y=y[:200], y_val=y[200:])


def test_each_layer_learns_the_labels_through_its_own_head(blobs):
    x, y = blobs
    p = fit(x, y, lr=1e-2, epochs=8)
    assert p.config.options.n_classes == 3  # inferred from the labels, recorded in the config
    for h in p.history_:
        assert h.loss == "softmax" and h.done and len(h.val_loss) == 8
        assert h.val_loss[-1] < h.val_loss[0] < 2.0  # cross-entropy (nats) on 3 classes falls
    assert p.history_[0].val_loss[-1] < 0.5


def test_lower_layers_stay_frozen_while_upper_layers_train(blobs):
    x, y = blobs
    snapshots = []

    def snapshot(p):
        snapshots.append([layer.encoder.weight.detach().clone() for layer in p.layers_])

    cfg = GreedyConfig(layers=[12, 8], objective="supervised", epochs=3, batch_size=32, lr=1e-2)
    p = GreedyPretrainer(cfg).fit(x, y=y, on_epoch=snapshot)
    first_done = snapshots[2][0]  # after layer 1's last epoch
    for later in snapshots[3:]:  # every epoch of layer 2
        assert torch.equal(later[0], first_done)
    assert not torch.equal(snapshots[3][1], snapshots[5][1])  # while layer 2 itself moves
    assert not p.layers_[0].encoder.weight.requires_grad


def test_the_head_is_discarded_and_only_the_encoders_are_exported(blobs):
    x, y = blobs
    p = fit(x, y)
    assert all(layer.head is None for layer in p.layers_)
    assert not any("head" in name for layer in p.layers_ for name, _ in layer.named_parameters())
    ckpt = stack_checkpoint(p, {"name": "blobs"})
    assert sorted(ckpt["state_dict"]) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    assert ckpt["decoders"] == [{}, {}, {}]
    model = build_mlp(16, [12, 8, 4], 3)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    assert missing == ["6.weight", "6.bias"] and unexpected == []
    with pytest.raises(PretrainError, match="no decoder"):
        p.reconstruct(x)
    # a finished stack reloads (its state has no head) and gives the same codes
    again = GreedyPretrainer.from_state_dict(p.state_dict())
    assert torch.equal(again.transform(x), p.transform(x))


def test_labels_are_required_and_checked(blobs):
    x, y = blobs
    cfg = GreedyConfig(layers=[4], objective="supervised")
    with pytest.raises(PretrainError, match="needs labels"):
        GreedyPretrainer(cfg).fit(x)
    with pytest.raises(PretrainError, match="labels must be integers"):
        GreedyPretrainer(cfg).fit(x, y=y.float())
    # objectives that need no labels ignore them
    p = GreedyPretrainer(GreedyConfig(layers=[4], epochs=1)).fit(x, y=y)
    assert p.history_[0].loss == "cross-entropy"


def test_stack_cli_pretrains_a_supervised_stack_and_refuses_unlabelled_data(blobs_npz, tmp_path, capsys):
    out = tmp_path / "sup.pt"
    args = ["--layers", "8", "4", "--objective", "supervised", "--epochs", "2", "--val-size", "24"]
    assert main([*args, "--data", str(blobs_npz), "--output", str(out), "--figures"]) == 0
    meta = torch.load(out, weights_only=True)["metadata"]
    assert meta["objective"] == "supervised" and meta["config"]["options"] == {"n_classes": 3}
    assert [h["loss"] for h in meta["layers"]] == ["softmax", "softmax"]
    capsys.readouterr()

    unlabelled = tmp_path / "x.npz"
    np.savez(unlabelled, X=make_blobs()[0])
    assert main([*args, "--data", str(unlabelled), "--output", str(tmp_path / "no.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs labels" in err[0] and not (tmp_path / "no.pt").exists()
