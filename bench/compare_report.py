#!/usr/bin/env python3
"""Writes report.md and the PNG plots of a bench/compare.sh run.

usage: compare_report.py RESULT_DIR

Reads RESULT_DIR/results.jsonl (one JSON object per measurement), machine.txt,
jvm-flags.txt, the brokers' command lines and Kafka's effective configuration,
the load generator's settings (loadgen-*.conf). Plots need matplotlib; without
it the report says so and has none.
"""
import json
import math
import os
import statistics
import sys

out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]


def read_kv(name):
    d = {}
    path = os.path.join(out, name)
    if os.path.exists(path):
        for line in open(path):
            if "=" in line and not line.startswith("#"):
                k, v = line.rstrip("\n").split("=", 1)
                d[k.strip()] = v.strip()
    return d


def read_text(name):
    path = os.path.join(out, name)
    return open(path).read().strip() if os.path.exists(path) else ""


machine = read_kv("machine.txt")
SYSTEMS = ("fjord", "kafka")
TIERS = ("A", "B")
TIER_NAME = {"A": "A: acknowledged before fsync", "B": "B: acknowledged after fsync"}


def row(system, tier, workload, **match):
    for r in rows:
        if r.get("system") == system and r.get("tier") == tier and r.get("workload") == workload and all(
            r.get(k) == v for k, v in match.items()
        ):
            return r
    return None


def val(system, tier, workload, key):
    r = row(system, tier, workload)
    v = r.get(key) if r else None
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else None


def ceiling(test, key="mb_per_s"):
    """The best of the runs: the highest rate, or the lowest latency."""
    vs = [r.get(key) for r in rows if r.get("system") == "machine" and r.get("test") == test
          and isinstance(r.get(key), (int, float))]
    if not vs:
        return None
    return min(vs) if key.endswith("_ms") else max(vs)


def cpu_per_gb(system, tier, workload, bytes_key="bytes", extra_key=None):
    cpu = val(system, tier, workload, "broker_cpu_s")
    b = val(system, tier, workload, bytes_key)
    if extra_key:
        b = (b or 0) + (val(system, tier, workload, extra_key) or 0)
    return cpu / (b / 1e9) if cpu is not None and b else None


def gb_per_cpu_s(system, tier, workload):
    c = cpu_per_gb(system, tier, workload)
    return 1 / c if c else None


def gen_cpu(system, tier, workload):
    u, s = val(system, tier, workload, "cpu_user_s"), val(system, tier, workload, "cpu_sys_s")
    return (u or 0) + (s or 0) if u is not None or s is not None else None


def gen_util(system, tier, workload):
    c, secs = gen_cpu(system, tier, workload), val(system, tier, workload, "seconds")
    if workload in ("W1", "W2j"):  # W2j: the JVM's start-up is part of its CPU time
        secs = val(system, tier, workload, "wall_ms")
        secs = secs / 1000 if secs else None
    return c / secs if c is not None and secs else None


def fmt(v, unit=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 10):
        return f"{int(v):,}"
    a = abs(v)
    s = f"{v:.3f}" if a < 1 else f"{v:.2f}" if a < 10 else f"{v:.1f}" if a < 1000 else f"{v:,.0f}"
    return s + unit


def ratio(f, k):
    return f / k if f is not None and k else None


def frac(v, c):
    return f"{100 * v / c:.0f} %" if v is not None and c else "–"


# ---------------------------------------------------------------------------
# Ceilings
tcp = ceiling("tcp_loopback")
buffered = ceiling("buffered")
buffered_fsync = ceiling("buffered_fsync")
sync4k_p50 = ceiling("sync_4k", "p50_ms")
sync4k_p99 = ceiling("sync_4k", "p99_ms")


def produce_ceiling(tier):
    disk = buffered if tier == "A" else buffered_fsync
    cs = [c for c in (tcp, disk) if c]
    return min(cs) if cs else None


# Metric definitions: (label, getter(system, tier), ceiling(tier) or None, better)
def m(workload, key):
    return lambda s, t: val(s, t, workload, key)


def w3_mb(s, t):
    return val(s, t, "W3", "mb_per_s")


