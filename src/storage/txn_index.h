// The transaction index: `<20-digit base>.txnindex`, one per segment that
// holds an ABORT marker, in Kafka's format (TransactionIndex / AbortedTxn):
//
//   34-byte entries, big-endian, no header:
//     int16 version = 0, int64 producer_id, int64 first_offset,
//     int64 last_offset (the ABORT marker's offset),
//     int64 last_stable_offset (the LSO once this transaction completed)
//
// An entry is appended to the segment that receives the marker, in marker
// order. Fetch at read_committed asks which aborted transactions overlap the
// range it serves (log::aborted_transactions).
//
// Bytes read from disk are untrusted: decode_txn_index() checks them.
// Pure functions, any thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace fjord::storage {

inline constexpr size_t txn_index_entry_size = 34;
inline constexpr int16_t txn_index_version = 0;

struct aborted_txn {
    int64_t producer_id = -1;
    int64_t first_offset = 0;
    int64_t last_offset = 0;  // the ABORT marker
    int64_t last_stable_offset = 0;
    friend bool operator==(const aborted_txn&, const aborted_txn&) = default;
};

// Appends the entries' bytes to `out`.
void encode_txn_index(std::span<const aborted_txn> entries, std::vector<uint8_t>& out);
// False (out unchanged) unless `bytes` are whole entries of version 0 with
// producer_id >= 0, 0 <= first_offset <= last_offset, markers increasing.
bool decode_txn_index(std::span<const uint8_t> bytes, std::vector<aborted_txn>& out);

}  // namespace fjord::storage
