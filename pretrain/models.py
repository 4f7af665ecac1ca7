"""Plain ``nn.Sequential`` MLPs: the architecture every checkpoint exports to."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "linear": nn.Identity,
}


def activation_module(name: str) -> nn.Module:
    """The ``nn.Module`` for an activation name (``linear`` is ``nn.Identity``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}") from None


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
        raise ValueError(f"{len(activations)} activations given for {len(hidden)} hidden layers")
    modules: list[nn.Module] = []
    sizes = [n_in, *hidden]
    for fan_in, fan_out, act in zip(sizes, sizes[1:], activations):
        modules += [nn.Linear(fan_in, fan_out), activation_module(act)]
    if n_out is not None:
        modules.append(nn.Linear(sizes[-1], n_out))
    return nn.Sequential(*modules)
