"""Helpers for the UI tests (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from warden.core import Action, CategoryVerdict, Content, Decision, Evidence, Reason, Span, Verdict
from warden.policy import load_policy
from warden.review import TaskSpec
from warden.service import ServiceSettings, create_app
from warden.service.web_auth import WebAuth, WebAuthSettings
from warden.store import Store
from warden.store.review_repo import ReviewRepository
from warden.store.users_repo import UserRepository

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
PASSWORDS = {
    "reviewer": "reviewer-password-1234",
    "senior-reviewer": "senior_reviewer-password-1234",
    "admin": "admin-password-1234",
}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LOGIN_CSRF_RE = re.compile(r'name="login_csrf" value="([^"]+)"')


def fast_hasher() -> PasswordHasher:
    """argon2id with tiny costs: tests check behaviour, not the work factor."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class PolicyModerator:
    """The real default policy (for definitions, fingerprints and diffs) with a trivial scorer:
    'buy now' is spam, with an evidence span."""

    def __init__(self) -> None:
        policy = load_policy(DEFAULT_POLICY, check_detectors=False)
        # No double reviews and no QA samples: a decided item must simply leave its queue in these tests.
        review = policy.review.model_copy(update={"double_review_rate": 0.0, "qa_sample_rate": 0.0})
        self.policy = policy.model_copy(update={"review": review})

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]:
        return [self._one(c) for c in items]

    def _one(self, c: Content) -> Decision:
        text = c.text or ""
        at = text.lower().find("buy now")
        hit = at >= 0
        score = 0.7 if hit else 0.01
        ev = (Evidence("spam", "bank:spam", spans=(Span(at, at + 7, text[at : at + 7]),)),) if hit else ()
        reasons = (Reason("spam", Verdict.UNCERTAIN, "bank", score, 0.5, c.surface, "review", ev),) if hit else ()
        return Decision(content_id=c.id, policy_name=self.policy.name, policy_version=self.policy.version,
                        surface=c.surface, action=Action.HOLD_FOR_REVIEW if hit else Action.ALLOW, automated=not hit,
                        verdicts=(CategoryVerdict("spam", Verdict.UNCERTAIN if hit else Verdict.CLEAR, score, 0.9,
                                                  0.5, "bank"),),
                        reasons=reasons, scores={"spam": score}, review_queue="default" if hit else None)


@dataclass
class UIEnv:
    app: FastAPI
    store: Store
    auth: WebAuth
    moderator: Any


def make_ui_env(store: Store) -> UIEnv:
    """The real app (create_app) with the UI, on `store`, with cheap argon2 and plain-http cookies."""
    moderator = PolicyModerator()
    app = create_app(moderator=moderator, store=store, settings=ServiceSettings(docs=False))
    auth = WebAuth(users=UserRepository(store, hasher=fast_hasher()), settings=WebAuthSettings(cookie_secure=False))
    app.state.web_auth = auth
    return UIEnv(app=app, store=store, auth=auth, moderator=moderator)


def login(client: TestClient, username: str, password: str | None = None, *, next_url: str = "/ui/") -> Any:
    """Log in through the real form (login CSRF cookie + field); returns the POST response."""
    page = client.get("/ui/login")
    token = LOGIN_CSRF_RE.search(page.text)
    assert token, page.text
    return client.post("/ui/login", data={"username": username, "password": password or PASSWORDS[username],
                                          "login_csrf": token.group(1), "next": next_url})


def csrf_of(client: TestClient, path: str = "/ui/queues") -> str:
    page = client.get(path)
    m = CSRF_RE.search(page.text)
    assert m, (page.status_code, page.text[:500])
    return m.group(1)


def seed(env: UIEnv, items: Sequence[tuple[str, str, str | None]]) -> list[int]:
    """Moderate (id, text, actor) items, store the decisions and enqueue the held ones, the way
    the service does; returns the new task ids."""
    contents = [Content(id=i, text=t, actor_id=a) for i, t, a in items]
    decisions = env.moderator.moderate_batch(contents)
    env.store.save_decisions(decisions)
    return ReviewRepository(env.store, policy=env.moderator.policy).enqueue_decisions(contents, decisions)


def seed_spec(env: UIEnv, *, content_id: str, text: str, queue: str = "default", source: str = "routing",
              details: dict[str, Any] | None = None, categories: tuple[str, ...] = ("spam",)) -> int:
    """One task from a hand-made spec (e.g. with image URLs in its details)."""
    env.store.archive_content([Content(id=content_id, text=text, actor_id="actor-img")])
    spec = TaskSpec(dedupe_key=f"{source}:{content_id}", queue=queue, source=source, content_id=content_id,
                    surface="comment", sla_hours=24, categories=categories, actor_id="actor-img",
                    details=details or {})
    return ReviewRepository(env.store, policy=env.moderator.policy).enqueue([spec])[0]
