#!/usr/bin/env bash
# Fjord vs Apache Kafka 4.4 as 3-node clusters on this machine (issue 13,
# item 10). `make bench-compare CLUSTER=3` runs it; bench/README.md ("Fjord vs
# Kafka, clusters") says what each figure is.
#
# One invocation: for each system (Fjord, then Kafka) and durability tier, a
# fresh cluster of N nodes on loopback (ports below 32768, one data directory
# per node under one temp directory; Kafka in KRaft with combined
# broker+controller roles), topics with replication factor 3 and
# min.insync.replicas=2, and, all with acks=all:
#   P  produce throughput (fjord_loadgen produce) and broker CPU seconds per GB,
#      summed over the N broker processes (/proc/PID/stat utime+stime)
#   E  end-to-end and publish latency at a fixed rate (fjord_loadgen e2e)
#   F  failover, FAILOVER_RUNS times: a producer writes to one partition at a
#      fixed rate, its leader is killed with SIGKILL; the time from the kill to
#      the next acknowledged write (bench/cluster_tool.py failover), then the
#      node is restarted and the next run waits for a full ISR again
# Everything goes to results.jsonl; bench/compare_cluster_report.py writes
# report.md. Every process started here is stopped on exit, even on failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${MODE:-quick}
nodes=${CLUSTER:-3}
fjord=${FJORD_BIN:-$root/build/release/src/app/fjord}
loadgen=${FJORD_LOADGEN:-$root/build/release/bench/fjord_loadgen}
kref=$root/tests/kafka_ref/kafka-ref
cache=${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}
base=${TMPDIR:-/tmp}
out=""
systems="fjord kafka"
tiers="A"
busy_note=${BENCH_NOTE:-}
# Sizes; empty means the mode's default (below).
record_size="" bytes="" partitions="" rate="" seconds="" failover_runs="" failover_rate=""

usage() {
    cat <<EOF
usage: bench/compare_cluster.sh [--nodes N] [--mode quick|tiny] [--out DIR] [--systems "fjord kafka"]
                                [--tiers "A B"] [--record-size B] [--bytes N] [--partitions P]
                                [--rate R] [--seconds S] [--failover-runs K] [--failover-rate R]
                                [--workdir DIR] [--note TEXT]
  --nodes          cluster size (default 3, \$CLUSTER); topics have replication factor 3
  --mode           quick (default, about 10 minutes) or tiny (checks the harness, figures mean little)
  --out            result directory (default bench/results/<date>/cluster<N>-<mode>)
  --systems        which brokers (default: both)
  --tiers          durability tiers (default: A; A = acknowledged before fsync, B = after fsync)
  --record-size    record value bytes, every phase (default 1024)
  --bytes          P: bytes produced at full rate (default 512MiB; K/M/G suffixes)
  --partitions     P and E: the topic's partitions (default 16)
  --rate           E: records/s (default 200)
  --seconds        E: duration (default 20)
  --failover-runs  F: kills per system (default 3)
  --failover-rate  F: records/s to the partition whose leader is killed (default 500)
  --workdir        parent of the temporary directory (default \${TMPDIR:-/tmp})
  --note           a sentence copied into the report (e.g. what else ran on the machine)
Binaries: \$FJORD_BIN, \$FJORD_LOADGEN (default build/release/...).
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --nodes) nodes=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --systems) systems=$2; shift 2 ;;
        --tiers) tiers=$2; shift 2 ;;
        --record-size) record_size=$2; shift 2 ;;
        --bytes) bytes=$2; shift 2 ;;
        --partitions) partitions=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --failover-runs) failover_runs=$2; shift 2 ;;
        --failover-rate) failover_rate=$2; shift 2 ;;
        --workdir) base=$2; shift 2 ;;
        --note) busy_note=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "unknown option $1" >&2; exit 2 ;;
    esac
done

die() { echo "bench-compare-cluster: $*" >&2; exit 1; }
note() { echo "== [$(date +%T)] $*" >&2; }

to_bytes() {  # 512MiB, 1G, 4096 -> bytes
    python3 -c 'import re,sys; m=re.fullmatch(r"(\d+)\s*([KMG]?)(i?B?)", sys.argv[1].strip(), re.I)
if not m: sys.exit("bad size " + sys.argv[1])
print(int(m[1]) * 1024 ** "_KMG".index(m[2].upper() or "_"))' "$1"
}

