import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain import finetune as finetune_cli
from pretrain import stack as stack_cli
from pretrain.classifier import make_classifier
from pretrain.data import Dataset, Split
from pretrain.errors import DivergenceError, PretrainError
from pretrain.finetuning import FinetuneConfig, error_rate, finetune, labelled_subsets, stratified_subset
from pretrain.mlp import load_classifier

from .conftest import make_blobs


def blobs_dataset(n=300, d=16, classes=3) -> Dataset:
    x, y = (torch.from_numpy(a) for a in make_blobs(n=n, d=d, classes=classes))
    a, b = int(0.6 * n), int(0.8 * n)
    return Dataset("blobs", Split(x[:a], y[:a]), Split(x[a:b], y[a:b]), Split(x[b:], y[b:]))


def model_for(init="xavier-uniform", seed=0, hidden=(12, 8)):
    return make_classifier(init, n_in=16, n_classes=3, hidden=list(hidden), activation="sigmoid", seed=seed)[0]


CFG = {"lr": 0.3, "epochs": 6, "batch_size": 32, "patience": None}


def test_same_seed_and_config_give_identical_metrics_twice():
    runs = [finetune(model_for(seed=4), blobs_dataset(), FinetuneConfig(seed=4, **CFG)) for _ in range(2)]
    a, b = (r.to_dict() for r in runs)
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert len(a["train_loss"]) == len(a["steps"]) == 6 and a["train_loss"][-1] < a["train_loss"][0]


def test_adam_cosine_weight_decay_and_early_stopping_restores_the_best_epoch():
    cfg = FinetuneConfig(optimizer="adam", lr=3e-2, schedule="cosine", weight_decay=1e-4, epochs=40, patience=2)
    data = blobs_dataset()
    model = model_for()
    r = finetune(model, data, cfg)
    assert r.stopped_early and r.steps[-1] == r.steps[r.steps.index(r.best_step) + 2]
    assert r.test_errors == round(r.test_error_final * r.n_test)
    assert r.val_error_best == min(r.val_error) == r.val_error[r.steps.index(r.best_step)]
    # the restored weights are the best-validation ones
    assert error_rate(model, data.val)[0] == r.val_error_best


def test_early_stopping_restores_the_best_evaluations_weights_bit_for_bit(monkeypatch):
    """Half the training labels are noise and the rate is high: validation error is lowest early and
    then rises. The model must end with the weights it had at the best evaluation, not the last ones."""
    import pretrain.finetuning as ft

    d = blobs_dataset()
    g = torch.Generator().manual_seed(0)
    y = d.train.y.clone()
    noisy = torch.rand(len(y), generator=g) < 0.5
    y[noisy] = torch.randint(0, 3, (int(noisy.sum()),), generator=g)
    data = Dataset("noisy", Split(d.train.x, y), d.val, d.test)
    snapshots = []
    real_evaluate = ft.evaluate

    def recording(model, split, *args, **kwargs):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_evaluate(model, split, *args, **kwargs)

    monkeypatch.setattr(ft, "evaluate", recording)
    model = model_for(hidden=(32, 16))
    cfg = FinetuneConfig(lr=1.0, max_steps=100, eval_every=5, batch_size=16, patience=None)
    r = finetune(model, data, cfg)
    assert r.best_step < r.steps[-1] and r.val_error[-1] > r.val_error_best  # the data does what it should
    best, last = snapshots[r.steps.index(r.best_step)], snapshots[len(r.steps) - 1]
    final = model.state_dict()
    for key, value in best.items():
        assert torch.equal(final[key], value), key
    assert any(not torch.equal(final[key], value) for key, value in last.items())
    assert error_rate(model, data.val)[0] == r.val_error_best


def test_freeze_epochs_train_only_the_head():
    model = model_for()
    hidden = [model[k].weight.detach().clone() for k in (0, 2)]
    head = model[4].weight.detach().clone()
    finetune(model, blobs_dataset(), FinetuneConfig(**{**CFG, "epochs": 2}, freeze_epochs=2))
    assert all(torch.equal(model[k].weight, w) for k, w in zip((0, 2), hidden))
    assert not torch.equal(model[4].weight, head)
    assert all(p.requires_grad for p in model.parameters())


def test_stratified_subset_keeps_class_proportions_and_depends_only_on_the_seed():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_subset(y, 10, torch.Generator().manual_seed(1))
    assert torch.bincount(y[idx]).tolist() == [5, 3, 2] and len(set(idx.tolist())) == 10
    assert torch.equal(idx, stratified_subset(y, 10, torch.Generator().manual_seed(1)))
    assert stratified_subset(y, 7, torch.Generator()).numel() == 7
    for bad in (0, 101):
        with pytest.raises(PretrainError, match="--labels"):
            stratified_subset(y, bad, torch.Generator())


