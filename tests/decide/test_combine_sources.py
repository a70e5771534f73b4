"""Combining signals across sources (an item's text, its images, text read from its images):
the maximum within a source, the policy's rule across sources; text-only items unchanged."""

from __future__ import annotations

import pytest

from warden.core import DetectorResult
from warden.decide import combine_scores
from warden.policy import PolicyError, parse_policy
from warden.policy.loader import fingerprint

BASE = """
schema_version: 1
name: comb
version: "1"
surfaces: [comment]
categories:
  sexual: {definition: s, severity: medium, action: limit, thresholds: {default: {flag: 0.8, review: 0.5}}}
  violence: {definition: v, severity: high, action: remove, thresholds: {default: {flag: 0.8}}}
detectors:
  fast: {type: keyword_bank, params: {banks: [{name: b, category: violence, terms: [x]}]}}
  slow: {type: keyword_bank, params: {banks: [{name: c, category: violence, terms: [y]}]}}
cascade:
  - {name: one, detectors: [fast]}
  - {name: two, detectors: [slow], supersedes: [fast]}
"""


def sig(detector: str, source: str, **scores: float) -> DetectorResult:
    return DetectorResult(detector=detector, content_id="c", scores=scores, source=source)


def test_single_source_is_the_old_maximum() -> None:
    policy = parse_policy(BASE + "combine: {across_sources: noisy_or}\n")
    got = combine_scores(policy, [sig("fast", "", sexual=0.5), sig("other", "text", sexual=0.6)])
    assert got["sexual"].score == 0.6 and got["sexual"].detector == "other"


def test_noisy_or_across_sources_and_max_within() -> None:
    policy = parse_policy(BASE + "combine: {categories: {sexual: noisy_or}}\n")
    signals = [sig("a", "", sexual=0.5, violence=0.5), sig("b", "", sexual=0.4),
               sig("nsfw", "image", sexual=0.6, violence=0.7)]
    got = combine_scores(policy, signals)
    assert got["sexual"].score == pytest.approx(1 - 0.5 * 0.4)
    assert got["sexual"].detector == "nsfw"  # the strongest contributor is named
    assert got["violence"].score == 0.7  # max across sources (the default)


def test_supersedes_applies_within_each_source() -> None:
    policy = parse_policy(BASE)
    # `slow` replaced `fast` on the caption, but only `fast` scored the OCR text: that score stays.
    signals = [sig("fast", "", violence=0.9), sig("slow", "", violence=0.2), sig("fast", "ocr", violence=0.85)]
    got = combine_scores(policy, signals)
    assert got["violence"].score == 0.85 and got["violence"].detector == "fast"


def test_errored_signals_are_ignored() -> None:
    policy = parse_policy(BASE + "combine: {across_sources: noisy_or}\n")
    signals = [sig("a", "", sexual=0.5), DetectorResult.failed("nsfw", "c", "bad file", source="image")]
    assert combine_scores(policy, signals)["sexual"].score == 0.5


def test_unknown_category_in_combine_is_an_exact_error() -> None:
    with pytest.raises(PolicyError, match=r"combine.categories: unknown category 'nudity'; allowed: sexual, violence"):
        parse_policy(BASE + "combine: {categories: {nudity: noisy_or}}\n")
    with pytest.raises(PolicyError, match=r"combine.across_sources: Input should be 'max' or 'noisy_or'"):
        parse_policy(BASE + "combine: {across_sources: mean}\n")


def test_fingerprint_unchanged_by_a_default_combine_section() -> None:
    plain = parse_policy(BASE)
    explicit = parse_policy(BASE + "combine: {across_sources: max, categories: {}}\n")
    assert fingerprint(plain) == fingerprint(explicit)
    assert fingerprint(parse_policy(BASE + "combine: {across_sources: noisy_or}\n")) != fingerprint(plain)
