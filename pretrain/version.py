"""The package version, and the versions every saved file records."""

import torch

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """``{"torch": ..., "pretrain": ...}``: what wrote a checkpoint or a results file."""
    return {"torch": str(torch.__version__), "pretrain": __version__}
