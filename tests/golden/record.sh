#!/usr/bin/env bash
# Re-records the golden client sessions in tests/golden/data/ against the
# Apache Kafka reference broker (tests/kafka_ref/kafka-ref). Run by hand only:
# the recordings are committed test data.
#
#   tests/golden/record.sh [CLIENT...]    CLIENT: kcat kafka-python java (default: all)
#
# The broker advertises the proxy's port, so every connection of the clients,
# bootstrap and follow-up, goes through record_proxy.py.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
KREF="$REPO/tests/kafka_ref/kafka-ref"
OUT="$HERE/data"
CODECS=(none gzip snappy lz4 zstd)

clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(kcat kafka-python java)

"$REPO/tools/install-deps.sh"
"$KREF" fetch
VENV="$("$REPO/tools/venv.sh")"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fjord-golden.XXXXXX")"
PROXY_PID=""
stop_proxy() {
  if [ -n "$PROXY_PID" ]; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
  fi
}
cleanup() { stop_proxy; "$KREF" stop "$WORK/broker" || true; rm -rf "$WORK"; }
trap cleanup EXIT

PROXY_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BROKER="$(KAFKA_REF_ADVERTISED_PORT="$PROXY_PORT" "$KREF" start "$WORK/broker")"
BOOT="127.0.0.1:$PROXY_PORT"
echo "record: broker $BROKER, proxy $BOOT"
mkdir -p "$OUT"

start_proxy() {  # OUTPUT
  : >"$WORK/proxy.log"
  python3 "$HERE/record_proxy.py" --listen "$PROXY_PORT" --upstream "$BROKER" \
    --output "$1" --truncate 2>"$WORK/proxy.log" &
  PROXY_PID=$!
  for _ in $(seq 100); do
    grep -q 'recording to' "$WORK/proxy.log" && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/proxy.log" >&2
  echo "record: proxy did not start" >&2
  exit 1
}

# Topic creation outside the recordings (through a proxy that records nothing:
# the broker advertises only the proxy's port), for the clients without an admin API.
admin_unrecorded() {
  start_proxy /dev/null
  "$KREF" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" "$@"
  stop_proxy
}

check_count() {  # WHAT GOT WANT
  if [ "$2" -ne "$3" ]; then echo "record: $1: got $2 records, expected $3" >&2; exit 1; fi
}

record_kcat() {
  admin_unrecorded --create --topic kcat-golden --partitions 3 --replication-factor 1 >/dev/null
  start_proxy "$OUT/kcat.bin"
  kcat -b "$BOOT" -L >/dev/null
  kcat -b "$BOOT" -L -t kcat-golden >/dev/null
  local n=0
  for codec in "${CODECS[@]}"; do
    for i in 0 1 2 3; do
      printf '%s-key-%d:%s\n' "$codec" "$i" "$(printf "$codec value $i %.0s" $(seq $((1 + 5 * i))))"
    done | kcat -b "$BOOT" -P -t kcat-golden -K: -z "$codec" -H codec="$codec" -H source=kcat \
             -X linger.ms=50
    n=$((n + 4))
  done
  local got
  got="$(kcat -b "$BOOT" -C -t kcat-golden -o beginning -e -q -f '%k %h\n' \
          | grep -c 'key-[0-9] codec=[a-z0-9]*,source=kcat$')"
  check_count "kcat -C" "$got" "$n"
  got="$(timeout 60 kcat -b "$BOOT" -G kcat-group -o beginning -c "$n" -q -f '%k\n' kcat-golden \
          | grep -c key)"
  check_count "kcat -G" "$got" "$n"
  stop_proxy
}

record_kafka_python() {
  start_proxy "$OUT/kafka-python.bin"
  "$VENV/bin/python" "$HERE/kafka_python_session.py" "$BOOT"
  stop_proxy
}

record_java() {
  start_proxy "$OUT/java.bin"
  local run=("$KREF" run-class)
  "${run[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" \
    --create --topic java-golden --partitions 2 --replication-factor 1 >/dev/null
  "${run[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" \
    --describe --topic java-golden >/dev/null
  local n=0
  for codec in "${CODECS[@]}"; do
    for i in 0 1 2 3; do
      printf 'codec:%s,index:%d\t%s-key-%d\t%s\n' "$codec" "$i" "$codec" "$i" \
        "$(printf "$codec value $i %.0s" $(seq $((1 + 5 * i))))"
    done | "${run[@]}" org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOT" \
             --topic java-golden --compression-codec "$codec" \
             --reader-property parse.key=true --reader-property parse.headers=true \
             --command-property linger.ms=50
    n=$((n + 4))
  done
  local got
  # classic consumer group protocol (JoinGroup/SyncGroup/Heartbeat)
  got="$("${run[@]}" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOT" \
          --topic java-golden --group java-classic --from-beginning --max-messages "$n" \
          --timeout-ms 30000 --formatter-property print.key=true \
          --formatter-property print.headers=true \
          --command-property group.protocol=classic 2>/dev/null \
          | grep -cP '^codec:[a-z0-9]+,index:[0-9]\t[a-z0-9]+-key-[0-9]\t')"
  check_count "ConsoleConsumer (classic)" "$got" "$n"
  # new consumer group protocol (KIP-848, ConsumerGroupHeartbeat)
  got="$("${run[@]}" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOT" \
          --topic java-golden --group java-consumer --from-beginning --max-messages "$n" \
          --timeout-ms 30000 --formatter-property print.key=true \
          --command-property group.protocol=consumer 2>/dev/null | grep -c key)"
  check_count "ConsoleConsumer (consumer protocol)" "$got" "$n"
  "${run[@]}" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOT" \
    --describe --group java-classic >/dev/null
  stop_proxy
}

for c in "${clients[@]}"; do
  case "$c" in
    kcat) record_kcat ;;
    kafka-python) record_kafka_python ;;
    java) record_java ;;
    *) echo "record: unknown client $c" >&2; exit 2 ;;
  esac
  f="$OUT/$c.bin"
  python3 "$HERE/dump.py" "$f"
  size=$(stat -c %s "$f")
  if [ "$size" -ge 307200 ]; then
    echo "record: $f is $size bytes, over the 300 KB budget" >&2
    exit 1
  fi
done
