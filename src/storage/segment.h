// One segment of a partition log: `<base offset, 20 digits>.log` with its
// sparse `.index` and `.timeindex`, in Kafka's formats:
//
//   .index      8-byte entries: int32 offset - base_offset, int32 file position
//   .timeindex  12-byte entries: int64 timestamp, int32 offset - base_offset
//   (big-endian, entries only: no header; Kafka's tools read these files)
//
// The entries follow Kafka's LogSegment.append exactly: before a batch is
// appended, if more than index.interval.bytes were appended since the last
// entry, the offset index gets (the batch's last offset, the batch's
// position) and the time index gets (the largest timestamp so far, the last
// offset of the batch that has it) if that timestamp grew.
//
// A segment is plain state owned by its log; the log does the I/O. Indexes are
// loaded lazily (indexes_loaded) and may be dropped again to save memory.
// Single-threaded: the owning shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/file_cache.h"
#include "storage/txn_index.h"

namespace fjord::storage {

struct offset_index_entry {
    int32_t relative_offset = 0;
    int32_t position = 0;
};
struct time_index_entry {
    int64_t timestamp = 0;
    int32_t relative_offset = 0;
};
inline constexpr size_t offset_index_entry_size = 8;
inline constexpr size_t time_index_entry_size = 12;
inline constexpr int64_t no_timestamp = -1;

// "00000000000000000042.log" for base 42 and ext ".log".
std::string segment_file_name(int64_t base_offset, std::string_view ext);
// Splits "<20 digits><ext>"; false for any other name.
bool parse_segment_file_name(std::string_view name, int64_t& base_offset, std::string_view& ext);

// What one batch contributes to its segment's indexes.
struct batch_info {
    uint64_t position = 0;
    uint32_t size = 0;
    int64_t base_offset = 0;
    int64_t last_offset = 0;
    int64_t max_timestamp = no_timestamp;
};

// A process-wide unique number per segment object: compaction checks that the
// segments it cleaned are still the ones in the log before swapping.
inline uint64_t next_segment_serial() {
    static std::atomic<uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
}

class segment {
public:
    explicit segment(int64_t base) : base_offset(base), next_offset(base) {}
    segment(const segment&) = delete;
    segment& operator=(const segment&) = delete;

    const int64_t base_offset;
    const uint64_t serial = next_segment_serial();
    uint64_t size_bytes = 0;    // bytes of whole, validated batches: the authoritative end
    uint64_t synced_bytes = 0;  // prefix known durable
    bool truncate_unsynced = false;
    // One past the last offset; exact once indexes_loaded (or for the active segment).
    int64_t next_offset;
    int64_t first_append_ms = -1;

    bool indexes_loaded = false;
    std::vector<offset_index_entry> offsets;
    std::vector<time_index_entry> times;
    int64_t max_timestamp = no_timestamp;
    int64_t offset_of_max_timestamp = -1;
    uint64_t bytes_since_index_entry = 0;
    size_t offsets_on_disk = 0;  // entries already in the .index file
    size_t times_on_disk = 0;

    file_cache::slot log_file;
    file_cache::slot offset_index_file;
    file_cache::slot time_index_file;

    // The .txnindex entries (markers in this segment), loaded on first use.
    // The file is written with every entry (opened when needed: aborts are
    // rare) and fsynced by the next sync_work; it always has every entry.
    bool txn_loaded = false;
    std::vector<aborted_txn> aborted_txns;
    uint32_t txn_changes = 0;  // writes to the .txnindex file; synced when txn_synced_changes catches up
    uint32_t txn_synced_changes = 0;

    // Kafka's per-batch index logic (see the file comment). `may_index` is
    // false for a batch that already has its entry (resuming after a load).
    void index_batch(const batch_info& b, uint32_t index_interval_bytes, bool may_index = true);
    // Kafka's onBecomeInactiveSegment: a last time index entry for the max.
    void seal_time_index();
    // Either index has no room left for another entry.
    bool index_full(uint64_t segment_index_bytes) const;
    // Position to scan from for the batch holding `offset` (0 if before every entry).
    uint64_t lookup_position(int64_t offset) const;
    // Offset to scan from for the first batch with max timestamp >= ts.
    int64_t lookup_timestamp(int64_t ts) const;
    // Drops entries for batches at or after `position` (which holds `offset`);
    // returns the position of the last remaining offset entry (0 if none).
    uint64_t truncate_indexes(uint64_t position, int64_t offset);
    void unload_indexes();
    size_t index_memory_bytes() const {
        return offsets.capacity() * sizeof(offset_index_entry) + times.capacity() * sizeof(time_index_entry) +
               aborted_txns.capacity() * sizeof(aborted_txn);
    }
};

// Index file bytes are untrusted: these return false on anything that is not
// a consistent index for a log of `log_size` bytes (then it is rebuilt).
// Trailing all-zero entries (Kafka's preallocation after a crash) are invalid.
bool decode_offset_index(std::span<const uint8_t> bytes, uint64_t log_size, std::vector<offset_index_entry>& out);
bool decode_time_index(std::span<const uint8_t> bytes, std::vector<time_index_entry>& out);
void encode_offset_index(std::span<const offset_index_entry> entries, std::vector<uint8_t>& out);
void encode_time_index(std::span<const time_index_entry> entries, std::vector<uint8_t>& out);

}  // namespace fjord::storage
