"""`warden batch`: moderate JSONL, CSV and Parquet files into a Parquet dataset on every
core, resumably.

Why it is built this way:

* Work units are deterministic: rows [k*C, (k+1)*C) of input file i (C = chunk size). Each
  unit becomes one part file `part-{i:05d}-{k:06d}.parquet`, written under a hidden temp name,
  fsynced, then renamed, so a part exists whole or not at all, whenever the run is killed.
* A manifest (`_warden_batch.json`) records what the parts are made from: each input's path,
  size and mtime, the policy's name, version and fingerprint, the chunk and batch sizes, the
  surface and the output schema version. A rerun with the same manifest skips the finished
  parts and makes the rest; a part depends only on its rows and the policy, so the output is
  byte-identical to an uninterrupted run's. A rerun where anything changed is refused: one
  output mixing two policies or two versions of a file would be silently wrong. --restart
  discards the parts and starts over.
* Rows go through `classify_chunk`, the core of `warden classify` and of `warden.spark`, on
  processes from `spawn_pool` (each loads the models once). Output rows: `decision_table`.
* Bad rows become error rows, and so does the unreadable rest of a file (a broken Parquet
  file: one error row). Only the machinery failing (a worker killed, a full disk) stops a
  run, and rerunning the same command resumes it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from warden.pipelines.classify import _progress
from warden.pipelines.decision_table import SCHEMA_VERSION, moderate_records, records_to_table
from warden.pipelines.readers import RawRow, UnreadableInput, count_rows, detect_format, read_rows

MANIFEST = "_warden_batch.json"
LOCK = ".warden_batch.lock"
MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_BATCH_SIZE = 256
#: Extensions a folder given as input is searched for (a file named explicitly may use --format).
FOLDER_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq")


class BatchError(ValueError):
    """The batch cannot start as asked; the message says what to do."""


class OutputConflict(BatchError):
    """The output folder holds something else: another batch's parts, or foreign files."""


class BatchIncomplete(RuntimeError):
    """Some work units were not finished (a worker died, a disk filled up). The finished
    parts are kept: rerunning the same command resumes."""


@dataclass(frozen=True, slots=True)
class InputFile:
    path: Path  # absolute
    format: str
    size: int
    mtime_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Everything the parts depend on: equal plans make identical parts."""

    inputs: tuple[InputFile, ...]
    policy_name: str
    policy_version: str
    policy_fingerprint: str
    surface: str
    chunk_size: int
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "schema_version": SCHEMA_VERSION,
            "inputs": [f.to_dict() for f in self.inputs],
            "policy": {"name": self.policy_name, "version": self.policy_version,
                       "fingerprint": self.policy_fingerprint},
            "surface": self.surface,
            "chunk_size": self.chunk_size,
            "batch_size": self.batch_size,
        }


@dataclass(frozen=True, slots=True)
class WorkUnit:
    file_index: int
    chunk_index: int
    source_file: str

    @property
    def part_name(self) -> str:
        return part_name(self.file_index, self.chunk_index)


@dataclass(frozen=True, slots=True)
class UnitResult:
    part: str
    rows: int
    errors: int
    actions: dict[str, int]


@dataclass(frozen=True, slots=True)
class BatchResult:
    output: Path
    parts: int
    rows: int
    errors: int
    actions: dict[str, int]
    resumed_parts: int  # finished by an earlier, interrupted run and skipped
    resumed_rows: int
    workers: int
    seconds: float
    already_complete: bool = False  # the output was complete before this run: nothing was done

    @property
    def new_rows(self) -> int:
        return self.rows - self.resumed_rows


def part_name(file_index: int, chunk_index: int) -> str:
    return f"part-{file_index:05d}-{chunk_index:06d}.parquet"


# -- inputs -----------------------------------------------------------------------------------


def collect_inputs(paths: Sequence[str | Path], *, fmt: str | None = None,
                   exclude: Path | None = None) -> tuple[InputFile, ...]:
    """The input files in a stable order: arguments in the order given, a folder's files
    (searched recursively for FOLDER_SUFFIXES) sorted by path. Hidden and `_`-prefixed files
    and anything under `exclude` (the output folder) are skipped; duplicates count once."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise UnreadableInput(f"input not found: {p}")
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FOLDER_SUFFIXES
                            and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts))
            found.extend(inside)
        else:
            found.append(p)
    seen: set[Path] = set()
    out: list[InputFile] = []
    excluded = exclude.resolve() if exclude is not None else None
    for p in found:
        r = p.resolve()
        if r in seen or (excluded is not None and r.is_relative_to(excluded)):
            continue
        seen.add(r)
        st = r.stat()
        out.append(InputFile(path=r, format=detect_format(r, fmt), size=st.st_size, mtime_ns=st.st_mtime_ns))
    if not out:
        raise UnreadableInput(f"no input files in {', '.join(map(str, paths))}: folders are searched for "
                              f"{', '.join('*' + s for s in FOLDER_SUFFIXES)}")
    return tuple(out)


