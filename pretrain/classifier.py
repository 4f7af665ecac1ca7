"""Ready-to-train classifiers: an MLP started by a named initializer, a stack checkpoint, or greedy
layer-wise pretraining run in place on data.

``greedy`` is a start that trains, so it lives here, above both the initializers (``pretrain.init``)
and the trainer (``pretrain.greedy``); the initializers never import a trainer.
"""

from __future__ import annotations

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .errors import PretrainError
from .greedy import GreedyConfig, GreedyPretrainer
from .init import INIT_SCHEMES, init_head, initialize, parse_scheme
from .mlp import build_mlp, checkpoint_activations, checkpoint_layers, load_pretrained, mlp_layers

# every start make_classifier and the commands accept: the initializers, and greedy before pretrained:PATH
START_SCHEMES: tuple[str, ...] = (*INIT_SCHEMES[:-1], "greedy", INIT_SCHEMES[-1])


@torch.no_grad()
def start(
    model: nn.Module,
    scheme: str,
    *,
    generator: torch.Generator | None = None,
    data: torch.Tensor | None = None,
    greedy: dict | None = None,
) -> nn.Module:
    """Start ``model`` in place with ``scheme`` (any of ``START_SCHEMES``); return ``model``.

    ``greedy`` pretrains the hidden layers on ``data`` (``(N, D)`` inputs) with ``GreedyPretrainer``,
    sizes and activations read off the model, and gives the head ``HEAD_INIT``; ``greedy`` (the
    argument) overrides ``GreedyConfig`` settings (``epochs``, ``lr``, ``objective``, ...), flat as
    ``GreedyConfig.from_flat`` takes them. Every other scheme is ``pretrain.init.initialize``.
    """
    name, _ = parse_scheme(scheme, START_SCHEMES)
    if name != "greedy":
        return initialize(model, scheme, generator=generator, data=data)
    in_features = next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features
    if data is None:
        raise PretrainError("init 'greedy' is data-driven: give it a batch of inputs (N, D)")
    if data.ndim != 2 or data.shape[1] != in_features:
        raise PretrainError(f"init 'greedy': data has shape {tuple(data.shape)}, the model takes {in_features} inputs")
    _greedy(model, data, generator if generator is not None else torch.Generator().manual_seed(0), greedy or {})
    return model


def _greedy(model: nn.Module, data: torch.Tensor, g: torch.Generator, overrides: dict) -> None:
    hidden, _ = mlp_layers(model)
    if not hidden:
        raise PretrainError("init 'greedy': the model has no hidden layer below its head")
    acts = [layer.activation for layer in hidden]
    if len(set(acts[:-1])) > 1:
        raise PretrainError(f"init 'greedy': hidden activations {acts} differ below the top layer; not supported")
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    cfg = GreedyConfig.from_flat(
        {
            "layers": [layer.linear.out_features for layer in hidden],
            "activation": acts[0],
            "top_activation": acts[-1],
            "seed": seed,
            **overrides,
        }
    )
    with torch.enable_grad():
        pretrainer = GreedyPretrainer(cfg, hidden[0].linear.weight.device).fit(data)
    for layer, fitted in zip(hidden, pretrainer.layers_):
        layer.linear.weight.copy_(fitted.encoder.weight)
        if layer.linear.bias is not None:
            layer.linear.bias.copy_(fitted.encoder.bias)
    init_head(model, g)


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
    name, arg = parse_scheme(init, START_SCHEMES)
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
        model = build_mlp(n_in, hidden, n_classes, activation)
        load_pretrained(model, ckpt)
        init_head(model, generator)
        info.update(input_scaling=dict(meta.get("input_scaling", {"divide_by": 1.0})), pretrained=meta)
    else:
        hidden = [500, 250, 100] if hidden is None else list(hidden)
        activation = "sigmoid" if activation is None else activation
        model = build_mlp(n_in, hidden, n_classes, activation)
        start(model, init, generator=generator, data=data, greedy=greedy)
    acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    info.update(sizes=[n_in, *hidden], activations=acts)
    return model, info
