"""Deterministic train / calibration / test assignment by content hash.

A row's split depends only on its (normalized, case-folded) text and the split seed, never on
which other rows are loaded. So training, evaluation manifests, release gates and benchmarks
all agree on which rows are held out without sharing state, exact duplicates always land in
the same split (no leakage through reposts), and adding a dataset never reshuffles another.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from warden.detectors.text.normalize import normalize_for_model

SPLIT_SEED = "warden-split-v1"
FRACTIONS = (0.70, 0.15, 0.15)  # train, calibration, test


class Split(StrEnum):
    TRAIN = "train"
    CALIBRATION = "calibration"
    TEST = "test"


def split_key(text: str) -> str:
    return normalize_for_model(text).casefold()


def assign_split(text: str, *, seed: str = SPLIT_SEED) -> Split:
    digest = hashlib.sha256(f"{seed}\x1f{split_key(text)}".encode("utf-8", "surrogatepass")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < FRACTIONS[0]:
        return Split.TRAIN
    if u < FRACTIONS[0] + FRACTIONS[1]:
        return Split.CALIBRATION
    return Split.TEST
