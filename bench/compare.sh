#!/usr/bin/env bash
# Side-by-side benchmark of Fjord and Apache Kafka 4.4 on this machine (issue 8).
# `make bench-compare` runs it; bench/README.md ("Fjord vs Kafka") says what
# each workload and figure is.
#
# One invocation: the physical ceilings (loopback TCP, disk with and without
# fsync), then for each broker (Fjord, then Kafka) and each durability tier
# (A: acknowledged before fsync; B: acknowledged after fsync) a fresh broker on
# a fresh directory, pinned to one CPU, driven by fjord_loadgen pinned to the
# other: W1 fixed-rate latency, W2 1 KiB max rate, W3 100 B max rate, W6
# catch-up read of W2's backlog, W4 100 partitions with 4 producers and 4
# consumers; then W5 (many idle partitions: RSS, create and start-up times).
# Everything goes to results.jsonl; bench/compare_report.py writes the
# markdown report and the PNG plots.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${MODE:-quick}
fjord=${FJORD_BIN:-$root/build/release/src/app/fjord}
loadgen=${FJORD_LOADGEN:-$root/build/release/bench/fjord_loadgen}
ceiling=${FJORD_CEILING:-$root/build/release/bench/fjord_ceiling}
kref=$root/tests/kafka_ref/kafka-ref
broker_cpu=${BROKER_CPU:-0}
loadgen_cpu=${LOADGEN_CPU:-1}
base=${TMPDIR:-/tmp}
out=""
systems="fjord kafka"
tiers="A B"
busy_note=${BENCH_NOTE:-}

usage() {
    cat <<EOF
usage: bench/compare.sh [--mode quick|full] [--out DIR] [--systems "fjord kafka"] [--tiers "A B"]
                        [--workdir DIR] [--note TEXT]
  --mode      quick (default, small sizes, under 10 minutes) or full (\$MODE)
  --out       result directory (default bench/results/<date>/<mode>)
  --systems   which brokers (default: both)
  --tiers     durability tiers (default: A B)
  --workdir   parent of the temporary broker directories (default \${TMPDIR:-/tmp})
  --note      a sentence copied into the report (e.g. what else ran on the machine)
Binaries: \$FJORD_BIN, \$FJORD_LOADGEN, \$FJORD_CEILING (default build/release/...).
CPUs: \$BROKER_CPU (default 0) for the broker, \$LOADGEN_CPU (default 1) for the load generator.
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --mode) mode=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --systems) systems=$2; shift 2 ;;
        --tiers) tiers=$2; shift 2 ;;
        --workdir) base=$2; shift 2 ;;
        --note) busy_note=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "unknown option $1" >&2; exit 2 ;;
    esac
done

die() { echo "bench-compare: $*" >&2; exit 1; }
note() { echo "== [$(date +%T)] $*" >&2; }

# ---------------------------------------------------------------------------
# Sizes. W2's topic is W6's backlog. W4: per producer; each consumer reads
# what its producer wrote (the same 25 partitions).
case $mode in
    quick)
        w1_rate=1000 w1_seconds=20
        w2_bytes=$((1 << 30)) w3_records=5000000 w4_bytes=$((128 << 20))
        w5_partitions=1000 warm_bytes=$((64 << 20)) startup_runs=3 kafka_startup_runs=1 settle_s=3
        ceiling_bytes=$((512 << 20)) ceiling_seconds=3 ;;
    tiny)  # validates the harness in about 3 minutes; figures mean little
        w1_rate=500 w1_seconds=3
        w2_bytes=$((32 << 20)) w3_records=200000 w4_bytes=$((4 << 20))
        w5_partitions=100 warm_bytes=$((16 << 20)) startup_runs=2 kafka_startup_runs=1 settle_s=1
        ceiling_bytes=$((64 << 20)) ceiling_seconds=1 ;;
    full)
        w1_rate=1000 w1_seconds=60
        w2_bytes=$((4 << 30)) w3_records=20000000 w4_bytes=$((512 << 20))
        w5_partitions=10000 warm_bytes=$((512 << 20)) startup_runs=5 kafka_startup_runs=3 settle_s=5
        ceiling_bytes=$((4 << 30)) ceiling_seconds=10 ;;
    *) die "unknown mode '$mode' (quick, full, or tiny to check the harness)" ;;
