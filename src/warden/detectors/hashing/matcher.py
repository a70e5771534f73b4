"""Match hashes against banks, and turn matches into a decision.

`BankMatcher` is an immutable in-memory snapshot of some banks: their PDQ hashes in an
exact Hamming index and their MD5s in a dict. A PDQ query is usually the 8 dihedral hashes
of an image (`pdq.compute_dihedral`), searched in one batch; an entry matched by several
variants is reported once, with its closest variant.

A match means what its bank says: the bank's category (score 1.0 in the detector), the
bank's action and whether the bank's matches must be reported. `HashDecision` combines
several matches: the most severe action wins, `report` if any matched bank reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warden.core.policy import Action
from warden.detectors.hashing.banks import PDQ_SIGNAL_TYPES, Bank, BankEntry
from warden.detectors.hashing.index import HammingIndex, build_index
from warden.detectors.hashing.md5 import validate_md5_hex
from warden.detectors.hashing.pdq import (
    DEFAULT_MAX_DISTANCE,
    DIHEDRAL_VARIANTS,
    DihedralHashes,
    codes_to_hex,
    hex_to_codes,
)


@dataclass(frozen=True, slots=True)
class HashMatch:
    """One banked hash matched by a query. `variant` is the dihedral variant of the *query*
    that matched (e.g. `rotate90`: the query image, rotated 90 degrees, matches the banked
    hash); None for MD5 and for single-hash queries."""

    bank: str
    category: str
    action: Action
    report: bool
    entry_id: int
    signal_type: str
    signal: str
    distance: int
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bank": self.bank, "category": self.category, "action": self.action.value, "report": self.report,
                "hash_id": self.entry_id, "signal_type": self.signal_type, "signal": self.signal,
                "distance": self.distance, "variant": self.variant}


@dataclass(frozen=True, slots=True)
class HashDecision:
    """What a set of matches calls for: the matched banks' categories, the most severe of
    their actions (`allow` without a match) and whether any of them reports."""

    matched: bool
    categories: tuple[str, ...]
    action: Action
    report: bool
    matches: tuple[HashMatch, ...]

    @classmethod
    def from_matches(cls, matches: Iterable[HashMatch]) -> HashDecision:
        found = tuple(sorted(matches, key=lambda m: (m.distance, m.bank, m.entry_id)))
        action = Action.ALLOW
        for m in found:
            if m.action.rank > action.rank:
                action = m.action
        return cls(matched=bool(found), categories=tuple(sorted({m.category for m in found})), action=action,
                   report=any(m.report for m in found), matches=found)

    def to_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "categories": list(self.categories), "action": self.action.value,
                "report": self.report, "matches": [m.to_dict() for m in self.matches]}


@dataclass(frozen=True, slots=True)
class FrameMatch:
    """A sampled frame of a query video (its index in the query) matching a banked image hash."""

    frame: int
    match: HashMatch


@dataclass(frozen=True, slots=True)
class VideoMatch:
    """A query video matching a banked video (vPDQ): the shares of matching frames both ways.
    `entry_id` is the banked frame row closest to a query frame; `frames` the query frames
    (indices) that matched one of the banked video's frames."""

    bank: str
    category: str
    action: Action
    report: bool
    content_id: str
    entry_id: int
    query_match_pct: float
    compared_match_pct: float
    frames: tuple[int, ...]
    min_distance: int

    def to_dict(self) -> dict[str, Any]:
        return {"bank": self.bank, "category": self.category, "action": self.action.value, "report": self.report,
                "content_id": self.content_id, "hash_id": self.entry_id, "signal_type": "vpdq",
                "query_match_pct": self.query_match_pct, "compared_match_pct": self.compared_match_pct,
                "matched_frames": len(self.frames), "distance": self.min_distance}


@dataclass(frozen=True, slots=True)
class VideoLookup:
    frame_matches: tuple[FrameMatch, ...]
    video_matches: tuple[VideoMatch, ...]


