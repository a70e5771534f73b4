"""Hash matching: lookup speed in a 1,000,000-hash PDQ bank, recall under copy transforms,
the false-match rate among distinct images, and what PDQ misses (crops) with and without the
crop stage.

1. Index speed. A bank of N random 256-bit hashes (default 1,000,000) with planted near
   duplicates: queries are 2,000 bank hashes with 0-40 random bits flipped plus 2,000
   random hashes. Lookups/s (each lookup = every bank hash within distance 31) for the
   compiled (numba) multi-index, the product default, and the numpy multi-index (one query per
   call, batches of 8 = one image's dihedral variants, batches of 64; for the compiled index
   also two threads each searching batches of 64, i.e. both cores), faiss's
   IndexBinaryMultiHash when installed, and brute force for reference. Rates are wall-clock;
   CPU seconds of this process are reported next to them (the machine is shared).
   Exactness: every index's results equal brute force on a sample (must be 0 mismatches).
   Random hashes spread evenly over the chunk tables; real PDQ hashes are less even, so the
   candidate count per query is also measured on real hashes of the synthetic images.
2. Recall. Each base image is banked (its PDQ hash); each transformed copy is looked up
   through the product path (`hash_image` arrays -> `lookup_image`: 8 dihedral variants,
   border trim, quality gate 50) at distance 31. Base images: scikit-image's bundled
   photos (if installed) and generated drawings (`warden.testing.images`), reported apart.
3. False matches. M distinct generated images (default 10,000) are all banked and each is
   looked up: a false match is a hit on another image. Reported per unordered pair and as
   the share of images with any false match, at distances 16, 24 and 31.
4. Crop stage: the same recall and false-match measurements with each banked image's 14
   crop-window hashes (`crops.CROP_GRID`) added to the bank, including random crops (each
   side trimmed by 0-20%) that are not on the grid.
5. Local features: ORB keypoints with a ratio test and a RANSAC homography, compared by brute
   force on a sample, as the stage that handles arbitrary crops (recall and false matches).

    .venv/bin/python benchmarks/hash_matching.py            # full run (~10-20 min on 2 cores)
    .venv/bin/python benchmarks/hash_matching.py --quick    # smoke run (small sizes)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from warden.detectors.hashing.banks import Bank, BankEntry
from warden.detectors.hashing.crops import CROP_GRID, crop_variant_hashes, trim_border
from warden.detectors.hashing.images import ImageHashes, lookup_image
from warden.detectors.hashing.index import (
    BruteForceIndex,
    CompiledMultiIndex,
    MultiIndexHashing,
    build_index,
    numba_available,
)
from warden.detectors.hashing.matcher import BankMatcher
from warden.detectors.hashing.md5 import md5_hex
from warden.detectors.hashing.pdq import (
    MIN_QUALITY,
    dihedral_from_array,
    dihedral_pixels_from_array,
    pdq_from_array,
)
from warden.testing.images import random_crop, synthetic_image, transforms

TARGET_LOOKUPS_PER_S = 10_000
THRESHOLDS = (16, 24, 31)
SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "cat", "coins", "moon", "page", "text",
                  "clock", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass", "gravel",
                  "colorwheel", "logo", "horse", "microaneurysms", "motorcycle_left")  # not _right: same scene


# -- 1. index speed ---------------------------------------------------------------------------------
def _flip_bits(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = codes.copy()
    bits = np.unpackbits(out, axis=1)
    for i, k in enumerate(counts):
        idx = rng.choice(256, size=int(k), replace=False)
        bits[i, idx] ^= 1
    return np.packbits(bits, axis=1)


def _rate(fn: Callable[[], Any], n_lookups: int, *, min_seconds: float = 1.0) -> float:
    """Lookups per second, repeating `fn` until `min_seconds` have passed."""
    fn()  # warm-up
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return reps * n_lookups / elapsed


def _rates(fn: Callable[[], Any], n_lookups: int, *, min_seconds: float = 2.0) -> tuple[float, float]:
    """(lookups per wall second, lookups per CPU second of this process): on a shared machine
    the second says what the code costs, the first what a caller saw."""
    fn()  # warm-up (and numba compilation)
    reps, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return reps * n_lookups / elapsed, reps * n_lookups / max(1e-9, time.process_time() - cpu0)


def _same(a: Any, b: Any) -> int:
    """Number of (query, entry, distance) triples in one result but not the other."""
    sa = set(zip(a.query.tolist(), a.entry.tolist(), a.distance.tolist(), strict=True))
    sb = set(zip(b.query.tolist(), b.entry.tolist(), b.distance.tolist(), strict=True))
    return len(sa ^ sb)


def bench_index(n: int, *, seed: int, n_queries: int, exact_sample: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    planted = rng.choice(n, size=n_queries, replace=False)
    near = _flip_bits(codes[planted], rng.integers(0, 41, size=n_queries), rng)
    rand = rng.integers(0, 256, size=(n_queries, 32), dtype=np.uint8)
    queries = np.concatenate([near, rand])
    out: dict[str, Any] = {"bank_size": n, "queries": len(queries), "near_duplicate_queries": n_queries,
                           "random_queries": n_queries, "max_distance": 31}

    t0 = time.perf_counter()
    mih = MultiIndexHashing(codes)
    out["mih_build_s"] = round(time.perf_counter() - t0, 2)
    out["mih_index_mib"] = round((mih._orders.nbytes + mih._starts.nbytes + mih._ends.nbytes + codes.nbytes) / 2**20,
                                 1)
    cands = mih.candidate_count(queries)
    out["mih_candidates_per_query_mean"] = round(float(cands.mean()), 1)

    singles = [queries[i:i + 1] for i in range(len(queries))]
    pos = iter(range(10**12))

    def one() -> None:
        mih.search(singles[next(pos) % len(singles)])

    def batch(size: int) -> Callable[[], None]:
        starts = list(range(0, len(queries) - size + 1, size))
        it = iter(range(10**12))
        return lambda: mih.search(queries[starts[next(it) % len(starts)]:][:size])

    rates = {"mih_single_query": _rate(one, 1), "mih_batch_8_one_image": _rate(batch(8), 8),
             "mih_batch_64": _rate(batch(64), 64)}
    compiled = None
    if numba_available():
        t0 = time.perf_counter()
        compiled = CompiledMultiIndex(codes)
        out["compiled_build_s"] = round(time.perf_counter() - t0, 2)
        out["compiled_index_mib"] = round(compiled.nbytes / 2**20, 1)
        out["compiled_layout"] = {"chunks": len(compiled.widths), "widths": sorted(set(compiled.widths)),
                                  "prefix_bits": compiled.prefixes[0],
                                  "flips": compiled._plan(31)[0].tolist(),
                                  "buckets_per_query": int(compiled.candidate_count(queries[:1])[0])}
        cpu: dict[str, float] = {}
        for name, size in (("single_query", 1), ("batch_8_one_image", 8), ("batch_64", 64)):
            sl = [queries[i:i + size] for i in range(0, len(queries) - size + 1, size)]
            it3 = iter(range(10**12))
            rates[f"compiled_{name}"], cpu[name] = _rates(
                lambda sl=sl, it3=it3: compiled.search(sl[next(it3) % len(sl)]), size)
        # The mix above, split: near-duplicate queries (have matches) and random ones (none).
        for label, part in (("near_duplicates", near), ("random", rand)):
            for name, size in (("single_query", 1), ("batch_64", 64)):
                sl = [part[i:i + size] for i in range(0, len(part) - size + 1, size)]
                it4 = iter(range(10**12))
                rates[f"compiled_{label}_only_{name}"], cpu[f"{label}_only_{name}"] = _rates(
                    lambda sl=sl, it4=it4: compiled.search(sl[next(it4) % len(sl)]), size)
        # Two threads each searching batches of 64 (the kernel releases the GIL): both cores.
        from concurrent.futures import ThreadPoolExecutor

        halves = [queries[:64], queries[64:128]]
        with ThreadPoolExecutor(2) as pool:
            rates["compiled_batch_64_two_threads"], cpu["batch_64_two_threads"] = _rates(
                lambda: list(pool.map(compiled.search, halves)), 128)
        out["compiled_lookups_per_cpu_second"] = {k: round(v, 1) for k, v in cpu.items()}
    else:
        out["compiled"] = "numba not installed (pip install numba)"

    brute = BruteForceIndex(codes)
    sample = np.concatenate([near[:exact_sample // 2], rand[:exact_sample // 2]])
    t0 = time.perf_counter()
    truth = brute.search(sample, max_distance=31)
    rates["numpy_brute_force"] = len(sample) / (time.perf_counter() - t0)
    mismatches = {"mih": _same(mih.search(sample), truth)}
    if compiled is not None:
        mismatches["compiled"] = _same(compiled.search(sample), truth)
    out["exact_sample_queries"] = len(sample)
    out["exact_sample_matches"] = len(truth)

    try:
        import faiss

        faiss.omp_set_num_threads(1)
        t0 = time.perf_counter()
        fx = build_index(codes, backend="faiss")
        out["faiss_multihash_build_s"] = round(time.perf_counter() - t0, 2)
        mismatches["faiss_multihash"] = _same(fx.search(sample), truth)
        it2 = iter(range(10**12))
        rates["faiss_multihash_single_query_1thread"] = _rate(
            lambda: fx.search(singles[next(it2) % len(singles)]), 1)
        rates["faiss_multihash_batch_64_1thread"] = _rate(lambda: fx.search(queries[:64]), 64)
        flat = faiss.IndexBinaryFlat(256)
        flat.add(codes)
        t0 = time.perf_counter()
        flat.range_search(sample[:50], 32)
        rates["faiss_flat_brute_force_1thread"] = 50 / (time.perf_counter() - t0)
        out["faiss_version"] = faiss.__version__
    except ImportError:
        out["faiss"] = "not installed (pip install faiss-cpu)"
    out["lookups_per_s"] = {k: round(v, 1) for k, v in rates.items()}
    out["exactness_mismatches_vs_brute_force"] = mismatches
    best = "compiled" if compiled is not None else "mih"
    out["meets_target"] = {k: bool(rates.get(f"{best}_{k}", 0) >= TARGET_LOOKUPS_PER_S)
                           for k in ("single_query", "batch_8_one_image", "batch_64", "batch_64_two_threads")
                           if f"{best}_{k}" in rates}
    return out


# -- images --------------------------------------------------------------------------------------------
def _photos() -> list[tuple[str, Any]]:
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return []
    out = []
    for name in SKIMAGE_PHOTOS:
        try:
            arr = np.asarray(getattr(data, name)())
        except Exception:  # a sample not bundled in the wheel (would need a download): skip it
            continue
        if isinstance(arr, tuple) or arr.ndim not in (2, 3):
            continue
        if arr.dtype != np.uint8:
            f = arr.astype(float)
            arr = (255 * (f - f.min()) / max(1e-9, float(f.max() - f.min()))).astype(np.uint8)
        if arr.ndim == 3:
            arr = arr[..., :3]
        img = Image.fromarray(arr).convert("RGB")
        out.append((f"skimage:{name}", img))
    return out


def _hashes(img: Any, *, exact: bool = False) -> ImageHashes:
    """What `images.hash_image` computes, from pixels (no encode/decode round trip)."""
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
    trimmed = trim_border(rgb)
    dihedral = dihedral_pixels_from_array if exact else dihedral_from_array
    return ImageHashes(md5=md5_hex(rgb.tobytes()), pdq=dihedral(rgb), size=0,
                       trimmed=dihedral(trimmed) if trimmed is not None else None)


def _bank(images: Sequence[tuple[str, Any]], *, crops: bool) -> tuple[BankMatcher, dict[int, int]]:
    """A matcher holding each image's PDQ (and crop windows); entry id -> image index."""
    bank = Bank(name="bench", category="violence")
    entries, owner = [], {}
    for i, (_, img) in enumerate(images):
        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
        hashes = [pdq_from_array(rgb).hex]
        if crops:
            hashes += [h.hex for _, h in crop_variant_hashes(rgb)]
        for h in hashes:
            owner[len(entries)] = i
            entries.append(BankEntry(signal_type="pdq", signal=h, id=len(entries)))
    return BankMatcher.from_entries({bank: entries}), owner


