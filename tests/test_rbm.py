import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from pretrain.errors import PretrainError
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers import AutoencoderConfig
from pretrain.layers.rbm import HINTON2006, RBMLayer
from pretrain.mlp import build_mlp
from pretrain.stack import main, parse_args

from .conftest import make_blobs


def rbm(n_in=8, n_out=5, seed=1, **kw) -> RBMLayer:
    kw.setdefault("init_std", 0.3)
    return RBMLayer(n_in, n_out, generator=torch.Generator().manual_seed(seed), **kw)


def binary_data(n=64, d=8, seed=0) -> torch.Tensor:
    """Noisy copies of three binary prototypes."""
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(3, d, generator=g) < 0.5).float()
    x = protos[torch.randint(0, 3, (n,), generator=g)]
    flip = torch.rand(x.shape, generator=g) < 0.05
    return torch.where(flip, 1 - x, x)


def params(layer):
    return (layer.encoder.weight, layer.encoder.bias, layer.visible_bias)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"cd_k": 3, "sample_visible": True},
        {"sample_hidden": False},
        {"persistent": True, "n_chains": 7, "cd_k": 2},
        {"activation": "linear", "cd_k": 2},
        {"visible": "gaussian"},
    ],
)
def test_cd_gradient_is_the_autograd_gradient_of_the_free_energy_difference(kw):
    layer = rbm(**kw)
    x = binary_data() if layer.visible == "bernoulli" else 3 * torch.randn(64, 8) + 1
    layer.prepare(x)
    v_neg, err = layer.contrastive_divergence(x)
    cd = [p.grad.clone() for p in params(layer)]
    for p in params(layer):
        p.grad = None
    (layer.free_energy(layer.to_model(x)).mean() - layer.free_energy(v_neg).mean()).backward()
    for mine, auto in zip(cd, (p.grad for p in params(layer))):
        torch.testing.assert_close(mine, auto, rtol=1e-5, atol=1e-6)
    assert err.ndim == 0 and err > 0


@pytest.mark.parametrize("k, sample_visible", [(1, False), (3, False), (3, True), (5, False)])
def test_cd_k_runs_exactly_k_gibbs_steps_of_hintons_chain(k, sample_visible):
    """A hand-written k-step chain, drawing from the same generator state, gives the same negative
    sample and the same gradient, bit for bit: one step more or less gives another sample."""
    layer = rbm(cd_k=k, sample_visible=sample_visible)
    x = binary_data()
    w, c, b = (p.detach().clone() for p in params(layer))
    g = torch.Generator()
    g.set_state(layer.generator.get_state())

    def bernoulli(mean):
        return (torch.rand(mean.shape, generator=g) < mean).float()

    ph0 = torch.sigmoid(x @ w.t() + c)
    h = bernoulli(ph0)  # Hinton: sampled hidden states drive the reconstruction
    for step in range(k):
        v = torch.sigmoid(h @ w + b)
        v = bernoulli(v) if sample_visible else v
        ph = torch.sigmoid(v @ w.t() + c)
        if step < k - 1:
            h = bernoulli(ph)
    v_neg, _ = layer.contrastive_divergence(x)
    torch.testing.assert_close(v_neg, v, rtol=0, atol=0)
    n = x.shape[0]
    torch.testing.assert_close(layer.encoder.weight.grad, (ph.t() @ v - ph0.t() @ x) / n, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.encoder.bias.grad, ph.mean(0) - ph0.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.visible_bias.grad, v.mean(0) - x.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation, n_out", [("sigmoid", 5), ("sigmoid", 12), ("linear", 4)])
def test_exact_likelihood_is_normalised_and_pll_matches_brute_force(activation, n_out):
    layer = rbm(n_out=n_out, activation=activation, init_std=0.2)
    all_v = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8)))
    assert layer.log_likelihood(all_v).exp().sum().item() == pytest.approx(1.0, abs=1e-9)

    x = binary_data(n=10)
    ll_full = []
    for i in range(8):  # log p(v_i | v_-i) from the exact joint of v and v with unit i flipped
        flipped = x.clone()
        flipped[:, i] = 1 - flipped[:, i]
        a, b = layer.log_likelihood(x), layer.log_likelihood(flipped)
        ll_full.append(a - torch.logaddexp(a, b))
    torch.testing.assert_close(layer.pseudo_log_likelihood(x).double(), torch.stack(ll_full).mean(0))


