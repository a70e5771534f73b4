"""Helpers for the enforcement tests (a unique module name: `conftest` names collide).

`Receiver` is a real HTTP server on 127.0.0.1 (a thread running `http.server`) playing the
platform: it verifies every signature and answers from a script (`ok`, `500`, `429` with a
Retry-After, `hang`, `400`, ...), recording what it saw.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from warden.core import Action, CategoryVerdict, Decision, Evidence, Reason, Span, Verdict
from warden.enforce.signing import SIGNATURE_HEADER, SignatureError, verify_signature

SECRET = "whsec_test_0123456789abcdef"


class FakeClock:
    """A settable UTC clock (scheduling only; signatures use the real time)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, *, days: float = 0.0) -> datetime:
        self.now += timedelta(seconds=seconds, days=days)
        return self.now


class MaxJitter(random.Random):
    """`uniform(a, b)` returns `b`: backoff delays become their deterministic ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass(frozen=True)
class Received:
    key: str | None
    event: str | None
    attempt: str | None
    content_type: str | None
    payload: dict[str, Any] | None
    body: bytes
    signature_ok: bool
    answered: str


@dataclass
class Receiver:
    """Scripted webhook receiver. `script` is consumed one entry per request; when empty,
    `default` answers. Entries: "ok", "500", "503", "400", "hang", "429:<retry-after>",
    "503:<retry-after>"."""

    secret: str = SECRET
    default: str = "ok"
    hang_seconds: float = 1.0
    script: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    delivered: Counter[str] = field(default_factory=Counter)  # key -> 2xx answers
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/warden"

    def plan(self, *entries: str) -> None:
        with self.lock:
            self.script.extend(entries)

    def _next(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    verify_signature(body, self.headers.get(SIGNATURE_HEADER, ""), secret=receiver.secret)
                    ok = True
                except SignatureError:
                    ok = False
                answer = receiver._next() if ok else "401"
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    receiver.requests.append(Received(
                        key=key, event=self.headers.get("Warden-Event"),
                        attempt=self.headers.get("Warden-Delivery-Attempt"),
                        content_type=self.headers.get("Content-Type"),
                        payload=json.loads(body) if ok else None, body=body, signature_ok=ok, answered=answer))
                if answer == "hang":
                    time.sleep(receiver.hang_seconds)
                    answer = "504"
                status, _, retry_after = answer.partition(":")
                code = 200 if status == "ok" else int(status)
                if code == 200 and key:
                    with receiver.lock:
                        receiver.delivered[key] += 1
                try:
                    self.send_response(code)
                    if retry_after:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the client gave up (timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def make_decision(
    content_id: str,
    *,
    action: Action = Action.REMOVE,
    flagged: tuple[str, ...] = ("hate",),
    policy_version: str = "test-1",
    text: str = "you people are vermin, buy now",
) -> Decision:
    """A decision whose evidence quotes `text` (payloads must never carry it)."""
    verdicts = tuple(CategoryVerdict(c, Verdict.VIOLATING, 0.97, 0.8, 0.5, "bank") for c in flagged)
    reasons = tuple(
        Reason(c, Verdict.VIOLATING, "bank", 0.97, 0.8, "comment", "flag",
               (Evidence(c, "bank:default", spans=(Span(0, len(text), text),)),))
        for c in flagged
    )
    return Decision(
        content_id=content_id, policy_name="default", policy_version=policy_version, surface="comment",
        action=action, automated=True, verdicts=verdicts, reasons=reasons, scores={c: 0.97 for c in flagged},
    )
