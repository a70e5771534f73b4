"""The `warden` command line. Commands adapt arguments and files to the core and nothing more."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from warden.policy import DEFAULT_POLICY_PATH

app = typer.Typer(
    name="warden",
    help="Warden: open, self-hosted Trust & Safety. Moderate text with one versioned policy.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Validate and compare policy files.", no_args_is_help=True)
models_app = typer.Typer(help="Build model artifacts; the model registry: list, gate, promote, rollback.",
                         no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(models_app, name="models")

PolicyOption = Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.", show_default=True)]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _load_moderator(policy: Path):
    from warden.moderator import Moderator
    from warden.policy import PolicyError

    try:
        return Moderator.from_file(policy)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise _fail(f"{exc}\nBuild or train the missing model (see `warden train --help`).") from None


@policy_app.command("validate")
def policy_validate(file: Annotated[Path, typer.Argument(help="Policy YAML file to check.")]) -> None:
    """Check a policy file: schema, cross-references, detector types and their parameters.

    Prints every problem with file, line and key path, and exits 1 if there is any.
    """
    from warden.policy import PolicyError, load_policy_file

    try:
        loaded = load_policy_file(file)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    p = loaded.policy
    typer.echo(f"{file}: valid policy {p.name!r} version {p.version}")
    typer.echo(f"  categories: {len(p.categories)}; surfaces: {', '.join(p.surfaces)}")
    typer.echo(f"  detectors: {', '.join(f'{k} ({v.type})' for k, v in p.detectors.items()) or 'none'}")
    typer.echo(f"  cascade: {' -> '.join(t.name for t in p.cascade) or 'all detectors at once'}")
    typer.echo(f"  fingerprint: {loaded.fingerprint[:16]}")


@policy_app.command("diff")
def policy_diff(
    old: Annotated[Path, typer.Argument(help="The current policy file.")],
    new: Annotated[Path, typer.Argument(help="The candidate policy file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Show what changed between two policy versions, marking changes that can change decisions."""
    from warden.policy import PolicyError, diff_policies, load_policy

    try:
        a, b = load_policy(old, check_detectors=False), load_policy(new, check_detectors=False)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    changes = diff_policies(a, b)
    if as_json:
        typer.echo(json.dumps([{"path": c.path, "kind": c.kind.value, "old": c.old, "new": c.new,
                                "affects_decisions": c.affects_decisions} for c in changes], indent=2))
        return
    typer.echo(f"{a.name} {a.version} -> {b.name} {b.version}: {len(changes)} change(s)")
    if a.version == b.version and changes:
        typer.secho("  warning: content changed but the version did not; decisions would be ambiguous",
                    fg=typer.colors.YELLOW)
    for c in changes:
        typer.echo(("  ! " if c.affects_decisions else "    ") + c.format())


