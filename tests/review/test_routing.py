"""Routing: which decisions become which tasks, their keys, uncertainty and severity."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from review_helpers import make_decision, make_policy

from warden.core import Content, Severity
from warden.ingest import InvalidItem, parse_item
from warden.review import (
    TaskSpec,
    appeal_task,
    closeness,
    decision_uncertainty,
    double_review_task,
    learning_task,
    reach_of,
    report_task,
    route,
    selected_for_double_review,
)


def item(cid: str = "c1", **meta: object) -> Content:
    return Content(id=cid, text="t", actor_id="u1", metadata=meta)


def test_review_band_goes_to_default_queue_as_uncertainty() -> None:
    policy = make_policy(qa_sample_rate=0.0)
    c = item(reach=250)
    d = make_decision(policy, c, {"spam": 0.7})
    (spec,) = route(policy, d, c)
    assert spec.source == "uncertainty" and spec.queue == "default"
    assert spec.dedupe_key == f"uncertainty:{d.decision_id}"
    assert spec.categories == ("spam",) and spec.severity is Severity.LOW
    assert spec.reach == 250 and spec.actor_id == "u1" and spec.sla_hours == 24
    assert spec.uncertainty == pytest.approx(closeness(0.7, 0.9))


def test_critical_severity_routes_to_its_queue() -> None:
    policy = make_policy(qa_sample_rate=0.0)
    c = item()
    d = make_decision(policy, c, {"sexual/minors": 0.3, "spam": 0.6})
    (spec,) = route(policy, d, c)
    assert spec.queue == "priority" and spec.severity is Severity.CRITICAL and spec.sla_hours == 1


def test_escalation_without_uncertain_categories_is_routing() -> None:
    policy = make_policy(qa_sample_rate=0.0)
    c = item()
    d = make_decision(policy, c, {"sexual/minors": 0.9})
    specs = route(policy, d, c)
    assert [(s.source, s.queue) for s in specs] == [("routing", "priority")]


def test_detector_failure_hold_is_routing_with_full_uncertainty() -> None:
    from warden.core import DetectorResult
    from warden.decide import decide

    policy = make_policy(qa_sample_rate=0.0)
    c = item()
    d = decide(policy, c, [DetectorResult(detector="fake", content_id=c.id, error="timeout")])
    (spec,) = route(policy, d, c)
    assert spec.source == "routing" and spec.uncertainty == 1.0 and spec.categories == ()


def test_qa_sample_of_automated_decision() -> None:
    policy = make_policy(qa_sample_rate=1.0)
    c = item()
    d = make_decision(policy, c, {"spam": 0.95})
    (spec,) = route(policy, d, c)
    assert spec.source == "qa_sample" and spec.queue == "default"
    assert spec.dedupe_key == f"qa_sample:{d.decision_id}"
    assert spec.details["sample_rate"] == 1.0 and spec.details["action"] == "remove"


def test_clear_allow_without_sampling_creates_nothing() -> None:
    policy = make_policy(qa_sample_rate=0.0)
    c = item()
    assert route(policy, make_decision(policy, c, {"spam": 0.1}), c) == ()


def test_routing_is_deterministic() -> None:
    policy = make_policy()
    c = item()
    d = make_decision(policy, c, {"spam": 0.7, "hate": 0.5})
    assert route(policy, d, c) == route(policy, d, c)


def test_route_rejects_mismatched_content() -> None:
    policy = make_policy()
    d = make_decision(policy, item("a"), {"spam": 0.7})
    with pytest.raises(ValueError):
        route(policy, d, item("b"))


def test_uncertainty_is_closeness_to_the_flag_threshold() -> None:
    assert closeness(0.9, 0.9) == 1.0
    assert closeness(0.0, 0.9) == 0.0
    assert closeness(1.0, 0.5) == 0.0 and closeness(0.75, 0.5) == pytest.approx(0.5)
    policy = make_policy()
    near = decision_uncertainty(policy, make_decision(policy, item(), {"spam": 0.88}))
    far = decision_uncertainty(policy, make_decision(policy, item(), {"spam": 0.55}))
    assert 0.0 <= far < near <= 1.0


def test_deciding_category_is_the_most_severe_acting_one() -> None:
    policy = make_policy()
    # hate (high) is uncertain at 0.79 (very close to 0.8); spam (low) violating far above 0.9
    d = make_decision(policy, item(), {"hate": 0.79, "spam": 1.0})
    assert decision_uncertainty(policy, d) == pytest.approx(closeness(0.79, 0.8))


def test_reach_of_tolerates_bad_metadata() -> None:
    assert reach_of(item(reach=5)) == 5
    for bad in (-1, "10", 1.5, True, None):
        assert reach_of(item(reach=bad)) == 0
    assert reach_of(item(reach=10**20)) == 10**12


def test_report_appeal_learning_and_double_review_tasks() -> None:
    policy = make_policy()
    r = report_task(policy, content_id="c9", surface="comment", reason="spam!", reporter="u2", category="spam")
    assert (r.source, r.queue, r.dedupe_key, r.categories) == ("report", "reports", "report:c9", ("spam",))
    assert r.details["report_count"] == 1
    a = appeal_task(policy, decision_id="d1", content_id="c9", surface="comment", policy_version="v",
                    action="remove", flagged=["hate"], scores={"hate": 0.85}, appeal_id=7, exclude_reviewer="bob")
    assert (a.source, a.queue, a.exclude_reviewer, a.severity) == ("appeal", "appeals", "bob", Severity.HIGH)
    assert a.uncertainty == pytest.approx(closeness(0.85, 0.8)) and a.sla_hours == 72
    learn = learning_task(policy, content_id="c9", surface="comment", categories=["spam"], uncertainty=0.9,
                          model="lin-v1")
    assert (learn.queue, learn.dedupe_key) == ("learning", "active_learning:lin-v1:c9")
    dr = double_review_task(a, parent_task_id=42, first_reviewer="carol", sla_hours=72)
    assert (dr.source, dr.queue, dr.exclude_reviewer, dr.parent_task_id) == ("double_review", "appeals", "carol", 42)
    assert dr.dedupe_key == "double_review:42"


def test_task_spec_validates() -> None:
    ok = {"dedupe_key": "k", "queue": "q", "source": "routing", "content_id": "c", "surface": "comment",
          "sla_hours": 1.0}
    TaskSpec(**ok)
    for bad in ({"source": "nope"}, {"uncertainty": 2.0}, {"reach": -1}, {"reach": True}, {"sla_hours": 0},
                {"queue": ""}):
        with pytest.raises(ValueError):
            TaskSpec(**{**ok, **bad})


def test_double_review_selection_is_deterministic_and_near_the_rate() -> None:
    keys = [f"routing:{i}" for i in range(4000)]
    picked = [k for k in keys if selected_for_double_review(k, 0.25)]
    assert picked == [k for k in keys if selected_for_double_review(k, 0.25)]
    assert 0.22 < len(picked) / len(keys) < 0.28
    assert not any(selected_for_double_review(k, 0.0) for k in keys)
    assert all(selected_for_double_review(k, 1.0) for k in keys)


def test_ingest_accepts_reach_with_exact_errors() -> None:
    assert parse_item({"text": "x", "reach": 12}).metadata["reach"] == 12
    assert "reach" not in parse_item({"text": "x"}).metadata
    cases = {-1: "got -1", 1.5: "got 1.5", "3": "got a string", True: "got a boolean", 10**13: "got 10000000000000"}
    for value, tail in cases.items():
        with pytest.raises(InvalidItem) as err:
            parse_item({"text": "x", "reach": value})
        assert err.value.field == "reach"
        assert str(err.value) == f"'reach' must be an integer from 0 to 1,000,000,000,000, {tail}"


def test_review_package_is_pure() -> None:
    """warden.review imports only warden.core and no I/O (like decide and policy)."""
    root = Path(__file__).resolve().parents[2] / "src" / "warden" / "review"
    banned = ("warden.store", "warden.service", "warden.pipelines", "sqlalchemy", "fastapi", "httpx", "redis",
              "socket", "requests")
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(banned), f"{path.name} imports {name}"
                if name.startswith("warden."):
                    assert name.startswith(("warden.core", "warden.review")), f"{path.name} imports {name}"


def test_media_references_are_copied_onto_tasks_for_the_reviewer_ui() -> None:
    from review_helpers import make_decision, make_policy

    from warden.core import Content
    from warden.review.routing import route

    policy = make_policy(qa_sample_rate=0.0)
    content = Content(id="m1", text="maybe spam", metadata={"image_urls": ["https://cdn.example/a.jpg"],
                                                             "secret_internal": "x"})
    (spec,) = route(policy, make_decision(policy, content, {"spam": 0.7}), content)
    assert spec.details["metadata"] == {"image_urls": ["https://cdn.example/a.jpg"]}