METRICS = [
    ("W1", f"publish latency p50 ms", m("W1", "pub_p50_ms"), None, "lower"),
    ("W1", "publish latency p99 ms", m("W1", "pub_p99_ms"), None, "lower"),
    ("W1", "publish latency p99.9 ms", m("W1", "pub_p999_ms"), None, "lower"),
    ("W1", "end-to-end latency p50 ms", m("W1", "e2e_p50_ms"), None, "lower"),
    ("W1", "end-to-end latency p99 ms", m("W1", "e2e_p99_ms"), None, "lower"),
    ("W1", "end-to-end latency p99.9 ms", m("W1", "e2e_p999_ms"), None, "lower"),
    ("W1", "end-to-end p99 ms, uncorrected", m("W1", "e2e_raw_p99_ms"), None, "lower"),
    ("W1", "end-to-end p99 ms, after the first quarter", m("W1", "e2e_steady_p99_ms"), None, "lower"),
    ("W1", "end-to-end p99.9 ms, after the first quarter", m("W1", "e2e_steady_p999_ms"), None, "lower"),
    ("W1", "end-to-end max ms", m("W1", "e2e_max_ms"), None, "lower"),
    ("W1", "acknowledged records/s (asked: the rate)", m("W1", "ack_rate"), None, "higher"),
    ("W1", "broker CPU s (whole run)", m("W1", "broker_cpu_s"), None, "lower"),
    ("W2", "produce MB/s", m("W2", "mb_per_s"), produce_ceiling, "higher"),
    ("W2", "broker CPU s/GB", lambda s, t: cpu_per_gb(s, t, "W2"), None, "lower"),
    ("W2", "GB per broker CPU-second", lambda s, t: gb_per_cpu_s(s, t, "W2"), None, "higher"),
    ("W2j", "produce MB/s, Kafka's Java producer", m("W2j", "mb_per_s"), produce_ceiling, "higher"),
    ("W2j", "broker CPU s/GB, Kafka's Java producer", lambda s, t: cpu_per_gb(s, t, "W2j"), None, "lower"),
    ("W3", "produce records/s (100 B)", m("W3", "records_per_s"), None, "higher"),
    ("W3", "produce MB/s", w3_mb, produce_ceiling, "higher"),
    ("W3", "broker CPU s/GB", lambda s, t: cpu_per_gb(s, t, "W3"), None, "lower"),
    ("W4", "produce MB/s (4 producers)", m("W4", "mb_per_s"), produce_ceiling, "higher"),
    ("W4", "consume MB/s (4 consumers)", m("W4", "consume_mb_per_s"), lambda t: tcp, "higher"),
    ("W4", "broker CPU s/GB (in + out)", lambda s, t: cpu_per_gb(s, t, "W4", "bytes", "consumed_bytes"), None,
     "lower"),
    ("W6", "catch-up consume MB/s", m("W6", "mb_per_s"), lambda t: tcp, "higher"),
    ("W6", "broker CPU s/GB", lambda s, t: cpu_per_gb(s, t, "W6"), None, "lower"),
]


def errors_of(system, tier):
    n = 0
    for r in rows:
        if r.get("system") == system and r.get("tier") == tier and r.get("workload") not in (None, "lifecycle"):
            n += int(r.get("errors", 0) or 0) + (1 if r.get("exit_code", 0) else 0)
    return n


# ---------------------------------------------------------------------------
# W5
def w5(system, phase, key):
    vs = [r.get(key) for r in rows if r.get("system") == system and r.get("workload") == "W5"
          and r.get("phase") == phase and isinstance(r.get(key), (int, float)) and not math.isnan(r.get(key))]
    return statistics.median(vs) if vs else None


def w5_create(system, key):
    r = next((r for r in rows if r.get("system") == system and r.get("workload") == "W5"
              and r.get("phase") == "create"), None)
    return r.get(key) if r else None


n5 = int(machine.get("w5_partitions", "0") or 0)


def rss_mib(system, key):
    v = w5_create(system, key)
    return v / 1024 if isinstance(v, (int, float)) else None


def rss_per_partition_kib(system):
    a, b = w5_create(system, "rss_empty_kb"), w5_create(system, "rss_partitions_kb")
    return (b - a) / n5 if isinstance(a, (int, float)) and isinstance(b, (int, float)) and n5 else None