class BankMatcher:
    """An immutable snapshot of banks for lookups (build a new one when banks change)."""

    def __init__(self, banks: Sequence[Bank], *, pdq_codes: np.ndarray, pdq_entry_ids: np.ndarray,
                 pdq_bank_index: np.ndarray, md5: Mapping[str, Sequence[tuple[int, int]]],
                 radius: int = DEFAULT_MAX_DISTANCE, backend: str = "mih",
                 pdq_video: np.ndarray | None = None, videos: Sequence[str] = ()) -> None:
        """`pdq_bank_index[i]` is the position in `banks` of PDQ row i; `md5` maps a hash to its
        (entry id, bank position) pairs. `pdq_video[i]` is -1 for an image hash, else the
        position in `videos` (content ids) of the banked video whose frame row i is."""
        self.banks: tuple[Bank, ...] = tuple(banks)
        self._pdq_entry_ids = np.asarray(pdq_entry_ids, dtype=np.int64)
        self._pdq_bank = np.asarray(pdq_bank_index, dtype=np.int32)
        self._pdq_codes = np.asarray(pdq_codes, dtype=np.uint8).reshape(-1, 32)
        self._pdq_video = (np.full(len(self._pdq_entry_ids), -1, dtype=np.int32) if pdq_video is None
                           else np.asarray(pdq_video, dtype=np.int32))
        self.videos: tuple[str, ...] = tuple(videos)
        if not (len(self._pdq_codes) == len(self._pdq_entry_ids) == len(self._pdq_bank) == len(self._pdq_video)):
            raise ValueError("pdq_codes, pdq_entry_ids, pdq_bank_index and pdq_video must have the same length")
        # Frames per banked video (bank position, video position) -> rows, for vPDQ percentages.
        self._video_rows: dict[tuple[int, int], int] = {}
        for b, v in zip(self._pdq_bank.tolist(), self._pdq_video.tolist(), strict=True):
            if v >= 0:
                self._video_rows[(b, v)] = self._video_rows.get((b, v), 0) + 1
        self.index: HammingIndex = build_index(self._pdq_codes, radius=radius, backend=backend)
        self._md5 = {k: tuple(v) for k, v in md5.items()}
        self.radius = radius

    @classmethod
    def from_entries(cls, banks: Mapping[Bank, Iterable[BankEntry]], *, radius: int = DEFAULT_MAX_DISTANCE,
                     backend: str = "mih") -> BankMatcher:
        """From banks and their entries (entries without an id are numbered by position)."""
        bank_list = list(banks)
        pdq_hex: list[str] = []
        pdq_ids: list[int] = []
        pdq_bank: list[int] = []
        pdq_video: list[int] = []
        videos: dict[str, int] = {}
        md5: dict[str, list[tuple[int, int]]] = {}
        n = 0
        for b, entries in banks.items():
            pos = bank_list.index(b)
            for e in entries:
                entry_id = e.id if e.id is not None else n
                n += 1
                if e.signal_type in PDQ_SIGNAL_TYPES:
                    pdq_hex.append(e.signal)
                    pdq_ids.append(entry_id)
                    pdq_bank.append(pos)
                    pdq_video.append(videos.setdefault(str(e.content_id), len(videos))
                                     if e.signal_type == "vpdq" else -1)
                else:
                    md5.setdefault(e.signal, []).append((entry_id, pos))
        return cls(bank_list, pdq_codes=hex_to_codes(pdq_hex), pdq_entry_ids=np.array(pdq_ids, dtype=np.int64),
                   pdq_bank_index=np.array(pdq_bank, dtype=np.int32), md5=md5, radius=radius, backend=backend,
                   pdq_video=np.array(pdq_video, dtype=np.int32), videos=list(videos))

    def __len__(self) -> int:
        return len(self._pdq_entry_ids) + sum(len(v) for v in self._md5.values())

    @property
    def pdq_count(self) -> int:
        return len(self._pdq_entry_ids)

    def _allowed(self, banks: Collection[str] | None) -> set[int]:
        return {i for i, b in enumerate(self.banks) if b.enabled and (banks is None or b.name in banks)}

    def match_pdq(self, hashes: DihedralHashes | Sequence[str] | str, *, max_distance: int | None = None,
                  banks: Collection[str] | None = None) -> list[HashMatch]:
        """Banked PDQ hashes within `max_distance` (default: the index radius, 31) of any query hash."""
        if isinstance(hashes, DihedralHashes):
            queries, names = list(hashes.hashes), list(DIHEDRAL_VARIANTS)
        elif isinstance(hashes, str):
            queries, names = [hashes], [None]
        else:
            queries = list(hashes)
            names = list(DIHEDRAL_VARIANTS) if len(queries) == len(DIHEDRAL_VARIANTS) else [None] * len(queries)
        allowed = self._allowed(banks)
        if not queries or not allowed or self.pdq_count == 0:
            return []
        result = self.index.search(hex_to_codes(queries), max_distance=max_distance)
        best: dict[int, tuple[int, int]] = {}  # row -> (distance, query position)
        for q, row, d in zip(result.query.tolist(), result.entry.tolist(), result.distance.tolist(), strict=True):
            if int(self._pdq_bank[row]) not in allowed:
                continue
            if row not in best or (d, q) < best[row]:
                best[row] = (d, q)
        if not best:
            return []
        rows = sorted(best)
        signals = codes_to_hex(self._pdq_codes[rows])
        out = []
        for row, signal in zip(rows, signals, strict=True):
            d, q = best[row]
            b = self.banks[int(self._pdq_bank[row])]
            out.append(HashMatch(bank=b.name, category=b.category, action=b.action, report=b.report,
                                 entry_id=int(self._pdq_entry_ids[row]),
                                 signal_type="vpdq" if self._pdq_video[row] >= 0 else "pdq", signal=signal,
                                 distance=int(d), variant=names[q]))
        return sorted(out, key=lambda m: (m.distance, m.bank, m.entry_id))

    def match_video(self, frames: Sequence[str], *, max_distance: int | None = None,
                    banks: Collection[str] | None = None, query_match_pct: float = 80.0,
                    compared_match_pct: float = 0.0) -> VideoLookup:
        """vPDQ-style matching of a video's sampled frame hashes (quality-filtered by the caller).

        Each frame is looked up once. A frame within `max_distance` of a banked *image* hash is
        a frame match (a frame equal to a banned image). For each banked *video* (its `vpdq`
        rows), `query_match_pct` is the share of the query's frames with a match among that
        video's frames and `compared_match_pct` the share of its frames matched by a query
        frame; the video matches when both reach the thresholds (vPDQ's defaults: 80 and 0)."""
        allowed = self._allowed(banks)
        if not frames or not allowed or self.pdq_count == 0:
            return VideoLookup(frame_matches=(), video_matches=())
        result = self.index.search(hex_to_codes(list(frames)), max_distance=max_distance)
        image_best: dict[tuple[int, int], int] = {}  # (frame, row) -> distance
        query_hits: dict[tuple[int, int], set[int]] = {}  # (bank, video) -> query frames matched
        entry_hits: dict[tuple[int, int], set[int]] = {}  # (bank, video) -> banked rows matched
        best_row: dict[tuple[int, int], tuple[int, int]] = {}  # (bank, video) -> (distance, row)
        for q, row, d in zip(result.query.tolist(), result.entry.tolist(), result.distance.tolist(), strict=True):
            bank = int(self._pdq_bank[row])
            if bank not in allowed:
                continue
            video = int(self._pdq_video[row])
            if video < 0:
                image_best[(q, row)] = int(d)
                continue
            key = (bank, video)
            query_hits.setdefault(key, set()).add(q)
            entry_hits.setdefault(key, set()).add(row)
            if key not in best_row or (int(d), row) < best_row[key]:
                best_row[key] = (int(d), row)
        frame_matches = []
        rows = sorted({row for _, row in image_best})
        signals = dict(zip(rows, codes_to_hex(self._pdq_codes[rows]), strict=True)) if rows else {}
        for (q, row), d in sorted(image_best.items()):
            b = self.banks[int(self._pdq_bank[row])]
            frame_matches.append(FrameMatch(frame=q, match=HashMatch(
                bank=b.name, category=b.category, action=b.action, report=b.report,
                entry_id=int(self._pdq_entry_ids[row]), signal_type="pdq", signal=signals[row], distance=d)))
        video_matches = []
        for key, hits in sorted(query_hits.items()):
            bank_pos, video = key
            q_pct = 100.0 * len(hits) / len(frames)
            c_pct = 100.0 * len(entry_hits[key]) / self._video_rows[key]
            if q_pct < query_match_pct or c_pct < compared_match_pct:
                continue
            b = self.banks[bank_pos]
            d, row = best_row[key]
            video_matches.append(VideoMatch(
                bank=b.name, category=b.category, action=b.action, report=b.report, content_id=self.videos[video],
                entry_id=int(self._pdq_entry_ids[row]), query_match_pct=round(q_pct, 2),
                compared_match_pct=round(c_pct, 2), frames=tuple(sorted(hits)), min_distance=d))
        return VideoLookup(frame_matches=tuple(frame_matches), video_matches=tuple(video_matches))

    def match_md5(self, md5: str, *, banks: Collection[str] | None = None) -> list[HashMatch]:
        signal = validate_md5_hex(md5)
        allowed = self._allowed(banks)
        out = []
        for entry_id, pos in self._md5.get(signal, ()):
            if pos in allowed:
                b = self.banks[pos]
                out.append(HashMatch(bank=b.name, category=b.category, action=b.action, report=b.report,
                                     entry_id=entry_id, signal_type="md5", signal=signal, distance=0))
        return sorted(out, key=lambda m: (m.bank, m.entry_id))




