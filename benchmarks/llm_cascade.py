"""The LLM cascade, measured: how many LLM calls each escalation rule spends, what they buy in
PR-AUC, what they cost per 1,000 items and what they do to throughput.

The LLM tier is a local stand-in (`benchmarks/llm_standin.py`: a stronger, slower classifier
trained on the train split, served over the OpenAI chat-completions wire format), called by
the real `openai_chat` adapter. Every configuration runs end to end through `Moderator` on the
held-out TEST split of `warden train`'s split (never on training rows): the default policy's
tiers (banks -> linear -> MiniLM in its band) and then the LLM tier under a rule, against
"always local" (no LLM tier) and "always LLM" (banks + the LLM on every item). Quality is
PR-AUC of the Decision's combined scores per category, with 95% bootstrap intervals (the same
resamples for every configuration, so differences are paired); cost is the adapter's own
accounting (`detector.totals`) at the example prices below.

Usage:

    .venv/bin/python benchmarks/llm_cascade.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, DEFAULT_POLICY, MODEL_DIR, machine_info, model_fingerprint, policy_with_model, write_result

#: Example prices (USD per 1,000 tokens), written into the benchmark policy: a small hosted
#: model's order of magnitude ($0.15 / $0.60 per million tokens), not any vendor's quote.
PRICE_IN_PER_1K = 0.00015
PRICE_OUT_PER_1K = 0.0006
BATCH = 256

#: (name, escalate_if for the LLM tier). Fixed before the run; none was tuned on the test split.
CASCADES: list[tuple[str, dict[str, Any]]] = [
    ("band [0.5, 0.8]", {"any_score_between": [0.5, 0.8]}),
    ("band [0.3, 0.8]", {"any_score_between": [0.3, 0.8]}),
    ("band [0.2, 0.9]", {"any_score_between": [0.2, 0.9]}),
    ("severity >= high at 0.2", {"severity_at_least": {"severity": "high", "min_score": 0.2}}),
    ("band [0.5, 0.8] or severity >= high at 0.2",
     {"any_score_between": [0.5, 0.8], "severity_at_least": {"severity": "high", "min_score": 0.2}}),
]


def prepared() -> Any:
    from warden.learn import train as T
    from warden.learn.text_data import data_dir, load_all

    meta = json.loads((MODEL_DIR / "metrics.json").read_text())
    meta = meta.get("meta", meta)
    return T.prepare(load_all(data_dir()), seed=int(meta.get("seed", 0)),
                     max_per_source=meta.get("max_per_source", T.DEFAULT_MAX_PER_SOURCE))


def start_server(model_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(BENCH / "llm_standin.py"), "--model", str(model_path)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the stand-in server did not start (said {line!r})")
    return proc, f"http://127.0.0.1:{line.split()[1]}/v1"


def policies(base_url: str, llm_categories: list[str], out_dir: Path) -> dict[str, str]:
    """name -> policy YAML: the default policy (absolute paths) plus the LLM detector and tier."""
    import yaml

    src = policy_with_model(DEFAULT_POLICY, MODEL_DIR, out_dir / "base")
    base = yaml.safe_load(src.read_text(encoding="utf-8"))
    base["detectors"]["llm"] = {"type": "openai_chat", "params": {
        "base_url": base_url, "model": "warden-standin-joint-lr", "categories": llm_categories,
        "timeout_s": 30, "max_retries": 1, "max_concurrency": 4,
        "price_per_1k_input_tokens_usd": PRICE_IN_PER_1K, "price_per_1k_output_tokens_usd": PRICE_OUT_PER_1K}}
    local = copy.deepcopy(base)
    del local["detectors"]["llm"]
    out = {"always local": local}
    always = copy.deepcopy(base)
    always["cascade"] = [base["cascade"][0], {"name": "llm", "detectors": ["llm"]}]
    for inst in ("linear", "minilm"):
        del always["detectors"][inst]
    out["always LLM"] = always
    for name, rule in CASCADES:
        pol = copy.deepcopy(base)
        pol["cascade"] = [*base["cascade"], {"name": "llm", "detectors": ["llm"], "escalate_if": rule,
                                             "supersedes": ["linear", "minilm"]}]
        out[name] = pol
    return {k: yaml.safe_dump(v, sort_keys=False, allow_unicode=True) for k, v in out.items()}


def run_config(policy_yaml: str, base_dir: Path, texts: list[str], categories: tuple[str, ...],
               warm: list[str]) -> dict[str, Any]:
    from warden.core import Content
    from warden.moderator import Moderator
    from warden.policy import parse_policy

    mod = Moderator(parse_policy(policy_yaml), base_dir=base_dir)
    mod.moderate_with_signals([Content(id=f"w{i}", text=t) for i, t in enumerate(warm)])  # models loaded, pools open
    llm = mod.detectors.get("llm")
    before = copy.copy(llm.totals) if llm is not None else None
    items = [Content(id=str(i), text=t) for i, t in enumerate(texts)]
    scores = np.zeros((len(items), len(categories)))
    escalated = np.zeros(len(items), dtype=bool)
    failed = 0
    started = time.perf_counter()
    for s in range(0, len(items), BATCH):
        for k, r in enumerate(mod.moderate_with_signals(items[s:s + BATCH])):
            i = s + k
            llm_sig = [g for g in r.signals if g.detector == "llm"]
            escalated[i] = bool(llm_sig)
            failed += any(not g.ok for g in llm_sig)
            for j, cat in enumerate(categories):
                scores[i, j] = r.decision.scores.get(cat, 0.0)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"seconds": round(seconds, 2), "items_per_s": round(len(items) / seconds, 1),
                           "escalated_to_llm": round(float(escalated.mean()), 4), "llm_item_errors": failed}
    if llm is not None and before is not None:
        t = llm.totals
        n = len(items) / 1000
        out.update({
            "llm_requests": t.requests - before.requests,
            "llm_failed_requests": t.failed_requests - before.failed_requests,
            "llm_calls_per_1k_items": round((t.requests - before.requests) / n, 1),
            "input_tokens_per_call": round((t.input_tokens - before.input_tokens)
                                           / max(1, t.requests - before.requests), 1),
            "output_tokens_per_call": round((t.output_tokens - before.output_tokens)
                                            / max(1, t.requests - before.requests), 1),
            "cost_usd_per_1k_items": round((t.cost_usd - before.cost_usd) / n, 4),
        })
        llm.close()
    else:
        out.update({"llm_requests": 0, "llm_calls_per_1k_items": 0.0, "cost_usd_per_1k_items": 0.0})
    out["_scores"] = scores
    return out


def pr_aucs(scores: np.ndarray, Y: np.ndarray, cats: tuple[str, ...],
            idx: np.ndarray | None = None) -> dict[str, float]:
    from sklearn.metrics import average_precision_score

    out: dict[str, float] = {}
    for j, cat in enumerate(cats):
        rows = np.arange(len(Y)) if idx is None else idx
        y, s = Y[rows, j], scores[rows, j]
        known = y >= 0
        if (y[known] == 1).sum() == 0 or (y[known] == 0).sum() == 0:
            out[cat] = float("nan")
            continue
        out[cat] = float(average_precision_score(y[known], s[known]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small train sample and 150 test rows (smoke run)")
    ap.add_argument("--rows", type=int, default=None, help="test rows to use (default: all)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--tag", default="", help="write llm_cascade_<tag>.json (a second run beside the main one)")
    args = ap.parse_args(argv)
    rows = 150 if args.quick else args.rows
    n_boot = 30 if args.quick else args.bootstrap
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()

    import llm_standin

    P = prepared()
    with tempfile.TemporaryDirectory(prefix="warden-llm-cascade-") as tmp:
        tmpdir = Path(tmp)
        t = time.perf_counter()
        fitted = llm_standin.train(P, tmpdir / "standin.npz", max_train_rows=1500 if args.quick else None)
        train_s = time.perf_counter() - t
        test = np.where(P.split == 2)[0]
        if rows is not None and len(test) > rows:
            test = np.sort(np.random.default_rng(0).choice(test, rows, replace=False))
        texts = [P.originals[i] for i in test]
        from warden.policy import parse_policy

        proc, url = start_server(tmpdir / "standin.npz")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
        try:
            yamls = policies(url, fitted["categories"], tmpdir)
            cats = parse_policy(yamls["always local"], check_detectors=False).category_names
            Y = P.Y[test][:, [P.categories.index(c) for c in cats]]
            warm = [P.originals[i] for i in np.where(P.split == 0)[0][:32]]  # train rows: never test items
            results: dict[str, dict[str, Any]] = {}
            for name, text in yamls.items():
                results[name] = run_config(text, tmpdir, texts, cats, warm)
                r = results[name]
                print(f"{name:>42}: {r['items_per_s']:7.1f} items/s, escalated {r['escalated_to_llm']:.3f}, "
                      f"LLM calls/1k {r['llm_calls_per_1k_items']}, ${r['cost_usd_per_1k_items']}/1k", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    # Quality: categories with both classes among the test rows; one set of resamples for all configs.
    measured = [c for j, c in enumerate(cats) if (Y[:, j] == 1).sum() >= 5 and (Y[:, j] == 0).sum() >= 5]
    mj = [cats.index(c) for c in measured]
    rng = np.random.default_rng(0)
    boots = [rng.integers(0, len(test), len(test)) for _ in range(n_boot)]
    ref = "always local"
    ref_boot = None
    for name in results:
        S = results[name].pop("_scores")[:, mj]
        point = pr_aucs(S, Y[:, mj], tuple(measured))
        samples = np.array([[v for v in pr_aucs(S, Y[:, mj], tuple(measured), b).values()] for b in boots])
        macro_s = np.nanmean(samples, axis=1)
        if name == ref:
            ref_boot = macro_s
        lo_hi = {c: [round(float(np.nanpercentile(samples[:, k], 2.5)), 4),
                     round(float(np.nanpercentile(samples[:, k], 97.5)), 4)] for k, c in enumerate(measured)}
        results[name]["pr_auc"] = {c: {"value": round(point[c], 4), "ci95": lo_hi[c]} for c in measured}
        results[name]["macro_pr_auc"] = {"value": round(float(np.nanmean(list(point.values()))), 4),
                                         "ci95": [round(float(np.percentile(macro_s, 2.5)), 4),
                                                  round(float(np.percentile(macro_s, 97.5)), 4)]}
        if ref_boot is not None and name != ref:
            d = macro_s - ref_boot
            results[name]["macro_gain_vs_always_local"] = {
                "ci95": [round(float(np.percentile(d, 2.5)), 4), round(float(np.percentile(d, 97.5)), 4)]}
    for name, r in results.items():
        if name != ref:
            r["macro_gain_vs_always_local"]["value"] = round(r["macro_pr_auc"]["value"]
                                                             - results[ref]["macro_pr_auc"]["value"], 4)

    print(f"\n{'configuration':>42} {'to LLM':>7} {'macro PR-AUC [95% CI]':>24} {'calls/1k':>8} "
          f"{'$/1k':>7} {'items/s':>8}")
    for name, r in results.items():
        m = r["macro_pr_auc"]
        print(f"{name:>42} {r['escalated_to_llm']:>7.3f} {m['value']:>8.4f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"
              f" {r['llm_calls_per_1k_items']:>8} {r['cost_usd_per_1k_items']:>7} {r['items_per_s']:>8}")
    payload = {
        "machine": machine_info(), "load_avg_before": load_before, "load_avg_after": [round(x, 2) for x in
                                                                                         os.getloadavg()],
        "quick": args.quick, "model": model_fingerprint(), "split": "test (warden train's split 2)",
        "test_rows": len(test), "batch_size": BATCH, "bootstrap_resamples": n_boot,
        "measured_categories": measured,
        "standin": {**fitted, "what": "joint logistic regression over the linear tier's n-gram TF-IDF and the "
                    "MiniLM embedding, served over the OpenAI chat-completions wire format; not an LLM",
                    "train_seconds": round(train_s, 1)},
        "prices_usd_per_1k_tokens": {"input": PRICE_IN_PER_1K, "output": PRICE_OUT_PER_1K},
        "token_counts": "MiniLM WordPiece tokenizer on the prompt and answer (a stand-in for the served model's)",
        "cascades": {name: rule for name, rule in CASCADES},
        "results": results, "total_seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_result(f"llm_cascade_{args.tag}" if args.tag else "llm_cascade", payload, quick=args.quick)
    print(f"\nwrote {path.name} in {payload['total_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