W5_METRICS = [
    ("idle RSS MiB, no topics", lambda s: rss_mib(s, "rss_empty_kb"), "lower"),
    (f"idle RSS MiB, {n5:,} partitions", lambda s: rss_mib(s, "rss_partitions_kb"), "lower"),
    ("RSS per partition KiB", rss_per_partition_kib, "lower"),
    ("  of the RSS with partitions: anonymous MiB", lambda s: rss_mib(s, "rss_anon_kb"), "lower"),
    ("  of the RSS with partitions: file-backed MiB (mapped files)", lambda s: rss_mib(s, "rss_file_kb"), "lower"),
    (f"create {n5:,} partitions ms", lambda s: w5_create(s, "create_ms"), "lower"),
    ("start-up ms, empty (median)", lambda s: w5(s, "startup_empty", "startup_ms"), "lower"),
    (f"start-up ms, {n5:,} partitions (median)", lambda s: w5(s, "startup_partitions", "startup_ms"), "lower"),
    (f"SIGTERM -> exit ms, {n5:,} partitions", lambda s: w5(s, "startup_partitions", "stop_ms"), "lower"),
    ("threads", lambda s: w5_create(s, "threads"), "lower"),
]

# ---------------------------------------------------------------------------
# Report
L = []
date = machine.get("date", "?")
L.append(f"# Fjord vs Apache Kafka 4.4: {machine.get('mode', '?')} run, {date[:10]}")
L.append("")
L.append(
    "Produced by `make bench-compare` (`bench/compare.sh`, this mode: "
    f"`MODE={machine.get('mode', 'quick')} make bench-compare`). One invocation measured the machine's ceilings, "
    "then Fjord and Kafka one after the other, each single-node on loopback with a fresh data directory "
    f"and pinned to CPU {machine.get('broker_cpu')}, driven by `fjord_loadgen` (librdkafka) pinned to CPU "
    f"{machine.get('loadgen_cpu')}. What each workload and figure means: bench/README.md, section "
    "\"Fjord vs Kafka\"."
)
L.append("")
if machine.get("note"):
    L.append(f"**Conditions:** {machine['note']}")
    L.append("")
L.append(
    f"Load average at start {machine.get('loadavg_start', '?')}, at end {machine.get('loadavg_end', '?')}; "
    f"the run took {machine.get('elapsed_s', '?')} s."
)
L.append("")

# Headline
L.append("## Headline: the issue's aims, as measured")
L.append("")
L.append("| aim | tier | Fjord | Kafka | Fjord/Kafka | aim met |")
L.append("|---|---|---:|---:|---:|---|")


def aim_row(label, tier, f, k, test):
    r = ratio(f, k)
    met = "–" if r is None else ("yes" if test(r) else "**no**")
    L.append(f"| {label} | {tier} | {fmt(f)} | {fmt(k)} | {fmt(r)} | {met} |")


for t in TIERS:
    aim_row("W2 GB per broker CPU-second ≥ 2x", t, gb_per_cpu_s("fjord", t, "W2"), gb_per_cpu_s("kafka", t, "W2"),
            lambda r: r >= 2)
rate = float(machine.get("w1_rate", "0") or 0)
# Behind: acknowledged under 95 % of the asked rate, or a standing queue (a
# median end-to-end latency over 100 ms at this light load).
behind = [f"{s} tier {t}" for s in SYSTEMS for t in TIERS
          if (val(s, t, "W1", "ack_rate") or rate) < 0.95 * rate or (val(s, t, "W1", "e2e_p50_ms") or 0) > 100]
for t in TIERS:
    aim_row("W1 end-to-end p99 ms ≤ 1/5", t, val("fjord", t, "W1", "e2e_p99_ms"), val("kafka", t, "W1", "e2e_p99_ms"),
            lambda r: r <= 0.2)
for t in TIERS:
    aim_row("W1 end-to-end p99 ms ≤ 1/5, after the first quarter of the run", t,
            val("fjord", t, "W1", "e2e_steady_p99_ms"), val("kafka", t, "W1", "e2e_steady_p99_ms"), lambda r: r <= 0.2)
for t in TIERS:
    aim_row("W1 publish p99 ms ≤ 1/5", t, val("fjord", t, "W1", "pub_p99_ms"), val("kafka", t, "W1", "pub_p99_ms"),
            lambda r: r <= 0.2)
aim_row("idle RSS MiB (no topics) ≤ 1/10", "–", rss_mib("fjord", "rss_empty_kb"), rss_mib("kafka", "rss_empty_kb"),
        lambda r: r <= 0.1)
aim_row(f"idle RSS MiB ({n5:,} partitions) ≤ 1/10", "–", rss_mib("fjord", "rss_partitions_kb"),
        rss_mib("kafka", "rss_partitions_kb"), lambda r: r <= 0.1)