class MatcherCache:
    """Holds the current `BankMatcher` and rebuilds it when the banks change.

    `fingerprint()` is a cheap read (bank ids and versions) checked at most every
    `refresh_seconds`; `load()` builds a matcher and returns the fingerprint it was read at.
    Lookups keep using the previous matcher while a rebuild runs in the calling thread
    (one rebuild at a time), so a bank change never makes lookups fail.
    """

    def __init__(self, *, load: Callable[[], tuple[BankMatcher, Hashable]], fingerprint: Callable[[], Hashable],
                 refresh_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._fingerprint = fingerprint
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._matcher: BankMatcher | None = None
        self._fp: Hashable = None
        self._checked = float("-inf")
        self.rebuilds = 0

    def invalidate(self) -> None:
        """Check the fingerprint on the next `get()` (after a change made by this process)."""
        self._checked = float("-inf")

    def get(self) -> BankMatcher:
        now = self._clock()
        if self._matcher is not None and now - self._checked < self.refresh_seconds:
            return self._matcher
        with self._lock:
            if self._matcher is not None and self._clock() - self._checked < self.refresh_seconds:
                return self._matcher
            if self._matcher is None or self._fingerprint() != self._fp:
                self._matcher, self._fp = self._load()
                self.rebuilds += 1
            self._checked = self._clock()
            return self._matcher


__all__ = ["BankMatcher", "FrameMatch", "HashDecision", "HashMatch", "MatcherCache", "VideoLookup", "VideoMatch"]
