"""Online metrics against a hand computation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from warden.evaluate.online import ALL, online_metrics, qa_precision, wilson_interval

Z95 = 1.959963984540054


def wilson_by_hand(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@dataclass
class Outcome:
    category: str
    surface: str
    action: str
    verdict: str
    source: str
    sample_rate: float | None = None


def rows(n_up: int, n_over: int, **kw) -> list[Outcome]:
    return ([Outcome(verdict="upheld", **kw) for _ in range(n_up)]
            + [Outcome(verdict="overturned", **kw) for _ in range(n_over)])


def test_wilson_matches_the_formula_and_known_values() -> None:
    assert wilson_interval(8, 10) == pytest.approx(wilson_by_hand(8, 10))
    assert wilson_interval(8, 10) == pytest.approx((0.4901624, 0.9433178), abs=1e-6)
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and 0 < hi < 1
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_qa_precision_per_category_surface_with_one_rate() -> None:
    outcomes = (rows(8, 2, category="hate", surface="comment", action="remove", source="qa_sample", sample_rate=0.05)
                + rows(3, 1, category="hate", surface="chat", action="remove", source="qa_sample", sample_rate=0.05)
                + rows(5, 0, category="spam", surface="comment", action="limit", source="qa_sample",
                       sample_rate=0.05)
                # not part of QA precision: an allow (miss rate), an appeal and a report
                + rows(9, 1, category="hate", surface="comment", action="allow", source="qa_sample",
                       sample_rate=0.05)
                + rows(1, 3, category="hate", surface="comment", action="remove", source="appeal")
                + rows(0, 7, category="hate", surface="comment", action="remove", source="report"))
    table = {(r.category, r.surface): r for r in qa_precision(outcomes)}
    hc = table[("hate", "comment")]
    assert (hc.n, hc.hits, hc.weighted) == (10, 8, False)
    assert hc.estimate.value == pytest.approx(0.8)
    assert (hc.estimate.ci_low, hc.estimate.ci_high) == pytest.approx(wilson_by_hand(8, 10))
    assert hc.estimated_decisions == pytest.approx(10 / 0.05)
    hate_all = table[("hate", ALL)]
    assert (hate_all.n, hate_all.hits) == (14, 11)
    assert (hate_all.estimate.ci_low, hate_all.estimate.ci_high) == pytest.approx(wilson_by_hand(11, 14))
    overall = table[(ALL, ALL)]
    assert (overall.n, overall.hits) == (19, 16)
    assert table[(ALL, "comment")].n == 15

    report = online_metrics(outcomes)
    miss = {(r.category, r.surface): r for r in report.qa_miss_rate}
    assert (miss[("hate", "comment")].n, miss[("hate", "comment")].hits) == (10, 1)
    appeals = {(r.category, r.surface): r for r in report.appeal_overturn_rate}
    a = appeals[("hate", "comment")]
    assert (a.n, a.hits, a.estimate.value) == (4, 3, 0.75)
    assert (a.estimate.ci_low, a.estimate.ci_high) == pytest.approx(wilson_by_hand(3, 4))
    assert report.n_outcomes == len(outcomes) and report.n_unrated_qa == 0
    assert report.to_dict()["appeal_overturn_rate"][0]["estimate"]["value"] == 0.75


def test_qa_precision_weights_by_inverse_sampling_rate() -> None:
    # Version A sampled at 10%: 9 of 10 upheld. Version B sampled at 50%: 5 of 10 upheld.
    # Each A outcome stands for 10 decisions, each B outcome for 2.
    outcomes = (rows(9, 1, category="hate", surface="comment", action="remove", source="qa_sample", sample_rate=0.1)
                + rows(5, 5, category="hate", surface="comment", action="remove", source="qa_sample",
                       sample_rate=0.5))
    r = next(x for x in qa_precision(outcomes) if (x.category, x.surface) == ("hate", "comment"))
    p = (9 * 10 + 5 * 2) / (10 * 10 + 10 * 2)  # 100 / 120
    n_eff = (10 * 10 + 10 * 2) ** 2 / (10 * 100 + 10 * 4)  # 14400 / 1040
    assert r.weighted and r.estimate.value == pytest.approx(p)
    assert r.n_effective == pytest.approx(n_eff)
    assert (r.estimate.ci_low, r.estimate.ci_high) == pytest.approx(wilson_by_hand(p * n_eff, n_eff))
    assert r.estimated_decisions == pytest.approx(120)
    assert (r.n, r.hits) == (20, 14)  # raw counts stay visible


def test_empty_input_has_an_undefined_overall_row() -> None:
    report = online_metrics([])
    assert len(report.qa_precision) == 1 and report.qa_precision[0].n == 0
    assert not report.qa_precision[0].estimate.defined
