"""Greedy layer-wise unsupervised pretraining for plain PyTorch MLPs.

The main API is re-exported here; ``finetune()`` lives in ``pretrain.finetuning`` (the name
``pretrain.finetune`` is its command) and deep autoencoders in ``pretrain.deep_autoencoder``.
"""

from .checkpoint import load_checkpoint, save_atomic, write_json  # noqa: E402
from .classifier import make_classifier  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .diagnostics import diagnose  # noqa: E402
from .errors import DivergenceError, PretrainError  # noqa: E402
from .finetuning import FinetuneConfig, FinetuneResult  # noqa: E402
from .greedy import GreedyConfig, GreedyPretrainer, stack_checkpoint  # noqa: E402
from .init import initialize  # noqa: E402
from .layers import AutoencoderConfig, DenoisingConfig, RBMConfig  # noqa: E402
from .mlp import build_mlp, load_pretrained, mlp_layers  # noqa: E402
from .version import __version__  # noqa: E402, F401

__all__ = [
    "AutoencoderConfig",
    "Dataset",
    "DenoisingConfig",
    "DivergenceError",
    "FinetuneConfig",
    "FinetuneResult",
    "GreedyConfig",
    "GreedyPretrainer",
    "PretrainError",
    "RBMConfig",
    "build_mlp",
    "diagnose",
    "initialize",
    "load_checkpoint",
    "load_dataset",
    "load_pretrained",
    "make_classifier",
    "mlp_layers",
    "save_atomic",
    "stack_checkpoint",
    "write_json",
]
