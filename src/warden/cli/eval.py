"""`warden eval thresholds|compare`: adapt files to `warden.evaluate` and print Rich tables.

Inputs are the files Warden already writes and teams already have:

* scores: JSONL as written by `warden classify`, one `{"id": ..., "scores": {category: p}}`
  per line (lines without `scores`, e.g. per-item errors, are counted and skipped);
* labels: JSONL or CSV with an `id` and one 0/1 column per category; empty/null = unknown.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from warden.policy import DEFAULT_POLICY_PATH

eval_app = typer.Typer(help="Measure quality: choose thresholds, compare models.", no_args_is_help=True)

_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}
_UNKNOWN = {"", "null", "none", "nan", "na", "n/a", "?"}


class InputError(ValueError):
    """An input file that cannot be used; the message names the file and what is wrong."""


# -- reading files ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ScoreFile:
    path: Path
    scores: dict[str, dict[str, float]]  # id -> category -> score
    skipped: int  # lines without scores (errors)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None


def _jsonl_objects(path: Path, text: str, *, hint: str = "") -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; each must be a JSON object with an "id"."""
    out: list[tuple[int, dict[str, Any]]] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{no}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or "id" not in obj:
            raise InputError(f"{path}:{no}: each line needs an \"id\"{hint}")
        out.append((no, obj))
    return out


def read_scores(path: Path) -> ScoreFile:
    scores: dict[str, dict[str, float]] = {}
    skipped = 0
    for no, row in _jsonl_objects(path, _read_text(path), hint=" (as written by `warden classify`)"):
        if not isinstance(row.get("scores"), dict):
            skipped += 1
            continue
        key = str(row["id"])
        if key in scores:
            raise InputError(f"{path}:{no}: duplicate id {key!r}")
        scores[key] = {str(c): float(v) for c, v in row["scores"].items() if v is not None}
    return ScoreFile(path, scores, skipped)


