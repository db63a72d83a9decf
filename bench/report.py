#!/usr/bin/env python3
"""Turns bench/compare's runs.jsonl into the markdown tables and a summary
JSON. Each figure is the median over the rounds of one (scenario, load,
system); proxy CPU is per million requests (or per GB, per connection)."""

import json
import statistics
import sys

LABELS = {
    "direct": "direct (no proxy)",
    "direct-tls": "direct, TLS",
    "sluice": "sluice, TLS, recording+policy{masking}",
    "sluice-off": "sluice, TLS, recording/policy/masking off",
    "sluice-rec": "sluice, TLS, recording only",
    "sluice-policy": "sluice, TLS, policy only",
    "pgbouncer": "pgbouncer (transaction pool)",
    "pgbouncer-tls": "pgbouncer, client TLS",
    "haproxy": "HAProxy (TCP)",
    "haproxy-tls": "HAProxy, TLS termination",
    "haproxy-http": "HAProxy (http mode)",
    "nginx": "nginx (proxy_pass, keep-alive)",
}
TITLES = {
    1: "Scenario 1: point selects, real PostgreSQL (closed loop, max throughput)",
    2: "Scenario 2: point selects, mock backend (proxy cost alone)",
    3: "Scenario 3: fixed rate at half the slowest maximum: latency added over direct",
    4: "Scenario 4: a new TLS connection per request (TLS + authentication + `select 1`)",
    5: "Scenario 5: bulk result set streamed",
    6: "Scenario 6: HTTP, mock backend",
}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0, unit=""):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def main():
    runs_path, env_path, md_path, json_path = sys.argv[1:5]
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    env = json.load(open(env_path))
    masking = " +masking" if env.get("masking") == "on" else ""
    groups = {}
    order = []
    for run in runs:
        key = (run["scenario"], run["load"], run["system"])
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(run)

    def summary(key):
        rs = groups[key]
        if any("skipped" in r for r in rs):
            return {"scenario": key[0], "load": key[1], "system": key[2], "skipped": rs[0]["skipped"]}
        def per(run, field):
            return run.get(field)
        def cpu_per_million(run):
            cpu, n = run.get("proxy_cpu_s"), run.get("requests", 0)
            return cpu / n * 1e6 if cpu is not None and n else None
        def per_cpu(run):
            cpu, n = run.get("proxy_cpu_s"), run.get("requests", 0)
            return n / cpu if cpu else None
        def cpu_per_gb(run):
            cpu, b = run.get("proxy_cpu_s"), run.get("bytes_received", 0)
            return cpu / (b / 1e9) if cpu is not None and b else None
        return {
            "scenario": key[0], "load": key[1], "system": key[2], "rounds": len(rs),
            "requests_per_second": median(per(r, "requests_per_second") for r in rs),
            "bytes_per_second": median(per(r, "bytes_per_second") for r in rs),
            "p50_us": median(r.get("latency_us", {}).get("p50") for r in rs),
            "p99_us": median(r.get("latency_us", {}).get("p99") for r in rs),
            "p99_9_us": median(r.get("latency_us", {}).get("p99_9") for r in rs),
            "max_us": median(r.get("latency_us", {}).get("max") for r in rs),
            "errors": sum(r.get("errors", 0) + r.get("failed", 0) for r in rs),
            "error_samples": sorted({s for r in rs for s in r.get("error_samples", [])})[:3],
            "proxy_cpu_s_per_million": median(cpu_per_million(r) for r in rs),
            "requests_per_proxy_cpu_s": median(per_cpu(r) for r in rs),
            "proxy_cpu_s_per_gb": median(cpu_per_gb(r) for r in rs),
        }

    rows = [summary(k) for k in order]
    by_key = {(r["scenario"], r["load"], r["system"]): r for r in rows}
    out = []
    out.append(f"# sluice comparison, {env['stamp']}{' (quick)' if env['quick'] else ''}\n")
    out.append(
        f"{env['cpus']} CPUs, kernel {env['kernel']}, load average at the end {env['load_average']}; "
        f"proxies pinned to CPU {env['proxy_cpu']}, load generator and backend to CPU {env['load_cpu']}; "
        f"{env['rounds']} round(s) of {env['seconds']} s per figure (median shown); "
        f"masking {env['masking']}. Versions: {json.dumps(env['versions'])}.\n"
    )
    notes = []
    for scenario in sorted({r["scenario"] for r in rows}):
        out.append(f"\n## {TITLES[scenario]}\n")
        srows = [r for r in rows if r["scenario"] == scenario and "skipped" not in r]
        skipped = [r for r in rows if r["scenario"] == scenario and "skipped" in r]
        if scenario in (1, 2, 6):
            out.append("| load | system | req/s | vs direct | p50 us | p99 us | p99.9 us | proxy CPU s / 1M req | req per proxy CPU s | errors |")
            out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in srows:
                direct = by_key.get((scenario, r["load"], "direct"))
                ratio = (r["requests_per_second"] / direct["requests_per_second"]
                         if direct and direct.get("requests_per_second") else None)
                out.append(
                    f"| {r['load']} | {LABELS[r['system']].format(masking=masking)} | {fmt(r['requests_per_second'])} | "
                    f"{fmt(ratio * 100 if ratio is not None else None, 0, '%')} | {fmt(r['p50_us'])} | {fmt(r['p99_us'])} | "
                    f"{fmt(r['p99_9_us'])} | {fmt(r['proxy_cpu_s_per_million'], 1)} | {fmt(r['requests_per_proxy_cpu_s'])} | {r['errors']} |")
            for r in skipped:
                out.append(f"| {r['load']} | {LABELS[r['system']].format(masking=masking)} | {r['skipped']} | | | | | | | |")
            if scenario == 6:
                loads = sorted({r["load"] for r in srows})
                for load in loads:
                    out.append(f"| {load} | sluice | n/a (HTTP proxy not implemented) | | | | | | | |")
        elif scenario == 3:
            out.append("| load | system | achieved req/s | p50 us | p99 us | p99.9 us | added p50 | added p99 | added p99.9 | errors |")
            out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in srows:
                direct = by_key.get((scenario, r["load"], "direct"))
                def added(field):
                    if not direct or r[field] is None or direct[field] is None:
                        return None
                    return r[field] - direct[field]
                out.append(
                    f"| {r['load']} | {LABELS[r['system']].format(masking=masking)} | {fmt(r['requests_per_second'])} | "
                    f"{fmt(r['p50_us'])} | {fmt(r['p99_us'])} | {fmt(r['p99_9_us'])} | {fmt(added('p50_us'), 0, ' us')} | "
                    f"{fmt(added('p99_us'), 0, ' us')} | {fmt(added('p99_9_us'), 0, ' us')} | {r['errors']} |")
        elif scenario == 4:
            out.append("| system | connections/s | p50 us | p99 us | proxy CPU ms per connection | errors |")
            out.append("|---|---:|---:|---:|---:|---:|")
            for r in srows:
                per_conn = (r["proxy_cpu_s_per_million"] / 1000 if r["proxy_cpu_s_per_million"] is not None else None)
                out.append(
                    f"| {LABELS[r['system']].format(masking=masking)} | {fmt(r['requests_per_second'])} | {fmt(r['p50_us'])} | "
                    f"{fmt(r['p99_us'])} | {fmt(per_conn, 3)} | {r['errors']} |")
        elif scenario == 5:
            out.append("| load | system | MB/s | vs direct | result sets/s | proxy CPU s per GB | errors |")
            out.append("|---|---|---:|---:|---:|---:|---:|")
            for r in srows:
                direct = by_key.get((scenario, r["load"], "direct"))
                ratio = (r["bytes_per_second"] / direct["bytes_per_second"]
                         if direct and direct["bytes_per_second"] else None)
                out.append(
                    f"| {r['load']} | {LABELS[r['system']].format(masking=masking)} | {fmt((r['bytes_per_second'] or 0) / 1e6)} | "
                    f"{fmt(ratio * 100 if ratio is not None else None, 0, '%')} | {fmt(r['requests_per_second'], 2)} | "
                    f"{fmt(r['proxy_cpu_s_per_gb'], 2)} | {r['errors']} |")
        for r in srows:
            if r["errors"]:
                notes.append(f"s{scenario} {r['load']} {r['system']}: {r['errors']} errors, e.g. {r['error_samples']}")
    if notes:
        out.append("\n## Errors\n")
        out.extend(f"- {n}" for n in notes)
    out.append("")
    open(md_path, "w").write("\n".join(out))
    json.dump({"environment": env, "results": rows}, open(json_path, "w"), indent=1)


if __name__ == "__main__":
    main()
