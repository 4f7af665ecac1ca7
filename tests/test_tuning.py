"""Tuning: the choice rules (failures on either seed, the safer rate below a failing one, grid extension,
confirmation on the second seed), the retune grid past B, scaled budgets and fitted-at-restore."""

from __future__ import annotations

import math

import torch

from experiments.harness import TUNING_SEEDS, Budget, Training, Tuning, choice, neighbour_grid, tune_rates
from pretrain.classifier import make_classifier
from pretrain.data import Dataset, Split
from pretrain.finetuning import FinetuneConfig, finetune

from .conftest import make_blobs

GRID = (0.1, 0.3, 1.0)


def cell(val: float | None = 5.0, *, trained: bool = True, fitted: bool = True, loss: float = 1.0, n_val=1000):
    """A tuning cell with the fields the rules read (``val``: best validation error %, None: diverged)."""
    if val is None:
        return {"diverged": True, "trained": False}
    return {
        "diverged": False,
        "trained": trained,
        "fitted": fitted,
        "val_error_best": val,
        "val_loss_best": loss,
        "n_val": n_val,
    }


def test_best_rate_below_a_failing_rate_gives_way_to_the_safe_rate_within_one_standard_error():
    t = Tuning(grid=(0.03, 0.1, 0.3, 1.0))
    # 0.3 is best, 1.0 above it stayed at chance; 0.1 is 0.2 points worse on 1,000 validation examples, and
    # one standard error of 2.0% there is 100 * sqrt(0.02 * 0.98 / 1000) = 0.443 points: 0.1 is chosen
    cells = {0.03: cell(4.0), 0.1: cell(2.2), 0.3: cell(2.0), 1.0: cell(88.0, trained=False)}
    v = choice(cells, {}, t.grid, t)
    assert (v["lr"], v["safer"], v["status"], v["confirm"]) == (0.1, True, "interior", 0.1)
    assert v["out"] == {"1": "not trained"}
    # 0.6 points worse is more than one standard error: the best stays
    cells[0.1] = cell(2.6)
    v = choice(cells, {}, t.grid, t)
    assert (v["lr"], v["safer"]) == (0.3, False)
    # no failure above the best: no move, however close the next lower rate is
    cells = {0.03: cell(4.0), 0.1: cell(2.01), 0.3: cell(2.0), 1.0: cell(3.0)}
    assert choice(cells, {}, t.grid, t)["lr"] == 0.3
    # diverged and not fitted are failures too
    for bad in (cell(None), cell(1.0, fitted=False)):
        cells = {0.03: cell(4.0), 0.1: cell(2.2), 0.3: cell(2.0), 1.0: bad}
        assert choice(cells, {}, t.grid, t)["lr"] == 0.1


def test_not_fitted_counts_only_when_the_tuning_requires_a_fit():
    cells = {0.1: cell(3.0), 0.3: cell(2.0, fitted=False), 1.0: cell(4.0)}
    assert choice(cells, {}, GRID, Tuning())["lr"] == 0.1
    assert choice(cells, {}, GRID, Tuning(require_fit=False))["lr"] == 0.3


def test_a_rate_that_fails_on_the_second_seed_is_out_and_the_choice_is_made_again():
    t = Tuning(grid=GRID)
    cells = {0.1: cell(3.0), 0.3: cell(2.0), 1.0: cell(2.5)}
    v = choice(cells, {}, GRID, t)
    assert (v["lr"], v["confirm"]) == (0.3, 0.3)
    v = choice(cells, {0.3: cell(90.0, trained=False)}, GRID, t)
    assert v["out"] == {"0.3": "not trained (second seed)"}
    assert (v["lr"], v["confirm"]) == (1.0, None) and v["extend"] == "up"  # 1.0 is now the best, at the top edge
    v = choice(cells, {0.3: cell(2.4)}, GRID, t)
    assert (v["lr"], v["confirm"], v["extend"], v["status"]) == (0.3, None, None, "interior")


def test_tune_rates_runs_the_grid_extends_confirms_and_chooses_again():
    # validation error falls with the rate up to 1.0; 3.16 diverges; 1.0 fails on the second seed
    first = {0.1: cell(5.0), 0.3: cell(4.0), 1.0: cell(3.0), 3.16: cell(None)}
    second = {1.0: cell(90.0, trained=False), 0.3: cell(4.2)}
    asked = []

    def get(seed, lr):
        asked.append((seed, lr))
        return (first if seed == TUNING_SEEDS[0] else second)[lr]

    v = tune_rates(get, GRID, Tuning(grid=GRID))
    a, b = TUNING_SEEDS
    assert asked == [(a, 0.1), (a, 0.3), (a, 1.0), (a, 3.16), (b, 1.0), (b, 0.3)]
    assert (v["lr"], v["status"], v["safer"]) == (0.3, "interior", False)
    assert v["out"] == {"3.16": "diverged", "1": "not trained (second seed)"}
    assert v["rates"] == [0.1, 0.3, 1.0, 3.16] and v["confirmations"] == {"0.3": 4.2, "1": 90.0}


