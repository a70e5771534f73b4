"""Exact Hamming-distance search over 256-bit PDQ hashes.

`MultiIndexHashing` (the default) is Norouzi et al.'s multi-index hashing in numpy: each
hash is cut into 16 disjoint 16-bit chunks, and each chunk position has a table from chunk
value to the hashes holding it (a sorted permutation plus offsets, CSR style). By the
pigeonhole principle, two hashes within distance r differ in at most floor(r / 16) bits of
*some* chunk (16 chunks each differing in more would add up to more than r), so probing
every chunk value within that many bit flips of the query's finds every true match; each
candidate is then verified with a full 256-bit popcount. Results therefore equal brute
force exactly (a property test checks it), and for r = 31 (ThreatExchange's PDQ match
distance) a query probes 16 x 17 buckets and checks about N / 65536 x 272 candidates
instead of N.

`BruteForceIndex` is the reference (and fine for small banks). `FaissMultiHashIndex` runs
the same scheme in faiss's C++ `IndexBinaryMultiHash` when `faiss-cpu` is installed.

Indexes are immutable snapshots: a bank change builds a new one (1,000,000 hashes in a few
seconds), so readers never see a half-updated index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from warden.detectors.hashing.pdq import DEFAULT_MAX_DISTANCE, MissingDependency, hex_to_codes

CODE_BYTES = 32
CHUNKS = 16
CHUNK_BITS = 16
#: The largest radius an index is built for (flips per chunk = radius // 16 <= 3).
MAX_RADIUS = 63
#: Queries verified together: bounds the temporary arrays (~ batch x 4,150 candidates x 32 bytes
#: at 1,000,000 hashes) while amortizing numpy's per-call overhead.
QUERY_BATCH = 64


@dataclass(frozen=True, slots=True)
class IndexMatch:
    """One hash within the distance: `query` is the query's position in the batch, `entry` the
    id the caller gave the indexed hash."""

    query: int
    entry: int
    distance: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Every match of a batch of queries as parallel arrays, sorted by (query, distance, entry)."""

    query: np.ndarray
    entry: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return int(self.query.size)

    def matches(self) -> list[IndexMatch]:
        return [IndexMatch(int(q), int(e), int(d)) for q, e, d in zip(self.query, self.entry, self.distance,
                                                                        strict=True)]

    def for_query(self, i: int) -> list[IndexMatch]:
        lo, hi = np.searchsorted(self.query, [i, i + 1])
        return [IndexMatch(i, int(e), int(d)) for e, d in zip(self.entry[lo:hi], self.distance[lo:hi], strict=True)]


def as_codes(hashes: np.ndarray | Sequence[str]) -> np.ndarray:
    """Hex strings or an (N, 32) uint8 array -> a C-contiguous (N, 32) uint8 array."""
    if isinstance(hashes, np.ndarray):
        arr = hashes
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != CODE_BYTES:
            raise ValueError(f"hash codes must be an (N, {CODE_BYTES}) uint8 array, got {arr.dtype} {arr.shape}")
        return np.ascontiguousarray(arr)
    return hex_to_codes(list(hashes))


def _empty_result() -> SearchResult:
    return SearchResult(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _sorted_result(query: np.ndarray, entry: np.ndarray, distance: np.ndarray) -> SearchResult:
    order = np.lexsort((entry, distance, query))
    return SearchResult(query[order].astype(np.int64), entry[order].astype(np.int64),
                        distance[order].astype(np.int64))


class HammingIndex(ABC):
    """Exact search: every indexed hash within `max_distance` (<= the build `radius`) of each query."""

    backend: ClassVar[str]

    def __init__(self, codes: np.ndarray | Sequence[str], ids: np.ndarray | Sequence[int] | None = None, *,
                 radius: int = DEFAULT_MAX_DISTANCE) -> None:
        if not 0 <= radius <= MAX_RADIUS:
            raise ValueError(f"radius must be between 0 and {MAX_RADIUS}, got {radius}")
        self._codes = as_codes(codes)
        n = self._codes.shape[0]
        self._ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64).ravel()
        if self._ids.size != n:
            raise ValueError(f"{n} hashes but {self._ids.size} ids")
        self.radius = radius
        self._words = self._codes.view(np.uint64)  # (N, 4): popcount does not care about byte order
        # Column-major copies: gathering and popcounting one 64-bit column at a time is several
        # times faster in numpy than reducing (M, 4) rows (sum over a 4-wide axis is slow).
        self._cols = np.ascontiguousarray(self._words.T)  # (4, N)

    def __len__(self) -> int:
        return int(self._codes.shape[0])

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def search(self, queries: np.ndarray | Sequence[str], *, max_distance: int | None = None) -> SearchResult:
        q = as_codes(queries)
        md = self.radius if max_distance is None else int(max_distance)
        if md < 0:
            raise ValueError(f"max_distance must be >= 0, got {md}")
        if md > self.radius:
            raise ValueError(f"max_distance {md} exceeds this index's exact radius {self.radius}; "
                             f"build the index with radius >= {md}")
        if q.shape[0] == 0 or len(self) == 0:
            return _empty_result()
        return self._search(q, md)

    @abstractmethod
    def _search(self, queries: np.ndarray, max_distance: int) -> SearchResult: ...


