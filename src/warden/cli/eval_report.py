"""`warden eval run` (report for a policy on labeled data) and `warden eval gate` (release gate).

Registered on `warden.cli.eval.eval_app` (imported at the end of that module).
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from warden.cli.eval import InputError, _fail, eval_app, read_scores
from warden.policy import DEFAULT_POLICY_PATH

#: exit codes of `warden eval gate`
GATE_FAILED = 1
GATE_ERROR = 2


def _is_policy(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def _moderator(path: Path):
    from warden.moderator import Moderator
    from warden.policy import PolicyError

    try:
        return Moderator.from_file(path)
    except (PolicyError, FileNotFoundError, ValueError) as exc:
        raise _fail(f"{path}: cannot load the policy: {exc}", GATE_ERROR) from None


def _score_with_progress(moderator: Any, examples: list, *, surface: str, label: str,
                         console: Console) -> dict[str, np.ndarray]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from warden.evaluate.runner import score_examples

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task(label, total=len(examples))
        return score_examples(moderator, examples, surface=surface,
                              on_progress=lambda k: progress.advance(task, k))


def _scores_from_file(path: Path, examples: list) -> dict[str, np.ndarray]:
    """Scores JSONL (`{"id", "scores"}` per line) aligned to the examples' ids; every example
    must be scored, or the gate would measure a silently different set."""
    try:
        sf = read_scores(path)
    except InputError as exc:
        raise _fail(str(exc), GATE_ERROR) from None
    missing = [e.id for e in examples if e.id not in sf.scores]
    if missing:
        raise _fail(f"{path}: {len(missing)} of {len(examples)} items have no scores (e.g. "
                    f"{', '.join(repr(m) for m in missing[:3])}); score the gate's data (ids as written by "
                    "`warden eval run` in scores.jsonl)", GATE_ERROR)
    cats = sorted({c for e in examples for c in sf.scores[e.id]})
    return {c: np.array([sf.scores[e.id].get(c, math.nan) for e in examples], dtype=float) for c in cats}


def _candidate(path: Path, examples: list, *, surface: str, fallback_policy: Path, console: Console,
               label: str) -> tuple[dict[str, np.ndarray], Any]:
    """(scores, policy whose thresholds apply) for a policy YAML or a scores JSONL."""
    from warden.policy import PolicyError, load_policy

    if not path.exists():
        raise _fail(f"{path}: file not found", GATE_ERROR)
    if _is_policy(path):
        mod = _moderator(path)
        return _score_with_progress(mod, examples, surface=surface, label=label, console=console), mod.policy
    try:
        pol = load_policy(fallback_policy, check_detectors=False)
    except PolicyError as exc:
        raise _fail(str(exc), GATE_ERROR) from None
    return _scores_from_file(path, examples), pol


def _print_summary(report: Any, console: Console) -> None:
    """A compact table (the HTML and Markdown carry every interval)."""

    def pt(e: Any, d: int = 3) -> str:
        return "-" if e is None or not e.defined else f"{e.value:.{d}f}"

    table = Table(title=f"{report.meta.title}: {report.n_items} items")
    for col in ("category", "n", "pos", "PR-AUC [95% CI]", "ROC-AUC", "thr", "precision", "recall", "FPR"):
        table.add_column(col, justify="left" if col in ("category", "PR-AUC [95% CI]") else "right")
    for cat, r in report.categories.items():
        if not r.measured:
            table.add_row(cat, str(r.n), str(r.positives), f"[yellow]UNMEASURED[/yellow] ({r.reason})", "", "", "",
                          "", "")
            continue
        at = r.at_threshold
        table.add_row(cat, str(r.n), str(r.positives), r.pr_auc.format(), pt(r.roc_auc), f"{at.threshold:g}",
                      pt(at.precision), pt(at.recall), pt(at.fpr, 4))
    console.print(table)


def _write_scores(path: Path, examples: list, scores: dict[str, np.ndarray]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, e in enumerate(examples):
            row = {c: round(float(v[i]), 6) for c, v in scores.items() if not math.isnan(v[i])}
            f.write(json.dumps({"id": e.id, "scores": row}) + "\n")


@eval_app.command("run")
def run_cmd(
    data: Annotated[str, typer.Option("--data", "-d", help="Dataset manifest (path or name) or dataset source "
                                      "name(s) of $WARDEN_DATA, comma-separated, or 'all'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for report.html, report.json, summary.md "
                                      "and scores.jsonl.")],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML to evaluate.")]
    = Path(DEFAULT_POLICY_PATH),
    split: Annotated[str, typer.Option("--split", help="Split of dataset sources: test (held out), calibration, "
                                       "train or all. Manifests apply their own split.")] = "test",
    surface: Annotated[str, typer.Option("--surface", help="Surface whose thresholds apply.")] = "default",
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate at most N items (deterministic subsample)."
                                              )] = None,
    base_rate: Annotated[float | None, typer.Option("--base-rate", help="Deployment prevalence for adjusted "
                                                    "precision (e.g. 0.01).")] = None,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals.")] = 1000,
    top_k: Annotated[int, typer.Option("--top-k", help="Worst false positives / negatives shown per category.")]
    = 10,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the bootstrap.")] = 0,
    title: Annotated[str | None, typer.Option("--title", help="Report title.")] = None,
) -> None:
    """Evaluate a policy (its detectors and thresholds) on labeled data and write the reports."""
    from warden.evaluate.render import write_report
    from warden.evaluate.report import ReportMeta, build_report
    from warden.evaluate.runner import DataError, load_data, optional_sections
    from warden.evaluate.thresholds import policy_thresholds

    if split not in ("test", "calibration", "train", "all"):
        raise _fail(f"--split must be one of test, calibration, train, all; got {split!r}")
    console = Console(stderr=False)
    err = Console(stderr=True)
    mod = _moderator(policy)
    if surface != "default" and surface not in mod.policy.surfaces:
        raise _fail(f"unknown surface {surface!r}; allowed: default, {', '.join(mod.policy.surfaces)}")
    try:
        loaded = load_data(data, split=split, limit=limit)
    except DataError as exc:
        raise _fail(str(exc)) from None
    examples = loaded.examples
    if split == "train":
        err.print("[yellow]warning:[/yellow] the train split was used to fit the bundled model: figures are "
                  "optimistic")
    scores = _score_with_progress(mod, examples, surface=surface, label=f"scoring {len(examples)} items", console=err)
    thresholds = policy_thresholds(mod.policy, surface=surface)
    fairness, robustness, missing = optional_sections(examples, scores, thresholds, moderator=mod)
    meta = ReportMeta(title=title or f"Evaluation of {mod.policy.name} {mod.policy.version} on {data}",
                      dataset=loaded.description, split=loaded.split, policy_name=mod.policy.name,
                      policy_version=mod.policy.version, surface=surface,
                      created=datetime.now(UTC).isoformat(timespec="seconds"),
                      notes=(f"subsample of {limit} items",) if limit else ())
    report = build_report(examples, scores, thresholds=thresholds, meta=meta, base_rates=base_rate,
                          n_bootstrap=n_bootstrap, random_state=seed, top_k=top_k, fairness=fairness,
                          robustness=robustness, missing_sections=missing)
    paths = write_report(report, out)
    _write_scores(out / "scores.jsonl", examples, scores)
    _print_summary(report, console)
    for name, why in missing.items():
        console.print(f"[yellow]{name}[/yellow] section not included: {why}")
    console.print(f"wrote {paths['html']}, {paths['json']}, {paths['markdown']}, {out / 'scores.jsonl'}")


@eval_app.command("gate")
def gate_cmd(
    gates: Annotated[Path, typer.Argument(help="Gates YAML (rules, limits and the golden data they run on).")],
    candidate: Annotated[Path, typer.Option("--candidate", help="Candidate: policy YAML (scored here) or scores "
                                            "JSONL of the gate's items.")],
    champion: Annotated[Path | None, typer.Option("--champion", help="Champion (live) policy YAML or scores JSONL, "
                                                  "for max_regression rules.")] = None,
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy whose thresholds apply to a scores JSONL.")]
    = Path(DEFAULT_POLICY_PATH),
    report_dir: Annotated[Path | None, typer.Option("--report", help="Also write the full report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the gate results as JSON here.")] = None,
) -> None:
    """Check a candidate against release limits. Exit 0 = passed, 1 = a rule failed (each
    failure is printed with the measured value, the limit and why), 2 = unusable input."""
    from warden.evaluate.compare import compare
    from warden.evaluate.gates import GateConfigError, RuleStatus, check_gates, load_gates
    from warden.evaluate.report import LabeledExample, ReportMeta, build_report
    from warden.evaluate.runner import DataError, load_data
    from warden.evaluate.thresholds import policy_thresholds

    console = Console()
    err = Console(stderr=True)
    try:
        config = load_gates(gates)
    except GateConfigError as exc:
        raise _fail(f"invalid gates file:\n{exc}", GATE_ERROR) from None
    examples: list[LabeledExample] = []
    described = []
    for spec in config.data:
        try:
            loaded = load_data(spec.manifest or spec.source or "", split=config.split, limit=spec.limit,
                               base=gates.parent)
        except DataError as exc:
            raise _fail(f"{gates}: data: {exc}", GATE_ERROR) from None
        examples += loaded.examples
        described.append(f"{loaded.description} ({len(loaded.examples)} items)")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise _fail(f"{gates}: data: the same item id appears in several data entries", GATE_ERROR)
    cand_scores, cand_policy = _candidate(candidate, examples, surface=config.surface, fallback_policy=policy,
                                          console=err, label=f"candidate: {len(examples)} items")
    thresholds = policy_thresholds(cand_policy, surface=config.surface)
    comparison = None
    if champion is not None:
        champ_scores, champ_policy = _candidate(champion, examples, surface=config.surface, fallback_policy=policy,
                                                console=err, label=f"champion: {len(examples)} items")
        labels = {c: np.array([float(e.labels[c]) if e.labels.get(c) in (0, 1) else math.nan for e in examples])
                  for c in thresholds}
        comparison = compare(labels, champ_scores, cand_scores,
                             champion_thresholds=policy_thresholds(champ_policy, surface=config.surface),
                             challenger_thresholds=thresholds, n_bootstrap=max(config.n_bootstrap, 1),
                             random_state=config.seed)
    meta = ReportMeta(title=f"Gate {config.name}: {candidate.name}", dataset="; ".join(described),
                      split=config.split, policy_name=cand_policy.name, policy_version=cand_policy.version,
                      surface=config.surface, created=datetime.now(UTC).isoformat(timespec="seconds"))
    report = build_report(examples, cand_scores, thresholds=thresholds, meta=meta, n_bootstrap=config.n_bootstrap,
                          random_state=config.seed, comparison=comparison,
                          missing_sections={"fairness": "not run by the gate (see max_fairness_gap rules)",
                                            "robustness": "not run by the gate"})
    result = check_gates(report, config)

    table = Table(title=f"Gate {config.name!r} on {len(examples)} items: "
                  f"{'PASSED' if result.passed else 'FAILED'}")
    for col in ("status", "category", "rule", "measured", "limit", "why"):
        table.add_column(col, overflow="fold")
    colour = {RuleStatus.PASS: "green", RuleStatus.FAIL: "red", RuleStatus.UNMEASURED: "yellow",
              RuleStatus.SKIPPED: "dim"}
    for r in result.results:
        status = r.status.value.upper() + (" (blocking)" if r.blocking and r.status is not RuleStatus.FAIL else "")
        table.add_row(f"[{colour[r.status]}]{status}[/{colour[r.status]}]", r.category, r.rule,
                      "-" if r.measured is None else f"{r.measured:.3f}", f"{r.limit:g}", r.message)
    console.print(table)
    if report_dir is not None:
        from warden.evaluate.render import write_report

        write_report(report, report_dir)
        console.print(f"wrote the report to {report_dir}")
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    # plain lines (no table wrapping) so CI logs say exactly what failed
    for r in result.warnings:
        print(f"WARNING {r.category}: {r.rule}: {r.status.value}: {r.message}")
    for r in result.failures:
        print(f"FAILED {r.category}: {r.rule}: {r.message}")
    n_pass = sum(r.status is RuleStatus.PASS for r in result.results)
    print(f"gate {config.name}: {'PASSED' if result.passed else 'FAILED'} ({n_pass} passed, "
          f"{len(result.failures)} failed, {len(result.warnings)} warnings)")
    sys.stdout.flush()
    if not result.passed:
        raise typer.Exit(GATE_FAILED)
