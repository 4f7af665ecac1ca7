"""Greedy layer-wise unsupervised pretraining for plain PyTorch MLPs."""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_atomic, stack_checkpoint  # noqa: E402
from .classifier import load_pretrained, make_classifier  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .diagnostics import diagnose  # noqa: E402
from .errors import DivergenceError, PretrainError  # noqa: E402
from .greedy import GreedyConfig, GreedyPretrainer  # noqa: E402
from .init import initialize  # noqa: E402
from .models import build_mlp  # noqa: E402
from .supervised import FinetuneConfig, finetune  # noqa: E402
from .unroll import unroll  # noqa: E402

__all__ = [
    "Dataset",
    "DivergenceError",
    "FinetuneConfig",
    "GreedyConfig",
    "GreedyPretrainer",
    "PretrainError",
    "build_mlp",
    "diagnose",
    "finetune",
    "initialize",
    "load_checkpoint",
    "load_dataset",
    "load_pretrained",
    "make_classifier",
    "save_atomic",
    "stack_checkpoint",
    "unroll",
]
