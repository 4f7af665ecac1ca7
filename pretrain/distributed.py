"""Data-parallel training under ``torchrun``: process group, data shards and gradient averaging.

``torchrun --nproc_per_node N -m pretrain.stack ...`` starts N copies of the command with the
environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. :func:`init_from_env`
joins them in one ``torch.distributed`` process group (``gloo`` on the CPU, ``nccl`` on CUDA);
without those variables (a plain ``python -m ...``) it does nothing and every helper here is a
no-op, so single-process runs are unchanged.

Every rank holds the same model (same seed, same initial weights) and trains on its own shard of
the in-memory training tensor, with ``batch_size / world`` examples a step, so N processes take
the same steps with the same global batch as one process. After each backward pass (or, for an
RBM, after the CD statistics are written into ``.grad``) the gradients are averaged across ranks
by one all-reduce, so the ranks stay identical. A collective that waits longer than
``PRETRAIN_DIST_TIMEOUT`` seconds (default 300), or finds a peer gone, raises ``PretrainError``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import PretrainError

DEFAULT_TIMEOUT_S = 300.0


def is_distributed() -> bool:
    """True inside an initialised process group (a ``torchrun`` run of more than one process)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or no process group): the process that writes files, metrics and progress bars."""
    return rank() == 0


def timeout_s() -> float:
    text = os.environ.get("PRETRAIN_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(text)
    except ValueError:
        raise PretrainError(f"PRETRAIN_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise PretrainError(f"PRETRAIN_DIST_TIMEOUT must be positive, got {text!r}")
    return value


def init_from_env(device: torch.device) -> torch.device:
    """Join the ``torchrun`` process group named by the environment; return this rank's device.

    Does nothing (and returns ``device``) unless ``WORLD_SIZE`` > 1 is set. On CUDA each rank
    uses GPU ``LOCAL_RANK`` and the ``nccl`` backend; on the CPU, ``gloo``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()))
        except (RuntimeError, ValueError) as err:
            raise PretrainError(f"could not join the torchrun process group: {_first_line(err)}") from None
    return device


def shutdown() -> None:
    """Leave the process group (if any)."""
    if is_distributed():
        dist.destroy_process_group()


def shard_indices(n: int, rank: int, world: int) -> torch.Tensor:
    """Indices ``rank, rank + world, ...`` of this rank's shard of ``range(n)``.

    Every shard has ``n // world`` examples (the ``n % world`` last ones are dropped) so that all
    ranks take the same number of steps and meet at every all-reduce.
    """
    if not 0 <= rank < world:
        raise PretrainError(f"rank {rank} outside a world of {world} processes")
    if n < world:
        raise PretrainError(f"{n} training examples cannot be split over {world} processes")
    per = n // world
    return torch.arange(rank, per * world, world)


def shard(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This rank's shard (rows, see :func:`shard_indices`) of each tensor; unchanged without a group."""
    if not is_distributed():
        return tensors
    idx = shard_indices(tensors[0].shape[0], rank(), world_size()).to(tensors[0].device)
    return tuple(t[idx] for t in tensors)


def local_batch_size(batch_size: int) -> int:
    """Examples a step on each rank, so that the global batch is ``batch_size``."""
    return math.ceil(batch_size / world_size())


def _collective_error(what: str, err: BaseException) -> PretrainError:
    return PretrainError(
        f"rank {rank()}/{world_size()}: {what} failed; another rank has probably died or hung "
        f"(timeout {timeout_s():g} s): {_first_line(err)}"
    )


def all_reduce_mean_grads(params: Iterable[torch.Tensor]) -> None:
    """Average ``p.grad`` over ranks in place, with one all-reduce for all of them (no-op alone)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    try:
        dist.all_reduce(flat)
    except (RuntimeError, ValueError) as err:
        raise _collective_error("averaging gradients", err) from None
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def average_grads_on_step(optimizer: torch.optim.Optimizer) -> None:
    """Average the gradients of ``optimizer``'s parameters across ranks before each of its steps.

    Works for any objective whose ``train_step`` fills ``.grad`` and then steps the optimizer (an
    autoencoder's backward pass, an RBM's CD statistics): the hook this registers makes
    ``training.optimizer_step`` take ``optimizer.step()``, which runs it. No-op without a process group.
    """
    if not is_distributed():
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: all_reduce_mean_grads(params))


def ddp(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` (its own device; parameters that need grad)."""
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    try:
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    except (RuntimeError, ValueError) as err:
        raise _collective_error("setting up DistributedDataParallel", err) from None


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over ranks (a new tensor; ``t`` itself without a group)."""
    if not is_distributed():
        return t
    out = t.clone()
    try:
        dist.all_reduce(out)
    except (RuntimeError, ValueError) as err:
        raise _collective_error("summing a metric", err) from None
    return out


def global_range(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself alone; under a group, ``[min, max]`` of ``x`` over every rank's shard, so that
    range checks (``x.min()``, ``x.max()``) on it decide the same way on every rank."""
    if not is_distributed():
        return x
    lo_hi = torch.stack([-x.min(), x.max()]).float()
    try:
        dist.all_reduce(lo_hi, op=dist.ReduceOp.MAX)
    except (RuntimeError, ValueError) as err:
        raise _collective_error("the input range", err) from None
    return torch.stack([-lo_hi[0], lo_hi[1]])


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op without a group)."""
    if not is_distributed():
        return
    try:
        for t in module.state_dict().values():
            if t.numel():
                dist.broadcast(t, 0)
    except (RuntimeError, ValueError) as err:
        raise _collective_error("broadcasting weights", err) from None


def barrier() -> None:
    """Wait for every rank (no-op without a group)."""
    if not is_distributed():
        return
    try:
        dist.barrier()
    except (RuntimeError, ValueError) as err:
        raise _collective_error("the barrier", err) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