aim_row("start-up ms (empty) ≤ 1/10", "–", w5("fjord", "startup_empty", "startup_ms"),
        w5("kafka", "startup_empty", "startup_ms"), lambda r: r <= 0.1)
L.append("")
starved = [f"{s} tier {t} ({fmt(val(s, t, 'W1', 'late_enqueues'))} of {fmt(val(s, t, 'W1', 'records'))})"
           for s in SYSTEMS for t in TIERS
           if (val(s, t, "W1", "late_enqueues") or 0) > 0.01 * (val(s, t, "W1", "records") or 1e18)]
if starved:
    L.append("W1's load generator sent more than 1 % of its records over 1 ms late in: " + ", ".join(starved) +
             ". Its own CPU was taken (on this machine, by other work on the same core), so the corrected "
             "latencies of those runs include the generator's stalls, not only the broker's.")
    L.append("")
gen_bound = [f"{w} {s} tier {t}" for w in ("W2", "W3") for s in SYSTEMS for t in TIERS
             if (gen_util(s, t, w) or 0) >= 0.9]
if gen_bound:
    L.append("The load generator was at 90 % or more of its CPU in: " + ", ".join(gen_bound) +
             ". There the throughput is the generator's limit; the broker's CPU per GB still holds.")
    L.append("")
if behind:
    L.append(f"W1 asked for {rate:,.0f} records/s; {', '.join(behind)} acknowledged less than 95 % of that or "
             "kept a standing queue (median end-to-end latency over 100 ms; see \"acknowledged records/s\" and the "
             "worst latency per second below): that broker was saturated at this rate, its W1 latencies depend "
             "on the length of the run, and the ratio says only that it could not keep up.")
    L.append("")

# Machine
L.append("## Machine and versions")
L.append("")
L.append("| | |")
L.append("|---|---|")
for k, label in [("host_cpu", "CPU"), ("cpus", "CPUs"), ("memory", "memory"), ("kernel", "kernel"),
                 ("filesystem", "data directories"), ("fjord_version", "Fjord"), ("fjord_commit", "Fjord commit"),
                 ("kafka_version", "Apache Kafka"), ("java", "Java"), ("librdkafka", "librdkafka (load generator)"),
                 ("compiler", "compiler"), ("date", "date (UTC)")]:
    L.append(f"| {label} | {machine.get(k, '?')} |")
L.append("")

# Ceilings
L.append("## Physical ceilings (same run, no broker; best of three: two before the brokers, one after)")
L.append("")
L.append("| ceiling | value | how |")
L.append("|---|---:|---|")
L.append(f"| loopback TCP | {fmt(tcp)} MB/s | one connection, 1 MiB writes, sender on the load generator's CPU, "
         "receiver on the broker's |")
L.append(f"| disk, buffered write | {fmt(buffered)} MB/s | 1 MiB `write()`s into the page cache, no fsync |")
L.append(f"| disk, buffered + one fdatasync | {fmt(buffered_fsync)} MB/s | the same, timed to the end of one "
         "final `fdatasync` |")
L.append(f"| disk, 1 MiB write + fdatasync each | {fmt(ceiling('fsync_1m'))} MB/s | |")
L.append(f"| disk, O_DIRECT | {fmt(ceiling('direct'))} MB/s | 1 MiB aligned writes |")
L.append(f"| disk, O_DIRECT + O_DSYNC | {fmt(ceiling('direct_dsync'))} MB/s | |")
L.append(f"| 4 KiB append + fdatasync | {fmt(ceiling('sync_4k', 'ops_per_s'))} /s, p50 {fmt(sync4k_p50)} ms, "
         f"p99 {fmt(sync4k_p99)} ms | the floor of an acknowledge-after-fsync latency |")
L.append("")
L.append(
    "Fractions of the ceiling below: produce against min(loopback TCP, buffered write) in tier A and "
    "min(loopback TCP, buffered + fdatasync) in tier B; consume against loopback TCP. The disk figures come "
    "from a virtual disk whose host may cache writes, so fdatasync may not reach a platter or flash."
)
L.append("")

