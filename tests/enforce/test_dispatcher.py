"""WebhookDispatcher against a real HTTP receiver on 127.0.0.1 (tests/enforce/enforce_helpers.py):
signatures, retries with backoff (fake clock, deterministic jitter), Retry-After, timeouts,
permanent failures, dead letters, replay, leases, concurrent dispatchers, the background thread."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime

import pytest
from enforce_helpers import SECRET, FakeClock, MaxJitter, Receiver, make_decision

from warden.core import Policy
from warden.enforce.dispatcher import WebhookConfigError, WebhookDispatcher, WebhookSettings
from warden.enforce.outbox import EnforcementOutbox
from warden.store import Store
from warden.store.enforce_repo import EnforcementRepository


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _dispatcher(store: Store, url: str, clock: FakeClock, **kw: object) -> WebhookDispatcher:
    kw = {"max_attempts": 4, "timeout": 0.5, "backoff_base": 1.0, "backoff_cap": 60.0, "rng": MaxJitter(), **kw}
    return WebhookDispatcher(store, url=url, secret=SECRET, clock=clock, **kw)  # type: ignore[arg-type]


def _record(store: Store, policy: Policy, clock: FakeClock, *ids: str, actor: str | None = None) -> None:
    outbox = EnforcementOutbox(store, policy, clock=clock)
    for i in ids:
        outbox.record_decision(make_decision(i), actor_id=actor)


def test_delivers_signed_payload_with_idempotency_key(store: Store, policy: Policy, clock: FakeClock,
                                                      receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    d = _dispatcher(store, receiver.url, clock)
    stats = d.run_once()
    assert (stats.claimed, stats.delivered, stats.retried, stats.dead) == (1, 1, 0, 0)
    [req] = receiver.requests
    row = EnforcementRepository(store).actions()[0]
    assert req.signature_ok and req.key == row.idempotency_key and req.event == "content_action"
    assert req.content_type == "application/json" and req.attempt == "1"
    assert req.payload == row.payload and b"vermin" not in req.body
    assert row.status == "delivered" and row.delivered_at == clock.now and row.attempts == 1
    assert d.run_once().claimed == 0  # nothing left
    d.close()


def test_5xx_retries_with_exponential_backoff_then_delivers(store: Store, policy: Policy, clock: FakeClock,
                                                            receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    receiver.plan("500", "502", "503")
    d = _dispatcher(store, receiver.url, clock)
    repo = EnforcementRepository(store)
    delays = []
    for expected in (1.0, 2.0, 4.0):  # base * 2**(attempt-1), jitter at its ceiling
        start = clock.now
        stats = d.run_once()
        assert stats.retried == 1
        row = repo.actions()[0]
        delays.append((row.next_attempt_at - start).total_seconds())
        assert d.run_once().claimed == 0  # not due yet
        clock.advance(expected)
    assert delays == [1.0, 2.0, 4.0]
    assert repo.actions()[0].last_error == "HTTP 503"
    assert d.run_once().delivered == 1
    assert [r.answered for r in receiver.requests] == ["500", "502", "503", "ok"]
    assert [r.attempt for r in receiver.requests] == ["1", "2", "3", "4"]
    assert len({r.key for r in receiver.requests}) == 1  # the same key on every attempt
    d.close()


def test_429_retry_after_is_honoured(store: Store, policy: Policy, clock: FakeClock, receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    receiver.plan("429:30")
    d = _dispatcher(store, receiver.url, clock)
    start = clock.now
    d.run_once()
    row = EnforcementRepository(store).actions()[0]
    assert (row.next_attempt_at - start).total_seconds() == 30.0  # not the 1 s backoff
    clock.advance(29)
    assert d.run_once().claimed == 0
    clock.advance(1)
    assert d.run_once().delivered == 1
    d.close()


def test_503_retry_after_http_date_and_cap(store: Store, policy: Policy, clock: FakeClock,
                                           receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    receiver.plan(f"503:{format_datetime(clock.now + timedelta(seconds=120), usegmt=True)}", "429:999999")
    d = _dispatcher(store, receiver.url, clock, retry_after_cap=600.0)
    start = clock.now
    d.run_once()
    assert (EnforcementRepository(store).actions()[0].next_attempt_at - start).total_seconds() == 120.0
    clock.advance(120)
    start = clock.now
    d.run_once()
    assert (EnforcementRepository(store).actions()[0].next_attempt_at - start).total_seconds() == 600.0
    d.close()


def test_timeout_is_retried(store: Store, policy: Policy, clock: FakeClock, receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    receiver.plan("hang")
    d = _dispatcher(store, receiver.url, clock, timeout=0.2)
    started = time.monotonic()
    stats = d.run_once()
    assert time.monotonic() - started < receiver.hang_seconds  # gave up at the timeout
    [o] = stats.outcomes
    assert o.result == "retry" and o.http_status is None and o.error is not None and o.error.startswith("timeout")
    clock.advance(1)
    assert d.run_once().delivered == 1
    d.close()


def test_connection_refused_is_retried(store: Store, policy: Policy, clock: FakeClock) -> None:
    with socket.socket() as s:  # a port with no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _record(store, policy, clock, "c1")
    d = _dispatcher(store, f"http://127.0.0.1:{port}/hook", clock)
    [o] = d.run_once().outcomes
    assert o.result == "retry" and o.error == "connection error: ConnectError"
    d.close()


def test_4xx_is_permanent_dead_letter_at_once(store: Store, policy: Policy, clock: FakeClock,
                                              receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    receiver.plan("400")
    d = _dispatcher(store, receiver.url, clock)
    stats = d.run_once()
    assert stats.dead == 1 and stats.retried == 0
    row = EnforcementRepository(store).actions()[0]
    assert row.status == "dead" and row.attempts == 1 and row.last_error == "HTTP 400"
    [dl] = d.dead_letters()
    assert (dl.action_id, dl.idempotency_key, dl.attempts, dl.error) == (row.id, row.idempotency_key, 1, "HTTP 400")
    d.close()


def test_max_attempts_then_dead_letter_and_replay_redelivers(store: Store, policy: Policy, clock: FakeClock,
                                                             receiver: Receiver) -> None:
    _record(store, policy, clock, "c1", "c2")
    receiver.default = "500"
    d = _dispatcher(store, receiver.url, clock, max_attempts=3)
    results = []
    for _ in range(3):
        results.append(d.run_once())
        clock.advance(3600)
    assert [(s.retried, s.dead) for s in results] == [(2, 0), (2, 0), (0, 2)]
    letters = d.dead_letters()
    assert len(letters) == 2 and all(dl.attempts == 3 and "gave up after 3 attempts" in dl.error for dl in letters)
    assert d.run_once().claimed == 0  # dead rows are never retried by themselves
    receiver.default = "ok"
    [one] = d.replay(letters[0].id)
    assert one.id == letters[0].id
    assert d.replay(letters[0].id) == []  # already replayed
    assert d.run_once().delivered == 1
    assert [dl.id for dl in d.replay("all")] == [letters[1].id]
    assert d.run_once().delivered == 1
    assert d.dead_letters() == [] and len(d.dead_letters(include_replayed=True)) == 2
    assert set(receiver.delivered.values()) == {1} and len(receiver.delivered) == 2
    with pytest.raises(ValueError):
        d.replay("everything")  # type: ignore[arg-type]
    d.close()


def test_expired_lease_loses_to_the_next_dispatcher(store: Store, policy: Policy, clock: FakeClock,
                                                    receiver: Receiver) -> None:
    _record(store, policy, clock, "c1")
    repo = EnforcementRepository(store)
    [stale] = repo.claim_due(now=clock.now, lease_until=clock.now + timedelta(seconds=60), limit=10)
    d = _dispatcher(store, receiver.url, clock)
    assert d.run_once().claimed == 0  # leased to someone else
    clock.advance(61)  # that someone died
    assert d.run_once().delivered == 1
    assert not repo.mark_delivered(stale.id, attempt=stale.attempts, at=clock.now)  # the stale claim cannot write
    assert not repo.mark_retry(stale.id, attempt=stale.attempts, next_attempt_at=clock.now, error="x")
    assert repo.mark_dead(stale.id, attempt=stale.attempts, error="x", at=clock.now) is None
    assert repo.actions()[0].status == "delivered"
    d.close()


def test_concurrent_dispatchers_deliver_each_key_once(db_url: str, policy: Policy, receiver: Receiver) -> None:
    clock = FakeClock()
    setup = Store.from_url(db_url)
    _record(setup, policy, clock, *(f"c{i}" for i in range(30)), actor=None)
    setup.close()
    receiver.plan(*(["500"] * 5))  # some retries in the mix
    stores = [Store.from_url(db_url) for _ in range(3)]
    # The real clock (independent fake clocks would disagree about leases) and tiny backoffs.
    dispatchers = [WebhookDispatcher(s, url=receiver.url, secret=SECRET, timeout=5.0, backoff_base=0.01,
                                     backoff_cap=0.05, batch_size=4, rng=random.Random(i))
                   for i, s in enumerate(stores)]
    barrier = threading.Barrier(len(dispatchers))
    errors: list[BaseException] = []

    def work(d: WebhookDispatcher) -> None:
        try:
            barrier.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if d.run_once().claimed == 0:
                    time.sleep(0.01)
                if EnforcementRepository(d.repo.store).count_by_status()["pending"] == 0:
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    try:
        assert not errors, errors
        assert len(receiver.delivered) == 30
        assert max(receiver.delivered.values()) == 1, "a key was delivered twice"
        assert EnforcementRepository(stores[0]).count_by_status() == {"pending": 0, "delivered": 30, "dead": 0}
    finally:
        for d in dispatchers:
            d.close()
        for s in stores:
            s.close()


def test_background_thread_delivers_and_stops(store: Store, policy: Policy, receiver: Receiver) -> None:
    d = WebhookDispatcher(store, url=receiver.url, secret=SECRET, poll_interval=0.05, timeout=2.0)
    d.start()
    d.start()  # idempotent
    try:
        assert d.running
        EnforcementOutbox(store, policy).record_decision(make_decision("bg"), actor_id=None)
        deadline = time.monotonic() + 10
        while not receiver.delivered and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.delivered) == 1
    finally:
        d.stop()
    assert not d.running


def test_backoff_full_jitter_bounds_and_cap(store: Store) -> None:
    d = WebhookDispatcher(store, url="http://127.0.0.1:9/x", secret="s", backoff_base=2.0, backoff_cap=30.0,
                          rng=random.Random(1))
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (40, 30.0)]:
        samples = [d.backoff_delay(attempt) for _ in range(200)]
        assert min(samples) >= 0.0 and max(samples) <= ceiling
        assert max(samples) > ceiling * 0.8  # spread over the whole range (full jitter)
    assert d.backoff_delay(1, retry_after=10) >= 10.0
    assert d.backoff_delay(1, retry_after=10**9) <= d.retry_after_cap
    assert "s'" not in repr(d) and "secret" not in repr(d)
    d.close()


def test_settings_from_env(tmp_path) -> None:
    assert WebhookSettings.from_env({}) is None
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    s = WebhookSettings.from_env({"WARDEN_WEBHOOK_URL": "https://platform.example/hooks",
                                  "WARDEN_WEBHOOK_SECRET": "from-env", "WARDEN_WEBHOOK_SECRET_FILE": str(secret_file),
                                  "WARDEN_WEBHOOK_MAX_ATTEMPTS": "5", "WARDEN_WEBHOOK_TIMEOUT": "2.5"})
    assert s is not None and s.secret == "from-file" and s.max_attempts == 5 and s.timeout == 2.5
    assert "from-file" not in repr(s)
    with pytest.raises(WebhookConfigError, match="no secret"):
        WebhookSettings.from_env({"WARDEN_WEBHOOK_URL": "https://x.example/h"})
    with pytest.raises(WebhookConfigError, match="cannot read"):
        WebhookSettings.from_env({"WARDEN_WEBHOOK_URL": "https://x.example/h",
                                  "WARDEN_WEBHOOK_SECRET_FILE": str(tmp_path / "missing")})
    with pytest.raises(WebhookConfigError, match="http"):
        WebhookSettings.from_env({"WARDEN_WEBHOOK_URL": "ftp://x", "WARDEN_WEBHOOK_SECRET": "s"})
    with pytest.raises(WebhookConfigError, match="number"):
        WebhookSettings.from_env({"WARDEN_WEBHOOK_URL": "https://x.example/h", "WARDEN_WEBHOOK_SECRET": "s",
                                  "WARDEN_WEBHOOK_TIMEOUT": "soon"})
    override = WebhookSettings.from_env({"WARDEN_WEBHOOK_SECRET": "s"}, url="http://127.0.0.1:1/h", batch_size=7)
    assert override is not None and override.batch_size == 7