def test_labels_subset_is_used():
    r = finetune(model_for(), blobs_dataset(), FinetuneConfig(**{**CFG, "epochs": 1}, labels=30))
    assert r.n_train == 30


def test_arms_under_one_seed_see_the_same_batches():
    seen = []
    for init in ("xavier-uniform", "zeros"):
        model = model_for(init)
        order = []
        model[0].register_forward_pre_hook(lambda m, args, order=order: order.append(args[0].sum().item()))
        finetune(model, blobs_dataset(), FinetuneConfig(**{**CFG, "epochs": 2}))
        seen.append(order)
    assert seen[0] == seen[1]


def test_steps_budget_eval_interval_and_test_looked_at_once_at_the_end():
    cfg = FinetuneConfig(lr=0.3, max_steps=25, eval_every=10, batch_size=32, patience=None, schedule="cosine")
    r = finetune(model_for(), blobs_dataset(), cfg, score_test=False)
    assert r.steps == [10, 20, 25] and r.steps_run == 25 and not r.stopped_early and r.fitted
    assert math.isnan(r.test_error_final) and r.n_test == 0 and 0 <= r.train_error_final <= 1
    r = finetune(model_for(), blobs_dataset(), cfg)
    assert r.n_test == 60 and r.test_errors == round(r.test_error_final * 60)


def test_the_test_error_is_counted_on_the_test_split_with_the_restored_weights():
    """Shuffled test labels: a test error measured on any other split (or other weights) would differ."""
    d = blobs_dataset()
    y_test = d.test.y[torch.randperm(len(d.test), generator=torch.Generator().manual_seed(0))]
    data = Dataset("shuffled-test", d.train, d.val, Split(d.test.x, y_test))
    model = model_for()
    r = finetune(model, data, FinetuneConfig(**CFG))
    with torch.no_grad():
        wrong = int((model(data.test.x).argmax(1) != y_test).sum())
    assert r.n_test == len(data.test) and r.test_errors == wrong
    assert r.test_error_final == wrong / len(data.test) and r.test_error_final > r.train_error_final + 0.2


def test_patience_counts_only_once_the_training_set_is_fitted():
    cfg = FinetuneConfig(lr=1e-4, max_steps=40, eval_every=2, batch_size=32, patience=1, fit_error=0.0)
    r = finetune(model_for(), blobs_dataset(), cfg)  # too small a rate to fit: runs to the cap
    assert not r.fitted and not r.stopped_early and r.steps_run == 40
    r = finetune(model_for(), blobs_dataset(), FinetuneConfig(**{**cfg.__dict__, "unfitted_patience": 2}))
    assert not r.fitted and r.stopped_early and r.steps_run < 40  # stopped, flagged as not fitted
    r = finetune(model_for(), blobs_dataset(), FinetuneConfig(**{**cfg.__dict__, "fit_error": None}))
    assert r.fitted and r.stopped_early and r.steps_run < 40


def test_small_label_validation_is_stratified_from_the_validation_split():
    data = blobs_dataset(n=600)
    train, val = labelled_subsets(data, FinetuneConfig(labels=30, val_labels=30, seed=3))
    assert len(train) == len(val) == 30
    counts = torch.bincount(data.val.y, minlength=3).double() * 30 / len(data.val)
    assert (torch.bincount(val.y, minlength=3) - counts).abs().max() < 1
    rows = {tuple(r.tolist()) for r in data.val.x}
    assert all(tuple(r.tolist()) in rows for r in val.x)  # from the validation split: never a training example
    again = labelled_subsets(data, FinetuneConfig(labels=30, val_labels=30, seed=3))[1]
    assert torch.equal(again.x, val.x)
    assert len(labelled_subsets(data, FinetuneConfig(val_labels=10_000))[1]) == len(data.val)
    r = finetune(model_for(), data, FinetuneConfig(**{**CFG, "epochs": 1}, labels=30, val_labels=30))
    assert (r.n_train, r.n_val) == (30, 30)


def test_divergence_names_the_epoch():
    with pytest.raises(DivergenceError, match="epoch 1"):
        finetune(model_for("large-normal"), blobs_dataset(), FinetuneConfig(lr=1e38, momentum=0.0, batch_size=16))


@pytest.mark.parametrize(
    "kw", [{"optimizer": "rmsprop"}, {"lr": 0.0}, {"labels": 0}, {"schedule": "step"}, {"freeze_epochs": -1}]
)
def test_bad_config_is_refused(kw):
    with pytest.raises(PretrainError):
        FinetuneConfig(**kw)


# ------------------------------------------------------------------------------------------- CLI


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        rc = finetune_cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def blobs(tmp_path) -> Path:
    x, y = make_blobs(n=240, d=16)
    path = tmp_path / "blobs.npz"
    np.savez(path, X=x, y=y)
    return path