def _recall(images: Sequence[tuple[str, Any]], matcher: BankMatcher, owner: dict[int, int], *, seed: int,
            dihedral: bool = True, exact: bool = False, only: Sequence[str] | None = None) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    edits = transforms()
    rng = random.Random(seed)
    edits["crop_random_0_20"] = lambda im: random_crop(im, rng)
    for name, fn in edits.items():
        if only is not None and name not in only:
            continue
        hits = {t: 0 for t in THRESHOLDS}
        low_quality = 0
        distances = []
        for i, (_, img) in enumerate(images):
            h = _hashes(fn(img), exact=exact)
            if not dihedral:
                h = ImageHashes(md5=h.md5, pdq=type(h.pdq)(hashes=(h.pdq.original,), quality=h.pdq.quality), size=0)
            if h.pdq.quality < MIN_QUALITY and (h.trimmed is None or h.trimmed.quality < MIN_QUALITY):
                low_quality += 1
            found = [m for m in lookup_image(matcher, h, max_distance=31) if owner[m.entry_id] == i]
            best = min((m.distance for m in found), default=None)
            distances.append(best if best is not None else 999)
            for t in THRESHOLDS:
                hits[t] += best is not None and best <= t
        n = len(images)
        rows[name] = {"recall": {str(t): round(hits[t] / n, 4) for t in THRESHOLDS},
                      "median_best_distance": float(np.median(distances)) if distances else None,
                      "skipped_low_quality": low_quality, "images": n}
    return rows