esac
record_size=1024
w3_record_size=100
w1_partitions=16
w4_partitions=100
w4_clients=4
linger_max=5
linger_latency=0
batch_bytes=1000000

[[ -x $fjord ]] || die "no broker binary at $fjord (make bench-compare builds it)"
[[ -x $loadgen ]] || die "no fjord_loadgen at $loadgen"
[[ -x $ceiling ]] || die "no fjord_ceiling at $ceiling"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
ncpu=$(nproc --all)
(( broker_cpu < ncpu && loadgen_cpu < ncpu )) || die "CPUs $broker_cpu/$loadgen_cpu: this machine has $ncpu"

# ---------------------------------------------------------------------------
# Disk: everything one broker tier writes (it is deleted before the next),
# plus W5 and the ceiling files, must fit in half of the free space.
mkdir -p "$base"
per_tier=$(( (warm_bytes + w2_bytes * 5 / 4 + w3_records * w3_record_size + w4_clients * w4_bytes \
              + w1_rate * w1_seconds * record_size) * 12 / 10 ))
need=$(( per_tier + ceiling_bytes + w5_partitions * 64 * 1024 + (1 << 30) ))
avail=$(df -PB1 "$base" | awk 'NR==2 {print $4}')
if (( need > avail / 2 )); then
    die "mode $mode needs about $((need / 1000000)) MB in $base, which has $((avail / 1000000)) MB free; refusing to use more than half"
fi

[[ -n $out ]] || out=$root/bench/results/$(date +%F)/$mode
mkdir -p "$out"
out=$(cd "$out" && pwd)
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d "$base/fjord-compare.XXXXXX")
started=$(date +%s)

