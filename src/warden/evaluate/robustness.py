"""Robustness: how much recall survives the obfuscations people use to slip past filters.

Each perturbation is a pure function ``(text, rng: random.Random) -> text``: the same text and
seed give the same output, so a report is reproducible. They are the inverse of
`warden.detectors.text.normalize.normalize`: leetspeak, homoglyphs, spacing, zero-width
characters and casing are undone by its matching skeleton (keyword banks see through them);
typos and emoji padding are not (no normalizer can undo an arbitrary typo), and ML models see
`normalize_for_model` output, which undoes only zero-width characters and NFKC forms, so the
model's recall under each perturbation is the figure that matters.

`robustness_report(score_fn, texts, labels, threshold=...)` scores the clean texts and each
perturbed copy, and reports per perturbation: recall on the positives before and after and the
drop (before - after) with a paired bootstrap interval (the same resample of positives for
both), and the FPR on the negatives before/after and its change, also paired.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from warden.evaluate.metrics import DEFAULT_CONFIDENCE, DEFAULT_N_BOOTSTRAP, Estimate, _jsonable, percentile_interval

Perturbation = Callable[[str, random.Random], str]

_WORD = re.compile(r"[^\W\d_]+")

# leet: only substitutions `normalize` maps back (digits inside tokens with a letter; '@' and
# '$' when a letter follows in the token)
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "b": "8", "g": "9"}
_LEET_SYM = {"a": "@", "s": "$"}
# Cyrillic / Greek look-alikes that normalize maps back to Latin
_HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "i": "і", "j": "ј", "o": "о", "p": "р", "s": "ѕ", "x": "х",
               "y": "у", "k": "κ", "n": "п", "h": "һ", "d": "ԁ", "l": "ӏ", "A": "Α", "B": "Β", "E": "Ε",
               "H": "Η", "I": "Ι", "K": "Κ", "M": "Μ", "O": "Ο", "P": "Ρ", "T": "Τ", "X": "Χ", "Z": "Ζ"}
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_EMOJI = ("😂", "🔥", "💯", "🙏", "😎", "✨", "👀", "🤣", "❤️", "👍")
_QWERTY = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbours() -> dict[str, str]:
    pos = {ch: (r, c) for r, row in enumerate(_QWERTY) for c, ch in enumerate(row)}
    out = {}
    for ch, (r, c) in pos.items():
        out[ch] = "".join(o for o, (r2, c2) in pos.items() if o != ch and abs(r2 - r) <= 1 and abs(c2 - c) <= 1)
    return out


_ADJACENT = _neighbours()


def leetspeak(text: str, rng: random.Random, *, rate: float = 0.5) -> str:
    """Replace letters by digits/symbols inside words, keeping at least one letter per word
    (so `normalize` still recognizes the token as a word and maps it back)."""
    def word(mt: re.Match[str]) -> str:
        w = mt.group(0)
        chars = list(w)
        cand = [i for i, ch in enumerate(chars) if ch.lower() in _LEET]
        rng.shuffle(cand)
        keep_letter = len(cand) == len(chars)
        for n, i in enumerate(cand):
            if keep_letter and n == len(cand) - 1:
                break
            if rng.random() < rate:
                low = chars[i].lower()
                sym = _LEET_SYM.get(low)
                chars[i] = sym if sym and i < len(chars) - 1 and rng.random() < 0.3 else _LEET[low]
        return "".join(chars)
    return _WORD.sub(word, text)


def homoglyphs(text: str, rng: random.Random, *, rate: float = 0.5) -> str:
    return "".join(_HOMOGLYPHS[ch] if ch in _HOMOGLYPHS and rng.random() < rate else ch for ch in text)


def spacing(text: str, rng: random.Random, *, rate: float = 0.5) -> str:
    """Space out words of 3+ letters ("kill" -> "k i l l"). A word is spaced only when its
    neighbours are neither spaced nor one character long, so `normalize` rejoins each spaced
    word without merging it with its neighbours."""
    words = text.split(" ")
    spaced = [False] * len(words)
    for i, w in enumerate(words):
        prev_ok = i == 0 or (len(words[i - 1]) >= 2 and not spaced[i - 1])
        next_ok = i == len(words) - 1 or len(words[i + 1]) >= 2
        if len(w) >= 3 and w.isalpha() and prev_ok and next_ok and rng.random() < rate:
            spaced[i] = True
    return " ".join(" ".join(w) if sp else w for w, sp in zip(words, spaced, strict=True))


def zero_width(text: str, rng: random.Random, *, rate: float = 0.5) -> str:
    """Insert invisible characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM) inside words."""
    out = []
    for i, ch in enumerate(text):
        out.append(ch)
        if ch.isalpha() and i + 1 < len(text) and text[i + 1].isalpha() and rng.random() < rate:
            out.append(rng.choice(_ZERO_WIDTH))
    return "".join(out)


def typos(text: str, rng: random.Random, *, rate: float = 0.15) -> str:
    """Per letter, with probability `rate`: an adjacent-key substitution, a deletion or a swap with
    the next letter."""
    chars = list(text)
    out: list[str] = []
    i = 0
    while i < len(chars):
        ch = chars[i]
        if ch.isalpha() and ch.lower() in _ADJACENT and rng.random() < rate:
            op = rng.randrange(3)
            if op == 0:
                sub = rng.choice(_ADJACENT[ch.lower()])
                out.append(sub.upper() if ch.isupper() else sub)
            elif op == 1:
                pass  # deletion
            elif i + 1 < len(chars) and chars[i + 1].isalpha():
                out.extend((chars[i + 1], ch))
                i += 1
            else:
                out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def random_case(text: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def upper_case(text: str, rng: random.Random) -> str:
    return text.upper()


def emoji_padding(text: str, rng: random.Random, *, rate: float = 0.3) -> str:
    """Emojis around the text and between words."""
    words = text.split(" ")
    out = [rng.choice(_EMOJI)]
    for w in words:
        out.append(w)
        if rng.random() < rate:
            out.append(rng.choice(_EMOJI))
    out.append(rng.choice(_EMOJI) * 2)
    return " ".join(out)


PERTURBATIONS: dict[str, Perturbation] = {
    "leetspeak": leetspeak, "homoglyphs": homoglyphs, "spacing": spacing, "zero_width": zero_width,
    "typos": typos, "random_case": random_case, "upper_case": upper_case, "emoji_padding": emoji_padding,
}
#: perturbations `normalize` claims to undo (checked by tests/evaluate/test_robustness.py)
UNDONE_BY_NORMALIZE = ("leetspeak", "homoglyphs", "spacing", "zero_width", "random_case", "upper_case")


def perturb(texts: Sequence[str], perturbation: Perturbation, *, seed: int = 0) -> list[str]:
    """Apply one perturbation to each text with its own RNG seeded by (seed, index): the output
    for one text does not depend on the others."""
    return [perturbation(t, random.Random(f"{seed}:{i}")) for i, t in enumerate(texts)]


@dataclass(frozen=True, slots=True)
class PerturbationResult:
    name: str
    changed: float  # fraction of texts the perturbation actually changed
    recall_before: Estimate
    recall_after: Estimate
    recall_drop: Estimate  # before - after (positive = worse), paired bootstrap
    fpr_before: Estimate
    fpr_after: Estimate
    fpr_change: Estimate  # after - before
    mean_score_change_positives: float


@dataclass(frozen=True, slots=True)
class RobustnessReport:
    n: int
    positives: int
    negatives: int
    threshold: float
    results: tuple[PerturbationResult, ...]
    seed: int
    n_bootstrap: int
    confidence: float = DEFAULT_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def by_name(self) -> dict[str, PerturbationResult]:
        return {r.name: r for r in self.results}


def _paired(before: np.ndarray, after: np.ndarray, draws: np.ndarray | None, confidence: float
            ) -> tuple[Estimate, Estimate, Estimate]:
    """Means of 0/1 arrays before/after and their difference (after - before), paired resamples."""
    if len(before) == 0:
        nan = Estimate(math.nan, math.nan, math.nan)
        return nan, nan, nan
    b, a = float(before.mean()), float(after.mean())
    if draws is None:
        return Estimate(b, math.nan, math.nan), Estimate(a, math.nan, math.nan), Estimate(a - b, math.nan, math.nan)
    bb, aa = before[draws].mean(axis=1), after[draws].mean(axis=1)
    return (Estimate(b, *percentile_interval(bb, confidence=confidence)),
            Estimate(a, *percentile_interval(aa, confidence=confidence)),
            Estimate(a - b, *percentile_interval(aa - bb, confidence=confidence)))


def robustness_report(score_fn: Callable[[Sequence[str]], Sequence[float] | np.ndarray], texts: Sequence[str],
                      labels: Sequence[int], *, threshold: float = 0.5,
                      perturbations: Mapping[str, Perturbation] | None = None, seed: int = 0,
                      n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE
                      ) -> RobustnessReport:
    """Recall drop and FPR change per perturbation for one category.

    `score_fn(texts) -> scores` for the category (flagged when score >= threshold); `labels`
    are 0/1. All perturbed copies are scored in one call per perturbation.
    """
    y = np.asarray(labels, dtype=int)
    if len(y) != len(texts):
        raise ValueError(f"texts and labels must have the same length, got {len(texts)} and {len(y)}")
    perturbations = dict(PERTURBATIONS if perturbations is None else perturbations)
    base = np.asarray(score_fn(list(texts)), dtype=float)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    dpos = rng.integers(0, len(pos), size=(n_bootstrap, len(pos))) if n_bootstrap and len(pos) else None
    dneg = rng.integers(0, len(neg), size=(n_bootstrap, len(neg))) if n_bootstrap and len(neg) else None
    flag0 = (base >= threshold).astype(float)
    results = []
    for name, fn in perturbations.items():
        pert = perturb(texts, fn, seed=seed)
        changed = float(np.mean([p != t for p, t in zip(pert, texts, strict=True)])) if len(texts) else math.nan
        after = np.asarray(score_fn(pert), dtype=float)
        flag1 = (after >= threshold).astype(float)
        rb, ra, rd = _paired(flag0[pos], flag1[pos], dpos, confidence)
        drop = Estimate(-rd.value, -rd.ci_high, -rd.ci_low)
        fb, fa, fc = _paired(flag0[neg], flag1[neg], dneg, confidence)
        msc = float(np.mean(after[pos] - base[pos])) if len(pos) else math.nan
        results.append(PerturbationResult(name, changed, rb, ra, drop, fb, fa, fc, msc))
    return RobustnessReport(len(y), len(pos), len(neg), threshold, tuple(results), seed, n_bootstrap, confidence)