def test_cli_end_to_end_on_blobs(tmp_path, blobs, capsys):
    out = tmp_path / "out" / "clf.pt"
    args = ["--data", blobs, "--val-size", 40, "--layers", 8, 4, "--init", "he-normal", "--activation", "relu"]
    args += ["--epochs", 4, "--lr", 0.05, "--output", out, "--quiet"]
    rc, stdout, _ = cli(capsys, *args)
    assert rc == 0 and "saved" in stdout
    metrics = json.loads(out.with_suffix(".json").read_text())
    for key in ("train_loss", "train_error", "val_error", "val_loss"):
        assert len(metrics[key]) == len(metrics["steps"]) == 4  # one evaluation per epoch
    assert metrics["init"] == "he-normal" and metrics["config"]["lr"] == 0.05
    model, meta = load_classifier(out)
    assert meta["finetune"]["epochs"] == 4 and meta["sizes"] == [16, 8, 4] and meta["activations"] == ["relu"] * 2
    x, _ = make_blobs(n=240, d=16)
    assert model(torch.from_numpy(x)).shape == (240, 3)
    # the same flags again give identical metrics
    out2 = tmp_path / "out" / "clf2.pt"
    rc, _, _ = cli(capsys, *args[:-3], "--output", out2, "--quiet")
    again = json.loads(out2.with_suffix(".json").read_text())
    for key in ("train_loss", "train_error", "val_error", "test_errors", "best_step", "train_error_final"):
        assert again[key] == metrics[key]


def test_cli_pretrained_on_tiny_mnist_with_summary(tmp_path, tiny_mnist_dir, capsys):
    ck = tmp_path / "stack.pt"
    argv = ["--layers", "8", "--epochs", "1", "--val-size", "50", "--data-dir", str(tiny_mnist_dir)]
    argv += ["--output", str(ck), "--quiet"]
    assert stack_cli.main(argv) == 0
    out = tmp_path / "clf.pt"
    rc, stdout, _ = cli(
        capsys, "--init", f"pretrained:{ck}", "--data-dir", tiny_mnist_dir, "--val-size", 50, "--epochs", 2,
        "--freeze-epochs", 1, "--labels", 100, "--output", out,
    )  # fmt: skip
    assert rc == 0
    assert "test error" in stdout and "<- best val" in stdout and len(stdout.splitlines()) < 25
    meta = load_classifier(out)[1]
    assert meta["input_scaling"] == {"divide_by": 255.0} and meta["sizes"] == [784, 8]
    assert json.loads(out.with_suffix(".json").read_text())["n_train"] == 100


def _bad_stack(tmp_path, blobs, capsys) -> Path:
    ck = tmp_path / "ck" / "s16.pt"
    assert stack_cli.main(["--data", str(blobs), "--val-size", "40", "--layers", "8", "4", "--epochs", "1",
                           "--output", str(ck), "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    return ck


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, blobs, tiny_mnist_dir, capsys):
    ck16 = _bad_stack(tmp_path, blobs, capsys)
    truncated = tmp_path / "ck" / "cut.pt"
    truncated.write_bytes(ck16.read_bytes()[:300])
    out_dir = tmp_path / "out"
    base = ["--data", blobs, "--val-size", 40, "--epochs", 1, "--quiet", "--output", out_dir / "c.pt"]
    cases = {
        "unknown init": ["--init", "glorot", "--layers", 8],
        "missing checkpoint": ["--init", f"pretrained:{tmp_path / 'nope.pt'}"],
        "truncated checkpoint": ["--init", f"pretrained:{truncated}"],
        "other architecture": ["--init", f"pretrained:{ck16}", "--layers", 8, 5],
        "other activation": ["--init", f"pretrained:{ck16}", "--activation", "relu"],
        "labels 0": ["--labels", 0, "--layers", 8],
        "too many labels": ["--labels", 1000, "--layers", 8],
        "unknown optimizer": ["--optimizer", "rmsprop", "--layers", 8],
        "divergence": ["--init", "large-normal", "--lr", 1e38, "--momentum", 0, "--batch-size", 16, "--layers", 8],
    }
    for what, extra in cases.items():
        rc, _, err = cli(capsys, *base, *extra)
        assert rc == 2, what
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (what, err)
        assert not out_dir.exists(), what
    _, _, err = cli(capsys, *base, "--init", "large-normal", "--lr", 1e38, "--momentum", 0, "--batch-size", 16)
    assert "epoch 1" in err
    # a stack built for 16 inputs refused by 784-pixel data
    rc, _, err = cli(
        capsys,
        "--data-dir",
        tiny_mnist_dir,
        "--val-size",
        50,
        "--init",
        f"pretrained:{ck16}",
        "--quiet",
        "--output",
        out_dir / "c.pt",
    )
    assert rc == 2 and "16 inputs" in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists()
