from __future__ import annotations

import pytest

from support import SMALL_POLICY
from warden.core import Action, Content
from warden.ingest import InvalidItem
from warden.moderator import Moderator
from warden.policy import parse_policy


@pytest.fixture
def moderator(word_detector_cls):
    calls: list[tuple[str, int]] = []
    mod = Moderator(parse_policy(SMALL_POLICY), observer=lambda inst, n, _s: calls.append((inst, n)))
    mod.calls = calls  # type: ignore[attr-defined]
    return mod


def test_cascade_escalates_only_uncertain_items(moderator) -> None:
    items = [Content(id="a", text="hello"), Content(id="b", text="spammy offer"), Content(id="c", text="hi")]
    results = moderator.moderate_with_signals(items)
    assert moderator.calls == [("cheap", 3), ("expensive", 1)]
    assert [len(r.signals) for r in results] == [1, 2, 1]
    # The expensive tier supersedes the cheap one: its score decides.
    assert results[1].decision.action is Action.LIMIT
    assert results[1].decision.reasons[0].detector == "expensive"


def test_moderate_accepts_str_mapping_content_and_lists(moderator) -> None:
    assert moderator.moderate("hateword here").action is Action.REMOVE
    d = moderator.moderate({"id": "x", "text": "maybe", "surface": "chat"})
    assert d.content_id == "x" and d.surface == "chat"
    ds = moderator.moderate([{"id": "1", "text": "a"}, Content(id="2", text="b")])
    assert [d.content_id for d in ds] == ["1", "2"]


def test_unknown_surface_and_bad_items_are_clear_errors(moderator) -> None:
    with pytest.raises(InvalidItem, match="unknown surface 'profile'; the policy defines: comment, chat"):
        moderator.moderate({"text": "x", "surface": "profile"})
    with pytest.raises(InvalidItem, match="'text' must be a string, got a number"):
        moderator.moderate({"text": 3})


def test_one_failing_item_does_not_fail_the_batch(moderator) -> None:
    items = [Content(id="ok", text="fine"), Content(id="bad", text="boom"), Content(id="ok2", text="fine too")]
    decisions = moderator.moderate_batch(items)
    assert [d.content_id for d in decisions] == ["ok", "bad", "ok2"]
    assert decisions[1].missing_signals == ("cheap", "expensive") and decisions[1].action is Action.HOLD_FOR_REVIEW
    assert decisions[0].missing_signals == () and decisions[0].action is Action.ALLOW


def test_policy_without_cascade_runs_all_detectors(word_detector_cls) -> None:
    text = SMALL_POLICY.split("cascade:")[0]
    mod = Moderator(parse_policy(text))
    (r,) = mod.moderate_with_signals([Content(id="a", text="hateword")])
    assert {s.detector for s in r.signals} == {"cheap", "expensive"}
    assert r.decision.flagged == ("hate",)
