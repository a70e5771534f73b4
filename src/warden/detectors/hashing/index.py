"""Exact Hamming-distance search over 256-bit PDQ hashes.

`MultiIndexHashing` (backend `mih-numpy`) is Norouzi et al.'s multi-index hashing in numpy: each
hash is cut into 16 disjoint 16-bit chunks, and each chunk position has a table from chunk
value to the hashes holding it (a sorted permutation plus offsets, CSR style). By the
pigeonhole principle, two hashes within distance r differ in at most floor(r / 16) bits of
*some* chunk (16 chunks each differing in more would add up to more than r), so probing
every chunk value within that many bit flips of the query's finds every true match; each
candidate is then verified with a full 256-bit popcount. Results therefore equal brute
force exactly (a property test checks it), and for r = 31 (ThreatExchange's PDQ match
distance) a query probes 16 x 17 buckets and checks about N / 65536 x 272 candidates
instead of N.

`CompiledMultiIndex` (backend `mih-numba`, the default when numba is installed) runs the
same idea as a compiled loop over tables that carry 96 bits of each hash, so most candidates
are rejected without a random memory read (faster than the numpy index, for about twice its
memory; docs/hashing.md has the figures). `BruteForceIndex` is the reference (and fine for small
banks). `FaissMultiHashIndex` runs the 16 x 16-bit scheme in faiss's C++
`IndexBinaryMultiHash` when `faiss-cpu` is installed.

Indexes are immutable snapshots: a bank change builds a new one (1,000,000 hashes in a few
seconds), so readers never see a half-updated index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb
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
    """Multi-index hashing over 16 chunks of 16 bits in numpy (backend `mih-numpy`; see the
    module docstring)."""

    backend = "mih-numpy"

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


# -- compiled multi-index (numba) ------------------------------------------------------------------
#: Chunk counts the cost model chooses from (16 to 32 bits per chunk).
CHUNK_COUNTS = range(8, 17)
#: Relative costs of a bucket visit (dependent random reads), a scanned entry and a candidate,
#: set so that the model picks what was fastest when 11-16 chunks were timed at 1,000,000
#: hashes (16). They only choose the layout, never change results.
COST_BUCKET, COST_ENTRY, COST_CANDIDATE = 4.0, 0.3, 0.5


def _ball(bits: int, flips: int) -> int:
    """How many `bits`-bit values lie within `flips` bit flips of one value."""
    return sum(comb(bits, j) for j in range(max(-1, flips) + 1))


def _chunk_widths(m: int) -> list[int]:
    base, extra = divmod(CODE_BYTES * 8, m)
    return [base + 1] * extra + [base] * (m - extra)


def _prefix_bits(n: int, widths: Sequence[int]) -> int:
    """Bucket prefix bits, the same for every chunk: about 8 hashes per bucket."""
    return int(min(min(widths), max(1, round(np.log2(max(n, 1) / 8)))))


def _chunk_cost(n: int, width: int, prefix: int, flips: int) -> float:
    if flips < 0:
        return 0.0
    buckets = _ball(prefix, flips)
    return (COST_BUCKET * buckets + COST_ENTRY * buckets * n / 2**prefix
            + COST_CANDIDATE * _ball(width, flips) * n / 2**width)


def plan_flips(n: int, widths: Sequence[int], prefixes: Sequence[int], max_distance: int) -> list[int]:
    """Per-chunk flip budgets t_i with sum(t_i) >= max_distance - m + 1, cheapest first.

    Generalized pigeonhole: if every chunk of a hash differed from the query's in t_i + 1 or
    more bits, the hashes would differ in sum(t_i) + m > max_distance bits; so each match is
    within t_i bits of the query on some chunk i (t_i = -1: chunk i is not probed). Costs are
    convex in t_i, so adding one flip at a time where it costs least is optimal."""
    m = len(widths)
    flips = [-1] * m
    for _ in range(max_distance + 1):
        step = [_chunk_cost(n, widths[i], prefixes[i], flips[i] + 1) - _chunk_cost(n, widths[i], prefixes[i], flips[i])
                for i in range(m)]
        flips[int(np.argmin(step))] += 1
    return flips


def _layout_cost(n: int, m: int, max_distance: int) -> float:
    widths = _chunk_widths(m)
    prefixes = [_prefix_bits(n, widths)] * m
    flips = plan_flips(n, widths, prefixes, max_distance)
    return sum(_chunk_cost(n, w, p, t) for w, p, t in zip(widths, prefixes, flips, strict=True))


def _chunk_keys(words_be: np.ndarray, offset: int, width: int) -> np.ndarray:
    """Bits [offset, offset + width) of each hash (big-endian uint64 words) as integers."""
    a, s = divmod(offset, 64)
    if s + width <= 64:
        keys = (words_be[:, a] >> np.uint64(64 - s - width)) & np.uint64((1 << width) - 1)
    else:
        spill = s + width - 64
        keys = (((words_be[:, a] & np.uint64((1 << (64 - s)) - 1)) << np.uint64(spill))
                | (words_be[:, a + 1] >> np.uint64(64 - spill)))
    return keys.astype(np.int64)


def _numba_kernel() -> Any:
    """The compiled search loop (compiled once, then cached on disk by numba); None without numba."""
    global _KERNEL
    if _KERNEL is None:
        try:
            from warden.detectors.hashing.mih_kernel import search
        except ImportError:
            return None
        _KERNEL = search
    return _KERNEL


_KERNEL: Any = None


def numba_available() -> bool:
    """Whether the compiled index can run here (numba installed and its module importable)."""
    return _numba_kernel() is not None


class CompiledMultiIndex(HammingIndex):
    """Multi-index hashing with a generalized pigeonhole and a compiled (numba) search loop.

    The 256 bits are cut into m chunks (m from a cost model: 16 chunks of 16 bits at 10,000 to
    a few million hashes and distance 31); chunk i gets a flip budget t_i with sum(t_i) >=
    max_distance - m + 1 (see `plan_flips`), so every match is within t_i bits of the query
    on some chunk. Each chunk's table holds every hash as a 16-byte entry (its row and 96 of
    its bits) sorted by the chunk value and bucketed by the value's top p bits (about 8
    entries per bucket; p = 16 = the chunk at 1,000,000). A query visits the buckets within
    t_i flips of its prefix and scans them sequentially; the 96-bit distance is a lower bound
    of the full one, so only entries within max_distance on those bits cost a random read of
    the full hash to verify. Results equal brute force; a hash close on several chunks is
    reported once. Memory: m x 16 bytes per hash plus the hashes (279 MiB per 1,000,000 at
    m = 16; `mih-numpy` needs about half). Needs numba (`pip install numba`)."""

    backend = "mih-numba"

    def __init__(self, codes: np.ndarray | Sequence[str], ids: np.ndarray | Sequence[int] | None = None, *,
                 radius: int = DEFAULT_MAX_DISTANCE, chunks: int | None = None) -> None:
        super().__init__(codes, ids, radius=radius)
        del self._cols  # the column copy serves the numpy backends only (32 MiB per 1,000,000 hashes)
        self._kernel = _numba_kernel()
        if self._kernel is None:
            raise MissingDependency("the mih-numba index backend needs numba: pip install numba "
                                    "(or use backend='mih-numpy')")
        n = len(self)
        if n >= 2**32:
            raise ValueError("the compiled index holds at most 2**32 - 1 hashes")
        m = chunks or min(CHUNK_COUNTS, key=lambda k: _layout_cost(n, k, radius))
        self.widths = _chunk_widths(m)
        self.prefixes = [_prefix_bits(n, self.widths)] * m
        self._offsets = np.cumsum([0, *self.widths[:-1]]).tolist()
        self._words_row = np.ascontiguousarray(self._words).ravel()  # hash i is words[4i:4i+4], one cache line
        be = self._codes.view(">u8").astype(np.uint64)
        rows = np.arange(n, dtype=np.uint64)
        # Entry = (word 0, row << 32 | low half of word 1) of the hash: 16 bytes, see the kernel.
        entries = np.empty((m, n, 2), dtype=np.uint64)
        head = self._words[:, 0]
        tail = (rows << np.uint64(32)) | (self._words[:, 1] & np.uint64(0xFFFFFFFF))
        bucket_off = []
        bucket_base = []
        base = 0
        for c, (o, w, p) in enumerate(zip(self._offsets, self.widths, self.prefixes, strict=True)):
            keys = _chunk_keys(be, o, w)
            order = np.argsort(keys, kind="stable")
            entries[c, :, 0] = head[order]
            entries[c, :, 1] = tail[order]
            off = np.zeros((1 << p) + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys >> (w - p), minlength=1 << p), out=off[1:])
            bucket_off.append(off + c * n)
            bucket_base.append(base)
            base += off.size
        self._entries = entries.ravel()
        self._bucket_off = np.concatenate(bucket_off).astype(np.int32 if m * n < 2**31 else np.int64)
        self._bucket_base = np.array(bucket_base, dtype=np.int64)
        self._shifts = np.array([w - p for w, p in zip(self.widths, self.prefixes, strict=True)], dtype=np.int64)
        self._chunk_offsets = np.array(self._offsets, dtype=np.int64)
        self._chunk_widths = np.array(self.widths, dtype=np.int64)
        self._plans: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def nbytes(self) -> int:
        """Memory of the tables and hashes (what a 1,000,000-hash bank costs)."""
        return int(self._entries.nbytes + self._bucket_off.nbytes + self._codes.nbytes)

    def _plan(self, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flip budgets for this distance, and every prefix mask grouped by popcount."""
        plan = self._plans.get(max_distance)
        if plan is None:
            flips = plan_flips(len(self), self.widths, self.prefixes, max_distance)
            p = max(self.prefixes)
            values = np.arange(1 << p, dtype=np.int64)
            ones = np.bitwise_count(values)
            order = np.argsort(ones, kind="stable")
            top = max(flips)
            # Masks with at most t flips are masks[:mask_start[t + 1]] (sorted by popcount).
            mask_start = np.searchsorted(ones[order], np.arange(top + 2), side="left").astype(np.int64)
            masks = values[order]
            plan = (np.array(flips, dtype=np.int64), masks, mask_start)
            self._plans[max_distance] = plan
        return plan

    def candidate_count(self, queries: np.ndarray | Sequence[str], *, max_distance: int | None = None) -> np.ndarray:
        """Expected-cost figure per query for benchmarks: buckets visited (the same for every query)."""
        flips, _, _ = self._plan(self.radius if max_distance is None else max_distance)
        per = sum(_ball(p, int(t)) for p, t in zip(self.prefixes, flips, strict=True))
        return np.full(as_codes(queries).shape[0], per, dtype=np.int64)

    def _search(self, queries: np.ndarray, max_distance: int) -> SearchResult:
        flips, masks, mask_start = self._plan(max_distance)
        q, rows, dist = self._kernel(queries.view(">u8").astype(np.uint64), queries.view(np.uint64),
                                     self._chunk_offsets, self._chunk_widths, flips, self._shifts, masks, mask_start,
                                     self._bucket_base, self._bucket_off, self._entries, self._words_row,
                                     max_distance)
        if q.size:
            _, first = np.unique(q * len(self) + rows, return_index=True)
            q, rows, dist = q[first], rows[first], dist[first]
        return _sorted_result(q, self._ids[rows], dist)


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
    "mih-numba": CompiledMultiIndex,
    "mih-numpy": MultiIndexHashing,
    "brute": BruteForceIndex,
    "faiss": FaissMultiHashIndex,
}


def build_index(codes: np.ndarray | Sequence[str], ids: np.ndarray | Sequence[int] | None = None, *,
                radius: int = DEFAULT_MAX_DISTANCE, backend: str = "mih") -> HammingIndex:
    """An exact index over the hashes; `backend` is mih (default: mih-numba when numba is
    installed, else mih-numpy), mih-numba, mih-numpy, brute or faiss."""
    if backend == "mih":
        backend = "mih-numba" if numba_available() else "mih-numpy"
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown index backend {backend!r}; choose one of mih, {', '.join(BACKENDS)}") from None
    return cls(codes, ids, radius=radius)


__all__ = [
    "BACKENDS",
    "BruteForceIndex",
    "CompiledMultiIndex",
    "FaissMultiHashIndex",
    "HammingIndex",
    "IndexMatch",
    "MultiIndexHashing",
    "SearchResult",
    "as_codes",
    "build_index",
    "numba_available",
    "plan_flips",
]
