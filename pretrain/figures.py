"""PNG pictures, written atomically: a stack's first-layer filters, inputs beside their reconstructions,
and any matplotlib figure."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from .checkpoint import atomic_write


def save_filters(weight: torch.Tensor, image_shape: tuple[int, int], path: str | Path, n: int = 100) -> Path:
    """Mosaic of the first ``n`` rows of ``weight`` ``(n_out, H*W)``, each scaled to [0, 1]."""
    w = weight[:n].detach().cpu().float()
    lo, hi = w.min(dim=1, keepdim=True).values, w.max(dim=1, keepdim=True).values
    tiles = ((w - lo) / (hi - lo).clamp_min(1e-12)).reshape(-1, 1, *image_shape)
    atomic_write(path, lambda f: save_image(tiles, f, format="png", nrow=10, padding=1, pad_value=1.0))
    return Path(path)


def save_reconstructions(x: torch.Tensor, x_hat: torch.Tensor, image_shape: tuple[int, int], path: str | Path) -> Path:
    """Rows of inputs ``x`` ``(N, H*W)`` (odd rows) above their reconstructions (even rows)."""
    n = min(10, x.shape[0])
    pairs = []
    for row in range(0, x.shape[0], n):
        pairs += [x[row : row + n], x_hat[row : row + n]]
    tiles = torch.cat(pairs).detach().cpu().float().clamp(0, 1).reshape(-1, 1, *image_shape)
    grid = make_grid(tiles, nrow=n, padding=1, pad_value=1.0)
    atomic_write(path, lambda f: save_image(grid, f, format="png"))
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """A matplotlib figure as a PNG at ``path``, atomically."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
