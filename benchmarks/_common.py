"""Shared helpers for the benchmark scripts: machine facts, the short-text sample, JSON output.

Not part of the `warden` package: scripts in benchmarks/ import it as a sibling module.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
#: Where scripts write their JSON; WARDEN_BENCH_RESULTS redirects it (the smoke tests use a temp dir).
RESULTS = Path(os.environ.get("WARDEN_BENCH_RESULTS", BENCH / "results"))
POLICIES = BENCH / "policies"
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
#: The trained model the tier policies point at; WARDEN_BENCH_MODEL_DIR overrides only the
#: "is a model there?" check and the model card read (policies keep their own paths).
MODEL_DIR = Path(os.environ.get("WARDEN_BENCH_MODEL_DIR", ROOT / "models" / "text-v1"))
VENV_BIN = Path(sys.executable).parent

#: English user-content sources (tweets, comments, SMS, chat replies) used for the short-text mix.
SHORT_TEXT_SOURCES: tuple[str, ...] = (
    "davidson", "olid", "hatexplain", "toxigen", "mlma", "threatgram", "sms_spam", "youtube_spam",
)
SHORT_MAX_CHARS = 280


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True,
                                    text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "mem_total_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def data_root() -> Path:
    return Path(os.environ.get("WARDEN_DATA", ROOT.parent / "shared" / "datasets")).expanduser().resolve()


def policy_example_texts() -> list[str]:
    """Fallback texts when the shared datasets are absent: the policy's written examples."""
    import yaml

    pol = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    out: list[str] = []
    for cat in pol.get("categories", {}).values():
        for kind in ("violating", "benign"):
            out.extend((cat.get("examples") or {}).get(kind, []))
    return out


def short_text_sample(n: int, *, seed: int = 0, sources: Sequence[str] = SHORT_TEXT_SOURCES,
                      max_chars: int = SHORT_MAX_CHARS) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`n` short English texts (< max_chars), mixed evenly from `sources`, deterministic for `seed`.

    Returns (rows with id/text/source, provenance). Falls back to the policy's written examples
    (repeated) when $WARDEN_DATA is missing, and says so in the provenance.
    """
    root = data_root()
    rng = random.Random(seed)
    if not root.is_dir():
        base = policy_example_texts()
        rows = [{"id": f"ex{i}", "text": base[i % len(base)], "source": "policy_examples"} for i in range(n)]
        return rows, {"data": "policy examples (WARDEN_DATA missing)", "sources": {"policy_examples": n}}
    from warden.learn.text_data import load_source

    pools: dict[str, list[str]] = {}
    for s in sources:
        try:
            texts = [r.text for r in load_source(s, root) if r.language == "en" and len(r.text) < max_chars]
        except (FileNotFoundError, KeyError, ValueError) as exc:
            print(f"warning: source {s} skipped: {exc}", file=sys.stderr)
            continue
        texts = sorted(set(texts))  # dedupe; sorted so the sample does not depend on load order
        rng.shuffle(texts)
        pools[s] = texts
    if not pools:
        raise SystemExit(f"no usable source under {root}")
    # round-robin so every source contributes equally (until a small one runs out)
    rows: list[dict[str, Any]] = []
    counts = dict.fromkeys(pools, 0)
    idx = dict.fromkeys(pools, 0)
    while len(rows) < n and any(idx[s] < len(pools[s]) for s in pools):
        for s in pools:
            if len(rows) >= n:
                break
            if idx[s] < len(pools[s]):
                rows.append({"id": f"{s}-{idx[s]}", "text": pools[s][idx[s]], "source": s})
                idx[s] += 1
                counts[s] += 1
    rng.shuffle(rows)
    lens = [len(r["text"]) for r in rows]
    prov = {"data": "$WARDEN_DATA", "sources": counts, "seed": seed, "max_chars": max_chars,
            "mean_chars": round(statistics.fmean(lens), 1), "median_chars": statistics.median(lens)}
    return rows, prov


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n")


def write_result(name: str, payload: dict[str, Any], *, quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}.quick.json" if quick else f"{name}.json")
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def model_available(model_dir: Path | None = None) -> bool:
    model_dir = model_dir or MODEL_DIR
    return (model_dir / "linear.json").exists() and (model_dir / "embedding_heads.json").exists()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def rel(path: Path) -> str:
    """A path relative to the repository root when inside it (for printed commands and JSON)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def model_fingerprint(model_dir: Path | None = None) -> dict[str, Any]:
    """sha256 prefixes of the model files a figure was measured with."""
    model_dir = model_dir or MODEL_DIR
    import hashlib

    out: dict[str, Any] = {"dir": rel(model_dir)}
    for name in ("linear.npz", "embedding_heads.npz", "metrics.json"):
        f = model_dir / name
        if f.exists():
            out[name] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return out


def policy_with_model(policy: Path, model_dir: Path, out_dir: Path) -> Path:
    """A copy of `policy` in `out_dir` whose detectors read `model_dir` (absolute) and whose other
    relative paths still point at the original files. Used by --model-dir to measure a snapshot
    of a model while models/text-v1 is being rebuilt."""
    import yaml

    policy = Path(policy).resolve()
    pol = yaml.safe_load(policy.read_text(encoding="utf-8"))

    def fix(v: Any) -> Any:
        if isinstance(v, list):
            return [fix(x) for x in v]
        if not isinstance(v, dict):
            return v
        out = {}
        for k, x in v.items():
            if k == "model_dir" and isinstance(x, str):
                x = str(Path(model_dir).resolve())
            elif k == "path" and isinstance(x, str) and not Path(x).is_absolute():
                x = str((policy.parent / x).resolve())
            out[k] = fix(x)
        return out

    pol["detectors"] = fix(pol.get("detectors") or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / policy.name
    dst.write_text(yaml.safe_dump(pol, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dst


def use_model_dir(model_dir: Path | None) -> None:
    """Point the model checks and fingerprints at `model_dir` (from a script's --model-dir)."""
    global MODEL_DIR
    if model_dir is not None:
        MODEL_DIR = Path(model_dir).resolve()
