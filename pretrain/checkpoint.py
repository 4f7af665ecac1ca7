"""The checkpoint format: one ``torch.save`` file per stack, atomic to write, safe to read.

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

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .errors import PretrainError
from .greedy import GreedyPretrainer

FORMAT = "pretrain.stack/1"


def stack_checkpoint(pretrainer: GreedyPretrainer, data: dict) -> dict:
    """The exported checkpoint dict of a fitted stack. ``data``: name, scaling, image shape."""
    cfg = pretrainer.config
    histories = [
        {
            "n_in": h.n_in,
            "n_out": h.n_out,
            "loss": h.loss,
            "train_loss": list(h.train_loss),
            "val_loss": list(h.val_loss),
            "seconds": h.seconds,
            "samples_per_s": h.samples_per_s,
            "diagnostics": [dict(d) for d in h.diagnostics],
        }
        for h in pretrainer.history_
    ]
    return {
        "state_dict": pretrainer.state_dict_sequential(),
        "decoders": [layer.decoder_state() for layer in pretrainer.layers_],
        "metadata": {
            "format": FORMAT,
            "sizes": [pretrainer.history_[0].n_in, *cfg.layers],
            "activation": cfg.activation,
            "activations": cfg.activations,
            "objective": cfg.objective,
            "config": asdict(cfg),
            "seed": cfg.seed,
            "data": dict(data),
            "input_scaling": dict(data.get("scaling", {"divide_by": 1.0})),
            "layers": histories,
            "versions": {"torch": str(torch.__version__), "pretrain": __version__},
        },
    }


def save_atomic(obj: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A run killed mid-write leaves the old file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | Path) -> None:
    """Raise ``PretrainError`` unless a file can be created at ``path`` (nothing is left behind)."""
    path = Path(path)
    if path.is_dir():
        raise PretrainError(f"output path {path} is a directory; give a file name such as {path}/stack.pt")
    parent = path.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise PretrainError(f"cannot write the output file {path}: {existing} is not a writable directory")


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
