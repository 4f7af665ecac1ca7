"""Plain ``nn.Sequential`` MLPs, the architecture every checkpoint exports to: build one, walk its
layers, and load a checkpoint's layers into any such model.

A "such model" is any ``nn.Module`` whose leaf modules, in registration order (the forward
order of an ``nn.Sequential``), are ``nn.Linear`` layers each followed by an activation
(``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``, ``nn.Identity`` or none), optionally ending in a
bare ``nn.Linear`` head. ``nn.Dropout`` and ``nn.Flatten`` are allowed anywhere. A hand-written

>>> model = nn.Sequential(nn.Linear(784, 500), nn.Sigmoid(), nn.Linear(500, 250), nn.Sigmoid(),
...                       nn.Linear(250, 100), nn.Sigmoid(), nn.Linear(100, 10))
>>> load_pretrained(model, "checkpoints/mnist-autoencoder-sigmoid-500-250-100.pt")

loads the three hidden layers and leaves the head as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .errors import PretrainError

CLASSIFIER_FORMAT = "pretrain.classifier/1"

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "linear": nn.Identity,
}
# Activations the walker recognises in hand-written models (only ACTIVATIONS can be built here).
_KNOWN = {
    **ACTIVATIONS,
    "leaky-relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "hardtanh": nn.Hardtanh,
}
_TRANSPARENT = (nn.Dropout, nn.AlphaDropout, nn.Flatten)


def activation_module(name: str) -> nn.Module:
    """The ``nn.Module`` for an activation name (``linear`` is ``nn.Identity``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise PretrainError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}") from None


def activation_name(module: nn.Module) -> str | None:
    """``tanh``, ``sigmoid``, ``relu``, ... for an activation module; ``None`` for anything else."""
    for name, cls in _KNOWN.items():
        if type(module) is cls:
            return name
    return None


def build_mlp(
    n_in: int, hidden: list[int], n_out: int | None = None, activation: str | list[str] = "sigmoid"
) -> nn.Sequential:
    """``Linear, act, Linear, act, ..., [Linear]``: hidden layer k is ``model[2k]``.

    ``activation`` is one name for every hidden layer, or a list with one name per layer.
    With ``n_out`` a final linear head (no activation) is appended, e.g. for
    ``build_mlp(784, [500, 250, 100], 10)`` the head is ``model[6]``.
    """
    activations = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    if len(activations) != len(hidden):
        raise PretrainError(f"{len(activations)} activations given for {len(hidden)} hidden layers")
    modules: list[nn.Module] = []
    sizes = [n_in, *hidden]
    for fan_in, fan_out, act in zip(sizes, sizes[1:], activations):
        modules += [nn.Linear(fan_in, fan_out), activation_module(act)]
    if n_out is not None:
        modules.append(nn.Linear(sizes[-1], n_out))
    return nn.Sequential(*modules)


class Layer(NamedTuple):
    """One ``nn.Linear`` of an MLP and what follows it."""

    name: str  # the Linear's module name, e.g. "2"
    linear: nn.Linear
    act: nn.Module | None  # the module after it (None: another Linear follows, a linear layer)
    activation: str  # the activation's name (see ACTIVATIONS), or the class name of an unknown module


def mlp_layers(model: nn.Module) -> tuple[list[Layer], Layer | None]:
    """``(hidden, head)``: every hidden layer in forward order, and the head (a last bare Linear) or None.

    A ``Linear`` followed directly by another counts as ``linear``. A module that neither is a
    ``Linear`` nor follows one (a normalisation between a Linear and its activation, a
    convolution, ...) raises ``PretrainError``: this walk is for plain MLPs.
    """
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children()) and not isinstance(m, _TRANSPARENT)]
    layers: list[Layer] = []
    head = None
    for i, (name, m) in enumerate(leaves):
        if isinstance(m, nn.Linear):
            after = leaves[i + 1][1] if i + 1 < len(leaves) else None
            if after is None:
                head = Layer(name, m, None, "linear")
            elif isinstance(after, nn.Linear):
                layers.append(Layer(name, m, None, "linear"))
            else:
                layers.append(Layer(name, m, after, activation_name(after) or type(after).__name__))
        elif i == 0 or not isinstance(leaves[i - 1][1], nn.Linear):
            raise PretrainError(f"plain MLPs only (Linear, activation, ...): found {type(m).__name__}")
    if not layers and head is None:
        raise PretrainError(f"{type(model).__name__} has no nn.Linear layer")
    return layers, head


