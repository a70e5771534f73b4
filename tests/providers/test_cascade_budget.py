"""An LLM tier within a budget: items beyond the daily spend or the calls-per-minute limit get
no LLM call and fall back, visibly, to the local model the policy names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_servers import OpenAIChatServer

from warden.core import Content
from warden.moderator import Moderator
from warden.policy import parse_policy


def _policy(url: str, budget: str) -> str:
    return f"""
schema_version: 1
name: budget-test
version: "1"
surfaces: [comment]
categories:
  hate:
    definition: Attacks on people for a protected attribute.
    severity: high
    action: remove
    thresholds: {{default: {{flag: 0.8, review: 0.5}}}}
  harassment:
    definition: Insults aimed at a person.
    severity: medium
    action: hold_for_review
    thresholds: {{default: {{flag: 0.8, review: 0.5}}}}
detectors:
  cheap:
    type: test_word_score
    params: {{triggers: {{idiot: [harassment, 0.6], vermin: [hate, 0.3]}}}}
  llm:
    type: openai_chat
    params: {{base_url: "{url}/v1", model: local-judge, max_retries: 0, cache_ttl_s: 0, max_concurrency: 1,
              {budget}}}
  local:
    type: test_word_score
    params: {{triggers: {{idiot: [harassment, 0.7], vermin: [hate, 0.75]}}}}
cascade:
  - {{name: fast, detectors: [cheap]}}
  - name: llm
    detectors: [llm]
    escalate_if: {{any_score_between: [0.5, 0.8], severity_at_least: {{severity: high, min_score: 0.2}}}}
    fallback: {{llm: [local]}}
"""


ITEMS = [Content(id="a", text="you idiot"), Content(id="b", text="they are vermin"),
         Content(id="c", text="what an idiot"), Content(id="d", text="hello there")]


@pytest.fixture
def server() -> Iterator[OpenAIChatServer]:
    s = OpenAIChatServer(None).start()
    yield s
    s.stop()


def _check(results, server: OpenAIChatServer, kind: str) -> None:
    # a, b (band; severity floor) are escalated and answered by the LLM; c is escalated too but
    # beyond the budget: the fallback decides and the Decision names the missing LLM signal.
    a, b, c, d = results
    assert len(server.requests) == 2
    for r in (a, b):
        assert [s.detector for s in r.signals] == ["cheap", "llm"] and r.decision.missing_signals == ()
    assert b.decision.flagged == ("hate",) and b.decision.reasons[0].detector == "llm"
    assert [s.detector for s in c.signals] == ["cheap", "llm", "local"]
    assert c.decision.missing_signals == ("llm",)
    assert kind in c.decision.errors[0] and c.decision.errors[0].startswith("llm: openai_chat: ")
    assert c.decision.scores["harassment"] == 0.7 and c.decision.reasons[0].detector == "local"
    assert [s.detector for s in d.signals] == ["cheap"]  # clean: never escalated, costs nothing


def test_daily_spend_limit_falls_back_visibly(word_detector_cls, server: OpenAIChatServer) -> None:
    mod = Moderator(parse_policy(_policy(server.url, "price_per_call_usd: 0.01, max_spend_usd_per_day: 0.02")))
    _check(mod.moderate_with_signals(ITEMS), server, "over_budget: the daily budget of $0.02")
    assert mod.detectors["llm"].totals.cost_usd == pytest.approx(0.02)


def test_calls_per_minute_limit_falls_back_visibly(word_detector_cls, server: OpenAIChatServer) -> None:
    # 2 calls per minute: a bucket of 2 refilled at 2/60 per second; a caller never waits for a token.
    limit = "rate_limit_per_s: 0.0333, rate_limit_burst: 2, rate_limit_max_wait_s: 0"
    mod = Moderator(parse_policy(_policy(server.url, limit)))
    _check(mod.moderate_with_signals(ITEMS), server, "throttled: client-side rate limit")


def test_parallel_chunks_cannot_overshoot_the_daily_budget() -> None:
    """Chunks run in parallel: each is admitted against what is spent plus what the chunks in
    flight will probably cost, so they cannot all pass a 'spent < budget' check at once."""
    from warden.detectors.providers.base import Usage, UsageTotals

    totals = UsageTotals()
    totals.add(ok=True, usage=Usage(), cost=1.0, day="d")  # one request so far, $1 each
    assert totals.admit("d", 3.0) and totals.admit("d", 3.0)  # 1 + 0 < 3, 1 + 1 < 3
    assert not totals.admit("d", 3.0)  # 1 spent + 2 in flight x $1 reaches the budget
    totals.finish()
    assert totals.admit("d", 3.0)
    assert totals.admit("next-day", None)  # no budget: always admitted (and counted)
    assert totals.in_flight == 3
    assert totals.admit("next-day", 3.0) is False  # a new day: nothing spent, 3 in flight x $1
