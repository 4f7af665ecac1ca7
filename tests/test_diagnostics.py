"""Diagnostics: the initialization tutorial's qualitative facts on its 100-50-50-50-50-50 network, and hook hygiene."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pretrain.diagnostics import diagnose, health_warnings, hidden_layers, row_spread, sci
from pretrain.errors import PretrainError
from pretrain.mlp import build_mlp

from .conftest import make_blobs


def seed_net(activation: str, init, depth: int = 5, seed: int = 0) -> nn.Sequential:
    """The initialization tutorial's network: 100 inputs, ``depth`` hidden layers of 50, biases 0."""
    g = torch.Generator().manual_seed(seed)
    model = build_mlp(100, [50] * depth, None, activation)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                init(m.weight, g)
                m.bias.zero_()
    return model


def seed_input(n: int = 1000, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 100, generator=torch.Generator().manual_seed(seed))


SMALL = lambda w, g: nn.init.normal_(w, 0.0, 0.01, generator=g)  # noqa: E731
LARGE = lambda w, g: nn.init.normal_(w, 0.0, 1.0, generator=g)  # noqa: E731
XAVIER = lambda w, g: nn.init.xavier_uniform_(w, generator=g)  # noqa: E731
HE = lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)  # noqa: E731


@pytest.mark.parametrize("seed", [0, 1])
def test_tanh_small_weights_vanish(seed):
    r = diagnose(seed_net("tanh", SMALL, seed=seed), seed_input(seed=seed + 10))
    assert r.layers[4].std < 1e-3 * r.layers[0].std
    assert any("activations vanish" in w for w in health_warnings(r))


@pytest.mark.parametrize("seed", [0, 1])
def test_tanh_unit_normal_weights_saturate_every_layer(seed):
    r = diagnose(seed_net("tanh", LARGE, seed=seed), seed_input(seed=seed + 10))
    assert all(s.saturated > 0.5 for s in r.layers)
    assert sum("saturated" in w for w in health_warnings(r)) == 5


@pytest.mark.parametrize("seed", [0, 1])
def test_tanh_xavier_keeps_std(seed):
    r = diagnose(seed_net("tanh", XAVIER, seed=seed), seed_input(seed=seed + 10))
    stds = [s.std for s in r.layers]
    assert max(stds) / min(stds) < 3
    assert health_warnings(r) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_he_keeps_second_moment(seed):
    r = diagnose(seed_net("relu", HE, seed=seed), seed_input(seed=seed + 10))
    moments = [s.second_moment for s in r.layers]
    assert max(moments) / min(moments) < 3
    assert health_warnings(r) == []


def test_zeros_stay_symmetric_after_training():
    """Zero start, 200 SGD steps on blobs: hidden rows identical, yet the network did learn (head rows differ)."""
    x, y = (torch.from_numpy(a) for a in make_blobs(n=240, d=16, classes=3))
    model = build_mlp(16, [8, 8], 3, "sigmoid")
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for _, lin, _, _ in hidden_layers(model):
        scale = float(lin.weight.detach().abs().max())
        assert scale > 1e-6  # the hidden weights did move (slowly), all together
        assert row_spread(lin) <= 1e-6 * scale  # identical rows (exactly 0 here; float round-off at most)
    assert row_spread(model[4]) > 1e-2  # the head's rows differ: output units see different labels
    warnings = health_warnings(diagnose(model, x, y))
    assert "all units identical: symmetric start (every layer)" in warnings


def test_hooks_removed_and_model_untouched():
    model = seed_net("tanh", XAVIER)
    model.append(nn.Linear(50, 3))
    model.train()
    x = seed_input(64)
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out_before = model(x).detach()
    model[2].weight.requires_grad_(False)  # a partly frozen model: its flags must survive
    r = diagnose(model, x, y)
    assert r.loss_name == "cross-entropy" and all(s.weight_grad_norm > 0 for s in r.layers)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not getattr(m, "_backward_pre_hooks", None)
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == [True, True, False] + [True] * 9
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(model(x).detach(), out_before)


def test_gradient_norms_match_autograd():
    model = seed_net("sigmoid", XAVIER, depth=2)
    model.append(nn.Linear(50, 4))
    x = seed_input(32)
    y = torch.arange(32) % 4
    r = diagnose(model, x, y, loss="cross-entropy")
    x_leaf = x.clone().requires_grad_(True)
    h1 = model[1](model[0](x_leaf))
    h1.retain_grad()
    loss = nn.functional.cross_entropy(model[4](model[3](model[2](h1))), y)
    loss.backward()
    assert r.loss == pytest.approx(loss.item(), rel=1e-6)
    assert r.layers[0].input_grad_norm == pytest.approx(float(x_leaf.grad.norm()), rel=1e-5)
    assert r.layers[1].input_grad_norm == pytest.approx(float(h1.grad.norm()), rel=1e-5)
    assert r.layers[0].weight_grad_norm == pytest.approx(float(model[0].weight.grad.norm()), rel=1e-5)
    assert r.layers[1].weight_grad_norm == pytest.approx(float(model[2].weight.grad.norm()), rel=1e-5)


def test_exact_counts_dead_and_saturated():
    relu = nn.Sequential(nn.Linear(4, 10), nn.ReLU())
    tanh = nn.Sequential(nn.Linear(4, 10), nn.Tanh())
    sig = nn.Sequential(nn.Linear(4, 10), nn.Sigmoid())
    with torch.no_grad():
        for m in (relu, tanh, sig):
            m[0].weight.fill_(0.01)
            m[0].bias.zero_()
            m[0].bias[:4] = -100.0  # 4 of 10 units: dead ReLU, saturated tanh/sigmoid
    x = torch.rand(20, 4)
    assert diagnose(relu, x).layers[0].dead == pytest.approx(0.4)
    assert diagnose(relu, x).layers[0].saturated is None
    assert diagnose(tanh, x).layers[0].saturated == pytest.approx(0.4)
    assert diagnose(sig, x).layers[0].saturated == pytest.approx(0.4)
    assert diagnose(tanh, x).layers[0].dead is None
    assert "layer 1: 40% dead ReLUs" in health_warnings(diagnose(relu, x))


def test_histogram_and_nested_sequential():
    model = nn.Sequential(
        nn.Flatten(), nn.Sequential(nn.Linear(100, 50), nn.Tanh()), nn.Dropout(0.0), nn.Linear(50, 30), nn.Tanh()
    )
    r = diagnose(model, seed_input(200), loss=None)
    assert [s.n_units for s in r.layers] == [50, 30]
    assert sum(r.layers[0].hist_counts) == 200 * 50
    assert r.layers[0].hist_edges[0] == -1.0 and r.layers[0].hist_edges[-1] == 1.0
    assert r.layers[0].weight_grad_norm is None and r.loss is None


def test_bad_models_and_data():
    with pytest.raises(PretrainError, match="no hidden layer"):
        diagnose(nn.Sequential(nn.Linear(3, 2)), torch.randn(5, 3))
    with pytest.raises(PretrainError, match="plain MLPs"):
        diagnose(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.ReLU()), torch.randn(5, 3))
    with pytest.raises(PretrainError, match="does not fit"):
        diagnose(build_mlp(3, [2]), torch.randn(5, 4))
    with pytest.raises(PretrainError, match="labels"):
        diagnose(build_mlp(3, [2], 2), torch.randn(5, 3), loss="cross-entropy")


def test_sci():
    assert sci(3e-5) == "3e-5" and sci(1e6) == "1e6" and sci(0.0) == "0"
