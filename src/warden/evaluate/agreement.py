"""Agreement between label sources, and whether quoted rationales exist in the content.

Why: a golden set is only as good as the agreement of the people (or the LLM judge) who
made it. Kappa and alpha are reported per category with each source's prevalence beside
them, because chance-corrected agreement swings with prevalence (two raters who both say
"no" 99% of the time can agree 98% and still have a kappa near 0): the figure cannot be
read without the base rate. Categories where agreement is undefined (a single value
observed, fewer than two pairable ratings) are UNMEASURED, never 0 or 1.

Bootstrap intervals resample items (units) with replacement, vectorized: the per-item
contribution to the contingency table (kappa) or the coincidence matrix (alpha) is a fixed
matrix, so a block of resamples is one matrix product of counts and contributions.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from warden.evaluate.metrics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOTSTRAP,
    Estimate,
    Status,
    _jsonable,
    percentile_interval,
    stratified_bootstrap_weights,
)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v))


def _codes(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, int]:
    """Integer codes (-1 = missing) for a raters x units table of hashable labels."""
    values: dict[Any, int] = {}
    out = np.full((len(rows), len(rows[0]) if rows else 0), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        for u, v in enumerate(row):
            if not _missing(v):
                key = v.item() if isinstance(v, np.generic) else v
                out[r, u] = values.setdefault(key, len(values))
    return out, len(values)


# -- Cohen's kappa -----------------------------------------------------------------------------

def _kappa_from_tables(tables: np.ndarray) -> np.ndarray:
    """Kappa for a stack of (k x k) contingency tables, shape (b, k, k); NaN when undefined."""
    total = tables.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        po = np.trace(tables, axis1=1, axis2=2) / total
        pe = (tables.sum(axis=2) * tables.sum(axis=1)).sum(axis=1) / total**2
        kappa = (po - pe) / (1.0 - pe)
    return np.where((total > 0) & (pe < 1.0 - 1e-12), kappa, np.nan)


def _pair_onehot(rater_a: Sequence[Any], rater_b: Sequence[Any]) -> tuple[np.ndarray, int]:
    if len(rater_a) != len(rater_b):
        raise ValueError(f"both raters must label the same items: {len(rater_a)} != {len(rater_b)}")
    codes, k = _codes([list(rater_a), list(rater_b)])
    both = (codes[0] >= 0) & (codes[1] >= 0)
    onehot = np.zeros((len(rater_a), max(k, 1) ** 2))
    rows = np.flatnonzero(both)
    onehot[rows, codes[0, rows] * k + codes[1, rows]] = 1.0
    return onehot, k


def cohen_kappa_score(rater_a: Sequence[Any], rater_b: Sequence[Any]) -> float:
    """Cohen's kappa on nominal labels (= sklearn.metrics.cohen_kappa_score), over the items
    both raters labeled (None/NaN = not labeled). NaN when chance agreement is 1."""
    onehot, k = _pair_onehot(rater_a, rater_b)
    if k == 0:
        return float("nan")
    return float(_kappa_from_tables(onehot.sum(axis=0).reshape(1, k, k))[0])


# -- Krippendorff's alpha (nominal) ------------------------------------------------------------

def _coincidences(codes: np.ndarray, k: int) -> np.ndarray:
    """Per unit, its contribution to the coincidence matrix, flattened: shape (units, k*k).

    Unit u with m_u >= 2 pairable values and n_uc values of category c adds
    n_uc * (n_uk - [c == k]) / (m_u - 1) to o_ck (Krippendorff 2011, "Computing
    Krippendorff's alpha-reliability"). Units with fewer than 2 values add nothing.
    """
    units = codes.shape[1]
    counts = np.zeros((units, k))
    for r in range(codes.shape[0]):
        ok = codes[r] >= 0
        np.add.at(counts, (np.flatnonzero(ok), codes[r, ok]), 1.0)
    m = counts.sum(axis=1)
    pairable = m >= 2
    contrib = counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(k)[None]
    contrib[pairable] /= (m[pairable] - 1.0)[:, None, None]
    contrib[~pairable] = 0.0
    return contrib.reshape(units, k * k)


def _alpha_from_coincidences(o: np.ndarray, k: int) -> np.ndarray:
    """Nominal alpha = 1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k, per row of o."""
    o = o.reshape(-1, k, k)
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    off = 1.0 - np.eye(k)
    observed = (o * off).sum(axis=(1, 2))
    expected = (n_c[:, :, None] * n_c[:, None, :] * off).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - (n - 1.0) * observed / expected
    return np.where(expected > 0, alpha, np.nan)


def krippendorff_alpha_nominal(reliability_data: Sequence[Sequence[Any]]) -> float:
    """Krippendorff's alpha for nominal data: rows are raters (any number), columns are units;
    None/NaN marks a missing rating. Units with fewer than two ratings are not pairable and
    are ignored. NaN when only one value occurs (no disagreement is possible to expect)."""
    codes, k = _codes([list(r) for r in reliability_data])
    if k == 0:
        return float("nan")
    return float(_alpha_from_coincidences(_coincidences(codes, k).sum(axis=0), k)[0])


# -- per category, with intervals --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AgreementReport:
    """Agreement for one category between label sources over the items they share.

    `kappa` is Cohen's kappa (only for exactly two sources), `alpha` Krippendorff's nominal
    alpha (any number of sources, missing allowed). `prevalence` is each source's share of
    positive labels on the items it labeled - read the figures against it.
    """

    category: str
    status: Status
    sources: tuple[str, ...]
    n_items: int  # items labeled by at least two sources
    prevalence: dict[str, float]
    observed_agreement: float | None = None
    kappa: Estimate | None = None
    alpha: Estimate | None = None
    reason: str | None = None
    n_bootstrap: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def agreement(sources: Mapping[str, Mapping[str, Sequence[Any]]], *, categories: Sequence[str] | None = None,
              n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
              random_state: int | None = 0) -> dict[str, AgreementReport]:
    """Agreement per category between label sources (e.g. {"judge": {...}, "golden": {...}}).

    `sources[name][category]` is a label per item, aligned across sources (same items, same
    order); None/NaN = that source did not label the item for that category. Labels are
    nominal (0/1 or any hashable values).
    """
    names = tuple(sources)
    if len(names) < 2:
        raise ValueError(f"agreement needs at least two label sources, got {list(names)}")
    cats = categories if categories is not None else sorted({c for s in sources.values() for c in s})
    out: dict[str, AgreementReport] = {}
    for cat in cats:
        present = tuple(n for n in names if cat in sources[n])
        if len(present) < 2:
            out[cat] = AgreementReport(cat, Status.UNMEASURED, present, 0, {},
                                       reason="fewer than two sources label this category")
            continue
        columns = [list(sources[n][cat]) for n in present]
        if len({len(c) for c in columns}) != 1:
            raise ValueError(f"{cat}: sources label different numbers of items: "
                             f"{ {n: len(c) for n, c in zip(present, columns, strict=True)} }")
        out[cat] = _category_agreement(cat, present, columns, n_bootstrap=n_bootstrap, confidence=confidence,
                                       random_state=random_state)
    return out


def _prevalence(column: Sequence[Any]) -> float:
    known = [float(v) for v in column if not _missing(v)]
    return sum(known) / len(known) if known else float("nan")


def _category_agreement(cat: str, names: tuple[str, ...], columns: list[list[Any]], *, n_bootstrap: int,
                        confidence: float, random_state: int | None) -> AgreementReport:
    codes, k = _codes(columns)
    try:
        prevalence = {n: _prevalence(c) for n, c in zip(names, columns, strict=True)}
    except (TypeError, ValueError):  # non-numeric nominal labels: prevalence is not one number
        prevalence = {}
    shared = np.flatnonzero((codes >= 0).sum(axis=0) >= 2)
    if len(shared) == 0 or k < 2:
        why = "no item labeled by two sources" if len(shared) == 0 else "only one label value observed"
        return AgreementReport(cat, Status.UNMEASURED, names, len(shared), prevalence, reason=why)
    codes = codes[:, shared]
    contrib = _coincidences(codes, k)
    alpha0 = float(_alpha_from_coincidences(contrib.sum(axis=0), k)[0])
    pair = None
    if len(names) == 2:
        both = (codes[0] >= 0) & (codes[1] >= 0)
        pair = np.zeros((codes.shape[1], k * k))
        pair[np.flatnonzero(both), codes[0, both] * k + codes[1, both]] = 1.0
    kappa0 = float(_kappa_from_tables(pair.sum(axis=0).reshape(1, k, k))[0]) if pair is not None else None
    observed = float(np.trace(pair.sum(axis=0).reshape(k, k)) / pair.sum()) if pair is not None else None
    if math.isnan(alpha0):
        return AgreementReport(cat, Status.UNMEASURED, names, len(shared), prevalence, observed,
                               reason="agreement undefined (no disagreement expected by chance)")
    alphas, kappas = [], []
    if n_bootstrap > 0:
        for w in stratified_bootstrap_weights(np.zeros(len(shared)), n_bootstrap=n_bootstrap,
                                              random_state=random_state):
            alphas.append(_alpha_from_coincidences(w @ contrib, k))
            if pair is not None:
                kappas.append(_kappa_from_tables((w @ pair).reshape(-1, k, k)))

    def est(value: float, samples: list[np.ndarray]) -> Estimate:
        if not samples:
            return Estimate(value, float("nan"), float("nan"))
        lo, hi = percentile_interval(np.concatenate(samples), confidence=confidence)
        return Estimate(value, lo, hi)

    return AgreementReport(cat, Status.MEASURED, names, len(shared), prevalence, observed,
                           kappa=est(kappa0, kappas) if kappa0 is not None else None,
                           alpha=est(alpha0, alphas), n_bootstrap=n_bootstrap)


# -- rationale check ---------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The second-level match: Unicode NFKC, whitespace runs collapsed to one space, trimmed,
    case-folded. Catches a judge that re-spaced or re-cased a real quote, nothing more (no
    fuzzy matching: a paraphrase is not a quote)."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


@dataclass(frozen=True, slots=True)
class QuoteMiss:
    item: int
    quote: str
    found_normalized: bool  # True: not verbatim, but present after normalization


@dataclass(frozen=True, slots=True)
class HallucinationReport:
    """Share of quoted spans that do not occur in their content.

    `exact_rate`: not found verbatim (strict; what a UI highlighting spans needs).
    `normalized_rate`: not found even after `normalize_text` on both sides (the judge
    invented text). Rates are per quote; `items_with_hallucination` counts items with at
    least one quote missing at the normalized level. Empty quotes are skipped and counted.
    """

    n_items: int
    n_quotes: int
    n_empty_skipped: int
    exact_missing: int
    normalized_missing: int
    exact_rate: float
    normalized_rate: float
    items_with_hallucination: int
    misses: tuple[QuoteMiss, ...]


def rationale_hallucination_rate(quotes: Sequence[Sequence[str] | str | None],
                                 contents: Sequence[str]) -> HallucinationReport:
    """Check that every span a judge or model quotes exists in the content it judged.

    `quotes[i]` is the list of quoted spans for `contents[i]` (a single string or None are
    accepted). Rates are NaN when there are no quotes to check.
    """
    if len(quotes) != len(contents):
        raise ValueError(f"quotes and contents must align: {len(quotes)} != {len(contents)}")
    n_quotes = empty = exact_missing = norm_missing = 0
    bad_items: set[int] = set()
    misses: list[QuoteMiss] = []
    for i, (qs, content) in enumerate(zip(quotes, contents, strict=True)):
        if qs is None:
            continue
        spans = [qs] if isinstance(qs, str) else list(qs)
        norm_content: str | None = None
        for q in spans:
            if not q or not q.strip():
                empty += 1
                continue
            n_quotes += 1
            if q in content:
                continue
            exact_missing += 1
            if norm_content is None:
                norm_content = normalize_text(content)
            found = normalize_text(q) in norm_content
            if not found:
                norm_missing += 1
                bad_items.add(i)
            misses.append(QuoteMiss(item=i, quote=q, found_normalized=found))

    def rate(k: int) -> float:
        return k / n_quotes if n_quotes else float("nan")

    return HallucinationReport(n_items=len(contents), n_quotes=n_quotes, n_empty_skipped=empty,
                               exact_missing=exact_missing, normalized_missing=norm_missing,
                               exact_rate=rate(exact_missing), normalized_rate=rate(norm_missing),
                               items_with_hallucination=len(bad_items), misses=tuple(misses))
