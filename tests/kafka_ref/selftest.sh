#!/usr/bin/env bash
# Self-test of kafka-ref: start the reference broker in a temp dir, create a
# topic, produce 3 messages and consume them back with kcat, stop the broker.
# Exits non-zero on any failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KREF="$HERE/kafka-ref"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/kafka-ref-selftest.XXXXXX")"
cleanup() { "$KREF" stop "$DIR" || true; rm -rf "$DIR"; }
trap cleanup EXIT

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }

BOOTSTRAP="$("$KREF" start "$DIR")"
[[ "$BOOTSTRAP" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bad bootstrap '$BOOTSTRAP'"
[ "$(cat "$DIR/bootstrap")" = "$BOOTSTRAP" ] || fail "DIR/bootstrap mismatch"
echo "selftest: broker at $BOOTSTRAP"

"$KREF" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
  --create --topic selftest --partitions 1 --replication-factor 1 >/dev/null \
  || fail "topic creation"
"$KREF" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
  --describe --topic selftest | grep -q 'PartitionCount: 1' || fail "topic describe"

printf 'k1:one\nk2:two\nk3:three\n' | kcat -b "$BOOTSTRAP" -P -t selftest -K: -c 3 \
  || fail "produce"
got="$(kcat -b "$BOOTSTRAP" -C -t selftest -o beginning -c 3 -e -q -f '%k=%s@%o\n')" \
  || fail "consume"
want=$'k1=one@0\nk2=two@1\nk3=three@2'
[ "$got" = "$want" ] || fail "consumed '$got', expected '$want'"

# Fjord advertises what Kafka 4.4 advertises: the recorded table must equal
# this broker's ApiVersions answer.
python3 "$HERE/../../tools/codegen/record_api_versions.py" "$BOOTSTRAP" >"$DIR/api-versions.tsv" \
  || fail "ApiVersions request"
diff -u "$HERE/../../tools/codegen/kafka-4.4-api-versions.tsv" "$DIR/api-versions.tsv" \
  || fail "tools/codegen/kafka-4.4-api-versions.tsv differs from the broker's ApiVersions answer"

"$KREF" stop "$DIR"
[ ! -f "$DIR/kafka.pid" ] || fail "pid file left after stop"
kcat -b "$BOOTSTRAP" -L -m 2 >/dev/null 2>&1 && fail "broker still answers after stop"
echo "2 passed, 0 failed"
