#!/usr/bin/env bash
# Runs the integration suite: real Kafka clients against a broker started by broker.sh.
#
#   tests/integration/run.sh [CLIENT...]      default: every client
#   clients: kcat confluent-debian confluent-pypi kafka-python java franz-go kafkajs kafka-tools
#
# Environment:
#   FJORD_IT_BROKER=fjord|kafka   broker under test (default fjord; kafka = Apache Kafka 4.4 reference)
#   FJORD_BIN                     Fjord binary (default build/release/src/app/fjord)
#   FJORD_IT_TOPICS=auto|admin    topic creation: auto-creation (default) or the clients' admin APIs
#   FJORD_IT_ONLY=TEXT            run only the tests whose name contains TEXT (e.g. a codec: zstd)
#   FJORD_IT_TIMEOUT              seconds allowed per client suite (default 600)
#   CI=true                       a client that cannot be installed (skipped) is a failure
# Installs what is missing (install.sh), starts one broker per client suite on free
# loopback ports, runs the suite, stops the broker; prints one line per client with
# its duration and exits non-zero if any client failed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

KIND="${FJORD_IT_BROKER:-fjord}"
export FJORD_IT_BROKER="$KIND"
FJORD_BIN="${FJORD_BIN:-$REPO/build/release/src/app/fjord}"
export FJORD_BIN
TIMEOUT="${FJORD_IT_TIMEOUT:-600}"
[ $# -gt 0 ] || set -- $IT_CLIENTS
for c in "$@"; do
  case " $IT_CLIENTS " in *" $c "*) ;; *) it_die "unknown client: $c (known: $IT_CLIENTS)" ;; esac
done
case "$KIND" in
  fjord) [ -x "$FJORD_BIN" ] || it_die "Fjord binary not found: $FJORD_BIN (build it with tools/build.sh release, set FJORD_BIN, or run against the reference with FJORD_IT_BROKER=kafka)" ;;
  kafka) "$REPO/tests/kafka_ref/kafka-ref" fetch || it_die "cannot fetch the reference Kafka" ;;
  *) it_die "FJORD_IT_BROKER must be fjord or kafka" ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fjord-it.XXXXXX")"
export FJORD_IT_RUN_ID="$(date +%s)"

client_cmd() {  # CLIENT -> the command that runs its suite (cwd: tests/integration)
  case "$1" in
    kcat) echo python3 python/test_kcat.py ;;
    confluent-debian) echo /usr/bin/python3 -s python/test_confluent.py confluent-debian ;;
    confluent-pypi) echo "$IT_VENV/bin/python" python/test_confluent.py confluent-pypi ;;
    kafka-python) echo "$IT_VENV/bin/python" python/test_kafka_python.py ;;
    java) echo java -Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.out \
      -cp "$IT_JAVA/classes:$IT_JAVA/libs/*" ItJava records.txt ;;
    franz-go) echo "$IT_DIR/lib/in-dir.sh" go "$CACHE/go/franz-go-it.test" -test.v -test.count=1 ;;
    kafkajs) echo env "NODE_PATH=$IT_JS/node_modules" node js/it.js ;;
    kafka-tools) echo tools/test_kafka_tools.sh ;;
  esac
}

declare -A STATUS DURATION NOTE
run_client() {
  local c="$1" dir="$WORK/$c" t0=$SECONDS rc
  mkdir -p "$dir"
  echo "=== $c (broker: $KIND)"
  if ! "$IT_DIR/install.sh" "$c" >"$dir/install.log" 2>&1; then
    cat "$dir/install.log"
    STATUS[$c]=SKIP; NOTE[$c]="install failed (log: $dir/install.log)"
    return
  fi
  if ! "$IT_DIR/broker.sh" start "$dir/broker" >"$dir/broker-start.log" 2>&1; then
    cat "$dir/broker-start.log"
    STATUS[$c]=FAIL; NOTE[$c]="broker did not start (see $dir/broker)"
    return
  fi
  local tstart=$SECONDS
  (
    set -a; source "$dir/broker/it.env"; set +a
    cd "$IT_DIR" && timeout -k 10 "$TIMEOUT" $(client_cmd "$c")
  ) 2>&1 | tee "$dir/client.log"
  rc=${PIPESTATUS[0]}
  DURATION[$c]=$((SECONDS - tstart))
  if [ "$rc" -eq 0 ]; then STATUS[$c]=PASS; NOTE[$c]=""
  else STATUS[$c]=FAIL; NOTE[$c]="exit status $rc$([ "$rc" -eq 124 ] && echo ", timed out after ${TIMEOUT}s")"; fi
  if ! "$IT_DIR/broker.sh" stop "$dir/broker" >"$dir/broker-stop.log" 2>&1; then
    cat "$dir/broker-stop.log"
    STATUS[$c]=FAIL; NOTE[$c]="${NOTE[$c]:+${NOTE[$c]}; }broker did not stop cleanly on SIGTERM"
  fi
  NOTE[$c]="${NOTE[$c]}${NOTE[$c]:+; }total with install and broker $((SECONDS - t0))s"
  [ "${STATUS[$c]}" = PASS ] && rm -rf "$dir/broker/data"  # keep the logs, drop the log segments
}

for c in "$@"; do run_client "$c"; done

passed=0; failed=0; skipped=0
echo
echo "=== integration summary (broker: $KIND, logs: $WORK)"
for c in "$@"; do
  s="${STATUS[$c]}"
  case "$s" in
    PASS) passed=$((passed + 1)) ;;
    SKIP) if [ "${CI:-}" = true ]; then s=FAIL; failed=$((failed + 1)); else skipped=$((skipped + 1)); fi ;;
    *) failed=$((failed + 1)) ;;
  esac
  printf '%-4s %-17s %5ss  %s\n' "$s" "$c" "${DURATION[$c]:--}" "${NOTE[$c]}"
done
echo "integration: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
