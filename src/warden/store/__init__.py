"""Storage: SQLAlchemy 2 models, Alembic migrations (shipped in the package) and the `Store`
repository. SQLite by default; PostgreSQL when `WARDEN_DATABASE_URL` says so.
"""

from warden.store.repository import (
    DEFAULT_DATABASE_URL,
    REVIEW_SOURCES,
    REVIEW_VERDICTS,
    ROLES,
    ApiKeyRecord,
    ArchivedContent,
    AuditEvent,
    DecisionRecord,
    ReviewOutcome,
    ShadowDecisionRecord,
    Store,
    database_url_from_env,
    decision_payload,
    make_engine,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "REVIEW_SOURCES",
    "REVIEW_VERDICTS",
    "ROLES",
    "ApiKeyRecord",
    "ArchivedContent",
    "AuditEvent",
    "DecisionRecord",
    "ReviewOutcome",
    "ShadowDecisionRecord",
    "Store",
    "database_url_from_env",
    "decision_payload",
    "make_engine",
]
