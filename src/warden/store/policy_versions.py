"""Which policy versions decided the stored decisions (for the admin policy page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from warden.store.models import DecisionRow
from warden.store.repository import Store


@dataclass(frozen=True, slots=True)
class PolicyVersionSeen:
    policy_name: str
    policy_version: str
    decisions: int
    first_seen: datetime
    last_seen: datetime


def policy_versions_seen(store: Store, *, limit: int = 100) -> list[PolicyVersionSeen]:
    """Versions in stored decisions, most recently used first."""
    last = func.max(DecisionRow.created_at)
    q = (select(DecisionRow.policy_name, DecisionRow.policy_version, func.count(), func.min(DecisionRow.created_at),
                last)
         .group_by(DecisionRow.policy_name, DecisionRow.policy_version)
         .order_by(last.desc()).limit(limit))
    with store.session() as s:
        return [PolicyVersionSeen(name, version, int(n), first, lastseen) for name, version, n, first, lastseen
                in s.execute(q)]


__all__ = ["PolicyVersionSeen", "policy_versions_seen"]
