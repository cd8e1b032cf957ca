#!/usr/bin/env bash
# Kafka 4.4's own command-line tools against the broker under test
# (FJORD_IT_BOOTSTRAP), each output checked: kafka-topics (create, describe,
# alter partitions, delete), kafka-configs (describe and alter a topic and the
# broker), kafka-get-offsets, kafka-delete-records, kafka-producer-perf-test;
# then the broker's DescribeConfigs (topic and broker) against Kafka 4.4's
# recorded answer (src/kafka/kafka-4.4-configs.tsv): the same names, types and
# defaults (Fjord's extras are `fjord.`-prefixed; the few deliberate
# differences are listed below).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
B="$FJORD_IT_BOOTSTRAP"
KREF="$REPO/tests/kafka_ref/kafka-ref"
T="it.tools.${FJORD_IT_RUN_ID:-$$}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fjord-it-tools.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
FAILED=0
PASSED=0

run() {  # CLASS ARGS... -> stdout (stderr kept in $WORK/err)
  "$KREF" run-class "$@" 2>"$WORK/err"
}
check() {  # NAME CONDITION-COMMAND...
  local name="$1"; shift
  if "$@"; then
    echo "PASS $name"; PASSED=$((PASSED + 1))
  else
    echo "FAIL $name"; FAILED=$((FAILED + 1))
    sed 's/^/    out: /' "$WORK/out" | head -20
    sed 's/^/    err: /' "$WORK/err" | grep -v "^    err: SLF4J" | head -10
  fi
}
has() { grep -Eq -- "$1" "$WORK/out"; }
lacks() { ! grep -Eq -- "$1" "$WORK/out"; }

TOPICS=org.apache.kafka.tools.TopicCommand
CONFIGS=org.apache.kafka.tools.ConfigCommand

# kafka-topics: create, describe, alter partitions, delete.
run $TOPICS --bootstrap-server "$B" --create --topic "$T" --partitions 2 --replication-factor 1 \
  --config retention.ms=3600000 --config cleanup.policy=delete >"$WORK/out"
check "kafka-topics --create" has "^Created topic $T\.$"
run $TOPICS --bootstrap-server "$B" --create --topic "$T" --partitions 2 >"$WORK/out"
check "kafka-topics --create of an existing topic fails" grep -q "TopicExistsException: Topic '$T' already exists" "$WORK/err"
run $TOPICS --bootstrap-server "$B" --create --topic "$T.rf3" --partitions 1 --replication-factor 3 >"$WORK/out"
check "kafka-topics --create with replication factor 3 fails" grep -q "InvalidReplicationFactorException" "$WORK/err"
run $TOPICS --bootstrap-server "$B" --describe --topic "$T" >"$WORK/out"
check "kafka-topics --describe" bash -c "grep -Eq 'Topic: $T\s+TopicId: \S+\s+PartitionCount: 2\s+ReplicationFactor: 1\s+Configs: .*retention.ms=3600000' '$WORK/out' && [ \$(grep -c 'Partition: [01]\s*Leader: [0-9]' '$WORK/out') = 2 ]"
run $TOPICS --bootstrap-server "$B" --alter --topic "$T" --partitions 4 >"$WORK/out"
run $TOPICS --bootstrap-server "$B" --describe --topic "$T" >"$WORK/out"
check "kafka-topics --alter --partitions 4" has "PartitionCount: 4"
run $TOPICS --bootstrap-server "$B" --list >"$WORK/out"
check "kafka-topics --list" has "^$T$"

# kafka-configs: topic and broker.
run $CONFIGS --bootstrap-server "$B" --alter --entity-type topics --entity-name "$T" \
  --add-config max.message.bytes=2048,cleanup.policy=[compact,delete] >"$WORK/out"
