"""Differences between two policy versions, as a list of typed changes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from warden.core.policy import Policy


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None

    @property
    def affects_decisions(self) -> bool:
        """True for changes that can change a decision (not definitions, examples or descriptions)."""
        return not any(part in ("definition", "description", "examples", "dsa_category")
                       for part in self.path.split("."))

    def format(self) -> str:
        if self.kind is ChangeKind.ADDED:
            return f"+ {self.path}: {_short(self.new)}"
        if self.kind is ChangeKind.REMOVED:
            return f"- {self.path}: {_short(self.old)}"
        return f"~ {self.path}: {_short(self.old)} -> {_short(self.new)}"


def diff_policies(old: Policy, new: Policy) -> list[PolicyChange]:
    changes: list[PolicyChange] = []
    _diff(old.model_dump(mode="json"), new.model_dump(mode="json"), "", changes)
    return changes


def _diff(a: Any, b: Any, path: str, out: list[PolicyChange]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(PolicyChange(sub, ChangeKind.REMOVED, old=a[key]))
            elif key not in a:
                out.append(PolicyChange(sub, ChangeKind.ADDED, new=b[key]))
            else:
                _diff(a[key], b[key], sub, out)
    elif a != b:
        out.append(PolicyChange(path, ChangeKind.CHANGED, old=a, new=b))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"
