"""The fast training paths compute what the plain ones do: hand-written gradients, weighted losses, batching."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.data import Dataset, Split
from pretrain.finetuning import FinetuneConfig, batch_loss, evaluate, finetune
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers import AutoencoderLayer
from pretrain.training import LinearChain, linear, optimizer_step

from .conftest import make_blobs


def blobs(n=300):
    x, y = (torch.from_numpy(a) for a in make_blobs(n=n, d=16, classes=3))
    a, b = int(0.6 * n), int(0.8 * n)
    return Dataset("blobs", Split(x[:a], y[:a]), Split(x[a:b], y[a:b]), Split(x[b:], y[b:]))


def net(*acts, seed=0):
    torch.manual_seed(seed)
    sizes = [16, 12, 9, 7][: len(acts) + 1] + [3]
    mods = []
    for i, act in enumerate(acts):
        mods += [nn.Linear(sizes[i], sizes[i + 1]), act()]
    return nn.Sequential(*mods, nn.Linear(sizes[len(acts)], 3))


def autograd_grads(model, x, y, w=None):
    model.zero_grad(set_to_none=True)
    loss = batch_loss(model(x), y, w)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("acts", [(nn.Sigmoid,), (nn.ReLU, nn.Tanh), (nn.Sigmoid, nn.Identity, nn.ReLU), ()])
@pytest.mark.parametrize("weighted", [False, True])
def test_linear_chain_gradients_equal_autograd(acts, weighted):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(20, 16, generator=g), torch.randint(0, 3, (20,), generator=g)
    w = torch.rand(20, generator=g) if weighted else None
    model = net(*acts)
    want_loss, want = autograd_grads(model, x, y, w)
    chain = LinearChain.of(model)
    assert chain is not None
    loss, logits = chain.gradients(x, y, w, None if w is None else float(w.sum()))
    assert torch.allclose(loss, want_loss, atol=1e-6) and torch.allclose(logits, model(x).detach(), atol=1e-6)
    for got, ref in zip((p.grad for p in model.parameters()), want):
        assert torch.allclose(got, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 0.0), (0.5, 0.01), (0.0, 0.001)])
def test_linear_chain_sgd_step_is_torch_sgd(momentum, weight_decay):
    g = torch.Generator().manual_seed(3)
    fast, ref = net(nn.Sigmoid, nn.ReLU), net(nn.Sigmoid, nn.ReLU)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    chain, buffers = LinearChain.of(fast), {}
    for step in range(5):
        x, y = torch.rand(16, 16, generator=g), torch.randint(0, 3, (16,), generator=g)
        lr = 0.1 / (1 + step)  # the schedule changes the rate every step
        for group in opt.param_groups:
            group["lr"] = lr
        loss, _ = autograd_grads(ref, x, y)
        opt.step()
        fast_loss, _ = chain.sgd_step(x, y, None, None, lr, momentum, weight_decay, buffers)
        assert torch.allclose(fast_loss, loss, atol=1e-6)
    for a, b in zip(fast.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("act", [nn.Sigmoid, nn.Tanh, nn.ReLU, None])
def test_linear_is_addmm_and_the_activation(act):
    g = torch.Generator().manual_seed(4)
    x, w, b = torch.randn(33, 20, generator=g), torch.randn(7, 20, generator=g), torch.randn(7, generator=g)
    want = F.linear(x, w, b) if act is None else act()(F.linear(x, w, b))
    assert torch.allclose(linear(x, w, b, act), want, atol=1e-5)
    assert torch.allclose(linear(x, w, None, act), F.linear(x, w) if act is None else act()(F.linear(x, w)), atol=1e-5)
    gy = torch.randn(33, 7, generator=g)  # a transposed weight, as the chain's input gradients pass it
    assert torch.allclose(linear(gy, w.t(), None, None), gy @ w, atol=1e-5)


def test_chain_logits_and_evaluate_are_the_models():
    data, model = blobs(), net(nn.Sigmoid, nn.Tanh)
    chain = LinearChain.of(model)
    with torch.no_grad():
        assert torch.allclose(chain.logits(data.val.x), model(data.val.x), atol=1e-6)
    wrong, loss = evaluate(model, data.val)
    with torch.no_grad():
        logits = model(data.val.x)
    assert wrong == int((logits.argmax(1) != data.val.y).sum())
    assert loss == pytest.approx(float(F.cross_entropy(logits, data.val.y, reduction="sum")), rel=1e-5)


def sgd_pair(**kwargs):
    a, b = net(nn.Sigmoid, nn.ReLU), net(nn.Sigmoid, nn.ReLU)
    groups = lambda m: [  # noqa: E731
        {"params": [m[0].weight, m[2].weight], "weight_decay": 0.01},
        {"params": [m[0].bias, m[2].bias, m[4].weight, m[4].bias]},
    ]
    return (a, torch.optim.SGD(groups(a), fused=True, **kwargs)), (b, torch.optim.SGD(groups(b), fused=True, **kwargs))


@pytest.mark.parametrize("momentum, nesterov", [(0.9, False), (0.5, True), (0.0, False)])
def test_optimizer_step_is_fused_sgd_bit_for_bit(momentum, nesterov):
    (fast, fast_opt), (ref, ref_opt) = sgd_pair(lr=0.1, momentum=momentum, nesterov=nesterov)
    g = torch.Generator().manual_seed(5)
    for _ in range(4):
        x, y = torch.rand(20, 16, generator=g), torch.randint(0, 3, (20,), generator=g)
        for model, opt, take in ((fast, fast_opt, optimizer_step), (ref, ref_opt, lambda o: o.step())):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            take(opt)
    for p, q in zip(fast.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    fast_state, ref_state = fast_opt.state_dict(), ref_opt.state_dict()
    assert fast_state["param_groups"] == ref_state["param_groups"]
    for k, v in ref_state["state"].items():
        assert torch.equal(fast_state["state"][k]["momentum_buffer"], v["momentum_buffer"])


def test_optimizer_step_keeps_the_optimizers_hooks_and_other_optimizers():
    (model, opt), _ = sgd_pair(lr=0.1, momentum=0.9)
    calls = []
    opt.register_step_pre_hook(lambda *args: calls.append("hook"))
    F.cross_entropy(model(torch.rand(4, 16)), torch.tensor([0, 1, 2, 0])).backward()
    optimizer_step(opt)
    assert calls == ["hook"]
    adam = torch.optim.Adam(model.parameters(), lr=0.1)
    before = [p.clone() for p in model.parameters()]
    optimizer_step(adam)
    assert adam.state and all(not torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_linear_chain_refuses_models_it_cannot_differentiate_by_hand():
    assert LinearChain.of(nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.Linear(3, 2))) is None
    assert LinearChain.of(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())) is None  # must end in a linear
    frozen = net(nn.Sigmoid)
    frozen[0].weight.requires_grad_(False)
    assert LinearChain.of(frozen) is None
    shared = nn.Linear(4, 4)
    assert LinearChain.of(nn.Sequential(shared, nn.Sigmoid(), shared)) is None
    hooked = net(nn.Sigmoid)
    hooked[1].register_forward_hook(lambda *a: None)
    assert LinearChain.of(hooked) is None


def test_weighted_loss_with_unit_weights_is_the_mean_and_zero_weights_drop_rows():
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(10, 16, generator=g), torch.randint(0, 3, (10,), generator=g)
    model = net(nn.Sigmoid)
    loss, grads = autograd_grads(model, x, y)
    loss1, grads1 = autograd_grads(model, x, y, torch.ones(10))
    assert torch.allclose(loss, loss1) and all(torch.allclose(a, b) for a, b in zip(grads, grads1))
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 1, 1, 1, 0], dtype=torch.bool)
    dropped_loss, dropped = autograd_grads(model, x[keep], y[keep])
    zero_loss, zero = autograd_grads(model, x, y, keep.float())
    assert torch.allclose(dropped_loss, zero_loss, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(dropped, zero))
    # the same holds for the hand-written gradients
    chain_loss, _ = LinearChain.of(model).gradients(x, y, keep.float(), float(keep.sum()))
    assert torch.allclose(chain_loss, dropped_loss, atol=1e-6)
    assert all(torch.allclose(p.grad, b, atol=1e-6) for p, b in zip(model.parameters(), dropped))


def test_finetune_with_unit_weights_matches_no_weights_and_zero_weights_make_no_update():
    data = blobs()
    cfg = FinetuneConfig(lr=0.3, epochs=3, batch_size=32, patience=None, seed=1)
    plain, weighted, zero = net(nn.Sigmoid), net(nn.Sigmoid), net(nn.Sigmoid)
    finetune(plain, data, cfg)
    ones = Split(data.train.x, data.train.y, torch.ones(len(data.train)))
    finetune(weighted, Dataset("w", ones, data.val, data.test), cfg)
    for a, b in zip(plain.parameters(), weighted.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    before = [p.detach().clone() for p in zero.parameters()]
    zeros = Split(data.train.x, data.train.y, torch.zeros(len(data.train)))
    r = finetune(zero, Dataset("w", zeros, data.val, data.test), cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, zero.parameters()))
    assert r.steps == [6, 12, 18]  # the evaluation schedule goes on through batches of zero weight


@pytest.mark.parametrize("w", [torch.full((180,), -1.0), torch.ones(179), torch.full((180,), float("nan"))])
def test_bad_example_weights_are_refused(w):
    from pretrain.errors import PretrainError

    data = blobs()
    bad = Dataset("w", Split(data.train.x, data.train.y, w), data.val, data.test)
    with pytest.raises(PretrainError, match="example weights"):
        finetune(net(nn.Sigmoid), bad, FinetuneConfig(epochs=1))


def test_labelled_subsets_carry_the_weights_with_their_rows():
    from pretrain.finetuning import labelled_subsets

    data = blobs()
    w = torch.arange(len(data.train), dtype=torch.float32)
    train = Split(data.train.x, data.train.y, w)
    sub, _ = labelled_subsets(Dataset("w", train, data.val, data.test), FinetuneConfig(labels=30))
    rows = [int(torch.nonzero((data.train.x == r).all(1))[0]) for r in sub.x]
    assert sub.w.tolist() == [float(i) for i in rows]


def test_finetune_batches_visit_every_example_once_per_epoch():
    n = 45
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 16) / n
    y = torch.arange(n) % 3
    data = Dataset("rows", Split(x, y), Split(x[:9], y[:9]), Split(x[:9], y[:9]))
    model, seen = net(nn.Sigmoid), []
    model[0].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0][:, 0].clone()) if m.training else None)
    finetune(model, data, FinetuneConfig(lr=0.1, epochs=2, batch_size=8, patience=None))
    ids = [round(float(v) * n) for batch in seen for v in batch]
    assert len(ids) == 2 * n and sorted(ids[:n]) == list(range(n)) and sorted(ids[n:]) == list(range(n))
    assert ids[:n] != ids[n:]  # reshuffled each epoch


def test_greedy_batches_visit_every_example_once_per_epoch(monkeypatch):
    n, seen = 45, []
    real = AutoencoderLayer.train_step

    def recording(self, x, optimizer, y=None):
        seen.append(x[:, 0].clone())
        return real(self, x, optimizer, y)

    monkeypatch.setattr(AutoencoderLayer, "train_step", recording)
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 6) / n
    GreedyPretrainer(GreedyConfig(layers=[4], epochs=2, batch_size=8)).fit(x)
    ids = [round(float(v) * n) for batch in seen for v in batch]
    assert sorted(ids[:n]) == list(range(n)) and sorted(ids[n:]) == list(range(n)) and ids[:n] != ids[n:]


def test_same_seed_gives_identical_weights_on_the_fast_path():
    runs = []
    for _ in range(2):
        model = net(nn.Sigmoid, nn.ReLU)
        finetune(model, blobs(), FinetuneConfig(lr=0.2, schedule="cosine", epochs=3, batch_size=32, seed=5))
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_fast_path_trains_like_autograd(optimizer):
    """A run through the hand-written gradients and one forced through autograd (a no-op hook) end close."""
    data = blobs()
    lr = 0.3 if optimizer == "sgd" else 0.01
    cfg = FinetuneConfig(optimizer=optimizer, lr=lr, weight_decay=1e-3, epochs=4, batch_size=32, patience=None)
    fast, slow = net(nn.Sigmoid), net(nn.Sigmoid)
    slow.register_forward_hook(lambda *a: None)
    assert LinearChain.of(fast) is not None and LinearChain.of(slow) is None
    rf, rs = finetune(fast, data, cfg), finetune(slow, data, cfg)
    for a, b in zip(fast.parameters(), slow.parameters()):
        assert torch.allclose(a, b, atol=1e-4)
    assert rf.val_error == rs.val_error
    assert F.mse_loss(fast(data.test.x), slow(data.test.x)) < 1e-8
