"""Classifiers from stacks: build the plain MLP, load a checkpoint into any such model, check input scaling.

A "such model" is any ``nn.Module`` whose leaf modules, in registration order (the forward
order of an ``nn.Sequential``), are ``nn.Linear`` layers each followed by an activation
(``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``, ``nn.Identity`` or none), optionally ending in a
bare ``nn.Linear`` head. ``nn.Dropout`` between layers is allowed. A hand-written

>>> model = nn.Sequential(nn.Linear(784, 500), nn.Sigmoid(), nn.Linear(500, 250), nn.Sigmoid(),
...                       nn.Linear(250, 100), nn.Sigmoid(), nn.Linear(100, 10))
>>> load_pretrained(model, "checkpoints/mnist-autoencoder-sigmoid-500-250-100.pt")

loads the three hidden layers and leaves the head as it was.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .data import Dataset, Split
from .errors import PretrainError
from .models import ACTIVATIONS, build_mlp

CLASSIFIER_FORMAT = "pretrain.classifier/1"
# Keys of ``metadata["input_scaling"]`` this version understands; any other key is refused.
SCALING_KEYS = ("divide_by", "mean", "std")
_IGNORED = (nn.Dropout, nn.AlphaDropout)


def build_classifier(n_in: int, hidden: list[int], n_classes: int, activation: str | list[str]) -> nn.Sequential:
    """``Linear, act, ..., Linear, act, Linear(hidden[-1], n_classes)``; hidden layer k is ``model[2k]``.

    ``activation``: one name for every hidden layer, or one per hidden layer.
    """
    try:
        return build_mlp(n_in, list(hidden), n_classes, activation)
    except ValueError as err:  # unknown activation, or not one per layer
        raise PretrainError(str(err)) from None


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if not list(m.children()) and not isinstance(m, _IGNORED)]


def _activation_name(module: nn.Module) -> str | None:
    for name, cls in ACTIVATIONS.items():
        if type(module) is cls:
            return name
    return None


def layer_structure(model: nn.Module) -> tuple[list[tuple[str, nn.Linear, str]], tuple[str, nn.Linear] | None]:
    """``(hidden, head)``: every hidden ``(name, Linear, activation)`` in order, and the head or None.

    A ``Linear`` with no module after it before the next ``Linear`` counts as ``linear``; the
    last ``Linear`` is the head when nothing follows it. An unknown module after a ``Linear``
    (e.g. ``nn.GELU``) is reported by its class name.
    """
    leaves = _leaves(model)
    layers: list[tuple[str, nn.Linear, str | None]] = []
    for i, (name, m) in enumerate(leaves):
        if not isinstance(m, nn.Linear):
            continue
        after = leaves[i + 1][1] if i + 1 < len(leaves) else None
        if after is None:
            layers.append((name, m, None))
        elif isinstance(after, nn.Linear):
            layers.append((name, m, "linear"))
        else:
            layers.append((name, m, _activation_name(after) or type(after).__name__))
    if not layers:
        raise PretrainError(f"{type(model).__name__} has no nn.Linear layer")
    head = None
    if layers[-1][2] is None:
        name, m, _ = layers.pop()
        head = (name, m)
    return [(n, m, a) for n, m, a in layers], head


def hidden_layers(model: nn.Module) -> list[tuple[str, nn.Linear, str]]:
    """The hidden ``(name, Linear, activation)`` of ``model``, bottom first (head excluded)."""
    return layer_structure(model)[0]


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
    hidden, model_head = layer_structure(model)
    arch = "→".join(str(w.shape[1]) for w, _ in layers[:1]) + "".join(f"→{w.shape[0]}" for w, _ in layers[:n_hidden])
    if len(hidden) != n_hidden:
        raise PretrainError(
            f"{where} holds {n_hidden} hidden layers ({arch}), but the model has {len(hidden)} "
            f"hidden nn.Linear layers ({', '.join(f'{n}: {_shape(m.weight)}' for n, m, _ in hidden) or 'none'})"
        )
    acts = checkpoint_activations(meta, n_hidden)
    targets = [(n, m) for n, m, _ in hidden]
    sources = layers[:n_hidden]
    if head:
        if len(layers) != n_hidden + 1 or model_head is None:
            raise PretrainError(f"{where} has no classifier head to load, or the model has none")
        targets.append(model_head)
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
    for k, (name, _, act) in enumerate(hidden):
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
        return Split((s.x - mean.to(s.x.device)) / std.to(s.x.device), s.y)

    scaling = {**dataset.scaling, "mean": input_scaling["mean"], "std": input_scaling["std"]}
    return Dataset(
        dataset.name, scale(dataset.train), scale(dataset.val), scale(dataset.test), scaling, dataset.image_shape
    )


def make_classifier(
    init: str,
    *,
    n_in: int,
    n_classes: int,
    hidden: list[int] | None = None,
    activation: str | list[str] | None = None,
    seed: int = 0,
    data: torch.Tensor | None = None,
    greedy: dict | None = None,
) -> tuple[nn.Sequential, dict]:
    """Build the MLP and initialize it with ``init`` under a generator seeded by ``seed``.

    For ``pretrained:PATH`` the sizes and activations default to the checkpoint's, and a
    ``hidden``/``activation``/``n_in`` that differ from it are refused. Returns ``(model, info)``
    with ``info``: ``init``, ``sizes``, ``activations``, ``input_scaling`` (None unless pretrained)
    and the checkpoint's metadata under ``pretrained``.
    """
    from .init import init_head, initialize, parse_scheme

    name, arg = parse_scheme(init)
    generator = torch.Generator().manual_seed(seed)
    info: dict = {"init": init, "input_scaling": None, "pretrained": None}
    if name == "pretrained":
        ckpt = load_checkpoint(arg)
        meta = ckpt["metadata"] if isinstance(ckpt.get("metadata"), dict) else {}
        layers = checkpoint_layers(ckpt)
        sizes = meta.get("sizes") or [layers[0][0].shape[1], *(w.shape[0] for w, _ in layers)]
        ck_hidden = list(sizes[1:])
        ck_acts = checkpoint_activations(meta, len(ck_hidden))
        if sizes[0] != n_in:
            raise PretrainError(f"{arg} was pretrained on {sizes[0]} inputs, but the data has {n_in} features")
        if hidden is not None and list(hidden) != ck_hidden:
            raise PretrainError(f"{arg} holds layers {ck_hidden}, not the --layers {list(hidden)} asked for")
        if activation is not None:
            asked = [activation] * len(ck_hidden) if isinstance(activation, str) else list(activation)
            if asked != ck_acts:
                raise PretrainError(f"{arg} was pretrained with activations {ck_acts}, not {asked}")
        hidden, activation = ck_hidden, ck_acts
        model = build_classifier(n_in, hidden, n_classes, activation)
        load_pretrained(model, ckpt)
        init_head(model, generator)
        info.update(input_scaling=dict(meta.get("input_scaling", {"divide_by": 1.0})), pretrained=meta)
    else:
        hidden = [500, 250, 100] if hidden is None else list(hidden)
        activation = "sigmoid" if activation is None else activation
        model = build_classifier(n_in, hidden, n_classes, activation)
        initialize(model, init, generator=generator, data=data, greedy=greedy)
    acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    info.update(sizes=[n_in, *hidden], activations=acts)
    return model, info


def load_classifier(path: str | Path) -> tuple[nn.Sequential, dict]:
    """Rebuild a fine-tuned classifier saved by ``pretrain.finetune``; return ``(model, metadata)``."""
    ckpt = load_checkpoint(path)
    meta = ckpt["metadata"]
    if meta.get("format") != CLASSIFIER_FORMAT:
        raise PretrainError(f"{path} is not a fine-tuned classifier (format {meta.get('format')!r})")
    sizes = meta["sizes"]
    model = build_classifier(sizes[0], sizes[1:], meta["n_classes"], meta["activations"])
    load_pretrained(model, ckpt, head=True)
    return model.eval(), meta
