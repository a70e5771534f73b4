"""Render the markdown tables of BENCHMARKS.md from benchmarks/results/*.json (no measuring).

.venv/bin/python benchmarks/report.py > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def _load(name: str) -> dict[str, Any] | None:
    p = C.RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _n(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int | float) else str(x)


def _ci(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['value']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"


def machine(res: dict[str, Any]) -> str:
    m = res["machine"]
    return (
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB RAM, Python {m['python']}, "
        f"{m['platform']}; git {m['git_commit']}{' + uncommitted changes' if m['git_dirty'] else ''}; "
        f"measured {m['date_utc']}, load average at start {m['loadavg_1_5_15']}"
    )


def classify(res: dict[str, Any]) -> str:
    out = [
        f"Sample: {sum(res['sample']['sources'].values())} texts, mean {res['sample'].get('mean_chars')} chars, "
        f"from {', '.join(f'{k} {v}' for k, v in res['sample']['sources'].items())} "
        f"(seed {res['sample'].get('seed')}).",
        f"Model: {res.get('model')}.",
        "",
        "| tier | policy | in-process texts/s (median; runs in s) | in-process texts per CPU-second "
        "| escalated to embedding | end-to-end texts/s (whole process; runs in s) | start-up s "
        "| end-to-end excl. start-up texts/s | load avg before -> after | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for tier, r in res["tiers"].items():
        ip, pr = r.get("inprocess", {}), r.get("process", {})
        esc = ip.get("escalated_to_embedding")
        out.append(
            f"| {tier} | `{r['policy']}` | {_n(ip.get('texts_per_s', '-'))} ({ip.get('wall_s')}) | "
            f"{_n(ip.get('texts_per_cpu_s', '-'))} | "
            f"{'-' if esc is None else f'{esc:.1%}'} | {_n(pr.get('texts_per_s', '-'))} ({pr.get('wall_s')}) | "
            f"{pr.get('startup_wall_s_median', '-')} | {_n(pr.get('texts_per_s_excl_startup', '-'))} | "
            f"{(r.get('loadavg_before') or ['?'])[0]} -> {(r.get('loadavg_after') or ['?'])[0]} | "
            f"{pr.get('max_rss_mib_median', '-')} |"
        )
    out.append("")
    for tier, r in res["tiers"].items():
        ip = r.get("inprocess")
        if ip:
            out.append(
                f"* {tier}: detector seconds {ip['detector_s']}, items per detector {ip['detector_items']}, "
                f"outside detectors (reading, decide, JSON) {ip['outside_detectors_s']} s"
            )
    multi = [(tier, k, r[k]) for tier, r in res["tiers"].items() for k in r if k.startswith("process_w")]
    if multi:
        out += ["", "`warden classify --workers N` (N processes, each loading the models once; same sample):",
                "", "| tier | processes | end-to-end texts/s (runs in s) | start-up s | excl. start-up texts/s "
                "| vs 1 process | peak RSS MiB (largest process) |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for tier, _k, pr in multi:
            one = res["tiers"][tier].get("process", {}).get("texts_per_s")
            ratio = f"{pr['texts_per_s'] / one:.2f}x" if one else "-"
            out.append(f"| {tier} | {pr['workers']} | {_n(pr['texts_per_s'])} ({pr['wall_s']}) | "
                       f"{pr['startup_wall_s_median']} | {_n(pr['texts_per_s_excl_startup'])} | {ratio} | "
                       f"{pr['max_rss_mib_median']} |")
    sw = res["tiers"].get("cascade", {}).get("escalation_sweep")
    if sw:
        out.append(
            f"* cascade escalation band {sw['band']}: share of items escalated if the band started at "
            + ", ".join(f"{k.split('=')[1]}: {v:.1%}" for k, v in sw.items() if k.startswith("low="))
            + f"; share in the band per category: {sw['in_band_by_category']}"
        )
    return "\n".join(out)


def api(res: dict[str, Any]) -> str:
    lat = res["latency_ms"]
    return "\n".join(
        [
            f"`{res['command']}` (policy `{res['policy']}`, {res['database']}); model {res.get('model')}",
            "",
            "| rate | duration s | requests | ok | errors | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | "
            "server peak RSS MiB (VmHWM, all processes) | server CPU s during load | load avg before -> after |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {res['rate_target']:g}/s | {res['duration_s']} | {res['requests']} | {res['ok']} "
            f"| {res['error_count']} {res['errors'] or ''} | {res['rate_achieved_ok']} | {lat['p50']} | {lat['p90']} "
            f"| {lat['p99']} | {lat['max']} | {res['server_tree_sum_vmhwm_mib']} ({res['server_processes']} "
            f"process(es)) | {res['server_cpu_s_during_load']} "
            f"({1000 * (res['server_cpu_s_during_load'] or 0) / max(res['ok'], 1):.1f} ms per answered request) "
            f"| {res['machine']['loadavg_1_5_15'][0]} -> {(res.get('loadavg_after') or ['?'])[0]} |",
            "",
            f"Latency is from the scheduled send time. From the actual send: {res['latency_from_actual_send_ms']}; "
            f"client send lateness: {res['client_send_lateness_ms']}; server start-up {res['server_startup_s']} s.",
        ]
    )


def peers(res: dict[str, Any]) -> str:
    out = ["| system | texts/s (in-process, same texts) |", "| --- | --- |"]
    out += [f"| {k} | {v['texts_per_s']:,} |" for k, v in res["speed"].items()]
    out += ["", f"Versions: {res.get('versions')}. Split: {res.get('split')}", ""]
    for cat, groups in res.get("quality", {}).items():
        out += [
            f"**{cat}** (held-out test rows, English)",
            "",
            "| test rows | n (pos) | system | PR-AUC [95% CI] | F1@0.5 [95% CI] | F1 at the policy's flag threshold |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for g, e in groups.items():
            for label in ("warden (cascade)", "warden (linear tier)", "alt-profanity-check", "hatesonar"):
                if label in e:
                    r = e[label]
                    star = " (trained on this dataset)" if "note" in r else ""
                    out.append(
                        f"| {g} | {e['n']} ({e['pos']}) | {label}{star} | {_ci(r['pr_auc'])} | {_ci(r['f1@0.5'])} | "
                        f"{_ci(r.get('f1@policy_flag'))} |"
                    )
        out.append("")
    xd = res.get("cross_dataset") or {}
    if xd:
        out += [
            "**Cross-dataset** (Warden retrained without the source: model card's leave-one-source-out, point "
            "estimates; peers scored on the same rows)",
            "",
            "| category | left-out source | n (pos) | Warden LOSO linear PR-AUC | Warden LOSO embedding PR-AUC | "
            "Warden in-distribution embedding PR-AUC (test) | alt-profanity-check PR-AUC | hatesonar PR-AUC | eval |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for cat, per in xd.items():
            for src, r in per.items():
                wl = r["warden_loso"]
                ind = r.get("warden_in_distribution_test") or {}

                def peer(name: str, r: dict = r) -> str:
                    x = r.get(name)
                    return "-" if not x else _ci(x["pr_auc"]) + (" (trained on it)" if "note" in x else "")

                out.append(
                    f"| {cat} | {src} | {r['n']} ({r['pos']}) | "
                    f"{wl.get('linear', {}).get('pr_auc', float('nan')):.3f} | "
                    f"{wl.get('embedding', {}).get('pr_auc', float('nan')):.3f} | "
                    f"{'-' if ind.get('embedding') is None else format(ind['embedding'], '.3f')} | "
                    f"{peer('alt-profanity-check')} | {peer('hatesonar')} | {r['eval']} |"
                )
    return "\n".join(out)


def stream(res: dict[str, Any]) -> str:
    from stream_throughput import render

    return render(res)


def pg_load(res: dict[str, Any]) -> str:
    from pg_load import render

    return render(res)


def main() -> int:
    names = ["classify_throughput"]
    names += sorted(p.stem for p in C.RESULTS.glob("api_latency*.json") if not p.stem.endswith((".quick", ".partial")))
    names += ["peers"]
    names += sorted(p.stem for p in C.RESULTS.glob("stream_throughput*.json") if not p.stem.endswith(".quick"))
    names += ["pg_load"]
    fns = {"classify_throughput": classify, "peers": peers, "stream_throughput": stream, "pg_load": pg_load}
    for name in names:
        res = _load(name)
        if res is None:
            print(f"## {name}: no results\n")
            continue
        fn = fns.get(name, stream if name.startswith("stream_throughput") else api)
        print(f"## {name}\n\nMachine: {machine(res)}\n\n{fn(res)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