def plan_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between the plan in a manifest and this run's, in words."""
    diffs: list[str] = []
    for key in ("manifest_version", "schema_version"):
        if old.get(key) != new.get(key):
            diffs.append(f"{key.replace('_', ' ')}: {old.get(key)} -> {new.get(key)} (made by another Warden "
                         "version)")
    op, np_ = old.get("policy") or {}, new["policy"]
    if op.get("fingerprint") != np_["fingerprint"]:
        diffs.append(f"policy: {op.get('name')} {op.get('version')} (fingerprint {str(op.get('fingerprint'))[:12]}) "
                     f"-> {np_['name']} {np_['version']} (fingerprint {np_['fingerprint'][:12]})")
    for key in ("surface", "chunk_size", "batch_size"):
        if old.get(key) != new[key]:
            diffs.append(f"{key.replace('_', '-')}: {old.get(key)} -> {new[key]}")
    old_inputs = {f["path"]: f for f in old.get("inputs") or []}
    new_inputs = {f["path"]: f for f in new["inputs"]}
    for path, f in new_inputs.items():
        before = old_inputs.get(path)
        if before is None:
            diffs.append(f"new input: {path}")
        elif before != f:
            what = [k for k in ("format", "size", "mtime_ns") if before.get(k) != f[k]]
            diffs.append(f"input changed: {path} ({', '.join('modified' if k == 'mtime_ns' else k for k in what)})")
    diffs += [f"input no longer given: {p}" for p in old_inputs if p not in new_inputs]
    if not diffs and list(old_inputs) != list(new_inputs):
        diffs.append("the inputs are given in another order (parts are numbered by input position)")
    return diffs


# -- the output folder ------------------------------------------------------------------------


@dataclass
class _OutputState:
    done: dict[str, int] = field(default_factory=dict)  # finished part -> rows
    complete: dict[str, Any] | None = None  # the manifest of a finished batch


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _ours(path: Path) -> bool:
    n = path.name
    return n == MANIFEST or (n.startswith("part-") and n.endswith(".parquet")) or (
        n.startswith((".part-", f".{MANIFEST}")) and n.endswith(".tmp"))


def _clear(output: Path) -> None:
    for p in output.iterdir():
        if _ours(p):
            p.unlink()


