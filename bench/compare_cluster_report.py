#!/usr/bin/env python3
"""Writes report.md of a bench/compare_cluster.sh run (Fjord vs Kafka clusters).

usage: compare_cluster_report.py RESULT_DIR

Reads RESULT_DIR/results.jsonl (one JSON object per measurement) and
machine.txt; the brokers' command lines, Kafka's node-1 properties, the load
generator's settings and the WARN/ERROR summaries are listed by name.
"""
import json
import math
import os
import statistics
import sys

out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
machine = {}
for line in open(os.path.join(out, "machine.txt")):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        machine[k] = v

SYSTEMS = ("fjord", "kafka")
TIERS = [t for t in machine.get("tiers", "A").split() if any(r.get("tier") == t for r in rows)]
TIER_NAME = {"A": "tier A: acknowledged before fsync (Kafka's defaults, Fjord with fjord.write.caching=true)",
             "B": "tier B: acknowledged after fsync (Kafka with log.flush.interval.messages=1, Fjord's group commit)"}


def num(v):
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else None


def row(system, tier, workload):
    for r in rows:
        if r.get("system") == system and r.get("tier") == tier and r.get("workload") == workload:
            return r
    return None


def val(system, tier, workload, key):
    r = row(system, tier, workload)
    return num(r.get(key)) if r else None


