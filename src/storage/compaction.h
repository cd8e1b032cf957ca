// Log compaction (cleanup.policy=compact): keep the latest record per key.
//
// Three steps, so that the heavy work can run off the shard:
//   1. log::plan_compaction() (shard): picks the cleanable closed segments
//      (fully durable, not active, older than min.compaction.lag.ms) when the
//      dirty ratio reaches min.cleanable.dirty.ratio, and describes them in an
//      immutable compaction_plan (file names, sizes, segment serials, the
//      first dirty offset, the producers' last batches).
//   2. compactor::run() (any thread): reads those segment files (validating
//      every batch), builds the key map from the dirty part, and writes the
//      cleaned segments as `<base>.log.cleaned` files, fsynced, with their
//      index entries in memory. Touches no log state, only new files.
//   3. log::install_compaction() (shard): for each cleaned group, if the
//      segments it replaces are unchanged, swaps it in as Kafka does:
//      rename .cleaned -> .swap, sync dir; delete the old segments' files,
//      sync dir; rename .swap -> .log, sync dir. Recovery (log::open) deletes
//      `.cleaned` files and completes any `.swap`: it deletes the segments
//      whose base lies in the swap segment's offset range and renames it.
//      A crash at any point leaves a log that is either the old one or the
//      cleaned one for each group.
// log::compact() does all three inline (tests, tools).
//
// What is kept (Kafka's LogCleaner): a record whose offset is at or past the
// end of the key map, or that is the latest for its key within the map; a
// tombstone (null value) only until its batch's delete horizon passes (the
// horizon, now + delete.retention.ms, is written into a batch's base
// timestamp with attribute bit 6 the first time a cleaning keeps a tombstone
// in it, as Kafka does since KIP-534). Control batches are kept whole
// (dropping transaction markers safely needs the transaction index: later).
// A batch keeps its base offset, last offset delta, producer fields and
// codec; partly kept batches are re-encoded (and recompressed); an emptied
// batch is dropped unless it is its producer's last batch (then it stays,
// with no records, so the producer state survives) or the last batch of a
// cleaned segment (so that segment still ends where its successor starts:
// recovery treats a hole between segments as lost data). Records with a null key
// inside the mapped range are dropped (Kafka does the same; the broker
// refuses them on append to compacted topics).
//
// Transactions: nothing at or past the first unstable offset is cleaned;
// the data batches of aborted transactions (plan.aborted, from the
// .txnindex) are dropped and never enter the key map; markers are kept.
// Cleaned segments get no .txnindex (no aborted data is left in them). The
// cleaner's position (first dirty offset) is persisted by the log manager
// (cleaner-offset-checkpoint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/errc.h"
#include "storage/file.h"
#include "storage/segment.h"
#include "storage/txn_index.h"

