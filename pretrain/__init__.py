"""Greedy layer-wise unsupervised pretraining for plain PyTorch MLPs."""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_atomic, stack_checkpoint  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .errors import DivergenceError, PretrainError  # noqa: E402
from .greedy import GreedyConfig, GreedyPretrainer  # noqa: E402
from .models import build_mlp  # noqa: E402

__all__ = [
    "Dataset",
    "DivergenceError",
    "GreedyConfig",
    "GreedyPretrainer",
    "PretrainError",
    "build_mlp",
    "load_checkpoint",
    "load_dataset",
    "save_atomic",
    "stack_checkpoint",
]