def test_gaussian_visible_likelihood_integrates_to_one():
    layer = rbm(n_in=2, n_out=3, visible="gaussian", init_std=0.5)
    with torch.no_grad():
        layer.visible_bias.copy_(torch.tensor([0.3, -0.2]))
    step = 0.05
    grid = torch.arange(-9, 9, step)
    pts = torch.cartesian_prod(grid, grid)
    assert (layer.log_likelihood(pts).exp().sum() * step**2).item() == pytest.approx(1.0, abs=1e-4)


def test_training_increases_the_exact_likelihood_of_its_data():
    x = binary_data(n=200, d=10)
    cfg = GreedyConfig.from_flat({"layers": [6], "epochs": 15, **HINTON2006, "init_std": 0.01, "batch_size": 20})
    fresh = GreedyPretrainer(cfg)
    p = fresh.fit(x[:160], x[160:])
    diag = p.history_[0].diagnostics
    layer0 = RBMLayer(10, 6, init_std=0.01, generator=torch.Generator().manual_seed(0))
    before = float(layer0.log_likelihood(x[:160]).mean())
    after = diag[-1]["log_likelihood_train"]
    assert after > before + 2.0  # nats per example, from about 10·log 2 = 6.9 at the start
    assert diag[-1]["log_likelihood_val"] > diag[0]["log_likelihood_val"]
    assert diag[-1]["pll_per_unit_train"] > diag[0]["pll_per_unit_train"]
    assert set(diag[0]) >= {"free_energy_train", "free_energy_val", "free_energy_gap", "log_z"}


def test_pcd_chains_persist_across_batches_and_ignore_the_data():
    layer = rbm(persistent=True, n_chains=6)
    x1, x2 = binary_data(seed=1), binary_data(seed=2)
    twin = rbm(persistent=True, n_chains=6)
    start = layer.chain.clone()
    assert torch.equal(start, twin.chain)
    v_a, _ = layer.contrastive_divergence(x1)
    v_b, _ = twin.contrastive_divergence(x2)  # other data, same chain and RNG: same negative samples
    assert torch.equal(v_a, v_b) and v_a.shape == (6, 8)
    after_one = layer.chain.clone()
    assert not torch.equal(after_one, start)
    # the next update continues from the stored chain: replaying it from there by hand agrees
    g_state = layer.generator.get_state()
    v_next, _ = layer.contrastive_divergence(x1)
    replay = rbm(persistent=True, n_chains=6)
    replay.load_state_dict(layer.state_dict())
    replay.chain.copy_(after_one)
    replay.generator.set_state(g_state)
    with torch.no_grad():
        replay.encoder.weight.copy_(layer.encoder.weight)
        expected = replay._sample("bernoulli", replay.visible_mean(after_one))
    assert torch.equal(v_next, expected)
    assert "chain" in layer.state_dict()  # saved with the layer, so resume continues the chains

    cd = rbm()  # plain CD restarts from the data: other data, other negatives
    cd2 = rbm()
    assert not torch.equal(cd.contrastive_divergence(x1)[0], cd2.contrastive_divergence(x2)[0])


def test_sampling_is_reproducible_under_a_seed():
    x = binary_data()
    a, b, c = rbm(seed=5), rbm(seed=5), rbm(seed=6)
    assert torch.equal(a.gibbs(x, 10), b.gibbs(x, 10))
    assert not torch.equal(a.gibbs(x, 10), c.gibbs(x, 10))
    assert torch.equal(rbm(seed=5).contrastive_divergence(x)[0], rbm(seed=5).contrastive_divergence(x)[0])
    cfg = GreedyConfig(layers=[6, 3], objective="rbm", epochs=2, batch_size=16, options={"persistent": True}, seed=3)
    p, q = GreedyPretrainer(cfg).fit(x), GreedyPretrainer(cfg).fit(x)
    for k, v in p.state_dict_sequential().items():
        assert torch.equal(v, q.state_dict_sequential()[k])


