#!/usr/bin/env bash
# End-to-end benchmark of one Fjord broker on loopback, driven by
# fjord_loadgen (librdkafka). See bench/README.md for what each figure means.
#
# For each durability mode (group commit, then write caching) it starts a
# fresh broker in a fresh directory and measures: idle RSS (empty, then with
# 16 idle partitions), produce MB/s with acks=1 and acks=all, fetch MB/s of
# what acks=all produced, produce latency at a fixed rate, broker CPU-seconds
# per GB for each phase, peak RSS, the stop time and the restart time on the
# data just written. Then start-up time (exec -> first Metadata answer) on an
# empty directory, several times, median. Optionally (--kafka) the same
# produce/consume/latency phases against the reference Apache Kafka broker
# (tests/kafka_ref) for same-run ratios.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fjord=${FJORD_BIN:-$root/build/release/src/app/fjord}
loadgen=${FJORD_LOADGEN:-}
smp=2
bytes=512MiB
record_size=1024
partitions=16
rate=5000
seconds=10
startup_runs=5
out=""
kafka=0
modes="group_commit write_caching"
keep=0
base=${TMPDIR:-/tmp}

usage() {
    cat <<EOF
usage: bench/broker_bench.sh [options]
  --fjord PATH          broker binary (default \$FJORD_BIN or build/release/src/app/fjord)
  --loadgen PATH        fjord_loadgen (default \$FJORD_LOADGEN or the newest build/*/bench/fjord_loadgen)
  --smp N               broker shards (default $smp)
  --bytes N             bytes produced per produce phase (default $bytes; K/M/G = KiB/MiB/GiB)
  --record-size S       record value bytes (default $record_size)
  --partitions P        partitions per topic, set as the broker's num.partitions (default $partitions)
  --rate R              latency phase: records/s (default $rate)
  --seconds T           latency phase: seconds (default $seconds)
  --startup-runs N      start-up time samples (default $startup_runs)
  --modes "A B"         durability modes, from: group_commit write_caching (default: both)
  --kafka               also run the reference Apache Kafka broker (tests/kafka_ref), for ratios
  --out FILE            write the summary as JSON to FILE
  --workdir DIR         parent of the temporary directory (default \${TMPDIR:-/tmp})
  --keep                keep the temporary directory (data and broker logs)
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --fjord) fjord=$2; shift 2 ;;
        --loadgen) loadgen=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --bytes) bytes=$2; shift 2 ;;
        --record-size) record_size=$2; shift 2 ;;
        --partitions) partitions=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --startup-runs) startup_runs=$2; shift 2 ;;
        --modes) modes=$2; shift 2 ;;
        --kafka) kafka=1; shift ;;
        --out) out=$2; shift 2 ;;
        --workdir) base=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "unknown option $1" >&2; exit 2 ;;
    esac
done

die() { echo "broker_bench: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

if [[ -z $loadgen ]]; then
    loadgen=$(ls -t "$root"/build/*/bench/fjord_loadgen 2>/dev/null | head -1 || true)
fi
[[ -x $fjord ]] || die "no broker binary at '$fjord' (--fjord)"
[[ -x $loadgen ]] || die "no fjord_loadgen (build it: ninja -C build/<dir> fjord_loadgen, or --loadgen)"
for m in $modes; do
    [[ $m == group_commit || $m == write_caching ]] || die "unknown mode '$m'"
done

# Sizes in bytes, with the loadgen's suffix rules (K/M/G binary, KB/MB/GB decimal).
to_bytes() {
    python3 - "$1" <<'EOF'
import re, sys
m = re.fullmatch(r'([0-9.]+)\s*([A-Za-z]*)', sys.argv[1])
if not m: sys.exit("bad size " + sys.argv[1])
mult = {'': 1, 'B': 1, 'K': 1024, 'KIB': 1024, 'M': 1024**2, 'MIB': 1024**2, 'G': 1024**3, 'GIB': 1024**3,
        'KB': 1000, 'MB': 1000**2, 'GB': 1000**3}[m.group(2).upper()]
print(int(float(m.group(1)) * mult))
EOF
}
bytes_n=$(to_bytes "$bytes")
records=$((bytes_n / record_size))
[[ $records -gt 0 ]] || die "--bytes smaller than one record"

# ---------------------------------------------------------------------------
# Disk: refuse if everything this run writes (nothing is deleted before the
# end of a mode) would need more than half of the free space.
mkdir -p "$base"
nmodes=$(wc -w <<<"$modes")
latency_bytes=$((rate * ${seconds%.*} * record_size))
per_broker=$((2 * bytes_n + latency_bytes + 16 * 1024 * 1024))
need=$((per_broker * nmodes * 11 / 10))
[[ $kafka == 1 ]] && need=$((need + per_broker * 11 / 10))
avail=$(df -PB1 "$base" | awk 'NR==2 {print $4}')
if (( need > avail / 2 )); then
    die "this run writes about $((need / 1000000)) MB; $base has $((avail / 1000000)) MB free; refusing to use more than half"
fi

work=$(mktemp -d "$base/fjord-bench.XXXXXX")
results=$work/results.jsonl
: >"$results"
broker_pid=""
cleanup() {
    if [[ -n $broker_pid ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    if [[ $kafka == 1 && -f $work/kafka/kafka.pid ]]; then
        "$root/tests/kafka_ref/kafka-ref" stop "$work/kafka" >/dev/null 2>&1 || true
    fi
    if [[ $keep == 1 ]]; then
        echo "broker_bench: kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

note "fjord=$fjord loadgen=$loadgen smp=$smp bytes=$bytes_n record=$record_size partitions=$partitions" \
     "latency=${rate}/s x ${seconds}s work=$work (needs ~$((need / 1000000)) MB of $((avail / 1000000)) MB free)"

clk_tck=$(getconf CLK_TCK)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime+stime of a process, in seconds. Fields 14 and 15 of /proc/PID/stat,
# counted after the ")" that ends the command name.
cpu_s() {
    local rest
    rest=$(sed 's/^.*) //' "/proc/$1/stat")
    awk -v t="$clk_tck" '{printf "%.3f", ($12 + $13) / t}' <<<"$rest"
}

status_kb() {  # status_kb PID FIELD -> value in kB
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

# Appends one JSON object to the results: the loadgen line plus key=value
# extras (numbers if they parse, strings otherwise).
record() {
    local json=$1; shift
    python3 - "$json" "$@" >>"$results" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    try: d[k] = float(v) if any(c in v for c in ".e") else int(v)
    except ValueError: d[k] = v
print(json.dumps(d))
EOF
}

# phase SYSTEM MODE PHASE PID LOADGEN-ARGS...: runs the loadgen, measures the
# broker's CPU time around it, records the result.
phase() {
    local system=$1 mode=$2 name=$3 pid=$4; shift 4
    local c0 c1 json rc=0
    c0=$(cpu_s "$pid")
    json=$("$loadgen" "$@" --label "$system/$mode/$name") || rc=$?
    c1=$(cpu_s "$pid")
    [[ -n $json ]] || json='{"errors":1}'
    record "$json" system="$system" durability="$mode" phase="$name" exit_code="$rc" \
        broker_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.3f", b - a}')"
    [[ $rc == 0 ]] || echo "broker_bench: $system/$mode/$name: loadgen exit code $rc" >&2
}

wait_ready() {  # wait_ready PORT
    "$loadgen" metadata --bootstrap "127.0.0.1:$1" --timeout-s 60 >/dev/null 2>&1
}

stop_broker() {  # SIGTERM and wait; sets stop_ms and stop_rc
    local t0 t1
    stop_rc=0
    t0=$(date +%s%N)
    kill -TERM "$broker_pid"
    wait "$broker_pid" || stop_rc=$?
    t1=$(date +%s%N)
    broker_pid=""
    stop_ms=$(( (t1 - t0) / 1000000 ))
}

load_phases() {  # load_phases SYSTEM MODE PID BOOTSTRAP
    local system=$1 mode=$2 pid=$3 b=$4
    local common=(--bootstrap "$b" --partitions "$partitions" --record-size "$record_size" --timeout-s 600)
    note "$system/$mode: produce acks=1"
    phase "$system" "$mode" produce_acks1 "$pid" produce "${common[@]}" --topic bench-acks1 --records "$records" --acks 1
    note "$system/$mode: produce acks=all"
    phase "$system" "$mode" produce_acksall "$pid" produce "${common[@]}" --topic bench-acksall --records "$records" --acks all
    note "$system/$mode: fetch (consume bench-acksall from the beginning)"
    phase "$system" "$mode" fetch "$pid" consume "${common[@]}" --topic bench-acksall --records "$records"
    note "$system/$mode: latency ${rate}/s x ${seconds}s acks=all"
    phase "$system" "$mode" latency "$pid" latency "${common[@]}" --topic bench-latency --rate "$rate" --seconds "$seconds"
}

# ---------------------------------------------------------------------------
# Fjord, one fresh broker per durability mode

for mode in $modes; do
    dir=$work/$mode
    mkdir -p "$dir"
    port=$(free_port)
    args=(start --smp "$smp" --log-dirs "$dir/data" --override "listeners=PLAINTEXT://127.0.0.1:$port"
          --override "num.partitions=$partitions")
    [[ $mode == write_caching ]] && args+=(--override fjord.write.caching=true)
    note "fjord/$mode: starting on 127.0.0.1:$port"
    "$fjord" "${args[@]}" >"$dir/broker.log" 2>&1 &
    broker_pid=$!
    wait_ready "$port" || die "fjord/$mode did not answer Metadata within 60 s (log: $dir/broker.log)"
    sleep 2
    rss_empty=$(status_kb "$broker_pid" VmRSS)
    "$loadgen" metadata --bootstrap "127.0.0.1:$port" --topic bench-idle --partitions "$partitions" >/dev/null 2>&1 \
        || echo "broker_bench: could not create bench-idle" >&2
    sleep 2
    rss_idle=$(status_kb "$broker_pid" VmRSS)
    threads=$(status_kb "$broker_pid" Threads)
    record "{}" system=fjord durability="$mode" phase=idle rss_empty_kb="$rss_empty" \
        rss_idle_partitions_kb="$rss_idle" idle_partitions="$partitions" threads="$threads"

    load_phases fjord "$mode" "$broker_pid" "127.0.0.1:$port"

    hwm=$(status_kb "$broker_pid" VmHWM)
    rss_after=$(status_kb "$broker_pid" VmRSS)
    disk_kb=$(du -sk "$dir/data" | awk '{print $1}')
    stop_broker
    # Restart on the data just written (a clean shutdown: no recovery expected).
    restart=$("$loadgen" startup --bootstrap "127.0.0.1:$port" --log "$dir/restart.log" --timeout-s 120 -- \
        "$fjord" "${args[@]}") || true
    restart_ms=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("startup_ms") or "nan")' "$restart")
    warnings=$(cat "$dir/broker.log" "$dir/restart.log" 2>/dev/null | grep -cE ' (WARN|ERROR) ' || true)
    record "{}" system=fjord durability="$mode" phase=lifecycle peak_rss_kb="$hwm" rss_after_load_kb="$rss_after" \
        disk_kb="$disk_kb" stop_ms="$stop_ms" stop_exit_code="$stop_rc" restart_with_data_ms="$restart_ms" \
        log_warnings="$warnings"
    if [[ $warnings -gt 0 ]]; then
        echo "broker_bench: fjord/$mode logged $warnings WARN/ERROR lines, first ones:" >&2
        grep -hE ' (WARN|ERROR) ' "$dir/broker.log" "$dir/restart.log" | head -5 >&2
    fi
    [[ $keep == 1 ]] || rm -rf "$dir/data"
done

# ---------------------------------------------------------------------------
# Start-up time: exec -> first Metadata answer, fresh empty directory each time

note "fjord: start-up time x $startup_runs"
for i in $(seq 1 "$startup_runs"); do
    dir=$work/startup-$i
    port=$(free_port)
    json=$("$loadgen" startup --bootstrap "127.0.0.1:$port" --log "$dir.log" --timeout-s 60 -- \
        "$fjord" start --smp "$smp" --log-dirs "$dir" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
        --override "num.partitions=$partitions") || true
    [[ -n $json ]] || json='{"errors":1}'
    record "$json" system=fjord durability=group_commit phase=startup run="$i"
    rm -rf "$dir"
done

# ---------------------------------------------------------------------------
# Optional: the reference Apache Kafka broker, same phases, for ratios

if [[ $kafka == 1 ]]; then
    kref=$root/tests/kafka_ref/kafka-ref
    note "kafka: starting the reference broker (tests/kafka_ref)"
    b=$(KAFKA_REF_CONFIG=$(printf 'num.partitions=%s\n' "$partitions") "$kref" start "$work/kafka")
    kpid=$(cat "$work/kafka/kafka.pid")
    sleep 2
    k_rss_empty=$(status_kb "$kpid" VmRSS)
    "$loadgen" metadata --bootstrap "$b" --topic bench-idle --partitions "$partitions" >/dev/null 2>&1 || true
    sleep 2
    record "{}" system=kafka durability=page_cache phase=idle rss_empty_kb="$k_rss_empty" \
        rss_idle_partitions_kb="$(status_kb "$kpid" VmRSS)"
    # A cold JVM interprets before it compiles: warm it up (not counted) so
    # that the measured phases see the steady state, as a long-running broker would.
    warm=$((records / 4 > 65536 ? records / 4 : 65536))
    note "kafka: warm-up, $warm records (not counted)"
    "$loadgen" produce --bootstrap "$b" --topic bench-warmup --records "$warm" --record-size "$record_size" --acks 1 \
        >/dev/null 2>&1 || echo "broker_bench: kafka warm-up failed" >&2
    "$loadgen" consume --bootstrap "$b" --topic bench-warmup --records "$warm" >/dev/null 2>&1 || true
    load_phases kafka page_cache "$kpid" "$b"
    record "{}" system=kafka durability=page_cache phase=lifecycle peak_rss_kb="$(status_kb "$kpid" VmHWM)"
    "$kref" stop "$work/kafka" >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------------------
# Summary

python3 - "$results" "$out" "$bytes_n" "$record_size" "$partitions" "$smp" "$rate" "$seconds" "$fjord" <<'EOF'
import json, statistics, sys, math
results, out, nbytes, record_size, partitions, smp, rate, seconds, fjord = sys.argv[1:]
rows = [json.loads(l) for l in open(results) if l.strip()]

def get(system, mode, phase, key):
    for r in rows:
        if r.get("system") == system and r.get("durability") == mode and r.get("phase") == phase and key in r:
            return r[key]
    return None

def per_gb(system, mode, phase):
    cpu, b = get(system, mode, phase, "broker_cpu_s"), get(system, mode, phase, "bytes")
    return cpu / (b / 1e9) if cpu is not None and b else None

summary = {"config": {"bytes_per_produce_phase": int(nbytes), "record_bytes": int(record_size),
                      "partitions": int(partitions), "smp": int(smp), "latency_rate": int(rate),
                      "latency_seconds": float(seconds), "fjord": fjord},
           "fjord": {}, "runs": rows}
modes = [m for m in ("group_commit", "write_caching") if any(r.get("durability") == m for r in rows if r.get("phase") != "startup")]
systems = [("fjord", m) for m in modes]
if any(r.get("system") == "kafka" for r in rows):
    systems.append(("kafka", "page_cache"))

def figures(system, mode):
    return {
        "produce_acks1_mb_s": get(system, mode, "produce_acks1", "mb_per_s"),
        "produce_acks1_records_s": get(system, mode, "produce_acks1", "records_per_s"),
        "produce_acksall_mb_s": get(system, mode, "produce_acksall", "mb_per_s"),
        "produce_acksall_records_s": get(system, mode, "produce_acksall", "records_per_s"),
        "fetch_mb_s": get(system, mode, "fetch", "mb_per_s"),
        "latency_p50_ms": get(system, mode, "latency", "p50_ms"),
        "latency_p99_ms": get(system, mode, "latency", "p99_ms"),
        "latency_p999_ms": get(system, mode, "latency", "p999_ms"),
        "latency_max_ms": get(system, mode, "latency", "max_ms"),
        "cpu_s_per_gb_produce_acks1": per_gb(system, mode, "produce_acks1"),
        "cpu_s_per_gb_produce_acksall": per_gb(system, mode, "produce_acksall"),
        "cpu_s_per_gb_fetch": per_gb(system, mode, "fetch"),
        "cpu_s_per_gb_latency": per_gb(system, mode, "latency"),
        "rss_idle_empty_mb": (get(system, mode, "idle", "rss_empty_kb") or 0) / 1024 or None,
        "rss_idle_partitions_mb": (get(system, mode, "idle", "rss_idle_partitions_kb") or 0) / 1024 or None,
        "rss_peak_mb": (get(system, mode, "lifecycle", "peak_rss_kb") or 0) / 1024 or None,
        "stop_ms": get(system, mode, "lifecycle", "stop_ms"),
        "restart_with_data_ms": get(system, mode, "lifecycle", "restart_with_data_ms"),
        "errors": sum(int(r.get("errors", 0)) + (1 if r.get("exit_code", 0) else 0)
                      for r in rows if r.get("system") == system and r.get("durability") == mode),
        "log_warnings": get(system, mode, "lifecycle", "log_warnings"),
    }

for system, mode in systems:
    summary.setdefault(system, {})[mode] = figures(system, mode)
starts = [r["startup_ms"] for r in rows if r.get("phase") == "startup" and isinstance(r.get("startup_ms"), (int, float))]
summary["fjord"]["startup_ms"] = {"runs": starts, "median": statistics.median(starts) if starts else None}
if "kafka" in summary:
    k = summary["kafka"]["page_cache"]
    summary["ratios_fjord_over_kafka"] = {
        mode: {key: (summary["fjord"][mode][key] / k[key]) if summary["fjord"][mode].get(key) and k.get(key) else None
               for key in ("produce_acks1_mb_s", "produce_acksall_mb_s", "fetch_mb_s", "latency_p50_ms", "latency_p99_ms",
                           "cpu_s_per_gb_produce_acks1", "cpu_s_per_gb_produce_acksall", "cpu_s_per_gb_fetch")}
        for mode in modes}

def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)): return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)

labels = [("produce_acks1_mb_s", "produce acks=1 MB/s"), ("produce_acks1_records_s", "produce acks=1 records/s"),
          ("produce_acksall_mb_s", "produce acks=all MB/s"), ("produce_acksall_records_s", "produce acks=all records/s"),
          ("fetch_mb_s", "fetch MB/s"),
          ("latency_p50_ms", f"latency p50 ms ({rate}/s acks=all)"), ("latency_p99_ms", "latency p99 ms"),
          ("latency_p999_ms", "latency p999 ms"), ("latency_max_ms", "latency max ms"),
          ("cpu_s_per_gb_produce_acks1", "broker CPU s/GB produce acks=1"),
          ("cpu_s_per_gb_produce_acksall", "broker CPU s/GB produce acks=all"),
          ("cpu_s_per_gb_fetch", "broker CPU s/GB fetch"), ("cpu_s_per_gb_latency", "broker CPU s/GB latency phase"),
          ("rss_idle_empty_mb", "idle RSS MiB, no topics"),
          ("rss_idle_partitions_mb", f"idle RSS MiB, {partitions} idle partitions"),
          ("rss_peak_mb", "peak RSS MiB (VmHWM)"), ("stop_ms", "SIGTERM -> exit ms"),
          ("restart_with_data_ms", "restart on written data ms"), ("errors", "errors (delivery/fetch/exit)"),
          ("log_warnings", "broker WARN/ERROR log lines")]
cols = [f"{s}/{m}" if s == "fjord" else "kafka 4.4" for s, m in systems]
if "ratios_fjord_over_kafka" in summary:
    cols += [f"{m}/kafka" for m in modes]
w0 = max(len(l) for _, l in labels) + 2
print()
print(f"Fjord broker bench: {int(nbytes)/1e6:.0f} MB per produce phase, {record_size} B records, "
      f"{partitions} partitions, --smp {smp}")
print("".ljust(w0) + "".join(c.rjust(22) for c in cols))
for key, label in labels:
    vals = [summary[s][m].get(key) for s, m in systems]
    if "ratios_fjord_over_kafka" in summary:
        vals += [summary["ratios_fjord_over_kafka"][m].get(key) for m in modes]
    print(label.ljust(w0) + "".join(fmt(v).rjust(22) for v in vals))
st = summary["fjord"]["startup_ms"]
print(f"start-up exec -> Metadata ms: median {fmt(st['median'])} of {[round(x, 1) for x in st['runs']]}")
if out:
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"summary written to {out}")
EOF
