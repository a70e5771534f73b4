"""Moderate a Spark DataFrame: `warden.spark.moderate(df, policy="policies/default.yaml")`.

The same core as `warden batch` inside `mapInPandas`: every Python worker process of an
executor loads the policy's Moderator once (a module-level cache that survives across tasks,
because Spark reuses its Python workers) and turns rows into output rows with
`decision_table.moderate_records`. The result has exactly the Parquet schema of `warden
batch` (`decision_table.OUTPUT_SCHEMA`), and the same rows get the same decisions.

On a cluster, `warden` must be installed on the executors and the policy file and the model
files it names must exist at the same paths there (a shared filesystem or the same image).
pyspark is an optional extra (`pip install 'warden[spark]'`) and is imported lazily.

Where Spark differs from `warden batch`, by necessity:

* every row needs an id: Spark has no stable row position to fall back on (batch uses the
  row's position in its file), so a row without one becomes an error row;
* `source_row` is null unless `source_row_col` names a column that holds it;
* the order of output rows follows Spark's partitions, not the input: join on `id`.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from warden.pipelines.decision_table import COLUMNS, OUTPUT_SCHEMA, moderate_records
from warden.pipelines.readers import RawRow

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

DEFAULT_BATCH_SIZE = 256

#: (absolute policy path, policy fingerprint) -> Moderator, per Python worker process.
_MODERATORS: dict[tuple[str, str], Any] = {}
#: How many Moderators this process has built (tests check "once per process").
_LOADS = 0


class SparkUnavailable(RuntimeError):
    """pyspark or Java is missing; the message says what to install."""


def require_spark() -> None:
    """Raise SparkUnavailable with what to install when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable("pyspark is not installed: pip install 'warden[spark]' (pyspark >= 3.5)") from None
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and shutil.which("java") is None:
        raise SparkUnavailable("Spark needs Java 17 or newer and none was found: install a JRE (Debian: apt-get "
                               "install openjdk-17-jre-headless) or set JAVA_HOME")


