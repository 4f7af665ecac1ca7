"""``.safetensors`` checkpoints: written by the CLIs, read by them, and loadable with nothing but safetensors."""

import json

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from torch import nn

from pretrain import doctor, finetune, stack
from pretrain.checkpoint import load_checkpoint, save_atomic
from pretrain.errors import PretrainError
from pretrain.greedy import GreedyConfig, GreedyPretrainer, stack_checkpoint
from pretrain.mlp import build_mlp, load_classifier

from .conftest import make_blobs


def cli(main, capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def stack_file(blobs_npz, tmp_path, capsys):
    out = tmp_path / "s.safetensors"
    args = ["--layers", 12, 8, "--objective", "rbm", "--data", blobs_npz, "--epochs", 2, "--val-size", 24]
    code, stdout, _ = cli(stack.main, capsys, *args, "--output", out, "--quiet")
    assert code == 0 and f"saved {out}" in stdout
    return out


def test_a_stack_loads_into_a_plain_sequential_with_only_safetensors(stack_file):
    # what a user who never saw this project writes
    model = nn.Sequential(nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 3))
    result = model.load_state_dict(safetensors.torch.load_file(stack_file), strict=False)
    assert result.missing_keys == ["4.weight", "4.bias"]  # only the head
    assert sorted(result.unexpected_keys) == ["decoders.0.bias", "decoders.1.bias"]  # never loaded into the model
    torch.testing.assert_close(model[0].weight, load_checkpoint(stack_file)["state_dict"]["0.weight"])
    with safe_open(stack_file, framework="pt") as f:  # the run's metadata: plain strings, JSON under "<name>.json"
        meta = f.metadata()
    assert meta["format"] == "pt" and meta["pretrain.format"] == "pretrain.stack/1"
    assert meta["objective"] == "rbm" and meta["activation"] == "sigmoid"  # no JSON quotes
    assert json.loads(meta["activations.json"]) == ["sigmoid", "sigmoid"]
    assert json.loads(meta["sizes.json"]) == [16, 12, 8]
    assert json.loads(meta["config.json"])["objective"] == "rbm"
    assert json.loads(meta["input_scaling.json"]) == {"divide_by": 1.0}


def load_like_transformers(path):
    """What transformers' ``load_state_dict`` does with a .safetensors file: refuse any format but pt/tf/flax/mlx."""
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    if metadata is not None and metadata.get("format") not in ["pt", "tf", "flax", "mlx"]:
        raise OSError(f"The safetensors archive passed at {path} does not contain the valid metadata.")
    return safetensors.torch.load_file(path)


def test_hugging_face_loaders_accept_it(stack_file, tmp_path):
    state = load_like_transformers(stack_file)
    assert torch.equal(state["0.weight"], load_checkpoint(stack_file)["state_dict"]["0.weight"])
    refused = tmp_path / "old.safetensors"  # the check really refuses a foreign format
    safetensors.torch.save_file({"w": torch.ones(1)}, refused, metadata={"format": "pretrain.stack/1"})
    with pytest.raises(OSError, match="valid metadata"):
        load_like_transformers(refused)


def test_files_in_the_earlier_metadata_layout_still_read(tmp_path):
    path = tmp_path / "old.safetensors"
    meta = {"format": "pretrain.stack/1", "sizes": [16, 4], "objective": "rbm"}
    header = {k: json.dumps(v) for k, v in meta.items()} | {"pretrain.layout": json.dumps({"decoders": 1})}
    safetensors.torch.save_file({"0.weight": torch.ones(4, 16), "decoders.0.bias": torch.zeros(16)}, path, header)
    back = load_checkpoint(path)
    assert back["metadata"] == meta and torch.equal(back["decoders"][0]["bias"], torch.zeros(16))