# Per tier tables
for t in TIERS:
    L.append(f"## Tier {TIER_NAME[t]}")
    L.append("")
    if t == "A":
        L.append("Kafka with its defaults (no fsync per write); Fjord with `fjord.write.caching=true`.")
    else:
        L.append("Kafka with `log.flush.interval.messages=1` (every topic's `flush.messages=1`); Fjord with its "
                 "default group commit (acknowledged and visible to consumers once fdatasync'd).")
    L.append("")
    L.append("| workload | metric | Fjord | Kafka | Fjord/Kafka | Fjord of ceiling | Kafka of ceiling |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    for w, label, get, ceil, better in METRICS:
        f, k = get("fjord", t), get("kafka", t)
        c = ceil(t) if ceil else None
        L.append(f"| {w} | {label} ({better} is better) | {fmt(f)} | {fmt(k)} | {fmt(ratio(f, k))} | "
                 f"{frac(f, c)} | {frac(k, c)} |")
    if t == "B" and sync4k_p50:
        f, k = val("fjord", t, "W1", "pub_p50_ms"), val("kafka", t, "W1", "pub_p50_ms")
        L.append(f"| W1 | publish p50 / fdatasync p50 (floor) | {fmt(ratio(f, sync4k_p50))}x | "
                 f"{fmt(ratio(k, sync4k_p50))}x | | | |")
    L.append(f"| all | errors (delivery, fetch, exit codes) | {errors_of('fjord', t)} | {errors_of('kafka', t)} "
             "| | | |")
    fh = max([r.get("broker_hwm_kb", 0) or 0 for r in rows if r.get("system") == "fjord" and r.get("tier") == t]
             or [0]) / 1024
    kh = max([r.get("broker_hwm_kb", 0) or 0 for r in rows if r.get("system") == "kafka" and r.get("tier") == t]
             or [0]) / 1024
    L.append(f"| all | peak RSS MiB (VmHWM) | {fmt(fh or None)} | {fmt(kh or None)} | {fmt(ratio(fh, kh))} | | |")
    L.append("")
    for sname in SYSTEMS:
        r = row(sname, t, "W1")
        w = r.get("e2e_worst_ms_per_second") if r else None
        if w:
            L.append(f"W1 {sname}, worst end-to-end ms of the records scheduled in each second: "
                     + " ".join(fmt(x) for x in w))
            L.append("")
    # Generator
    L.append("Load generator (CPU seconds of all its processes and threads; utilisation near 1.0 means the "
             "figure is limited by the generator, not the broker):")
    L.append("")
    L.append("| workload | Fjord: generator CPU s | utilisation | Kafka: generator CPU s | utilisation | "
             "W1 late sends (Fjord / Kafka) |")
    L.append("|---|---:|---:|---:|---:|---|")
    for w in ("W1", "W2", "W2j", "W3", "W4", "W6"):
        late = ""
        if w == "W1":
            late = f"{fmt(val('fjord', t, 'W1', 'late_enqueues'))} / {fmt(val('kafka', t, 'W1', 'late_enqueues'))}"
        L.append(f"| {w} | {fmt(gen_cpu('fjord', t, w))} | {fmt(gen_util('fjord', t, w))} | "
                 f"{fmt(gen_cpu('kafka', t, w))} | {fmt(gen_util('kafka', t, w))} | {late} |")
    L.append("")

# W5
L.append(f"## W5: {n5:,} idle partitions, memory and start-up")
L.append("")
L.append("Each broker with its default durability (Fjord group commit, Kafka page cache). "
         f"{n5:,} partitions in all, in topics of at most 1,000 (Kafka's controller refuses a single operation "
         "of more than 10,000 records, which one 10,000-partition topic is). RSS is `VmRSS` a few seconds after "
         "the broker answered / after every topic had leaders on all partitions. Start-up is exec to the first "
         "answered Metadata request (raw TCP, polled every millisecond), pinned to the broker CPU.")
L.append("")
L.append("| metric | Fjord | Kafka | Fjord/Kafka |")
L.append("|---|---:|---:|---:|")
for label, get, better in W5_METRICS:
    f, k = get("fjord"), get("kafka")
    L.append(f"| {label} ({better} is better) | {fmt(f)} | {fmt(k)} | {fmt(ratio(f, k))} |")
tool = w5_create("kafka", "tool_list_ms")
ntopics = w5_create("kafka", "topics") or 1
share = (w5_create("kafka", "create_ms") or 0) - (tool or 0) * ntopics
share_txt = (f"about {fmt(share)} ms" if share > 0 else "within the noise of the tool's start-up") if tool else "–"
L.append("")
L.append(
    f"Topic creation differs: the harness creates Fjord's topics by "
    f"Metadata auto-creation (`num.partitions` set on the broker; W4 restarts Fjord with "
    f"`num.partitions={machine.get('w4_partitions', 100)}`); Kafka's are created with `kafka-topics --create` "
    f"(a JVM tool). Kafka's create time includes that tool's own start-up: `kafka-topics --list` took "
    f"{fmt(tool)} ms in the same run (x {ntopics} topics), so the broker's share is {share_txt}. Kafka's "
    f"\"empty\" "
    f"start-up is on a directory that was formatted and started once (KRaft needs the format step)."
)
L.append("")

# Plots
plots = []
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {("fjord", "A"): "#1f77b4", ("kafka", "A"): "#d62728", ("fjord", "B"): "#6baed6",
              ("kafka", "B"): "#fc9272"}

    # Latency percentile curves
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, t in zip(axes, TIERS):
        for s in SYSTEMS:
            r = row(s, t, "W1")
            if not r or not r.get("curve_quantiles"):
                continue
            qs = r["curve_quantiles"]
            xs = [-math.log10(1 - q) if q < 1 else None for q in qs]
            for key, style, what in (("curve_e2e_ms", "-", "end-to-end"), ("curve_pub_ms", "--", "publish")):
                pts = [(x, y) for x, y in zip(xs, r.get(key, [])) if x is not None and y is not None and x <= 5]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".",
                            color=colors[(s, "A")], label=f"{s} {what}")
        ax.set_xticks([0, 1, 2, 3, 4, 5])
        ax.set_xticklabels(["min", "90%", "99%", "99.9%", "99.99%", "99.999%"])
        ax.set_yscale("log")
        ax.set_xlabel("percentile")
        ax.set_title(f"W1 tier {TIER_NAME[t]}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("latency ms (corrected for coordinated omission)")
    fig.suptitle(f"W1: {machine.get('w1_rate')} records/s of 1 KiB, {machine.get('w1_partitions')} partitions")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency.png"), dpi=100)
    plt.close(fig)
    plots.append(("W1 latency percentiles", "latency.png"))

    # Throughput bars
    groups = [("W2 produce", lambda s, t: val(s, t, "W2", "mb_per_s")),
              ("W2j produce\n(Java client)", lambda s, t: val(s, t, "W2j", "mb_per_s")),
              ("W3 produce\n(100 B)", w3_mb),
              ("W4 produce", lambda s, t: val(s, t, "W4", "mb_per_s")),
              ("W4 consume", lambda s, t: val(s, t, "W4", "consume_mb_per_s")),
              ("W6 catch-up", lambda s, t: val(s, t, "W6", "mb_per_s"))]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.2
    for i, (s, t) in enumerate([("fjord", "A"), ("kafka", "A"), ("fjord", "B"), ("kafka", "B")]):
        ys = [g[1](s, t) or 0 for g in groups]
        ax.bar([j + (i - 1.5) * width for j in range(len(groups))], ys, width, color=colors[(s, t)],
               label=f"{s} tier {t}")
    if tcp:
        ax.axhline(tcp, color="gray", linestyle="--", linewidth=1, label=f"loopback TCP {tcp:.0f} MB/s")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups])
    ax.set_ylabel("MB/s")
    ax.set_title("Throughput (higher is better)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=100)
    plt.close(fig)
    plots.append(("Throughput", "throughput.png"))

    # Efficiency bars
    egroups = [("W2", lambda s, t: cpu_per_gb(s, t, "W2")), ("W3", lambda s, t: cpu_per_gb(s, t, "W3")),
               ("W4 (in+out)", lambda s, t: cpu_per_gb(s, t, "W4", "bytes", "consumed_bytes")),
               ("W6", lambda s, t: cpu_per_gb(s, t, "W6"))]
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (s, t) in enumerate([("fjord", "A"), ("kafka", "A"), ("fjord", "B"), ("kafka", "B")]):
        ys = [g[1](s, t) or 0 for g in egroups]
        ax.bar([j + (i - 1.5) * width for j in range(len(egroups))], ys, width, color=colors[(s, t)],
               label=f"{s} tier {t}")
    ax.set_xticks(range(len(egroups)))
    ax.set_xticklabels([g[0] for g in egroups])
    ax.set_ylabel("broker CPU seconds per GB")
    ax.set_title("Broker CPU per GB (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cpu_per_gb.png"), dpi=100)
    plt.close(fig)
    plots.append(("Broker CPU per GB", "cpu_per_gb.png"))

    # W5
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = ["RSS, no topics", f"RSS, {n5:,} partitions"]
    for i, s in enumerate(SYSTEMS):
        ys = [rss_mib(s, "rss_empty_kb") or 0, rss_mib(s, "rss_partitions_kb") or 0]
        axes[0].bar([j + (i - 0.5) * 0.35 for j in range(2)], ys, 0.35, color=colors[(s, "A")], label=s)
        ys = [w5(s, "startup_empty", "startup_ms") or 0, w5(s, "startup_partitions", "startup_ms") or 0]
        axes[1].bar([j + (i - 0.5) * 0.35 for j in range(2)], ys, 0.35, color=colors[(s, "A")], label=s)
    axes[0].set_xticks(range(2))
    axes[0].set_xticklabels(labels)
    axes[0].set_ylabel("MiB")
    axes[0].set_title("Idle RSS (lower is better)")
    axes[1].set_xticks(range(2))
    axes[1].set_xticklabels(["empty", f"{n5:,} partitions"])
    axes[1].set_ylabel("ms, exec -> Metadata answer")
    axes[1].set_yscale("log")
    axes[1].set_title("Start-up (lower is better)")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "w5.png"), dpi=100)
    plt.close(fig)
    plots.append(("W5: idle memory and start-up", "w5.png"))