def local_session(master: str = "local[*]", *, app_name: str = "warden",
                  conf: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession for local runs (CLI, tests) whose Python workers use this interpreter,
    so they import the same `warden`. Reuses the active session when there is one."""
    require_spark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.session.timeZone", "UTC"))
    for k, v in (conf or {}).items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


def spark_schema() -> StructType:
    """OUTPUT_SCHEMA as a Spark schema (derived, so the two cannot drift apart)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(OUTPUT_SCHEMA)


def moderate(df: DataFrame, *, policy: str | Path, text_col: str = "text", id_col: str = "id",
             surface_col: str | None = None, surface: str = "comment", batch_size: int = DEFAULT_BATCH_SIZE,
             source_file_col: str | None = None, source_row_col: str | None = None,
             error_col: str | None = None) -> DataFrame:
    """One output row per input row, in the Parquet schema of `warden batch`.

    `surface_col` (optional) holds each row's surface; rows without one use `surface`.
    `source_file_col`/`source_row_col` fill the provenance columns (a `file:` URI becomes a
    path). Rows where `error_col` is not null (e.g. Spark's `_corrupt_record`) become error
    rows. Raises ValueError at once for a missing column, a non-string text column or an
    unknown surface; bad rows never fail the job.
    """
    from warden.policy import load_policy_file

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    loaded = load_policy_file(policy)
    if surface not in loaded.policy.surfaces:
        raise ValueError(f"unknown surface {surface!r}; the policy defines: {', '.join(loaded.policy.surfaces)}")
    types = dict(df.dtypes)
    for role, name in (("text_col", text_col), ("id_col", id_col), ("surface_col", surface_col),
                       ("source_file_col", source_file_col), ("source_row_col", source_row_col),
                       ("error_col", error_col)):
        if name is not None and name not in types:
            hint = (" Spark rows need stable ids (batch falls back on row positions, which Spark does not have): "
                    "add an id column or pass id_col.") if role == "id_col" else ""
            raise ValueError(f"{role}={name!r}: no such column; the DataFrame has: {', '.join(df.columns)}.{hint}")
    if types[text_col] != "string":
        raise ValueError(f"column {text_col!r} holds {types[text_col]}, not strings: cast it first, e.g. "
                         f"df.withColumn({text_col!r}, df[{text_col!r}].cast('string'))")

    from pyspark.sql import functions as F

    def opt(name: str | None, kind: str, alias: str) -> Any:
        return (df[name].cast(kind) if name is not None else F.lit(None).cast(kind)).alias(alias)

    projected = df.select(df[text_col].alias("text"), df[id_col].cast("string").alias("id"),
                          opt(surface_col, "string", "surface"), opt(source_file_col, "string", "source_file"),
                          opt(source_row_col, "long", "source_row"), opt(error_col, "string", "read_error"))
    fn = functools.partial(_moderate_batches, policy_path=str(Path(loaded.path).resolve()),
                           policy_fingerprint=loaded.fingerprint, policy_version=loaded.policy.version,
                           surface=surface, batch_size=batch_size)
    return projected.mapInPandas(fn, schema=spark_schema())


# -- executor side ----------------------------------------------------------------------------


def executor_moderator(policy_path: str, policy_fingerprint: str) -> Any:
    """This process's Moderator for the policy, built on first use. The fingerprint check
    refuses a policy file edited between planning the job and running a task: one job must
    not mix two policies."""
    global _LOADS
    key = (policy_path, policy_fingerprint)
    moderator = _MODERATORS.get(key)
    if moderator is None:
        from warden.moderator import Moderator
        from warden.policy.loader import fingerprint

        moderator = Moderator.from_file(policy_path)
        if fingerprint(moderator.policy) != policy_fingerprint:
            raise RuntimeError(f"{policy_path} changed after the Spark job was planned (fingerprint "
                               f"{fingerprint(moderator.policy)[:12]}, expected {policy_fingerprint[:12]}): rerun "
                               "the job")
        _LOADS += 1
        _MODERATORS[key] = moderator
    return moderator


def _moderate_batches(batches: Iterator[pd.DataFrame], *, policy_path: str, policy_fingerprint: str,
                      policy_version: str, surface: str, batch_size: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    moderator = executor_moderator(policy_path, policy_fingerprint)
    for pdf in batches:
        rows: list[RawRow] = []
        sources: list[tuple[str | None, int | None]] = []
        for text, item_id, item_surface, source_file, source_row, read_error in zip(
                pdf["text"], pdf["id"], pdf["surface"], pdf["source_file"], pdf["source_row"], pdf["read_error"],
                strict=True):
            row_no = None if _missing(source_row) else int(source_row)
            index = row_no if row_no is not None else -1  # -1: unknown, never shown (see moderate_records)
            sources.append((_local_path(source_file), row_no))
            if not _missing(read_error):
                rows.append(RawRow(index, None, "malformed record: the reader could not parse it"))
            elif _missing(item_id) or item_id == "":
                rows.append(RawRow(index, None, "missing 'id': Spark rows need one (pass id_col)"))
            else:
                data: dict[str, Any] = {"id": item_id, "text": None if _missing(text) else text}
                if not _missing(item_surface):
                    data["surface"] = item_surface
                rows.append(RawRow(index, data))
        records = moderate_records(moderator, rows, sources=sources, surface=surface, batch_size=batch_size,
                                   policy_version=policy_version)
        yield pd.DataFrame.from_records(records, columns=list(COLUMNS))


def _missing(value: Any) -> bool:
    """Null as pandas hands it over: None, NaN (float columns) or pd.NA (nullable dtypes)."""
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _local_path(value: Any) -> str | None:
    if _missing(value) or value == "":
        return None
    s = str(value)
    return unquote(urlparse(s).path) if s.startswith("file:") else s
