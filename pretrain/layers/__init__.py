"""Layer objectives and their registry: a new objective adds one module and one entry here."""

from .autoencoder import AUTOENCODER, DENOISING, AutoencoderConfig, AutoencoderLayer, DenoisingConfig
from .base import LayerObjective, Objective
from .rbm import RBM, RBMConfig, RBMLayer
from .supervised import SUPERVISED, SupervisedConfig, SupervisedLayer

OBJECTIVES: dict[str, Objective] = {
    "autoencoder": AUTOENCODER,
    "denoising": DENOISING,
    "rbm": RBM,
    "supervised": SUPERVISED,
}

__all__ = [
    "OBJECTIVES",
    "AutoencoderConfig",
    "AutoencoderLayer",
    "DenoisingConfig",
    "LayerObjective",
    "Objective",
    "RBMConfig",
    "RBMLayer",
    "SupervisedConfig",
    "SupervisedLayer",
]
