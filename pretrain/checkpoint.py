"""Files written and read safely: the one atomic writer (checkpoints, JSON, results) and the checkpoint reader.

A stack checkpoint is a dict of plain types and tensors, readable with
``torch.load(path, weights_only=True)``:

- ``state_dict``: encoder weights under the keys of a plain ``nn.Sequential`` of alternating
  ``nn.Linear`` and activation modules (``0.weight``, ``0.bias``, ``2.weight``, ...), so
  ``model.load_state_dict(ckpt["state_dict"], strict=False)`` loads the hidden layers of a
  classifier and leaves only its head missing;
- ``decoders``: per layer, the decoder (visible) bias and any untied decoder weight; a
  Gaussian-visible RBM layer adds its input standardisation ``input_mean``/``input_std`` (already
  folded into its ``state_dict`` weights, so the model takes unstandardised inputs) and ``raw_bias``;
- ``metadata``: format, layer sizes, activation(s) (one per layer), objective, every hyperparameter, input
  scaling, data set, seed, per-layer losses and timings, torch and package versions.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from .errors import PretrainError


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A run killed mid-write leaves the old file (or none), never a truncated one. Every file
    this project writes goes through here.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_atomic(obj: dict, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def write_json(path: str | Path, obj) -> Path:
    """``obj`` as indented JSON at ``path``, atomically; NaN and infinities are written as null."""
    text = json.dumps(_finite(obj), indent=2, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | Path) -> None:
    """Raise ``PretrainError`` unless a file can be created at ``path``; nothing is left behind.

    Tries it for real (creating missing folders and a temporary file, then removing both), since
    permission bits say nothing about read-only or virtual file systems, or to root.
    """
    path = Path(path)
    if path.is_dir():
        raise PretrainError(f"output path {path} is a directory; give a file name such as {path}/out.pt")
    created: list[Path] = []
    try:
        for d in reversed(path.parents):
            if not d.exists():
                d.mkdir()
                created.append(d)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise PretrainError(f"cannot write the output file {path}: {err.strerror or err}") from None
    finally:
        for d in reversed(created):
            d.rmdir()


def load_checkpoint(path: str | Path) -> dict:
    """Read any checkpoint with ``weights_only=True``: a pickle that runs code is refused."""
    path = Path(path)
    if not path.is_file():
        raise PretrainError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a checkpoint, or an unsafe pickle
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PretrainError(f"cannot load checkpoint {path}: {first}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "metadata" not in obj:
        raise PretrainError(f"{path} is not a pretrain checkpoint (no state_dict and metadata)")
    return obj
