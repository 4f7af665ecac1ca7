"""Tiny synthetic data shared by the tests: an .npz file and an MNIST-layout IDX folder."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch


def make_blobs(n: int = 240, d: int = 16, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in [0, 1]^d around ``classes`` random prototypes; float32 X, int64 y."""
    rng = np.random.default_rng(seed)
    protos = rng.random((classes, d))
    y = rng.integers(0, classes, n)
    x = np.clip(protos[y] + 0.1 * rng.standard_normal((n, d)), 0, 1).astype(np.float32)
    return x, y.astype(np.int64)


@pytest.fixture
def blobs_npz(tmp_path: Path) -> Path:
    x, y = make_blobs()
    path = tmp_path / "blobs.npz"
    np.savez(path, X=x, y=y)
    return path


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x801 if array.ndim == 1 else 0x803
    path.write_bytes(struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist_dir(tmp_path: Path) -> Path:
    """A data dir holding 300 train and 100 test random 28x28 'digits' in torchvision's MNIST layout."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 300), ("t10k", 100)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    return tmp_path / "data"


def make_digits(root: Path, seed: int = 0, shuffle_test_labels: bool = False) -> Path:
    """400 train and 100 test 28x28 'digits': noisy copies of 10 random prototypes (learnable)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    protos = rng.random((10, 784))
    for prefix, n in (("train", 400), ("t10k", 100)):
        y = rng.integers(0, 10, n)
        x = np.clip(protos[y] + 0.5 * rng.standard_normal((n, 784)), 0, 1) * 255
        if prefix == "t10k" and shuffle_test_labels:
            y = np.random.default_rng(99).permutation(y)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x.reshape(n, 28, 28).astype(np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return root


# The tests use tiny tensors, where a second thread only adds synchronisation overhead.
torch.set_num_threads(1)