except ImportError:
    L.append("(No plots: matplotlib is not installed.)")
    L.append("")

if plots:
    L.append("## Plots")
    L.append("")
    for title, f in plots:
        L.append(f"![{title}]({f})")
        L.append("")

# Settings
L.append("## Effective settings")
L.append("")
L.append("### Workloads")
L.append("")
L.append(f"- Records: 1 KiB values ({machine.get('record_size')} B) of incompressible bytes, no keys, no "
         f"compression, acks=all, no idempotence; W3 {machine.get('w3_record_size')} B.")
L.append(f"- W1: {machine.get('w1_rate')} records/s for {machine.get('w1_seconds')} s, round-robin over "
         f"{machine.get('w1_partitions')} partitions, linger.ms={machine.get('linger_latency_ms')}; one consumer "
         "in the same process reads all partitions. Each payload starts with the record's scheduled send time and "
         "its real send time (CLOCK_MONOTONIC, ns). Latencies are from the scheduled time (corrected for "
         "coordinated omission: a stalled sender does not hide the stall); the uncorrected p99 is from the real "
         "send time.")
L.append(f"- W2: {int(machine.get('w2_bytes', 0)) / 2**20:,.0f} MiB, {machine.get('w1_partitions')} partitions, one "
         f"producer, linger.ms={machine.get('linger_max_ms')}, batch.size={machine.get('batch_bytes')}, sticky "
         "partitioning (one batch per partition in turn). Time runs to the last delivery report.")
