#!/usr/bin/env bash
# Re-makes the record-batch samples in tests/data/batches/ (run by hand only;
# the outputs are committed test data):
#   <client>-<codec>.log   Kafka segment file of a single-partition topic
#   <client>-<codec>.json  the records in it (and a summary of its batches)
# for client in librdkafka kafka-python java and codec in none gzip snappy lz4 zstd.
#
#   tests/data/batches/make.sh [CLIENT...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
KREF="$REPO/tests/kafka_ref/kafka-ref"
CODECS=(none gzip snappy lz4 zstd)

clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(librdkafka kafka-python java)

"$REPO/tools/install-deps.sh"
"$KREF" fetch
VENV="$("$REPO/tools/venv.sh")"
PY="$VENV/bin/python"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fjord-batches.XXXXXX")"
cleanup() { "$KREF" stop "$WORK/broker" || true; rm -rf "$WORK"; }
trap cleanup EXIT

cc -O1 -Wall -o "$WORK/rdkafka_produce" "$HERE/rdkafka_produce.c" -lrdkafka
"$PY" "$HERE/batches.py" spec "$WORK/records.spec"

BOOT="$("$KREF" start "$WORK/broker")"
echo "make: broker $BOOT"

topics=()
for client in "${clients[@]}"; do
  for codec in "${CODECS[@]}"; do topics+=("$client-$codec"); done
done
"$PY" "$HERE/batches.py" create-topics "$BOOT" "${topics[@]}"

for client in "${clients[@]}"; do
  for codec in "${CODECS[@]}"; do
    topic="$client-$codec"
    case "$client" in
      librdkafka)
        version="librdkafka $("$WORK/rdkafka_produce" "$BOOT" "$topic" "$codec" "$WORK/records.spec")" ;;
      kafka-python)
        "$PY" "$HERE/batches.py" produce "$BOOT" "$topic" "$codec"
        version="kafka-python $("$PY" -c 'import kafka; print(kafka.__version__)')" ;;
      java)
        "$KREF" run-class "$HERE/BatchProducer.java" "$BOOT" "$topic" "$codec" "$WORK/records.spec"
        version="kafka-clients 4.4.0" ;;
      *) echo "make: unknown client $client" >&2; exit 2 ;;
    esac
    seg="$WORK/broker/data/$topic-0/00000000000000000000.log"
    [ -s "$seg" ] || { echo "make: no segment file $seg" >&2; exit 1; }
    cp "$seg" "$HERE/$topic.log.tmp"
    "$PY" "$HERE/batches.py" check "$BOOT" "$topic" "$HERE/$topic.log.tmp" "$HERE/$topic.json" \
      "$client" "$codec" "$version"
    mv "$HERE/$topic.log.tmp" "$HERE/$topic.log"
  done
done
