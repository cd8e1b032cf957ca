#!/usr/bin/env bash
# `make cluster N=3`: N Fjord nodes on loopback, every one a voter of the
# metadata quorum and a broker. Node i (1..N) serves clients on
# 127.0.0.1:$((BASE_PORT + i - 1)) and talks to the other nodes on
# 127.0.0.1:$((CONTROLLER_BASE_PORT + i - 1)); its data is in
# $DATA/node-<i> and its log in $DATA/node-<i>.log. Ctrl-C (or SIGTERM) stops
# them all cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${N:-3}"
base="${BASE_PORT:-9092}"
cbase="${CONTROLLER_BASE_PORT:-9192}"
data="${DATA:-./data}"
bin="${FJORD_BIN:-build/release/src/app/fjord}"
smp="${SMP:-1}"
if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 9 ]; then
  echo "cluster.sh: N must be 1 to 9 (got $n)" >&2
  exit 2
fi
voters=""
bootstrap=""
for i in $(seq 1 "$n"); do
  voters+="${voters:+,}$i@127.0.0.1:$((cbase + i - 1))"
  bootstrap+="${bootstrap:+,}127.0.0.1:$((base + i - 1))"
done
pids=()
stop() {
  trap - INT TERM
  echo "stopping ${#pids[@]} nodes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  exit 0
}
trap stop INT TERM
mkdir -p "$data"
for i in $(seq 1 "$n"); do
  dir="$data/node-$i"
  mkdir -p "$dir"
  "$bin" start --smp "$smp" --log-dirs "$dir" \
    --override node.id="$i" \
    --override listeners="PLAINTEXT://127.0.0.1:$((base + i - 1)),CONTROLLER://127.0.0.1:$((cbase + i - 1))" \
    --override controller.listener.names=CONTROLLER \
    --override controller.quorum.voters="$voters" \
    >"$data/node-$i.log" 2>&1 &
  pids+=($!)
  echo "node $i: data $dir, log $data/node-$i.log, clients 127.0.0.1:$((base + i - 1)), controller 127.0.0.1:$((cbase + i - 1))"
done
echo "bootstrap.servers=$bootstrap"
# Until Ctrl-C; a node that dies is reported, the others keep running.
while true; do
  for k in "${!pids[@]}"; do
    p="${pids[$k]}"
    if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then
      wait "$p" 2>/dev/null && rc=0 || rc=$?
      echo "node $((k + 1)) exited (status $rc); see $data/node-$((k + 1)).log"
      pids[$k]=""
    fi
  done
  sleep 1
done
