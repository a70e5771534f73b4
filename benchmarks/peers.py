"""Warden beside the two offline peers a user could pick instead: speed and quality, same run.

Peers (the `peers` extra: `pip install alt-profanity-check hatesonar`):

* **alt-profanity-check** 1.x: linear SVM over bag-of-words, one "profane/offensive"
  probability. Trained by its authors on Davidson et al. 2017 + the Jigsaw (Wikipedia) toxic
  comments.
* **hatesonar** 0.1: TF-IDF + logistic regression exported to ONNX, three classes
  (hate_speech, offensive_language, neither). Trained by its authors on Davidson et al. 2017.
  Its StringNormalizer nodes need `locale="C.UTF-8"` on this machine: the model is patched
  in memory at load time (site-packages is never edited).

Warden: the default policy's full cascade (banks -> linear -> MiniLM where escalated), scores
from the Decision; the linear tier's own score is reported too (it runs on every item).

Quality, on Warden's held-out TEST split only: the split is recomputed exactly as
`warden train` made it (`warden.learn.train.prepare` over `load_all`, with the seed and
max_per_source recorded in models/text-v1/metrics.json; split sizes are checked against the
model card's). Training rows are never scored. English rows with a known `hate` or
`harassment` label, per source dataset and pooled. Mapping of peer outputs:

* hate       <- profanity-check p(profane); hatesonar p(hate_speech)
* harassment <- profanity-check p(profane); hatesonar 1 - p(neither) (= hate or offensive)

Figures: PR-AUC (average precision) and F1 at 0.5 for every system, and F1 at the policy's
`comment` flag threshold for Warden (the decision it actually takes), each with a stratified
bootstrap 95% CI (1,000 resamples). Caveats printed with the figures: both peers were trained
on Davidson (in-sample for them there); Warden was trained on the train split of every
source here (in-distribution for Warden), so the model card's leave-one-source-out figures
are quoted beside them when present.

Speed: texts/s in-process on the same short-text sample as classify_throughput.py (warm-up,
then the median of 3 timed passes, batches of 256 for every system).

    .venv/bin/python benchmarks/peers.py            # needs models/text-v1 and the shared datasets
    .venv/bin/python benchmarks/peers.py --quick    # speed only, 200 texts, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

CATS = ("hate", "harassment")
BATCH = 256
MIN_POS = 10  # positives (and negatives) needed in a source's test rows to report it
PEER_TRAINED_ON = {"alt-profanity-check": ("davidson",), "hatesonar": ("davidson",)}


# --------------------------------------------------------------------------------------
# systems: name -> fn(texts) -> {category: scores}
# --------------------------------------------------------------------------------------
def load_profanity_check() -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
    from profanity_check import predict_prob

    def score(texts: Sequence[str]) -> dict[str, np.ndarray]:
        p = np.asarray(predict_prob(list(texts)), dtype=np.float64)
        return {"hate": p, "harassment": p}

    return score


def patched_hatesonar_bytes() -> bytes:
    """hatesonar's ONNX model with locale="C.UTF-8" on every StringNormalizer node (in memory)."""
    import hatesonar.api
    import onnx

    model = onnx.load(str(hatesonar.api.DEFAULT_MODEL_FILE))
    for node in model.graph.node:
        if node.op_type == "StringNormalizer" and not any(a.name == "locale" for a in node.attribute):
            node.attribute.append(onnx.helper.make_attribute("locale", "C.UTF-8"))
    return model.SerializeToString()


def load_hatesonar() -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
    import onnxruntime as ort

    sess = ort.InferenceSession(patched_hatesonar_bytes(), providers=["CPUExecutionProvider"])

    def score(texts: Sequence[str]) -> dict[str, np.ndarray]:
        _, probs = sess.run(None, {"text": np.array(list(texts), dtype=object)})
        p = np.array([[d[0], d[1], d[2]] for d in probs], dtype=np.float64)
        return {"hate": p[:, 0], "harassment": 1.0 - p[:, 2]}

    return score


