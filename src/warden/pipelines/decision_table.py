"""The Parquet row shape of `warden batch` and `warden.spark.moderate` (one schema for both).

A decision row and an error row share one flat schema so that a whole backfill is one
table: filter on `error IS NULL` for decisions. Columns (see docs/batch.md):

| column | type | decision row | error row |
| --- | --- | --- | --- |
| id | string | the content id | the row's id if it had a usable one, else null |
| decision_id | string | stable per (id, policy version) | null |
| action | string | allow, remove, limit, hold_for_review, ... | null |
| automated | bool | true when no human is needed | null |
| flagged | list<string> | categories at or over their flag threshold | null |
| uncertain | list<string> | categories in the review band | null |
| scores | map<string, double> | combined score per category (6 decimals) | null |
| reasons | string (JSON) | the statement of reasons: detector, rule, threshold, evidence | null |
| review_queue | string | the queue the policy routes the item to, or null | null |
| missing_signals | list<string> | detector instances that failed for this item | null |
| policy_version | string | the policy version that decided | the policy version of the run |
| error | string | null | what was wrong with the row and how to fix it |
| source_file | string | the input file (absolute path) | same |
| source_row | int64 | 0-based row position in that file (null when unknown: Spark) | same |

`scores` is a map (not JSON) so that SQL engines can filter on it directly
(`scores['hate'] > 0.5` in Spark SQL and DuckDB); `reasons` is nested and variable, so it stays
a JSON string rather than a deep struct that every reader would have to know.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from warden.pipelines.classify import classify_chunk, error_line
from warden.pipelines.readers import RawRow

#: Bumped when a column is added, removed or changes meaning (recorded in batch manifests).
SCHEMA_VERSION = 1

OUTPUT_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("decision_id", pa.string()),
    pa.field("action", pa.string()),
    pa.field("automated", pa.bool_()),
    pa.field("flagged", pa.list_(pa.string())),
    pa.field("uncertain", pa.list_(pa.string())),
    pa.field("scores", pa.map_(pa.string(), pa.float64())),
    pa.field("reasons", pa.string()),
    pa.field("review_queue", pa.string()),
    pa.field("missing_signals", pa.list_(pa.string())),
    pa.field("policy_version", pa.string()),
    pa.field("error", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("source_row", pa.int64()),
])

COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names)


def output_record(line: Mapping[str, Any], *, policy_version: str, source_file: str | None,
                  source_row: int | None) -> dict[str, Any]:
    """One output row from a `decision_line` or an `error_line` (warden.pipelines.classify).

    Going through those two functions keeps `warden classify`, `warden batch` and Spark on
    one definition of what a decision row says."""
    if "error" in line:
        raw_id = line.get("id")
        return {"id": None if raw_id is None else str(raw_id), "decision_id": None, "action": None,
                "automated": None, "flagged": None, "uncertain": None, "scores": None, "reasons": None,
                "review_queue": None, "missing_signals": None, "policy_version": policy_version,
                "error": str(line["error"]), "source_file": source_file, "source_row": source_row}
    return {
        "id": line["id"],
        "decision_id": line["decision_id"],
        "action": line["action"],
        "automated": line["automated"],
        "flagged": list(line["flagged"]),
        "uncertain": list(line["uncertain"]),
        "scores": dict(line["scores"]),
        "reasons": json.dumps(line["reasons"], ensure_ascii=False, separators=(",", ":")),
        "review_queue": line["review_queue"],
        "missing_signals": list(line["missing_signals"]),
        "policy_version": line["policy_version"],
        "error": None,
        "source_file": source_file,
        "source_row": source_row,
    }


def records_to_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """An Arrow table in OUTPUT_SCHEMA (maps are given to Arrow as key/value pairs)."""
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for rec in records:
        for name in COLUMNS:
            value = rec[name]
            if name == "scores" and value is not None:
                value = list(value.items())
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=OUTPUT_SCHEMA)


def moderate_records(moderator: Any, rows: Sequence[RawRow], *, sources: Sequence[tuple[str | None, int | None]],
                     surface: str, batch_size: int, policy_version: str, media_root: Path | None = None,
                     advance: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Output rows for `rows`, moderated in detector batches of `batch_size` by `classify_chunk`
    (the core shared with `warden classify`); `sources[i]` is row i's (source_file, source_row);
    relative `media` paths resolve against `media_root` (the input file's folder, as in classify).
    The one place where `warden batch` and Spark turn rows into output rows.

    A detector raising (a bug: detectors return error results for bad items) turns its batch
    into error rows instead of failing the run. Where the row position is unknown (None, as
    in Spark), error messages do not cite a made-up one."""
    records: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        sub = rows[start:start + batch_size]
        try:
            lines = list(classify_chunk(moderator, list(sub), surface, media_root=media_root))
        except Exception as exc:
            lines = [error_line(r, f"row {r.index}: moderation failed: {type(exc).__name__}: {exc}") for r in sub]
        for row, line, (source_file, source_row) in zip(sub, lines, sources[start:start + batch_size], strict=True):
            if source_row is None and "error" in line:
                line = {**line, "error": str(line["error"]).removeprefix(f"row {row.index}: ")}
            records.append(output_record(line, policy_version=policy_version, source_file=source_file,
                                         source_row=source_row))
        if advance is not None:
            advance(len(sub))
    return records
