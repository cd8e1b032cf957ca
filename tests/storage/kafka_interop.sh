#!/usr/bin/env bash
# Storage interop with Apache Kafka 4.4, both directions:
#  (a) Fjord writes a log (several segments, compressed and plain batches, two
#      leader epochs); Kafka's DumpLogSegments --deep-iteration
#      --index-sanity-check reads every .log/.index/.timeindex without error,
#      with the right record count, and a full index dump reports no mismatch.
#  (b) the reference broker writes a partition (kcat, three codecs, several
#      produce runs); after it stops, Fjord opens a copy of <topic>-0 and
#      serves every record, in order.
#  (d) idempotent producers (kcat, enable.idempotence=true; three runs, three
#      producer ids, different counts) write to the reference broker; after
#      its clean stop, Fjord decodes the .snapshot file Kafka wrote and opens
#      the partition from it (storage_tool producers), and reports the same
#      producer id, epoch, last sequence and last offset per producer as
#      Kafka's DumpLogSegments of that snapshot.
# Usage: kafka_interop.sh STORAGE_TOOL. Needs Java: with CI=true a missing
# Java fails the test; otherwise it is skipped.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KREF="$HERE/../kafka_ref/kafka-ref"
TOOL="${1:?usage: kafka_interop.sh STORAGE_TOOL}"
fail() { echo "kafka_interop: FAIL: $*" >&2; exit 1; }

if ! command -v java >/dev/null 2>&1 || ! command -v kcat >/dev/null 2>&1; then
  if [ "${CI:-false}" = true ]; then fail "java or kcat missing (CI=true)"; fi
  echo "kafka_interop: java or kcat missing: skipped (set CI=true to fail instead)"
  exit 0
