from __future__ import annotations

from pathlib import Path

import pytest

from support import DEFAULT_POLICY
from warden.core import DEFAULT_CATEGORIES, Action
from warden.policy import PolicyError, diff_policies, load_policy, parse_policy


def _default_text() -> str:
    return DEFAULT_POLICY.read_text()


def test_default_policy_is_valid_and_complete() -> None:
    policy = load_policy(DEFAULT_POLICY, check_detectors=False)
    assert set(DEFAULT_CATEGORIES) <= set(policy.categories)
    assert {"comment", "chat", "profile", "llm_prompt"} <= set(policy.surfaces)
    used_actions = {c.action for c in policy.categories.values()}
    assert {Action.LABEL, Action.LIMIT, Action.HOLD_FOR_REVIEW, Action.REMOVE, Action.ESCALATE} <= used_actions
    for name, cat in policy.categories.items():
        assert len(cat.examples.violating) >= 3, name
        assert len(cat.examples.benign) >= 3, name
        assert cat.threshold_for("default").review is not None, name


def test_errors_name_file_line_path_and_what_is_allowed() -> None:
    bad = _default_text().replace("severity: low", "severity: lowish", 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(bad, file="p.yaml", check_detectors=False)
    (problem,) = info.value.problems
    assert problem.path == "categories.spam.severity"
    assert problem.line is not None and "severity: lowish" in bad.splitlines()[problem.line - 1]
    message = str(info.value)
    assert f"p.yaml:{problem.line}: categories.spam.severity:" in message
    assert "'low', 'medium', 'high' or 'critical'" in message and "got 'lowish'" in message


def test_all_problems_reported_at_once() -> None:
    bad = (_default_text().replace("flag: 0.85, review: 0.55}", "flag: 1.5, review: 0.55}", 1)
           .replace("action: label", "action: lable"))
    with pytest.raises(PolicyError) as info:
        parse_policy(bad, check_detectors=False)
    paths = {p.path for p in info.value.problems}
    assert paths == {"categories.sexual.thresholds.default.flag", "categories.violence/graphic.action"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("detectors: [linear]", "detectors: [linaer]", "'linaer' is not declared under detectors"),
        ("      profile: {flag: 0.8, review: 0.5}", "      profle: {flag: 0.8, review: 0.5}",
         "unknown surface; allowed: default, comment, chat, profile, llm_prompt"),
        ("      default: {flag: 0.85, review: 0.6}\n\n  illicit",
         "      default: {flag: 0.5, review: 0.6}\n\n  illicit", "review (0.6) must be <= flag (0.5)"),
        ("    critical: priority", "    critical: urgent", "names queue 'urgent', not defined in queues"),
        ("name: default", "name: Default Policy!", "String should match pattern"),
    ],
)
def test_specific_messages(old: str, new: str, expected: str) -> None:
    text = _default_text()
    assert old in text
    with pytest.raises(PolicyError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(text.replace(old, new, 1), check_detectors=False)


def test_unknown_detector_type_and_bad_params_are_load_errors() -> None:
    text = _default_text().replace("type: linear_text", "type: linear_txt", 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, check_detectors=True)
    assert any(p.path == "detectors.linear.type" and "unknown detector type 'linear_txt'" in p.message
               for p in info.value.problems)


def test_yaml_syntax_and_shape_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="YAML syntax error"):
        parse_policy("a: [1, 2", check_detectors=False)
    with pytest.raises(PolicyError, match="top level must be a mapping"):
        parse_policy("- 1\n- 2\n", check_detectors=False)
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"name: \xff\xfe")
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        load_policy(tmp_path / "bin.yaml")


def test_diff_reports_threshold_and_action_changes() -> None:
    a = load_policy(DEFAULT_POLICY, check_detectors=False)
    b = parse_policy(_default_text().replace('version: "2026.11.22-4"', 'version: "2026.11.22-5"')
                     .replace("action: label", "action: limit"), check_detectors=False)
    changes = {c.path: c for c in diff_policies(a, b)}
    assert set(changes) == {"version", "categories.violence/graphic.action"}
    assert changes["categories.violence/graphic.action"].affects_decisions
    change = changes["categories.violence/graphic.action"]
    assert change.format() == "~ categories.violence/graphic.action: label -> limit"
    assert diff_policies(a, a) == []