check "kafka-configs --alter topic" has "Completed updating config for topic $T"
run $CONFIGS --bootstrap-server "$B" --describe --entity-type topics --entity-name "$T" >"$WORK/out"
check "kafka-configs --describe topic" bash -c "grep -q 'max.message.bytes=2048 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=2048' '$WORK/out' && grep -q 'retention.ms=3600000' '$WORK/out' && grep -q 'cleanup.policy=compact,delete' '$WORK/out'"
run $CONFIGS --bootstrap-server "$B" --alter --entity-type topics --entity-name "$T" --delete-config max.message.bytes,cleanup.policy >"$WORK/out"
run $CONFIGS --bootstrap-server "$B" --describe --entity-type topics --entity-name "$T" --all >"$WORK/out"
check "kafka-configs --delete-config, --describe --all" bash -c "grep -q 'max.message.bytes=1048588 sensitive=false synonyms={DEFAULT_CONFIG:message.max.bytes=1048588}' '$WORK/out' && grep -q 'segment.bytes=1073741824' '$WORK/out'"
run $CONFIGS --bootstrap-server "$B" --alter --entity-type topics --entity-name "$T" --add-config no.such.config=1 >"$WORK/out"
check "kafka-configs --alter with an unknown topic config fails" grep -q "InvalidConfigurationException: Unknown topic config name: no.such.config" "$WORK/err"
run $CONFIGS --bootstrap-server "$B" --alter --entity-type brokers --entity-default --add-config log.retention.ms=7200000 >"$WORK/out"
check "kafka-configs --alter broker default" has "Completed updating default config for brokers in the cluster"
run $CONFIGS --bootstrap-server "$B" --describe --entity-type brokers --entity-name 1 --all >"$WORK/out"
check "kafka-configs --describe broker --all" bash -c "grep -q 'log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=7200000' '$WORK/out' && grep -q 'num.partitions=' '$WORK/out' && grep -q 'ssl.key.password=null sensitive=true' '$WORK/out'"
run $CONFIGS --bootstrap-server "$B" --describe --entity-type topics --entity-name "$T" --all >"$WORK/out"
check "a dynamic broker default reaches the topics" has "segment.ms=604800000"
run $CONFIGS --bootstrap-server "$B" --alter --entity-type brokers --entity-name 1 --add-config num.partitions=5 >"$WORK/out"
check "kafka-configs --alter of a read-only broker config fails" grep -q "Cannot update these configs dynamically" "$WORK/err"
run $CONFIGS --bootstrap-server "$B" --alter --entity-type brokers --entity-default --delete-config log.retention.ms >"$WORK/out"

# Records for the offset tools: 1000 records by the producer perf test (idempotent, acks=all).
run org.apache.kafka.tools.ProducerPerformance --topic "$T" --num-records 1000 --record-size 100 --throughput -1 \
  --producer-props bootstrap.servers="$B" acks=all enable.idempotence=true >"$WORK/out"
check "kafka-producer-perf-test" has "^1000 records sent, .* records/sec"
run org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$B" --topic "$T" >"$WORK/out"
check "kafka-get-offsets (latest)" bash -c "[ \$(grep -c '^$T:[0-3]:[0-9]*$' '$WORK/out') = 4 ] && [ \$(awk -F: '{s+=\$3} END {print s}' '$WORK/out') = 1000 ]"
P0_END="$(grep "^$T:0:" "$WORK/out" | cut -d: -f3)"
cat >"$WORK/delete.json" <<JSON
{"version":1,"partitions":[{"topic":"$T","partition":0,"offset":$((P0_END / 2))}]}
JSON
run org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$B" --offset-json-file "$WORK/delete.json" >"$WORK/out"
check "kafka-delete-records" has "partition: $T-0[[:space:]]+low_watermark: $((P0_END / 2))"
run org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$B" --topic "$T" --partitions 0 --time -2 >"$WORK/out"
check "kafka-get-offsets --time -2 after delete-records" has "^$T:0:$((P0_END / 2))$"

# DescribeConfigs: the same names, types and defaults as Kafka 4.4's recorded answer.
run $TOPICS --bootstrap-server "$B" --create --topic "$T.plain" >"$WORK/out"
run "$REPO/tools/configs/RecordConfigs.java" "$B" "$T.plain" 1 >"$WORK/live.tsv"
grep -v '^#' "$REPO/src/kafka/kafka-4.4-configs.tsv" >"$WORK/ref.tsv"
# Deliberate differences (docs/compatibility.md): Fjord's defaults for the
# node id and the data directory, which Kafka requires to be set.
DIFFER='^broker	(node\.id|broker\.id|log\.dirs)	'
grep -v '	fjord\.' "$WORK/live.tsv" | grep -Ev "$DIFFER" | sort >"$WORK/live.cmp"
grep -Ev "$DIFFER" "$WORK/ref.tsv" | sort >"$WORK/ref.cmp"
diff "$WORK/ref.cmp" "$WORK/live.cmp" >"$WORK/out" 2>&1
check "DescribeConfigs names, types, defaults, flags equal Kafka 4.4's ($(wc -l <"$WORK/ref.cmp") configs)" test ! -s "$WORK/out"

# kafka-topics --delete, then the topic is gone.
run $TOPICS --bootstrap-server "$B" --delete --topic "$T" >"$WORK/out"
run $TOPICS --bootstrap-server "$B" --list >"$WORK/out"
check "kafka-topics --delete" lacks "^$T$"
run $TOPICS --bootstrap-server "$B" --create --topic "$T" --partitions 1 >"$WORK/out"
run org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$B" --topic "$T" >"$WORK/out"
check "a topic created again after deletion starts empty" has "^$T:0:0$"

echo "kafka-tools: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
