"""Cascade trade-off: how the escalation band trades embedding calls against quality.

Runs every tier (banks, linear, MiniLM) once over the held-out rows of `warden train`'s split,
then replays the cascade for a grid of escalation bands with the production combination code
(`warden.decide.combine_scores`), so each figure is what the Moderator would produce. For
each band: the fraction of items escalated to the embedding tier, macro PR-AUC and per-category
PR-AUC of the combined score, and the throughput implied by the per-item tier costs measured in
the same run.

The band is CHOSEN on the calibration split and REPORTED on the test split: choosing on test
would overstate quality. Usage:

    .venv/bin/python benchmarks/cascade_tradeoff.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_POLICY, MODEL_DIR, machine_info, write_result

from warden.core import Content, DetectorResult
from warden.decide import combine_scores
from warden.evaluate.metrics import pr_auc_score
from warden.moderator import Moderator

BANDS: list[tuple[float, float] | None] = [
    None,  # never escalate: banks + linear only
    (0.8, 1.0), (0.5, 1.0), (0.3, 1.0), (0.1, 1.0),
    # uncertain-only bands: the linear model is neither confidently clean nor confidently violating
    (0.5, 0.8), (0.4, 0.8), (0.3, 0.8), (0.5, 0.7), (0.4, 0.7), (0.3, 0.6),
    (0.0, 1.0),  # always escalate
]


def load_split(which: int, max_rows: int | None) -> tuple[list[str], np.ndarray, tuple[str, ...], np.ndarray]:
    """Held-out rows of `warden train`'s split (1 = calibration, 2 = test), recomputed with the
    seed and cap recorded in the model's metrics.json."""
    import json

    from warden.learn import train as T
    from warden.learn.text_data import data_dir, load_all

    meta = json.loads((MODEL_DIR / "metrics.json").read_text())
    meta = meta.get("meta", meta)
    P = T.prepare(load_all(data_dir()), seed=int(meta.get("seed", 0)),
                  max_per_source=meta.get("max_per_source", T.DEFAULT_MAX_PER_SOURCE))
    idx = np.where(P.split == which)[0]
    if max_rows is not None and len(idx) > max_rows:
        idx = np.random.default_rng(0).choice(idx, max_rows, replace=False)
    return [P.originals[i] for i in idx], P.Y[idx], P.categories, P.sources[idx]


def tier_signals(mod: Moderator, texts: list[str]) -> tuple[dict[str, list[DetectorResult]], dict[str, float]]:
    items = [Content(id=str(i), text=t) for i, t in enumerate(texts)]
    out: dict[str, list[DetectorResult]] = {}
    per_item_ms: dict[str, float] = {}
    for inst, det in mod.detectors.items():
        det.detect(items[:32])  # warm-up
        started = time.perf_counter()
        out[inst] = det.detect(items)
        per_item_ms[inst] = (time.perf_counter() - started) * 1000 / len(items)
    return out, per_item_ms


def replay(mod: Moderator, signals: dict[str, list[DetectorResult]], band: tuple[float, float] | None,
           categories: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Combined scores (n, C) and the escalation mask for one band, as the Moderator would do it."""
    policy = mod.policy
    n = len(next(iter(signals.values())))
    cheap = [inst for tier in policy.cascade[:-1] for inst in tier.detectors]
    expensive = policy.cascade[-1].detectors
    scores = np.zeros((n, len(categories)))
    escalated = np.zeros(n, dtype=bool)
    for i in range(n):
        sig = [signals[inst][i] for inst in cheap]
        if band is not None:
            combined = combine_scores(policy, sig)
            if any(band[0] <= c.score <= band[1] for c in combined.values()) or any(not s.ok for s in sig):
                escalated[i] = True
                sig = sig + [signals[inst][i] for inst in expensive]
        combined = combine_scores(policy, sig)
        for j, cat in enumerate(categories):
            c = combined.get(cat)
            scores[i, j] = c.score if c is not None else 0.0
    return scores, escalated


def macro_pr_auc(scores: np.ndarray, Y: np.ndarray, categories: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    per: dict[str, float] = {}
    for j, cat in enumerate(categories):
        known = Y[:, j] >= 0
        y = Y[known, j]
        if y.sum() < 5 or (y == 0).sum() < 5:
            continue
        per[cat] = float(pr_auc_score(y, scores[known, j]))
    return float(np.mean(list(per.values()))), per


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 rows per split (smoke run)")
    args = ap.parse_args(argv)
    max_rows = 300 if args.quick else None
    mod = Moderator.from_file(DEFAULT_POLICY)
    cats = mod.policy.category_names
    results: dict[str, dict] = {}
    for split_name, which in (("calibration", 1), ("test", 2)):
        texts, Y, prep_cats, _sources = load_split(which, max_rows)
        Y = Y[:, [prep_cats.index(c) for c in cats]]
        signals, per_item_ms = tier_signals(mod, texts)
        cheap_ms = sum(v for k, v in per_item_ms.items() if k not in mod.policy.cascade[-1].detectors)
        emb_ms = sum(per_item_ms[k] for k in mod.policy.cascade[-1].detectors)
        rows = []
        for band in BANDS:
            scores, esc = replay(mod, signals, band, cats)
            macro, per = macro_pr_auc(scores, Y, cats)
            frac = float(esc.mean())
            rows.append({"band": band, "escalated": round(frac, 4), "macro_pr_auc": round(macro, 4),
                         "pr_auc": {k: round(v, 4) for k, v in per.items()},
                         "implied_texts_per_s": round(1000.0 / (cheap_ms + frac * emb_ms), 1)})
        results[split_name] = {"rows": len(texts), "tier_ms_per_item": {k: round(v, 3) for k, v in
                                                                        per_item_ms.items()}, "bands": rows}
        print(f"\n{split_name}: {len(texts)} rows; per-item ms: "
              + ", ".join(f"{k} {v:.3f}" for k, v in per_item_ms.items()))
        print(f"{'band':>14} {'escalated':>9} {'macro PR-AUC':>12} {'texts/s':>8}")
        for r in rows:
            band = "never" if r["band"] is None else f"[{r['band'][0]}, {r['band'][1]}]"
            print(f"{band:>14} {r['escalated']:>9.3f} {r['macro_pr_auc']:>12.4f} {r['implied_texts_per_s']:>8.0f}")
    write_result("cascade_tradeoff", {"machine": machine_info(), "quick": args.quick, "results": results},
                 quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