@app.command("classify")
def classify(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL, CSV or Parquet with a 'text' field, "
                                               "an optional 'id' and optional 'media' (image paths relative to "
                                               "the file; see docs/media.md).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL, one line per input row ('-' for "
                                         "stdout).")],
    surface: Annotated[str, typer.Option(help="Surface whose thresholds apply to rows without their own.")] = "comment",
    policy: PolicyOption = Path(DEFAULT_POLICY_PATH),
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet (default: from the "
                                            "extension).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Items per detector batch.")] = 256,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    workers: Annotated[int, typer.Option(min=0, help="Processes, each loading the models once. 0 = auto: every "
                                         "core for inputs of 5,000 rows or more, else 1.")] = 0,
) -> None:
    """Moderate every row of a file.

    Each output line is {"id", "scores", "flagged", "action", "reasons", "policy_version", ...}
    in input order. A row that cannot be processed gets an "error" field and the run goes on.
    """
    from warden.pipelines.classify import classify_file
    from warden.pipelines.parallel import WorkerStartError
    from warden.pipelines.readers import UnreadableInput
    from warden.policy import PolicyError, load_policy_file

    try:  # validate before anything runs; models load only in the process(es) that moderate
        surfaces = load_policy_file(policy).policy.surfaces
    except (PolicyError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    if surface not in surfaces:
        raise _fail(f"unknown surface {surface!r}; the policy defines: {', '.join(surfaces)}")
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
    try:
        summary = classify_file(lambda: _load_moderator(policy), input_path, out, fmt=fmt, surface=surface,
                                batch_size=batch_size, progress=progress, workers=workers, policy_path=policy)
    except UnreadableInput as exc:
        raise _fail(str(exc)) from None
    except WorkerStartError as exc:
        raise _fail(f"{exc}\nRun with --workers 1 to see the full error.") from None
    finally:
        if out is not sys.stdout:
            out.close()
    actions = ", ".join(f"{k} {v}" for k, v in summary.actions.most_common())
    typer.echo(f"{summary.rows} rows, {summary.errors} errors; actions: {actions or 'none'}", err=True)


@app.command("train")
def train(
    out: Annotated[Path | None, typer.Option(help="Output model directory (default models/text-v1; with "
                                             "--with-reviews the registry chooses it).")] = None,
    data: Annotated[Path | None, typer.Option(help="Datasets folder (default: $WARDEN_DATA or "
                                              "../shared/datasets).")] = None,
    policy: PolicyOption = Path(DEFAULT_POLICY_PATH),
    seed: Annotated[int, typer.Option(help="Random seed for splits and models.")] = 0,
    max_per_source: Annotated[int | None, typer.Option(help="Cap rows per source dataset (faster runs).")] = None,
    with_reviews: Annotated[bool, typer.Option("--with-reviews", help="Add reviewer labels from the store and "
                                               "register the result as a candidate in the model registry (see "
                                               "`warden models --help`).")] = False,
    database_url: Annotated[str | None, typer.Option("--database-url", help="With --with-reviews: the store "
                                                     "holding reviewer labels (default: env WARDEN_DATABASE_URL, "
                                                     "else sqlite:///warden.db).")] = None,
    registry: Annotated[Path | None, typer.Option("--registry", help="With --with-reviews: the model registry "
                                                  "(default: env WARDEN_MODEL_REGISTRY, else "
                                                  "models/registry).")] = None,
    sources: Annotated[str | None, typer.Option("--sources", help="With --with-reviews: only these dataset "
                                                "sources, comma-separated (small runs).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="With --with-reviews: skip leave-one-source-out and "
                                        "speed runs, 20 bootstrap resamples (small runs).")] = False,
) -> None:
    """Train the text model (fast linear tier + calibrated MiniLM heads) and write its model card.

    Reads the shared labeled datasets, splits each into train/calibration/test, evaluates on
    the held-out test split and on left-out datasets, and writes weights, metrics.json and
    MODEL_CARD.md into OUT. With --with-reviews, reviewer labels join the data and the model
    becomes a candidate version to gate, shadow and promote (`warden models`).
    """
    from warden.learn.text_data import data_dir
    from warden.learn.train import run_training
    from warden.policy import load_policy

    if with_reviews:
        from warden.cli.models import train_with_reviews

        if out is not None:
            raise _fail("--out cannot be combined with --with-reviews: the registry chooses the version folder")
        train_with_reviews(policy=policy, data=data, database_url=database_url, registry=registry, seed=seed,
                           max_per_source=max_per_source, quick=quick,
                           sources=[s.strip() for s in sources.split(",") if s.strip()] if sources else None)
        return
    if database_url is not None or registry is not None or sources is not None or quick:
        raise _fail("--database-url, --registry, --sources and --quick apply to --with-reviews only")
    out = out or Path("models/text-v1")
    kwargs = {} if max_per_source is None else {"max_per_source": max_per_source}
    run_training(out, data_dir=data or data_dir(), policy=load_policy(policy, check_detectors=False), seed=seed,
                 **kwargs)
    typer.echo(f"model written to {out}", err=True)


@models_app.command("build-encoder")
def build_encoder_cmd(force: Annotated[bool, typer.Option(help="Rebuild even if cached.")] = False) -> None:
    """Build the int8 ONNX MiniLM encoder from the installed weights (no download) into the cache."""
    from warden.detectors.text.encoder import build_encoder

    typer.echo(str(build_encoder(force=force)))


def _register_service_commands() -> None:
    from warden.cli.batch import batch
    from warden.cli.datasets import datasets_app
    from warden.cli.db import db_app
    from warden.cli.eval import eval_app
    from warden.cli.eval_ops import register as register_eval_ops
    from warden.cli.hashing import hash_app
    from warden.cli.judge import register as register_judge
    from warden.cli.keys import keys_app
    from warden.cli.learning import register as register_learning
    from warden.cli.models import register as register_models
    from warden.cli.serve import serve
    from warden.cli.spark_batch import spark_batch
    from warden.cli.users import users_app
    from warden.cli.webhooks import register as register_webhooks
    from warden.cli.worker import worker

    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("batch")(batch)
    app.command("spark-batch")(spark_batch)
    app.add_typer(keys_app, name="keys", help="Create, list and revoke API keys.")
    app.add_typer(users_app, name="users", help="Reviewer UI users: create, list, set-role, disable, passwd.")
    app.add_typer(db_app, name="db", help="Database migrations.")
    app.add_typer(hash_app, name="hash", help="Hash images (PDQ, MD5), manage hash banks, look up matches.")
    register_eval_ops(eval_app)
    register_judge(eval_app)  # warden eval judge (LLM-as-judge agreement)
    app.add_typer(eval_app, name="eval", help="Measure quality: reports, thresholds, comparisons, gates, backtests.")
    app.add_typer(datasets_app, name="datasets", help="Labeled dataset manifests and golden sets.")
    register_models(models_app)  # warden models list|show|history|gate|promote|rollback
    register_webhooks(app)  # warden webhooks ..., warden strikes show
    review_app = typer.Typer(help="Human review: queues and the active-learning lane.", no_args_is_help=True)
    register_learning(review_app)  # warden review fill-learning
    app.add_typer(review_app, name="review")


_register_service_commands()

if __name__ == "__main__":  # pragma: no cover
    app()
