"""Added latency of the provider adapter layer per call, and the latency of a cache hit.

Each adapter is timed against its local wire-format server (tests/providers), next to a bare
httpx POST of the same request to the same server: the difference is what Warden's layer
adds (SDK or httpx client, resilience wrapper, mapping, metrics, result building), excluding
the provider. A cache hit is timed on a repeated text with the cache on.

    .venv/bin/python benchmarks/provider_overhead.py --calls 500      # --quick: a smoke run, not a figure
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "providers"))

from provider_servers import HiveServer, OpenAIServer  # noqa: E402

from warden.core import Content  # noqa: E402
from warden.detectors import registry  # noqa: E402
from warden.detectors.base import DetectorContext  # noqa: E402
from warden.policy import load_policy  # noqa: E402

KEY = "sk-bench-0123456789abcdef"
TEXT = "I will find you and kill you, you idiot"


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 3)}


def _time(fn, calls: int) -> list[float]:
    for _ in range(min(20, calls)):  # warm up connections and caches
        fn()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--quick", action="store_true",
                        help="20 calls, writes provider_overhead.quick.json (not a figure)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results_dir = Path(os.environ.get("WARDEN_BENCH_RESULTS", ROOT / "benchmarks" / "results"))
    if args.quick:
        args.calls = 20
    args.out = args.out or str(results_dir / f"provider_overhead{'.quick' if args.quick else ''}.json")
    os.environ["WARDEN_BENCH_KEY"] = KEY
    policy = load_policy(ROOT / "policies" / "default.yaml", check_detectors=False)
    ctx = DetectorContext(base_dir=ROOT / "policies", categories=policy.category_names, policy=policy)
    results: dict[str, dict[str, object]] = {}
    setups = [
        ("openai_moderation", OpenAIServer(KEY), "/v1/moderations",
         {"json": {"model": "omni-moderation-latest", "input": [TEXT]}},
         {"authorization": f"Bearer {KEY}"}, lambda url: {"base_url": f"{url}/v1"}),
        ("hive", HiveServer(KEY), "/api/v2/task/sync", {"data": {"text_data": TEXT}},
         {"authorization": f"token {KEY}"}, lambda url: {"base_url": url}),
    ]
    for name, server, path, request, headers, params in setups:
        server.start()
        try:
            with httpx.Client(base_url=server.url, headers=headers) as raw:
                bare = _time(lambda raw=raw, path=path, request=request: raw.post(path, **request).json(), args.calls)
            det = registry.get(name).from_config({**params(server.url), "api_key_env": "WARDEN_BENCH_KEY",
                                                  "cache_ttl_s": 0}, context=ctx)
            counter = iter(range(10**9))
            adapter = _time(lambda det=det, counter=counter: det.detect([Content(id=str(next(counter)), text=TEXT)]),
                            args.calls)
            cached = registry.get(name).from_config({**params(server.url), "api_key_env": "WARDEN_BENCH_KEY"},
                                                    context=ctx)
            hit = _time(lambda cached=cached: cached.detect([Content(id="x", text=TEXT)]), args.calls)
        finally:
            server.stop()
        added = statistics.median(adapter) - statistics.median(bare)
        results[name] = {"bare_http": _ms(bare), "adapter_call": _ms(adapter), "cache_hit": _ms(hit),
                         "added_median_ms": round(added * 1000, 3)}
        print(f"{name:18s} bare HTTP {results[name]['bare_http']}  adapter {results[name]['adapter_call']}  "
              f"added (median) {results[name]['added_median_ms']} ms  cache hit {results[name]['cache_hit']}")
    out = {"calls": args.calls, "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "results": results}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
