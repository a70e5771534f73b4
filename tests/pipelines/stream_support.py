"""Real Redis for stream tests: skipped with a reason locally when absent, a failure in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

REDIS_URL = os.environ.get("WARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        reason = f"Redis unavailable at {REDIS_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"Redis is required when CI=true: {reason}", pytrace=False)
        pytest.skip(reason + "; set WARDEN_TEST_REDIS_URL to run these tests")
    return client


@dataclass(frozen=True)
class Streams:
    input: str
    output: str
    dead: str
    group: str


def unique_streams() -> Iterator[tuple[object, Streams]]:
    client = redis_client()
    tag = uuid.uuid4().hex[:10]
    streams = Streams(f"test:{tag}:content", f"test:{tag}:decisions", f"test:{tag}:dead", f"g{tag}")
    try:
        yield client, streams
    finally:
        client.delete(streams.input, streams.output, streams.dead)
        client.close()