def _prepare_output(output: Path, plan: BatchPlan, *, restart: bool) -> _OutputState:
    manifest_path = output / MANIFEST
    plan_dict = plan.to_dict()
    if not manifest_path.exists():
        foreign = sorted(p.name for p in output.iterdir() if p.name != LOCK)
        if foreign:
            raise OutputConflict(f"{output} is not empty and holds no {MANIFEST} (found {', '.join(foreign[:3])}"
                                 f"{', ...' if len(foreign) > 3 else ''}): give warden batch a new or empty folder")
        _write_json_atomic(manifest_path, {"plan": plan_dict, "complete": False})
        return _OutputState()
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        old_plan = manifest["plan"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not restart:
            raise OutputConflict(f"{manifest_path} is unreadable ({exc}); pass --restart to discard {output}'s "
                                 "parts and start over") from None
        old_plan, manifest = None, {}
    diffs = plan_differences(old_plan, plan_dict) if old_plan is not None else ["unreadable manifest"]
    if diffs and not restart:
        listed = "\n".join(f"  - {d}" for d in diffs)
        raise OutputConflict(f"{output} holds a batch made from other inputs or settings:\n{listed}\nRerun with "
                             "the same inputs and options to resume it, or pass --restart to discard its parts and "
                             "start over.")
    if diffs or restart:
        _clear(output)
        _write_json_atomic(manifest_path, {"plan": plan_dict, "complete": False})
        return _OutputState()
    if manifest.get("complete"):
        return _OutputState(complete=manifest)
    state = _OutputState()
    for p in output.iterdir():
        if p.name.startswith(".part-") and p.name.endswith(".tmp"):
            p.unlink()  # a part being written when the last run was killed
    for p in sorted(output.glob("part-*.parquet")):
        try:
            state.done[p.name] = pq.ParquetFile(p).metadata.num_rows
        except Exception:  # cannot happen with rename-after-fsync, unless the disk lied: redo the part
            p.unlink()
    return state


class _OutputLock:
    """One batch at a time per output folder (a second one would race on the same parts)."""

    def __init__(self, output: Path) -> None:
        self.path = output / LOCK

    def __enter__(self) -> _OutputLock:
        import fcntl

        self._fh = self.path.open("a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise OutputConflict(f"another warden batch is writing to {self.path.parent}; wait for it or choose "
                                 "another output folder") from None
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


# -- work units -------------------------------------------------------------------------------


def iter_units(inputs: Sequence[InputFile], chunk_size: int) -> Iterator[tuple[WorkUnit, list[RawRow]]]:
    """(unit, rows) for every input in order. An empty file is one empty unit (an empty part
    keeps the file visible in the output); a read that fails midway ends that file with one
    error row, so the failure is in the output instead of stopping the batch."""
    for i, f in enumerate(inputs):
        rows = read_rows(f.path, f.format)
        chunk: list[RawRow] = []
        k = 0
        next_index = 0
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except Exception as exc:
                chunk.append(RawRow(next_index, None, f"cannot read {f.path.name} from row {next_index} on: "
                                    f"{type(exc).__name__}: {exc}"))
                break
            chunk.append(row)
            next_index = row.index + 1
            if len(chunk) >= chunk_size:
                yield WorkUnit(i, k, str(f.path)), chunk
                k += 1
                chunk = []
        if chunk or k == 0:
            yield WorkUnit(i, k, str(f.path)), chunk


def run_unit(moderator: Any, unit: WorkUnit, rows: list[RawRow], *, output: Path, surface: str, batch_size: int,
             policy_version: str, advance: Callable[[int], None] | None = None) -> UnitResult:
    """Moderate one unit in detector batches and write its part atomically."""
    records = moderate_records(moderator, rows, sources=[(unit.source_file, r.index) for r in rows], surface=surface,
                               batch_size=batch_size, policy_version=policy_version,
                               media_root=Path(unit.source_file).parent, advance=advance)
    _write_part(records, output / unit.part_name)
    actions = Counter(r["action"] for r in records if r["error"] is None)
    return UnitResult(part=unit.part_name, rows=len(records), errors=sum(r["error"] is not None for r in records),
                      actions=dict(actions))


def _write_part(records: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table = records_to_table(records)
    # one row group per part; no timestamps in the file, so equal rows give equal bytes
    pq.write_table(table, tmp, compression="zstd", row_group_size=max(1, len(records)))
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- worker processes -------------------------------------------------------------------------

_PROGRESS_QUEUE: Any = None


def _init_batch_worker(progress_queue: Any) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    # Ctrl-C goes to the whole process group: only the parent handles it (it lets the units
    # in flight finish and keeps their parts), so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _unit_in_worker(unit: WorkUnit, rows: list[RawRow], output: str, surface: str, batch_size: int,
                    policy_version: str) -> UnitResult:
    from warden.pipelines.parallel import worker_moderator

    queue = _PROGRESS_QUEUE
    return run_unit(worker_moderator(), unit, rows, output=Path(output), surface=surface, batch_size=batch_size,
                    policy_version=policy_version, advance=queue.put if queue is not None else None)


# -- the run ----------------------------------------------------------------------------------


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_batch(inputs: Sequence[str | Path], output: str | Path, *, policy_path: str | Path, moderator: Any = None,
              workers: int = 0, chunk_size: int = DEFAULT_CHUNK_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
              surface: str = "comment", fmt: str | None = None, restart: bool = False,
              progress: bool = False) -> BatchResult:
    """Moderate `inputs` (files or folders) into the Parquet dataset folder `output`.

    `workers` 0 = every core, never more than the work units left; 1 runs in this process
    (with `moderator` if given, which must be loaded from `policy_path`). Raises BatchError
    (with OutputConflict) before any work when the run cannot start as asked, and
    BatchIncomplete when units failed: rerun the same call to finish them.
    """
    from warden.policy import load_policy_file
    from warden.policy.loader import fingerprint

    started = time.perf_counter()
    if chunk_size < 1 or batch_size < 1:
        raise BatchError(f"chunk-size and batch-size must be >= 1, got {chunk_size} and {batch_size}")
    if workers < 0:
        raise BatchError(f"workers must be >= 0 (0 = every core), got {workers}")
    loaded = load_policy_file(policy_path)
    policy = loaded.policy
    if surface not in policy.surfaces:
        raise BatchError(f"unknown surface {surface!r}; the policy defines: {', '.join(policy.surfaces)}")
    if moderator is not None and fingerprint(moderator.policy) != loaded.fingerprint:
        raise BatchError(f"the moderator given was not loaded from {policy_path} (its policy differs)")
    out = Path(output).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputConflict(f"{out} is a file; the output of warden batch is a folder of Parquet parts: choose a "
                             "folder path")
    files = collect_inputs(inputs, fmt=fmt, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    plan = BatchPlan(inputs=files, policy_name=policy.name, policy_version=policy.version,
                     policy_fingerprint=loaded.fingerprint, surface=surface, chunk_size=chunk_size,
                     batch_size=batch_size)
    with _OutputLock(out):
        state = _prepare_output(out, plan, restart=restart)
        if state.complete is not None:
            m = state.complete
            return BatchResult(output=out, parts=m["parts"], rows=m["rows"], errors=m["errors"],
                               actions=m["actions"], resumed_parts=m["parts"], resumed_rows=m["rows"], workers=0,
                               seconds=time.perf_counter() - started, already_complete=True)
        counts = [count_rows(f.path, f.format) for f in files]
        total = None if any(c is None for c in counts) else sum(c or 0 for c in counts)
        resumed_rows = sum(state.done.values())
        if workers == 0:
            units_left = max(1, math.ceil(max(0, (total or 0) - resumed_rows) / chunk_size)) if total is not None \
                else available_cores()
            workers = max(1, min(available_cores(), units_left))
        stats = _Stats()
        for name in state.done:  # counts of parts an earlier run finished
            t = pq.read_table(out / name, columns=["action", "error"])
            stats.add_part(t.column("action").to_pylist(), t.column("error").to_pylist())
        with _progress(progress, total, label="moderating", completed=resumed_rows) as advance:
            if workers == 1:
                from warden.moderator import Moderator

                mod = moderator if moderator is not None else Moderator.from_file(policy_path)
                expected = _run_in_process(mod, files, plan, out, state, stats, advance)
            else:
                expected = _run_in_pool(loaded.path, workers, files, plan, out, state, stats, advance)
        for p in out.glob("part-*.parquet"):
            if p.name not in expected:  # a part no unit of this plan makes (cannot normally happen)
                p.unlink()
        _fsync_dir(out)
        _write_json_atomic(out / MANIFEST, {"plan": plan.to_dict(), "complete": True, "parts": len(expected),
                                            "rows": stats.rows, "errors": stats.errors,
                                            "actions": dict(sorted(stats.actions.items()))})
    return BatchResult(output=out, parts=len(expected), rows=stats.rows, errors=stats.errors,
                       actions=dict(stats.actions.most_common()), resumed_parts=len(state.done),
                       resumed_rows=resumed_rows, workers=workers, seconds=time.perf_counter() - started)


@dataclass
class _Stats:
    rows: int = 0
    errors: int = 0
    actions: Counter[str] = field(default_factory=Counter)

    def add(self, result: UnitResult) -> None:
        self.rows += result.rows
        self.errors += result.errors
        self.actions.update(result.actions)

    def add_part(self, actions: list[str | None], errors: list[str | None]) -> None:
        self.rows += len(actions)
        self.errors += sum(e is not None for e in errors)
        self.actions.update(a for a, e in zip(actions, errors, strict=True) if e is None and a is not None)


def _run_in_process(moderator: Any, files: Sequence[InputFile], plan: BatchPlan, out: Path, state: _OutputState,
                    stats: _Stats, advance: Callable[[int], None]) -> set[str]:
    expected: set[str] = set()
    for unit, rows in iter_units(files, plan.chunk_size):
        expected.add(unit.part_name)
        if unit.part_name in state.done:
            continue
        try:
            result = run_unit(moderator, unit, rows, output=out, surface=plan.surface, batch_size=plan.batch_size,
                              policy_version=plan.policy_version, advance=advance)
        except OSError as exc:  # writing the part failed (disk full, permissions): resumable later
            raise BatchIncomplete(f"{unit.part_name}: cannot write the part: {exc}. The finished parts are kept: "
                                  "fix the cause and rerun the same command to resume.") from exc
        stats.add(result)
    return expected


def _run_in_pool(policy_path: Path, workers: int, files: Sequence[InputFile], plan: BatchPlan, out: Path,
                 state: _OutputState, stats: _Stats, advance: Callable[[int], None]) -> set[str]:
    import multiprocessing

    from warden.pipelines.parallel import spawn_pool

    queue = multiprocessing.get_context("spawn").SimpleQueue()
    stop = threading.Event()

    def drain() -> None:
        # Rows done inside the workers, reported per detector batch. Polled rather than ended
        # by a sentinel: a worker killed while writing could leave the queue's write lock held.
        while True:
            if not queue.empty():
                advance(queue.get())
            elif stop.is_set():
                return
            else:
                time.sleep(0.05)

    drainer = threading.Thread(target=drain, name="batch-progress", daemon=True)
    drainer.start()
    expected: set[str] = set()
    failures: list[str] = []
    pending: set[Future[UnitResult]] = set()
    units_of: dict[Future[UnitResult], WorkUnit] = {}

    def collect(limit: int) -> None:
        while len(pending) > limit:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                pending.discard(fut)
                unit = units_of.pop(fut)
                try:
                    stats.add(fut.result())
                except BrokenProcessPool as exc:
                    failures.append(f"{unit.part_name}: a worker process died ({exc})")
                except Exception as exc:
                    failures.append(f"{unit.part_name}: {type(exc).__name__}: {exc}")

    pool = spawn_pool(policy_path, workers=workers, initializer=_init_batch_worker, initargs=(queue,))
    try:
        for unit, rows in iter_units(files, plan.chunk_size):
            expected.add(unit.part_name)
            if unit.part_name in state.done:
                continue
            if failures:
                break  # a broken pool fails every later unit; a rerun resumes from the finished parts
            fut = pool.submit(_unit_in_worker, unit, rows, str(out), plan.surface, plan.batch_size,
                              plan.policy_version)
            pending.add(fut)
            units_of[fut] = unit
            collect(2 * workers)
        collect(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stop.set()
        drainer.join(timeout=5)
    if failures:
        done_now = sum(1 for _ in out.glob("part-*.parquet"))
        raise BatchIncomplete(f"{len(failures)} work unit(s) failed, first {failures[0]}. The {done_now} finished "
                              "parts are kept: rerun the same command to resume.")
    return expected


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
