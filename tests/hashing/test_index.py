"""The match indexes return exactly what brute force returns (random and near-duplicate hashes)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warden.detectors.hashing.index import (
    BACKENDS,
    BruteForceIndex,
    CompiledMultiIndex,
    IndexMatch,
    MultiIndexHashing,
    build_index,
    numba_available,
    plan_flips,
)
from warden.detectors.hashing.pdq import codes_to_hex, hamming, hex_to_codes

HAS_FAISS = importlib.util.find_spec("faiss") is not None
HAS_NUMBA = numba_available()
FAST = [b for b in BACKENDS if b != "brute" and (b != "faiss" or HAS_FAISS) and (b != "mih-numba" or HAS_NUMBA)]


def _triples(result) -> set[tuple[int, int, int]]:
    return set(zip(result.query.tolist(), result.entry.tolist(), result.distance.tolist(), strict=True))


def _flip(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bits = np.unpackbits(codes.copy(), axis=1)
    for i, k in enumerate(counts):
        bits[i, rng.choice(256, size=int(k), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def _bank_and_queries(seed: int, n: int, n_bases: int, spread: int) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of near-duplicates around a few bases (shared chunks stress the buckets), plus
    uniform random hashes; queries near bank hashes (0-45 flips) and random ones."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 256, size=(n_bases, 32), dtype=np.uint8)
    clustered = _flip(bases[rng.integers(0, n_bases, n)], rng.integers(0, spread + 1, n), rng)
    uniform = rng.integers(0, 256, size=(n // 2, 32), dtype=np.uint8)
    bank = np.concatenate([clustered, uniform, clustered[: n // 10]])  # exact duplicates too
    picks = bank[rng.integers(0, len(bank), 40)]
    queries = np.concatenate([_flip(picks, rng.integers(0, 46, len(picks)), rng),
                              rng.integers(0, 256, size=(10, 32), dtype=np.uint8)])
    return bank, queries


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), n_bases=st.integers(1, 12),
       spread=st.integers(0, 40), radius=st.sampled_from([0, 7, 15, 16, 31, 32, 47, 63]),
       data=st.data())
def test_indexes_equal_brute_force(seed: int, n: int, n_bases: int, spread: int, radius: int, data) -> None:
    bank, queries = _bank_and_queries(seed, n, n_bases, spread)
    ids = np.random.default_rng(seed).permutation(len(bank)) * 7 + 3  # arbitrary caller ids
    max_distance = data.draw(st.integers(0, radius))
    truth = _triples(BruteForceIndex(bank, ids, radius=radius).search(queries, max_distance=max_distance))
    for backend in FAST:
        got = build_index(bank, ids, radius=radius, backend=backend).search(queries, max_distance=max_distance)
        assert _triples(got) == truth, backend
        assert list(got.query) == sorted(got.query)


@pytest.mark.parametrize("backend", [*FAST, "brute"])
def test_distances_are_hamming_distances(backend: str) -> None:
    rng = np.random.default_rng(5)
    bank = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    queries = _flip(bank[:20], rng.integers(0, 31, 20), rng)
    result = build_index(bank, backend=backend).search(queries)
    hexes, qhex = codes_to_hex(bank), codes_to_hex(queries)
    for m in result.matches():
        assert m.distance == hamming(qhex[m.query], hexes[m.entry]) <= 31
    assert {(m.query, m.entry) for m in result.matches()} >= {(i, i) for i in range(20)}


def test_hex_and_array_inputs_agree() -> None:
    rng = np.random.default_rng(2)
    bank = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    index = MultiIndexHashing(codes_to_hex(bank))
    assert _triples(index.search(codes_to_hex(bank[:5]))) == _triples(index.search(bank[:5]))
    assert index.search(bank[:1]).for_query(0) == [IndexMatch(0, 0, 0)]


def test_large_bank_sample_equals_brute_force() -> None:
    """100,000 random hashes with planted near duplicates (the benchmark checks 1,000,000)."""
    rng = np.random.default_rng(9)
    bank = rng.integers(0, 256, size=(100_000, 32), dtype=np.uint8)
    picks = rng.choice(len(bank), 150, replace=False)
    queries = np.concatenate([_flip(bank[picks], rng.integers(25, 40, 150), rng),
                              rng.integers(0, 256, size=(50, 32), dtype=np.uint8)])
    truth = BruteForceIndex(bank).search(queries)
    assert _triples(MultiIndexHashing(bank).search(queries)) == _triples(truth)
    assert len(truth) >= 1


def test_limits_and_errors() -> None:
    bank = hex_to_codes(["00" * 32, "ff" * 32])
    index = MultiIndexHashing(bank, radius=31)
    with pytest.raises(ValueError, match="exceeds this index's exact radius 31"):
        index.search(bank, max_distance=32)
    with pytest.raises(ValueError, match=">= 0"):
        index.search(bank, max_distance=-1)
    with pytest.raises(ValueError, match="radius must be between 0 and 63"):
        MultiIndexHashing(bank, radius=64)
    with pytest.raises(ValueError, match="2 hashes but 1 ids"):
        MultiIndexHashing(bank, [1])
    with pytest.raises(ValueError, match="uint8"):
        MultiIndexHashing(np.zeros((2, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown index backend"):
        build_index(bank, backend="annoy")
    assert len(MultiIndexHashing(np.zeros((0, 32), dtype=np.uint8)).search(bank)) == 0
    assert len(index.search(np.zeros((0, 32), dtype=np.uint8))) == 0


def _at_distance(base: np.ndarray, distance: int, rng: np.random.Generator, *, spread: bool) -> np.ndarray:
    """`base` with exactly `distance` bits flipped: evenly spaced over the 256 bits (every chunk
    of any layout then differs by about distance / chunks bits: the pigeonhole's worst case)
    or at random positions."""
    bits = np.unpackbits(base.copy())
    if spread:
        pos = (np.arange(distance) * 256 // max(distance, 1) + rng.integers(0, 256)) % 256
    else:
        pos = rng.choice(256, size=distance, replace=False)
    bits[pos] ^= 1
    return np.packbits(bits)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("max_distance", [0, 1, 15, 16, 30, 31])
def test_hashes_at_exactly_the_threshold(backend: str, max_distance: int) -> None:
    """Bank hashes at distance max_distance - 1, max_distance and max_distance + 1 from each
    query, spread evenly over the chunks: found exactly up to the threshold, never beyond."""
    rng = np.random.default_rng(max_distance)
    queries = rng.integers(0, 256, size=(12, 32), dtype=np.uint8)
    bank = [rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)]  # background
    for q in queries:
        for d in (max_distance - 1, max_distance, max_distance + 1):
            if d >= 0:
                bank += [_at_distance(q, d, rng, spread=True)[None], _at_distance(q, d, rng, spread=False)[None]]
    bank_arr = np.concatenate(bank)
    truth = _triples(BruteForceIndex(bank_arr).search(queries, max_distance=max_distance))
    got = build_index(bank_arr, backend=backend).search(queries, max_distance=max_distance)
    assert _triples(got) == truth
    assert {d for _, _, d in truth} >= {max_distance}
    assert max(got.distance) == max_distance


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("chunks", [8, 11, 12, 13, 16])
def test_compiled_layouts_equal_brute_force(chunks: int) -> None:
    """Every chunk count the cost model may pick is exact (clustered banks, radii up to 63)."""
    bank, queries = _bank_and_queries(chunks, 3000, 5, 30)
    for radius in (31, 63):
        index = CompiledMultiIndex(bank, radius=radius, chunks=chunks)
        for md in (0, 9, radius):
            truth = _triples(BruteForceIndex(bank, radius=radius).search(queries, max_distance=md))
            assert _triples(index.search(queries, max_distance=md)) == truth, (radius, md)


def test_flip_budgets_satisfy_the_pigeonhole() -> None:
    for n in (1, 1000, 1_000_000):
        for m in (8, 12, 16):
            widths = [256 // m + (i < 256 % m) for i in range(m)]
            for md in range(64):
                flips = plan_flips(n, widths, [min(widths)] * m, md)
                assert sum(flips) >= md - m + 1 and min(flips) >= -1


def test_default_backend_is_the_fastest_installed() -> None:
    index = build_index(hex_to_codes(["00" * 32]))
    assert index.backend == ("mih-numba" if HAS_NUMBA else "mih-numpy")