class BruteForceIndex(HammingIndex):
    """Compares each query with every hash: the reference the other indexes must equal."""

    backend = "brute"

    def _search(self, queries: np.ndarray, max_distance: int) -> SearchResult:
        qs, es, ds = [], [], []
        qwords = queries.view(np.uint64)
        for i in range(qwords.shape[0]):
            dist = np.zeros(len(self), dtype=np.int64)
            for k in range(4):
                dist += np.bitwise_count(self._cols[k] ^ qwords[i, k])
            hit = np.flatnonzero(dist <= max_distance)
            qs.append(np.full(hit.size, i, dtype=np.int64))
            es.append(self._ids[hit])
            ds.append(dist[hit])
        return _sorted_result(np.concatenate(qs), np.concatenate(es), np.concatenate(ds))


def _distances(cols: np.ndarray, rows: np.ndarray, qwords: np.ndarray, qidx: np.ndarray) -> np.ndarray:
    """Hamming distance between indexed rows `rows` and queries `qidx`, one 64-bit column at a time."""
    dist = np.zeros(rows.size, dtype=np.int64)
    single = qwords.shape[0] == 1
    for k in range(4):
        x = cols[k].take(rows)
        x ^= qwords[0, k] if single else qwords[:, k].take(qidx)
        dist += np.bitwise_count(x)
    return dist


def _flip_masks(flips: int) -> np.ndarray:
    """Every 16-bit value with at most `flips` bits set (the probes around a chunk value)."""
    values = np.arange(1 << CHUNK_BITS, dtype=np.int64)
    return values[np.bitwise_count(values) <= flips]


