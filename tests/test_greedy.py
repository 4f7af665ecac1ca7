import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.errors import DivergenceError, PretrainError
from pretrain.greedy import GreedyConfig, GreedyPretrainer
from pretrain.layers import AutoencoderLayer

from .conftest import make_blobs


@pytest.fixture
def x():
    return torch.from_numpy(make_blobs(n=200, d=16)[0])


def fit(x, **kw):
    cfg = GreedyConfig.from_flat({"layers": [12, 8, 4], "epochs": 2, "batch_size": 32, **kw})
    return GreedyPretrainer(cfg).fit(x[:160], x[160:])


def test_each_layer_trains_on_codes_and_records_losses(x):
    p = fit(x, epochs=5, lr=1e-2)
    assert [(h.n_in, h.n_out) for h in p.history_] == [(16, 12), (12, 8), (8, 4)]
    for h in p.history_:
        assert len(h.train_loss) == len(h.val_loss) == 5 and h.done
        assert h.val_loss[-1] < h.val_loss[0]  # every layer learns to reconstruct its input
    assert p.transform(x).shape == (200, 4)
    assert p.reconstruct(x).shape == (200, 16)


def test_finished_layers_stay_bit_identical_while_later_layers_train(x):
    snapshots = []

    def snapshot(p):
        snapshots.append([{k: v.clone() for k, v in layer.state_dict().items()} for layer in p.layers_])

    GreedyPretrainer(GreedyConfig(layers=[12, 8, 4], epochs=3, batch_size=32)).fit(x, on_epoch=snapshot)
    first_layer_done = snapshots[2][0]  # after layer 1's third (last) epoch
    for later in snapshots[3:]:
        for key, value in first_layer_done.items():
            assert torch.equal(later[0][key], value)
    assert not torch.equal(snapshots[3][1]["encoder.weight"], snapshots[5][1]["encoder.weight"])


def test_frozen_codes_are_computed_once_per_layer_not_per_batch(x, monkeypatch):
    calls = []
    original = AutoencoderLayer.encode

    def counting(self, inp):
        calls.append((id(self), inp.shape[0]))
        return original(self, inp)

    monkeypatch.setattr(AutoencoderLayer, "encode", counting)

    def rows_encoded_by_lower_layers(epochs):
        calls.clear()
        p = GreedyPretrainer(GreedyConfig(layers=[12, 8, 4], epochs=epochs, batch_size=16)).fit(x)
        top = id(p.layers_[-1])
        lower = {id(layer) for layer in p.layers_[:-1]}
        # training a layer encodes its own batches; feeding the next layer encodes the data once
        return sum(n for who, n in calls if who in lower and who != top), lower

    one, lower = rows_encoded_by_lower_layers(1)
    three, _ = rows_encoded_by_lower_layers(3)
    # extra epochs add only each layer's own training batches, never re-encoding through frozen layers
    per_epoch_own = (three - one) / 2
    assert per_epoch_own == 2 * 200  # layers 1 and 2 each see the 200 rows once per epoch
    assert one - per_epoch_own == 2 * 200  # + one pass of 200 rows through each of them afterwards


def test_same_seed_same_weights_other_seed_other_weights(x):
    a, b, c = fit(x, seed=3), fit(x, seed=3), fit(x, seed=4)
    for key, value in a.state_dict_sequential().items():
        assert torch.equal(value, b.state_dict_sequential()[key])
    assert not torch.equal(a.state_dict_sequential()["0.weight"], c.state_dict_sequential()["0.weight"])


def test_export_loads_into_a_plain_sequential_classifier(x):
    p = fit(x)
    clf = nn.Sequential(
        nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 4), nn.Sigmoid(), nn.Linear(4, 3)
    )
    result = clf.load_state_dict(p.state_dict_sequential(), strict=False)
    assert result.missing_keys == ["6.weight", "6.bias"] and result.unexpected_keys == []
    assert torch.allclose(clf[:6](x), p.transform(x))


def test_resume_from_an_interrupted_epoch_gives_the_uninterrupted_weights(x):
    cfg = dict(layers=[12, 8], epochs=3, batch_size=32, objective="denoising")
    full = GreedyPretrainer(GreedyConfig.from_flat(cfg)).fit(x)
    saved = {}

    def interrupt(p):
        saved["state"] = p.state_dict()
        if len(p.history_) == 2 and len(p.history_[1].train_loss) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GreedyPretrainer(GreedyConfig.from_flat(cfg)).fit(x, on_epoch=interrupt)
    resumed = GreedyPretrainer.from_state_dict(saved["state"])
    assert resumed.history_[0].done and not resumed.history_[1].done
    resumed.fit(x)
    for key, value in full.state_dict_sequential().items():
        assert torch.equal(value, resumed.state_dict_sequential()[key]), key
    assert resumed.history_[1].train_loss == full.history_[1].train_loss


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "linear"])
@pytest.mark.parametrize("tied", [True, False])
def test_every_activation_and_decoder_kind_trains(x, activation, tied):
    p = fit(x, activation=activation, tied=tied, epochs=3, lr=1e-2)
    losses = [h.loss for h in p.history_]
    # sigmoid codes stay in [0, 1] so upper layers keep cross-entropy; others switch to mse
    assert losses[0] == "cross-entropy"
    assert losses[1] == ("cross-entropy" if activation == "sigmoid" else "mse")
    assert all(h.val_loss[-1] < h.val_loss[0] for h in p.history_)
    assert ("weight" in p.layers_[0].decoder_state()) == (not tied)


