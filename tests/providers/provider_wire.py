"""A real HTTP server on 127.0.0.1 (a thread) for wire-format tests of the provider adapters.

Each provider module in this folder subclasses `WireServer` with a handler that validates
the request the way the provider documents it (auth header, body shape) and answers with
the documented response or error bodies. Tests inject faults for the next requests:
`server.fail_next(Fault(...))`: an HTTP status with the provider's error body and headers
(429 + Retry-After, 5xx), a slow answer, or malformed JSON. Every request is recorded.

Scores come from a small keyword table, so the servers are deterministic (the conformance
kit checks determinism and batch/single equivalence through them).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# word -> (taxonomy category, probability); each server maps these to its own labels.
KEYWORDS: dict[str, tuple[str, float]] = {
    "kill": ("violence", 0.97),
    "vermin": ("hate", 0.95),
    "idiot": ("harassment", 0.91),
    "loser": ("harassment", 0.72),
    "nudes": ("sexual", 0.93),
    "bit.ly": ("spam", 0.88),
    "bitcoin": ("scam", 0.81),
    "cocaine": ("illicit", 0.9),
    "suicide": ("self-harm", 0.94),
}


def keyword_hits(text: str) -> list[tuple[str, str, int, float]]:
    """(category, word, position, score) for each keyword in `text` (first occurrence, case-insensitive)."""
    lowered = text.lower()
    out = []
    for word, (cat, score) in KEYWORDS.items():
        pos = lowered.find(word)
        if pos >= 0:
            out.append((cat, word, pos, score))
    return out


def category_scores(text: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for cat, _word, _pos, score in keyword_hits(text):
        scores[cat] = max(scores.get(cat, 0.0), score)
    return scores


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), {"content-type": "application/json", **(headers or {})})


@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of (or before) the normal answer."""

    status: int | None = None  # an error status with the provider's error body
    retry_after: str | None = None
    delay_s: float = 0.0  # sleep before answering (then answer normally unless status is set)
    malformed: bool = False  # 200 with a body that is not JSON

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay_s=seconds)


class WireServer:
    """Subclasses implement `handle(request) -> Reply` and `error_body(status, message) -> Any`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Request("POST", parts.path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                reply = server._dispatch(req)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> WireServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- behaviour -----------------------------------------------------------------------------
    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _dispatch(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            if fault.delay_s:
                time.sleep(fault.delay_s)
            if fault.malformed:
                return Reply(200, b'{"results": [{"flagged": tru', {"content-type": "application/json"})
            if fault.status is not None:
                headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
                return Reply.json(fault.status, self.error_body(fault.status, f"injected HTTP {fault.status}"),
                                  headers)
        try:
            return self.handle(req)
        except Exception as exc:  # a bug in the test server must show, not hang the client
            return Reply.json(500, self.error_body(500, f"test server bug: {type(exc).__name__}: {exc}"))

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
        return Reply.json(status, self.error_body(status, message), headers)