namespace fjord::storage {

// A 128-bit hash of a record key (Kafka uses MD5 in its dedupe buffer).
struct key_hash {
    uint64_t a = 0, b = 0;
    bool operator==(const key_hash&) const = default;
};
key_hash hash_key(std::span<const uint8_t> key);

// Key hash -> latest offset, in one fixed allocation (Kafka's SkimpyOffsetMap,
// log.cleaner.dedupe.buffer.size). full() once the load factor is reached.
class key_map {
public:
    explicit key_map(size_t memory_bytes, double load_factor = 0.9);
    void clear();
    bool full() const { return size_ >= max_entries_; }
    size_t size() const { return size_; }
    size_t max_entries() const { return max_entries_; }
    void put(const key_hash& h, int64_t offset);
    // -1 if the key is not in the map.
    int64_t get(const key_hash& h) const;
    static constexpr size_t slot_bytes = 24;

private:
    struct slot {
        uint64_t a = 0, b = 0;
        int64_t offset = -1;  // -1: empty
    };
    size_t home(const key_hash& h) const;
    std::vector<slot> slots_;
    size_t size_ = 0;
    size_t max_entries_ = 0;
};

// Everything the compactor needs, taken on the shard; immutable afterwards.
struct compaction_plan {
    struct source {
        int64_t base = 0;
        uint64_t size = 0;    // bytes of whole, durable batches
        uint64_t serial = 0;  // segment::serial, to detect a replaced segment
        int64_t end = 0;      // the next segment's base offset
    };
    std::string dir;
    std::vector<source> segments;  // consecutive, from the log's first segment
    int64_t first_dirty = 0;       // records from here on feed the key map
    int64_t now_ms = 0;
    int64_t delete_retention_ms = 0;
    uint64_t group_bytes = 0;  // a cleaned segment holds at most this much source
    uint32_t index_interval_bytes = 4096;
    // (producer id, last offset of its last batch), sorted: batches kept.
    std::vector<std::pair<int64_t, int64_t>> producer_last_batches;
    // Aborted transactions overlapping the segments (their .txnindex
    // entries): their data batches are dropped and never enter the key map.
    std::vector<aborted_txn> aborted;
    // A batch whose records all go stays as an empty batch (a replicated
    // partition: its Raft log must stay contiguous, batch by batch, on every
    // replica, so a follower behind can still replicate across it).
    bool keep_every_batch = false;
};

struct compaction_stats {
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;
    uint64_t records_read = 0;
    uint64_t records_dropped = 0;
    uint64_t tombstones_dropped = 0;
    uint64_t aborted_records_dropped = 0;  // records of aborted transactions
    uint64_t batches_rewritten = 0;
    uint64_t empty_batches_kept = 0;
    int groups_installed = 0;
    int segments_replaced = 0;
};

struct compaction_result {
    struct group {
        size_t first_source = 0;  // index into plan.segments
        size_t source_count = 0;
        int64_t base = 0;
        uint64_t size = 0;
        int64_t next_offset = 0;  // after the last kept batch (base if empty)
        std::vector<offset_index_entry> offsets;
        std::vector<time_index_entry> times;
        int64_t max_timestamp = no_timestamp;
        int64_t offset_of_max_timestamp = -1;
    };
    std::vector<group> groups;  // in offset order; each has a `<base>.log.cleaned` file
    int64_t cleaned_to = 0;     // the key map covered [first_dirty, cleaned_to): the next first dirty offset
    int64_t min_delete_horizon_ms = INT64_MAX;  // the earliest horizon of a kept tombstone
    compaction_stats stats;
};

// Does step 2 (see the file comment). Holds the key map and scratch buffers
// for reuse across runs; one per thread. Reads and writes files only through
// `fs` (which must allow use from the calling thread).
class compactor {
public:
    compactor(file_system& fs, size_t key_map_bytes);
    // On errc::corrupt_log, `detail` names the file, position and check.
    // Leaves no .cleaned file behind on failure (best effort).
    result<compaction_result, errc> run(const compaction_plan& plan, std::string& detail);
    const key_map& map() const { return map_; }

private:
    file_system& fs_;
    key_map map_;
    std::vector<uint8_t> scratch_;  // decompressed payloads
    std::vector<uint8_t> payload_;  // re-encoded records
    std::vector<uint8_t> batch_;    // one rebuilt batch
    std::vector<uint8_t> out_buf_;  // buffered output
    std::vector<uint8_t> kept_;     // per-record keep flags of one batch
};

// log::open's first step: deletes `.cleaned` files and completes every
// `<base>.log.swap` (deletes the segments whose base lies in its offset
// range, renames it to `<base>.log`), syncing the directory.
result<void, errc> recover_compaction_files(file_system& fs, const std::string& dir, std::string& detail);

// The name of a cleaned / swap file: "<base>.log.cleaned", "<base>.log.swap".
inline constexpr std::string_view cleaned_suffix = ".cleaned";
inline constexpr std::string_view swap_suffix = ".swap";

}  // namespace fjord::storage
