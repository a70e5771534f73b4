"""`warden eval backtest|shadow|online`: production-facing evaluation (issue 3, items 8 and 11).

These commands adapt files and the store to the pure functions in `warden.evaluate.backtest`
and `warden.evaluate.online`, and print Rich tables. `eval_ops_app` is a Typer sub-app; the
commands are also exported (`backtest_cmd`, `shadow_cmd`, `online_cmd`, `register`) so they
can be registered on the main `eval_app`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from warden.cli._common import DATABASE_URL_HELP

if TYPE_CHECKING:
    from warden.core import Content
    from warden.evaluate.backtest import BacktestReport
    from warden.evaluate.online import OnlineReport, RateRow
    from warden.store import Store

eval_ops_app = typer.Typer(help="Backtests, shadow-mode reports and online metrics.", no_args_is_help=True)

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def parse_when(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """`7d`, `24h`, `30m`, `2w` (ago), or an ISO date/datetime (UTC when no zone is given)."""
    if value is None or not value.strip():
        return None
    m = _RELATIVE.match(value)
    if m:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"cannot read time {value!r}: use e.g. 7d, 24h or 2025-01-31T12:00") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _when(value: str | None, option: str) -> datetime | None:
    try:
        return parse_when(value)
    except ValueError as exc:
        raise _fail(f"{option}: {exc}") from None


def read_items(path: Path) -> list[Content]:
    """Past items as JSONL: `{"id", "text", "surface"?, "actor_id"?}` per line (ids required)."""
    from warden.ingest import InvalidItem, parse_item

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise _fail(f"{path}: file not found") from None
    items: list[Content] = []
    seen: set[str] = set()
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            item = parse_item(obj, make_id=False)
        except json.JSONDecodeError as exc:
            raise _fail(f"{path}:{no}: not valid JSON ({exc.msg})") from None
        except InvalidItem as exc:
            raise _fail(f"{path}:{no}: {exc}") from None
        if item.id in seen:
            raise _fail(f"{path}:{no}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise _fail(f"{path}: no items")
    return items


def _labels(path: Path | None) -> dict[str, dict[str, float]] | None:
    if path is None:
        return None
    from warden.cli.eval import InputError, read_labels

    try:
        return read_labels(path)
    except InputError as exc:
        raise _fail(str(exc)) from None


def _moderator(path: Path, what: str):
    from warden.moderator import Moderator

    try:
        return Moderator.from_file(path)
    except Exception as exc:  # PolicyError, missing model files
        raise _fail(f"cannot load {what} policy {path}: {exc}") from None


def _open_store(database_url: str | None) -> Store:
    from warden.cli._common import open_store

    return open_store(database_url, upgrade=True)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _moderate(moderator: Any, items: Sequence[Content], batch: int = 256) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(items), batch):
        out.extend(moderator.moderate_batch(items[i : i + batch]))
    return out


def print_backtest(report: BacktestReport, *, title: str, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]{title}[/bold]")
    console.print(
        f"items compared: {report.n_items}  baseline versions: {', '.join(report.old_policy_versions) or '-'}  "
        f"candidate versions: {', '.join(report.new_policy_versions) or '-'}"
    )
    if report.only_old or report.only_new:
        console.print(f"not compared: {report.only_old} with a baseline decision only, "
                      f"{report.only_new} with a candidate decision only")
    console.print(f"changed actions: {report.changed} ({report.changed_rate.format()})  "
                  f"agreement: {_fmt(report.agreement_rate)}  flagged categories changed: {report.flags_changed}")
    if report.transitions:
        actions = sorted({b for row in report.transitions.values() for b in row})
        t = Table(title="Action transitions (rows: baseline, columns: candidate)")
        t.add_column("baseline \\ candidate")
        for a in actions:
            t.add_column(a, justify="right")
        for a, row in report.transitions.items():
            t.add_row(a, *[(f"[bold]{row.get(b, 0)}[/bold]" if a != b and row.get(b, 0) else str(row.get(b, 0)))
                           for b in actions])
        console.print(t)
    t = Table(title="Volumes by action")
    for col in ("action", "baseline", "candidate", "delta"):
        t.add_column(col, justify="left" if col == "action" else "right")
    for v in report.volumes:
        t.add_row(v.action, str(v.old), str(v.new), f"{v.delta:+d}")
    console.print(t)
    t = Table(title="Flag rate per category")
    for col in ("category", "baseline", "candidate", "delta", "newly flagged", "no longer flagged"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for c in report.categories:
        t.add_row(c.category, f"{_fmt(c.old_rate, 4)} ({c.old_flagged})", f"{_fmt(c.new_rate, 4)} ({c.new_flagged})",
                  f"{c.rate_delta:+.4f}" if not math.isnan(c.rate_delta) else "-", str(c.newly_flagged),
                  str(c.unflagged))
    console.print(t)
    if report.label_deltas:
        t = Table(title=f"Against labels ({report.n_labeled_items} labeled items; 95% paired bootstrap intervals)")
        for col in ("category", "n", "pos", "precision baseline", "precision candidate", "delta",
                    "recall baseline", "recall candidate", "delta"):
            t.add_column(col)
        for d in report.label_deltas:
            t.add_row(d.category, str(d.n_labeled), str(d.positives), d.old_precision.format(),
                      d.new_precision.format(), d.precision_delta.format(), d.old_recall.format(),
                      d.new_recall.format(), d.recall_delta.format())
        console.print(t)
    if report.examples:
        console.print("changed examples: " + ", ".join(
            f"{e.content_id} ({e.old_action}->{e.new_action})" for e in report.examples[:10]))


def _write_json(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")


# -- backtest ----------------------------------------------------------------------------------

def _stored_baseline(store: Store, ids: Iterable[str], *, candidate_version: str,
                     baseline_version: str | None) -> list[Any]:
    """Per content id, the most recent stored decision of another policy version (or of
    `baseline_version`): the decision that was actually live for it."""
    latest: dict[str, Any] = {}
    for rec in store.list_decisions(content_ids=ids, policy_version=baseline_version):
        if baseline_version is None and rec.policy_version == candidate_version:
            continue
        latest[rec.content_id] = rec  # oldest first: the last one wins
    return [rec.payload for rec in latest.values()]


@eval_ops_app.command("backtest")
def backtest_cmd(
    candidate: Annotated[Path, typer.Option("--candidate", help="Candidate policy YAML (new policy or model).")],
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="Baseline policy YAML, re-run on the same items. Without it, the baseline is the "
        "decisions stored for these items (needs --from-store).")] = None,
    items: Annotated[Path | None, typer.Option(
        "--items", help="Past items JSONL: {\"id\", \"text\", \"surface\"?} per line. Without it, items come "
        "from the store's content archive (needs --from-store and WARDEN_ARCHIVE_CONTENT on the service).")] = None,
    from_store: Annotated[bool, typer.Option(
        "--from-store", help="Read what --items / --baseline do not give from the database.")] = False,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Labels JSONL/CSV: id + one 0/1 column per category (precision/recall deltas).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report as JSON here.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Archived items from (7d, 24h, ISO time).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Archived items before (7d, 24h, ISO time).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many archived items.")] = None,
    baseline_version: Annotated[str | None, typer.Option(
        "--baseline-version", help="With a stored baseline: use decisions of this policy version only.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)] = None,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the bootstrap.")] = 0,
) -> None:
    """Replay a candidate policy over past items: changed decisions (rate, transitions,
    examples), volumes by action, flag rates per category and, with --labels, precision and
    recall deltas with 95% intervals. Nothing is written to the database."""
    from warden.evaluate.backtest import backtest

    if items is None and not from_store:
        raise _fail("give --items past.jsonl, or --from-store to read the content archive")
    if baseline is None and not from_store:
        raise _fail("give --baseline policy.yaml, or --from-store to compare with the stored decisions")
    since_dt, until_dt = _when(since, "--since"), _when(until, "--until")
    label_map = _labels(labels)
    cand = _moderator(candidate, "candidate")
    base = _moderator(baseline, "baseline") if baseline is not None else None

    store = _open_store(database_url) if from_store else None
    try:
        from warden.core import Content

        if items is not None:
            contents = read_items(items)
            source = str(items)
        else:
            assert store is not None
            archived = store.archived_content(since=since_dt, until=until_dt, limit=limit)
            if not archived:
                raise _fail("the content archive has no items in this window (the service archives content only "
                            "with WARDEN_ARCHIVE_CONTENT=1); pass --items past.jsonl instead")
            contents = [Content(id=a.content_id, text=a.text, surface=a.surface, actor_id=a.actor_id)
                        for a in archived]
            source = "content archive"
        new = _moderate(cand, contents)
        if base is not None:
            old: list[Any] = _moderate(base, contents)
            baseline_desc = str(baseline)
        else:
            assert store is not None
            old = _stored_baseline(store, (c.id for c in contents), candidate_version=str(cand.policy.version),
                                   baseline_version=baseline_version)
            baseline_desc = "stored decisions"
            if not old:
                raise _fail("no stored decisions for these items (other than the candidate's version)")
    finally:
        if store is not None:
            store.close()
    report = backtest(old, new, labels=label_map, n_bootstrap=n_bootstrap, random_state=seed)
    print_backtest(report, title=f"Backtest: {candidate} vs {baseline_desc} on {len(contents)} items ({source})")
    if out is not None:
        _write_json(out, {"kind": "backtest", "candidate": str(candidate), "baseline": baseline_desc,
                          "items": source, "labels": str(labels) if labels else None, **report.to_dict()})
        typer.echo(f"wrote {out}")


# -- shadow ------------------------------------------------------------------------------------

@eval_ops_app.command("shadow")
def shadow_cmd(
    since: Annotated[str | None, typer.Option("--since", help="Shadow decisions from (7d, 24h, ISO time).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Shadow decisions before (7d, 24h, ISO time).")]
    = None,
    candidate_version: Annotated[str | None, typer.Option(
        "--candidate-version", help="The shadow policy version to report (needed when several ran).")] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Labels JSONL/CSV keyed by content id: precision/recall live vs shadow.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report as JSON here.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)] = None,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the bootstrap.")] = 0,
) -> None:
    """Compare the shadow (candidate) policy with the live one on the traffic it shadowed:
    agreement, action transitions, flag rates per category and, with --labels, precision and
    recall live vs shadow."""
    from warden.evaluate.backtest import backtest

    since_dt, until_dt = _when(since, "--since"), _when(until, "--until")
    label_map = _labels(labels)
    store = _open_store(database_url)
    try:
        pairs = store.shadow_comparisons(since=since_dt, until=until_dt, policy_version=candidate_version)
    finally:
        store.close()
    if not pairs:
        raise _fail("no shadow decisions in this window (run `warden serve --shadow-policy candidate.yaml`)", 1)
    versions = sorted({sh.policy_version for _, sh in pairs})
    if len(versions) > 1:
        raise _fail(f"several shadow policy versions in this window ({', '.join(versions)}); "
                    "choose one with --candidate-version")
    latest: dict[str, tuple[Any, Any]] = {}
    for live, sh in pairs:  # oldest first: the latest pair per item wins
        latest[sh.content_id] = (live, sh)
    report = backtest([lv.payload for lv, _ in latest.values()], [sh.payload for _, sh in latest.values()],
                      labels=label_map, n_bootstrap=n_bootstrap, random_state=seed)
    print_backtest(report, title=f"Shadow: candidate {versions[0]} vs live on {report.n_items} items")
    if out is not None:
        _write_json(out, {"kind": "shadow", "candidate_version": versions[0], "since": since, "until": until,
                          "labels": str(labels) if labels else None, **report.to_dict()})
        typer.echo(f"wrote {out}")


# -- online ------------------------------------------------------------------------------------

def _rate_table(title: str, rows: Sequence[RateRow], hits: str) -> Table:
    t = Table(title=title)
    for col in ("category", "surface", "n", hits, "estimate [95% CI]", "weighted (n_eff)", "decisions represented"):
        t.add_column(col, justify="left" if col in ("category", "surface") else "right")
    for r in rows:
        t.add_row(r.category, r.surface, str(r.n), str(r.hits), r.estimate.format(),
                  f"yes ({r.n_effective:.1f})" if r.weighted else "no",
                  f"{r.estimated_decisions:,.0f}" if r.estimated_decisions is not None else "-")
    return t


def print_online(report: OnlineReport, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"{report.n_outcomes} review outcomes ('*' = all; Wilson 95% intervals)")
    console.print(_rate_table("Precision of automated actions (random QA sample; share upheld)",
                              report.qa_precision, "upheld"))
    console.print(_rate_table("Missed violations among automated allows (QA sample; share overturned)",
                              report.qa_miss_rate, "overturned"))
    console.print(_rate_table("Appeal overturn rate (among appealed decisions; not a random sample)",
                              report.appeal_overturn_rate, "overturned"))
    if report.n_unrated_qa:
        console.print(f"[yellow]{report.n_unrated_qa} QA outcomes have no sample_rate[/yellow]: they are weighted "
                      "as if sampled at rate 1 where rates differ")


@eval_ops_app.command("online")
def online_cmd(
    since: Annotated[str | None, typer.Option("--since", help="Outcomes from (7d, 24h, ISO time).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Outcomes before (7d, 24h, ISO time).")] = None,
    policy_version: Annotated[str | None, typer.Option("--policy-version", help="Only this policy version.")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the figures as JSON here.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)] = None,
) -> None:
    """Online quality from reviewer outcomes: precision of automated actions from the random
    QA sample (weighted by the sampling rate), missed violations among automated allows, and
    the appeal overturn rate, per category and surface, with Wilson 95% intervals."""
    from warden.evaluate.online import online_metrics

    since_dt, until_dt = _when(since, "--since"), _when(until, "--until")
    store = _open_store(database_url)
    try:
        outcomes = store.review_outcomes(since=since_dt, until=until_dt, policy_version=policy_version)
    finally:
        store.close()
    report = online_metrics(outcomes)
    print_online(report)
    if out is not None:
        _write_json(out, {"kind": "online", "since": since, "until": until, **report.to_dict()})
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add `backtest`, `shadow` and `online` to another Typer app (e.g. `warden eval`)."""
    app.command("backtest")(backtest_cmd)
    app.command("shadow")(shadow_cmd)
    app.command("online")(online_cmd)


__all__ = ["backtest_cmd", "eval_ops_app", "online_cmd", "parse_when", "read_items", "register", "shadow_cmd"]
