"""Greedy layer-wise unsupervised pretraining for plain PyTorch MLPs.

Fine-tuning and deep autoencoders live in ``pretrain.supervised`` and ``pretrain.unroll`` (their
main functions are not re-exported here, where they would shadow the ``pretrain.finetune`` CLI
module and the ``pretrain.unroll`` module).
"""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_atomic, stack_checkpoint  # noqa: E402
from .classifier import load_pretrained, make_classifier  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .diagnostics import diagnose  # noqa: E402
from .errors import DivergenceError, PretrainError  # noqa: E402
from .greedy import GreedyConfig, GreedyPretrainer  # noqa: E402
from .init import initialize  # noqa: E402
from .models import build_mlp  # noqa: E402

__all__ = [
    "Dataset",
    "DivergenceError",
    "GreedyConfig",
    "GreedyPretrainer",
    "PretrainError",
    "build_mlp",
    "diagnose",
    "initialize",
    "load_checkpoint",
    "load_dataset",
    "load_pretrained",
    "make_classifier",
    "save_atomic",
    "stack_checkpoint",
]
