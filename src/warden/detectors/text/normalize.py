"""Text normalization shared by all text detectors (placeholder: being extended)."""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u034f\u180e]")
_REPEATS = re.compile(r"(.)\1{3,}")
_SPACES = re.compile(r"\s+")


def normalize_for_model(text: str) -> str:
    """Light normalization for ML models: NFKC, invisible characters removed, runs of a
    repeated character capped at three, whitespace collapsed. No leetspeak mapping: digits
    carry meaning for models (prices, phone numbers in spam)."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _REPEATS.sub(r"\1\1\1", text)
    return _SPACES.sub(" ", text).strip()