class MultiIndexHashing(HammingIndex):
    """Multi-index hashing over 16 chunks of 16 bits (see the module docstring)."""

    backend = "mih"

    def __init__(self, codes: np.ndarray | Sequence[str], ids: np.ndarray | Sequence[int] | None = None, *,
                 radius: int = DEFAULT_MAX_DISTANCE) -> None:
        super().__init__(codes, ids, radius=radius)
        n = len(self)
        self.flips = radius // CHUNKS
        self._masks = _flip_masks(self.flips)
        chunks = self._codes.view(">u2").astype(np.int64)  # (N, 16) chunk values
        pos_dtype = np.int32 if n * CHUNKS < 2**31 else np.int64
        orders = np.empty((CHUNKS, n), dtype=pos_dtype)
        starts = np.empty((CHUNKS, 1 << CHUNK_BITS), dtype=np.int64)
        ends = np.empty((CHUNKS, 1 << CHUNK_BITS), dtype=np.int64)
        for c in range(CHUNKS):
            col = chunks[:, c]
            orders[c] = np.argsort(col, kind="stable")
            bounds = np.zeros((1 << CHUNK_BITS) + 1, dtype=np.int64)
            np.cumsum(np.bincount(col, minlength=1 << CHUNK_BITS), out=bounds[1:])
            # Positions in the flattened (16 * N) order array.
            starts[c] = bounds[:-1] + c * n
            ends[c] = bounds[1:] + c * n
        self._orders = orders.ravel()
        self._starts = starts.ravel()
        self._ends = ends.ravel()
        self._chunk_base = (np.arange(CHUNKS, dtype=np.int64) << CHUNK_BITS)[None, :, None]

    def candidate_count(self, queries: np.ndarray | Sequence[str]) -> np.ndarray:
        """Candidates each query verifies (with repeats): the cost model, for benchmarks."""
        keys = self._probe_keys(as_codes(queries))
        return (self._ends.take(keys) - self._starts.take(keys)).sum(axis=1)

    def _probe_keys(self, queries: np.ndarray) -> np.ndarray:
        qchunks = queries.view(">u2").astype(np.int64)  # (Q, 16)
        keys = (qchunks[:, :, None] ^ self._masks[None, None, :]) + self._chunk_base
        return keys.reshape(queries.shape[0], -1)

    def _search(self, queries: np.ndarray, max_distance: int) -> SearchResult:
        parts = [self._search_batch(queries[i:i + QUERY_BATCH], max_distance, offset=i)
                 for i in range(0, queries.shape[0], QUERY_BATCH)]
        return _sorted_result(*(np.concatenate(x) for x in zip(*parts, strict=True)))

    def _search_batch(self, queries: np.ndarray, max_distance: int, *,
                      offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = self._probe_keys(queries)
        starts = self._starts.take(keys)
        lengths = self._ends.take(keys) - starts
        per_query = lengths.sum(axis=1)
        flat_len = lengths.ravel()
        total = int(flat_len.sum())
        if total == 0:
            z = np.zeros(0, np.int64)
            return z, z, z
        # Gather every bucket's slice of the order array in one vectorized step.
        seg_begin = np.cumsum(flat_len) - flat_len
        positions = np.arange(total, dtype=np.int64) + np.repeat(starts.ravel() - seg_begin, flat_len)
        rows = self._orders.take(positions).astype(np.int64)
        qidx = np.repeat(np.arange(queries.shape[0], dtype=np.int64), per_query)
        dist = _distances(self._cols, rows, queries.view(np.uint64), qidx)
        keep = dist <= max_distance
        rows, qidx, dist = rows[keep], qidx[keep], dist[keep]
        # A hash close in several chunks is found several times: keep one of each (query, row).
        _, first = np.unique(qidx * len(self) + rows, return_index=True)
        rows, qidx, dist = rows[first], qidx[first], dist[first]
        return qidx + offset, self._ids[rows], dist


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependency("the faiss index backend needs faiss-cpu: pip install faiss-cpu") from exc
    return faiss


class FaissMultiHashIndex(HammingIndex):
    """The same 16 x 16-bit multi-index scheme in faiss's C++ `IndexBinaryMultiHash`."""

    backend = "faiss"

    def __init__(self, codes: np.ndarray | Sequence[str], ids: np.ndarray | Sequence[int] | None = None, *,
                 radius: int = DEFAULT_MAX_DISTANCE) -> None:
        super().__init__(codes, ids, radius=radius)
        faiss = _faiss()
        self._index = faiss.IndexBinaryMultiHash(CODE_BYTES * 8, CHUNKS, CHUNK_BITS)
        self._index.nflip = radius // CHUNKS
        if len(self):
            self._index.add(self._codes)

    def _search(self, queries: np.ndarray, max_distance: int) -> SearchResult:
        # faiss keeps distances strictly below the radius it is given.
        lims, dist, rows = self._index.range_search(queries, max_distance + 1)
        qidx = np.repeat(np.arange(queries.shape[0], dtype=np.int64), np.diff(lims.astype(np.int64)))
        return _sorted_result(qidx, self._ids[rows.astype(np.int64)], dist.astype(np.int64))


BACKENDS: dict[str, type[HammingIndex]] = {
    "mih": MultiIndexHashing,
    "brute": BruteForceIndex,
    "faiss": FaissMultiHashIndex,
}


def build_index(codes: np.ndarray | Sequence[str], ids: np.ndarray | Sequence[int] | None = None, *,
                radius: int = DEFAULT_MAX_DISTANCE, backend: str = "mih") -> HammingIndex:
    """An exact index over the hashes; `backend` is one of mih (default), brute, faiss."""
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}") from None
    return cls(codes, ids, radius=radius)


__all__ = [
    "BACKENDS",
    "BruteForceIndex",
    "FaissMultiHashIndex",
    "HammingIndex",
    "IndexMatch",
    "MultiIndexHashing",
    "SearchResult",
    "as_codes",
    "build_index",
]
