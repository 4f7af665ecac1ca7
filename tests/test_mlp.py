from pathlib import Path

import pytest
import torch
from torch import nn

from pretrain.checkpoint import save_atomic
from pretrain.classifier import make_classifier
from pretrain.data import Dataset, Split, apply_input_scaling, check_input_scaling
from pretrain.errors import PretrainError
from pretrain.greedy import GreedyConfig, GreedyPretrainer, stack_checkpoint
from pretrain.mlp import build_mlp, load_pretrained, mlp_layers

from .conftest import make_blobs


@pytest.fixture(scope="module")
def stack_path(tmp_path_factory) -> Path:
    """A real 16→8→4 sigmoid stack checkpoint written by the greedy trainer."""
    x = torch.from_numpy(make_blobs(n=120, d=16)[0])
    p = GreedyPretrainer(GreedyConfig(layers=[8, 4], epochs=1, batch_size=32)).fit(x)
    path = tmp_path_factory.mktemp("ck") / "stack.pt"
    save_atomic(stack_checkpoint(p, {"name": "blobs", "scaling": {"divide_by": 1.0}}), path)
    return path


def hand_written(n_in=16, h1=8, h2=4, act2=nn.Sigmoid):
    return nn.Sequential(nn.Linear(n_in, h1), nn.Sigmoid(), nn.Linear(h1, h2), act2(), nn.Linear(h2, 3))


def test_build_classifier_is_the_plain_sequential():
    model = build_mlp(784, [500, 250, 100], 10, "relu")
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU"] * 3 + ["Linear"]
    assert model(torch.rand(2, 784)).shape == (2, 10)
    hidden, head = mlp_layers(model)
    assert [(layer.name, layer.activation) for layer in hidden] == [
        ("0", "relu"),
        ("2", "relu"),
        ("4", "relu"),
    ] and head.name == "6"
    with pytest.raises(PretrainError, match="activation"):
        build_mlp(5, [4], 2, "swish")


def test_a_hand_written_sequential_loads_a_checkpoint_with_one_call(stack_path):
    model = hand_written()
    head = model[4].weight.detach().clone()
    meta = load_pretrained(model, stack_path)
    sd = torch.load(stack_path, weights_only=True)["state_dict"]
    for key in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert torch.equal(model.state_dict()[key], sd[key])
    assert torch.equal(model[4].weight, head)  # the head is left alone
    assert meta["sizes"] == [16, 8, 4]


def test_loading_skips_dropout_and_works_without_a_head(stack_path):
    model = nn.Sequential(nn.Linear(16, 8), nn.Sigmoid(), nn.Dropout(0.1), nn.Linear(8, 4), nn.Sigmoid())
    load_pretrained(model, stack_path)
    sd = torch.load(stack_path, weights_only=True)["state_dict"]
    assert torch.equal(model[3].weight, sd["2.weight"])


def test_shape_mismatch_names_the_layer_and_both_shapes(stack_path):
    with pytest.raises(PretrainError) as err:
        load_pretrained(hand_written(h2=5), stack_path)
    msg = str(err.value)
    assert "layer 2" in msg and "'2'" in msg and "(4, 8)" in msg and "(5, 8)" in msg


def test_input_size_mismatch_is_named(stack_path):
    with pytest.raises(PretrainError) as err:
        load_pretrained(hand_written(n_in=20), stack_path)
    msg = str(err.value)
    assert "layer 1" in msg and "(8, 16)" in msg and "(8, 20)" in msg and "16 inputs" in msg


def test_layer_count_mismatch_is_refused(stack_path):
    three = nn.Sequential(nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 4), nn.Sigmoid(), nn.Linear(4, 4), nn.Sigmoid())
    for model in (nn.Sequential(nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 3)), three):
        with pytest.raises(PretrainError, match="hidden layers"):
            load_pretrained(model, stack_path)