def test_same_dict_back_as_from_a_pt_file(tmp_path):
    x = torch.from_numpy(make_blobs()[0]) * 4 - 2  # Gaussian visible units: four decoder tensors in layer 1
    pretrainer = GreedyPretrainer(GreedyConfig([6, 4], objective="rbm", epochs=1)).fit(x)
    ckpt = stack_checkpoint(pretrainer, {"name": "blobs", "scaling": {"divide_by": 1.0}})
    pt, st = (load_checkpoint(save_atomic(ckpt, tmp_path / f"c.{ext}")) for ext in ("pt", "safetensors"))
    assert pt.keys() == st.keys() == {"state_dict", "decoders", "metadata"}
    assert st["state_dict"].keys() == pt["state_dict"].keys()
    for key, value in pt["state_dict"].items():
        assert torch.equal(st["state_dict"][key], value)
    assert [d.keys() for d in st["decoders"]] == [d.keys() for d in pt["decoders"]]
    assert {"input_mean", "input_std", "weight", "raw_bias"} <= st["decoders"][0].keys()
    for a, b in zip(st["decoders"], pt["decoders"]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.dumps(st["metadata"], sort_keys=True) == json.dumps(pt["metadata"], sort_keys=True)  # NaN too


def test_views_shared_tensors_and_other_entries_round_trip(tmp_path):
    w = torch.randn(3, 4)
    ckpt = {
        "state_dict": {"0.weight": w.t()},
        "encoder": {"0.weight": w.t()},
        "extra": [{}, {"b": w[0]}],
        "metadata": {"format": "x/1", "name": "a", "n": 3, "nothing": None, "nested": {"a": [1.5]}},
    }
    back = load_checkpoint(save_atomic(ckpt, tmp_path / "c.safetensors"))
    assert torch.equal(back["state_dict"]["0.weight"], w.t()) and torch.equal(back["encoder"]["0.weight"], w.t())
    assert back["extra"][0] == {} and torch.equal(back["extra"][1]["b"], w[0])
    assert back["metadata"] == ckpt["metadata"]
    with pytest.raises(PretrainError, match="reserved name"):
        save_atomic({"state_dict": {}, "metadata": {"n.json": "x"}}, tmp_path / "bad.safetensors")
    with pytest.raises(PretrainError, match="not a tensor"):
        save_atomic({"state_dict": {"0.weight": [1.0]}, "metadata": {}}, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_finetune_and_doctor_read_it_and_the_classifier_can_be_safetensors(stack_file, blobs_npz, tmp_path, capsys):
    out = tmp_path / "clf.safetensors"
    args = ["--init", f"pretrained:{stack_file}", "--data", blobs_npz, "--val-size", 40, "--output", out, "--quiet"]
    code, stdout, err = cli(finetune.main, capsys, *args)
    assert code == 0, err
    assert out.with_suffix(".json").is_file()
    model, meta = load_classifier(out)
    assert meta["sizes"] == [16, 12, 8] and meta["activations"] == ["sigmoid", "sigmoid"]
    plain = build_mlp(16, [12, 8], 3)  # a classifier file has no decoders: strict loading works
    plain.load_state_dict(safetensors.torch.load_file(out))
    x = torch.from_numpy(make_blobs()[0])
    torch.testing.assert_close(plain(x), model(x))
    for path in (stack_file, out):
        code, stdout, err = cli(doctor.main, capsys, "--checkpoint", path, "--data", blobs_npz, "--examples", 50)
        assert code in (0, 1) and f"checkpoint {path}" in stdout, err


def test_truncated_and_foreign_files_exit_2_with_one_line(stack_file, blobs_npz, tmp_path, capsys):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(stack_file.read_bytes()[:-100])
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"embed.weight": torch.ones(2, 2)}, foreign)  # someone else's weights
    pickled = tmp_path / "pickle.safetensors"
    torch.save({"state_dict": {}}, pickled)
    for path, message in ((cut, "cannot load checkpoint"), (foreign, "not a pretrain checkpoint"), (pickled, "cannot")):
        for main, args in (
            (finetune.main, ["--init", f"pretrained:{path}", "--data", blobs_npz, "--output", tmp_path / "o.pt"]),
            (doctor.main, ["--checkpoint", path]),
        ):
            code, _, err = cli(main, capsys, *args)
            assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (path, err)
    assert not (tmp_path / "o.pt").exists()


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_atomic({"state_dict": {"0.weight": torch.ones(2, 2)}, "metadata": {"v": 1}}, path)

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr("pretrain.checkpoint.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"state_dict": {"0.weight": torch.zeros(2, 2)}, "metadata": {"v": 2}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["metadata"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left behind