def _false_matches(images: Sequence[tuple[str, Any]], matcher: BankMatcher, owner: dict[int, int],
                   hashes: Sequence[ImageHashes]) -> dict[str, Any]:
    pairs = {t: set() for t in THRESHOLDS}
    skipped = 0
    for i, h in enumerate(hashes):
        if h.pdq.quality < MIN_QUALITY:
            skipped += 1
        for m in lookup_image(matcher, h, max_distance=31):
            j = owner[m.entry_id]
            if j != i:
                for t in THRESHOLDS:
                    if m.distance <= t:
                        pairs[t].add((min(i, j), max(i, j)))
    n = len(images)
    total_pairs = n * (n - 1) // 2
    out: dict[str, Any] = {"images": n, "pairs": total_pairs, "skipped_low_quality": skipped}
    for t in THRESHOLDS:
        involved = {x for p in pairs[t] for x in p}
        out[str(t)] = {"false_match_pairs": len(pairs[t]),
                       "false_match_rate_per_pair": len(pairs[t]) / max(1, total_pairs),
                       "share_of_images_with_a_false_match": round(len(involved) / max(1, n), 5)}
    return out


def bench_images(*, n_recall_synth: int, n_distinct: int, seed: int) -> dict[str, Any]:
    photos = _photos()
    synth = [(f"synthetic:{s}", synthetic_image(s)) for s in range(seed, seed + n_recall_synth)]
    out: dict[str, Any] = {"photos": [p for p, _ in photos], "synthetic_recall_images": len(synth)}
    t0 = time.perf_counter()
    for label, images in (("photos", photos), ("synthetic", synth)):
        if not images:
            out[f"recall_{label}"] = "no images (scikit-image not installed)"
            continue
        matcher, owner = _bank(images, crops=False)
        out[f"recall_{label}_pdq_dihedral"] = _recall(images, matcher, owner, seed=seed)
        flips = ("flip_horizontal", "rotate_90")
        out[f"recall_{label}_pdq_original_only"] = _recall(images, matcher, owner, seed=seed, dihedral=False,
                                                           only=flips)
        out[f"recall_{label}_pdq_exact_dihedral"] = _recall(images, matcher, owner, seed=seed, exact=True,
                                                            only=flips)
        matcher_c, owner_c = _bank(images, crops=True)
        out[f"recall_{label}_with_crop_stage"] = _recall(images, matcher_c, owner_c, seed=seed)
    out["recall_seconds"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    distinct = [(f"synthetic:{s}", synthetic_image(s)) for s in range(10**6 + seed, 10**6 + seed + n_distinct)]
    hashes = [_hashes(img) for _, img in distinct]
    out["distinct_generation_and_hashing_s"] = round(time.perf_counter() - t0, 1)
    qualities = np.array([h.pdq.quality for h in hashes])
    out["distinct_quality"] = {"p5": float(np.percentile(qualities, 5)), "median": float(np.median(qualities)),
                               "below_50": int((qualities < MIN_QUALITY).sum())}
    matcher, owner = _bank(distinct, crops=False)
    out["false_matches_pdq"] = _false_matches(distinct, matcher, owner, hashes)
    t0 = time.perf_counter()
    matcher_c, owner_c = _bank(distinct, crops=True)
    out["crop_stage_bank_hashes"] = matcher_c.pdq_count
    out["false_matches_with_crop_stage"] = _false_matches(distinct, matcher_c, owner_c, hashes)
    out["crop_stage_seconds"] = round(time.perf_counter() - t0, 1)
    # Real PDQ hashes are not uniform: the index's cost on them (candidates per query).
    real = [h.pdq.original for h in hashes]
    mih = MultiIndexHashing(real)
    cands = mih.candidate_count(real)
    out["mih_candidates_per_query_real_hashes"] = {
        "bank": len(real), "mean": round(float(cands.mean()), 1),
        "uniform_expectation": round(len(real) * 272 / 65536, 1)}
    return out


# -- 5. local features (ORB) for crops --------------------------------------------------------------
ORB_FEATURES = 500
ORB_RATIO = 0.75
ORB_MIN_INLIERS = 20
ORB_SIDE = 512


def _orb(img: Any, cv2: Any, orb: Any) -> tuple[Any, Any]:
    gray = np.asarray(img.convert("L"))
    scale = ORB_SIDE / max(gray.shape)
    if scale < 1:
        gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    return orb.detectAndCompute(gray, None)


def _orb_inliers(q: tuple[Any, Any], b: tuple[Any, Any], cv2: Any, matcher: Any) -> int:
    """Keypoint matches (Lowe ratio test) that agree on one homography (RANSAC)."""
    (qkp, qd), (bkp, bd) = q, b
    if qd is None or bd is None or len(qd) < 2 or len(bd) < 2:
        return 0
    pairs = [p for p in matcher.knnMatch(qd, bd, k=2) if len(p) == 2]
    good = [m for m, n in pairs if m.distance < ORB_RATIO * n.distance]
    if len(good) < 8:
        return 0
    src = np.float32([qkp[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([bkp[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    return int(mask.sum()) if mask is not None else 0


def bench_orb(*, n_bank: int, n_queries: int, n_distinct_bank: int, n_distinct_queries: int,
              seed: int) -> dict[str, Any]:
    """ORB keypoints + ratio test + RANSAC homography, brute force over a small bank: recall on
    the crops PDQ misses, and false matches between distinct images (both on samples: every
    query is compared with every banked image, which a production stage would only do for
    candidates from an index of keypoint descriptors)."""
    try:
        import cv2
    except ImportError:
        return {"skipped": "opencv-python-headless not installed"}
    cv2.setNumThreads(1)
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    images = _photos() + [(f"synthetic:{s}", synthetic_image(s)) for s in range(seed, seed + n_bank)]
    images = images[:n_bank]
    bank = [_orb(img, cv2, orb) for _, img in images]
    rng = random.Random(seed)
    edits = {k: v for k, v in transforms().items() if k.startswith("crop")}
    edits["crop_random_0_20"] = lambda im: random_crop(im, rng)
    out: dict[str, Any] = {"bank_images": len(bank), "queries_per_transform": min(n_queries, len(images)),
                           "min_inliers": ORB_MIN_INLIERS, "nfeatures": ORB_FEATURES, "recall": {},
                           "false_matches_in_recall_queries": {}}
    t0 = time.perf_counter()
    comparisons = 0
    for name, fn in edits.items():
        hits = wrong = 0
        for i, (_, img) in enumerate(images[:n_queries]):
            q = _orb(fn(img), cv2, orb)
            scores = [_orb_inliers(q, b, cv2, bf) for b in bank]
            comparisons += len(bank)
            hits += scores[i] >= ORB_MIN_INLIERS
            wrong += any(sc >= ORB_MIN_INLIERS for j, sc in enumerate(scores) if j != i)
        out["recall"][name] = round(hits / min(n_queries, len(images)), 4)
        out["false_matches_in_recall_queries"][name] = wrong
    distinct = [synthetic_image(s) for s in range(2 * 10**6 + seed, 2 * 10**6 + seed + n_distinct_bank)]
    dbank = [_orb(img, cv2, orb) for img in distinct]
    pairs = 0
    fm = 0
    for i in range(n_distinct_queries):
        for j in range(i + 1, len(dbank)):
            pairs += 1
            fm += _orb_inliers(dbank[i], dbank[j], cv2, bf) >= ORB_MIN_INLIERS
    comparisons += pairs
    out["distinct"] = {"images": len(dbank), "pairs": pairs, "false_match_pairs": fm,
                       "false_match_rate_per_pair": fm / max(1, pairs)}
    elapsed = time.perf_counter() - t0
    out["comparisons"] = comparisons
    out["ms_per_comparison"] = round(1000 * elapsed / max(1, comparisons), 3)
    out["opencv"] = cv2.__version__
    return out


def _print(result: dict[str, Any]) -> None:
    idx = result["index"]
    print(f"\n## PDQ index: {idx['bank_size']:,} hashes, distance <= 31")
    print(C.table(["method", "lookups/s"], [[k, v] for k, v in idx["lookups_per_s"].items()]))
    print(f"exactness mismatches vs brute force ({idx['exact_sample_queries']} queries, "
          f"{idx['exact_sample_matches']} matches): {idx['exactness_mismatches_vs_brute_force']}")
    img = result.get("images", {})
    for label in ("photos", "synthetic"):
        base = img.get(f"recall_{label}_pdq_dihedral")
        if not isinstance(base, dict):
            continue
        crop = img[f"recall_{label}_with_crop_stage"]
        print(f"\n## Recall ({label}, {next(iter(base.values()))['images']} images): PDQ+dihedral vs +crop stage")
        print(C.table(["transform", *(f"d<={t}" for t in THRESHOLDS), "median d", "+crop stage d<=31"],
                      [[k, *v["recall"].values(), v["median_best_distance"], crop[k]["recall"]["31"]]
                       for k, v in base.items()]))
        for mode in ("original_only", "exact_dihedral"):
            rows = img.get(f"recall_{label}_pdq_{mode}", {})
            print(f"  {mode}: " + ", ".join(f"{k} {v['recall']['31']}" for k, v in rows.items()))
    orb = result.get("orb_local_features")
    if orb and "recall" in orb:
        print(f"\n## ORB local features ({orb['bank_images']} banked images, {orb['queries_per_transform']} queries "
              f"per crop, >= {orb['min_inliers']} RANSAC inliers; {orb['ms_per_comparison']} ms per comparison)")
        print(C.table(["transform", "recall", "queries with a false match"],
                      [[k, v, orb["false_matches_in_recall_queries"][k]] for k, v in orb["recall"].items()]))
        print(f"distinct pairs: {orb['distinct']['false_match_pairs']} false matches in {orb['distinct']['pairs']:,}")
    for key in ("false_matches_pdq", "false_matches_with_crop_stage"):
        fm = img.get(key)
        if fm:
            print(f"\n## {key}: {fm['images']:,} distinct images ({fm['pairs']:,} pairs)")
            print(C.table(["distance", "pairs", "rate/pair", "share of images"],
                          [[t, fm[str(t)]["false_match_pairs"], f"{fm[str(t)]['false_match_rate_per_pair']:.2e}",
                            fm[str(t)]["share_of_images_with_a_false_match"]] for t in THRESHOLDS]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--bank-size", type=int, default=None, help="PDQ hashes in the index benchmark (1,000,000)")
    ap.add_argument("--distinct", type=int, default=None, help="distinct images for the false-match rate (10,000)")
    ap.add_argument("--recall-images", type=int, default=None, help="generated images for recall (300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-images", action="store_true", help="index speed only")
    ap.add_argument("--skip-orb", action="store_true", help="no ORB local-feature stage")
    ap.add_argument("--name", default=None,
                    help="result file name (default hash_matching; with --skip-images hash_matching_index)")
    args = ap.parse_args(argv)
    bank_size = args.bank_size or (20_000 if args.quick else 1_000_000)
    distinct = args.distinct or (200 if args.quick else 10_000)
    recall_images = args.recall_images or (20 if args.quick else 300)
    result: dict[str, Any] = {"machine": C.machine_info(), "target_lookups_per_s": TARGET_LOOKUPS_PER_S}
    started = time.perf_counter()
    result["index"] = bench_index(bank_size, seed=args.seed, n_queries=200 if args.quick else 2000,
                                  exact_sample=100 if args.quick else 400)
    if not args.skip_images:
        result["images"] = bench_images(n_recall_synth=recall_images, n_distinct=distinct, seed=args.seed)
    if not args.skip_images and not args.skip_orb:
        result["orb_local_features"] = bench_orb(
            n_bank=40 if args.quick else 300, n_queries=10 if args.quick else 100,
            n_distinct_bank=40 if args.quick else 600, n_distinct_queries=10 if args.quick else 100, seed=args.seed)
    result["crop_grid"] = [w.name for w in CROP_GRID]
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine_after"] = {"loadavg_1_5_15": C.machine_info()["loadavg_1_5_15"]}
    name = args.name or ("hash_matching_index" if args.skip_images else "hash_matching")
    path = C.write_result(name, result, quick=args.quick)
    _print(result)
    print(f"\nwrote {C.rel(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
