"""`warden eval judge`: label a dataset with an LLM provider of the policy and report its
agreement (Cohen's kappa per category) with golden labels. Registered on `eval_app`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer


def register(eval_app: typer.Typer) -> None:
    eval_app.command("judge")(judge_cmd)


def judge_cmd(
    items: Annotated[Path, typer.Argument(help="JSONL with 'id' and 'text' (and optional 'surface') per line")],
    labels: Annotated[Path, typer.Option("--labels", help="golden labels: JSONL or CSV, id + one 0/1 column per "
                                                         "category")],
    detector: Annotated[str, typer.Option("--detector", help="the judge: a detector instance of the policy, "
                                                             "e.g. claude")],
    policy: Annotated[Path, typer.Option("--policy", help="the policy whose text the judge reads")] = Path(
        "policies/default.yaml"),
    category: Annotated[list[str] | None, typer.Option("--category", help="only these categories "
                                                                          "(default: every labeled one)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write the report as JSON here")] = None,
    n_bootstrap: Annotated[int, typer.Option(min=0, help="bootstrap resamples for the intervals")] = 1000,
) -> None:
    """Label ITEMS with the policy's DETECTOR (an LLM reading the policy) and report agreement
    with the golden labels: kappa with a 95% interval and each source's prevalence."""
    from warden.cli.eval import InputError, read_labels
    from warden.core import Content
    from warden.pipelines.judge import run_judge
    from warden.policy import PolicyError, load_policy_file

    try:
        loaded = load_policy_file(policy)
    except PolicyError as exc:
        raise typer.Exit(_err(str(exc))) from None
    try:
        golden = read_labels(labels)
    except InputError as exc:
        raise typer.Exit(_err(str(exc))) from None
    contents: list[Content] = []
    try:
        for no, line in enumerate(items.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "id" not in obj:
                raise ValueError(f"{items}:{no}: each line needs an 'id' and a string 'text'")
            contents.append(Content(id=str(obj["id"]), text=obj["text"],
                                    surface=str(obj.get("surface") or "comment")))
    except (OSError, ValueError) as exc:
        raise typer.Exit(_err(f"cannot read items: {exc}")) from None
    try:
        run = run_judge(loaded.policy, detector, contents, golden, base_dir=loaded.path.parent.resolve(),
                        categories=category or None, n_bootstrap=n_bootstrap)
    except ValueError as exc:  # unknown detector or category; a provider without its key
        raise typer.Exit(_err(str(exc))) from None
    typer.echo(f"judge {run.detector} ({run.model_version or 'no answer'}): {run.n_items} items, "
               f"{run.n_failed} failed")
    for failure in run.failures:
        typer.echo(f"  failed: {failure}")
    typer.echo(f"{'category':26s} {'n':>5s} {'kappa':>7s} {'95% CI':>17s} {'agree':>6s} {'prev gold':>9s} "
               f"{'prev judge':>10s}")
    for cat, rep in run.reports.items():
        kappa = rep.kappa
        ci = f"[{kappa.ci_low:.3f}, {kappa.ci_high:.3f}]" if kappa and not math.isnan(kappa.ci_low) else "-"
        typer.echo(f"{cat:26s} {rep.n_items:5d} {_f(kappa.value if kappa else None):>7s} {ci:>17s} "
                   f"{_f(rep.observed_agreement):>6s} {_f(rep.prevalence.get('golden')):>9s} "
                   f"{_f(rep.prevalence.get('judge')):>10s}" + (f"  ({rep.reason})" if rep.reason else ""))
    if out is not None:
        out.write_text(json.dumps(run.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


def _f(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.3f}"


def _err(message: str) -> int:
    typer.echo(f"error: {message}", err=True)
    return 2
