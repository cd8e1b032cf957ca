#!/usr/bin/env bash
# `make test`: every stage in order, each timed, with a summary at the end.
# With CI=true, a stage that cannot run (missing ../shared, say) fails
# instead of being skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
shared="${FJORD_KAFKA_PROTOCOL:-$root/../shared/kafka-protocol}"
ci="${CI:-false}"
names=()
times=()
results=()
failed=0

stage() {
  local name="$1"
  shift
  echo
  echo "=== stage: $name"
  local start=$SECONDS
  if "$@"; then
    results+=("ok")
  else
    results+=("FAILED")
    failed=1
  fi
  names+=("$name")
  times+=($((SECONDS - start)))
  echo "=== stage: $name: ${results[-1]} in $((SECONDS - start)) s"
  if [ "$failed" -ne 0 ]; then summary; exit 1; fi
}

summary() {
  echo
  echo "=== make test: stage durations"
  local total=0
  for i in "${!names[@]}"; do
    printf '  %-28s %6s s  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
    total=$((total + times[i]))
  done
  printf '  %-28s %6s s\n' "total" "$total"
}

# Both trees: Kafka's (from ../shared) and Fjord's RPC (specs in the repo,
# so that one always runs).
codegen_check() {
  python3 tools/codegen/gen.py --rpc --check || return 1
  if [ ! -d "$shared/messages" ]; then
    echo "codegen: $shared not found"
    [ "$ci" = true ] && return 1
    echo "codegen: Kafka tree check skipped (not in CI)"
    return 0
  fi
  python3 tools/codegen/gen.py --spec "$shared" --check
}

unit_tests() {
  ctest --test-dir build/release --output-on-failure -j 2
}

sanitize_tests() {
  tools/build.sh sanitize && ctest --test-dir build/sanitize --output-on-failure -j 2
}

tsan_check() {
  tools/build.sh tsan fjord && tests/broker/tsan_check.sh
}

fuzz_smoke() {
  tools/build.sh fuzz && tools/fuzz.sh "${FUZZ_SMOKE_SECONDS:-20}"
}

# Consumer groups: error codes and Kafka's tools against the reference,
# then librdkafka groups with the PyPI build (and kafka-python), and with
# Debian's.
consumer_groups() {
  tests/integration/install.sh confluent-pypi confluent-debian >/dev/null || return 1
  local venv="${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}/it-venv"
  "$venv/bin/python" tests/groups/check.py &&
    /usr/bin/python3 -s tests/groups/check.py --parts clients --librdkafka-only
}

# A 3-node cluster of real processes: formation, forwarding, data through
# every node, kill -9 of the active controller, a node from another cluster.
cluster_tests() {
  tests/integration/install.sh confluent-pypi >/dev/null || return 1
  local venv="${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}/it-venv"
  "$venv/bin/python" tests/cluster/cluster_test.py || return 1
  # The fault suite's short version (one pause, one leader kill, the
  # negative control); `make faults KILLS=200` is the long mode.
  "$venv/bin/python" tests/cluster/faults_test.py --kills 1 || return 1
  # DeleteRecords and retention on a replicated partition; a follower
  # behind the leader's log start catches up from a snapshot.
  "$venv/bin/python" tests/cluster/log_start_test.py || return 1
  # ElectLeaders through Kafka's kafka-leader-election and the AdminClient.
  "$venv/bin/python" tests/cluster/election_test.py || return 1
  # KIP-951 in Fetch v16+: the current leader and its endpoint (Kafka's
  # message classes read the answers: tests/kafka_ref/Probe.java).
  "$venv/bin/python" tests/cluster/kip951_fetch_test.py || return 1
  # Producer state, a KIP-848 group and producer ids across kill -9 of the
  # controller (Kafka's error codes from ../shared's errors.tsv).
  FJORD_KAFKA_PROTOCOL="$shared" "$venv/bin/python" tests/cluster/failover_state_test.py || return 1
  # Network faults, every node in a network namespace (root; skipped
  # elsewhere, a failure with CI=true): a partition of the active
  # controller, delay and loss, a rolling restart, a 5-node cluster, the
  # negative control; `make netns-faults` is the long mode.
  "$venv/bin/python" tests/cluster/netns_test.py
}

differential() {
  if [ ! -d "$shared/messages" ]; then
    echo "differential: $shared not found"
    [ "$ci" = true ] && return 1
    return 0
  fi
  FJORD_KAFKA_PROTOCOL="$shared" tests/differential/check.sh
}

stage "install dependencies" tools/install-deps.sh
stage "format check" tools/format.sh check
stage "codegen reproducible" codegen_check
stage "build release" tools/build.sh release
stage "unit and golden tests" unit_tests
stage "differential vs Kafka" differential
stage "reference broker" tests/kafka_ref/selftest.sh
stage "bad input vs Kafka" python3 tests/bad_input/check.py
stage "real clients" tests/integration/run.sh kcat confluent-debian confluent-pypi kafka-python java franz-go kafkajs kafka-tools
stage "consumer groups" consumer_groups
stage "cluster" cluster_tests
stage "thread sanitizer (cross-shard)" tsan_check
stage "sanitizer build and tests" sanitize_tests
stage "fuzz build and smoke run" fuzz_smoke
summary
