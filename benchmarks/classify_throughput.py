"""Throughput of `warden classify` per cascade tier and for the full cascade, on short texts.

Two measurements per policy, both on the same JSONL file of short (< 280 chars) English
tweets/comments/SMS mixed evenly from several shared datasets:

* **process** (end to end): `warden classify INPUT -o OUT --policy P --surface comment
  --no-progress` as a child process, one warm-up run then `--runs` counted runs; wall time
  and CPU time (user+sys) of the whole process from `os.wait4`, so Python start-up, imports
  and model loading are included. texts/s = rows / median wall. The same command on a 1-row
  file gives the fixed start-up cost.
* **in-process** (steady state): `Moderator.from_file(P)` once, a warm-up batch, then
  `classify_file` (the function behind the CLI: read, moderate in batches of 256, write JSONL)
  over the same file `--runs` times; texts/s = rows / median wall. An observer on the
  Moderator records per-detector time and how many items each detector saw, which gives the
  fraction of items the cascade escalated to the embedding tier.

Tiers are the policies in benchmarks/policies/ (generated from policies/default.yaml by
make_policies.py): banks, linear, embedding (each alone) and cascade (= the default policy's
detectors and cascade).

    .venv/bin/python benchmarks/classify_throughput.py            # 5,000 texts, 3 runs
    .venv/bin/python benchmarks/classify_throughput.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TIERS = ("banks", "linear", "embedding", "cascade")
ML_TIERS = {"linear", "embedding", "cascade"}
TARGET_CASCADE = 1000.0


def check_output_lines(lines: Any, where: str) -> None:
    """Refuse to report a speed for runs where a detector failed (a failing detector is fast)."""
    bad = 0
    first = None
    for line in lines:
        obj = json.loads(line)
        if obj.get("error") or obj.get("missing_signals"):
            bad += 1
            first = first or obj
    if bad:
        raise RuntimeError(f"{where}: {bad} output rows with errors or missing detector signals, e.g. {first}")


def run_process(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    # read stderr while waiting so a chatty child cannot block on a full pipe
    err = proc.stderr.read() if proc.stderr else b""
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "max_rss_mib": ru.ru_maxrss / 1024}


def bench_process(policy: Path, inp: Path, one: Path, runs: int, tmp: Path, *, workers: int = 1) -> dict[str, Any]:
    """`workers` > 1: `warden classify --workers N` (N processes, each loading the models)."""
    warden = str(C.VENV_BIN / "warden")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def cmd(i: Path) -> list[str]:
        return [warden, "classify", str(i), "-o", str(tmp / "out.jsonl"), "--policy", str(policy),
                "--surface", "comment", "--no-progress", "--workers", str(workers)]

    run_process(cmd(inp), env)  # warm-up (page cache, encoder cache)
    full = []
    for _ in range(runs):
        full.append(run_process(cmd(inp), env))
        with (tmp / "out.jsonl").open(encoding="utf-8") as f:
            check_output_lines(f, f"warden classify --policy {policy.name}")
    start = [run_process(cmd(one), env) for _ in range(runs)]
    n = sum(1 for _ in inp.open(encoding="utf-8"))
    wall = statistics.median(r["wall_s"] for r in full)
    startup = statistics.median(r["wall_s"] for r in start)
    return {
        "command": " ".join(cmd(inp)).replace(str(C.ROOT) + "/", ""),
        "rows": n,
        "runs": runs,
        "wall_s": [round(r["wall_s"], 3) for r in full],
        "wall_s_median": round(wall, 3),
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in full), 3),
        "max_rss_mib_median": round(statistics.median(r["max_rss_mib"] for r in full), 1),
        "startup_wall_s_median": round(startup, 3),
        "texts_per_s": round(n / wall, 1),
        "texts_per_s_excl_startup": round(n / max(wall - startup, 1e-9), 1),
        "texts_per_cpu_s": round(n / statistics.median(r["cpu_s"] for r in full), 1),
        "workers": workers,
    }


def bench_inprocess(policy: Path, inp: Path, runs: int) -> dict[str, Any]:
    from warden.moderator import Moderator
    from warden.pipelines.classify import classify_file

    seen: dict[str, int] = defaultdict(int)
    secs: dict[str, float] = defaultdict(float)

    def observer(inst: str, n: int, s: float) -> None:
        seen[inst] += n
        secs[inst] += s

    t0 = time.perf_counter()
    mod = Moderator.from_file(policy, observer=observer)
    load_s = time.perf_counter() - t0
    # warm-up: one pass over a slice (lazy model loads, ORT first-run allocations)
    from warden.core import Content

    with inp.open(encoding="utf-8") as f:
        head = [json.loads(line) for line, _ in zip(f, range(256), strict=False)]
    warm = [Content(id=f"warm-{r['id']}", text=r["text"]) for r in head]
    mod.moderate_batch(warm)
    n = sum(1 for _ in inp.open(encoding="utf-8"))
    walls: list[float] = []
    cpus: list[float] = []
    per_run: list[dict[str, Any]] = []
    for _ in range(runs):
        seen.clear()
        secs.clear()
        out = io.StringIO()
        c = time.process_time()
        t = time.perf_counter()
        summary = classify_file(mod, inp, out, fmt="jsonl", surface="comment", progress=False)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        if summary.rows != n or summary.errors:
            raise RuntimeError(f"classify_file: {summary.rows} rows, {summary.errors} errors (expected {n}, 0)")
        check_output_lines(out.getvalue().splitlines(), f"in-process {policy.name}")
        per_run.append({"seen": dict(seen), "secs": dict(secs), "actions": dict(summary.actions)})
    wall = statistics.median(walls)
    mid = per_run[walls.index(sorted(walls)[len(walls) // 2])]
    escalated = None
    if "minilm" in mod.detectors and len(mod.tiers) > 1:
        escalated = mid["seen"].get("minilm", 0) / n
    detector_total = sum(mid["secs"].values())
    return {
        "rows": n,
        "runs": runs,
        "load_s": round(load_s, 3),
        "wall_s": [round(w, 3) for w in walls],
        "wall_s_median": round(wall, 3),
        "texts_per_s": round(n / wall, 1),
        # CPU seconds (all threads) are far less sensitive than wall time to other work on a
        # shared machine: texts per CPU-second, and the bound on 2 dedicated cores if all
        # of it parallelised perfectly (an upper bound, not a measurement)
        "cpu_s": [round(x, 3) for x in cpus],
        "texts_per_cpu_s": round(n / statistics.median(cpus), 1),
        "bound_2_cores_texts_per_s": round(2 * n / statistics.median(cpus), 1),
        "escalated_to_embedding": None if escalated is None else round(escalated, 4),
        "detector_items": mid["seen"],
        "detector_s": {k: round(v, 3) for k, v in mid["secs"].items()},
        "outside_detectors_s": round(wall - detector_total, 3),
        "actions": mid["actions"],
    }


def escalation_sweep(policy: Path, inp: Path, lows: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)) -> dict[str, Any] | None:
    """Fraction of items the cascade would send to its escalating tier for other lower bounds of
    the escalation band (scores of the tiers before it; the upper bound is kept). Explains the
    escalation rate; not a throughput measurement."""
    from warden.core import Content
    from warden.decide import combine_scores
    from warden.moderator import Moderator

    mod = Moderator.from_file(policy)
    k = next((i for i, t in enumerate(mod.tiers)
              if t.escalate_if is not None and t.escalate_if.any_score_between is not None), None)
    if k is None:  # no band to sweep (no escalating tier, or a severity condition only)
        return None
    low0, high = mod.tiers[k].escalate_if.any_score_between
    with inp.open(encoding="utf-8") as f:
        items = [Content(id=r["id"], text=r["text"]) for r in map(json.loads, f)]
    signals: list[list[Any]] = [[] for _ in items]
    for tier in mod.tiers[:k]:
        for inst in tier.detectors:
            for s in range(0, len(items), 256):
                for i, res in enumerate(mod.detectors[inst].detect(items[s:s + 256])):
                    signals[s + i].append(res)
    top = []
    by_cat: dict[str, int] = defaultdict(int)
    for sig in signals:
        comb = combine_scores(mod.policy, sig)
        top.append([c.score for c in comb.values()])
        for c in comb.values():
            by_cat[c.category] += low0 <= c.score <= high
    out = {"band": [low0, high], "tier": mod.tiers[k].name,
           "in_band_by_category": {c: round(v / len(items), 4) for c, v in sorted(by_cat.items(), key=lambda t: -t[1])}}
    for low in sorted({*lows, low0}):
        out[f"low={low:g}"] = round(sum(any(low <= x <= high for x in t) for t in top) / len(items), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="texts in the sample (default 5000)")
    ap.add_argument("--runs", type=int, default=3, help="counted runs per measurement (default 3)")
    ap.add_argument("--tiers", default=",".join(TIERS), help=f"comma list of {', '.join(TIERS)}")
    ap.add_argument("--mode", choices=("both", "process", "inprocess"), default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", default="1,2", help="process counts for the end-to-end runs (default 1,2)")
    ap.add_argument("--policies", type=Path, default=C.POLICIES,
                    help="folder with banks/linear/embedding/cascade.yaml (default benchmarks/policies)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 texts, 1 run, tiers that can load")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other tiers of the existing results JSON (each tier records its own machine "
                         "load and model fingerprint)")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="measure this model directory (a snapshot of models/text-v1) instead of the one the "
                         "policies name; the policies are copied to a temp dir with model_dir rewritten")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.runs = 200, 1
    args.workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    C.use_model_dir(args.model_dir)
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    if bad := [t for t in tiers if t not in TIERS]:
        ap.error(f"unknown tier(s) {bad}")
    have_model = C.model_available()
    skipped = [t for t in tiers if t in ML_TIERS and not have_model]
    tiers = [t for t in tiers if t not in skipped]
    if skipped:
        print(f"note: no trained model in {C.MODEL_DIR}; skipping {', '.join(skipped)}", file=sys.stderr)

    rows, prov = C.short_text_sample(args.n, seed=args.seed)
    print(f"sample: {len(rows)} texts, mean {prov.get('mean_chars')} chars, sources {prov['sources']}",
          file=sys.stderr)
    results: dict[str, Any] = {}
    machine = C.machine_info()  # load average before the runs
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as td:
        tmp = Path(td)
        inp, one = tmp / "texts.jsonl", tmp / "one.jsonl"
        C.write_jsonl(rows, inp)
        C.write_jsonl(rows[:1], one)
        for tier in tiers:
            policy = (args.policies / f"{tier}.yaml").resolve()
            res: dict[str, Any] = {"policy": C.rel(policy)}
            if args.model_dir is not None:
                policy = C.policy_with_model(policy, args.model_dir, tmp / "policies")
                res["model_dir"] = C.rel(args.model_dir)
            if args.mode in ("both", "inprocess"):
                print(f"[{tier}] in-process ...", file=sys.stderr)
                res["inprocess"] = bench_inprocess(policy, inp, args.runs)
            if args.mode in ("both", "process"):
                print(f"[{tier}] end-to-end process ...", file=sys.stderr)
                res["process"] = bench_process(policy, inp, one, args.runs, tmp)
                for w in args.workers:
                    if w > 1:
                        print(f"[{tier}] end-to-end, {w} processes ...", file=sys.stderr)
                        res[f"process_w{w}"] = bench_process(policy, inp, one, args.runs, tmp, workers=w)
            if tier == "cascade" and args.mode in ("both", "inprocess"):
                res["escalation_sweep"] = escalation_sweep(policy, inp)
            res["model"] = C.model_fingerprint() if tier != "banks" else None
            res["loadavg_before"] = machine["loadavg_1_5_15"]
            res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            results[tier] = res
            # partial results survive a later tier's failure (e.g. the model being rebuilt)
            C.write_result("classify_throughput.partial", {"machine": machine, "sample": prov, "tiers": results},
                           quick=args.quick)

    if args.merge:
        old = C.RESULTS / ("classify_throughput.quick.json" if args.quick else "classify_throughput.json")
        if old.exists():
            prev = json.loads(old.read_text())
            if prev.get("sample") != prov:
                raise SystemExit("--merge: the existing results used a different sample; rerun all tiers")
            results = {**{k: v for k, v in prev["tiers"].items() if k not in results}, **results}
            results = {t: results[t] for t in TIERS if t in results}
    payload = {"benchmark": "classify_throughput", "quick": args.quick, "machine": machine,
               "model": C.model_fingerprint(),
               "sample": prov, "mode": args.mode, "tiers": results, "skipped_tiers": skipped,
               "target": {"cascade_texts_per_s": TARGET_CASCADE}}
    casc = results.get("cascade", {})
    if "inprocess" in casc:
        payload["target"]["cascade_inprocess_met"] = casc["inprocess"]["texts_per_s"] >= TARGET_CASCADE
    if "process" in casc:
        payload["target"]["cascade_process_met"] = casc["process"]["texts_per_s"] >= TARGET_CASCADE
    multi = [k for k in casc if k.startswith("process_w")]
    if multi:
        best = max(casc[k]["texts_per_s"] for k in multi)
        payload["target"]["cascade_all_cores_texts_per_s"] = best
        payload["target"]["cascade_all_cores_met"] = best >= TARGET_CASCADE
    path = C.write_result("classify_throughput", payload, quick=args.quick)

    hdr = ["tier", "in-process texts/s", "in-process texts per CPU-s", "escalated to embedding",
           "end-to-end texts/s", "start-up s", "end-to-end excl. start-up texts/s", "peak RSS MiB"]
    table_rows = []
    for tier, r in results.items():
        ip, pr = r.get("inprocess", {}), r.get("process", {})
        esc = ip.get("escalated_to_embedding")
        table_rows.append([tier, ip.get("texts_per_s", "-"), ip.get("texts_per_cpu_s", "-"),
                           "-" if esc is None else f"{esc:.1%}",
                           pr.get("texts_per_s", "-"), pr.get("startup_wall_s_median", "-"),
                           pr.get("texts_per_s_excl_startup", "-"), pr.get("max_rss_mib_median", "-")])
    print(f"\nwarden classify throughput, {len(rows)} short texts, median of {args.runs} run(s)")
    print(C.table(hdr, table_rows))
    for tier, r in results.items():
        if "inprocess" in r:
            ip = r["inprocess"]
            print(f"  {tier}: detector seconds {ip['detector_s']}, items {ip['detector_items']}, "
                  f"outside detectors {ip['outside_detectors_s']} s")
    sweep = results.get("cascade", {}).get("escalation_sweep")
    if sweep:
        print(f"  cascade escalation band {sweep['band']}; fraction escalated if the band started at: "
              + ", ".join(f"{k.split('=')[1]} -> {v:.1%}" for k, v in sweep.items() if k.startswith("low=")))
    if sweep:
        print(f"  items in the band per category (one item can be in several): {sweep['in_band_by_category']}")
    print(f"\nwritten {C.rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