def _label_value(value: object, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return math.nan
        if value in (0, 1):
            return float(value)
    else:
        text = str(value).strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        if text in _UNKNOWN:
            return math.nan
    raise InputError(f"{where}: label {value!r} is not 0/1 (empty or null = unknown)")


def read_labels(path: Path) -> dict[str, dict[str, float]]:
    """id -> category -> 0.0/1.0/NaN, from JSONL or CSV (by file suffix)."""
    rows: list[tuple[str, dict[str, object]]] = []
    text = _read_text(path)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise InputError(f"{path}: the CSV header needs an 'id' column")
        rows = [(f"{path}:{i + 2}", dict(r)) for i, r in enumerate(reader)]
    else:
        rows = [(f"{path}:{no}", obj) for no, obj in _jsonl_objects(path, text)]
    labels: dict[str, dict[str, float]] = {}
    for where, row in rows:
        key = str(row["id"])
        if key in labels:
            raise InputError(f"{where}: duplicate id {key!r}")
        labels[key] = {str(c): _label_value(v, f"{where}: {c}") for c, v in row.items()
                       if c not in ("id", "text", "content")}
    if not labels:
        raise InputError(f"{path}: no labeled rows")
    return labels


@dataclass(frozen=True, slots=True)
class Aligned:
    ids: tuple[str, ...]
    labels: dict[str, np.ndarray]  # category -> labels over ids
    scores: tuple[dict[str, np.ndarray], ...]  # one per score file: category -> scores over ids
    unlabeled_scored: int  # scored ids without labels (ignored)


def align(labels: Mapping[str, Mapping[str, float]], score_files: Sequence[ScoreFile]) -> Aligned:
    """Line up labels and scores by id. Every labeled id must be scored by every file: a
    partial match would evaluate a silently different set of items, so it is an error."""
    ids = tuple(labels)
    for sf in score_files:
        missing = [i for i in ids if i not in sf.scores]
        if missing:
            overlap = len(ids) - len(missing)
            raise InputError(
                f"ids do not match: {len(missing)} of {len(ids)} labeled ids have no scores in {sf.path} "
                f"(e.g. {', '.join(repr(m) for m in missing[:5])}); {overlap} match. Score exactly the labeled "
                "items (same `id` field) with `warden classify`.")
    categories = sorted({c for row in labels.values() for c in row})
    lab = {c: np.array([labels[i].get(c, math.nan) for i in ids], dtype=float) for c in categories}
    scored = tuple(
        {c: np.array([sf.scores[i].get(c, math.nan) for i in ids], dtype=float)
         for c in sorted({c for i in ids for c in sf.scores[i]})}
        for sf in score_files)
    extra = len(set(score_files[0].scores) - set(ids)) if score_files else 0
    return Aligned(ids, lab, scored, extra)


# -- helpers -----------------------------------------------------------------------------------

def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _load(path: Path):
    from warden.policy import PolicyError, load_policy

    try:
        return load_policy(path, check_detectors=False)
    except PolicyError as exc:
        raise _fail(str(exc)) from None


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# -- thresholds --------------------------------------------------------------------------------

@eval_app.command("thresholds")
def thresholds_cmd(
    scores: Annotated[Path, typer.Option(
        "--scores", help="Scores JSONL from `warden classify` on a VALIDATION split (never the test split).")],
    labels: Annotated[Path, typer.Option("--labels", help="Labels JSONL/CSV: id + one 0/1 column per category.")],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Current policy YAML.")] = Path(DEFAULT_POLICY_PATH),
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Constraint, repeatable: 'precision>=0.9', 'recall>=0.8', 'fpr<=0.01'; per category "
        "'hate:precision>=0.95' (replaces the global targets for that category).")] = None,
    cost_fp: Annotated[float | None, typer.Option("--cost-fp", help="Cost of one false positive (with --cost-fn).")]
    = None,
    cost_fn: Annotated[float | None, typer.Option("--cost-fn", help="Cost of one false negative (with --cost-fp).")]
    = None,
    surface: Annotated[str, typer.Option("--surface", help="Surface whose thresholds to set.")] = "default",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the new policy version here.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Version string of the new policy (with --out).")]
    = None,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the bootstrap.")] = 0,
) -> None:
    """Choose flag thresholds per category that meet targets (or minimize cost).

    Pass a VALIDATION split, never the test split: the chosen thresholds meet the targets on
    the data they were chosen on by construction, so the precision and recall printed here
    (with 95% bootstrap intervals) are optimistic. Measure the new policy on held-out data.
    """
    from warden.evaluate.thresholds import (
        ConstraintError,
        Cost,
        SelectionStatus,
        apply_thresholds,
        parse_target,
        select_thresholds,
        write_policy,
    )
    from warden.policy import PolicyError, load_policy

    if not target and (cost_fp is None or cost_fn is None):
        raise _fail("give at least one --target, or both --cost-fp and --cost-fn")
    if (cost_fp is None) != (cost_fn is None):
        raise _fail("--cost-fp and --cost-fn go together")
    if out is not None and not version:
        raise _fail("--out needs --version: the new policy must carry a new version string")
    try:
        parsed = [parse_target(t) for t in target or []]
        cost = Cost(fp=cost_fp, fn=cost_fn) if cost_fp is not None and cost_fn is not None else None
    except (ConstraintError, ValueError) as exc:
        raise _fail(str(exc)) from None
    pol = _load(policy)
    if surface != "default" and surface not in pol.surfaces:
        raise _fail(f"unknown surface {surface!r}; allowed: default, {', '.join(pol.surfaces)}")
    try:
        data = align(read_labels(labels), [read_scores(scores)])
    except InputError as exc:
        raise _fail(str(exc)) from None
    global_cons = [c for cat, c in parsed if cat is None]
    per_cat: dict[str, list] = {}
    for cat, c in parsed:
        if cat is not None:
            per_cat.setdefault(cat, []).append(c)
    unknown = sorted(set(per_cat) - set(data.labels))
    if unknown:
        raise _fail(f"--target names categories without labels: {', '.join(unknown)} "
                    f"(labeled: {', '.join(data.labels)})")
    cats = [c for c in data.labels if c in pol.categories and c in data.scores[0]]
    constraints = {c: per_cat.get(c, global_cons) for c in cats}
    choices = select_thresholds({c: data.labels[c] for c in cats}, data.scores[0], constraints=constraints,
                                costs=cost, n_bootstrap=n_bootstrap, random_state=seed)

    console = Console()
    table = Table(title=f"Thresholds for surface {surface!r} (selected on {labels.name}: a validation split)")
    for col in ("category", "n", "pos", "rule", "status", "old flag", "new flag", "precision [95% CI]",
                "recall [95% CI]", "FPR"):
        table.add_column(col, justify="right" if col in ("n", "pos", "old flag", "new flag", "FPR") else "left")
    current = {c: pol.categories[c].threshold_for(surface).flag for c in cats}
    for cat, ch in choices.items():
        ok = ch.status is SelectionStatus.SELECTED
        table.add_row(cat, str(ch.n), str(ch.positives), ch.rule,
                      ch.status.value if ok else f"[red]{ch.status.value}[/red]: {ch.reason}",
                      _fmt(current[cat]), _fmt(ch.threshold, 4) if ok else "-",
                      ch.precision.format() if ch.precision else "-", ch.recall.format() if ch.recall else "-",
                      ch.fpr.format(4) if ch.fpr else "-")
    console.print(table)
    untargeted = [c for c in cats if c not in choices]
    if untargeted:
        console.print(f"no target given, thresholds unchanged: {', '.join(untargeted)}")
    ignored = sorted(set(data.labels) - set(cats))
    if ignored:
        console.print(f"not tuned (not in the policy or not scored): {', '.join(ignored)}")
    if data.unlabeled_scored:
        console.print(f"{data.unlabeled_scored} scored ids have no labels and were ignored")
    if out is None:
        console.print("dry run: pass --out FILE --version V to write the new policy version")
        return
    assert version is not None
    try:
        update = apply_thresholds(pol, choices, surface=surface, version=version)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    header = (f"Policy {pol.name!r} version {version}, from version {pol.version} ({policy}).\n"
              f"Thresholds for surface {surface!r} chosen by `warden eval thresholds` on {labels} "
              f"({len(data.ids)} labeled items).")
    write_policy(update.policy, out, header=header)
    try:
        load_policy(out)
    except PolicyError as exc:
        raise _fail(f"the written policy does not validate (please report):\n{exc}") from None
    for line in update.changes:
        console.print(f"  ~ {line}")
    for line in update.skipped:
        console.print(f"  [yellow]skipped[/yellow] {line}")
    console.print(f"wrote {out} (version {version}); review with `warden policy diff {policy} {out}`")