@pytest.mark.parametrize(
    "noise, level, loss", [("mask", 0.25, "cross-entropy"), ("mask", 0.6, "mse"), ("gaussian", 0.2, "mse")]
)
def test_denoising_encoder_sees_the_corrupted_input_and_the_target_stays_clean(noise, level, loss):
    x = torch.rand(1000, 10)
    layer = AutoencoderLayer(
        10, 4, noise=noise, noise_level=level, loss=loss, generator=torch.Generator().manual_seed(0)
    )
    seen = []
    hook = layer.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    state = layer.generator.get_state()
    trained_on = layer.training_loss(x)
    hook.remove()
    (encoder_input,) = seen
    if noise == "mask":  # a `level` fraction of the inputs zeroed, the rest passed through unchanged
        kept = encoder_input != 0
        assert abs(1 - float(kept.float().mean()) - level) < 0.02
        assert torch.equal(encoder_input[kept], x[kept])
    else:
        assert abs(float((encoder_input - x).std()) - level) < 0.01
    layer.generator.set_state(state)
    assert torch.equal(layer.corrupt(x), encoder_input)  # the same draw, from the layer's own generator

    # the loss compares the reconstruction of the corrupted input with the clean x, not with the corruption
    recon = layer.decode(layer.encode(encoder_input))
    if loss == "mse":
        clean, noisy = ((recon - t).square().sum(1).mean() for t in (x, encoder_input))
    else:
        clean, noisy = (F.binary_cross_entropy(recon, t, reduction="none").sum(1).mean() for t in (x, encoder_input))
    assert float(trained_on.detach()) == pytest.approx(float(clean.detach()), rel=1e-5)
    assert abs(float(trained_on.detach()) - float(noisy.detach())) > 1e-2
    # evaluation is clean: the loss of the uncorrupted input, and no draw from the generator
    state = layer.generator.get_state()
    recon = layer.decode(layer.encode(x))
    if loss == "mse":
        expected = (recon - x).square().sum(1).mean()
    else:
        expected = F.binary_cross_entropy(recon, x, reduction="none").sum(1).mean()
    assert float(layer.reconstruction_loss(x).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert torch.equal(layer.generator.get_state(), state)


def test_weight_decay_is_l2_at_a_realistic_strength(x):
    # One SGD step from the same weights on the same batch: with decay λ the weights move by an
    # extra -lr·λ·w, exactly (SGD's first momentum buffer is the gradient itself).
    lr, wd = 0.05, 5e-4
    cfg = GreedyConfig(layers=[6], optimizer="sgd", lr=lr, weight_decay=wd)
    plain = AutoencoderLayer(16, 6, generator=torch.Generator().manual_seed(0))
    decayed = AutoencoderLayer(16, 6, generator=torch.Generator().manual_seed(0))
    w0 = plain.encoder.weight.detach().clone()
    for layer, c in ((plain, GreedyConfig(layers=[6], optimizer="sgd", lr=lr)), (decayed, cfg)):
        layer.train_step(x[:32], GreedyPretrainer(c)._optimizer(layer))
    extra = decayed.encoder.weight.detach() - plain.encoder.weight.detach()
    expected = -lr * wd * w0
    assert float((extra - expected).norm() / expected.norm()) < 1e-2  # float32 round-off only
    assert float(extra.abs().max()) > 1e-6  # the effect is real at this strength, not rounding


def test_divergence_names_layer_and_epoch():
    big = torch.randn(64, 8) * 1e3
    cfg = GreedyConfig(layers=[4], options={"loss": "mse"}, optimizer="sgd", lr=10.0, epochs=3, activation="linear")
    with pytest.raises(
        DivergenceError,
        match=r"layer 1, epoch \d+: the (training|validation) loss became (nan|inf); try a smaller learning rate",
    ):
        GreedyPretrainer(cfg).fit(big)


def test_cross_entropy_refuses_inputs_outside_unit_interval():
    with pytest.raises(PretrainError, match=r"cross-entropy needs \[0, 1\]"):
        GreedyPretrainer(GreedyConfig(layers=[4], options={"loss": "cross-entropy"})).fit(torch.randn(20, 8))


@pytest.mark.parametrize(
    "bad", [{"layers": []}, {"layers": [0]}, {"layers": [3, -1]}, {"objective": "vae"}, {"lr": -1.0}, {"epochs": 0}]
)
def test_config_is_validated(bad):
    with pytest.raises(PretrainError):
        GreedyConfig.from_flat({"layers": [4], **bad})


def test_cross_entropy_matches_torch_in_value_and_gradient():
    import torch.nn.functional as F

    from pretrain.layers.autoencoder import CrossEntropyWithLogits

    z = (torch.randn(32, 20, dtype=torch.float64) * 8).requires_grad_()
    x = torch.rand(32, 20, dtype=torch.float64)
    ours = CrossEntropyWithLogits.apply(z, x)
    (g_ours,) = torch.autograd.grad(ours, z)
    ref = F.binary_cross_entropy_with_logits(z, x, reduction="none").sum(1).mean()
    (g_ref,) = torch.autograd.grad(ref, z)
    assert torch.allclose(ours, ref, rtol=1e-9) and torch.allclose(g_ours, g_ref, rtol=1e-9, atol=1e-12)


def test_top_activation_exports_per_layer_modules(x):
    p = fit(x, top_activation="linear")
    model = p.to_sequential()
    assert [type(m).__name__ for m in model] == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear", "Identity"]
    assert torch.allclose(model(x), p.transform(x), atol=1e-6)