def fmt(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def ratio(a, b):
    return fmt(a / b) if a is not None and b else "–"


def cpu_per_gb(system, tier):
    cpu, b = val(system, tier, "P", "broker_cpu_s"), val(system, tier, "P", "bytes")
    return cpu / (b / 1e9) if cpu is not None and b else None


def saturated(system, tier):
    """E's broker acknowledged under 95 % of the asked rate, or kept a standing queue."""
    ack, asked, p50 = val(system, tier, "E", "ack_rate"), val(system, tier, "E", "rate"), val(system, tier, "E",
                                                                                              "e2e_p50_ms")
    return ack is not None and bool(asked) and (ack < 0.95 * asked or (p50 or 0) > 100)


def failovers(system, tier):
    return sorted((r for r in rows if r.get("system") == system and r.get("tier") == tier
                   and r.get("workload") == "F"), key=lambda r: r.get("run", 0))


def failover_median(system, tier):
    v = [num(r.get("failover_ms")) for r in failovers(system, tier)]
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


L = []
date = machine.get("date", "")[:10]
n = machine.get("nodes", "3")
L.append(f"# Fjord vs Apache Kafka 4.4, {n}-node clusters: {machine.get('mode')} run, {date}")
L.append("")
tiers_arg = f' --tiers "{machine.get("tiers")}"' if machine.get("tiers", "A") != "A" else ""
L.append(f"Produced by `make bench-compare CLUSTER={n}` (`bench/compare_cluster.sh`; this run: "
         f"`bench/compare_cluster.sh --nodes {n} --mode {machine.get('mode')}{tiers_arg}`). "
         f"One invocation started {n} Fjord nodes, measured them, stopped them, then did the same with {n} Kafka "
         "nodes (KRaft, every node broker and controller), each node on loopback with its own fresh data "
         "directory. Topics have replication factor "
         f"{machine.get('replication_factor')} and min.insync.replicas={machine.get('min_insync_replicas')}; "
         "every record is produced with acks=all. Nothing is pinned: the brokers and the client share the "
         f"machine's {machine.get('cpus')} CPUs. What each figure means: bench/README.md, section "
         "\"Fjord vs Kafka, clusters\".")
L.append("")
if machine.get("note"):
    L.append(f"**Conditions:** {machine['note']}")
    L.append("")
L.append(f"Load average at start {machine.get('loadavg_start')}, at end {machine.get('loadavg_end')}; "
         f"niceness {machine.get('nice')}; the run took {machine.get('elapsed_s')} s.")
L.append("")

# ---- headline
L.append("## Headline (same run)")
L.append("")
L.append("| figure | tier | Fjord | Kafka | Fjord/Kafka |")
L.append("|---|---|---:|---:|---:|")
for t in TIERS:
    L.append(f"| produce MB/s (acks=all, RF 3) | {t} | {fmt(val('fjord', t, 'P', 'mb_per_s'))} | "
             f"{fmt(val('kafka', t, 'P', 'mb_per_s'))} | "
             f"{ratio(val('fjord', t, 'P', 'mb_per_s'), val('kafka', t, 'P', 'mb_per_s'))} |")
    L.append(f"| broker CPU s per GB produced (sum of {n} nodes) | {t} | {fmt(cpu_per_gb('fjord', t))} | "
             f"{fmt(cpu_per_gb('kafka', t))} | {ratio(cpu_per_gb('fjord', t), cpu_per_gb('kafka', t))} |")
    for k, name in (("e2e_p50_ms", "end-to-end p50 ms"), ("e2e_p99_ms", "end-to-end p99 ms")):
        cell = {s: fmt(val(s, t, "E", k)) + (" (did not keep up)" if saturated(s, t) else "") for s in SYSTEMS}
        L.append(f"| {name} at {machine.get('e2e_rate')} records/s | {t} | {cell['fjord']} | "
                 f"{cell['kafka']} | {ratio(val('fjord', t, 'E', k), val('kafka', t, 'E', k))} |")
    L.append(f"| failover ms (kill -9 of a leader → next ack), median of {machine.get('failover_runs')} | {t} | "
             f"{fmt(failover_median('fjord', t))} | {fmt(failover_median('kafka', t))} | "
             f"{ratio(failover_median('fjord', t), failover_median('kafka', t))} |")
L.append("")
errs = [f"{r['system']}/{r['tier']}/{r['workload']}" for r in rows
        if r.get("workload") in ("P", "E", "F") and ((num(r.get("errors")) or 0) > 0 or r.get("exit_code", 0) != 0
                                                     or (num(r.get("missing_acked")) or 0) > 0)]
if errs:
    L.append(f"**Errors** (delivery errors, non-zero exits or lost records; the figures of these rows are "
             f"suspect): {', '.join(errs)}.")
    L.append("")

# ---- machine
L.append("## Machine and versions")
L.append("")
L.append("| | |")
L.append("|---|---|")
for k, name in (("host_cpu", "CPU"), ("cpus", "CPUs"), ("memory", "memory"), ("kernel", "kernel"),
                ("filesystem", "data directories"), ("fjord_version", "Fjord"), ("fjord_commit", "Fjord commit"),
                ("kafka_version", "Apache Kafka"), ("java", "Java"), ("librdkafka", "librdkafka (fjord_loadgen)"),
                ("confluent_kafka", "confluent-kafka (failover client)"), ("date", "date (UTC)")):
    L.append(f"| {name} | {machine.get(k, '')} |")
L.append("")
L.append("Settings: " + ", ".join(f"{k}={machine.get(k)}" for k in (
    "replication_factor", "min_insync_replicas", "record_size", "partitions", "produce_bytes", "warm_bytes",
    "warm_e2e_seconds",
    "e2e_rate", "e2e_seconds", "failover_runs", "failover_rate", "linger_max_ms", "batch_bytes")) + ".")
L.append("")

for t in TIERS:
    L.append(f"## {TIER_NAME.get(t, t)}")
    L.append("")
    # ---- start
    L.append("### Cluster start and topic creation")
    L.append("")
    L.append("| | Fjord | Kafka |")
    L.append("|---|---:|---:|")
    L.append(f"| start (exec, Kafka: format + exec) → every node lists {n} brokers, ms | "
             f"{fmt(val('fjord', t, 'start', 'start_ms'))} | {fmt(val('kafka', t, 'start', 'start_ms'))} |")
    for topic in ("produce", "failover"):
        c = {s: next((r for r in rows if r.get("system") == s and r.get("tier") == t and r.get("workload") == "create"
                      and r.get("topic") == topic), {}) for s in SYSTEMS}
        L.append(f"| create `{topic}` ({c['fjord'].get('partitions', c['kafka'].get('partitions', '?'))} partitions) "
                 f"→ leaders and full ISR, ms | {fmt(num(c['fjord'].get('ready_ms')))} | "
                 f"{fmt(num(c['kafka'].get('ready_ms')))} |")
        L.append(f"| `{topic}` min.insync.replicas as DescribeConfigs reports it | "
                 f"{c['fjord'].get('min_insync_replicas', '–')} | {c['kafka'].get('min_insync_replicas', '–')} |")
    L.append("")

    # ---- produce
    L.append("### P: produce throughput, acks=all")
    L.append("")
    L.append("| | Fjord | Kafka | Fjord/Kafka |")
    L.append("|---|---:|---:|---:|")
    for k, name in (("mb_per_s", "MB/s"), ("records_per_s", "records/s"), ("bytes", "bytes"),
                    ("seconds", "seconds"), ("broker_cpu_s", f"broker CPU s (sum of {n} nodes)")):
        a, b = val("fjord", t, "P", k), val("kafka", t, "P", k)
        L.append(f"| {name} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    L.append(f"| broker CPU s per GB | {fmt(cpu_per_gb('fjord', t))} | {fmt(cpu_per_gb('kafka', t))} | "
             f"{ratio(cpu_per_gb('fjord', t), cpu_per_gb('kafka', t))} |")
    for k, name in (("cpu_user_s", "load generator CPU user s"), ("cpu_sys_s", "load generator CPU sys s"),
                    ("errors", "delivery errors")):
        L.append(f"| {name} | {fmt(val('fjord', t, 'P', k))} | {fmt(val('kafka', t, 'P', k))} | |")
    L.append("")

    # ---- e2e
    L.append(f"### E: latency at {machine.get('e2e_rate')} records/s for {machine.get('e2e_seconds')} s, acks=all")
    L.append("")
    L.append("| | Fjord | Kafka | Fjord/Kafka |")
    L.append("|---|---:|---:|---:|")
    for k, name in (("pub_p50_ms", "publish p50 ms"), ("pub_p99_ms", "publish p99 ms"),
                    ("e2e_p50_ms", "end-to-end p50 ms"), ("e2e_p99_ms", "end-to-end p99 ms"),
                    ("e2e_p999_ms", "end-to-end p99.9 ms"), ("e2e_max_ms", "end-to-end max ms"),
                    ("e2e_steady_p99_ms", "end-to-end p99 ms after the first quarter"),
                    ("e2e_raw_p99_ms", "end-to-end p99 ms from the real send time"),
                    ("ack_rate", "acknowledged records/s"), ("broker_cpu_s", f"broker CPU s (sum of {n} nodes)")):
        a, b = val("fjord", t, "E", k), val("kafka", t, "E", k)
        L.append(f"| {name} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    for k, name in (("late_enqueues", "records sent > 1 ms late (generator starved)"), ("errors", "errors")):
        L.append(f"| {name} | {fmt(val('fjord', t, 'E', k))} | {fmt(val('kafka', t, 'E', k))} | |")
    L.append("")
    for s in SYSTEMS:
        ack, asked, p50 = val(s, t, "E", "ack_rate"), val(s, t, "E", "rate"), val(s, t, "E", "e2e_p50_ms")
        if saturated(s, t):
            L.append(f"**{s} did not keep up with E's rate:** it acknowledged {fmt(ack)} records/s of the "
                     f"{fmt(asked)} asked (or kept a standing queue: median end-to-end {fmt(p50)} ms). Its latencies "
                     "then grow with the length of the run, and the ratio says only that it could not keep up.")
            L.append("")
    for s in SYSTEMS:
        r = row(s, t, "E")
        if r and r.get("e2e_worst_ms_per_second"):
            L.append(f"Worst end-to-end ms of the records scheduled in each second, {s}: "
                     + ", ".join(fmt(num(x)) for x in r["e2e_worst_ms_per_second"]) + ".")
            L.append("")

    # ---- failover
    L.append(f"### F: failover, kill -9 of a partition leader under {machine.get('failover_rate')} records/s "
             "(acks=all, linger.ms=0)")
    L.append("")
    L.append("Times in ms from the SIGKILL. *acks stopped*: the last acknowledgement before the longest silence; "
             "*next ack*: the first one after it (the failover time). *gone*: when the killed process had exited. "
             "*rejoin*: restart of the killed node until every node (it too) answers Metadata with every broker and "
             "every topic's ISR is full again; the next run starts 2 s later.")
    L.append("")
    L.append("| system | run | partition | killed node | it was the controller | gone | acks stopped | next ack "
             "| acked | delivery errors | acked but missing on read-back | rejoin ms |")
    L.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in SYSTEMS:
        rejoin = {r.get("run"): r.get("rejoin_ms") for r in rows if r.get("system") == s and r.get("tier") == t
                  and r.get("workload") == "F_rejoin"}
        for r in failovers(s, t):
            L.append(f"| {s} | {r.get('run')} | {r.get('partition', '–')} | {r.get('killed_node', '–')} | "
                     f"{'yes' if r.get('controller_killed') else 'no'} (controller {r.get('controller', '?')}) | "
                     f"{fmt(num(r.get('process_gone_ms')))} | {fmt(num(r.get('acks_stopped_ms')))} | "
                     f"{fmt(num(r.get('failover_ms')))} | {r.get('acked', '–')} | "
                     f"{r.get('errors', '–')} {r.get('error_names', '')} | {r.get('missing_acked', '–')} | "
                     f"{fmt(num(rejoin.get(r.get('run'))))} |")
    L.append("")
    fm, km = failover_median("fjord", t), failover_median("kafka", t)
    L.append(f"Median failover: Fjord {fmt(fm)} ms, Kafka {fmt(km)} ms, Fjord/Kafka {ratio(fm, km)}.")
    L.append("")

# ---- files
L.append("## Files")
L.append("")
files = sorted(f for f in os.listdir(out) if f not in ("report.md",))
L.append("`results.jsonl` (every raw measurement), `machine.txt`, " + ", ".join(
    f"`{f}`" for f in files if f not in ("results.jsonl", "machine.txt")) + ".")
L.append("")
for s in SYSTEMS:
    for t in TIERS:
        p = os.path.join(out, f"{s}-{t}.warnings")
        if os.path.exists(p):
            text = open(p).read().strip()
            L.append(f"WARN/ERROR lines of {s} tier {t} (each distinct line once, with its count, "
                     f"most frequent first, at most 20 per node):")
            L.append("")
            L.append("```")
            L.append(text[:6000] if text else "(none)")
            L.append("```")
            L.append("")

open(os.path.join(out, "report.md"), "w").write("\n".join(L))
print(os.path.join(out, "report.md"))
