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

A path ending in ``.safetensors`` holds the same dict in the pickle-free safetensors format, which
every writer and reader here picks by the suffix:

- ``state_dict`` tensors under their plain keys, so ``safetensors.torch.load_file(path)`` is a
  state dict for ``model.load_state_dict(..., strict=False)`` as it stands;
- the other tensors under ``<entry>.<name>`` (a dict, e.g. ``encoder.0.weight``) or
  ``<entry>.<k>.<name>`` (a list of dicts, e.g. ``decoders.0.bias``), which ``load_state_dict``
  reports as unexpected keys and never loads into a model;
- ``metadata`` as the file's string metadata, which the Hugging Face loaders (transformers,
  huggingface_hub) accept: ``format`` is ``"pt"`` (they refuse any other), the checkpoint's own format
  is ``pretrain.format``, a string value is stored as it is (``meta["objective"] == "rbm"``), and any
  other value as JSON under its name plus ``.json`` (``json.loads(meta["sizes.json"])``);
  ``pretrain.layout.json`` names the dict and list entries, so reading gives back the same dict.
  Files written before this layout (every value JSON-encoded, ``pretrain.layout``) still read.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import safetensors.torch
import torch
from safetensors import safe_open

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
    """``torch.save(obj)`` to ``path`` atomically (see ``atomic_write``); safetensors for a ``.safetensors`` path."""
    if Path(path).suffix == SAFETENSORS:
        data = _to_safetensors(obj)  # before the file is opened: a bad dict leaves the old file as it is
        return atomic_write(path, lambda f: f.write(data))
    return atomic_write(path, lambda f: torch.save(obj, f))


SAFETENSORS = ".safetensors"
_LAYOUT = "pretrain.layout.json"  # metadata entry naming the dict and list entries besides state_dict
_OLD_LAYOUT = "pretrain.layout"  # files written before metadata values were plain strings
_FORMAT = "pretrain.format"  # the checkpoint's own ``format``; the file's ``format`` is "pt"
_JSON = ".json"  # suffix of a metadata key whose value is JSON (anything but a string)


def _to_safetensors(obj: dict) -> bytes:
    """The bytes of ``obj`` (state_dict, metadata and dict / list-of-dict tensor entries) as safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, int | None] = {}

    def put(prefix: str, part) -> None:
        if not isinstance(part, dict):
            raise PretrainError(f"cannot write {prefix or 'state_dict'} to a {SAFETENSORS} file: not a dict of tensors")
        for name, t in part.items():
            key = f"{prefix}{name}"
            if not isinstance(t, torch.Tensor) or key in tensors:
                why = "a duplicate key" if key in tensors else f"a {type(t).__name__}, not a tensor"
                raise PretrainError(f"cannot write {key!r} to a {SAFETENSORS} file: {why}")
            # safetensors refuses views and shared storage: every tensor gets its own contiguous copy
            tensors[key] = t.detach().cpu().clone(memory_format=torch.contiguous_format)

    for entry, value in obj.items():
        if entry == "state_dict":
            put("", value)
        elif entry != "metadata":
            layout[entry] = len(value) if isinstance(value, list) else None
            for k, part in enumerate(value) if isinstance(value, list) else [(None, value)]:
                put(f"{entry}.{'' if k is None else f'{k}.'}", part)
    metadata = {"format": "pt", _LAYOUT: json.dumps(layout)}
    for k, v in obj.get("metadata", {}).items():
        key = _FORMAT if k == "format" else k if isinstance(v, str) else f"{k}{_JSON}"
        if key in metadata or k.endswith(_JSON) or k in (_FORMAT, _OLD_LAYOUT):
            raise PretrainError(f"cannot write metadata entry {k!r} to a {SAFETENSORS} file: a reserved name")
        metadata[key] = v if isinstance(v, str) else json.dumps(v)
    return safetensors.torch.save(tensors, metadata)


def _metadata(header: dict[str, str]) -> tuple[dict, dict]:
    """``(metadata, layout)`` from a file's string metadata (raises KeyError, ValueError, TypeError)."""
    if _OLD_LAYOUT in header:  # the earlier layout: every value JSON-encoded, no "pt" format
        return {k: json.loads(v) for k, v in header.items() if k != _OLD_LAYOUT}, json.loads(header[_OLD_LAYOUT])
    layout = json.loads(header[_LAYOUT])
    metadata = {}
    for k, v in header.items():
        if k == _FORMAT:
            metadata["format"] = v
        elif k.endswith(_JSON) and k != _LAYOUT:
            metadata[k[: -len(_JSON)]] = json.loads(v)
        elif k not in ("format", _LAYOUT):
            metadata[k] = v
    return metadata, layout


def _from_safetensors(path: Path) -> dict:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no mapping)
    except Exception as err:  # truncated, or not a safetensors file at all
        raise PretrainError(f"cannot load checkpoint {path}: {_first_line(err)}") from None
    try:
        metadata, layout = _metadata(header)
    except (KeyError, ValueError, TypeError):
        raise PretrainError(
            f"{path} is not a pretrain checkpoint (no pretrain metadata); safetensors.torch.load_file reads its tensors"
        ) from None
    obj: dict = {"state_dict": {}, "metadata": metadata}
    for entry, n in layout.items():
        obj[entry] = [{} for _ in range(n)] if n is not None else {}
    for key, t in tensors.items():
        entry, _, rest = key.partition(".")
        if entry not in layout:
            obj["state_dict"][key] = t
        elif layout[entry] is None:
            obj[entry][rest] = t
        else:
            k, _, name = rest.partition(".")
            obj[entry][int(k)][name] = t
    return obj


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def write_json(path: str | Path, obj) -> Path:
    """``obj`` as indented JSON at ``path``, atomically; NaN and infinities are written as null."""
    return write_text(path, json.dumps(_finite(obj), indent=2, default=str) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) at ``path``, atomically: tables, Markdown reports."""
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
    """Read any checkpoint with ``weights_only=True``: a pickle that runs code is refused.

    A ``.safetensors`` file is read without pickle and gives the same dict (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainError(f"checkpoint not found: {path}")
    if path.suffix == SAFETENSORS:
        return _from_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a checkpoint, or an unsafe pickle
        raise PretrainError(f"cannot load checkpoint {path}: {_first_line(err)}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "metadata" not in obj:
        raise PretrainError(f"{path} is not a pretrain checkpoint (no state_dict and metadata)")
    return obj