def load_warden(policy: Path) -> tuple[Callable[[Sequence[str]], dict[str, np.ndarray]], Any]:
    from warden.core import Content
    from warden.moderator import Moderator

    mod = Moderator.from_file(policy)
    linear_inst = next((k for k, d in mod.detectors.items() if d.name == "linear_text"), None)

    def score(texts: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, list[float]] = {c: [] for c in CATS}
        out.update({f"{c}@linear": [] for c in CATS})
        out.update({f"{c}@flagged": [] for c in CATS})
        for s in range(0, len(texts), BATCH):
            items = [Content(id=f"t{s + i}", text=t) for i, t in enumerate(texts[s:s + BATCH])]
            for r in mod.moderate_with_signals(items):
                if r.decision.missing_signals:
                    raise RuntimeError(f"Warden detector(s) failed: {r.decision.missing_signals}: "
                                       f"{[x.error for x in r.signals if not x.ok][:1]}")
                flagged = set(r.decision.flagged)
                lin = next((x for x in r.signals if x.detector == linear_inst), None) if linear_inst else None
                for c in CATS:
                    out[c].append(float(r.decision.scores.get(c, 0.0)))
                    out[f"{c}@flagged"].append(1.0 if c in flagged else 0.0)
                    out[f"{c}@linear"].append(float(lin.scores.get(c, np.nan)) if lin is not None and lin.ok
                                              else np.nan)
        return {k: np.asarray(v) for k, v in out.items()}

    return score, mod


def warden_speed_fn(mod: Any) -> Callable[[Sequence[str]], Any]:
    from warden.core import Content

    def run(texts: Sequence[str]) -> None:
        for s in range(0, len(texts), BATCH):
            ds = mod.moderate_batch([Content(id=f"t{s + i}", text=t) for i, t in enumerate(texts[s:s + BATCH])])
            if any(d.missing_signals for d in ds):
                raise RuntimeError("Warden detector(s) failed during the speed run: no valid figure")

    return run


def batched(fn: Callable[[Sequence[str]], Any]) -> Callable[[Sequence[str]], None]:
    def run(texts: Sequence[str]) -> None:
        for s in range(0, len(texts), BATCH):
            fn(texts[s:s + BATCH])

    return run


def time_texts_per_s(run: Callable[[Sequence[str]], Any], texts: list[str], runs: int = 3) -> dict[str, Any]:
    run(texts[:BATCH])  # warm-up
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        run(texts)
        walls.append(time.perf_counter() - t)
    w = statistics.median(walls)
    return {"texts_per_s": round(len(texts) / w, 1), "wall_s": [round(x, 3) for x in walls], "n": len(texts)}


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------
def f1_at(p: np.ndarray, y: np.ndarray, thr: float) -> float:
    pred = p >= thr
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def pr_auc(p: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p))


