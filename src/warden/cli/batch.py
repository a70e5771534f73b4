"""`warden batch`: moderate files into a resumable Parquet dataset (see docs/batch.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from warden.policy import DEFAULT_POLICY_PATH


def batch(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...", help="JSONL, CSV or Parquet files, or folders "
                                                 "(searched for *.jsonl, *.ndjson, *.json, *.csv, *.parquet, *.pq). "
                                                 "Rows have a 'text' and an optional 'id'.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder: a Parquet dataset of part files "
                                         "plus a manifest. Rerunning into the same folder resumes.")],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.")] = Path(DEFAULT_POLICY_PATH),
    workers: Annotated[int, typer.Option(min=0, help="Processes, each loading the models once. 0 = every core "
                                         "(never more than the work units left).")] = 0,
    chunk_size: Annotated[int, typer.Option(min=1, max=10_000_000, help="Rows per work unit and part file: the "
                                            "most work an interruption can lose per worker.")] = 5_000,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Items per detector batch.")] = 256,
    surface: Annotated[str, typer.Option(help="Surface whose thresholds apply to rows without their own.")] = "comment",
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet for every input (default: from "
                                            "each file's extension).")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard the parts already in OUTPUT and start over "
                                          "(needed when the inputs, policy or options changed).")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Moderate every row of many files on every core into a Parquet dataset, resumably.

    Each input file is cut into work units of --chunk-size rows; each unit is written as one
    part file, atomically. Interrupted? Run the same command again: finished parts are
    skipped and the output is identical to an uninterrupted run. A row that cannot be
    processed becomes a row with an 'error' column and the batch goes on. Read the output
    with pandas.read_parquet(OUTPUT), pyarrow.parquet.read_table(OUTPUT) or Spark.
    """
    from warden.cli.main import _fail, _load_moderator
    from warden.pipelines.batch import BatchError, BatchIncomplete, run_batch
    from warden.pipelines.readers import UnreadableInput

    moderator = _load_moderator(policy)  # validates the policy and its models before any worker starts
    try:
        result = run_batch(inputs, output, policy_path=policy, moderator=moderator, workers=workers,
                           chunk_size=chunk_size, batch_size=batch_size, surface=surface, fmt=fmt, restart=restart,
                           progress=progress)
    except (BatchError, UnreadableInput, BatchIncomplete) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail(f"interrupted; the finished parts are kept in {output}: rerun the same command to resume.",
                    code=130) from None
    actions = ", ".join(f"{k} {v}" for k, v in result.actions.items())
    if result.already_complete:
        typer.echo(f"{result.output} is already complete ({result.rows} rows in {result.parts} parts); nothing to do. "
                   "Pass --restart to moderate again.", err=True)
        return
    resumed = f", {result.resumed_parts} resumed from an earlier run" if result.resumed_parts else ""
    rate = result.new_rows / result.seconds if result.seconds > 0 else 0.0
    typer.echo(f"{result.rows} rows in {result.parts} parts{resumed}, {result.errors} errors; actions: "
               f"{actions or 'none'}; {result.new_rows} rows moderated in {result.seconds:.1f} s "
               f"({rate:,.0f} rows/s end to end, {result.workers} worker{'s' if result.workers != 1 else ''}) "
               f"-> {result.output}", err=True)