L.append(f"- W2j: a quarter of W2's bytes with Kafka's own Java producer (`kafka-producer-perf-test`, "
         f"acks=all, linger.ms={machine.get('linger_max_ms')}, batch.size={machine.get('batch_bytes')}, no "
         "compression, enable.idempotence=false, its default partitioner), as a second client's view; its "
         "generator CPU includes the JVM's start-up.")
L.append(f"- W3: {int(machine.get('w3_records', 0)):,} records, otherwise as W2.")
L.append(f"- W4: {machine.get('w4_partitions')} partitions; {machine.get('w4_clients')} producers of "
         f"{int(machine.get('w4_bytes_per_producer', 0)) / 2**20:,.0f} MiB each and {machine.get('w4_clients')} "
         "consumers, all started together; producer i and consumer i use partitions [25i, 25i+25). Produce MB/s "
         "is all bytes over the time from the first producer's start to the last acknowledgement; consume MB/s "
         "is all bytes over the time from the first producer's start to the last record received (consumers "
         "read live, so they cannot be faster than the producers).")
L.append("- W6: one consumer reads W2's topic from the beginning (assign, no group). The backlog was written "
         "seconds before and is in the page cache: this is the broker's read path, not the disk.")
L.append(f"- Before W1 each broker gets a warm-up ({int(machine.get('warm_bytes', 0)) / 2**20:,.0f} MiB produced "
         "and consumed, not counted), so the JVM has compiled its hot paths.")