def test_activation_mismatch_is_refused(stack_path):
    with pytest.raises(PretrainError, match="layer 2 .*ReLU|layer 2 .*relu"):
        load_pretrained(hand_written(act2=nn.ReLU), stack_path)


class _Touch:
    """Unpickling this runs ``Path(marker).touch()``: code execution, as in a malicious checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_pickle_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "metadata": {"sizes": [16, 8]}, "payload": _Touch(marker)}, path)
    assert not marker.exists()
    with pytest.raises(PretrainError, match="cannot load checkpoint"):
        load_pretrained(hand_written(), path)
    with pytest.raises(PretrainError):
        make_classifier(f"pretrained:{path}", n_in=16, n_classes=3)
    assert not marker.exists()
    # the file really is an exploit: an unsafe load runs the payload
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_and_truncated_checkpoints_are_refused(stack_path, tmp_path):
    with pytest.raises(PretrainError, match="not found"):
        load_pretrained(hand_written(), tmp_path / "none.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(stack_path.read_bytes()[:500])
    with pytest.raises(PretrainError, match="cannot load"):
        load_pretrained(hand_written(), cut)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(PretrainError, match="not a pretrain checkpoint"):
        load_pretrained(hand_written(), plain)


def test_make_classifier_reads_the_architecture_off_the_checkpoint(stack_path):
    model, info = make_classifier(f"pretrained:{stack_path}", n_in=16, n_classes=3, seed=5)
    assert info["sizes"] == [16, 8, 4] and info["activations"] == ["sigmoid", "sigmoid"]
    assert info["input_scaling"] == {"divide_by": 1.0}
    assert torch.count_nonzero(model[4].bias) == 0  # head: documented default init, zero bias
    again, _ = make_classifier(f"pretrained:{stack_path}", n_in=16, n_classes=3, seed=5)
    assert torch.equal(model[4].weight, again[4].weight)  # the head init depends only on the seed
    with pytest.raises(PretrainError, match="holds layers"):
        make_classifier(f"pretrained:{stack_path}", n_in=16, n_classes=3, hidden=[8, 5])
    with pytest.raises(PretrainError, match="16 inputs"):
        make_classifier(f"pretrained:{stack_path}", n_in=784, n_classes=3)
    with pytest.raises(PretrainError, match="activations"):
        make_classifier(f"pretrained:{stack_path}", n_in=16, n_classes=3, activation="relu")


def _data(scaling):
    x = torch.rand(10, 4)
    y = torch.zeros(10, dtype=torch.long)
    return Dataset("d", Split(x, y), Split(x, y), Split(x, y), scaling)


def test_input_scaling_is_checked_and_unknown_keys_are_refused():
    check_input_scaling({"divide_by": 255.0}, {"divide_by": 255.0}, 4)
    with pytest.raises(PretrainError, match="divided by 255"):
        check_input_scaling({"divide_by": 255.0}, {"divide_by": 1.0}, 4)
    with pytest.raises(PretrainError, match="unknown input scaling 'whiten'"):
        check_input_scaling({"divide_by": 1.0, "whiten": True}, {"divide_by": 1.0}, 4)
    with pytest.raises(PretrainError, match="mean and std"):
        check_input_scaling({"mean": [0.0] * 4}, {"divide_by": 1.0}, 4)
    with pytest.raises(PretrainError, match="3 values"):
        check_input_scaling({"mean": [0.0] * 3, "std": [1.0] * 3}, {"divide_by": 1.0}, 4)


def test_standardisation_is_applied():
    data = _data({"divide_by": 1.0})
    mean, std = [0.5, 0.0, 0.25, 1.0], [2.0, 1.0, 0.5, 4.0]
    out = apply_input_scaling(data, {"divide_by": 1.0, "mean": mean, "std": std})
    want = (data.train.x - torch.tensor(mean)) / torch.tensor(std)
    assert torch.allclose(out.train.x, want) and torch.allclose(out.test.x, want)
    assert out.scaling["mean"] == mean
