import math

import pytest
import torch
from torch import nn

from pretrain.classifier import START_SCHEMES, start
from pretrain.errors import PretrainError
from pretrain.finetuning import FinetuneConfig, finetune
from pretrain.init import DEFAULT_CONSTANT, INIT_SCHEMES, LSUV_TOL, initialize
from pretrain.mlp import build_mlp

from .conftest import make_blobs

FAN_IN, FAN_OUT = 400, 300

# scheme -> the variance of its weights by formula
VARIANCE = {
    "small-normal": 0.01**2,
    "large-normal": 1.0,
    "xavier-uniform": 2 / (FAN_IN + FAN_OUT),
    "xavier-normal": 2 / (FAN_IN + FAN_OUT),
    "he-uniform": 2 / FAN_IN,
    "he-normal": 2 / FAN_IN,
    "lecun-normal": 1 / FAN_IN,
    "orthogonal": 1 / FAN_IN,  # orthonormal rows of length FAN_IN: mean square 1 / FAN_IN
    "torch-default": 1 / (3 * FAN_IN),  # U(±1/√fan_in)
}
UNIFORM_BOUND = {
    "xavier-uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),
    "he-uniform": math.sqrt(6 / FAN_IN),
    "torch-default": 1 / math.sqrt(FAN_IN),
}


def linear(scheme, seed=0, **kw):
    layer = nn.Linear(FAN_IN, FAN_OUT)
    initialize(layer, scheme, generator=torch.Generator().manual_seed(seed), **kw)
    return layer


def test_every_scheme_is_listed():
    assert set(VARIANCE) | {"zeros", "constant", "lsuv", "pretrained:PATH"} == set(INIT_SCHEMES)
    assert set(START_SCHEMES) == set(INIT_SCHEMES) | {"greedy"}


@pytest.mark.parametrize("scheme", list(VARIANCE))
def test_empirical_variance_matches_the_formula(scheme):
    w = linear(scheme).weight.detach()
    # 120 000 draws: the variance estimate's relative standard error is below 0.5%
    assert w.var().item() == pytest.approx(VARIANCE[scheme], rel=0.03)
    assert w.mean().item() == pytest.approx(0.0, abs=0.02 * math.sqrt(VARIANCE[scheme]))
    if scheme in UNIFORM_BOUND:
        assert w.abs().max().item() <= UNIFORM_BOUND[scheme]
        assert w.abs().max().item() > 0.99 * UNIFORM_BOUND[scheme]


@pytest.mark.parametrize("scheme", [s for s in VARIANCE if s != "torch-default"])
def test_biases_are_zero_except_torch_default(scheme):
    assert torch.count_nonzero(linear(scheme).bias) == 0


def test_torch_default_is_what_nn_linear_does_and_not_he():
    layer = linear("torch-default")
    bound = 1 / math.sqrt(FAN_IN)
    assert layer.bias.abs().max() <= bound and layer.bias.var().item() == pytest.approx(bound**2 / 3, rel=0.35)
    torch.manual_seed(0)
    native = nn.Linear(FAN_IN, FAN_OUT).weight.detach()
    assert native.var().item() == pytest.approx(layer.weight.var().item(), rel=0.03)
    assert layer.weight.var().item() == pytest.approx(VARIANCE["he-uniform"] / 6, rel=0.03)


def test_orthogonal_rows_are_orthonormal():
    w = linear("orthogonal").weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(FAN_OUT), atol=1e-5)


def test_zeros_and_constant():
    assert torch.count_nonzero(linear("zeros").weight) == 0
    assert torch.all(linear("constant").weight == DEFAULT_CONSTANT)
    layer = linear("constant:0.25")
    assert torch.all(layer.weight == 0.25) and torch.count_nonzero(layer.bias) == 0


def test_deterministic_under_the_generator_and_every_linear_is_set():
    a, b, c = (build_mlp(20, [16, 8], 3, "sigmoid") for _ in range(3))
    for model, seed in ((a, 1), (b, 1), (c, 2)):
        initialize(model, "he-normal", generator=torch.Generator().manual_seed(seed))
    for la, lb, lc in zip(a, b, c):
        if isinstance(la, nn.Linear):
            assert torch.equal(la.weight, lb.weight) and not torch.equal(la.weight, lc.weight)
    # He's variance 2 / fan_in on every layer, the head too; layers big enough (>= 20,000 weights, sample
    # variance within ~1%) that Xavier-normal's 2 / (fan_in + fan_out), 1.5-1.75x smaller here, cannot pass
    big = build_mlp(400, [300, 200], 100, "relu")
    initialize(big, "he-normal", generator=torch.Generator().manual_seed(0))
    for layer in (m for m in big if isinstance(m, nn.Linear)):
        assert layer.weight.var().item() == pytest.approx(2 / layer.in_features, rel=0.05)