# ---------------------------------------------------------------------------
# Sizes: the mode's defaults, then the options.
case $mode in
    # E's rate is below the single-node comparison's 1,000/s: with linger.ms=0
    # every record is a request, Kafka serves one request per connection at a
    # time, and an acks=all request waits for the followers' next fetch; on
    # the loaded 2-core host 3 Kafka nodes acknowledged about 80 records/s
    # when asked for 500 (Fjord kept up).
    quick) d_bytes=512MiB d_rate=200 d_seconds=20 d_runs=3 warm=64MiB warm_e2e_s=15 ;;
    tiny)  d_bytes=32MiB d_rate=100 d_seconds=4 d_runs=1 warm=8MiB warm_e2e_s=3 ;;
    *) die "unknown mode '$mode' (quick, or tiny to check the harness)" ;;
esac
record_size=${record_size:-1024}
bytes=$(to_bytes "${bytes:-$d_bytes}")
warm_bytes=$(to_bytes "$warm")
partitions=${partitions:-16}
rate=${rate:-$d_rate}
seconds=${seconds:-$d_seconds}
failover_runs=${failover_runs:-$d_runs}
failover_rate=${failover_rate:-500}
rf=3
min_isr=2
linger_max=5
batch_bytes=1000000

[[ $nodes =~ ^[0-9]+$ ]] && (( nodes >= rf && nodes <= 9 )) || die "--nodes must be $rf to 9 (replication factor $rf)"
[[ -x $fjord ]] || die "no broker binary at $fjord (make bench-compare CLUSTER=3 builds it)"
[[ -x $loadgen ]] || die "no fjord_loadgen at $loadgen"

# Disk: every node keeps a full copy of everything (replication factor 3 on
# 3 nodes); one cluster's directories are deleted before the next starts.
mkdir -p "$base"
need=$(( (warm_bytes + bytes + rate * seconds * record_size + failover_runs * failover_rate * 30 * record_size)
         * rf * 12 / 10 + (1 << 30) ))
avail=$(df -PB1 "$base" | awk 'NR==2 {print $4}')
(( need <= avail / 2 )) || die "this run needs about $((need / 1000000)) MB in $base, which has $((avail / 1000000)) MB free; refusing to use more than half"

[[ -n $out ]] || out=$root/bench/results/$(date +%F)/cluster$nodes-$mode
mkdir -p "$out"
out=$(cd "$out" && pwd)
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d "$base/fjord-cluster.XXXXXX")
started=$(date +%s)

# The Python client (confluent-kafka, on librdkafka like fjord_loadgen): the
# integration tests' venv.
"$root/tests/integration/install.sh" confluent-pypi >/dev/null
py=$cache/it-venv/bin/python
tool() { "$py" "$root/bench/cluster_tool.py" "$@"; }
"$kref" fetch
kdir=$cache/kafka-4.4.0

# ---------------------------------------------------------------------------
# Processes. node_pid[i] is node i's broker process (the JVM itself for Kafka,
# so that kill -9 and /proc/PID/stat are about the broker, not a wrapper).
declare -a node_pid node_cmd
cluster_system=""

stop_node() {  # stop_node I: SIGTERM, up to 60 s, then SIGKILL
    local pid=${node_pid[$1]:-}
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 60))
        while kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] \
              && (( SECONDS < deadline )); do
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    node_pid[$1]=""
}