def test_tune_rates_with_missing_cells_is_unfinished():
    v = tune_rates(lambda seed, lr: cell(3.0) if lr < 1 else None, GRID, Tuning(grid=GRID))
    assert (v["lr"], v["status"]) == (None, "unfinished") and v["trials"] == {"0.1": 3.0, "0.3": 3.0}


def test_did_not_train_and_no_rate_passed():
    t = Tuning(grid=GRID)
    v = choice({0.1: cell(None), 0.3: cell(89.0, trained=False), 1.0: cell(None)}, {}, GRID, t)
    assert (v["lr"], v["status"], v["extend"]) == (None, "did not train", None)
    v = choice({0.1: cell(5.0, fitted=False), 0.3: cell(4.0, fitted=False), 1.0: cell(None)}, {}, GRID, t)
    assert (v["lr"], v["status"]) == (None, "no rate passed")


def test_extension_past_an_edge_up_to_the_cap():
    t = Tuning(grid=GRID, max_extensions=2)
    v = choice({0.1: cell(5), 0.3: cell(4), 1.0: cell(3)}, {}, GRID, t)
    assert (v["lr"], v["status"], v["extend"], v["confirm"]) == (1.0, "edge", "up", None)
    v = choice({0.1: cell(5), 0.3: cell(4), 1.0: cell(3), 3.16: cell(2), 10.0: cell(1)}, {}, GRID, t)
    assert (v["lr"], v["status"], v["extend"], v["confirm"]) == (10.0, "capped", None, 10.0)
    v = choice({0.1: cell(3, loss=0.5), 0.3: cell(3, loss=0.4), 1.0: cell(4)}, {}, GRID, t)  # tie: lower loss
    assert v["lr"] == 0.3 and v["status"] == "interior"


def test_the_retune_grid_is_the_choice_at_B_and_its_neighbours():
    t = Tuning(grid=GRID)
    assert neighbour_grid({"lr": 0.3, "rates": [0.1, 0.3, 1.0]}, t) == (0.1, 0.3, 1.0)
    assert neighbour_grid({"lr": 1.0, "rates": [0.1, 0.3, 1.0]}, t) == (0.3, 1.0, 3.16)  # one step past the edge
    # three significant digits
    assert neighbour_grid({"lr": 0.0316, "rates": [0.0316, 0.1, 0.3]}, t) == (0.00999, 0.0316, 0.1)
    assert neighbour_grid({"lr": None, "rates": [0.1]}, t) == GRID


def test_a_budget_scales_decay_and_cap_together():
    b = Budget(decay_epochs=15, min_decay_steps=3000, cap_factor=2.0, evals_per_decay=40)
    one, four = b.steps(55000, 128), b.scaled(4).steps(55000, 128)
    assert one["decay_steps"] == 6450 and four["decay_steps"] == 4 * 6450  # 15 epochs of 430 steps
    assert four["max_steps"] == 4 * one["max_steps"] == 4 * 2 * 6450
    assert (one["eval_every"], four["eval_every"]) == (6450 // 40, 4 * 6450 // 40)  # the same 40 evaluations
    assert b.scaled(4).steps(1000, 128)["decay_steps"] == 12000  # the floor scales too: 4 x 3,000
    assert b.scaled(1) is b
    assert Training(budget=b).config(1000, 55000, 0.1, 0, budget=2.0).decay_steps == 6000


def test_fitted_means_fitted_at_the_restored_checkpoint():
    # learnable training labels, random validation labels: the best validation error comes early, before
    # the training set is fitted, so a window reached the fit threshold but the restored weights did not
    x, y = (torch.from_numpy(a) for a in make_blobs(n=300, d=16, classes=3))
    y_val = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(0))
    data = Dataset("blobs", Split(x[:180], y[:180]), Split(x[180:240], y_val), Split(x[240:], y[240:]))
    model = make_classifier("xavier-uniform", n_in=16, n_classes=3, hidden=[12, 8], activation="sigmoid", seed=0)[0]
    config = FinetuneConfig(lr=0.3, max_steps=120, eval_every=2, batch_size=32, patience=None, fit_error=0.02)
    r = finetune(model, data, config)
    assert min(r.train_error) <= 0.02 < r.train_error_final  # the premise: fitted in a window, not at restore
    assert not r.fitted
    assert math.isfinite(r.train_loss_final) and r.train_loss_final > 0
    r = finetune(model, data, FinetuneConfig(**{**config.__dict__, "fit_error": 1.0}))
    assert r.fitted and r.train_error_final <= 1.0
