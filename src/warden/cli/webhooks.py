"""`warden webhooks ...` (deliver the enforcement outbox, dead letters, replay) and
`warden strikes show ACTOR`."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from warden.cli._common import DATABASE_URL_HELP, cli_actor, open_store
from warden.policy import DEFAULT_POLICY_PATH

webhooks_app = typer.Typer(
    help="Deliver enforcement webhooks to your platform; inspect and replay dead letters.\n\n"
    "Configure with env WARDEN_WEBHOOK_URL and WARDEN_WEBHOOK_SECRET_FILE (or WARDEN_WEBHOOK_SECRET). "
    "`warden serve` delivers in the background when WARDEN_WEBHOOK_URL is set; `warden webhooks dispatch` "
    "runs a stand-alone dispatcher (run several for availability: they never send the same row at once).",
    no_args_is_help=True,
)
strikes_app = typer.Typer(help="Strikes per actor: decayed totals and the account-action ladder.",
                          no_args_is_help=True)

DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _ts(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


@webhooks_app.command("dispatch")
def dispatch(
    once: Annotated[bool, typer.Option("--once", help="Deliver one batch of due webhooks, print what happened and "
                                       "exit (for cron or tests); default: run until interrupted.")] = False,
    url: Annotated[str | None, typer.Option("--url", help="Receiver URL. Default: env WARDEN_WEBHOOK_URL.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, max=10_000,
                                                   help="Rows leased per pass (default 50).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Deliver pending enforcement webhooks: signed POSTs with retries, backoff and dead letters.

    The secret comes only from env WARDEN_WEBHOOK_SECRET_FILE or WARDEN_WEBHOOK_SECRET (never a
    command-line flag: the process list is visible to other users). Retries: 408/429/5xx,
    timeouts and connection errors, with exponential backoff and jitter, honouring Retry-After;
    other 4xx go to the dead letters at once. Exit code 0, also when some deliveries failed
    (they stay queued or dead-lettered: see `warden webhooks dead-letters`).
    """
    from warden.enforce.dispatcher import WebhookConfigError, WebhookDispatcher, WebhookSettings

    try:
        settings = WebhookSettings.from_env(url=url, batch_size=batch_size)
    except WebhookConfigError as exc:
        raise _fail(str(exc), 2) from None
    if settings is None:
        raise _fail("no webhook URL: set WARDEN_WEBHOOK_URL (or pass --url)", 2)
    store = open_store(database_url)
    dispatcher = WebhookDispatcher.from_settings(store, settings)
    try:
        if once:
            stats = dispatcher.run_once()
            typer.echo(f"claimed {stats.claimed}: delivered {stats.delivered}, retrying {stats.retried}, "
                       f"dead {stats.dead}, lost {stats.lost}")
            for o in stats.outcomes:
                status = o.http_status if o.http_status is not None else "-"
                typer.echo(f"  {o.action_id:>6}  {o.result:<9}  attempt {o.attempt}  status {status}  "
                           f"{o.error or ''}".rstrip())
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        typer.echo(f"delivering webhooks to {settings.display_url} (Ctrl-C to stop)", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            dispatcher.run_forever(stop)
    finally:
        dispatcher.close()
        store.close()


@webhooks_app.command("status")
def status(database_url: DatabaseUrl = None) -> None:
    """Count outbox rows by status (pending, delivered, dead) and unreplayed dead letters."""
    from warden.store.enforce_repo import EnforcementRepository

    store = open_store(database_url)
    try:
        repo = EnforcementRepository(store)
        counts = repo.count_by_status()
        dead_letters = len(repo.dead_letters())
    finally:
        store.close()
    typer.echo("  ".join(f"{k} {v}" for k, v in counts.items()) + f"  dead_letters {dead_letters}")


@webhooks_app.command("dead-letters")
def dead_letters(
    include_replayed: Annotated[bool, typer.Option("--include-replayed", help="Also list dead letters already "
                                                   "replayed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List webhooks that exhausted their retries or were refused (id, action, key, error).

    Replay them with `warden webhooks replay ID` or `--all` once the receiver is fixed.
    """
    from warden.store.enforce_repo import EnforcementRepository

    store = open_store(database_url)
    try:
        repo = EnforcementRepository(store)
        letters = repo.dead_letters(include_replayed=include_replayed)
        actions = {dl.action_id: repo.get_action(dl.action_id) for dl in letters}
    finally:
        store.close()
    if as_json:
        for dl in letters:
            a = actions.get(dl.action_id)
            typer.echo(json.dumps({
                "id": dl.id, "action_id": dl.action_id, "idempotency_key": dl.idempotency_key,
                "kind": a.kind if a else None, "action": a.action if a else None,
                "decision_id": a.decision_id if a else None, "error": dl.error, "attempts": dl.attempts,
                "created_at": _ts(dl.created_at), "replayed_at": dl.replayed_at and _ts(dl.replayed_at),
            }))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    typer.echo(f"{'ID':>5}  {'ACTION':>6}  {'KIND':<14} {'WHAT':<16} {'ATTEMPTS':>8}  {'CREATED':<25} ERROR")
    for dl in letters:
        a = actions.get(dl.action_id)
        replayed = f" (replayed {_ts(dl.replayed_at)})" if dl.replayed_at else ""
        typer.echo(f"{dl.id:>5}  {dl.action_id:>6}  {(a.kind if a else '?'):<14} {(a.action if a else '?'):<16} "
                   f"{dl.attempts:>8}  {_ts(dl.created_at):<25} {dl.error}{replayed}")


@webhooks_app.command("replay")
def replay(
    dead_letter_id: Annotated[int | None, typer.Argument(metavar="ID", help="Dead letter id (from "
                                                         "`warden webhooks dead-letters`).")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter not replayed yet.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Queue dead webhooks again: pending, attempts reset, due now.

    They keep their idempotency key, so a receiver that did apply an action sees a duplicate
    it can ignore. Delivery happens in the running dispatcher (`warden serve` or `warden webhooks dispatch`).
    """
    from warden.store.enforce_repo import EnforcementRepository
    from warden.store.sqltypes import utcnow

    if (dead_letter_id is None) == (not replay_all):
        raise _fail("give a dead letter ID or --all (not both)", 2)
    store = open_store(database_url)
    try:
        replayed = EnforcementRepository(store).replay(dead_letter_id, at=utcnow())
        if replayed:
            store.append_audit(cli_actor(), "webhook.replay", "all" if replay_all else f"dead_letter:{dead_letter_id}",
                               {"dead_letters": [d.id for d in replayed], "actions": [d.action_id for d in replayed]})
    finally:
        store.close()
    if not replayed:
        if replay_all:
            typer.echo("no dead letters to replay")
            return
        raise _fail(f"no unreplayed dead letter with id {dead_letter_id}")
    typer.echo(f"replayed {len(replayed)} dead letter(s): " + ", ".join(str(d.id) for d in replayed))


@strikes_app.command("show")
def strikes_show(
    actor: Annotated[str, typer.Argument(help="The actor id (Content.actor_id / the item's 'actor_id').")],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML whose half-life and ladder apply.")
                      ] = Path(DEFAULT_POLICY_PATH),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """An actor's strikes, their decayed total now and the ladder step it reaches.

    Each strike's weight halves every half_life_days of the policy's enforcement.strikes;
    reversed strikes (overturned appeals) count for nothing.
    """
    from warden.enforce.strikes import StrikeEntry, decayed_weight, standing
    from warden.policy import PolicyError, load_policy
    from warden.store.enforce_repo import EnforcementRepository
    from warden.store.sqltypes import utcnow

    try:
        cfg = load_policy(policy, check_detectors=False).enforcement.strikes
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    store = open_store(database_url)
    try:
        records = EnforcementRepository(store).strikes(actor_id=actor)
    finally:
        store.close()
    now = utcnow()
    st = standing(cfg, [StrikeEntry(weight=r.weight, created_at=r.created_at, reversed_at=r.reversed_at)
                        for r in records], at=now)

    def current(r: Any) -> float:
        if r.reversed_at is not None:
            return 0.0
        return decayed_weight(r.weight, age_seconds=(now - r.created_at).total_seconds(),
                              half_life_days=cfg.half_life_days)

    if as_json:
        typer.echo(json.dumps({
            "actor_id": actor, "total": round(st.total, 6),
            "account_action": st.account_action.value if st.account_action else None,
            "step_at": st.step.at if st.step else None,
            "next_step": {"at": st.next_step.at, "action": st.next_step.action.value} if st.next_step else None,
            "half_life_days": cfg.half_life_days,
            "strikes": [{"decision_id": r.decision_id, "category": r.category, "weight": r.weight,
                         "current": round(current(r), 6), "created_at": _ts(r.created_at),
                         "reversed_at": r.reversed_at and _ts(r.reversed_at)} for r in records],
        }, indent=2))
        return
    step = f"{st.account_action.value} (at {st.step.at:g})" if st.step else "none"
    nxt = f"; next: {st.next_step.action.value} at {st.next_step.at:g}" if st.next_step else ""
    typer.echo(f"actor {actor}: decayed total {st.total:.3f}, step {step}{nxt} "
               f"(half-life {cfg.half_life_days:g} days, {st.active_strikes} active strike(s))")
    for r in records:
        state = f"reversed {_ts(r.reversed_at)}" if r.reversed_at else f"now {current(r):.3f}"
        typer.echo(f"  {_ts(r.created_at)}  {r.category:<24} weight {r.weight:g}  {state}  decision {r.decision_id}")


def register(app: typer.Typer) -> None:
    """Add `webhooks` and `strikes` to the `warden` command."""
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(strikes_app, name="strikes")