stop_cluster() {
    local i
    for i in "${!node_pid[@]}"; do
        if [[ -n ${node_pid[$i]} ]]; then kill -TERM "${node_pid[$i]}" 2>/dev/null || true; fi
    done
    for i in "${!node_pid[@]}"; do stop_node "$i"; done
    cluster_system=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_cluster
    if (( rc != 0 )) && [[ -d $work ]]; then
        # Keep the nodes' logs of a failed run beside its results.
        for f in "$work"/*/node-*.log; do
            if [[ -f $f ]]; then cp "$f" "$out/failed-$(basename "$(dirname "$f")")-$(basename "$f")"; fi
        done
        echo "bench-compare-cluster: failed (exit $rc); the nodes' logs are in $out/failed-*" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note "nodes=$nodes mode=$mode tiers=\"$tiers\" out=$out work=$work (needs ~$((need / 1000000)) MB)"

clk_tck=$(getconf CLK_TCK)
# cpu_s PID...: utime+stime of the processes, summed, in seconds (fields 14,
# 15 of /proc/PID/stat).
cpu_s() {
    local p
    for p in "$@"; do cat "/proc/$p/stat"; done \
        | awk -v t="$clk_tck" '{sub(/^.*\) /, ""); s += $12 + $13} END {printf "%.2f", s / t}'
}
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
live_pids() {
    local i
    for i in $(seq 1 "$nodes"); do
        if [[ -n ${node_pid[$i]:-} ]]; then echo "${node_pid[$i]}"; fi
    done
}

# Loopback ports below the ephemeral range (32768 and up), free now, none twice.
pick_ports() {  # pick_ports COUNT
    python3 - "$1" <<'EOF'
import random, socket, sys
out = []
while len(out) < int(sys.argv[1]):
    p = random.randint(20000, 32000)
    if p in out:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
    out.append(p)
print(" ".join(map(str, out)))
EOF
}

source "$root/bench/record.sh"

# check_nodes SYSTEM: every node that should run does; a node that stopped by
# itself ends the run (its log is kept by cleanup).
check_nodes() {
    local i rc
    for i in $(seq 1 "$nodes"); do
        local pid=${node_pid[$i]:-}
        if [[ -n $pid ]] && { ! kill -0 "$pid" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$pid/stat") == Z ]]; }; then
            wait "$pid" 2>/dev/null && rc=0 || rc=$?
            node_pid[$i]=""
            echo "bench-compare-cluster: $1 node $i exited by itself (status $rc); last lines of its log:" >&2
            tail -20 "$cluster_dir/node-$i.log" >&2
            exit 1
        fi
    done
}

# ---------------------------------------------------------------------------
# Fjord: every node a metadata quorum voter and a broker (docs/operations.md),
# --smp 1 (N nodes share this machine's CPUs).

start_fjord_node() {  # start_fjord_node I
    local i=$1 unset_env=() v
    # Fjord reads FJORD_X=... from its environment as the setting x; this
    # script's own variables (FJORD_BIN, FJORD_LOADGEN, FJORD_CACHE) are not
    # broker settings.
    for v in $(compgen -e | grep '^FJORD_' || true); do unset_env+=(-u "$v"); done
    # shellcheck disable=SC2086
    env "${unset_env[@]}" "$fjord" ${node_cmd[$i]} >>"$cluster_dir/node-$i.log" 2>&1 &
    node_pid[$i]=$!
}

start_fjord_cluster() {  # start_fjord_cluster TIER
    local tier=$1 i ports voters=""
    read -r -a ports <<<"$(pick_ports $((2 * nodes)))"
    bootstrap=""
    for i in $(seq 1 "$nodes"); do
        voters+="${voters:+,}$i@127.0.0.1:${ports[$((nodes + i - 1))]}"
        bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((i - 1))]}"
    done
    for i in $(seq 1 "$nodes"); do
        mkdir -p "$cluster_dir/node-$i"
        node_cmd[$i]="start --smp 1 --log-dirs $cluster_dir/node-$i --override node.id=$i"
        node_cmd[$i]+=" --override listeners=PLAINTEXT://127.0.0.1:${ports[$((i - 1))]},CONTROLLER://127.0.0.1:${ports[$((nodes + i - 1))]}"
        node_cmd[$i]+=" --override controller.listener.names=CONTROLLER --override controller.quorum.voters=$voters"
        [[ $tier == A ]] && node_cmd[$i]+=" --override fjord.write.caching=true"
        echo "$fjord ${node_cmd[$i]}" >>"$out/fjord-$tier.command"
        start_fjord_node "$i"
    done
    cluster_system=fjord
}

# ---------------------------------------------------------------------------
# Kafka: KRaft, every node broker+controller, a static quorum
# (controller.quorum.voters), each directory formatted with one cluster id.
# The JVM as tests/kafka_ref/kafka-ref starts it (1 GiB heap, G1 and the flags
# of Kafka's kafka-run-class.sh); the broker settings as kafka-ref's (its
# internal topics have one partition: nothing here uses groups or
# transactions), replicated 3 times with min.insync.replicas 2 like the
# measured topics; no auto-creation (every topic is created with RF 3).
kafka_jvm=(-Xms1g -Xmx1g -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
           -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
           -Dlog4j2.configurationFile=$kdir/log4j2-server.properties)

start_kafka_node() {  # start_kafka_node I
    local i=$1
    java "${kafka_jvm[@]}" -Dkafka.logs.dir="$cluster_dir/node-$i" -cp "$kdir/libs/*" kafka.Kafka \
        "$cluster_dir/node-$i/server.properties" >>"$cluster_dir/node-$i.log" 2>&1 </dev/null &
    node_pid[$i]=$!
}

start_kafka_cluster() {  # start_kafka_cluster TIER
    local tier=$1 i ports voters="" cluster_id pids=()
    read -r -a ports <<<"$(pick_ports $((2 * nodes)))"
    bootstrap=""
    for i in $(seq 1 "$nodes"); do
        voters+="${voters:+,}$i@127.0.0.1:${ports[$((nodes + i - 1))]}"
        bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((i - 1))]}"
    done
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    for i in $(seq 1 "$nodes"); do
        local d=$cluster_dir/node-$i
        mkdir -p "$d/data"
        cat >"$d/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
listeners=PLAINTEXT://127.0.0.1:${ports[$((i - 1))]},CONTROLLER://127.0.0.1:${ports[$((nodes + i - 1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$((i - 1))]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.voters=$voters
log.dirs=$d/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
auto.create.topics.enable=false
EOF
        [[ $tier == B ]] && echo "log.flush.interval.messages=1" >>"$d/server.properties"
        # Formatting is a JVM start of its own: the nodes in parallel.
        java -Xmx256m -Dlog4j2.configurationFile="$kdir/log4j2-tools.properties" -cp "$kdir/libs/*" \
            kafka.tools.StorageTool format --cluster-id="$cluster_id" -c "$d/server.properties" \
            >"$d/format.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { cat "$cluster_dir/node-$((i + 1))/format.log" >&2; die "kafka-storage format of node $((i + 1)) failed"; }
    done
    for i in $(seq 1 "$nodes"); do
        start_kafka_node "$i"
        echo "java ${kafka_jvm[*]} -cp '$kdir/libs/*' kafka.Kafka $cluster_dir/node-$i/server.properties" \
            >>"$out/kafka-$tier.command"
    done
    cp "$cluster_dir/node-1/server.properties" "$out/kafka-$tier.node-1.properties"
    cluster_system=kafka
}

# The active metadata controller (the quorum leader), from DescribeQuorum
# through the brokers: Kafka's own tool, for both systems. (Kafka's Metadata
# answer names a random broker as the controller, so it cannot say.)
active_controller() {
    "$kref" run-class org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$bootstrap" \
        describe --status 2>/dev/null | awk -F': *' '$1 == "LeaderId" {print $2}'
}

# ---------------------------------------------------------------------------
# Phases

lg() { "$loadgen" "$@"; }

# phase SYSTEM TIER WORKLOAD LOADGEN-ARGS...: one loadgen run, the brokers'
# CPU time (sum over the nodes) around it.
phase() {
    local system=$1 tier=$2 w=$3; shift 3
    local c0 c1 json rc=0 t0 pids
    pids=$(live_pids)
    # shellcheck disable=SC2086
    c0=$(cpu_s $pids); t0=$(date +%s%N)
    rm -f "$out/loadgen-$system-$w.conf"
    json=$(lg "$@" --label "$system/$tier/$w" --config-out "$out/loadgen-$system-$w.conf") || rc=$?
    # shellcheck disable=SC2086
    c1=$(cpu_s $pids)
    record "${json:-{\}}" system="$system" tier="$tier" workload="$w" exit_code="$rc" wall_ms="$(ms_since "$t0")" \
        broker_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')" nodes="$nodes" \
        broker_rss_kb="$(for p in $pids; do status_kb "$p" VmRSS; done | awk '{s += $1} END {print s}')"
    [[ $rc == 0 ]] || echo "bench-compare-cluster: $system/$tier/$w: loadgen exit code $rc" >&2
    check_nodes "$system"
}

create_topic() {  # create_topic SYSTEM TIER NAME PARTITIONS
    local json
    json=$(tool create --bootstrap "$bootstrap" --topic "$3" --partitions "$4" --rf "$rf" --min-isr "$min_isr" \
        --timeout-s 120) || die "$1: could not create topic $3 (RF $rf, min.insync.replicas $min_isr)"
    record "$json" system="$1" tier="$2" workload=create
}

# One failover run: kill -9 the leader of a partition of topic `failover`
# (one led by a node that is not the active controller, if there is one),
# measure, restart the node, wait until it is back in every ISR.
failover_run() {  # failover_run SYSTEM TIER RUN
    local system=$1 tier=$2 run=$3 ctl json rc=0 pidmap="" i victim t0
    ctl=$(active_controller) || true
    for i in $(seq 1 "$nodes"); do pidmap+="${pidmap:+,}$i:${node_pid[$i]}"; done
    json=$(tool failover --bootstrap "$bootstrap" --topic failover --partitions "$nodes" --rf "$rf" \
        --pids "$pidmap" --controller "${ctl:--1}" --rate "$failover_rate" --record-size "$record_size" \
        --run "$run" --timeout-s 90) || rc=$?
    record "${json:-{\}}" system="$system" tier="$tier" workload=F exit_code="$rc"
    victim=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("killed_node", ""))' "$json")
    [[ -n $victim ]] || die "$system failover run $run: no result"
    wait "${node_pid[$victim]}" 2>/dev/null || true   # reap the killed node
    node_pid[$victim]=""
    if [[ $rc != 0 ]]; then
        # Lost acknowledged records, or no write acknowledged within 90 s.
        echo "bench-compare-cluster: $system failover run $run failed: $json" >&2
        [[ $system != fjord ]] || die "stopping: see the failover result above and the nodes' logs"
    fi
    check_nodes "$system"
    note "$system/$tier: F run $run: restart node $victim, wait until it serves and every ISR is full"
    t0=$(date +%s%N)
    "start_${system}_node" "$victim"
    # A full ISR alone does not prove the node is back: Fjord keeps a silent
    # follower in the ISR for replica.lag.time.max.ms (30 s), longer than a
    # run. So first every node, the restarted one included, must answer
    # Metadata listing every broker; then the ISRs; then 2 s to catch up.
    tool brokers --bootstrap "$bootstrap" --count "$nodes" --timeout-s 180 >/dev/null \
        || die "$system: node $victim did not serve Metadata with $nodes brokers within 180 s after its restart"
    for t in failover produce e2e; do
        local parts=$partitions
        [[ $t == failover ]] && parts=$nodes
        tool wait-isr --bootstrap "$bootstrap" --topic "$t" --partitions "$parts" --rf "$rf" --timeout-s 180 >/dev/null \
            || die "$system: node $victim did not rejoin the ISR of $t within 180 s after its restart"
    done
    record "{}" system="$system" tier="$tier" workload=F_rejoin run="$run" node="$victim" rejoin_ms="$(ms_since "$t0")"
    sleep 2
}

# ---------------------------------------------------------------------------
# Machine and versions

{
    echo "date=$(date -u +%FT%TZ)"
    echo "mode=$mode"
    echo "nodes=$nodes"
    echo "host_cpu=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')"
    echo "cpus=$(nproc --all)"
    echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "filesystem=$(df -PT "$base" | awk 'NR==2 {print $2 " on " $1}') ($base)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nice=$(nice)"
    echo "fjord_version=$("$fjord" version 2>&1 | head -1)"
    echo "fjord_commit=$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src || echo '+changes')"
    echo "kafka_version=4.4.0 ($(ls "$kdir/libs/" | grep -E '^kafka_2.13-.*\.jar$' | head -1))"
    echo "java=$(java -version 2>&1 | head -1)"
    echo "librdkafka=$(pkg-config --modversion rdkafka 2>/dev/null || echo unknown)"
    echo "confluent_kafka=$("$py" -c 'import confluent_kafka as c; print(c.version()[0], "on librdkafka", c.libversion()[0])')"
    echo "note=$busy_note"
    echo "tiers=$tiers"
    echo "replication_factor=$rf"
    echo "min_insync_replicas=$min_isr"
    echo "record_size=$record_size"
    echo "produce_bytes=$bytes"
    echo "warm_bytes=$warm_bytes"
    echo "warm_e2e_seconds=$warm_e2e_s"
    echo "partitions=$partitions"
    echo "e2e_rate=$rate"
    echo "e2e_seconds=$seconds"
    echo "failover_runs=$failover_runs"
    echo "failover_rate=$failover_rate"
    echo "linger_max_ms=$linger_max"
    echo "batch_bytes=$batch_bytes"
} >"$out/machine.txt"
rm -f "$out"/fjord-*.command "$out"/kafka-*.command "$out"/failed-*

# ---------------------------------------------------------------------------
# The runs

for system in $systems; do
    for tier in $tiers; do
        cluster_dir=$work/$system-$tier
        mkdir -p "$cluster_dir"
        note "$system/$tier: starting $nodes nodes"
        t0=$(date +%s%N)
        "start_${system}_cluster" "$tier"
        json=$(tool brokers --bootstrap "$bootstrap" --count "$nodes" --timeout-s 180) \
            || { check_nodes "$system"; die "$system: the $nodes nodes did not all list $nodes brokers within 180 s"; }
        record "$json" system="$system" tier="$tier" workload=start start_ms="$(ms_since "$t0")" bootstrap="$bootstrap"
        note "$system/$tier: cluster up ($bootstrap); topics with RF $rf, min.insync.replicas $min_isr"
        create_topic "$system" "$tier" warmup "$partitions"
        create_topic "$system" "$tier" warmup_e2e "$partitions"
        create_topic "$system" "$tier" produce "$partitions"
        create_topic "$system" "$tier" e2e "$partitions"
        create_topic "$system" "$tier" failover "$nodes"
        common=(--bootstrap "$bootstrap" --timeout-s 600 --partitions "$partitions" --record-size "$record_size")

        # Warm-up (not counted): Kafka's JIT compiles its hot paths; every
        # partition's first append (Kafka's leader-epoch checkpoint) is done.
        note "$system/$tier: warm-up, $((warm_bytes >> 20)) MiB (not counted)"
        lg produce "${common[@]}" --topic warmup --bytes "$warm_bytes" --acks all >/dev/null 2>&1 \
            || echo "bench-compare-cluster: $system/$tier warm-up failed" >&2
        # The consumer asks for a group coordinator: Kafka creates
        # __consumer_offsets then (not later, during E).
        lg consume "${common[@]}" --topic warmup --records $((warm_bytes / record_size)) >/dev/null 2>&1 \
            || echo "bench-compare-cluster: $system/$tier warm-up consume failed" >&2
        # Then the fixed-rate path (one small request per record): without
        # it, Kafka's JIT compiles that path during E (seen: C1/C2 compiler
        # threads taking most of the CPU and publish latencies of seconds).
        lg e2e "${common[@]}" --topic warmup_e2e --rate "$rate" --seconds "$warm_e2e_s" --acks all --linger-ms 0 \
            >/dev/null 2>&1 || echo "bench-compare-cluster: $system/$tier warm-up e2e failed" >&2
        for t in produce e2e; do
            lg produce "${common[@]}" --topic "$t" --records "$partitions" --sticky-records 1 --acks all \
                >/dev/null 2>&1 || echo "bench-compare-cluster: could not prime topic $t" >&2
        done
        lg produce "${common[@]}" --topic failover --partitions "$nodes" --records "$nodes" --sticky-records 1 \
            --acks all >/dev/null 2>&1 || echo "bench-compare-cluster: could not prime topic failover" >&2
        check_nodes "$system"

        note "$system/$tier: P $((bytes >> 20)) MiB of $record_size B records, acks=all, max rate"
        phase "$system" "$tier" P produce "${common[@]}" --topic produce --bytes "$bytes" --acks all \
            --linger-ms "$linger_max" --batch-bytes "$batch_bytes"

        note "$system/$tier: E $rate records/s x $seconds s, end-to-end"
        phase "$system" "$tier" E e2e "${common[@]}" --topic e2e --rate "$rate" --seconds "$seconds" --acks all \
            --linger-ms 0 --batch-bytes "$batch_bytes"

        for run in $(seq 1 "$failover_runs"); do
            note "$system/$tier: F run $run of $failover_runs: kill -9 a partition leader under $failover_rate records/s"
            failover_run "$system" "$tier" "$run"
        done

        record "{}" system="$system" tier="$tier" workload=lifecycle \
            disk_kb="$(du -sk "$cluster_dir" | awk '{print $1}')" \
            rss_kb="$(for p in $(live_pids); do status_kb "$p" VmRSS; done | awk '{s += $1} END {print s}')"
        note "$system/$tier: stopping"
        stop_cluster
        for i in $(seq 1 "$nodes"); do
            grep -E '(^|[] ])(WARN|ERROR|error|warn) ' "$cluster_dir/node-$i.log" \
                | sed -E 's/^\[?[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.,]+Z?\]? *//' | sort | uniq -c | sort -rn \
                | head -20 | cut -c1-400 | sed "s/^/node $i: /" || true
        done >"$out/$system-$tier.warnings"
        rm -rf "$cluster_dir"
    done
done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
echo "elapsed_s=$(( $(date +%s) - started ))" >>"$out/machine.txt"
note "report"
python3 "$root/bench/compare_cluster_report.py" "$out"
note "done in $(( $(date +%s) - started )) s: $out/report.md"
