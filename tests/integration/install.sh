#!/usr/bin/env bash
# Installs what one or more client suites need; idempotent, cached under
# ${FJORD_CACHE:-~/.cache/fjord}. Usage: install.sh [CLIENT...]   (default: all)
# Clients: kcat confluent-debian confluent-pypi kafka-python java franz-go kafkajs
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

install_kcat() { it_apt kcat python3; }

# Debian's python3-confluent-kafka, run by Debian's /usr/bin/python3, on Debian's librdkafka1.
install_confluent_debian() { it_apt python3 python3-confluent-kafka librdkafka1; }

install_venv() {
  local stamp
  command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || it_apt python3 python3-venv
  stamp="$( (cat "$IT_DIR/requirements.txt"; python3 -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
  if [ -x "$IT_VENV/bin/python" ] && [ "$(cat "$IT_VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  it_log "creating venv $IT_VENV"
  rm -rf "$IT_VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$IT_VENV"
  "$IT_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$IT_DIR/requirements.txt" >&2
  echo "$stamp" >"$IT_VENV/.stamp"
}

install_java() {
  local stamp
  command -v mvn >/dev/null && command -v javac >/dev/null || it_apt openjdk-17-jdk-headless maven
  stamp="$(it_stamp "$IT_DIR/java/pom.xml" "$IT_DIR"/java/src/*.java)"
  if [ "$(cat "$IT_JAVA/.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  it_log "fetching kafka-clients jars and compiling the Java suite into $IT_JAVA"
  rm -rf "$IT_JAVA"
  mkdir -p "$IT_JAVA/classes"
  if ! nice mvn -q -B -Dstyle.color=never -f "$IT_DIR/java/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$IT_JAVA/libs" >"$IT_JAVA/fetch.log" 2>&1; then
    cat "$IT_JAVA/fetch.log" >&2; it_die "maven failed"
  fi
  nice javac -nowarn -d "$IT_JAVA/classes" -cp "$IT_JAVA/libs/*" "$IT_DIR"/java/src/*.java
  echo "$stamp" >"$IT_JAVA/.stamp"
}

install_go() {
  [ -x "$GO" ] || it_die "Go not found at $GO"
  local stamp
  stamp="$(it_stamp "$IT_DIR/go/go.mod" "$IT_DIR/go/go.sum" "$IT_DIR"/go/*.go)"
  if [ "$(cat "$CACHE/go/.it-stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  it_log "downloading Go modules and building the franz-go suite"
  mkdir -p "$CACHE/go"
  (cd "$IT_DIR/go" && "$GO" mod download && nice "$GO" test -p 1 -c -o "$CACHE/go/franz-go-it.test" .)
  echo "$stamp" >"$CACHE/go/.it-stamp"
}

install_js() {
  command -v node >/dev/null && command -v npm >/dev/null || it_die "node and npm are needed"
  local stamp
  stamp="$(it_stamp "$IT_DIR/js/package.json" "$IT_DIR/js/package-lock.json" "$IT_DIR/js/.npmrc")"
  if [ -d "$IT_JS/node_modules" ] && [ "$(cat "$IT_JS/.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  it_log "npm ci into $IT_JS"
  rm -rf "$IT_JS"
  mkdir -p "$IT_JS"
  cp "$IT_DIR/js/package.json" "$IT_DIR/js/package-lock.json" "$IT_DIR/js/.npmrc" "$IT_JS/"
  (cd "$IT_JS" && npm ci --cache "$CACHE/npm" --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  echo "$stamp" >"$IT_JS/.stamp"
}

install_client() {
  case "$1" in
    kcat) install_kcat ;;
    confluent-debian) install_confluent_debian ;;
    confluent-pypi|kafka-python) install_venv ;;
    java) install_java ;;
    franz-go) install_go ;;
    kafkajs) install_js ;;
    kafka-tools) "$REPO/tests/kafka_ref/kafka-ref" fetch ;;  # Kafka 4.4's own tools and jars
    *) it_die "unknown client: $1 (known: $IT_CLIENTS)" ;;
  esac
}

# The launcher needs python3 and, for the reference broker, kafka-ref's own deps.
[ $# -gt 0 ] || set -- $IT_CLIENTS
for c in "$@"; do install_client "$c"; done
