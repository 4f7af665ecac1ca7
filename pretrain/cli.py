"""Shared command-line plumbing: one-line errors with exit code 2, argument types, devices."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

from .data import NAMED
from .errors import PretrainError


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose usage errors are one line on stderr and exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--data-dir`` and ``--val-size``, as ``pretrain.data.load_dataset`` takes them."""
    p.add_argument(
        "--data",
        default="mnist",
        help=f"a named data set ({', '.join(NAMED)}) or a .npz/.pt file holding X (N, D) and optionally y",
    )
    p.add_argument("--data-dir", default="data", help="where named data sets are downloaded and cached")
    p.add_argument(
        "--val-size",
        type=positive_float,
        default=None,
        help="training examples held out for validation: a count, or a fraction if < 1 "
        "(default: 5000 for named data sets, 0.1 for files)",
    )


def val_size_arg(value: float | None) -> int | float | None:
    """``--val-size`` as ``load_dataset`` wants it: a count as an int, a fraction as a float."""
    return int(value) if value is not None and value >= 1 else value


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PretrainError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PretrainError("--device cuda was asked for, but no CUDA device is available")
    return device


def run_main(prog: str, main: Callable[[], int | None]) -> int:
    """Run ``main``; turn a ``PretrainError`` into one line on stderr and exit code 2."""
    try:
        return main() or 0
    except PretrainError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
