"""`escalate_if`: the uncertainty band OR a severity floor decides which items reach a tier."""

from __future__ import annotations

import pytest

from support import SMALL_POLICY
from warden.core import Content
from warden.moderator import Moderator
from warden.policy import PolicyError, parse_policy
from warden.policy.loader import fingerprint

# The cheap tier's scores: hate (high severity) 0.35, harassment (medium) 0.55 or 0.35, spam (low) 0.99.
TRIGGERS = "{hateword: [hate, 0.35], maybe: [harassment, 0.55], soft: [harassment, 0.35], spammy: [spam, 0.99]}"
ITEMS = {"h": "hateword", "m": "maybe", "s": "soft", "p": "spammy", "c": "hello"}


def _policy(escalate_if: str) -> str:
    text = SMALL_POLICY.replace(
        "triggers: {spammy: [spam, 0.99], hateword: [hate, 0.6], maybe: [harassment, 0.55]}",
        f"triggers: {TRIGGERS}")
    assert TRIGGERS in text
    return text.replace("escalate_if: {any_score_between: [0.5, 1.0]}", f"escalate_if: {escalate_if}")


def _escalated(escalate_if: str, word_detector_cls) -> set[str]:
    mod = Moderator(parse_policy(_policy(escalate_if)))
    results = mod.moderate_with_signals([Content(id=k, text=v) for k, v in ITEMS.items()])
    return {r.decision.content_id for r in results if any(s.detector == "expensive" for s in r.signals)}


@pytest.mark.parametrize(("escalate_if", "expected"), [
    ("{any_score_between: [0.5, 0.6]}", {"m"}),
    ("{severity_at_least: {severity: high, min_score: 0.3}}", {"h"}),  # no band: 'maybe' stays
    ("{any_score_between: [0.5, 0.6], severity_at_least: {severity: high, min_score: 0.3}}", {"h", "m"}),
    ("{severity_at_least: {severity: medium, min_score: 0.3}}", {"h", "m", "s"}),  # medium and above
    ("{severity_at_least: {severity: high, min_score: 0.4}}", set()),  # hate scored 0.35 < 0.4
    ("{severity_at_least: {severity: low, min_score: 0.9}}", {"p"}),
    ("{}", {"h", "m", "s", "p", "c"}),  # an empty condition is the band [0, 1], as before
])
def test_band_or_severity_floor_selects_the_items(escalate_if: str, expected: set[str], word_detector_cls) -> None:
    assert _escalated(escalate_if, word_detector_cls) == expected


def test_escalated_item_is_decided_by_the_stronger_tier(word_detector_cls) -> None:
    mod = Moderator(parse_policy(_policy("{severity_at_least: {severity: high, min_score: 0.3}}")))
    (r,) = mod.moderate_with_signals([Content(id="h", text="hateword")])
    # The expensive tier supersedes the cheap one: its default trigger scores hate 0.9.
    assert r.decision.flagged == ("hate",) and r.decision.reasons[0].detector == "expensive"


def test_unset_conditions_stay_out_of_the_dump_so_fingerprints_do_not_move() -> None:
    band = parse_policy(_policy("{any_score_between: [0.5, 0.6]}"), check_detectors=False)
    assert band.cascade[1].escalate_if.model_dump(mode="json") == {"any_score_between": [0.5, 0.6]}
    empty = parse_policy(_policy("{}"), check_detectors=False)
    full = parse_policy(_policy("{any_score_between: [0.0, 1.0]}"), check_detectors=False)
    assert fingerprint(empty) == fingerprint(full)
    both = parse_policy(_policy("{any_score_between: [0.5, 0.6], severity_at_least: {severity: high, "
                                "min_score: 0.3}}"), check_detectors=False)
    assert both.cascade[1].escalate_if.model_dump(mode="json") == {
        "any_score_between": [0.5, 0.6], "severity_at_least": {"severity": "high", "min_score": 0.3}}
    assert fingerprint(both) != fingerprint(band)


@pytest.mark.parametrize(("escalate_if", "path", "message"), [
    ("{severity_at_least: {severity: hihg, min_score: 0.3}}", "cascade.1.escalate_if.severity_at_least.severity",
     "Input should be 'low', 'medium', 'high' or 'critical'; got 'hihg'"),
    ("{severity_at_least: {severity: high, min_score: 1.5}}", "cascade.1.escalate_if.severity_at_least.min_score",
     "Input should be less than or equal to 1; got 1.5"),
    ("{severity_at_least: {severity: high}}", "cascade.1.escalate_if.severity_at_least.min_score",
     "required key is missing"),
    ("{severity_at_least: {severity: high, min_score: 0.3, min_scor: 0.3}}",
     "cascade.1.escalate_if.severity_at_least.min_scor", "unknown key"),
    ("{severity_above: high}", "cascade.1.escalate_if.severity_above", "unknown key"),
    ("{any_score_between: [0.8, 0.3]}", "cascade.1.escalate_if.any_score_between",
     "needs 0 <= low <= high <= 1, got [0.8, 0.3]"),
    ("{severity_at_least: {severity: critical, min_score: 0.3}}", "",
     "cascade[1].escalate_if.severity_at_least: no category has severity critical or higher (severities here: "
     "low, medium, high), so the condition never holds; lower the severity or remove the condition"),
])
def test_mistakes_fail_at_load_with_exact_messages(escalate_if: str, path: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_policy(escalate_if), file="p.yaml", check_detectors=False)
    (problem,) = info.value.problems
    assert problem.path == path
    assert problem.message == message
