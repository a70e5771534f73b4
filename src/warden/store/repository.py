"""The `Store` repository: the only way Warden code reads or writes the database."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from warden.core.content import Content
from warden.core.decision import Decision
from warden.store import keys as keymod
from warden.store.bulk import insert_do_nothing
from warden.store.models import ApiKeyRow, AuditLogRow, ContentRow, DecisionRow, ReviewOutcomeRow, ShadowDecisionRow
from warden.store.sqltypes import utcnow

DEFAULT_DATABASE_URL = "sqlite:///warden.db"
ROLES: tuple[str, ...] = ("client", "reviewer", "admin")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Don't write last_used_at on every request: once a minute per key is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)
#: How long the HTTP service reuses a successful key lookup in-process (`Store(auth_cache_seconds=)`;
#: off by default). Revocation through the same Store takes effect at once; a revocation made
#: by another process (`warden keys revoke`) within this time.
SERVICE_AUTH_CACHE_SECONDS = 5.0
_MIGRATION_LOCK_ID = 0x5741_5244_454E  # "WARDEN": pg advisory lock so concurrent upgrades serialize
REVIEW_VERDICTS: tuple[str, ...] = ("upheld", "overturned")
REVIEW_SOURCES: tuple[str, ...] = ("qa_sample", "appeal", "report")
_IN_CHUNK = 500  # ids per `IN (...)` query


def database_url_from_env() -> str:
    return os.environ.get("WARDEN_DATABASE_URL") or DEFAULT_DATABASE_URL


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision_id: str
    content_id: str
    policy_name: str
    policy_version: str
    surface: str
    action: str
    automated: bool
    flagged: list[str]
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ArchivedContent:
    """One item of the opt-in content archive."""

    content_id: str
    text: str
    surface: str
    actor_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShadowDecisionRecord:
    """A candidate policy's decision for an item, stored beside the live one."""

    id: int
    decision_id: str
    live_decision_id: str
    live_policy_version: str
    content_id: str
    policy_name: str
    policy_version: str
    surface: str
    action: str
    automated: bool
    flagged: list[str]
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """A human verdict on an automated decision (a QA sample, an appeal or a user report).

    `verdict` is `upheld` (the automated action was right) or `overturned`. `sample_rate` is
    the probability with which the decision entered the QA sample (the policy's
    `review.qa_sample_rate` when it was decided); online precision weights by its inverse.
    """

    decision_id: str
    content_id: str
    category: str
    surface: str
    policy_version: str
    action: str
    verdict: str
    source: str
    reviewer: str
    sample_rate: float | None = None
    created_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    ts: datetime
    actor: str
    event: str
    subject: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key without its secret or hash (safe to print and log)."""

    id: int
    name: str
    prefix: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def decision_payload(decision: Decision) -> dict[str, Any]:
    """`Decision.to_dict()` without any content text (evidence spans keep offsets only)."""
    payload = decision.to_dict()
    payload.pop("text", None)
    for reason in payload.get("reasons", ()):
        for ev in reason.get("evidence", ()):
            for span in ev.get("spans", ()):
                span.pop("text", None)
    return payload


def _decision_record(row: DecisionRow) -> DecisionRecord:
    return DecisionRecord(
        decision_id=row.decision_id,
        content_id=row.content_id,
        policy_name=row.policy_name,
        policy_version=row.policy_version,
        surface=row.surface,
        action=row.action,
        automated=row.automated,
        flagged=list(row.flagged),
        payload=dict(row.payload),
        created_at=row.created_at,
    )


def _shadow_record(row: ShadowDecisionRow) -> ShadowDecisionRecord:
    return ShadowDecisionRecord(
        id=row.id,
        decision_id=row.decision_id,
        live_decision_id=row.live_decision_id,
        live_policy_version=row.live_policy_version,
        content_id=row.content_id,
        policy_name=row.policy_name,
        policy_version=row.policy_version,
        surface=row.surface,
        action=row.action,
        automated=row.automated,
        flagged=list(row.flagged),
        payload=dict(row.payload),
        created_at=row.created_at,
    )


def _outcome_record(row: ReviewOutcomeRow) -> ReviewOutcome:
    return ReviewOutcome(
        id=row.id,
        decision_id=row.decision_id,
        content_id=row.content_id,
        category=row.category,
        surface=row.surface,
        policy_version=row.policy_version,
        action=row.action,
        verdict=row.verdict,
        source=row.source,
        reviewer=row.reviewer,
        sample_rate=row.sample_rate,
        created_at=row.created_at,
    )


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]


def _key_record(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def make_engine(
    url: str, *, pool_size: int | None = None, max_overflow: int | None = None, echo: bool = False
) -> Engine:
    """An engine tuned per dialect.

    PostgreSQL: a QueuePool with pre-ping (survives server restarts and idle-connection
    reapers), recycled every 30 min; sizes from `WARDEN_DB_POOL_SIZE` /
    `WARDEN_DB_MAX_OVERFLOW` (default 5 + 10 per process). SQLite: WAL journal (readers
    don't block the writer), `synchronous=NORMAL`, a 5 s busy timeout; in-memory databases
    share one connection.
    """
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        database = u.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 5}}
        if in_memory:
            kwargs["poolclass"] = StaticPool
        else:
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, echo=echo, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not in_memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
        return create_engine(
            u,
            echo=echo,
            pool_pre_ping=True,
            pool_size=pool_size if pool_size is not None else int(os.environ.get("WARDEN_DB_POOL_SIZE", "5")),
            max_overflow=(
                max_overflow if max_overflow is not None else int(os.environ.get("WARDEN_DB_MAX_OVERFLOW", "10"))
            ),
            pool_timeout=30,
            pool_recycle=1800,
            connect_args={"application_name": "warden", "connect_timeout": 10},
        )
    raise ValueError(f"unsupported database URL {u.render_as_string(hide_password=True)!r}: use sqlite or postgresql")


class Store:
    """Decisions, the append-only audit log, API keys, the opt-in content archive, shadow
    decisions and review outcomes.

    Thread-safe: every method opens its own short session from the engine's pool.
    """

    def __init__(self, engine: Engine, *, auth_cache_seconds: float = 0.0) -> None:
        self.engine = engine
        self.auth_cache_seconds = auth_cache_seconds
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler *sleeps* between retries (up to
        # 100 ms each), which turns concurrent request threads into seconds of queueing.
        # Serializing write transactions in-process makes waiters wake as soon as the lock frees.
        self._write_lock: threading.Lock | None = threading.Lock() if engine.dialect.name == "sqlite" else None
        # sha256(presented key) -> (record, monotonic expiry): a DB round trip per request is
        # the largest fixed cost of the API after moderation itself.
        self._auth_cache: dict[str, tuple[ApiKeyRecord, float]] = {}

    @classmethod
    def from_url(cls, url: str | None = None, *, auth_cache_seconds: float = 0.0, **engine_kwargs: Any) -> Store:
        """`url` defaults to env `WARDEN_DATABASE_URL`, then `sqlite:///warden.db`."""
        return cls(make_engine(url or database_url_from_env(), **engine_kwargs), auth_cache_seconds=auth_cache_seconds)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    def session(self) -> Session:
        """A plain session for reads (use `transaction()` for writes: it serializes SQLite
        writers). Close it: `with store.session() as s: ...`."""
        return self._sessions()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A session inside one transaction (committed on success), serialized on SQLite."""
        lock = self._write_lock if self._write_lock is not None else nullcontext()
        with lock, self._session() as s, s.begin():
            yield s

    def transaction(self) -> AbstractContextManager[Session]:
        """One transaction for several writes (`tx=` of save_decisions, archive_content,
        append_audit): a moderation request stores its decisions and audit event atomically,
        with one commit."""
        return self._transaction()

    def _using(self, tx: Session | None) -> AbstractContextManager[Session]:
        return nullcontext(tx) if tx is not None else self._transaction()

    # -- schema ----------------------------------------------------------------------
    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.engine.url.render_as_string(hide_password=False).replace("%", "%%"))
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision` (idempotent)."""
        from alembic import command

        cfg = self._alembic_config()
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def ping(self) -> bool:
        """True when the database answers `SELECT 1`."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    # -- decisions -------------------------------------------------------------------
    def save_decisions(self, decisions: Iterable[Decision], *, tx: Session | None = None) -> int:
        return len(self.save_new_decisions(decisions, tx=tx))

    def save_new_decisions(self, decisions: Iterable[Decision], *, tx: Session | None = None) -> set[str]:
        """Store decisions; returns the decision ids that were new.

        Idempotent: a decision whose (content_id, policy_version) is already stored is skipped
        (`INSERT ... ON CONFLICT DO NOTHING`), so retries and resubmissions are safe and the
        first stored decision wins.
        """
        now = utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for d in decisions:
            if d.decision_id in rows:
                continue
            rows[d.decision_id] = {
                "decision_id": d.decision_id,
                "content_id": d.content_id,
                "policy_name": d.policy_name,
                "policy_version": d.policy_version,
                "surface": d.surface,
                "action": d.action.value,
                "automated": d.automated,
                "flagged": list(d.flagged),
                "payload": decision_payload(d),
                "created_at": now,
            }
        if not rows:
            return set()
        with self._using(tx) as s:
            return set(insert_do_nothing(s, DecisionRow.__table__, list(rows.values()), returning="decision_id"))

    def get_decision(self, id_: str) -> DecisionRecord | None:
        """By decision_id; else by content_id (the most recently stored policy version)."""
        with self._session() as s:
            row = s.get(DecisionRow, id_)
            if row is None:
                row = s.scalars(
                    select(DecisionRow)
                    .where(DecisionRow.content_id == id_)
                    .order_by(DecisionRow.created_at.desc(), DecisionRow.decision_id.desc())
                    .limit(1)
                ).first()
            return _decision_record(row) if row is not None else None

    def count_decisions(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(DecisionRow)) or 0)

    def list_decisions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        policy_version: str | None = None,
        content_ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[DecisionRecord]:
        """Stored decisions, oldest first, filtered by time (`since` <= created_at < `until`),
        policy version and content ids."""
        base = select(DecisionRow).order_by(DecisionRow.created_at, DecisionRow.decision_id)
        if since is not None:
            base = base.where(DecisionRow.created_at >= since)
        if until is not None:
            base = base.where(DecisionRow.created_at < until)
        if policy_version is not None:
            base = base.where(DecisionRow.policy_version == policy_version)
        with self._session() as s:
            if content_ids is None:
                q = base.limit(limit) if limit is not None else base
                return [_decision_record(r) for r in s.scalars(q)]
            out: list[DecisionRecord] = []
            for chunk in _chunks(list(dict.fromkeys(content_ids))):
                out.extend(_decision_record(r) for r in s.scalars(base.where(DecisionRow.content_id.in_(chunk))))
            out.sort(key=lambda r: (r.created_at, r.decision_id))
            return out[:limit] if limit is not None else out

    # -- opt-in content archive --------------------------------------------------------
    def archive_content(self, contents: Iterable[Content], *, tx: Session | None = None) -> int:
        """Keep the text of moderated items for backtests; returns how many were new.

        Only call this when the operator opted in (`ServiceSettings.archive_content`): it
        stores user content. Idempotent per content id (the first stored text wins, like
        decisions). Items without text are skipped. Purge with `purge_content`.
        """
        now = utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for c in contents:
            if c.text is None or c.id in rows:
                continue
            rows[c.id] = {"content_id": c.id, "text": c.text, "surface": c.surface, "actor_id": c.actor_id,
                          "created_at": now}
        if not rows:
            return 0
        with self._using(tx) as s:
            return len(insert_do_nothing(s, ContentRow.__table__, list(rows.values()), returning="content_id"))

    def archived_content(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        content_ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[ArchivedContent]:
        """Archived items, oldest first."""
        base = select(ContentRow).order_by(ContentRow.created_at, ContentRow.content_id)
        if since is not None:
            base = base.where(ContentRow.created_at >= since)
        if until is not None:
            base = base.where(ContentRow.created_at < until)

        def rec(r: ContentRow) -> ArchivedContent:
            return ArchivedContent(r.content_id, r.text, r.surface, r.actor_id, r.created_at)

        with self._session() as s:
            if content_ids is None:
                return [rec(r) for r in s.scalars(base.limit(limit) if limit is not None else base)]
            out: list[ArchivedContent] = []
            for chunk in _chunks(list(dict.fromkeys(content_ids))):
                out.extend(rec(r) for r in s.scalars(base.where(ContentRow.content_id.in_(chunk))))
            out.sort(key=lambda r: (r.created_at, r.content_id))
            return out[:limit] if limit is not None else out

    def purge_content(self, *, before: datetime) -> int:
        """Delete archived content stored before `before` (retention); returns how many rows."""
        with self._transaction() as s:
            result = s.execute(delete(ContentRow).where(ContentRow.created_at < before))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- shadow mode -------------------------------------------------------------------
    def save_shadow_decisions(self, pairs: Iterable[tuple[Decision, Decision]]) -> int:
        """Store (live, shadow) decision pairs; returns how many were new. Idempotent per
        (shadow decision_id, live decision_id)."""
        now = utcnow()
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for live, shadow in pairs:
            if live.content_id != shadow.content_id:
                raise ValueError(f"shadow decision for {shadow.content_id!r} paired with live {live.content_id!r}")
            key = (shadow.decision_id, live.decision_id)
            if key in rows:
                continue
            rows[key] = {
                "decision_id": shadow.decision_id,
                "live_decision_id": live.decision_id,
                "live_policy_version": live.policy_version,
                "content_id": shadow.content_id,
                "policy_name": shadow.policy_name,
                "policy_version": shadow.policy_version,
                "surface": shadow.surface,
                "action": shadow.action.value,
                "automated": shadow.automated,
                "flagged": list(shadow.flagged),
                "payload": decision_payload(shadow),
                "created_at": now,
            }
        if not rows:
            return set()
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(ShadowDecisionRow).on_conflict_do_nothing().returning(ShadowDecisionRow.id)
        with self._transaction() as s:
            return len(s.execute(stmt, list(rows.values())).scalars().all())

    def shadow_comparisons(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        policy_version: str | None = None,
    ) -> list[tuple[DecisionRecord, ShadowDecisionRecord]]:
        """(live decision, shadow decision) pairs, oldest shadow first; `policy_version`
        selects one candidate version. Shadow rows whose live decision is gone are left out."""
        q = (
            select(DecisionRow, ShadowDecisionRow)
            .join(DecisionRow, DecisionRow.decision_id == ShadowDecisionRow.live_decision_id)
            .order_by(ShadowDecisionRow.created_at, ShadowDecisionRow.id)
        )
        if since is not None:
            q = q.where(ShadowDecisionRow.created_at >= since)
        if until is not None:
            q = q.where(ShadowDecisionRow.created_at < until)
        if policy_version is not None:
            q = q.where(ShadowDecisionRow.policy_version == policy_version)
        with self._session() as s:
            return [(_decision_record(live), _shadow_record(sh)) for live, sh in s.execute(q).all()]

    def count_shadow_decisions(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(ShadowDecisionRow)) or 0)

    # -- review outcomes (online metrics) ----------------------------------------------
    def record_review_outcome(self, outcome: ReviewOutcome) -> ReviewOutcome:
        """Append one human verdict on an automated decision; returns it with id and time."""
        if outcome.verdict not in REVIEW_VERDICTS:
            raise ValueError(f"unknown verdict {outcome.verdict!r}; allowed: {', '.join(REVIEW_VERDICTS)}")
        if outcome.source not in REVIEW_SOURCES:
            raise ValueError(f"unknown source {outcome.source!r}; allowed: {', '.join(REVIEW_SOURCES)}")
        if outcome.sample_rate is not None and not 0.0 < outcome.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {outcome.sample_rate}")
        row = ReviewOutcomeRow(
            decision_id=outcome.decision_id,
            content_id=outcome.content_id,
            category=outcome.category,
            surface=outcome.surface,
            policy_version=outcome.policy_version,
            action=outcome.action,
            verdict=outcome.verdict,
            source=outcome.source,
            reviewer=outcome.reviewer,
            sample_rate=outcome.sample_rate,
            created_at=outcome.created_at or utcnow(),
        )
        with self._transaction() as s:
            s.add(row)
            s.flush()
            return _outcome_record(row)

    def review_outcomes(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        policy_version: str | None = None,
    ) -> list[ReviewOutcome]:
        """Recorded outcomes in insertion order, filtered."""
        q = select(ReviewOutcomeRow).order_by(ReviewOutcomeRow.id)
        if since is not None:
            q = q.where(ReviewOutcomeRow.created_at >= since)
        if until is not None:
            q = q.where(ReviewOutcomeRow.created_at < until)
        if source is not None:
            q = q.where(ReviewOutcomeRow.source == source)
        if policy_version is not None:
            q = q.where(ReviewOutcomeRow.policy_version == policy_version)
        with self._session() as s:
            return [_outcome_record(r) for r in s.scalars(q)]

    # -- audit log -------------------------------------------------------------------
    def append_audit(
        self, actor: str, event: str, subject: str | None = None, details: Mapping[str, Any] | None = None,
        *, tx: Session | None = None,
    ) -> AuditEvent:
        """Append one event. The table is append-only (database triggers reject UPDATE/DELETE)."""
        row = AuditLogRow(ts=utcnow(), actor=actor, event=event, subject=subject, details=dict(details or {}))
        with self._using(tx) as s:
            s.add(row)
            s.flush()
            return AuditEvent(row.id, row.ts, row.actor, row.event, row.subject, dict(row.details))

    def audit_events(
        self,
        *,
        event: str | None = None,
        subject: str | None = None,
        actor: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Events in insertion order, filtered; page with `after_id`."""
        q = select(AuditLogRow).order_by(AuditLogRow.id).limit(max(1, min(limit, 10_000)))
        if event is not None:
            q = q.where(AuditLogRow.event == event)
        if subject is not None:
            q = q.where(AuditLogRow.subject == subject)
        if actor is not None:
            q = q.where(AuditLogRow.actor == actor)
        if after_id is not None:
            q = q.where(AuditLogRow.id > after_id)
        with self._session() as s:
            return [AuditEvent(r.id, r.ts, r.actor, r.event, r.subject, dict(r.details)) for r in s.scalars(q)]

    # -- API keys --------------------------------------------------------------------
    def create_api_key(self, name: str, role: str) -> tuple[ApiKeyRecord, str]:
        """Create a key; returns (record, plaintext). The plaintext is never stored or shown again."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
        name = (name or "").strip()
        if not name or len(name) > 128:
            raise ValueError("key name must be 1-128 characters")
        prefix, plaintext = keymod.generate_key()
        row = ApiKeyRow(name=name, prefix=prefix, key_hash=keymod.hash_key(plaintext), role=role, created_at=utcnow())
        with self._transaction() as s:
            s.add(row)
            s.flush()
            return _key_record(row), plaintext

    def authenticate(self, plaintext: str | None) -> ApiKeyRecord | None:
        """The active key matching `plaintext`, or None (unknown, malformed or revoked)."""
        parsed = keymod.parse_key(plaintext) if plaintext else None
        if parsed is None:
            return None
        if self.auth_cache_seconds <= 0:
            return self._authenticate_uncached(parsed, plaintext or "")
        cache_key = hashlib.sha256((plaintext or "").encode()).hexdigest()
        cached = self._auth_cache.get(cache_key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        record = self._authenticate_uncached(parsed, plaintext or "")
        if record is not None:
            if len(self._auth_cache) > 10_000:
                self._auth_cache.clear()
            self._auth_cache[cache_key] = (record, time.monotonic() + self.auth_cache_seconds)
        return record

    def _authenticate_uncached(self, parsed: Any, plaintext: str) -> ApiKeyRecord | None:
        with self._transaction() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == parsed.prefix)).first()
            if row is None:
                keymod.hash_key(plaintext or "")  # same work as a hit: no timing oracle on prefixes
                return None
            if not keymod.verify_key(plaintext or "", row.key_hash) or row.revoked_at is not None:
                return None
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
                s.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now))
                row.last_used_at = now
            return _key_record(row)

    def list_api_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        q = select(ApiKeyRow).order_by(ApiKeyRow.id)
        if not include_revoked:
            q = q.where(ApiKeyRow.revoked_at.is_(None))
        with self._session() as s:
            return [_key_record(r) for r in s.scalars(q)]

    def count_api_keys(self) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(ApiKeyRow)) or 0)

    def revoke_api_key(self, key_id: int) -> ApiKeyRecord | None:
        """Revoke (idempotent: the first revocation time is kept). None when no such key."""
        self._auth_cache.clear()
        with self._transaction() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            s.flush()
            return _key_record(row)
