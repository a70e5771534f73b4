"""Active learning simulation: does labeling N items chosen by uncertainty (+ diversity) give a
better model than labeling N random items?

Pool = TRAIN split rows (warden.learn.splits, content hash) of English user-content sources with
hate / harassment / spam / self-harm labels; evaluation = the TEST split, never selected from nor
trained on (the calibration split is unused). Oracle = the dataset labels. Per seed, every
strategy starts from the same random seed set, then runs rounds of batch acquisition with
`warden.learn.active.select_batch`; the model is one logistic regression per category on
MiniLM (int8 ONNX) embeddings, retrained from scratch each round. Prints the figures, writes
benchmarks/results/active_learning.json and docs/img/active_learning.png.

    .venv/bin/python benchmarks/active_learning.py            # full run (~4 min once embeddings are cached)
    .venv/bin/python benchmarks/active_learning.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine_info, rel, table, write_result

from warden.evaluate.metrics import evaluate_category, pr_auc_score
from warden.learn.active import STRATEGIES, select_batch

CATEGORIES = ("hate", "harassment", "spam", "self-harm")
SOURCES = ("davidson", "hatexplain", "olid", "toxigen", "mlma", "ethos", "sms_spam", "sms_smishing", "youtube_spam",
           "suicidal_tweets", "suicide_watch", "reddit_cssrs")
#: Which category family each source was annotated for. SIMULATION-ONLY assumption: a label the
#: source never looked at, in a family other than its own, is taken as 0 (an SMS is not hate, a
#: hate-speech tweet is not spam, a suicide-watch post is not harassment). Unknowns inside the
#: source's own family (harassment of Davidson's 'offensive' tweets) stay unknown and are skipped.
FAMILY = {"hate": "abuse", "harassment": "abuse", "spam": "spam", "self-harm": "self-harm"}
SOURCE_FAMILY = {"davidson": "abuse", "hatexplain": "abuse", "olid": "abuse", "toxigen": "abuse", "mlma": "abuse",
                 "ethos": "abuse", "sms_spam": "spam", "sms_smishing": "spam", "youtube_spam": "spam",
                 "suicidal_tweets": "self-harm", "suicide_watch": "self-harm", "reddit_cssrs": "self-harm"}
IMG = ROOT / "docs" / "img" / "active_learning.png"
LABELS = {"random": "random", "uncertainty": "uncertainty", "uncertainty_diversity": "uncertainty + diversity"}


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def load_data(*, max_per_source: int, progress) -> dict:
    """Texts, labels (n, C) in {1, 0, -1 unknown}, split codes and MiniLM embeddings (cached)."""
    from warden.learn.text_data import load_all
    from warden.learn.train import embed_cached, prepare

    rows = load_all(sources=list(SOURCES))
    rows = {k: [r for r in v if r.language == "en"] for k, v in rows.items()}  # MiniLM is English
    P = prepare(rows, seed=0, max_per_source=max_per_source, categories=CATEGORIES)
    Y = P.Y.copy()
    for j, c in enumerate(CATEGORIES):
        other = np.array([SOURCE_FAMILY[s] != FAMILY[c] for s in P.sources])
        Y[(Y[:, j] == -1) & other, j] = 0
    keep = P.split != 1  # calibration split unused: not embedded
    texts = [t for t, k in zip(P.texts, keep, strict=True) if k]
    emb = embed_cached(texts, progress=progress)
    return {"Y": Y[keep], "split": P.split[keep], "sources": P.sources[keep], "emb": emb}


# --------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------
class Heads:
    """One logistic regression per category, fit on the labeled rows whose label is known.
    class_weight='balanced': with ~5% positives an unweighted head sits far from 0.5 and its
    0.5 boundary (where uncertainty is measured) would be meaningless. A category with fewer
    than 2 labeled positives or negatives predicts its smoothed prior (a constant)."""

    def __init__(self, *, C: float) -> None:
        self.C = C
        self.models: list = []

    def fit(self, X: np.ndarray, Y: np.ndarray) -> Heads:
        from sklearn.linear_model import LogisticRegression

        self.models = []
        for j in range(Y.shape[1]):
            known = Y[:, j] >= 0
            y = Y[known, j]
            pos, neg = int(y.sum()), int((y == 0).sum())
            if pos < 2 or neg < 2:
                self.models.append((pos + 1) / (pos + neg + 2))
                continue
            m = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
            self.models.append(m.fit(X[known], y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), len(self.models)))
        for j, m in enumerate(self.models):
            out[:, j] = m if isinstance(m, float) else m.predict_proba(X)[:, 1]
        return out


def score(P: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    per = {}
    for j, c in enumerate(CATEGORIES):
        known = Y[:, j] >= 0
        per[c] = float(pr_auc_score(Y[known, j], P[known, j]))
    return per


# --------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------
def run_one(*, strategy: str, seed: int, init: np.ndarray, X_pool, Y_pool, X_test, Y_test, rounds: int, batch: int,
            C: float, factor: int) -> dict:
    labeled = np.zeros(len(X_pool), dtype=bool)
    labeled[init] = True
    curve, per_cat, positives, select_s = [], [], [], 0.0
    for r in range(rounds + 1):
        idx = np.flatnonzero(labeled)
        heads = Heads(C=C).fit(X_pool[idx], Y_pool[idx])
        per = score(heads.predict(X_test), Y_test)
        curve.append(float(np.mean(list(per.values()))))
        per_cat.append(per)
        positives.append({c: int((Y_pool[idx, j] == 1).sum()) for j, c in enumerate(CATEGORIES)})
        if r == rounds:
            break
        t0 = time.perf_counter()
        sel = select_batch(probabilities=heads.predict(X_pool), embeddings=X_pool, n=batch, strategy=strategy,
                           seed=seed * 1000 + r, exclude=labeled, candidate_factor=factor)
        select_s += time.perf_counter() - t0
        assert not labeled[sel.indices].any()
        labeled[sel.indices] = True
    return {"macro": curve, "per_category": per_cat, "positives": positives, "select_seconds": select_s,
            "final_heads": heads}


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval across seeds (the spread of the whole procedure: seed set,
    random draws, k-means init)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - h, m + h


def budget_to_reach(budgets: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    """First label budget where the (mean) curve reaches `target`, interpolated linearly between
    rounds; None if it never does."""
    if curve[0] >= target:
        return float(budgets[0])
    for i in range(1, len(curve)):
        if curve[i] >= target:
            a, b = curve[i - 1], curve[i]
            return float(budgets[i - 1] + (budgets[i] - budgets[i - 1]) * (target - a) / (b - a))
    return None


def plot(budgets: np.ndarray, summary: dict, path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 3, figsize=(14, 7.6), sharex=True)
    axes = grid.ravel()
    colors = {"random": "#7f7f7f", "uncertainty": "#1f77b4", "uncertainty_diversity": "#d62728"}
    for ax, key in zip(axes, ["macro", *CATEGORIES], strict=False):
        for s in STRATEGIES:
            rows = summary[s]["macro" if key == "macro" else "per_category"]
            rows = rows if key == "macro" else rows[key]
            m = np.array([x["mean"] for x in rows])
            lo = np.array([x["ci_low"] for x in rows])
            hi = np.array([x["ci_high"] for x in rows])
            ax.plot(budgets, m, marker="o", ms=3, color=colors[s], label=LABELS[s])
            ax.fill_between(budgets, lo, hi, color=colors[s], alpha=0.18, linewidth=0)
        ax.set_title("macro PR-AUC (4 categories)" if key == "macro" else f"{key} PR-AUC")
        ax.grid(alpha=0.3)
    ax = axes[-1]  # paired gain over random (same seed set, same test rows)
    ax.axhline(0, color="#7f7f7f", lw=1)
    for s in STRATEGIES[1:]:
        g = summary[s]["gain_vs_random"]
        ax.plot(budgets, [x["mean"] for x in g], marker="o", ms=3, color=colors[s], label=LABELS[s])
        ax.fill_between(budgets, [x["ci_low"] for x in g], [x["ci_high"] for x in g], color=colors[s], alpha=0.18,
                        linewidth=0)
    ax.set_title("macro PR-AUC gain over random (paired by seed)")
    ax.grid(alpha=0.3)
    for ax in grid[1]:
        ax.set_xlabel("labels used")
    axes[0].set_ylabel("test PR-AUC (mean, 95% CI over seeds)")
    grid[1, 0].set_ylabel("test PR-AUC (mean, 95% CI over seeds)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small pool, 2 seeds, 3 rounds (smoke run)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--init", type=int, default=100, help="random seed set size")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--max-per-source", type=int, default=4000)
    ap.add_argument("--candidate-factor", type=int, default=10)
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic heads")
    ap.add_argument("--threads", type=int, default=1, help="BLAS / OpenMP threads (shared machine: keep low)")
    ap.add_argument("--tag", default="", help="suffix for the JSON and plot names (variants of the main run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.rounds, args.batch, args.init, args.max_per_source = 2, 3, 50, 50, 600
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from threadpoolctl import threadpool_limits

    t_start = time.perf_counter()
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols) as progress:
        data = load_data(max_per_source=args.max_per_source, progress=progress)
    t_data = time.perf_counter() - t_start
    pool, test = data["split"] == 0, data["split"] == 2
    X_pool, Y_pool = data["emb"][pool].astype(np.float64), data["Y"][pool]
    X_test, Y_test = data["emb"][test].astype(np.float64), data["Y"][test]
    counts = {c: {"pool_pos": int((Y_pool[:, j] == 1).sum()), "pool_neg": int((Y_pool[:, j] == 0).sum()),
                  "pool_unknown": int((Y_pool[:, j] == -1).sum()), "test_pos": int((Y_test[:, j] == 1).sum()),
                  "test_neg": int((Y_test[:, j] == 0).sum())} for j, c in enumerate(CATEGORIES)}
    print(f"pool (train split) {len(X_pool):,} rows, test split {len(X_test):,} rows; data + embeddings "
          f"{t_data:.1f}s")
    print(table(["category", "pool +", "pool -", "pool ?", "test +", "test -"],
                [[c, *counts[c].values()] for c in CATEGORIES]))

    budgets = np.array([args.init + r * args.batch for r in range(args.rounds + 1)])
    runs: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
    t_sim = time.perf_counter()
    with threadpool_limits(limits=args.threads), Progress(*cols) as progress:
        task = progress.add_task("simulating (seed x strategy)", total=args.seeds * len(STRATEGIES))
        for seed in range(args.seeds):
            init = np.random.default_rng(10_000 + seed).choice(len(X_pool), size=args.init, replace=False)
            for s in STRATEGIES:  # same seed set for every strategy: paired comparison
                runs[s].append(run_one(strategy=s, seed=seed, init=init, X_pool=X_pool, Y_pool=Y_pool, X_test=X_test,
                                       Y_test=Y_test, rounds=args.rounds, batch=args.batch, C=args.C,
                                       factor=args.candidate_factor))
                progress.advance(task)
    t_sim = time.perf_counter() - t_sim

    def band(values) -> dict:
        m, lo, hi = t_interval(np.asarray(values))
        return {"mean": round(m, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4)}

    summary: dict = {}
    for s in STRATEGIES:
        macro = np.array([r["macro"] for r in runs[s]])  # (seeds, rounds+1)
        summary[s] = {
            "macro": [band(macro[:, i]) for i in range(len(budgets))],
            "per_category": {c: [band([r["per_category"][i][c] for r in runs[s]]) for i in range(len(budgets))]
                             for c in CATEGORIES},
            "labeled_positives_final": {c: round(float(np.mean([r["positives"][-1][c] for r in runs[s]])), 1)
                                        for c in CATEGORIES},
            "select_seconds_per_round": round(float(np.mean([r["select_seconds"] for r in runs[s]])) / args.rounds, 3),
        }
    target = summary["random"]["macro"][-1]["mean"]
    for s in STRATEGIES:
        mean_curve = np.array([x["mean"] for x in summary[s]["macro"]])
        b = budget_to_reach(budgets, mean_curve, target)
        summary[s]["budget_to_reach_random_final"] = None if b is None else round(b, 1)
        if s != "random":  # paired by seed: same seed set, same test rows
            diff = np.array([r["macro"] for r in runs[s]]) - np.array([r["macro"] for r in runs["random"]])
            summary[s]["gain_vs_random"] = [band(diff[:, i]) for i in range(len(budgets))]
            summary[s]["final_gain_vs_random"] = band(diff[:, -1])
            summary[s]["seeds_beating_random_final"] = int((diff[:, -1] > 0).sum())
    # test-set sampling uncertainty at the final budget (seed 0's models; warden.evaluate.metrics bootstrap)
    test_boot: dict = {}
    for s in STRATEGIES:
        P = runs[s][0]["final_heads"].predict(X_test)
        test_boot[s] = {}
        for j, c in enumerate(CATEGORIES):
            known = Y_test[:, j] >= 0
            rep = evaluate_category(Y_test[known, j], P[known, j], threshold=0.5, category=c, n_bootstrap=1000)
            test_boot[s][c] = {"pr_auc": round(rep.pr_auc.value, 4), "ci_low": round(rep.pr_auc.ci_low, 4),
                               "ci_high": round(rep.pr_auc.ci_high, 4)}

    final = int(budgets[-1])
    print(f"\nmacro PR-AUC on the test split (mean [95% CI] over {args.seeds} seeds) by labels used:")
    print(table(["labels", *(LABELS[s] for s in STRATEGIES)],
                [[int(b), *(f"{summary[s]['macro'][i]['mean']:.3f} [{summary[s]['macro'][i]['ci_low']:.3f}, "
                            f"{summary[s]['macro'][i]['ci_high']:.3f}]" for s in STRATEGIES)]
                 for i, b in enumerate(budgets)]))
    print(f"\nat {final} labels, per category (mean over seeds) and labeled positives found:")
    print(table(["strategy", *CATEGORIES, "macro", "positives found (h/ha/sp/sh)", "labels to reach random@final"],
                [[LABELS[s], *(f"{summary[s]['per_category'][c][-1]['mean']:.3f}" for c in CATEGORIES),
                  f"{summary[s]['macro'][-1]['mean']:.3f}",
                  "/".join(f"{summary[s]['labeled_positives_final'][c]:.0f}" for c in CATEGORIES),
                  summary[s]["budget_to_reach_random_final"] or f"> {final}"] for s in STRATEGIES]))
    for s in STRATEGIES[1:]:
        g = summary[s]["final_gain_vs_random"]
        print(f"{LABELS[s]} - random at {final} labels (paired by seed): {g['mean']:+.4f} "
              f"[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]; better in {summary[s]['seeds_beating_random_final']}"
              f"/{args.seeds} seeds")
    total = time.perf_counter() - t_start
    print(f"\nsimulation {t_sim:.1f}s ({args.threads} thread(s)); total {total:.1f}s")

    img = IMG.with_name(f"{IMG.stem}_{args.tag}.png") if args.tag else IMG
    if not args.quick:
        plot(budgets, summary, img, title=f"Active learning on the shared data: pool {len(X_pool):,} train-split "
                                          f"rows, test {len(X_test):,} rows, {args.seeds} seeds, "
                                          f"{args.init} random + {args.rounds} x {args.batch}")
        print(f"plot: {rel(img)}")
    payload = {
        "machine": machine_info(), "quick": args.quick,
        "setup": {"categories": list(CATEGORIES), "sources": list(SOURCES), "max_per_source": args.max_per_source,
                  "pool_rows": len(X_pool), "test_rows": len(X_test), "counts": counts,
                  "seeds": args.seeds, "init": args.init, "batch": args.batch, "rounds": args.rounds,
                  "candidate_factor": args.candidate_factor, "C": args.C, "threads": args.threads, "tag": args.tag,
                  "model": "LogisticRegression(class_weight='balanced') per category on MiniLM int8 embeddings",
                  "uncertainty": "max over categories of exp(-|logit p - logit 0.5|)",
                  "interval": "Student-t 95% over seeds", "assumption": "cross-family unknown labels = 0"},
        "budgets": budgets.tolist(), "summary": summary, "test_bootstrap_seed0_final": test_boot,
        "seconds": {"data_and_embeddings": round(t_data, 1), "simulation": round(t_sim, 1), "total": round(total, 1)},
    }
    path = write_result(f"active_learning_{args.tag}" if args.tag else "active_learning", payload, quick=args.quick)
    print(f"results: {rel(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
