#!/usr/bin/env bash
# The one broker launcher of the integration suite.
#
#   broker.sh start DIR   start a broker on free loopback ports; prints its bootstrap
#                         address and writes DIR/it.env (FJORD_IT_BROKER,
#                         FJORD_IT_BOOTSTRAP, FJORD_IT_METRICS_URL) for the tests
#   broker.sh stop DIR    SIGTERM, up to 30 s, then SIGKILL; exits 1 if the broker
#                         did not stop cleanly (Fjord: killed, or non-zero exit status)
#
# Environment:
#   FJORD_IT_BROKER   fjord (default) or kafka (the Apache Kafka 4.4 reference, tests/kafka_ref)
#   FJORD_BIN         Fjord binary (default build/release/src/app/fjord)
#   FJORD_IT_CONFIG   extra broker settings, space-separated key=value (both brokers)
# Both brokers get num.partitions=3 (auto-created topics have 3 partitions).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

KIND="${FJORD_IT_BROKER:-fjord}"
FJORD_BIN="${FJORD_BIN:-$REPO/build/release/src/app/fjord}"
START_TIMEOUT="${FJORD_IT_START_TIMEOUT:-60}"
CONFIG="num.partitions=3 ${FJORD_IT_CONFIG:-}"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

write_env() {  # DIR BOOTSTRAP METRICS_URL
  printf 'FJORD_IT_BROKER=%s\nFJORD_IT_BOOTSTRAP=%s\nFJORD_IT_METRICS_URL=%s\n' "$KIND" "$2" "$3" >"$1/it.env"
}

start_fjord() {
  local dir="$1" port hport pid
  [ -x "$FJORD_BIN" ] || it_die "Fjord binary not found: $FJORD_BIN (build it with tools/build.sh release, set FJORD_BIN, or use FJORD_IT_BROKER=kafka)"
  port="$(free_port)"; hport="$(free_port)"
  while [ "$hport" = "$port" ]; do hport="$(free_port)"; done
  if [ -s "$dir/fjord.pid" ] && kill -0 "$(cat "$dir/fjord.pid")" 2>/dev/null; then
    it_die "a broker already runs in $dir (pid $(cat "$dir/fjord.pid")): broker.sh stop $dir first"
  fi
  rm -rf "$dir/data" "$dir/fjord.pid" "$dir/fjord.rc"
  mkdir -p "$dir/data"
  local args=(start --smp 1 --override "listeners=PLAINTEXT://127.0.0.1:$port"
    --override "log.dirs=$dir/data" --override "fjord.http.listener=127.0.0.1:$hport")
  local kv
  for kv in $CONFIG; do args+=(--override "$kv"); done
  echo "$FJORD_BIN ${args[*]}" >"$dir/command"
  # The subshell waits for the broker so that its exit status lands in fjord.rc.
  setsid bash -c '"$@" >"$0/fjord.log" 2>&1 </dev/null & echo $! >"$0/fjord.pid"; wait $!; echo $? >"$0/fjord.rc"' \
    "$dir" "$FJORD_BIN" "${args[@]}" </dev/null >/dev/null 2>&1 &
  local deadline=$((SECONDS + START_TIMEOUT))
  while [ ! -s "$dir/fjord.pid" ]; do sleep 0.05; done
  pid="$(cat "$dir/fjord.pid")"
  until python3 "$IT_DIR/lib/probe.py" "127.0.0.1:$port" 2; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/fjord.log" >&2
      it_die "fjord exited during start-up (log: $dir/fjord.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$dir/fjord.log" >&2
      stop_fjord "$dir" || true
      it_die "fjord did not answer ApiVersions within ${START_TIMEOUT}s (log: $dir/fjord.log)"
    fi
    sleep 0.2
  done
  write_env "$dir" "127.0.0.1:$port" "http://127.0.0.1:$hport/metrics"
  echo "127.0.0.1:$port"
}

stop_fjord() {
  local dir="$1" pid killed=0
  [ -f "$dir/fjord.pid" ] || return 0
  pid="$(cat "$dir/fjord.pid")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      it_log "fjord $pid did not stop within 30s of SIGTERM, killing it"
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
    fi
  fi
  local i=0
  while [ ! -s "$dir/fjord.rc" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  local rc
  rc="$(cat "$dir/fjord.rc" 2>/dev/null || echo '?')"
  rm -f "$dir/fjord.pid"
  if [ "$killed" = 1 ] || [ "$rc" != 0 ]; then
    it_log "fjord did not stop cleanly (exit status $rc; log: $dir/fjord.log)"
    return 1
  fi
}

start_kafka() {
  local dir="$1" bootstrap cfg
  cfg="$(printf '%s\n' $CONFIG)"
  bootstrap="$(KAFKA_REF_CONFIG="$cfg" "$REPO/tests/kafka_ref/kafka-ref" start "$dir")"
  write_env "$dir" "$bootstrap" ""
  echo "$bootstrap"
}

cmd="${1:-}"; dir="${2:-}"
[ -n "$dir" ] || it_die "usage: broker.sh start|stop DIR"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
case "$KIND:$cmd" in
  fjord:start) start_fjord "$dir" ;;
  fjord:stop) stop_fjord "$dir" ;;
  kafka:start) start_kafka "$dir" ;;
  kafka:stop) "$REPO/tests/kafka_ref/kafka-ref" stop "$dir" ;;
  *) it_die "usage: broker.sh start|stop DIR (FJORD_IT_BROKER=fjord|kafka, got '$KIND')" ;;
esac
