#!/usr/bin/env bash
# ctest broker_concurrent_admin (and tsan_check.sh): concurrent_admin_test.py
# run by the integration venv's Python, which has confluent-kafka (PyPI, with
# its bundled librdkafka; tests/integration/install.sh confluent-pypi, cached).
# Exit 77 (ctest: skipped) when that install fails, a failure when CI=true.
# Usage: concurrent_admin.sh FJORD_BINARY [concurrent_admin_test.py options]
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../integration/lib/common.sh"
log="$(mktemp /tmp/fjord-concurrent-admin-install.XXXXXX)"
if ! "$IT_DIR/install.sh" confluent-pypi >"$log" 2>&1; then
  cat "$log"
  rm -f "$log"
  echo "concurrent_admin: confluent-kafka could not be installed"
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
rm -f "$log"
bin="$1"
shift
exec "$IT_VENV/bin/python" "$here/concurrent_admin_test.py" --fjord "$bin" "$@"
