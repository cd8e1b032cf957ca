#!/usr/bin/env bash
# Kafka side of Fjord's differential codec test. Builds the checker once, then runs it.
#   run.sh versions [--spec DIR]
#   run.sh generate [--spec DIR] --seed N --count K --out FILE [--only A,B] [--unknown-tags]
#   run.sh verify --in FILE [--require-all] [--max-failures N]
#   run.sh roundtrip --in FILE
#   run.sh selftest [--seed N --count K]   (checks that the checker detects corruption)
#   run.sh dump --in FILE [--only A,B] [--limit N]   (Kafka's view of each record)
#   run.sh build            (only build)
# The spec folder defaults to $FJORD_KAFKA_PROTOCOL, else <repo>/../shared/kafka-protocol.
# The build goes to ${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}/differential and is redone only when
# the hash of pom.xml and src/ differs from the one recorded at the last build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}/differential"
jar="$cache/target/fjord-differential.jar"

stamp="$cache/source.sha256"

source_hash() {
    (cd "$here" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

needs_build() {
    [[ -f "$jar" && -d "$cache/target/lib" && -f "$stamp" ]] || return 0
    [[ "$(cat "$stamp")" == "$(source_hash)" ]] && return 1
    return 0
}

build() {
    mkdir -p "$cache"
    # Build in the cache so the work tree gets no target/ folder.
    rm -rf "$cache/src" "$cache/pom.xml" "$stamp" "$cache/target"
    cp -r "$here/src" "$here/pom.xml" "$cache/"
    echo "differential: building the Kafka-side checker (Maven)..." >&2
    if ! (cd "$cache" && nice mvn -q -B -DskipTests package >"$cache/build.log" 2>&1); then
        cat "$cache/build.log" >&2
        echo "differential: build failed" >&2
        exit 2
    fi
    source_hash >"$stamp"
}

mkdir -p "$cache"
if needs_build; then
    # One build at a time per cache folder.
    exec 9>"$cache/.lock"
    flock 9
    if needs_build; then build; fi
    flock -u 9
fi

cmd="${1:-}"
[[ -n "$cmd" ]] || { echo "usage: run.sh versions|generate|verify|roundtrip|selftest|dump|build [options]" >&2; exit 2; }
shift
[[ "$cmd" == build ]] && exit 0

if [[ -z "${FJORD_KAFKA_PROTOCOL:-}" ]]; then
    export FJORD_KAFKA_PROTOCOL="$repo/../shared/kafka-protocol"
fi
exec nice java -Xss8m -jar "$jar" "$cmd" "$@"
