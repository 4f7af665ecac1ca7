import re

import numpy as np
import pytest
import torch

from pretrain.data import Split, load_dataset, write_packaged_mnist
from pretrain.errors import PretrainError

from .conftest import make_blobs, write_idx


def test_npz_file_is_split_into_train_val_test(blobs_npz):
    d = load_dataset(str(blobs_npz), val_size=0.1)
    assert (len(d.train), len(d.val), len(d.test)) == (192, 24, 24)
    assert d.train.x.dtype == torch.float32 and d.train.x.shape[1] == 16
    assert d.train.y.dtype == torch.int64 and d.n_classes == 3
    assert d.image_shape == (4, 4) and d.scaling == {"divide_by": 1.0}
    # the three splits partition the file's rows
    x, _ = make_blobs()
    rows = torch.cat([d.train.x, d.val.x, d.test.x]).numpy()
    assert sorted(map(tuple, rows)) == sorted(map(tuple, x))


def test_split_does_not_depend_on_anything_but_split_seed(blobs_npz):
    a, b = load_dataset(str(blobs_npz), val_size=20), load_dataset(str(blobs_npz), val_size=20)
    assert torch.equal(a.val.x, b.val.x)
    c = load_dataset(str(blobs_npz), val_size=20, split_seed=1)
    assert not torch.equal(a.val.x, c.val.x)


def rows(*splits) -> list[tuple]:
    """Every example of ``splits`` as one sortable tuple (label first, then features)."""
    out = []
    for s in splits:
        labels = s.y.tolist() if s.y is not None else [None] * len(s)
        out += [(label, *x) for label, x in zip(labels, s.x.tolist())]
    return sorted(out, key=lambda r: tuple(-1 if v is None else v for v in r))


def test_pt_file_with_uint8_pixels_is_scaled(tmp_path):
    x = torch.randint(0, 256, (50, 9), dtype=torch.uint8)
    x[0, 0], x[1, 1] = 0, 255
    torch.save({"X": x}, tmp_path / "px.pt")
    d = load_dataset(str(tmp_path / "px.pt"), val_size=5)
    assert d.scaling == {"divide_by": 255.0} and d.train.y is None and d.image_shape == (3, 3)
    assert rows(d.train, d.val, d.test) == rows(Split(x.float() / 255.0))  # exactly raw / 255


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_uint8_files_give_exactly_raw_over_255_with_their_labels(tmp_path, suffix):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (40, 4), dtype=np.uint8), rng.integers(0, 5, 40)
    x_test, y_test = rng.integers(0, 256, (10, 4), dtype=np.uint8), rng.integers(0, 5, 10)
    x[0] = 255  # the top value maps to exactly 1.0
    path = tmp_path / f"px{suffix}"
    if suffix == ".npz":
        np.savez(path, X=x, y=y, X_test=x_test, y_test=y_test)
    else:
        torch.save({k: torch.from_numpy(v) for k, v in dict(X=x, y=y, X_test=x_test, y_test=y_test).items()}, path)
    d = load_dataset(str(path), val_size=8)
    expected = Split(torch.from_numpy(x).float() / 255.0, torch.from_numpy(y))
    assert rows(d.train, d.val) == rows(expected)
    assert torch.equal(d.test.x, torch.from_numpy(x_test).float() / 255.0)
    assert torch.equal(d.test.y, torch.from_numpy(y_test))
    assert float(d.train.x.max()) == 1.0 or float(d.val.x.max()) == 1.0


def test_named_mnist_reads_idx_files_from_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    pixels, labels = {}, {}
    for prefix, n in (("train", 300), ("t10k", 100)):
        pixels[prefix] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        pixels[prefix][0, 0, :2] = (0, 255)
        labels[prefix] = rng.integers(0, 10, n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels[prefix])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[prefix])
    d = load_dataset("mnist", tmp_path, val_size=50)
    assert (len(d.train), len(d.val), len(d.test)) == (250, 50, 100)
    assert d.n_features == 784 and d.image_shape == (28, 28) and d.scaling == {"divide_by": 255.0}

    def split(prefix):
        x = torch.from_numpy(pixels[prefix].reshape(-1, 784)).float() / 255.0
        return Split(x, torch.from_numpy(labels[prefix].astype(np.int64)))

    assert torch.equal(d.test.x, split("t10k").x) and torch.equal(d.test.y, split("t10k").y)  # in file order
    assert rows(d.train, d.val) == rows(split("train"))


@pytest.mark.parametrize(
    "content, message",
    [
        ({"X": np.zeros((4, 2, 2), np.float32)}, "shape (N, D)"),
        ({"X": np.array([[0.0, np.nan]] * 4, np.float32)}, "NaN"),
        ({"Y": np.zeros((4, 2), np.float32)}, "'X'"),
        ({"X": np.zeros((4, 2), np.float32), "y": np.zeros(3, np.int64)}, "labels"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, content, message):
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(PretrainError, match=re.escape(message)):
        load_dataset(str(tmp_path / "bad.npz"))


def test_missing_unreadable_and_unknown_inputs(tmp_path):
    with pytest.raises(PretrainError, match="not found"):
        load_dataset(str(tmp_path / "nope.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(PretrainError, match="cannot read"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(PretrainError, match="unknown data set"):
        load_dataset("cifar-99")


def test_packaged_mnist_is_written_as_canonical_idx(tmp_path):
    write_packaged_mnist(tmp_path)
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert sizes == {
        "train-images-idx3-ubyte": 47040016,
        "train-labels-idx1-ubyte": 60008,
        "t10k-images-idx3-ubyte": 7840016,
        "t10k-labels-idx1-ubyte": 10008,
    }
    labels = np.frombuffer((tmp_path / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test digits


def test_mnist_into_a_data_dir_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PretrainError, match="could not"):
        load_dataset("mnist", tmp_path / "file")
