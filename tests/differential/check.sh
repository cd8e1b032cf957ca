#!/usr/bin/env bash
# The differential test, both directions:
#   Kafka writes random instances of every (message, version) it supports;
#   Fjord decodes and re-encodes each byte-identically. Then Fjord writes
#   random instances of the same set; Kafka reads each and re-encodes it
#   byte-identically, and every pair must be present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fjord="$root/build/release/tests/differential/fjord_differential"
seed="${DIFF_SEED:-$(date +%s)}"
count="${DIFF_COUNT:-20}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "differential: seed $seed, $count instances per (message, version)"
"$here/run.sh" versions >"$tmp/versions.txt" 2>"$tmp/versions.err"
"$here/run.sh" generate --seed "$seed" --count "$count" --unknown-tags --out "$tmp/kafka.bin" 2>&1 | grep -v '^skipped' || true
test -s "$tmp/kafka.bin"
echo "differential: Kafka -> Fjord"
"$fjord" check --in "$tmp/kafka.bin"
echo "differential: Fjord -> Kafka"
"$fjord" generate --versions "$tmp/versions.txt" --seed "$seed" --count "$count" --out "$tmp/fjord.bin"
"$here/run.sh" verify --in "$tmp/fjord.bin" --require-all | grep -v -E '^[A-Za-z]+ +pass +[0-9]+ fail +0$'