def with_ci(metric: Callable[[np.ndarray, np.ndarray], float], p: np.ndarray, y: np.ndarray, *, n_boot: int,
            seed: int) -> dict[str, float]:
    """Point estimate and a stratified (by label) percentile bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    vals = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        vals.append(metric(p[idx], y[idx]))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return {"value": round(metric(p, y), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}


# --------------------------------------------------------------------------------------
# held-out test split, exactly as `warden train` made it
# --------------------------------------------------------------------------------------
def _has_split_module() -> bool:
    import importlib.util

    return importlib.util.find_spec("warden.learn.splits") is not None


def held_out_test(model_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, dict[str, Any], Any]:
    """(original texts, sources, languages, Y[:, CATS] with -1 unknown, provenance, Prepared) of the TEST split."""
    from warden.learn import train as T
    from warden.learn.text_data import data_dir, load_all

    meta = json.loads((model_dir / "metrics.json").read_text())
    meta = meta.get("meta", meta)
    seed = int(meta.get("seed", 0))
    mps = meta.get("max_per_source", T.DEFAULT_MAX_PER_SOURCE)
    policy = T.load_default_policy()
    cats = T.DEFAULT_CATEGORIES
    if policy is not None:
        cats = tuple(dict.fromkeys([*T.DEFAULT_CATEGORIES, *policy.categories]))
    t = time.perf_counter()
    P = T.prepare(load_all(data_dir()), seed=seed, max_per_source=mps, categories=cats)
    sizes = {s: int((P.split == k).sum()) for k, s in enumerate(T.SPLITS)}
    # Check the recomputed split against the model card, source by source. A source whose
    # counts differ (data or split code changed since training) is left out of the evaluation.
    card_src = meta.get("source_split_sizes") or {}
    mismatched = {}
    for src in sorted(set(P.sources.tolist()) | set(card_src)):
        got = {sp: int(((P.sources == src) & (P.split == k)).sum()) for k, sp in enumerate(T.SPLITS)}
        if card_src and card_src.get(src) != got:
            mismatched[src] = {"card": card_src.get(src), "recomputed": got}
    if mismatched:
        print(f"warning: split differs from the model card for {sorted(mismatched)}: left out", file=sys.stderr)
    te = np.where((P.split == 2) & ~np.isin(P.sources, list(mismatched)))[0]
    jj = [P.categories.index(c) for c in CATS]
    prov = {"seed": seed, "max_per_source": mps, "split_sizes": sizes, "card_split_sizes": meta.get("split_sizes"),
            "checked_against_card": bool(card_src), "sources_left_out_split_mismatch": mismatched,
            "function": "warden.learn.train.prepare(load_all(WARDEN_DATA), seed, max_per_source) -> split == 2"
                        + (" (split by warden.learn.splits.assign_split)" if _has_split_module() else ""),
            "load_s": round(time.perf_counter() - t, 1)}
    return ([P.originals[i] for i in te], P.sources[te], P.languages[te], P.Y[np.ix_(te, jj)].astype(int), prov, P)


def cross_dataset(model_dir: Path, P: Any, systems: dict[str, Callable], n_boot: int) -> dict[str, Any]:
    """Leave-one-source-out figures from the model card for hate/harassment, and the peers scored on
    the very same rows (all labelled rows of the left-out source, rebuilt from the recomputed split).

    Warden's LOSO figures come from models retrained without that source (linear tier and
    embedding heads separately, no cascade); the card gives point estimates only."""
    try:
        loso = json.loads((model_dir / "metrics.json").read_text()).get("loso") or {}
    except (OSError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for src, res in loso.items():
        for c in CATS:
            e = res.get(c)
            if not isinstance(e, dict) or "linear" not in e:
                continue
            row: dict[str, Any] = {"eval": e.get("eval"), "n": e["linear"].get("n"),
                                   "pos": e["linear"].get("positives"),
                                   "warden_loso": {t: {k: e[t].get(k) for k in ("pr_auc", "f1@0.5", "f1@thr")}
                                                   for t in ("linear", "embedding") if isinstance(e.get(t), dict)}}
            ind = e.get("in_distribution") or {}
            row["warden_in_distribution_test"] = {t: (ind.get(t) or {}).get("pr_auc") for t in ("linear", "embedding")}
            if e.get("eval") == "all rows of the source":
                jj = P.categories.index(c)
                idx = np.where((P.sources == src) & (P.Y[:, jj] >= 0))[0]
                if len(idx) == row["n"]:
                    y = P.Y[idx, jj].astype(int)
                    texts = [P.originals[i] for i in idx]
                    for name in ("alt-profanity-check", "hatesonar"):
                        p = systems[name](texts)[c]
                        row[name] = {"pr_auc": with_ci(pr_auc, p, y, n_boot=n_boot, seed=1),
                                     "f1@0.5": with_ci(lambda pp, yy: f1_at(pp, yy, 0.5), p, y, n_boot=n_boot,
                                                       seed=2)}
                        if src in PEER_TRAINED_ON.get(name, ()):
                            row[name]["note"] = "peer was trained on this dataset (in-sample for the peer)"
                else:
                    row["note"] = f"recomputed rows {len(idx)} != card n {row['n']}: peers not scored"
            out.setdefault(c, {})[src] = row
    return out


# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="speed only on 200 texts (no model or split needed)")
    ap.add_argument("--n-speed", type=int, default=5000, help="texts for the speed comparison")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--policy", type=Path, default=None, help="Warden policy (default policies/default.yaml)")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="measure this model directory (a snapshot of models/text-v1) instead of the one the "
                         "policies name; the policies are copied to a temp dir with model_dir rewritten")
    args = ap.parse_args(argv)
    C.use_model_dir(args.model_dir)
    machine = C.machine_info()  # load average before the run
    have_model = C.model_available()
    policy = args.policy or (C.DEFAULT_POLICY if have_model else C.POLICIES / "banks.yaml")
    if not args.quick and not have_model:
        raise SystemExit(f"no trained model in {C.MODEL_DIR}: run `warden train` first (or use --quick)")
    n_speed = 200 if args.quick else args.n_speed

    systems: dict[str, Callable[[Sequence[str]], dict[str, np.ndarray]]] = {}
    loaded_policy = policy
    if args.model_dir is not None:
        import tempfile

        loaded_policy = C.policy_with_model(policy, args.model_dir, Path(tempfile.mkdtemp(prefix="warden-peers-")))
    warden_score, mod = load_warden(loaded_policy)
    systems["warden"] = warden_score
    systems["alt-profanity-check"] = load_profanity_check()
    systems["hatesonar"] = load_hatesonar()

    # --- speed, same texts for everyone
    rows, prov = C.short_text_sample(n_speed, seed=0)
    texts = [r["text"] for r in rows]
    speed = {"warden": {**time_texts_per_s(warden_speed_fn(mod), texts), "policy": C.rel(policy)},
             "alt-profanity-check": time_texts_per_s(batched(systems["alt-profanity-check"]), texts),
             "hatesonar": time_texts_per_s(batched(systems["hatesonar"]), texts)}
    print(f"\nspeed, in-process, {len(texts)} short texts, batches of {BATCH}, median of 3")
    print(C.table(["system", "texts/s"], [[k, v["texts_per_s"]] for k, v in speed.items()]))

    payload: dict[str, Any] = {"benchmark": "peers", "quick": args.quick, "machine": machine,
                               "model": C.model_fingerprint(),
                               "speed_sample": prov, "speed": speed, "peer_trained_on": PEER_TRAINED_ON}
    import importlib.metadata as md

    payload["versions"] = {p: md.version(p) for p in ("alt-profanity-check", "hatesonar", "scikit-learn",
                                                       "onnxruntime")}
    if args.quick:
        path = C.write_result("peers", payload, quick=True)
        print(f"\nwritten {C.rel(path)}")
        return 0

    # --- quality on the held-out test split
    te_texts, te_src, te_lang, Y, split_prov, P = held_out_test(C.MODEL_DIR)
    keep = (te_lang == "en") & (Y >= 0).any(axis=1)
    te_texts = [t for t, k in zip(te_texts, keep, strict=True) if k]
    te_src, Y = te_src[keep], Y[keep]
    print(f"\ntest split: {len(te_texts)} English rows with a hate or harassment label "
          f"({split_prov['function']}, seed {split_prov['seed']})", file=sys.stderr)
    scores = {name: fn(te_texts) for name, fn in systems.items()}

    # (system label, score key, threshold or None for "use the key as a 0/1 decision")
    variants = [("warden (cascade)", "warden", None), ("warden (linear tier)", "warden", "@linear"),
                ("alt-profanity-check", "alt-profanity-check", None), ("hatesonar", "hatesonar", None)]
    quality: dict[str, Any] = {}
    groups = [("all English test rows", np.ones(len(te_texts), dtype=bool))]
    groups += [(s, te_src == s) for s in sorted(set(te_src))]
    for ci, cat in enumerate(CATS):
        for gname, gmask in groups:
            y_all = Y[:, ci]
            m = gmask & (y_all >= 0)
            y = y_all[m]
            npos, nneg = int((y == 1).sum()), int((y == 0).sum())
            if npos < MIN_POS or nneg < MIN_POS:
                continue
            entry: dict[str, Any] = {"n": int(m.sum()), "pos": npos}
            for label, sysname, suffix in variants:
                p = scores[sysname][cat + (suffix or "")][m]
                if np.isnan(p).any():
                    continue
                r = {"pr_auc": with_ci(pr_auc, p, y, n_boot=args.n_boot, seed=1),
                     "f1@0.5": with_ci(lambda pp, yy: f1_at(pp, yy, 0.5), p, y, n_boot=args.n_boot, seed=2)}
                if label == "warden (cascade)":
                    fl = scores["warden"][cat + "@flagged"][m]
                    r["f1@policy_flag"] = with_ci(lambda pp, yy: f1_at(pp, yy, 0.5), fl, y, n_boot=args.n_boot,
                                                  seed=3)
                if gname in PEER_TRAINED_ON.get(sysname, ()):
                    r["note"] = "peer was trained on this dataset (in-sample for the peer)"
                entry[label] = r
            quality.setdefault(cat, {})[gname] = entry

    payload.update({"split": split_prov, "quality": quality, "policy": C.rel(policy),
                    "cross_dataset": cross_dataset(C.MODEL_DIR, P, systems, args.n_boot)})
    path = C.write_result("peers", payload, quick=False)

    def fmt(r: dict | None) -> str:
        if not r:
            return "-"
        return f"{r['value']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"

    for cat in CATS:
        print(f"\n{cat}: PR-AUC and F1@0.5 (95% bootstrap CI) on Warden's held-out test split")
        trs = []
        for gname, e in quality.get(cat, {}).items():
            for label, _, _ in variants:
                if label in e:
                    star = " *" if "note" in e[label] else ""
                    trs.append([gname, f"{e['n']} ({e['pos']})", label + star, fmt(e[label]["pr_auc"]),
                                fmt(e[label]["f1@0.5"]), fmt(e[label].get("f1@policy_flag"))])
        print(C.table(["test rows", "n (pos)", "system", "PR-AUC", "F1@0.5", "F1 @ policy flag"], trs))
    print("\n* the peer was trained on this dataset (Davidson et al. 2017): in-sample for it.")
    xd = payload["cross_dataset"]
    if xd:
        print("\ncross-dataset: Warden retrained WITHOUT the source (model card, leave-one-source-out, point "
              "estimates) vs the peers on the same rows (all labelled rows of that source)")
        trs = []
        for cat, per in xd.items():
            for src, r in per.items():
                wl = r["warden_loso"]
                trs.append([cat, src, f"{r['n']} ({r['pos']})",
                            "-" if "linear" not in wl else f"{wl['linear']['pr_auc']:.3f}",
                            "-" if "embedding" not in wl else f"{wl['embedding']['pr_auc']:.3f}",
                            fmt(r.get("alt-profanity-check", {}).get("pr_auc"))
                            + (" *" if "note" in r.get("alt-profanity-check", {}) else ""),
                            fmt(r.get("hatesonar", {}).get("pr_auc"))
                            + (" *" if "note" in r.get("hatesonar", {}) else ""),
                            r["eval"] if r["eval"] != "all rows of the source" else ""])
        print(C.table(["category", "left-out source", "n (pos)", "Warden LOSO linear PR-AUC",
                       "Warden LOSO embedding PR-AUC", "alt-profanity-check PR-AUC", "hatesonar PR-AUC", "note"],
                      trs))
    print(f"\nwritten {C.rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
