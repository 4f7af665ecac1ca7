"""FinetuneConfig's stopping options: what patience judges (monitor), by how much it must improve (tol),
and whether the best weights come back (restore_best); FinetuneResult.patience_stopped."""

import pytest
import torch

from pretrain.classifier import make_classifier
from pretrain.data import Dataset, Split
from pretrain.errors import PretrainError
from pretrain.finetuning import FinetuneConfig, finetune

from .conftest import make_blobs


def blobs() -> Dataset:
    x, y = (torch.from_numpy(a) for a in make_blobs(n=240, d=16, classes=3))
    return Dataset("blobs", Split(x[:160], y[:160]), Split(x[160:200], y[160:200]), Split(x[200:], y[200:]))


def model():
    return make_classifier("xavier-uniform", n_in=16, n_classes=3, hidden=[8], activation="sigmoid", seed=0)[0]


BASE = {"lr": 0.3, "batch_size": 32, "epochs": 40}


def test_defaults_keep_the_validation_error_rule():
    a = finetune(model(), blobs(), FinetuneConfig(patience=3, **BASE))
    b = finetune(model(), blobs(), FinetuneConfig(patience=3, monitor="val_error", tol=0.0, restore_best=True, **BASE))
    a, b = a.to_dict(), b.to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_train_loss_monitor_with_a_tolerance_stops_once_the_loss_stops_improving_by_it():
    tol = 0.05
    r = finetune(
        model(), blobs(), FinetuneConfig(patience=2, monitor="train_loss", tol=tol, restore_best=False, **BASE)
    )
    assert r.patience_stopped and r.stopped_early and len(r.steps) < 40
    best, since, stop = float("inf"), 0, None
    for i, loss in enumerate(r.train_loss):  # replay the rule on the recorded curve: it ends where the run ended
        since = 0 if loss < best - tol else since + 1  # against the best before this evaluation
        best = min(best, loss)
        if since == 2 and stop is None:
            stop = i
    assert stop == len(r.train_loss) - 1


def test_restore_best_false_keeps_the_last_weights_and_true_the_best_ones():
    cfg = {**BASE, "patience": None, "epochs": 8, "lr": 2.0}  # a large rate: the last epoch is rarely the best

    def run(**kw):
        m = model()
        return m, finetune(m, blobs(), FinetuneConfig(**{**cfg, **kw}))

    last_a, ra = run(restore_best=False)
    last_b, _ = run(restore_best=False, monitor="train_loss")  # the monitor alone changes no step
    best, rb = run(restore_best=True)
    assert torch.equal(last_a[0].weight, last_b[0].weight) and not ra.patience_stopped and len(ra.steps) == 8
    # the restored weights are those of a run stopped at the best evaluation
    upto, _ = run(restore_best=False, epochs=rb.best_step // rb.steps_per_epoch)
    assert torch.equal(best[0].weight, upto[0].weight)
    assert (rb.best_step == ra.steps[-1]) == torch.equal(best[0].weight, last_a[0].weight)


@pytest.mark.parametrize("field, value", [("monitor", "val_loss"), ("tol", -0.1), ("tol", float("nan"))])
def test_bad_stopping_settings_are_refused(field, value):
    with pytest.raises(PretrainError, match=field):
        FinetuneConfig(**{field: value})
