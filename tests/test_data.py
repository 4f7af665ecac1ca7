import re

import numpy as np
import pytest
import torch

from pretrain.data import load_dataset, write_packaged_mnist
from pretrain.errors import PretrainError

from .conftest import make_blobs


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


def test_pt_file_with_uint8_pixels_is_scaled(tmp_path):
    x = torch.randint(0, 256, (50, 9), dtype=torch.uint8)
    torch.save({"X": x}, tmp_path / "px.pt")
    d = load_dataset(str(tmp_path / "px.pt"), val_size=5)
    assert d.scaling == {"divide_by": 255.0} and d.train.y is None
    assert float(d.train.x.max()) <= 1.0 and d.image_shape == (3, 3)


def test_named_mnist_reads_idx_files_from_data_dir(tiny_mnist_dir):
    d = load_dataset("mnist", tiny_mnist_dir, val_size=50)
    assert (len(d.train), len(d.val), len(d.test)) == (250, 50, 100)
    assert d.n_features == 784 and d.image_shape == (28, 28)
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) <= 1.0


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
