"""Helpers for the service tests (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

from warden.core import Action, CategoryVerdict, Content, Decision, Evidence, Reason, Span, Verdict


class FakeModerator:
    """Flags 'spam' when the text contains 'buy now'; evidence quotes the matched text."""

    def __init__(self) -> None:
        self.policy = SimpleNamespace(name="test", version="2024.1", surfaces=("comment", "chat"))
        self.calls = 0

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]:
        self.calls += 1
        return [self._one(c) for c in items]

    def _one(self, c: Content) -> Decision:
        text = c.text or ""
        at = text.lower().find("buy now")
        hit = at >= 0
        score = 0.99 if hit else 0.01
        evidence = (Evidence("spam", "bank:spam", spans=(Span(at, at + 7, text[at : at + 7]),)),) if hit else ()
        reasons = (Reason("spam", Verdict.VIOLATING, "bank", score, 0.9, c.surface, "flag", evidence),) if hit else ()
        return Decision(
            content_id=c.id,
            policy_name=self.policy.name,
            policy_version=self.policy.version,
            surface=c.surface,
            action=Action.REMOVE if hit else Action.ALLOW,
            automated=True,
            verdicts=(CategoryVerdict("spam", Verdict.VIOLATING if hit else Verdict.CLEAR, score, 0.9, 0.5, "bank"),),
            reasons=reasons,
            scores={"spam": score},
        )


@dataclass
class Keys:
    client: str
    reviewer: str
    admin: str
    revoked: str


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
