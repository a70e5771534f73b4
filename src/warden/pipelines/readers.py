"""Read rows from JSONL, CSV and Parquet files without ever failing the whole file.

A row that cannot be read (malformed JSON, invalid UTF-8, a non-object line) becomes a
`RawRow` with `error` set, at its position, so outputs stay aligned with inputs.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("jsonl", "csv", "parquet")


@dataclass(frozen=True, slots=True)
class RawRow:
    index: int  # 0-based row position in the input (excluding a CSV header)
    data: dict[str, Any] | None
    error: str | None = None


class UnreadableInput(ValueError):
    """The file as a whole cannot be read (missing, unknown format, broken Parquet footer)."""


def detect_format(path: Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise UnreadableInput(f"unknown format {explicit!r}; use one of: {', '.join(FORMATS)}")
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    aliases = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl", "csv": "csv",
               "parquet": "parquet", "pq": "parquet"}
    if suffix not in aliases:
        raise UnreadableInput(f"cannot tell the format of {path.name!r} from its extension; pass --format "
                              f"({', '.join(FORMATS)})")
    return aliases[suffix]


def count_rows(path: Path, fmt: str) -> int | None:
    """Cheap row count for progress bars (None when unknown)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        with path.open("rb") as fh:
            n = sum(1 for line in fh if line.strip())
        return max(0, n - 1) if fmt == "csv" else n
    except Exception:
        return None


def read_rows(path: Path, fmt: str) -> Iterator[RawRow]:
    if not path.exists():
        raise UnreadableInput(f"input file not found: {path}")
    if fmt == "jsonl":
        yield from _read_jsonl(path)
    elif fmt == "csv":
        yield from _read_csv(path)
    elif fmt == "parquet":
        yield from _read_parquet(path)
    else:
        raise UnreadableInput(f"unknown format {fmt!r}")


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    index = 0
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRow(index, None, f"line {line_no}: not valid UTF-8 (byte {exc.start})")
                index += 1
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(index, None, f"line {line_no}: malformed JSON ({exc.msg} at column {exc.colno})")
            else:
                if isinstance(obj, dict):
                    yield RawRow(index, obj)
                else:
                    yield RawRow(index, None, f"line {line_no}: expected a JSON object, got {type(obj).__name__}")
            index += 1


def _read_csv(path: Path) -> Iterator[RawRow]:
    csv.field_size_limit(sys.maxsize)
    # surrogateescape keeps invalid bytes visible as lone surrogates, which parse_item rejects
    # for that row only instead of failing the file.
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return
        for index, row in enumerate(reader):
            if None in row:  # more cells than header columns
                extra = row.pop(None)
                if row.get("text") is None:
                    yield RawRow(index, None, f"row {index + 1}: {len(extra)} more cells than header columns")
                    continue
            yield RawRow(index, {k: v for k, v in row.items() if v is not None})


def _read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise UnreadableInput(f"cannot read Parquet file {path}: {exc}") from exc
    index = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield RawRow(index, row)
            index += 1
