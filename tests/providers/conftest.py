"""Fixtures of the provider adapter tests; the definitions live in `provider_cases`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_cases import CASES, Provider, serve_case


@pytest.fixture(params=CASES, ids=str)
def provider(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    yield from serve_case(request.param, monkeypatch)


@pytest.fixture(params=[c for c in CASES if c.llm], ids=str)
def llm_provider(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    yield from serve_case(request.param, monkeypatch)