def checkpoint_layers(ckpt: dict) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The checkpoint's ``(weight, bias)`` per layer, ordered by the integer key prefix.

    Only the first ``len(metadata["sizes"]) - 1`` layers count as hidden layers; a fine-tuned
    classifier's head (stored after them) is returned too, last.
    """
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in ckpt["state_dict"].items():
        prefix, _, param = key.rpartition(".")
        if not prefix.isdigit() or param not in ("weight", "bias") or not isinstance(value, torch.Tensor):
            raise PretrainError(f"checkpoint state_dict has an unexpected entry {key!r}")
        by_index.setdefault(int(prefix), {})[param] = value
    layers = []
    for idx in sorted(by_index):
        entry = by_index[idx]
        if "weight" not in entry or entry["weight"].ndim != 2:
            raise PretrainError(f"checkpoint layer {idx} has no 2-d weight")
        layers.append((entry["weight"], entry.get("bias")))
    return layers


def checkpoint_activations(metadata: dict, n_layers: int) -> list[str]:
    """One activation per hidden layer (older checkpoints store a single ``activation``)."""
    acts = metadata.get("activations") or [metadata.get("activation", "sigmoid")] * n_layers
    return list(acts)


def _as_checkpoint(checkpoint: str | Path | dict) -> tuple[dict, str]:
    if isinstance(checkpoint, dict):
        return checkpoint, "checkpoint"
    return load_checkpoint(checkpoint), str(checkpoint)


def _shape(t) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


@torch.no_grad()
def load_pretrained(model: nn.Module, checkpoint: str | Path | dict, *, head: bool = False) -> dict:
    """Copy a checkpoint's hidden layers into ``model``'s hidden ``nn.Linear`` layers; return its metadata.

    The model must have exactly as many hidden layers as the checkpoint, of the same shapes and
    activations; its head (if any) is left as it is, unless ``head=True`` and the checkpoint
    (a fine-tuned classifier) carries one. Any mismatch raises ``PretrainError`` naming the
    layer and both shapes. The file is read with ``weights_only=True``.
    """
    ckpt, where = _as_checkpoint(checkpoint)
    meta = ckpt["metadata"] if isinstance(ckpt.get("metadata"), dict) else {}
    layers = checkpoint_layers(ckpt)
    sizes = meta.get("sizes")
    n_hidden = len(sizes) - 1 if isinstance(sizes, list) and len(sizes) > 1 else len(layers)
    if n_hidden > len(layers):
        raise PretrainError(f"{where}: metadata lists {n_hidden} layers, its state_dict has {len(layers)}")
    hidden, model_head = mlp_layers(model)
    arch = "→".join(str(w.shape[1]) for w, _ in layers[:1]) + "".join(f"→{w.shape[0]}" for w, _ in layers[:n_hidden])
    if len(hidden) != n_hidden:
        raise PretrainError(
            f"{where} holds {n_hidden} hidden layers ({arch}), but the model has {len(hidden)} "
            f"hidden nn.Linear layers ({', '.join(f'{n}: {_shape(m.weight)}' for n, m, _, _ in hidden) or 'none'})"
        )
    acts = checkpoint_activations(meta, n_hidden)
    targets = [(n, m) for n, m, _, _ in hidden]
    sources = layers[:n_hidden]
    if head:
        if len(layers) != n_hidden + 1 or model_head is None:
            raise PretrainError(f"{where} has no classifier head to load, or the model has none")
        targets.append(model_head[:2])
        sources = layers[: n_hidden + 1]
    for k, ((name, linear), (w, b)) in enumerate(zip(targets, sources)):
        if linear.weight.shape != w.shape:
            what = "inputs" if k == 0 and linear.weight.shape[0] == w.shape[0] else "shape"
            extra = (
                f" (pretrained on {w.shape[1]} inputs, the model takes {linear.in_features})"
                if what == "inputs"
                else ""
            )
            raise PretrainError(
                f"layer {k + 1} (module {name!r}): checkpoint weight has shape {_shape(w)}, "
                f"the model's nn.Linear has {_shape(linear.weight)}{extra}"
            )
        if (b is None) != (linear.bias is None) or (b is not None and b.shape != linear.bias.shape):
            got = "none" if linear.bias is None else _shape(linear.bias)
            raise PretrainError(
                f"layer {k + 1} (module {name!r}): checkpoint bias is {'none' if b is None else _shape(b)}, "
                f"the model's is {got}"
            )
    for k, (name, _, _, act) in enumerate(hidden):
        if act != acts[k]:
            raise PretrainError(
                f"layer {k + 1} (module {name!r}) is followed by {act}, "
                f"but the checkpoint was pretrained with {acts[k]}"
            )
    for (_, linear), (w, b) in zip(targets, sources):
        linear.weight.copy_(w)
        if b is not None:
            linear.bias.copy_(b)
    return meta


def load_classifier(path: str | Path) -> tuple[nn.Sequential, dict]:
    """Rebuild a fine-tuned classifier saved by ``pretrain.finetune``; return ``(model, metadata)``."""
    ckpt = load_checkpoint(path)
    meta = ckpt["metadata"]
    if meta.get("format") != CLASSIFIER_FORMAT:
        raise PretrainError(f"{path} is not a fine-tuned classifier (format {meta.get('format')!r})")
    sizes = meta["sizes"]
    model = build_mlp(sizes[0], sizes[1:], meta["n_classes"], meta["activations"])
    load_pretrained(model, ckpt, head=True)
    return model.eval(), meta


def model_from_checkpoint(ckpt: dict) -> nn.Sequential:
    """The ``nn.Sequential`` a checkpoint describes, its weights loaded: a stack, or a classifier with its head.

    Activations come from the metadata (one per hidden layer); a last layer beyond them is a head.
    """
    layers = checkpoint_layers(ckpt)
    meta = ckpt["metadata"] if isinstance(ckpt.get("metadata"), dict) else {}
    n_hidden = len(meta["sizes"]) - 1 if isinstance(meta.get("sizes"), list) else len(layers)
    acts = checkpoint_activations(meta, n_hidden)[: len(layers)]
    for a in acts:
        if a not in ACTIVATIONS:
            raise PretrainError(f"checkpoint names an unknown activation {a!r}")
    modules: list[nn.Module] = []
    for k, (w, b) in enumerate(layers):
        linear = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            linear.weight.copy_(w)
            if b is not None:
                linear.bias.copy_(b)
        modules.append(linear)
        if k < len(acts):
            modules.append(activation_module(acts[k]))
    return nn.Sequential(*modules)
