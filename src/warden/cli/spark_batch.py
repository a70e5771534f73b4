"""`warden spark-batch`: moderate files with PySpark (see docs/batch.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from warden.policy import DEFAULT_POLICY_PATH


def spark_batch(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...", help="JSONL, CSV or Parquet files, or folders "
                                                 "(searched like `warden batch`). Rows need 'text' and 'id'.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (Parquet, the schema of `warden "
                                         "batch`).")],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.")] = Path(DEFAULT_POLICY_PATH),
    master: Annotated[str, typer.Option(help="Spark master, e.g. local[2], local[*] or spark://host:7077.")] =
        "local[*]",
    partitions: Annotated[int, typer.Option(min=0, help="Repartition inputs with fewer partitions than this so every "
                                            "core gets work. 0 = Spark's default parallelism.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Items per detector batch.")] = 256,
    surface: Annotated[str, typer.Option(help="Surface whose thresholds apply to rows without their own.")] = "comment",
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    id_col: Annotated[str, typer.Option(help="Column holding the content id.")] = "id",
    surface_col: Annotated[str | None, typer.Option(help="Column holding each row's surface (optional).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet for every input (default: from "
                                            "each file's extension).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Moderate files with PySpark, one Moderator per executor process, into Parquet with the
    schema of `warden batch`. Needs pyspark (the spark extra of the warden package) and Java 17.

    Malformed JSON lines and rows without an id become rows with an 'error' column. Spark
    output is not resumable and not in input order (join on id); for one machine, `warden
    batch` is simpler and resumable.
    """
    from functools import reduce

    from warden.cli.main import _fail, _load_moderator
    from warden.pipelines.batch import collect_inputs
    from warden.pipelines.readers import UnreadableInput
    from warden.spark import SparkUnavailable, local_session, moderate, require_spark

    try:
        files = collect_inputs(inputs, fmt=fmt, exclude=output)
    except UnreadableInput as exc:
        raise _fail(str(exc)) from None
    if output.exists() and not overwrite:
        raise _fail(f"{output} exists: pass --overwrite to replace it, or choose another output path")
    moderator = _load_moderator(policy)  # clear errors for the policy and its models before Spark starts
    if surface not in moderator.policy.surfaces:
        raise _fail(f"unknown surface {surface!r}; the policy defines: {', '.join(moderator.policy.surfaces)}")
    del moderator  # the executors load their own

    try:
        require_spark()
        from pyspark.sql import SparkSession

        had_session = SparkSession.getActiveSession() is not None  # e.g. a test's: leave it running
        spark = local_session(master, app_name="warden spark-batch")
    except SparkUnavailable as exc:
        raise _fail(str(exc)) from None
    try:
        from pyspark.sql import functions as F

        target = partitions or spark.sparkContext.defaultParallelism
        results = []
        by_format: dict[str, list[str]] = {}
        for f in files:
            by_format.setdefault(f.format, []).append(str(f.path))
        for fmt_name, paths in by_format.items():
            df = _read(spark, fmt_name, paths).withColumn("_warden_source_file", F.input_file_name())
            if df.rdd.getNumPartitions() < target:
                df = df.repartition(target)
            error_col = "_corrupt_record" if "_corrupt_record" in df.columns else None
            try:
                results.append(moderate(df, policy=policy, text_col=text_col, id_col=id_col, surface_col=surface_col,
                                        surface=surface, batch_size=batch_size,
                                        source_file_col="_warden_source_file", error_col=error_col))
            except ValueError as exc:
                raise _fail(f"{fmt_name} inputs: {exc}") from None
        result = reduce(lambda a, b: a.unionByName(b), results)
        result.write.mode("overwrite" if overwrite else "errorifexists").parquet(str(output))
        written = spark.read.parquet(str(output))
        rows = written.count()
        errors = written.filter(F.col("error").isNotNull()).count()
        actions = {r["action"]: r["count"] for r in written.filter(F.col("error").isNull()).groupBy("action").count()
                   .orderBy(F.desc("count")).collect()}
    finally:
        if not had_session:
            spark.stop()
    shown = ", ".join(f"{k} {v}" for k, v in actions.items())
    typer.echo(f"{rows} rows, {errors} errors; actions: {shown or 'none'} -> {output}", err=True)


def _read(spark, fmt: str, paths: list[str]):
    reader = spark.read
    if fmt == "jsonl":
        # Malformed lines land in _corrupt_record (becoming error rows) instead of failing the job.
        return (reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_corrupt_record")
                .option("encoding", "UTF-8").json(paths))
    if fmt == "csv":
        return (reader.option("header", True).option("multiLine", True).option("escape", '"')
                .option("mode", "PERMISSIVE").csv(paths))
    return reader.option("mergeSchema", True).parquet(*paths)