L.append("- Broker CPU: utime+stime from /proc/PID/stat around each workload (10 ms ticks); GB = 10^9 bytes of "
         "record values.")
L.append("")
L.append("### Load generator (librdkafka settings that differ from its defaults)")
L.append("")
for w in ("W1", "W2", "W3", "W6"):
    txt = read_text(f"loadgen-{w}.conf")
    if txt:
        L.append(f"{w}:")
        L.append("```")
        L.append(txt)
        L.append("```")
L.append("librdkafka's defaults that matter here and were left alone: batch.size 1000000, "
         "message.max.bytes 1000000, fetch.wait.max.ms 500, fetch.min.bytes 1, fetch.max.bytes 52428800, "
         "max.partition.fetch.bytes 1048576, acks all (-1). W4 uses W2's producer settings and W6's consumer "
         "settings on its partition range.")
L.append("")
L.append("### Fjord")
L.append("")
for t in TIERS:
    cmd = read_text(f"fjord-{t}.command")
    if cmd:
        L.append(f"Tier {t}:")
        L.append("```")
        L.append(cmd)
        L.append("```")
for t in TIERS:
    txt = read_text(f"fjord-{t}.startlog")
    if txt:
        L.append(f"Tier {t}, the broker's first log lines:")
        L.append("```")
        L.append(txt)
        L.append("```")
L.append("Everything else at Fjord's defaults (docs/configuration.md): segment.bytes 1 GiB, "
         "fjord.write.caching false unless overridden, flush.messages/flush.ms unset (Kafka's defaults).")
L.append("")
L.append("### Apache Kafka")
L.append("")
for t in TIERS:
    cmd = read_text(f"kafka-{t}.command")
    if cmd:
        L.append(f"Tier {t} (the JVM's command line, from /proc):")
        L.append("```")
        L.append(cmd)
        L.append("```")
jvm = read_text("jvm-flags.txt")
if jvm:
    L.append("The JVM's resulting flags with one CPU (`-XX:+PrintFlagsFinal`, under the same taskset):")
    L.append("```")
    L.append(jvm)
    L.append("```")
keys = ("log.flush.interval.messages", "log.flush.interval.ms", "log.segment.bytes", "num.network.threads",
        "num.io.threads", "num.replica.fetchers", "message.max.bytes", "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes", "socket.request.max.bytes", "queued.max.requests", "num.partitions",
        "auto.create.topics.enable", "log.flush.scheduler.interval.ms", "log.preallocate")
for t in TIERS:
    cfg = read_kv(f"kafka-{t}.config")
    if cfg:
        L.append(f"Tier {t}, from the broker's own \"KafkaConfig values\" log (selected; all in "
                 f"`kafka-{t}.config`): " + ", ".join(f"`{k}={cfg.get(k, '?').strip()}`" for k in keys if k in cfg))
        L.append("")
L.append("kafka-ref (tests/kafka_ref) runs Kafka with `-Xms1g -Xmx1g` and the G1 flags of Kafka's "
         "`kafka-run-class.sh`; it does not pass `-loggc` (GC logging to a file, which `kafka-server-start.sh` "
         "adds) and sets num.network.threads=2, num.io.threads=4 (Kafka's defaults are 3 and 8).")
L.append("")

# Warnings
warn = []
for s in SYSTEMS:
    for t in TIERS:
        txt = read_text(f"{s}-{t}.warnings")
        if txt:
            warn.append(f"{s} tier {t}:\n```\n{txt}\n```")
if warn:
    L.append("## WARN/ERROR lines in the broker logs (count, distinct lines, at most 20)")
    L.append("")
    L.extend(warn)
    L.append("")

L.append("## Caveats")
L.append("")
L.append("- Two CPUs: the broker has one, the load generator (all its producers and consumers) the other. "
         "Where the generator's utilisation is near 1.0, the figure is the generator's limit.")
L.append("- W6 and W4's consumers read from the page cache. W2 and W3 in tier A may end before the kernel "
         "writes anything back; long runs (`MODE=full`) show more of the steady state.")
L.append("- Loopback only: no NIC and no network latency.")
L.append("- One run per figure: no repetitions, no confidence intervals. Compare within this run only.")
L.append("")

open(os.path.join(out, "report.md"), "w").write("\n".join(L))
print(os.path.join(out, "report.md"))
