"""Latency of `POST /v1/moderate` (single items) at a fixed request rate, and the server's peak memory.

Starts `warden serve` as a child process on a free loopback port with a fresh SQLite database
in a temp dir, creates a client key with `warden keys create`, waits for `/healthz`, sends a
short sequential warm-up, then drives the API **open-loop**: request i is scheduled at
t0 + i / rate on the event loop's clock and sent at that time whether or not earlier
requests have finished (asyncio + httpx, keep-alive connections). Latency is measured from
the *scheduled* send time to the end of the response, so a server that falls behind is
charged for the queueing it causes (no coordinated omission); the time from the actual send
is reported too. Texts are short English tweets/comments/SMS from the shared datasets.

While the load runs, a sampler reads /proc/<pid>/status of the server and all its
descendants every 0.25 s: peak VmHWM per process and the largest sampled sum of VmRSS.

The load generator shares the machine (2 cores here) with the server, so figures include
its CPU contention. Bounded: `--rate x --duration` requests, a per-request timeout and an
overall deadline.

    .venv/bin/python benchmarks/api_latency.py                     # 50 req/s for 60 s, default policy
    .venv/bin/python benchmarks/api_latency.py --quick             # smoke run, seconds
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TARGET_P99_MS = 20.0
TARGET_RSS_MIB = 1024.0


# --------------------------------------------------------------------------------------
# process memory
# --------------------------------------------------------------------------------------
def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.hwm_kib: dict[int, int] = {}
        self.peak_sum_rss_kib = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        total = 0
        for p in descendants(self.pid):
            hwm, rss = _status_kib(p, "VmHWM"), _status_kib(p, "VmRSS")
            if hwm is not None:
                self.hwm_kib[p] = max(self.hwm_kib.get(p, 0), hwm)
            total += rss or 0
        self.peak_sum_rss_kib = max(self.peak_sum_rss_kib, total)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.sample()


def cpu_seconds(pid: int) -> float | None:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(db_url: str, env: dict[str, str]) -> str:
    out = subprocess.run([str(C.VENV_BIN / "warden"), "keys", "create", "--name", "benchmark", "--role", "client",
                          "--database-url", db_url], capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"warden keys create failed ({out.returncode}): {out.stderr[-1500:]}")
    return out.stdout.strip().splitlines()[-1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float) -> float:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"warden serve exited with {proc.returncode} before becoming healthy")
        try:
            if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"warden serve not healthy after {timeout:.0f} s")


# --------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------
async def open_loop(base: str, key: str, texts: list[str], rate: float, duration: float,
                    req_timeout: float) -> dict[str, Any]:
    import httpx

    n = round(rate * duration)
    loop = asyncio.get_running_loop()
    lat_sched: list[float] = []
    lat_send: list[float] = []
    lateness: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=req_timeout,
                                 limits=limits) as client:

        async def one(i: int, scheduled: float) -> None:
            sent = loop.time()
            lateness.append(sent - scheduled)
            try:
                r = await client.post("/v1/moderate", json={"text": texts[i % len(texts)], "surface": "comment"})
                end = loop.time()
                if r.status_code != 200:
                    errors[f"HTTP {r.status_code}"] += 1
                    return
                if r.json().get("missing_signals"):  # a failing detector answers fast: not a valid sample
                    errors["missing_signals"] += 1
                    return
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return
            lat_sched.append(end - scheduled)
            lat_send.append(end - sent)

        # warm-up: sequential, not counted
        for i in range(min(50, n)):
            await one(len(texts) - 1 - i, loop.time())
        lat_sched.clear(), lat_send.clear(), lateness.clear(), errors.clear()
        await asyncio.sleep(1.0)

        tasks = []
        t0 = loop.time() + 0.05
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        send_window = loop.time() - t0
        _done, pending = await asyncio.wait(tasks, timeout=req_timeout + 5)
        for t in pending:
            t.cancel()
            errors["unfinished"] += 1
        finished = loop.time() - t0

    def ms(xs: list[float], q: float) -> float:
        return round(C.percentile(xs, q) * 1000, 2)

    return {
        "requests": n,
        "ok": len(lat_sched),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "rate_target": rate,
        "rate_achieved_send": round(n / send_window, 2) if send_window > 0 else None,
        "rate_achieved_ok": round(len(lat_sched) / finished, 2) if finished > 0 else None,
        "duration_s": round(finished, 2),
        "latency_ms": {"p50": ms(lat_sched, 50), "p90": ms(lat_sched, 90), "p99": ms(lat_sched, 99),
                       "max": round(max(lat_sched) * 1000, 2) if lat_sched else None,
                       "mean": round(statistics.fmean(lat_sched) * 1000, 2) if lat_sched else None},
        "latency_from_actual_send_ms": {"p50": ms(lat_send, 50), "p99": ms(lat_send, 99),
                                        "max": round(max(lat_send) * 1000, 2) if lat_send else None},
        "client_send_lateness_ms": {"p50": ms(lateness, 50), "p99": ms(lateness, 99),
                                    "max": round(max(lateness) * 1000, 2) if lateness else None},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--policy", type=Path, default=None,
                    help="policy file (default policies/default.yaml; --quick without a model: the banks tier)")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds")
    ap.add_argument("--tag", default=None, help="write results/api_latency_<tag>.json (e.g. a second rate)")
    ap.add_argument("--startup-timeout", type=float, default=180.0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 req/s for 3 s")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="measure this model directory (a snapshot of models/text-v1) instead of the one the "
                         "policies name; the policies are copied to a temp dir with model_dir rewritten")
    ap.add_argument("--profile", type=Path, default=None,
                    help="also sample the server with py-spy during the load (pip install py-spy) and write a "
                         "speedscope JSON profile here (sampling slows the server a little: profile and measure "
                         "in separate runs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rate, args.duration = 20.0, 3.0
    C.use_model_dir(args.model_dir)
    if args.policy is None:
        args.policy = C.DEFAULT_POLICY if (C.model_available() or not args.quick) else C.POLICIES / "banks.yaml"
    policy = args.policy.resolve()
    if not (0 < args.rate <= 2000 and 0 < args.duration <= 600):
        ap.error("rate must be in (0, 2000] and duration in (0, 600]")

    machine = C.machine_info()  # load average before the run
    rows, prov = C.short_text_sample(1000 if not args.quick else 200, seed=1)
    texts = [r["text"] for r in rows]
    with tempfile.TemporaryDirectory(prefix="warden-api-bench-") as td:
        db_url = f"sqlite:///{td}/warden.db"
        env = {**os.environ, "WARDEN_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
        served_policy = policy if args.model_dir is None else C.policy_with_model(policy, args.model_dir, Path(td))
        key = create_key(db_url, env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [str(C.VENV_BIN / "warden"), "serve", "--host", "127.0.0.1", "--port", str(port), "--policy",
               str(served_policy), "--database-url", db_url]
        log_path = Path(td) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=C.ROOT)
        sampler = None
        try:
            startup_s = wait_healthy(base, server, args.startup_timeout)
            cpu0 = cpu_seconds(server.pid)
            sampler = MemorySampler(server.pid)
            sampler.start()
            spy = None
            if args.profile is not None:
                spy = subprocess.Popen([str(C.VENV_BIN / "py-spy"), "record", "-p", str(server.pid), "-o",
                                        str(args.profile), "-f", "speedscope", "-r", "200", "-d",
                                        str(int(args.duration) + 2)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            deadline = args.duration + args.timeout + 60
            load = asyncio.run(asyncio.wait_for(open_loop(base, key, texts, args.rate, args.duration, args.timeout),
                                                deadline))
            cpu1 = cpu_seconds(server.pid)
            sampler.stop()
            if spy is not None:
                spy.wait(timeout=60)
        except Exception:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            try:
                if sampler is not None and sampler.is_alive():
                    sampler.stop()
            finally:
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()

    hwm = sampler.hwm_kib
    server_cpu = None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2)
    payload = {
        "benchmark": "api_latency", "quick": args.quick, "machine": machine, "model": C.model_fingerprint(),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(cmd).replace(str(C.ROOT) + "/", "").replace(td, "$TMP"),
        "policy": C.rel(policy),
        "database": "SQLite in a temp dir (fresh)", "texts": prov,
        "server_startup_s": round(startup_s, 2),
        **load,
        "server_cpu_s_during_load": server_cpu,
        "server_processes": len(hwm),
        "server_peak_rss_mib": round(hwm.get(server.pid, 0) / 1024, 1),
        "server_tree_sum_vmhwm_mib": round(sum(hwm.values()) / 1024, 1),
        "server_tree_peak_sampled_rss_mib": round(sampler.peak_sum_rss_kib / 1024, 1),
        "targets": {"p99_ms": TARGET_P99_MS, "rss_mib": TARGET_RSS_MIB},
    }
    payload["targets"]["p99_met"] = (load["latency_ms"]["p99"] <= TARGET_P99_MS and load["error_count"] == 0)
    payload["targets"]["rss_met"] = payload["server_tree_sum_vmhwm_mib"] < TARGET_RSS_MIB
    path = C.write_result("api_latency" + (f"_{args.tag}" if args.tag else ""), payload, quick=args.quick)
    lat = load["latency_ms"]
    print(f"\nPOST /v1/moderate, single items, open loop at {args.rate:g} req/s for {args.duration:g} s "
          f"({payload['policy']})")
    print(C.table(["p50 ms", "p90 ms", "p99 ms", "max ms", "ok", "errors", "achieved req/s", "server peak RSS MiB",
                   "server CPU s"],
                  [[lat["p50"], lat["p90"], lat["p99"], lat["max"], load["ok"], load["error_count"],
                    load["rate_achieved_ok"], payload["server_tree_sum_vmhwm_mib"], server_cpu]]))
    print(f"  from actual send: {load['latency_from_actual_send_ms']}; client lateness: "
          f"{load['client_send_lateness_ms']}; errors: {load['errors'] or 'none'}")
    print(f"  server start-up {payload['server_startup_s']} s; processes {len(hwm)}")
    print(f"\nwritten {C.rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
