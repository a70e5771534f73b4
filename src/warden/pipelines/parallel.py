"""Moderate rows on several processes, each loading the policy and its models once.

Python runs one detector at a time per process (the GIL, and ONNX sessions pinned to one
thread by the policy), so a file uses all cores only through processes. Workers are started
with `spawn`: forking a parent that already holds ONNX Runtime thread pools is unsafe, and
the parent here never loads the models. Output keeps input order; at most `2 * workers`
chunks are in flight, so memory stays bounded however large the input.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from warden.pipelines.readers import RawRow

#: Below this many rows `workers="auto"` stays in-process: starting a worker (imports and
#: model loading) costs a few seconds, more than it saves on a small file.
AUTO_PARALLEL_MIN_ROWS = 5_000

_WORKER_MODERATOR: Any = None


def resolve_workers(requested: int, *, total_rows: int | None) -> int:
    """`requested` > 0 is taken as is; 0 means auto: every core for large inputs, else 1."""
    if requested < 0:
        raise ValueError(f"workers must be >= 0 (0 = auto); got {requested}")
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if total_rows is not None and total_rows < AUTO_PARALLEL_MIN_ROWS:
        return 1
    return max(1, cores)


_WORKER_LOAD_ERROR: str | None = None


class WorkerStartError(RuntimeError):
    """A worker process could not load the policy or its models: nothing can be moderated."""


def _init_worker(policy_path: str, first: Callable[..., None] | None = None, first_args: tuple[Any, ...] = ()) -> None:
    global _WORKER_MODERATOR, _WORKER_LOAD_ERROR
    if first is not None:  # before the slow model load, e.g. to ignore Ctrl-C from the start
        first(*first_args)
    # An exception here would surface only as an opaque BrokenProcessPool: keep it and raise it
    # with the first task instead (the parent does not load the models itself).
    try:
        from warden.moderator import Moderator

        _WORKER_MODERATOR = Moderator.from_file(policy_path)
    except Exception as exc:
        _WORKER_LOAD_ERROR = f"{type(exc).__name__}: {exc}"


def worker_moderator() -> Any:
    """The Moderator this worker process loaded when it started (inside a `spawn_pool` worker)."""
    if _WORKER_LOAD_ERROR is not None:
        raise WorkerStartError(f"a worker process could not load the policy: {_WORKER_LOAD_ERROR}")
    if _WORKER_MODERATOR is None:
        raise RuntimeError("not inside a worker started by spawn_pool: no Moderator was loaded here")
    return _WORKER_MODERATOR


def spawn_pool(policy_path: str | Path, *, workers: int, initializer: Callable[..., None] | None = None,
               initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each running `initializer(*initargs)` and then
    loading `policy_path` once (see `worker_moderator`). Shared by `warden classify` and
    `warden batch`: both must load models the same way."""
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(str(policy_path), initializer, initargs))


def _classify_in_worker(chunk: list[RawRow], surface: str, media_root: Path | None = None) -> list[dict[str, Any]]:
    from warden.pipelines.classify import classify_chunk

    return list(classify_chunk(worker_moderator(), chunk, surface, media_root=media_root))


def _chunks(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    chunk: list[RawRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify_rows_parallel(policy_path: str | Path, rows: Iterable[RawRow], *, surface: str, workers: int,
                           batch_size: int = 256, media_root: Path | None = None) -> Iterator[dict[str, Any]]:
    """Like `classify_rows`, on `workers` processes. Bad rows become error lines inside the
    workers as in-process; a chunk whose worker raises becomes error lines for its rows. A
    worker process that dies (killed, out of memory) breaks the pool: the rows not yet done
    are reported as error lines naming the cause, never silently dropped."""
    with spawn_pool(policy_path, workers=workers) as pool:
        pending: deque[tuple[list[RawRow], Future[list[dict[str, Any]]]]] = deque()
        for chunk in _chunks(rows, batch_size):
            pending.append((chunk, pool.submit(_classify_in_worker, chunk, surface, media_root)))
            if len(pending) >= 2 * workers:
                yield from _collect(*pending.popleft())
        while pending:
            yield from _collect(*pending.popleft())


def _collect(chunk: list[RawRow], future: Future[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    from warden.pipelines.classify import error_line

    try:
        lines = future.result()
    except WorkerStartError:
        raise  # no row can succeed: stop with the cause instead of an error line per row
    except Exception as exc:  # a worker died or raised: report its rows, keep the run going
        message = f"worker failed: {type(exc).__name__}: {exc}"
        yield from (error_line(row, f"row {row.index}: {message}") for row in chunk)
        return
    yield from lines