def test_sgd_step_is_hintons_update_with_weight_cost_on_weights_only():
    x = binary_data(n=20)
    cfg = GreedyConfig.from_flat({"layers": [5], **HINTON2006})
    p = GreedyPretrainer(cfg)
    layer = rbm(momentum=0.5, final_momentum=0.9, momentum_epochs=5)
    with torch.no_grad():  # biases start at 0, where a weight cost on them would change nothing
        layer.encoder.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(1))
        layer.visible_bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
    opt = p._optimizer(layer)
    before = [t.detach().clone() for t in params(layer)]
    layer.on_epoch_start(0, opt)
    assert all(g["momentum"] == 0.5 for g in opt.param_groups)
    layer.train_step(x, opt)
    grads = [t.grad for t in params(layer)]
    # Hinton: inc = momentum·inc + lr·((<vh>_data - <vh>_neg) - weightcost·W), first step from inc = 0
    assert torch.allclose(params(layer)[0], before[0] - 0.1 * (grads[0] + 0.0002 * before[0]), atol=1e-7)
    for t, t0, g in zip(params(layer)[1:], before[1:], grads[1:]):
        assert torch.allclose(t, t0 - 0.1 * g, atol=1e-7)
    layer.on_epoch_start(5, opt)
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    linear = rbm(activation="linear")
    assert all(g["lr"] == 0.001 for g in p._optimizer(linear).param_groups)


def test_preset_sets_the_recipe_and_explicit_flags_win():
    run = parse_args(["--layers", "500", "--preset", "hinton2006", "--epochs", "3"])
    g = run.greedy
    assert (g.objective, g.optimizer, g.lr, g.linear_lr, g.weight_decay) == ("rbm", "sgd", 0.1, 0.001, 0.0002)
    o = g.options
    assert (g.momentum, o.final_momentum, o.momentum_epochs, g.batch_size, o.init_std, o.cd_k) == (
        0.5,
        0.9,
        5,
        100,
        0.1,
        1,
    )
    assert g.epochs == 3 and g.layers == [500]
    assert parse_args(["--layers", "5", "--preset", "hinton2006", "--lr", "0.05"]).greedy.lr == 0.05
    assert parse_args(["--layers", "5"]).greedy.objective == "autoencoder"
    # flags of another objective do not reach this one's options; denoising gets its own defaults
    plain = parse_args(["--layers", "5", "--cd-k", "3"]).greedy
    assert plain.options == AutoencoderConfig() and plain.options.noise == "none"
    den = parse_args(["--layers", "5", "--objective", "denoising"]).greedy.options
    assert (den.noise, den.noise_level) == ("mask", 0.25)
    assert (
        parse_args(["--layers", "5", "--objective", "denoising", "--noise-level", "0.5"]).greedy.options.noise_level
        == 0.5
    )


def test_bernoulli_units_refuse_data_outside_the_unit_interval_and_bad_configs():
    x = torch.from_numpy(make_blobs(n=60, d=6)[0]) * 3
    with pytest.raises(PretrainError, match="Bernoulli visible units need \\[0, 1\\]"):
        GreedyPretrainer(GreedyConfig(layers=[4], objective="rbm", options={"visible": "bernoulli"})).fit(x)
    p = GreedyPretrainer(GreedyConfig(layers=[4, 3], objective="rbm", epochs=1)).fit(x)  # auto: Gaussian
    assert [h.loss for h in p.history_] == ["gaussian", "bernoulli"]
    with pytest.raises(PretrainError, match="sigmoid"):
        GreedyConfig(layers=[4], objective="rbm", activation="tanh")
    with pytest.raises(PretrainError, match="cd-k"):
        GreedyConfig(layers=[4], objective="rbm", options={"cd_k": 0})


def test_gaussian_layer_exports_its_standardisation_folded_into_the_linear():
    x = torch.from_numpy(make_blobs(n=120, d=6)[0]) * 40 - 7
    p = GreedyPretrainer(GreedyConfig(layers=[5, 3], objective="rbm", epochs=2, batch_size=20)).fit(x)
    model = build_mlp(6, [5, 3])
    model.load_state_dict(p.state_dict_sequential())
    torch.testing.assert_close(model(x), p.transform(x), rtol=1e-4, atol=1e-5)
    dec = p.layers_[0].decoder_state()
    torch.testing.assert_close(dec["input_mean"], x.mean(0))
    h = p.layers_[0].encode(x)
    torch.testing.assert_close(h @ dec["weight"].t() + dec["raw_bias"], p.layers_[0].decode(h))


def cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_end_to_end_export_resume_and_frozen_layers(blobs_npz, tmp_path, capsys, monkeypatch):
    import pretrain.greedy as greedy

    base = ["--layers", 8, 4, "--data", blobs_npz, "--epochs", 3, "--objective", "rbm", "--quiet"]
    base += ["--preset", "hinton2006", "--batch-size", 16, "--persistent"]
    full = tmp_path / "full.pt"
    assert cli([*base, "--output", full], capsys)[0] == 0
    ckpt = torch.load(full, weights_only=True)
    model = nn.Sequential(*build_mlp(16, [8, 4]), nn.Linear(4, 3))
    missing = model.load_state_dict(ckpt["state_dict"], strict=False).missing_keys
    assert missing == ["4.weight", "4.bias"]
    assert [d["bias"].shape for d in ckpt["decoders"]] == [(16,), (8,)]
    diag = ckpt["metadata"]["layers"][0]["diagnostics"]
    assert len(diag) == 3 and math.isfinite(diag[-1]["free_energy_gap"])

    snapshots = []
    original = greedy.GreedyPretrainer._fit_layer

    def interrupted(self, k, x, x_val, y, y_val, progress, on_epoch):
        def stop_after_one(p):
            snapshots.append([{n: v.clone() for n, v in layer.state_dict().items()} for layer in p.layers_])
            on_epoch(p)
            if k == 1 and len(p.history_[1].train_loss) == 1:
                raise KeyboardInterrupt

        return original(self, k, x, x_val, y, y_val, progress, stop_after_one)

    monkeypatch.setattr(greedy.GreedyPretrainer, "_fit_layer", interrupted)
    cut = tmp_path / "cut.pt"
    assert cli([*base, "--output", cut], capsys)[0] == 130
    monkeypatch.undo()
    # layer 1 finished after 3 epochs and stayed bit-identical while layer 2 trained
    assert all(torch.equal(snapshots[3][0][n], v) for n, v in snapshots[2][0].items())
    assert cli([*base, "--output", cut, "--cd-k", 2, "--resume"], capsys)[0] == 2
    assert cli([*base, "--output", cut, "--resume"], capsys)[0] == 0
    resumed = torch.load(cut, weights_only=True)
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k])
    assert resumed["metadata"]["layers"][1]["diagnostics"] == ckpt["metadata"]["layers"][1]["diagnostics"]


def test_cli_bad_rbm_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "wide.npz"
    np.savez(path, X=np.linspace(-5, 5, 400, dtype=np.float32).reshape(40, 10))
    code, out, err = cli(["--layers", 4, "--data", path, "--objective", "rbm", "--visible", "bernoulli"], capsys)
    assert code == 2 and "Bernoulli visible units need [0, 1]" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("checkpoints/*"))
    code, _, err = cli(["--layers", 4, "--data", path, "--objective", "rbm", "--activation", "relu"], capsys)
    assert code == 2 and "sigmoid" in err


def _state_frequencies(samples: torch.Tensor) -> torch.Tensor:
    """Empirical distribution over the 2^D binary states of ``samples`` (N, D), states in binary order."""
    d = samples.shape[1]
    index = (samples.round().long() * (2 ** torch.arange(d - 1, -1, -1))).sum(1)
    return torch.bincount(index, minlength=2**d).double() / samples.shape[0]


@pytest.mark.parametrize("activation", ["sigmoid", "linear"])
def test_gibbs_chains_and_pcd_negatives_sample_the_exact_model_distribution(activation):
    # A tiny RBM with strong weights and biases: its exact p(v) is far from uniform. Independent
    # chains (Gibbs sweeps, and the PCD negative phase that training uses) must reach it.
    layer = rbm(n_in=4, n_out=3, seed=2, activation=activation, init_std=1.0, persistent=True, n_chains=4000)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        layer.visible_bias.copy_(torch.randn(4, generator=g))
        layer.encoder.bias.copy_(torch.randn(3, generator=g))
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    exact = layer.log_likelihood(states).exp()
    assert abs(float(exact.sum()) - 1) < 1e-9 and float(exact.max()) > 2 / 16  # normalised, not uniform

    start = (torch.rand(4000, 4, generator=g) < 0.5).float()
    gibbs = torch.cat([layer.gibbs(start, 50 + 5 * k) for k in range(4)])  # 16,000 samples
    tv_gibbs = 0.5 * float((_state_frequencies(gibbs) - exact).abs().sum())

    for _ in range(50):  # burn in the persistent chains; no optimizer step, so the model stays put
        layer.contrastive_divergence(start)
    pcd = torch.cat([layer.contrastive_divergence(start)[0] for _ in range(4)])
    tv_pcd = 0.5 * float((_state_frequencies(pcd) - exact).abs().sum())
    # sampling noise of 16,000 draws over 16 states is about 0.01 in total variation
    assert tv_gibbs < 0.03 and tv_pcd < 0.03, (tv_gibbs, tv_pcd)
    # and a wrong target is told apart: the uniform distribution is far from the samples
    assert 0.5 * float((_state_frequencies(gibbs) - 1 / 16).abs().sum()) > 0.1
