"""`warden review fill-learning`: fill the policy's learning queue with active-learning picks.

Why: the learning lane is how reviewer time turns into better models. Instead of labeling
random traffic, reviewers get the archived items whose stored scores sit closest to a flag
threshold, spread over different kinds of content (`warden.learn.active.pick_for_learning`;
measured against random picks in docs/active_learning.md). This module only adapts: it reads
archived content and stored decisions, calls the pure selection, and enqueues `learning_task`
specs; enqueueing is idempotent per (model, content id).

Wire it with `register(review_app)` on the `warden review` Typer app.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from warden.cli._common import DATABASE_URL_HELP, open_store
from warden.policy import DEFAULT_POLICY_PATH

#: Tasks in these statuses mean a human is already (or will be) looking at the item.
_BUSY_STATUSES = ("open", "leased")
_PAGE = 10_000


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def fill_learning(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="How many items to enqueue.")] = 50,
    days: Annotated[float, typer.Option("--days", min=0.01, help="Consider items archived in the last DAYS.")] = 30.0,
    window: Annotated[int, typer.Option("--window", min=1, max=200_000,
                                        help="At most this many most recent archived items are candidates.")] = 20_000,
    model: Annotated[str, typer.Option("--model", help="The model the labels are for (task dedupe key: one task "
                                       "per model and content id).")] = "text-v1",
    strategy: Annotated[str, typer.Option("--strategy", help="uncertainty_diversity (default), uncertainty or "
                                          "random (a baseline lane).")] = "uncertainty_diversity",
    seed: Annotated[int, typer.Option("--seed", help="Makes the picks reproducible.")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the picks, enqueue nothing.")] = False,
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.")] = DEFAULT_POLICY_PATH,
    database_url: Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)] = None,
) -> None:
    """Pick archived items whose labels would teach the model most and queue them for review.

    Candidates: archived content (needs `archive_content` on) with a stored decision, not yet
    labeled and not waiting in any queue. Uncertainty is measured at each item's own flag
    thresholds (its surface's) on the latest decision's scores. Uses the MiniLM encoder on at
    most 10 x LIMIT texts (the uncertainty shortlist).
    """
    from warden.learn.active import STRATEGIES, LearningCandidate, embed_with_minilm, pick_for_learning
    from warden.policy import PolicyError, load_policy
    from warden.review.routing import learning_task, scores_uncertainty
    from warden.store.repository import DecisionRecord
    from warden.store.review_repo import ReviewRepository
    from warden.store.sqltypes import utcnow

    if strategy not in STRATEGIES:
        raise _fail(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}", 2)
    try:
        pol = load_policy(policy)
    except (PolicyError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    store = open_store(database_url)
    repo = ReviewRepository(store, policy=pol)

    archived = store.archived_content(since=utcnow() - timedelta(days=days))[-window:]
    latest: dict[str, DecisionRecord] = {}
    for d in store.list_decisions(content_ids=[a.content_id for a in archived]):
        latest[d.content_id] = d  # oldest first: the last one wins
    busy = {ex.content_id for ex in repo.labeled_examples()}
    for status in _BUSY_STATUSES:
        after: int | None = None
        while True:
            page = repo.list_tasks(status=status, after_id=after, limit=_PAGE)
            busy.update(t.content_id for t in page)
            if len(page) < _PAGE:
                break
            after = page[-1].id

    cats = list(pol.categories)
    candidates: list[LearningCandidate] = []
    for a in archived:
        d = latest.get(a.content_id)
        if d is None or a.content_id in busy or not a.text:
            continue
        scores = {c: float(v) for c, v in (d.payload.get("scores") or {}).items() if c in pol.categories}
        if not scores:
            continue
        candidates.append(LearningCandidate(
            key=a.content_id, text=a.text, scores=scores,
            thresholds={c: pol.categories[c].threshold_for(d.surface).flag for c in scores}))
    default_flags = {c: pol.categories[c].threshold_for("default").flag for c in cats}
    picks = pick_for_learning(candidates, limit=limit, embed=embed_with_minilm, thresholds=default_flags, seed=seed,
                              strategy=strategy)  # type: ignore[arg-type]
    by_key = {c.key: c for c in candidates}
    by_actor = {a.content_id: a.actor_id for a in archived}
    specs = []
    for p in picks:
        d = latest[p.key]
        cand = by_key[p.key]
        specs.append(learning_task(
            pol, content_id=p.key, surface=d.surface, categories=(p.category,),
            # the queue's priority uses routing's closeness, like every other task source
            uncertainty=scores_uncertainty(pol, surface=d.surface, categories=(p.category,), scores=cand.scores),
            model=model, decision_id=d.decision_id, policy_version=d.policy_version, actor_id=by_actor.get(p.key)))
    typer.echo(f"{len(archived)} archived items, {len(candidates)} candidates (scored, unlabeled, not queued); "
               f"picked {len(picks)} ({strategy})")
    for p in picks:
        typer.echo(f"  {p.key}  {p.category:<24} score {p.score:.3f}  uncertainty {p.uncertainty:.3f}")
    if dry_run:
        typer.echo("dry run: nothing enqueued")
        return
    ids = repo.enqueue(specs)
    queue = pol.review.learning_queue or pol.review.default_queue
    typer.echo(f"enqueued {len(ids)} new task(s) in queue {queue!r} ({len(specs) - len(ids)} already queued)")


def register(review_app: typer.Typer) -> None:
    """Add `fill-learning` to the `warden review` app."""
    review_app.command("fill-learning")(fill_learning)
