#!/usr/bin/env bash
# Runs every libFuzzer target of build/fuzz for N seconds each (default 20),
# from a seed corpus covering every (API key, version), and prints how many
# inputs each executed. Any crash, leak or sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
bin=build/fuzz/src/protocol/fuzz
corpus=build/fuzz/corpus
mkdir -p "$corpus"
rpc=build/fuzz/src/rpc/fuzz
for target in request_fuzz message_fuzz record_batch_fuzz metadata_record_fuzz group_record_fuzz \
              rpc_frame_fuzz raft_codec_fuzz; do
  exe="$bin/$target"
  [ "$target" = metadata_record_fuzz ] && exe=build/fuzz/src/cluster/$target
  [ "$target" = group_record_fuzz ] && exe=build/fuzz/src/groups/$target
  case "$target" in rpc_frame_fuzz | raft_codec_fuzz) exe=$rpc/$target ;; esac
  [ -x "$exe" ] || { echo "fuzz: $target was not built"; exit 1; }
  dir="$corpus/$target"
  mkdir -p "$dir"
  case "$target" in
    request_fuzz) [ -n "$(ls -A "$dir")" ] || "$bin/fuzz_seeds" request "$dir" ;;
    message_fuzz) [ -n "$(ls -A "$dir")" ] || "$bin/fuzz_seeds" message "$dir" ;;
    record_batch_fuzz) cp -n tests/data/batches/*.log "$dir"/ ;;
    rpc_frame_fuzz) [ -n "$(ls -A "$dir")" ] || "$rpc/rpc_fuzz_seeds" frame "$dir" ;;
    raft_codec_fuzz) [ -n "$(ls -A "$dir")" ] || "$rpc/rpc_fuzz_seeds" raft "$dir" ;;
  esac
  log="build/fuzz/$target.log"
  if ! "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 "$dir" >"$log" 2>&1; then
    tail -50 "$log"
    echo "fuzz: $target FAILED (log: $log)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  echo "fuzz: $target: $runs inputs executed in ${seconds} s, coverage $cov, corpus $(ls "$dir" | wc -l) files, no crash"
done
