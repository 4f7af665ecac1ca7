"""``freeze_epochs``: the first epochs train only the head, then every layer trains."""

import torch

from pretrain.classifier import make_classifier
from pretrain.data import Dataset, Split
from pretrain.finetuning import FinetuneConfig, finetune

from .conftest import make_blobs


def test_hidden_layers_stay_frozen_for_freeze_epochs_then_train():
    x, y = (torch.from_numpy(a) for a in make_blobs(n=200, d=16, classes=3))
    data = Dataset("blobs", Split(x[:128], y[:128]), Split(x[128:160], y[128:160]), Split(x[160:], y[160:]))
    model = make_classifier("xavier-uniform", n_in=16, n_classes=3, hidden=[12, 8], activation="sigmoid")[0]
    seen = []  # (hidden weight, head weight) as each training step's forward pass sees them
    model[0].register_forward_pre_hook(
        lambda m, args: (
            seen.append((model[0].weight.detach().clone(), model[4].weight.detach().clone()))
            if model.training
            else None
        )
    )
    start_hidden, start_head = model[0].weight.detach().clone(), model[4].weight.detach().clone()
    cfg = FinetuneConfig(lr=0.3, epochs=4, batch_size=32, patience=None, freeze_epochs=2)  # 4 steps an epoch
    finetune(model, data, cfg)

    assert len(seen) == 16
    for hidden, _ in seen[:9]:  # the 8 head-only steps left the hidden layer where it started
        assert torch.equal(hidden, start_hidden)
    assert not torch.equal(seen[8][1], start_head)  # while the head moved
    assert not torch.equal(seen[9][0], start_hidden)  # the first step of epoch 3 moved it: unfrozen
    assert not torch.equal(seen[-1][0], seen[9][0])  # and it keeps training
    assert all(p.requires_grad for p in model.parameters())  # the flags are restored at the end