broker_pid=""
kafka_dir=""
cleanup() {
    if [[ -n $broker_pid ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    if [[ -n $kafka_dir && -f $kafka_dir/kafka.pid ]]; then
        "$kref" stop "$kafka_dir" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

note "mode=$mode out=$out work=$work (needs ~$((need / 1000000)) MB of $((avail / 1000000)) MB free)"

# Python for the report: a venv with matplotlib, made once in the cache.
venv=${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}/bench-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    note "creating $venv with matplotlib (once)"
    python3 -m venv "$venv" >&2 || "$root/tools/install-deps.sh" >&2
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q matplotlib >&2 || echo "bench-compare: matplotlib not installed; the report will have no plots" >&2
fi
"$kref" fetch

clk_tck=$(getconf CLK_TCK)
cpu_s() {  # utime+stime of PID in seconds (fields 14, 15 of /proc/PID/stat)
    awk -v t="$clk_tck" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t}' "/proc/$1/stat"
}
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

source "$root/bench/record.sh"

lg() { taskset -c "$loadgen_cpu" "$loadgen" "$@"; }

# ---------------------------------------------------------------------------
# Machine and versions

note "machine and versions"
{
    echo "date=$(date -u +%FT%TZ)"
    echo "mode=$mode"
    echo "host_cpu=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')"
    echo "cpus=$ncpu"
    echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "filesystem=$(df -PT "$base" | awk 'NR==2 {print $2 " on " $1}') ($base)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "fjord_version=$("$fjord" version 2>&1 | head -1)"
    echo "fjord_commit=$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src || echo '+changes')"
    echo "kafka_version=4.4.0 ($(ls "${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}"/kafka-4.4.0/libs/ | grep -E '^kafka_2.13-.*\.jar$' | head -1))"
    echo "java=$(java -version 2>&1 | head -1)"
    echo "librdkafka=$(pkg-config --modversion rdkafka 2>/dev/null || echo unknown)"
    echo "compiler=$(c++ --version | head -1)"
    echo "broker_cpu=$broker_cpu"
    echo "loadgen_cpu=$loadgen_cpu"
    echo "note=$busy_note"
    echo "w1_rate=$w1_rate"
    echo "w1_seconds=$w1_seconds"
    echo "w1_partitions=$w1_partitions"
    echo "w2_bytes=$w2_bytes"
    echo "w3_records=$w3_records"
    echo "w3_record_size=$w3_record_size"
    echo "w4_partitions=$w4_partitions"
    echo "w4_clients=$w4_clients"
    echo "w4_bytes_per_producer=$w4_bytes"
    echo "w5_partitions=$w5_partitions"
    echo "warm_bytes=$warm_bytes"
    echo "record_size=$record_size"
    echo "linger_max_ms=$linger_max"
    echo "linger_latency_ms=$linger_latency"
    echo "batch_bytes=$batch_bytes"
} >"$out/machine.txt"
# The JVM's view of the broker CPU (it sizes its GC and compiler threads from it).
taskset -c "$broker_cpu" java -Xms1g -Xmx1g -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+PrintFlagsFinal -version 2>/dev/null \
    | awk '$2 ~ /^(MaxHeapSize|InitialHeapSize|UseG1GC|MaxGCPauseMillis|InitiatingHeapOccupancyPercent|ParallelGCThreads|ConcGCThreads|CICompilerCount|ActiveProcessorCount|ExplicitGCInvokesConcurrent|UseCompressedOops)$/ {print $2 "=" $4}' \
    >"$out/jvm-flags.txt" || true

# ---------------------------------------------------------------------------
# Physical ceilings

# Measured twice here and once more at the end; the report takes the best
# run (a ceiling is what the machine can do, and a shared machine only ever
# takes away from it).
ceilings() {  # ceilings RUN
    note "ceiling $1/3: loopback TCP (sender on CPU $loadgen_cpu, receiver on CPU $broker_cpu)"
    "$ceiling" tcp --seconds "$ceiling_seconds" --send-cpu "$loadgen_cpu" --recv-cpu "$broker_cpu" \
        | while read -r l; do record "$l" system=machine phase=ceiling run="$1"; done
    note "ceiling $1/3: disk writes in $work (buffered, fsync, O_DIRECT)"
    taskset -c "$broker_cpu" "$ceiling" disk --dir "$work" --bytes "$ceiling_bytes" --seconds "$ceiling_seconds" \
        | while read -r l; do record "$l" system=machine phase=ceiling run="$1"; done
}
ceilings 1
ceilings 2

# ---------------------------------------------------------------------------
# Brokers

# start_fjord DIR TIER PARTITIONS: a Fjord broker on CPU broker_cpu; sets
# broker_pid, bootstrap.
start_fjord() {
    local dir=$1 tier=$2 partitions=$3 port
    port=$(free_port)
    mkdir -p "$dir/data"
    fjord_args=(start --smp 1 --log-dirs "$dir/data" --override "listeners=PLAINTEXT://127.0.0.1:$port"
                --override "num.partitions=$partitions")
    [[ $tier == A ]] && fjord_args+=(--override fjord.write.caching=true)
    echo "taskset -c $broker_cpu $fjord ${fjord_args[*]}" >>"$dir/command"
    taskset -c "$broker_cpu" "$fjord" "${fjord_args[@]}" >>"$dir/broker.log" 2>&1 &
    broker_pid=$!
    bootstrap=127.0.0.1:$port
    lg metadata --bootstrap "$bootstrap" --timeout-s 60 >/dev/null 2>&1 \
        || die "fjord did not answer Metadata within 60 s (log: $dir/broker.log)"
}

stop_fjord() {
    [[ -n $broker_pid ]] || return 0
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
}

# start_kafka DIR TIER: the reference broker (tests/kafka_ref) on CPU
# broker_cpu; sets broker_pid, bootstrap.
start_kafka() {
    local dir=$1 tier=$2 extra=""
    [[ $tier == B ]] && extra=$'log.flush.interval.messages=1\n'
    kafka_dir=$dir
    bootstrap=$(KAFKA_REF_CONFIG=$extra taskset -c "$broker_cpu" "$kref" start "$dir")
    broker_pid=$(cat "$dir/kafka.pid")
    [[ $(cat "/proc/$broker_pid/comm") == java ]] || die "kafka.pid $broker_pid is not the JVM"
}

stop_kafka() {
    "$kref" stop "$kafka_dir" >/dev/null 2>&1 || true
    broker_pid=""
}

# kafka_topic BOOTSTRAP NAME PARTITIONS: kafka-topics --create (the JVM tool,
# on the load generator's CPU).
kafka_topic() {
    taskset -c "$loadgen_cpu" "$kref" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" \
        --create --topic "$2" --partitions "$3" --replication-factor 1 >/dev/null
}

# phase SYSTEM TIER WORKLOAD LOADGEN-ARGS...: one loadgen run on CPU
# loadgen_cpu with the broker's CPU time around it.
phase() {
    local system=$1 tier=$2 w=$3; shift 3
    local c0 c1 json rc=0 t0
    c0=$(cpu_s "$broker_pid"); t0=$(date +%s%N)
    rm -f "$out/loadgen-$w.conf"
    json=$(lg "$@" --label "$system/$tier/$w" --config-out "$out/loadgen-$w.conf") || rc=$?
    c1=$(cpu_s "$broker_pid")
    record "${json:-{\}}" system="$system" tier="$tier" workload="$w" exit_code="$rc" wall_ms="$(ms_since "$t0")" \
        broker_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')" \
        broker_rss_kb="$(status_kb "$broker_pid" VmRSS)" broker_hwm_kb="$(status_kb "$broker_pid" VmHWM)"
    [[ $rc == 0 ]] || echo "bench-compare: $system/$tier/$w: loadgen exit code $rc" >&2
}

# W4: 4 consumers and 4 producers at once, each pair on its own 25 partitions.
w4() {
    local system=$1 tier=$2 per=$((w4_partitions / w4_clients)) c0 c1 t0 i rc=0
    local recs=$((w4_bytes / record_size))
    c0=$(cpu_s "$broker_pid"); t0=$(date +%s%N)
    local pids=()
    for i in $(seq 0 $((w4_clients - 1))); do
        lg consume --bootstrap "$bootstrap" --topic w4 --partitions "$w4_partitions" --first-partition $((i * per)) \
            --partition-count "$per" --records $((recs + per)) --timeout-s 600 --label "$system/$tier/W4c$i" \
            >"$work/w4-c$i.json" 2>>"$work/w4.log" &
        pids+=($!)
    done
    for i in $(seq 0 $((w4_clients - 1))); do
        lg produce --bootstrap "$bootstrap" --topic w4 --partitions "$w4_partitions" --first-partition $((i * per)) \
            --partition-count "$per" --records "$recs" --record-size "$record_size" --acks all \
            --linger-ms "$linger_max" --batch-bytes "$batch_bytes" --timeout-s 600 --label "$system/$tier/W4p$i" \
            >"$work/w4-p$i.json" 2>>"$work/w4.log" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=$?; done
    c1=$(cpu_s "$broker_pid")
    python3 - "$work" "$w4_clients" >"$work/w4.json" <<'EOF'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
def load(kind):
    rows = []
    for i in range(n):
        try: rows.append(json.loads(open(f"{work}/w4-{kind}{i}.json").read() or "{}"))
        except (OSError, ValueError): rows.append({"errors": 1})
    return rows
p, c = load("p"), load("c")
s = lambda rows, k: sum(r.get(k, 0) or 0 for r in rows)
# Windows on CLOCK_MONOTONIC (system-wide): from the first producer's first
# record to the last producer's last acknowledgement, and to the last record
# any consumer received.
try:
    start = min(r["start_mono_ns"] for r in p)
    pm = (max(r["end_mono_ns"] for r in p) - start) / 1e9
    cm = (max(r["end_mono_ns"] for r in c) - start) / 1e9
except (KeyError, ValueError):
    pm = cm = float("nan")
print(json.dumps({"mode": "w4", "bytes": s(p, "bytes"), "records": s(p, "records"),
                  "consumed_bytes": s(c, "bytes"), "produce_seconds": pm, "consume_seconds": cm,
                  "mb_per_s": s(p, "bytes") / 1e6 / pm, "consume_mb_per_s": s(c, "bytes") / 1e6 / cm,
                  "errors": s(p, "errors") + s(c, "errors"),
                  "cpu_user_s": s(p, "cpu_user_s") + s(c, "cpu_user_s"),
                  "cpu_sys_s": s(p, "cpu_sys_s") + s(c, "cpu_sys_s"), "seconds": max(pm, cm)}))
EOF
    record "$(cat "$work/w4.json")" system="$system" tier="$tier" workload=W4 exit_code="$rc" \
        wall_ms="$(ms_since "$t0")" broker_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')" \
        broker_rss_kb="$(status_kb "$broker_pid" VmRSS)" broker_hwm_kb="$(status_kb "$broker_pid" VmHWM)"
    [[ $rc == 0 ]] || { echo "bench-compare: $system/$tier/W4: a loadgen failed; its log:" >&2; tail -5 "$work/w4.log" >&2; }
}

# W2 again with Kafka's own Java producer (kafka-producer-perf-test) on a
# quarter of the bytes: a second client's view of the same load. Settings
# as fjord_loadgen's (no idempotence: the Java client's default would add
# InitProducerId and sequence checks that librdkafka's run does not have).
w2j() {
    local system=$1 tier=$2 recs=$((w2_bytes / 4 / record_size)) c0 c1 t0 rc=0 txt
    prime w2j "$w1_partitions"
    note "$system/$tier: W2j $((w2_bytes / 4 >> 20)) MiB with kafka-producer-perf-test (Java client)"
    c0=$(cpu_s "$broker_pid"); t0=$(date +%s%N)
    # The subshell's `times` prints its children's CPU time: the JVM's.
    txt=$( (taskset -c "$loadgen_cpu" "$kref" run-class org.apache.kafka.tools.ProducerPerformance \
                --bootstrap-server "$bootstrap" --topic w2j --num-records "$recs" --record-size "$record_size" \
                --throughput -1 --producer-props acks=all linger.ms="$linger_max" batch.size="$batch_bytes" \
                compression.type=none enable.idempotence=false 2>&1; times) ) || rc=$?
    c1=$(cpu_s "$broker_pid")
    echo "$txt" | grep -E 'records sent' | tail -1 >&2 || true
    python3 - "$txt" "$record_size" "$recs" >"$work/w2j.json" <<'EOF2'
import json, re, sys
txt, size, recs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = re.findall(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
               r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", txt)
t = re.findall(r"(\d+)m([\d.]+)s (\d+)m([\d.]+)s", txt)
d = {"mode": "java-producer-perf", "errors": 0 if m else 1}
if m:
    n, rps = int(m[-1][0]), float(m[-1][1])
    d.update(records=n, bytes=n * size, records_per_s=rps, mb_per_s=rps * size / 1e6,
             seconds=n / rps if rps else None, avg_ms=float(m[-1][3]), p99_ms=float(m[-1][7]))
    d["errors"] = 0 if n == recs else 1
if len(t) >= 2:  # second line of `times`: the children
    d["cpu_user_s"] = int(t[1][0]) * 60 + float(t[1][1])
    d["cpu_sys_s"] = int(t[1][2]) * 60 + float(t[1][3])
print(json.dumps(d))
EOF2
    record "$(cat "$work/w2j.json")" system="$system" tier="$tier" workload=W2j exit_code="$rc" \
        wall_ms="$(ms_since "$t0")" broker_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')" \
        broker_rss_kb="$(status_kb "$broker_pid" VmRSS)" broker_hwm_kb="$(status_kb "$broker_pid" VmHWM)"
}

# prime TOPIC PARTITIONS: one 1 KiB record to each partition, not measured.
prime() {
    lg produce --bootstrap "$bootstrap" --topic "$1" --partitions "$2" --records "$2" --sticky-records 1 --acks all \
        --timeout-s 120 >/dev/null 2>&1 || echo "bench-compare: could not prime $1" >&2
}

# log_summary LOG: the WARN/ERROR lines, time stamps removed, each distinct
# line once with its count, most frequent first (at most 20).
log_summary() {
    grep -E '(^|[] ])(WARN|ERROR) ' "$1" | sed -E 's/^\[?[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.,]+Z?\]? *//' \
        | sort | uniq -c | sort -rn | head -20 || true
}

# The workloads that move data, on a running broker. W4's topic needs 100
# partitions: Kafka creates it with kafka-topics; Fjord (which cannot serve
# CreateTopics yet on this branch) is restarted with num.partitions=100 and
# auto-creates it from Metadata.
workloads() {
    local system=$1 tier=$2 dir=$3
    local common=(--bootstrap "$bootstrap" --timeout-s 600)
    note "$system/$tier: warm-up, $((warm_bytes >> 20)) MiB produced and consumed (not counted)"
    lg produce "${common[@]}" --topic warmup --partitions "$w1_partitions" --bytes "$warm_bytes" --acks all \
        >/dev/null 2>&1 || echo "bench-compare: $system/$tier warm-up produce failed" >&2
    lg consume "${common[@]}" --topic warmup --partitions "$w1_partitions" --records $((warm_bytes / record_size)) \
        >/dev/null 2>&1 || echo "bench-compare: $system/$tier warm-up consume failed" >&2
    note "$system/$tier: W1 ${w1_rate} records/s x ${w1_seconds} s, end-to-end"
    phase "$system" "$tier" W1 e2e "${common[@]}" --topic w1 --partitions "$w1_partitions" --record-size "$record_size" \
        --rate "$w1_rate" --seconds "$w1_seconds" --acks all --linger-ms "$linger_latency" --batch-bytes "$batch_bytes"
    # Every topic gets one record per partition before it is measured: Kafka's
    # first append to a new partition is slow (its leader-epoch checkpoint is
    # written and fsynced), a one-off cost of topic creation, not of the load.
    prime w2 "$w1_partitions"
    prime w3 "$w1_partitions"
    note "$system/$tier: W2 $((w2_bytes >> 20)) MiB of 1 KiB records, max rate"
    phase "$system" "$tier" W2 produce "${common[@]}" --topic w2 --partitions "$w1_partitions" \
        --record-size "$record_size" --bytes "$w2_bytes" --acks all --linger-ms "$linger_max" --batch-bytes "$batch_bytes"
    w2j "$system" "$tier"
    note "$system/$tier: W3 $w3_records records of 100 B, max rate"
    phase "$system" "$tier" W3 produce "${common[@]}" --topic w3 --partitions "$w1_partitions" \
        --record-size "$w3_record_size" --records "$w3_records" --acks all --linger-ms "$linger_max" \
        --batch-bytes "$batch_bytes"
    note "$system/$tier: W6 catch-up read of W2's $((w2_bytes >> 20)) MiB"
    phase "$system" "$tier" W6 consume "${common[@]}" --topic w2 --partitions "$w1_partitions" \
        --records $((w2_bytes / record_size + w1_partitions))
    if [[ $system == fjord ]]; then
        stop_fjord
        start_fjord "$dir" "$tier" "$w4_partitions"
        lg metadata --bootstrap "$bootstrap" --topic w4 --partitions "$w4_partitions" --timeout-s 120 >/dev/null 2>&1 \
            || echo "bench-compare: fjord could not create w4" >&2
    fi
    prime w4 "$w4_partitions"
    note "$system/$tier: W4 $w4_partitions partitions, $w4_clients producers x $((w4_bytes >> 20)) MiB + $w4_clients consumers"
    w4 "$system" "$tier"
}

for system in $systems; do
    for tier in $tiers; do
        dir=$work/$system-$tier
        mkdir -p "$dir"
        note "$system/$tier: starting a fresh broker (CPU $broker_cpu)"
        if [[ $system == fjord ]]; then
            start_fjord "$dir" "$tier" "$w1_partitions"
            cp "$dir/command" "$out/fjord-$tier.command"
        else
            start_kafka "$dir" "$tier"
            tr '\0' ' ' <"/proc/$broker_pid/cmdline" >"$out/kafka-$tier.command"
            for t in "warmup:$w1_partitions" "w1:$w1_partitions" "w2:$w1_partitions" "w2j:$w1_partitions" \
                     "w3:$w1_partitions" \
                     "w4:$w4_partitions"; do
                kafka_topic "$bootstrap" "${t%%:*}" "${t##*:}" &
            done
            wait
        fi
        c_start=$(cpu_s "$broker_pid")
        workloads "$system" "$tier" "$dir"
        record "{}" system="$system" tier="$tier" workload=lifecycle peak_rss_kb="$(status_kb "$broker_pid" VmHWM)" \
            broker_cpu_s_since_start="$(cpu_s "$broker_pid")" disk_kb="$(du -sk "$dir" | awk '{print $1}')"
        if [[ $system == fjord ]]; then
            stop_fjord
            log_summary "$dir/broker.log" >"$out/fjord-$tier.warnings"
            grep -m2 -E 'fjord (starting|ready)' "$dir/broker.log" >"$out/fjord-$tier.startlog" || true
        else
            # Kafka prints its effective configuration once at start-up.
            awk '/KafkaConfig values:/ {on=1; next} on && /^\t/ {sub(/^\t/, ""); print; next} on {exit}' \
                "$dir/kafka.log" >"$out/kafka-$tier.config" || true
            log_summary "$dir/kafka.log" >"$out/kafka-$tier.warnings"
            stop_kafka
        fi
        rm -rf "$dir"
    done
done

# ---------------------------------------------------------------------------
# W5: many idle partitions. Each broker with its default durability (Fjord:
# group commit; Kafka: page cache); idle memory does not depend on it. The
# partitions come in topics of at most 1,000: Kafka's controller refuses one
# operation of more than 10,000 records (PolicyViolationException "excessively
# large batch operation"), which a 10,000-partition topic is.
# Each start-up sample waits for the broker to stop cleanly after SIGTERM (up
# to 600 s, then SIGKILL), so that the next sample starts on clean data.
w5_topics=$(( (w5_partitions + 999) / 1000 ))
w5_per_topic=$(( w5_partitions / w5_topics ))

w5_fjord() {
    local dir=$work/w5-fjord n=$w5_partitions t0 rss0 rssn i json
    note "fjord/W5: start-up on empty directories x $startup_runs"
    for i in $(seq 1 "$startup_runs"); do
        local port
        port=$(free_port)
        json=$(lg startup --bootstrap "127.0.0.1:$port" --log "$work/w5-startup-$i.log" --timeout-s 60 -- \
            taskset -c "$broker_cpu" "$fjord" start --smp 1 --log-dirs "$work/w5-empty-$i" \
            --override "listeners=PLAINTEXT://127.0.0.1:$port") || true
        record "${json:-{\}}" system=fjord tier=default workload=W5 phase=startup_empty run="$i"
        rm -rf "$work/w5-empty-$i"
    done
    note "fjord/W5: $n partitions in $w5_topics topics"
    start_fjord "$dir" B "$w5_per_topic"
    sleep "$settle_s"
    rss0=$(status_kb "$broker_pid" VmRSS)
    t0=$(date +%s%N)
    for i in $(seq 1 "$w5_topics"); do
        json=$(lg metadata --bootstrap "$bootstrap" --topic "w5-$i" --partitions "$w5_per_topic" --timeout-s 600) \
            || echo "bench-compare: fjord could not create w5-$i" >&2
    done
    local create_ms
    create_ms=$(ms_since "$t0")
    sleep "$settle_s"
    rssn=$(status_kb "$broker_pid" VmRSS)
    record "${json:-{\}}" system=fjord tier=default workload=W5 phase=create partitions="$n" create_ms="$create_ms" \
        topics="$w5_topics" create_method="Metadata auto-create (num.partitions=$w5_per_topic)" \
        rss_empty_kb="$rss0" rss_partitions_kb="$rssn" rss_anon_kb="$(status_kb "$broker_pid" RssAnon)" \
        rss_file_kb="$(status_kb "$broker_pid" RssFile)" threads="$(status_kb "$broker_pid" Threads)"
    local args=("${fjord_args[@]}")
    stop_fjord
    note "fjord/W5: start-up with $n partitions x $startup_runs"
    for i in $(seq 1 "$startup_runs"); do
        json=$(lg startup --bootstrap "$bootstrap" --log "$dir/restart.log" --timeout-s 300 --stop-timeout-s 600 -- \
            taskset -c "$broker_cpu" "$fjord" "${args[@]}") || true
        record "${json:-{\}}" system=fjord tier=default workload=W5 phase=startup_partitions run="$i" partitions="$n"
    done
    rm -rf "$dir" "$work"/w5-startup-*.log
}

w5_kafka() {
    local dir=$work/w5-kafka n=$w5_partitions t0 rss0 rssn i json cmd
    note "kafka/W5: start (format), $n partitions in $w5_topics topics"
    start_kafka "$dir" A
    mapfile -d '' cmd <"/proc/$broker_pid/cmdline"
    sleep "$settle_s"
    rss0=$(status_kb "$broker_pid" VmRSS)
    # kafka-topics is a JVM: its own start-up is part of its wall time. The
    # time of `--list` (same tool, no creation) is recorded beside it.
    t0=$(date +%s%N)
    taskset -c "$loadgen_cpu" "$kref" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
        --list >/dev/null
    local tool_ms create_ms
    tool_ms=$(ms_since "$t0")
    t0=$(date +%s%N)
    for i in $(seq 1 "$w5_topics"); do
        kafka_topic "$bootstrap" "w5-$i" "$w5_per_topic" || echo "bench-compare: kafka could not create w5-$i" >&2
    done
    for i in $(seq 1 "$w5_topics"); do
        json=$(lg metadata --bootstrap "$bootstrap" --topic "w5-$i" --partitions "$w5_per_topic" --timeout-s 600) \
            || echo "bench-compare: kafka's w5-$i has no leaders" >&2
    done
    create_ms=$(ms_since "$t0")
    sleep "$settle_s"
    rssn=$(status_kb "$broker_pid" VmRSS)
    record "${json:-{\}}" system=kafka tier=default workload=W5 phase=create partitions="$n" create_ms="$create_ms" \
        topics="$w5_topics" create_method="kafka-topics --create" tool_list_ms="$tool_ms" rss_empty_kb="$rss0" \
        rss_partitions_kb="$rssn" rss_anon_kb="$(status_kb "$broker_pid" RssAnon)" \
        rss_file_kb="$(status_kb "$broker_pid" RssFile)" threads="$(status_kb "$broker_pid" Threads)"
    stop_kafka
    note "kafka/W5: start-up with $n partitions x $kafka_startup_runs"
    local port=${bootstrap##*:}
    for i in $(seq 1 "$kafka_startup_runs"); do
        json=$(lg startup --bootstrap "127.0.0.1:$port" --log "$dir/restart.log" --timeout-s 300 --stop-timeout-s 600 -- \
            taskset -c "$broker_cpu" "${cmd[@]}") || true
        record "${json:-{\}}" system=kafka tier=default workload=W5 phase=startup_partitions run="$i" partitions="$n"
    done
    rm -rf "$dir"
    # An empty (formatted, started once) directory, then start-ups on it.
    dir=$work/w5-kafka-empty
    note "kafka/W5: start-up on an empty directory x $kafka_startup_runs"
    start_kafka "$dir" A
    mapfile -d '' cmd <"/proc/$broker_pid/cmdline"
    port=${bootstrap##*:}
    stop_kafka
    for i in $(seq 1 "$kafka_startup_runs"); do
        json=$(lg startup --bootstrap "127.0.0.1:$port" --log "$dir/restart.log" --timeout-s 300 --stop-timeout-s 600 -- \
            taskset -c "$broker_cpu" "${cmd[@]}") || true
        record "${json:-{\}}" system=kafka tier=default workload=W5 phase=startup_empty run="$i"
    done
    rm -rf "$dir"
}

for system in $systems; do "w5_$system"; done

ceilings 3
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
echo "elapsed_s=$(( $(date +%s) - started ))" >>"$out/machine.txt"
note "report"
py=python3
"$venv/bin/python" -c 'import matplotlib' 2>/dev/null && py=$venv/bin/python
"$py" "$root/bench/compare_report.py" "$out"
note "done in $(( $(date +%s) - started )) s: $out/report.md"