fi
"$KREF" fetch

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fjord-storage-interop.XXXXXX")"
cleanup() { "$KREF" stop "$WORK/kref" >/dev/null 2>&1 || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# --- (a) Fjord -> Kafka -------------------------------------------------------
RECORDS=5000
"$TOOL" write "$WORK/fjord" interop 0 "$RECORDS" 37 300 262144 >"$WORK/write.txt"
part="$WORK/fjord/interop-0"
files=""
for f in "$part"/*.log; do
  b="${f%.log}"
  files="$files${files:+,}$f,$b.index,$b.timeindex"
done
[ "$(ls "$part"/*.log | wc -l)" -ge 3 ] || fail "expected several segments, got: $(ls "$part")"
"$KREF" run-class org.apache.kafka.tools.DumpLogSegments --deep-iteration --index-sanity-check \
  --files "$files" >"$WORK/dump.txt" 2>"$WORK/dump.err" || { cat "$WORK/dump.err"; fail "DumpLogSegments exited non-zero"; }
got="$(grep -c '^| offset: ' "$WORK/dump.txt" || true)"
[ "$got" = "$RECORDS" ] || fail "DumpLogSegments saw $got records, expected $RECORDS"
sane="$(grep -c 'passed sanity check' "$WORK/dump.txt" || true)"
want_sane=$(( 2 * $(ls "$part"/*.log | wc -l) ))
[ "$sane" = "$want_sane" ] || { grep -i 'index\|error\|exception' "$WORK/dump.txt" | head; fail "$sane of $want_sane index files passed the sanity check"; }
grep -q 'isvalid: false' "$WORK/dump.txt" && fail "a batch is invalid to Kafka"
if grep -qi 'exception\|error' "$WORK/dump.err"; then cat "$WORK/dump.err"; fail "DumpLogSegments reported errors"; fi
# Full index dumps: Kafka checks each entry against the log.
idx=""
for f in "$part"/*.log; do b="${f%.log}"; idx="$idx${idx:+,}$b.index,$b.timeindex"; done
"$KREF" run-class org.apache.kafka.tools.DumpLogSegments --files "$idx" >"$WORK/idx.txt" 2>&1 \
  || { cat "$WORK/idx.txt"; fail "index dump failed"; }
if grep -qi 'mismatch\|not found\|out of order\|exception' "$WORK/idx.txt"; then
  grep -i 'mismatch\|not found\|out of order\|exception' -A3 "$WORK/idx.txt" | head -20
  fail "Kafka found index entries that do not match the log"
fi
echo "kafka_interop: (a) Kafka read $got records and $sane index files written by Fjord"

# --- (c) a compacted Fjord log -> Kafka ----------------------------------------
# Keyed records with tombstones from idempotent producers, cleaned by Fjord
# (batches with offset gaps, emptied producer batches, recompressed batches):
# DumpLogSegments must read every segment, index and producer snapshot.
out="$("$TOOL" write-compacted "$WORK/fjordc" compacted 0 3000 20 200 16384)"
kept="$(echo "$out" | sed -n 's/.* kept \([0-9]*\) .*/\1/p')"
[ -n "$kept" ] && [ "$kept" -lt 3000 ] || fail "compaction kept '$kept' of 3000 records ($out)"
part="$WORK/fjordc/compacted-0"
files=""
for f in "$part"/*.log "$part"/*.index "$part"/*.timeindex "$part"/*.snapshot; do
  [ -e "$f" ] && files="$files${files:+,}$f"
done
"$KREF" run-class org.apache.kafka.tools.DumpLogSegments --deep-iteration --index-sanity-check \
  --files "$files" >"$WORK/dumpc.txt" 2>"$WORK/dumpc.err" || { cat "$WORK/dumpc.err"; fail "DumpLogSegments (compacted) exited non-zero"; }
got="$(grep -c '^| offset: ' "$WORK/dumpc.txt" || true)"
[ "$got" = "$kept" ] || fail "DumpLogSegments saw $got records in the compacted log, Fjord kept $kept"
grep -q 'isvalid: false' "$WORK/dumpc.txt" && fail "a compacted batch is invalid to Kafka"
grep -q 'producerId: 1000 ' "$WORK/dumpc.txt" || fail "Kafka did not read the producer snapshot"
if grep -qi 'exception\|error\|mismatch\|corrupt' "$WORK/dumpc.err" "$WORK/dumpc.txt"; then
  grep -i 'exception\|error\|mismatch\|corrupt' "$WORK/dumpc.err" "$WORK/dumpc.txt" | head; fail "DumpLogSegments reported errors on the compacted log"
fi
echo "kafka_interop: (c) Kafka read the $kept records Fjord's compaction kept, and its producer snapshots"

# --- (b) Kafka -> Fjord -------------------------------------------------------
B="$("$KREF" start "$WORK/kref")"
: >"$WORK/sent.txt"
n=0
for codec in none gzip lz4 zstd snappy; do
  for run in 1 2; do
    seq -f "$codec-$run-%g-$(head -c 40 /dev/zero | tr '\0' x)" 1 300 >"$WORK/batch.txt"
    kcat -b "$B" -P -t interop -p 0 -z "$codec" -X linger.ms=5 -X batch.num.messages=64 <"$WORK/batch.txt" \
      || fail "kcat produce ($codec)"
    cat "$WORK/batch.txt" >>"$WORK/sent.txt"
    n=$((n + 300))
  done
done
# (d) idempotent producers, each run a new producer id.
for count in 500 321 777; do
  seq -f "idem-$count-%g" 1 "$count" | kcat -b "$B" -P -t idem -p 0 -X enable.idempotence=true \
    -X linger.ms=5 -X batch.num.messages=50 2>>"$WORK/idem.err" || { cat "$WORK/idem.err"; fail "kcat idempotent produce"; }
done
got="$(kcat -b "$B" -C -t interop -p 0 -o beginning -e -q | wc -l)"
[ "$got" = "$n" ] || fail "the reference broker holds $got records, expected $n"
# A copy taken while the broker runs looks like a crash (preallocated indexes).
mkdir -p "$WORK/live"
cp -r "$WORK/kref/data/interop-0" "$WORK/live/"
"$KREF" stop "$WORK/kref" >/dev/null
"$TOOL" dump "$WORK/live/interop-0" --values >"$WORK/live.txt" 2>"$WORK/live.err" \
  || { cat "$WORK/live.err"; fail "Fjord could not open a live copy of Kafka's log"; }
head -n -1 "$WORK/live.txt" | cmp -s - "$WORK/sent.txt" || fail "records served from the live copy differ"
mkdir -p "$WORK/copy"
cp -r "$WORK/kref/data/interop-0" "$WORK/copy/"
"$TOOL" dump "$WORK/copy/interop-0" --values >"$WORK/served.txt" 2>"$WORK/served.err" \
  || { cat "$WORK/served.err"; fail "Fjord could not open Kafka's log"; }
summary="$(tail -n 1 "$WORK/served.txt")"
head -n -1 "$WORK/served.txt" >"$WORK/values.txt"
cmp -s "$WORK/values.txt" "$WORK/sent.txt" || { diff "$WORK/sent.txt" "$WORK/values.txt" | head; fail "served records differ from those produced"; }
echo "kafka_interop: (b) Fjord served all $n records of Kafka's log ($summary)"

# --- (d) Kafka's producer snapshot -> Fjord -----------------------------------
# The stop above was clean: Kafka wrote <log end>.snapshot with the producers.
mkdir -p "$WORK/idem"
cp -r "$WORK/kref/data/idem-0" "$WORK/idem/"
snap="$(ls "$WORK/idem/idem-0"/*.snapshot 2>/dev/null | tail -n 1)"
[ -n "$snap" ] || fail "Kafka wrote no producer snapshot: $(ls "$WORK/idem/idem-0")"
"$KREF" run-class org.apache.kafka.tools.DumpLogSegments --files "$snap" >"$WORK/snap.txt" 2>"$WORK/snap.err" \
  || { cat "$WORK/snap.err"; fail "DumpLogSegments of the snapshot failed"; }
# Kafka: "producerId: P producerEpoch: E ... lastSequence: S lastOffset: O ..."
sed -n 's/^producerId: \([0-9-]*\) producerEpoch: \([0-9-]*\) .* lastSequence: \([0-9-]*\) lastOffset: \([0-9-]*\) .*/\1 \2 \3 \4/p' \
  "$WORK/snap.txt" | sort -n >"$WORK/snap.kafka"
[ "$(wc -l <"$WORK/snap.kafka")" = 3 ] || { cat "$WORK/snap.txt"; fail "Kafka's snapshot holds $(wc -l <"$WORK/snap.kafka") producers, expected 3"; }
# Three runs of 500, 321 and 777 records: last sequences 499, 320, 776.
[ "$(cut -d' ' -f3 "$WORK/snap.kafka" | sort -n | tr '\n' ' ')" = "320 499 776 " ] \
  || { cat "$WORK/snap.kafka"; fail "unexpected last sequences in Kafka's snapshot"; }
"$TOOL" producers "$WORK/idem/idem-0" >"$WORK/producers.txt" 2>"$WORK/producers.err" \
  || { cat "$WORK/producers.err"; fail "Fjord could not read Kafka's producer snapshot"; }
grep -q "^snapshot $(basename "$snap") producers 3$" "$WORK/producers.txt" || { cat "$WORK/producers.txt"; fail "Fjord decoded another snapshot"; }
for source in snapshot log; do
  sed -n "s/^$source producer_id \([0-9-]*\) epoch \([0-9-]*\) last_sequence \([0-9-]*\) last_offset \([0-9-]*\)$/\1 \2 \3 \4/p" \
    "$WORK/producers.txt" | sort -n >"$WORK/snap.fjord.$source"
  cmp -s "$WORK/snap.kafka" "$WORK/snap.fjord.$source" || {
    echo "Kafka (id epoch last_sequence last_offset):"; cat "$WORK/snap.kafka"
    echo "Fjord ($source):"; cat "$WORK/snap.fjord.$source"
    fail "Fjord's producer state ($source) differs from Kafka's snapshot"
  }
done
echo "kafka_interop: (d) Fjord read Kafka's producer snapshot: $(tr '\n' ';' <"$WORK/snap.kafka")"
