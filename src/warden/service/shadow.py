"""Shadow mode: run a candidate policy beside the live one, store what it would have decided,
never act on it or return it.

The live request only enqueues (a non-blocking put on a bounded queue); one worker thread
moderates with the candidate and stores (live, shadow) pairs in `shadow_decisions`. So the
candidate's latency never adds to the live path, and nothing the candidate does (an
exception, a wrong result count, a slow model, a database error) reaches the live response.
When the queue is full the work is dropped, not waited for: a shadow that cannot keep up
loses samples and says so in `warden_shadow_items_total{outcome="dropped"}`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from warden.core import Content, Decision
from warden.service.metrics import ServiceMetrics
from warden.store import Store

log = logging.getLogger("warden.service.shadow")


class _ModeratorLike(Protocol):
    policy: Any

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]: ...


_STOP = object()


class ShadowRunner:
    def __init__(self, moderator: _ModeratorLike, store: Store, metrics: ServiceMetrics, *,
                 max_queue: int = 1000) -> None:
        self.moderator = moderator
        self.store = store
        self.metrics = metrics
        self.policy_version = str(getattr(moderator.policy, "version", ""))
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_queue))
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- live side: never blocks, never raises ---------------------------------------
    def submit(self, contents: Sequence[Content], live: Sequence[Decision]) -> bool:
        try:
            self._ensure_started()
            self._queue.put_nowait((list(contents), list(live)))
            return True
        except queue.Full:
            self.metrics.shadow_items.labels("dropped").inc(len(contents))
            return False
        except Exception:  # never let shadow bookkeeping reach the live response
            self.metrics.shadow_items.labels("failed").inc(len(contents))
            log.exception("shadow submit failed")
            return False

    # -- worker ------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="warden-shadow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _STOP:
                    return
                self._process(*job)
            finally:
                self._queue.task_done()

    def _process(self, contents: list[Content], live: list[Decision]) -> None:
        started = time.perf_counter()
        try:
            shadow = self.moderator.moderate_batch(contents)
            if len(shadow) != len(contents):
                raise RuntimeError(f"shadow moderator returned {len(shadow)} decisions for {len(contents)} items")
            stored = self.store.save_shadow_decisions(zip(live, shadow, strict=True))
        except Exception as exc:
            self.metrics.shadow_items.labels("failed").inc(len(contents))
            # the type only: messages may quote content
            log.warning("shadow moderation failed for %d item(s): %s", len(contents), type(exc).__name__)
            return
        finally:
            self.metrics.shadow_latency.observe(time.perf_counter() - started)
        self.metrics.shadow_items.labels("stored").inc(stored)
        if stored < len(contents):
            self.metrics.shadow_items.labels("duplicate").inc(len(contents) - stored)

    # -- control -----------------------------------------------------------------------
    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted job is processed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work (up to `timeout`) and stop the worker."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self.drain(timeout)
        try:
            self._queue.put(_STOP, timeout=1.0)
        except queue.Full:
            return
        thread.join(timeout=1.0)


__all__ = ["ShadowRunner"]