# -- compare -----------------------------------------------------------------------------------

@eval_app.command("compare")
def compare_cmd(
    champion: Annotated[Path, typer.Option("--champion", help="Scores JSONL of the current (live) model.")],
    challenger: Annotated[Path, typer.Option("--challenger", help="Scores JSONL of the candidate model.")],
    labels: Annotated[Path, typer.Option("--labels", help="Labels JSONL/CSV: id + one 0/1 column per category.")],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy with the champion's thresholds.")]
    = Path(DEFAULT_POLICY_PATH),
    challenger_policy: Annotated[Path | None, typer.Option(
        "--challenger-policy", help="Policy with the challenger's thresholds (default: --policy).")] = None,
    surface: Annotated[str, typer.Option("--surface", help="Surface whose thresholds McNemar uses.")] = "default",
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level per category.")] = 0.05,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", help="Paired bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the bootstrap.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
) -> None:
    """Champion vs challenger on the same labeled items: paired bootstrap on PR-AUC and
    McNemar's test at each one's thresholds, with a plain verdict per category."""
    from warden.evaluate.compare import Verdict, compare
    from warden.evaluate.thresholds import policy_thresholds

    pol_a = _load(policy)
    pol_b = _load(challenger_policy) if challenger_policy else pol_a
    try:
        data = align(read_labels(labels), [read_scores(champion), read_scores(challenger)])
    except InputError as exc:
        raise _fail(str(exc)) from None
    results = compare(data.labels, data.scores[0], data.scores[1],
                      champion_thresholds=policy_thresholds(pol_a, surface=surface),
                      challenger_thresholds=policy_thresholds(pol_b, surface=surface),
                      alpha=alpha, n_bootstrap=n_bootstrap, random_state=seed)
    colour = {Verdict.BETTER: "green", Verdict.WORSE: "red", Verdict.MIXED: "yellow"}
    table = Table(title=f"Champion {champion.name} vs challenger {challenger.name} on {len(data.ids)} items")
    for col in ("category", "n", "prevalence", "PR-AUC champion", "PR-AUC challenger", "difference [95% CI]", "p",
                "McNemar only-champ/only-chall", "McNemar p", "verdict"):
        table.add_column(col)
    for cat, r in results.items():
        pr, mc = r.pr_auc, r.mcnemar
        verdict = r.verdict.value
        if r.verdict in colour:
            verdict = f"[{colour[r.verdict]}]{verdict}[/{colour[r.verdict]}]"
        table.add_row(cat, str(r.n), _fmt(r.prevalence), _fmt(pr.champion if pr else None),
                      _fmt(pr.challenger if pr else None), pr.difference.format() if pr else "-",
                      _fmt(pr.p_value) if pr else "-", f"{mc.champion_only}/{mc.challenger_only}" if mc else "-",
                      _fmt(mc.p_value) if mc else "-", verdict if r.verdict is not Verdict.UNMEASURED else r.summary)
    console = Console()
    console.print(table)
    for r in results.values():
        if r.verdict is not Verdict.UNMEASURED:
            console.print(f"{r.category}: {r.summary}")
    if json_out is not None:
        json_out.write_text(json.dumps({c: r.to_dict() for c, r in results.items()}, indent=2) + "\n",
                            encoding="utf-8")
        console.print(f"wrote {json_out}")


# `warden eval run` and `warden eval gate` live in their own module and register on eval_app.
from warden.cli import eval_report as _eval_report  # noqa: E402,F401
