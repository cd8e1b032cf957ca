// producer_state: per-partition state of idempotent and transactional
// producers, derived from the log, and its `<20-digit offset>.snapshot` files.
//
// For each producer id: its epoch, the last 5 batches it wrote (first/last
// sequence, first/last offset: what idempotence needs to detect duplicates
// and gaps), the max timestamp of its last batch, the coordinator epoch of
// its last transaction marker and the first offset of its open transaction.
// The table is fed every batch the log appends (leader or follower), and is
// rebuilt at open from the latest valid snapshot plus the batches after it.
// It also knows the open transactions in offset order (the last stable
// offset) and reports each transaction a marker completes (the log appends
// aborted ones to the segment's .txnindex, txn_index.h).
//
// Snapshot format (Kafka's ProducerStateManager, ProducerSnapshot v1; all
// big-endian):
//   int16  version = 1
//   uint32 crc     CRC32C of every byte after this field
//   int32  count, then count entries of
//     int64 producer_id, int16 epoch, int32 last_sequence, int64 last_offset,
//     int32 offset_delta (last_offset - first offset of the last batch),
//     int64 timestamp, int32 coordinator_epoch, int64 current_txn_first_offset (-1: none)
// A snapshot named N holds the state after every batch below offset N.
// Kafka's snapshot keeps only each producer's last batch, so after loading
// one the table knows one batch per producer until more are appended.
//
// Snapshot bytes are untrusted: decode() checks length, version and CRC.
// Threading: owned by one log, on its shard.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace fjord::storage {

inline constexpr int16_t producer_snapshot_version = 1;
inline constexpr size_t producer_snapshot_header_bytes = 10;  // version, crc, count
inline constexpr size_t producer_snapshot_entry_bytes = 46;
inline constexpr int producer_batches_kept = 5;  // Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN

struct producer_batch {
    int32_t first_seq = -1;
    int32_t last_seq = -1;
    int64_t first_offset = -1;
    int64_t last_offset = -1;
};

struct producer_entry {
    int64_t producer_id = -1;
    int16_t epoch = -1;
    // The last batches, oldest first; count of them valid.
    std::array<producer_batch, producer_batches_kept> batches{};
    int count = 0;
    int64_t last_timestamp = -1;
    int32_t coordinator_epoch = -1;
    int64_t current_txn_first_offset = -1;

    const producer_batch* last() const { return count ? &batches[static_cast<size_t>(count - 1)] : nullptr; }
    void push(const producer_batch& b);
};

// What the log knows of one appended batch (its header fields).
struct producer_batch_info {
    int64_t producer_id = -1;
    int16_t epoch = -1;
    int32_t base_sequence = -1;
    int64_t base_offset = 0;
    int64_t last_offset = 0;
    int64_t max_timestamp = -1;
    bool transactional = false;
    bool control = false;
    int32_t coordinator_epoch = -1;  // of a transaction marker, if parsed
    int16_t control_type = -1;       // of a transaction marker: 0 ABORT, 1 COMMIT (-1: not parsed)
};

inline constexpr int16_t control_type_abort = 0;
inline constexpr int16_t control_type_commit = 1;

// A transaction ended by a marker (Kafka's CompletedTxn).
struct completed_txn {
    int64_t producer_id = -1;
    int64_t first_offset = 0;  // the transaction's first batch (the marker's offset if it had none)
    int64_t last_offset = 0;   // the marker
    bool aborted = false;
};

class producer_state {
public:
    // Applies one appended batch (batches without a producer id are
    // ignored). A transactional data batch opens its producer's transaction
    // if none is open; a marker closes it and returns it.
    std::optional<completed_txn> apply(const producer_batch_info& b);
    const producer_entry* find(int64_t producer_id) const;
    size_t size() const { return producers_.size(); }
    void clear() {
        producers_.clear();
        ongoing_.clear();
    }
    // The first offset of the earliest open transaction (nullopt if none).
    std::optional<int64_t> first_unstable_offset() const {
        if (ongoing_.empty()) return std::nullopt;
        return ongoing_.begin()->first;
    }
    // The last stable offset right after `t` completed (apply() returned
    // it): the earliest other open transaction's first offset, or the
    // offset after the marker (Kafka's lastStableOffset(completedTxn)).
    int64_t stable_offset_after(const completed_txn& t) const {
        return ongoing_.empty() ? t.last_offset + 1 : std::min(ongoing_.begin()->first, t.last_offset + 1);
    }
    size_t ongoing_count() const { return ongoing_.size(); }
    const std::unordered_map<int64_t, producer_entry>& entries() const { return producers_; }
    // (producer id, last offset of its last batch), sorted by id: the batches
    // compaction must keep.
    std::vector<std::pair<int64_t, int64_t>> last_batch_offsets() const;

    // Kafka's snapshot bytes (deterministic: entries sorted by producer id).
    std::vector<uint8_t> encode_snapshot() const;
    // Replaces the table with a snapshot's content; false (table unchanged)
    // if the bytes are not a valid snapshot.
    bool decode_snapshot(std::span<const uint8_t> bytes);

    bool operator==(const producer_state& o) const;

private:
    std::unordered_map<int64_t, producer_entry> producers_;
    // Open transactions: first offset -> producer id (derived from producers_).
    std::map<int64_t, int64_t> ongoing_;
};

bool operator==(const producer_entry& a, const producer_entry& b);

// "00000000000000000042.snapshot"; parse returns nullopt for other names.
std::string producer_snapshot_name(int64_t offset);
std::optional<int64_t> parse_producer_snapshot_name(std::string_view name);

}  // namespace fjord::storage
