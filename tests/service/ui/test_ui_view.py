"""Pure helpers of the UI: evidence highlighting, image URL filtering, SLA states, the
decision form's labels, the login limiter and the candidate-policy check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from ui_helpers import DEFAULT_POLICY

from warden.policy import load_policy
from warden.policy.candidate import check_candidate, live_fingerprint
from warden.service import ui_view as v
from warden.service.web_auth import LoginRateLimiter, may_review, safe_next


def _reasons(*spans: tuple[str, int, int, str]) -> list[dict]:
    return [{"category": cat, "rule": "r", "evidence": [{"category": cat, "rule": f"rule:{cat}",
                                                          "spans": [{"start": a, "end": b, "text": t}]}]}
            for cat, a, b, t in spans]


def test_highlight_exact_and_overlapping_spans() -> None:
    text = "buy now cheap pills"
    spans = v.evidence_spans(text, _reasons(("spam", 0, 7, "buy now"), ("scam", 4, 13, "now cheap")))
    segs = v.highlight_segments(text, spans)
    assert "".join(s.text for s in segs) == text
    assert [(s.text, s.categories) for s in segs] == [
        ("buy ", ("spam",)), ("now", ("scam", "spam")), (" cheap", ("scam",)), (" pills", ())]


def test_misaligned_spans_are_reanchored_or_dropped() -> None:
    text = "Hello, BUY NOW"
    spans = v.evidence_spans(text, _reasons(("spam", 0, 7, "BUY NOW"), ("scam", 50, 60, "absent"),
                                            ("hate", -1, 3, "")))
    assert [(s.start, s.end, s.category) for s in spans] == [(7, 14, "spam")]
    assert v.evidence_spans(text, [{"evidence": ["junk", {"spans": [None, {"start": "a"}]}]}, "junk"]) == []


@given(st.text(max_size=40), st.lists(st.tuples(st.integers(-5, 50), st.integers(-5, 50)), max_size=6))
def test_segments_always_rebuild_the_text(text: str, raw: list[tuple[int, int]]) -> None:
    reasons = _reasons(*[("c", a, b, text[a:b] if 0 <= a < b <= len(text) else "zz") for a, b in raw])
    segs = v.highlight_segments(text, v.evidence_spans(text, reasons))
    assert "".join(s.text for s in segs) == text
    assert all(s.text for s in segs)


def test_image_urls_keep_only_safe_schemes() -> None:
    meta = {"image_url": "https://a/x.png", "images": ["JavaScript:alert(1)", "file:///etc/passwd",
                                                       "data:image/png;base64,AA", "https://a/x.png"],
            "media": [{"url": "https://a/v.mp4", "type": "video/mp4"}, {"url": "http://a/y.jpg", "type": "image"}]}
    assert v.image_urls(meta) == ["https://a/x.png", "data:image/png;base64,AA", "http://a/y.jpg"]
    assert v.image_urls(None) == [] and v.image_urls({"images": "nope"}) == []


def test_sla_states() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert v.sla_state(now - timedelta(seconds=1), now) == "overdue"
    assert v.sla_state(now + timedelta(minutes=30), now) == "due_soon"
    assert v.sla_state(now + timedelta(hours=3), now) == "ok"
    assert v.queue_sla_state(overdue=2, oldest_age_seconds=10, sla_hours=24) == "overdue"
    assert v.queue_sla_state(overdue=0, oldest_age_seconds=23.5 * 3600, sla_hours=24) == "due_soon"
    assert v.queue_sla_state(overdue=0, oldest_age_seconds=None, sla_hours=24) == "ok"


def test_decision_form_helpers() -> None:
    main, other = v.form_categories(["spam", "unknown", "spam"], ["hate", "spam", "scam"])
    assert [(c.name, c.key) for c in main] == [("spam", "1")]
    assert [(c.name, c.key) for c in other] == [("hate", "2"), ("scam", "3")]
    main, other = v.form_categories([], ["hate", "spam"])
    assert [c.name for c in main] == ["hate", "spam"] and other == []
    assert v.labels_from_form(shown=["spam", "hate"], violating=["hate", "scam"]) == {
        "spam": False, "hate": True, "scam": True}
    assert [(a.value, a.key) for a in v.form_actions(["allow", "remove", "escalate"])] == [
        ("allow", "a"), ("remove", "r"), ("escalate", "e")]
    assert v.categories_in_question(["hate"], {"flagged": ["spam"], "uncertain": ["hate", "scam"]}) == [
        "hate", "spam", "scam"]


def test_signals_table() -> None:
    payload = {"scores": {"spam": 0.9, "hate": 0.1}, "flagged": ["spam"],
               "reasons": [{"category": "spam", "verdict": "violating", "detector": "bank", "score": 0.9,
                            "threshold": 0.8, "rule": "flag"}]}
    rows = v.signals(payload)
    assert [(r.category, r.verdict, r.detector, r.threshold) for r in rows] == [
        ("spam", "violating", "bank", 0.8), ("hate", "clear", "", None)]


def test_login_limiter_window() -> None:
    t = [0.0]
    lim = LoginRateLimiter(per_user=2, per_ip=3, window_seconds=60, clock=lambda: t[0])
    lim.record_failure(username="u", ip="1")
    assert lim.retry_after(username="u", ip="1") == 0
    t[0] = 10
    lim.record_failure(username="u", ip="1")
    assert lim.retry_after(username="u", ip="1") == 50  # the first failure leaves the window at t=60
    assert lim.retry_after(username="v", ip="2") == 0
    lim.record_failure(username="w", ip="1")
    assert lim.retry_after(username="x", ip="1") > 0  # the address is over its limit for any name
    t[0] = 71
    assert lim.retry_after(username="u", ip="1") == 0
    lim.record_failure(username="u", ip="9")
    lim.reset_user("u")
    assert lim.retry_after(username="u", ip="9") == 0


def test_roles_and_redirects() -> None:
    assert may_review("reviewer", source="routing", queue="default", senior_queues=frozenset({"appeals"}))
    assert not may_review("reviewer", source="appeal", queue="default", senior_queues=frozenset({"appeals"}))
    assert not may_review("reviewer", source="", queue="appeals", senior_queues=frozenset({"appeals"}))
    assert may_review("senior_reviewer", source="appeal", queue="appeals", senior_queues=frozenset({"appeals"}))
    assert not may_review("client", source="routing", queue="default")
    assert safe_next("/ui/tasks/1?x=2") == "/ui/tasks/1?x=2"
    assert safe_next("https://x/ui/") == safe_next("//x/ui/") == safe_next(None) == "/ui/"


def test_candidate_check() -> None:
    live = load_policy(DEFAULT_POLICY, check_detectors=False)
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    same = check_candidate(text, live=live, check_detectors=False)
    assert same.valid and same.changes == () and same.fingerprint == live_fingerprint(live)
    edited = check_candidate(text.replace("sla_hours: 24, description: General", "sla_hours: 12, description: General"),
                             live=live, check_detectors=False)
    assert edited.valid and edited.same_version_changed
    assert [c.path for c in edited.changes] == ["review.queues.default.sla_hours"]
    bad = check_candidate("name: Bad Name\nversion: 1\n", live=live)
    assert not bad.valid and {p.path for p in bad.problems} >= {"name", "surfaces", "categories"}
    assert not check_candidate("a: [", live=live).valid
    assert live_fingerprint(object()) is None