@pytest.mark.parametrize("bad", ["he", "xavier_uniform", "constant:abc", "constant:nan", "pretrained", "lsuv:3", ""])
def test_unknown_or_malformed_scheme_is_refused(bad):
    with pytest.raises(PretrainError):
        initialize(nn.Linear(3, 2), bad)


@pytest.mark.parametrize("scheme", ["lsuv", "greedy"])
def test_data_driven_schemes_need_data(scheme):
    with pytest.raises(PretrainError, match="data"):
        start(build_mlp(16, [8], 3, "sigmoid"), scheme)


def test_lsuv_gives_unit_output_variance_on_the_batch():
    x = torch.from_numpy(make_blobs(n=300, d=16)[0])
    model = build_mlp(16, [32, 16], 3, "tanh")
    initialize(model, "lsuv", data=x, generator=torch.Generator().manual_seed(0))
    h = x
    for module in model:
        h = module(h)
        if isinstance(module, nn.Linear):
            assert abs(h.var().item() - 1.0) < LSUV_TOL
            assert torch.count_nonzero(module.bias) == 0


def test_greedy_pretrains_hidden_layers_in_place_and_inits_the_head():
    x = torch.from_numpy(make_blobs(n=200, d=16)[0])
    models = [
        nn.Sequential(nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 6), nn.Sigmoid(), nn.Linear(6, 3))
        for _ in range(2)
    ]
    for m in models:
        start(m, "greedy", data=x, generator=torch.Generator().manual_seed(3), greedy={"epochs": 2})
    a, b = models
    for la, lb in zip(a, b):
        if isinstance(la, nn.Linear):
            assert torch.equal(la.weight, lb.weight) and torch.equal(la.bias, lb.bias)
    # the hidden layers were trained (biases moved off the zero start of an autoencoder layer)...
    assert torch.count_nonzero(a[0].bias) > 0 and torch.count_nonzero(a[2].bias) > 0
    # ...and the head has the documented head init: xavier-uniform, zero bias
    assert a[4].weight.abs().max() <= math.sqrt(6 / 9) and torch.count_nonzero(a[4].bias) == 0


def test_greedy_refuses_mixed_hidden_activations():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4), nn.Sigmoid())
    with pytest.raises(PretrainError, match="activations"):
        start(model, "greedy", data=torch.rand(20, 16))


@pytest.mark.parametrize("scheme", ["zeros", "constant", "constant:0.5"])
def test_symmetric_starts_keep_hidden_units_identical(scheme):
    """Units of a layer that start equal get equal gradients, so they never differ."""
    x, y = make_blobs(n=200, d=16, classes=3)
    from pretrain.data import Dataset, Split

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    data = Dataset("blobs", Split(xt[:120], yt[:120]), Split(xt[120:160], yt[120:160]), Split(xt[160:], yt[160:]))
    model = build_mlp(16, [12, 8], 3, "sigmoid")
    initialize(model, scheme)
    before = [model[k].weight.detach().clone() for k in (0, 2)]
    finetune(model, data, FinetuneConfig(lr=0.5, epochs=5, batch_size=16, patience=None))
    for k, first in zip((0, 2), before):
        w = model[k].weight.detach()
        assert not torch.equal(w, first)  # it trained...
        assert torch.allclose(w, w[:1].expand_as(w), rtol=0, atol=1e-6)  # ...yet every row is still the same
        assert torch.allclose(model[k].bias, model[k].bias[:1].expand_as(model[k].bias), rtol=0, atol=1e-6)
    # a random start breaks the symmetry under the same training
    model = build_mlp(16, [12, 8], 3, "sigmoid")
    initialize(model, "xavier-uniform")
    finetune(model, data, FinetuneConfig(lr=0.5, epochs=5, batch_size=16, patience=None))
    assert (model[0].weight - model[0].weight[:1]).abs().max() > 1e-2
