#!/usr/bin/env bash
# Issue 5's figures: CreateTopics of 1,000 topics, DescribeConfigs latency
# (bench/admin_bench.py), and produce throughput with idempotence on as a
# ratio to off, in the same run (fjord_loadgen, acks=all, librdkafka).
#
#   bench/admin_bench.sh      FJORD_BIN, BENCH_BYTES (default 256M) override
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${FJORD_BIN:-$REPO/build/release/src/app/fjord}"
LOADGEN="$REPO/build/release/bench/fjord_loadgen"
PY="${FJORD_CACHE:-$HOME/.cache/fjord}/it-venv/bin/python"
BYTES="${BENCH_BYTES:-256M}"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/fjord-admin-bench.XXXXXX")"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN" start --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DIR/data" \
  --override num.partitions=16 >"$DIR/fjord.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
until python3 "$REPO/tests/integration/lib/probe.py" "127.0.0.1:$PORT" 2; do sleep 0.2; done
"$PY" "$HERE/admin_bench.py" "127.0.0.1:$PORT"
off="$("$LOADGEN" produce --bootstrap "127.0.0.1:$PORT" --topic bench.idem.off --bytes "$BYTES" --acks all \
  --label idempotence-off | tail -1)"
on="$("$LOADGEN" produce --bootstrap "127.0.0.1:$PORT" --topic bench.idem.on --bytes "$BYTES" --acks all \
  -X enable.idempotence=true --label idempotence-on | tail -1)"
echo "$off"
echo "$on"
python3 - "$off" "$on" <<'PY'
import json, sys
off, on = json.loads(sys.argv[1]), json.loads(sys.argv[2])
key = next(k for k in ("mb_per_s", "MBps", "mb_s") if k in off)
print(json.dumps({"bench": "produce_idempotence_ratio", "off_" + key: off[key], "on_" + key: on[key],
                  "on_over_off": round(on[key] / off[key], 3)}))
PY
