#!/usr/bin/env bash
# Records Apache Kafka 4.4's topic and broker configs (names, types, defaults,
# read-only, sensitive, default synonyms) from the reference broker into
# src/kafka/kafka-4.4-configs.tsv, then regenerates src/kafka/config_catalog.inc.
#
#   tools/configs/record.sh
#
# The broker is started with the test defaults of tests/kafka_ref; the values
# that broker sets in its server.properties (node.id, listeners, log.dirs,
# num.partitions...) are recorded with their Kafka defaults, taken from the
# DEFAULT_CONFIG synonym.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/fjord-record-configs.XXXXXX")"
trap '"$REPO/tests/kafka_ref/kafka-ref" stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
B="$("$REPO/tests/kafka_ref/kafka-ref" start "$DIR")"
"$REPO/tests/kafka_ref/kafka-ref" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" \
  --create --topic record-configs >/dev/null
OUT="$REPO/src/kafka/kafka-4.4-configs.tsv"
{
  echo "# Apache Kafka 4.4 DescribeConfigs (tools/configs/record.sh): scope name type default(\\N: none) read_only sensitive default_synonym"
  "$REPO/tests/kafka_ref/kafka-ref" run-class "$HERE/RecordConfigs.java" "$B" record-configs 1
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
python3 "$HERE/gen.py"
echo "recorded $(grep -vc '^#' "$OUT") configs into $OUT"
