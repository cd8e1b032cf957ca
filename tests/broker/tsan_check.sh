#!/usr/bin/env bash
# The cross-shard code under ThreadSanitizer: the kill -9 crash test
# (produce and fetch on --smp 2, restarts) and the concurrent topic
# administration test (CreateTopics of 100 and of 3, auto-creation,
# DeleteTopics, idempotent producers, consumers; short mode) against a TSan
# build of the broker binary (build/tsan, tools/build.sh tsan fjord). Any race
# report or a failed test (an abort included) fails the check. librdkafka
# cannot run inside a TSan process (its C11 threads bypass TSan's
# interceptors), so the broker runs as its own process.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-build/tsan/src/app/fjord}"
[ -x "$bin" ] || { echo "tsan_check: $bin not built (tools/build.sh tsan fjord)"; exit 1; }
reports="$(mktemp -d /tmp/fjord-tsan-XXXXXX)"
trap 'rm -rf "$reports"' EXIT
for backend in io_uring thread_pool; do
  echo "tsan_check: crash test, io backend $backend"
  FJORD_IO_BACKEND="$backend" TSAN_OPTIONS="halt_on_error=0 log_path=$reports/tsan" \
    python3 tests/broker/crash_test.py --fjord "$bin" --rounds 4
done
# TSan makes the broker several times slower: longer answer and stop timeouts.
echo "tsan_check: concurrent topic administration"
failed=0
TSAN_OPTIONS="halt_on_error=0 log_path=$reports/tsan" \
  tests/broker/concurrent_admin.sh "$bin" --seconds 10 --timeout 60 --stop-timeout 60 || failed=$?
if [ "$failed" -eq 77 ]; then
  echo "tsan_check: concurrent admin test skipped (confluent-kafka not installed)"
  failed=0
fi
if compgen -G "$reports/tsan*" >/dev/null; then
  for f in "$reports"/tsan*; do head -60 "$f"; done
  echo "tsan_check: ThreadSanitizer reported $(cat "$reports"/tsan* | grep -c '^WARNING: ThreadSanitizer') problem(s)"
  exit 1
fi
[ "$failed" -eq 0 ] || { echo "tsan_check: the concurrent admin test failed"; exit 1; }
echo "tsan_check: no race reported"
