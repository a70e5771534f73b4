"""`warden classify`: moderate a file, one JSONL output line per input row, in input order."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from warden.core import Decision
from warden.ingest import InvalidItem
from warden.moderator import Moderator
from warden.pipelines.readers import RawRow, count_rows, detect_format, read_rows


@dataclass
class ClassifySummary:
    rows: int = 0
    errors: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    workers: int = 1


def decision_line(decision: Decision) -> dict[str, Any]:
    """The documented output shape of `warden classify` (a subset of Decision.to_dict)."""
    d = decision.to_dict()
    keys = ("id", "scores", "flagged", "uncertain", "action", "automated", "review_queue", "reasons",
            "missing_signals", "policy_version", "decision_id")
    return {k: d[k] for k in keys}


def error_line(row: RawRow, message: str) -> dict[str, Any]:
    raw_id = row.data.get("id") if row.data else None
    return {"id": raw_id if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None,
            "row": row.index, "error": message}


def classify_rows(moderator: Moderator, rows: Iterable[RawRow], *, surface: str,
                  batch_size: int = 256, media_root: Path | None = None) -> Iterator[dict[str, Any]]:
    """Yield one output object per input row, in order; bad rows yield an error object.
    `media_root`: the folder relative `media` file paths resolve against (the input's)."""
    chunk: list[RawRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch_size:
            yield from classify_chunk(moderator, chunk, surface, media_root=media_root)
            chunk = []
    if chunk:
        yield from classify_chunk(moderator, chunk, surface, media_root=media_root)


def classify_chunk(moderator: Moderator, chunk: list[RawRow], surface: str, *,
                   media_root: Path | None = None) -> Iterator[dict[str, Any]]:
    """Output lines for one chunk of rows (shared by the in-process and the parallel runner)."""
    parsed: list[Any] = []
    for row in chunk:
        if row.error is not None:
            parsed.append(row.error)
            continue
        data = dict(row.data or {})
        raw_id = data.get("id")
        if raw_id is None or raw_id == "" or (isinstance(raw_id, float) and raw_id != raw_id):  # missing, "", NaN
            data["id"] = str(row.index)  # stable ids make reruns idempotent (parse_item would draw a random one)
        try:
            parsed.append(moderator.parse(data, default_surface=surface, media_root=media_root))
        except InvalidItem as exc:
            parsed.append(f"row {row.index}: {exc}")
    contents = [p for p in parsed if not isinstance(p, str)]
    decisions = iter(moderator.moderate_batch(contents))
    for row, p in zip(chunk, parsed, strict=True):
        yield error_line(row, p) if isinstance(p, str) else decision_line(next(decisions))


def classify_file(moderator: Moderator | Callable[[], Moderator] | None, input_path: Path, output: IO[str], *,
                  fmt: str | None = None, surface: str = "comment", batch_size: int = 256, progress: bool = True,
                  workers: int = 1, policy_path: Path | None = None) -> ClassifySummary:
    """`workers` > 1 moderates on that many processes, each loading `policy_path`; 0 picks
    automatically (see `resolve_workers`). `moderator` may be a factory: it is called only
    for an in-process run, so with several processes the parent never loads the models."""
    from warden.pipelines.parallel import classify_rows_parallel, resolve_workers

    fmt = detect_format(input_path, fmt)
    summary = ClassifySummary()
    total = count_rows(input_path, fmt) if progress or workers == 0 else None
    workers = resolve_workers(workers, total_rows=total)
    rows = read_rows(input_path, fmt)
    media_root = input_path.resolve().parent  # `media` paths in rows are relative to the input file
    if workers > 1:
        if policy_path is None:
            raise ValueError("workers > 1 needs policy_path: each worker process loads the policy itself")
        lines = classify_rows_parallel(policy_path, rows, surface=surface, workers=workers, batch_size=batch_size,
                                       media_root=media_root)
    else:
        if moderator is None:
            raise ValueError("in-process classification needs a moderator")
        if not isinstance(moderator, Moderator):
            moderator = moderator()
        lines = classify_rows(moderator, rows, surface=surface, batch_size=batch_size, media_root=media_root)
    summary.workers = workers
    with _progress(progress, total) as advance:
        for line in lines:
            output.write(json.dumps(line, ensure_ascii=False) + "\n")
            summary.rows += 1
            if "error" in line:
                summary.errors += 1
            else:
                summary.actions[line["action"]] += 1
                summary.flagged.update(line["flagged"])
            advance()
    return summary


class _progress:
    """A rich progress bar on stderr with rate and ETA; a no-op when disabled. The callable it
    returns advances by n rows (default 1). `completed` rows count as done from the start (a
    resumed batch) without entering the rate, so the ETA reflects the work still to do."""

    def __init__(self, enabled: bool, total: int | None, *, label: str = "classifying", completed: int = 0) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label
        self.completed = completed

    def __enter__(self):
        if not self.enabled:
            return lambda n=1: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed:,.0f} rows/s" if task.speed else "… rows/s")

        self._bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), RateColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total, completed=self.completed)
        return lambda n=1: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()
