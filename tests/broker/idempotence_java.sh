#!/usr/bin/env bash
# ctest broker_idempotence_java: the Java producer with default settings
# (idempotent, acks=all) across two kill -9 restarts of the fjord binary
# (idempotence_test.py --java-only). The kafka-clients jars and the
# IdempotentProducer class come from the integration suite's Java install
# (tests/integration/install.sh java, cached). Exit 77 (ctest: skipped) when
# that install fails, a failure when CI=true.
# Usage: idempotence_java.sh FJORD_BINARY
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../integration/lib/common.sh"
if ! "$IT_DIR/install.sh" java >/tmp/fjord-idempotence-java-install.$$.log 2>&1; then
  cat /tmp/fjord-idempotence-java-install.$$.log
  rm -f /tmp/fjord-idempotence-java-install.$$.log
  echo "idempotence_java: the Java client could not be installed"
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
rm -f /tmp/fjord-idempotence-java-install.$$.log
exec python3 "$here/idempotence_test.py" --fjord "$1" --java-only --java "$IT_JAVA/classes:$IT_JAVA/libs/*"
