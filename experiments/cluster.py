"""Running a study's tasks: in this process, on a local process pool, or on a Dask cluster.

A study is a list of phases run one after the other (e.g. every stack, then every tuning group);
the tasks of one phase are independent. A task is ``(function, args)``: ``function`` is a
module-level function called as ``function(protocol_json, *args)``, which writes its results (cell
JSON files, cached stacks) under the protocol's ``output`` and ``cache`` folders and returns
something small. A task whose files already exist finishes at once, so an interrupted study
resumes from its files on any executor.

On Dask (``scheduler`` given) workers need no shared file system:

- at the start of a phase the client bundles the files under ``shared`` (the study's cells and the
  stacks its tasks may read, as they are on the client then) into one Dask future, which every
  worker fetches once for that phase;
- each worker process keeps a local copy of the protocol's two folders (its *task folder*, inside
  the worker's own scratch space), brings it in line with the bundle before each task, and runs the
  task with ``output`` and ``cache`` pointing there;
- the files the task wrote come back to the client with its result, and the client writes each one
  through the atomic writer (``pretrain.checkpoint.atomic_write``); a file the client already has is
  never written again.

Tasks in one worker process run one at a time (workers are meant to be started with one thread
each). The task folder's path is the same for every task of a study on a worker, so the protocol
JSON a task sees is too: the study's own per-process cache of its harness (data set loaded once
per process) then holds across tasks, so each worker loads the data once. A worker that dies
mid-task has its task rerun elsewhere by Dask (``distributed.scheduler.allowed-failures``); an
exception raised by a task is never retried: it stops the study. Dask is imported only here,
and only when a scheduler is given.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from glob import glob
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from experiments.results import digest
from pretrain.checkpoint import atomic_write
from pretrain.errors import PretrainError

Task = tuple[Callable[..., Any], tuple]
ROOTS = ("output", "cache")  # the protocol's fields naming the folders a task writes under

# Per-worker state, used only inside a Dask worker process: tasks there run one at a time.
_WORKER_LOCK = threading.Lock()


def run_phases(
    protocol_json: str,
    phases: Sequence[Sequence[Task]],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    shared: Sequence[str | Path] = (),
    quiet: bool = False,
    desc: str = "",
) -> list[list[Any]]:
    """Run every phase's tasks, a phase only once the one before it has finished; their results, in order.

    ``workers`` processes (1: in this process) unless ``scheduler``, the address of a running
    ``dask.distributed`` scheduler, is given. ``shared``: glob patterns (folders count with every
    file below them) of the files under the protocol's ``output`` or ``cache`` that a task may read;
    only Dask needs them. One progress bar over all tasks, unless ``quiet``.
    """
    bar = tqdm(total=sum(map(len, phases)), disable=quiet, unit="task", dynamic_ncols=True, desc=desc)
    try:
        if scheduler is not None:
            return _run_on_dask(protocol_json, phases, scheduler, shared, bar, desc)
        if workers == 1:
            return [[_serial(fn, protocol_json, args, bar) for fn, args in phase] for phase in phases]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            return [_pooled(pool, protocol_json, phase, bar) for phase in phases]
    finally:
        bar.close()


def _serial(fn: Callable, protocol_json: str, args: tuple, bar) -> Any:
    bar.set_postfix_str(", ".join(map(str, args)))
    value = fn(protocol_json, *args)
    bar.update(1)
    return value


def _pooled(pool: ProcessPoolExecutor, protocol_json: str, phase: Sequence[Task], bar) -> list[Any]:
    futures = {pool.submit(fn, protocol_json, *args): i for i, (fn, args) in enumerate(phase)}
    values: list[Any] = [None] * len(phase)
    for future in as_completed(futures):
        values[futures[future]] = future.result()
        bar.update(1)
    return values


# ------------------------------------------------------------------------------------ Dask
def _run_on_dask(
    protocol_json: str, phases: Sequence[Sequence[Task]], address: str, shared, bar, desc: str
) -> list[list[Any]]:
    try:
        from distributed import Client
    except ImportError:
        raise PretrainError("--scheduler needs Dask: pip install 'pretrain[dask]' (or -e '.[dask]')") from None
    with _client_logs_muted():
        try:
            client = Client(address, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise PretrainError(f"cannot reach the Dask scheduler at {address}: {_first_line(err)}") from None
        with client:
            return [_dask_phase(client, address, protocol_json, phase, shared, bar, desc) for phase in phases]


def _dask_phase(client, address: str, protocol_json: str, phase: Sequence[Task], shared, bar, desc: str) -> list[Any]:
    from distributed import KilledWorker, as_completed

    if not phase:
        return []
    roots = _roots(protocol_json)
    lost = PretrainError(f"lost the Dask scheduler at {address}; finished tasks' files are on disk: rerun to resume")
    try:
        n = len(client.nthreads())
        bar.set_description_str(f"{desc} on {n} Dask worker{'s' * (n != 1)}")
        with warnings.catch_warnings():  # a big bundle is sent once per phase, on purpose: its size is no news
            warnings.filterwarnings("ignore", message="Sending large graph")
            bundle = client.submit(_bundle, _read_shared(shared, roots), pure=False)
        futures = {
            client.submit(_remote, fn, protocol_json, args, bundle, pure=False, retries=0): i
            for i, (fn, args) in enumerate(phase)
        }
    except (OSError, TimeoutError, CancelledError):
        raise lost from None
    values: list[Any] = [None] * len(phase)
    for future in as_completed(futures, loop=client.loop):
        if future.status == "error" and isinstance(future.exception(), KilledWorker):
            raise PretrainError(f"a task killed every worker that ran it: {_first_line(future.exception())}")
        if future.status not in ("finished", "error"):  # cancelled: the client lost its scheduler
            raise lost
        value, files = future.result()  # a task's own exception is raised here, never retried
        for name, data in files.items():
            _write_once(roots, name, data)
        values[futures[future]] = value
        bar.update(1)
    bundle.release()
    return values


@contextmanager
def _client_logs_muted():
    """Silence the Dask client's own logs (a traceback per failed reconnection) so that an error stays one line."""
    loggers = [logging.getLogger(name) for name in ("distributed.client", "distributed.comm", "distributed.core")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _roots(protocol_json: str) -> dict[str, Path | None]:
    """The client's folders behind the names ``output`` and ``cache`` (None: the protocol has none)."""
    d = json.loads(protocol_json)
    return {r: Path(d[r]) if d.get(r) else None for r in ROOTS}


def _read_shared(patterns, roots: dict[str, Path | None]) -> dict[str, bytes]:
    """``{"<root>/<relative path>": bytes}`` of every file the patterns match under a root."""
    bundle = {}
    for pattern in patterns:
        for match in glob(str(pattern), recursive=True):
            paths = [match] if os.path.isfile(match) else glob(os.path.join(match, "**", "*"), recursive=True)
            for path in map(Path, paths):
                name = _name_under(roots, path)
                if name is not None and path.is_file() and not path.name.startswith("."):
                    bundle[name] = path.read_bytes()
    return bundle


def _name_under(roots: dict[str, Path | None], path: Path) -> str | None:
    resolved = path.resolve()
    for root, folder in roots.items():
        if folder is not None and resolved.is_relative_to(folder.resolve()):
            return f"{root}/{resolved.relative_to(folder.resolve()).as_posix()}"
    return None


def _write_once(roots: dict[str, Path | None], name: str, data: bytes) -> None:
    """Write a file a task returned, under the client's folder, unless the client already has it."""
    root, _, relative = name.partition("/")
    if roots.get(root) is None or ".." in Path(relative).parts or Path(relative).is_absolute():
        raise PretrainError(f"a task returned a file outside the study's folders: {name}")
    path = roots[root] / relative
    if not path.exists():
        atomic_write(path, lambda f: f.write(data))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# ------------------------------------------------------------------ on a Dask worker
def _bundle(files: dict[str, bytes]) -> dict[str, bytes]:
    """A phase's shared files as a task result, so that Dask can rebuild it if a worker holding it dies."""
    return files


def _remote(fn: Callable, protocol_json: str, args: tuple, bundle: dict[str, bytes]) -> tuple[Any, dict[str, bytes]]:
    """Run one task in this worker's task folder; its result and the files it wrote (``{"<root>/<path>": bytes}``)."""
    with _WORKER_LOCK:
        folder = _task_folder(protocol_json)
        _sync(folder, bundle)
        before = _snapshot(folder)
        value = fn(_local_protocol(protocol_json, folder), *args)
        after = _snapshot(folder)
        written = sorted(name for name, stamp in after.items() if before.get(name) != stamp)
        return value, {name: (folder / name).read_bytes() for name in written}


def _task_folder(protocol_json: str) -> Path:
    """This worker's folder for the study: the same for every task of it, different for other studies."""
    try:
        from distributed import get_worker

        scratch = Path(get_worker().local_directory)
    except (ImportError, ValueError):  # not inside a Dask worker (called directly, in tests)
        scratch = Path(tempfile.gettempdir())
    return scratch / "pretrain-tasks" / digest(protocol_json)


def _local_protocol(protocol_json: str, folder: Path) -> str:
    """The protocol with its folders inside ``folder`` and its progress bars off."""
    d = json.loads(protocol_json)
    for root in ROOTS:
        if d.get(root):
            d[root] = str(folder / root)
    d["quiet"] = True
    return json.dumps(d, sort_keys=True)


def _sync(folder: Path, bundle: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly the bundle's files, writing only those it lacks (or holds at another size)."""
    for name, (path, _) in _files(folder).items():
        if name not in bundle:
            path.unlink()
    for name, data in bundle.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != len(data):
            atomic_write(path, lambda f, data=data: f.write(data))


def _files(folder: Path) -> dict[str, tuple[Path, os.stat_result]]:
    out = {}
    for root in ROOTS:
        for path in (folder / root).rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                out[path.relative_to(folder).as_posix()] = (path, path.stat())
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file's identity: a file replaced or rewritten (the atomic writer renames a new file over it) changes it."""
    return {name: (s.st_ino, s.st_mtime_ns, s.st_size) for name, (_, s) in _files(folder).items()}
