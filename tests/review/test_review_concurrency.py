"""Concurrent leasing: many reviewers pull from one queue at once; every task is handed out
exactly once and never to two reviewers at the same time: threads in one process (the SQLite
write lock, PostgreSQL's SKIP LOCKED) and threads in two processes (where only the database's
conditional update / row locks protect the queue)."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

from review_helpers import lease_worker

from warden.review import TaskSpec
from warden.store import Store
from warden.store.review_repo import ReviewRepository

N_TASKS = 200


def fill(repo: ReviewRepository, queue: str = "default") -> set[int]:
    severities = ("low", "medium", "high", "critical")
    specs = [TaskSpec(dedupe_key=f"routing:{i}", queue=queue, source="routing", content_id=f"c{i}",
                      surface="comment", sla_hours=24.0, severity=severities[i % 4],  # type: ignore[arg-type]
                      uncertainty=(i % 10) / 10, reach=i * 7) for i in range(N_TASKS)]
    ids = set(repo.enqueue(specs))
    assert len(ids) == N_TASKS
    return ids


def assert_handed_out_once(repo: ReviewRepository, ids: set[int], got: list[tuple[int, str]]) -> None:
    counts = Counter(tid for tid, _ in got)
    doubles = {tid: n for tid, n in counts.items() if n > 1}
    assert not doubles, f"tasks leased more than once: {doubles}"
    assert set(counts) == ids
    owners = dict(got)
    for task in repo.list_tasks(limit=10_000):
        # The database agrees: one hand-out each, to the reviewer that received it.
        assert task.status == "leased" and task.lease_count == 1 and task.lease_owner == owners[task.id]


def test_threads_lease_each_task_exactly_once(store: Store, repo: ReviewRepository) -> None:
    ids = fill(repo)
    got: list[tuple[int, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def run(reviewer: str) -> None:
        try:
            start.wait()
            while (task := repo.lease_next("default", reviewer)) is not None:
                with lock:
                    got.append((task.id, reviewer))
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert_handed_out_once(repo, ids, got)
    assert len({r for _, r in got}) > 1  # the work was actually shared


def test_processes_lease_each_task_exactly_once(db_url: str, store: Store,
                                                repo: ReviewRepository) -> None:
    ids = fill(repo)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(lease_worker, [(db_url, "default", f"p{i}", 4) for i in range(2)])
    got = [pair for part in results for pair in part]
    assert_handed_out_once(repo, ids, got)
    assert all(part for part in results)  # both processes got work


def test_concurrent_submit_only_one_wins(store: Store, repo: ReviewRepository) -> None:
    """Two threads racing to decide the same leased task (a double click): one decision."""
    (tid,) = repo.enqueue([TaskSpec(dedupe_key="k", queue="default", source="routing", content_id="c",
                                    surface="comment", sla_hours=1.0)])
    repo.lease(tid, "alice")
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        try:
            repo.submit(tid, "alice", labels={"spam": True}, action="remove", policy_version="v")
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["TaskClosed"] * 3 + ["ok"]
