"""Speed of `warden.evaluate.metrics`: all figures with bootstrap intervals on many predictions.

Issue 3 item 12: PR-AUC, ROC-AUC, precision/recall/F1/FPR/FNR at a threshold, ECE and
base-rate-adjusted precision for 100,000 synthetic predictions (10% positives, scores with
ties from rounding to 4 decimals) with 1,000 stratified bootstrap resamples, in under 30 s
on 2 cores. Also times the paired bootstrap of `warden.evaluate.compare` (two models, same
resamples). Synthetic data: the speed does not depend on what the scores mean.

    .venv/bin/python benchmarks/eval_speed.py            # 100,000 items, 1,000 resamples
    .venv/bin/python benchmarks/eval_speed.py --quick    # 10,000 items, 200 resamples
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, rel, write_result

from warden.evaluate.compare import paired_bootstrap_pr_auc
from warden.evaluate.metrics import evaluate_category

TARGET_SECONDS = 30.0


def synthetic(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.10).astype(float)
    a = np.round(1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, n) + 2.0 * y - 1.5))), 4)
    b = np.round(1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, n) + 2.2 * y - 1.5))), 4)
    return y, a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--n", type=int, default=None, help="predictions (default 100,000; quick 10,000)")
    parser.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default 1,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (the median is reported)")
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    resamples = args.resamples or (200 if args.quick else 1_000)
    runs = 1 if args.quick else args.runs
    y, a, b = synthetic(n, seed=0)

    times: list[float] = []
    report = None
    for _ in range(runs):
        t0 = time.perf_counter()
        report = evaluate_category(y, a, threshold=0.5, base_rate=0.01, n_bootstrap=resamples, random_state=0)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    paired = paired_bootstrap_pr_auc(y, a, b, n_bootstrap=resamples, random_state=0)
    paired_s = time.perf_counter() - t0
    assert report is not None and report.at_threshold is not None
    median = float(np.median(times))
    at = report.at_threshold
    figures = {
        "pr_auc": report.pr_auc.format(), "roc_auc": report.roc_auc.format(), "ece": report.ece.format(),
        "precision@0.5": at.precision.format(), "recall@0.5": at.recall.format(), "f1@0.5": at.f1.format(),
        "fpr@0.5": at.fpr.format(), "precision@0.5, base rate 1%": at.precision_at_base_rate.format(),
        "paired PR-AUC difference": paired.difference.format(),
    }
    print(f"evaluate_category: {n:,} predictions, {resamples:,} stratified bootstrap resamples: "
          f"median {median:.2f} s over {runs} run(s) ({', '.join(f'{t:.2f}' for t in times)}); "
          f"target < {TARGET_SECONDS:.0f} s")
    print(f"paired bootstrap PR-AUC (2 models, same resamples): {paired_s:.2f} s")
    for k, v in figures.items():
        print(f"  {k}: {v}")
    path = write_result("eval_speed", {
        "benchmark": "eval_speed", "machine": machine_info(), "n_predictions": n, "positives": int(y.sum()),
        "n_bootstrap": resamples, "runs": runs, "seconds": times, "median_seconds": median,
        "paired_bootstrap_seconds": paired_s, "target_seconds": TARGET_SECONDS,
        "meets_target": median < TARGET_SECONDS, "figures": figures,
        "metrics": ["pr_auc", "roc_auc", "precision", "recall", "f1", "fpr", "fnr", "ece",
                    "precision_at_base_rate", "confusion_matrix"],
    }, quick=args.quick)
    print(f"wrote {rel(path)}")


if __name__ == "__main__":
    main()
