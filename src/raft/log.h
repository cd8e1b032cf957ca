// The log that Raft replicates, as an interface. Satisfied by memory_log (tests,
// simulator, metadata group for now) and later by the storage engine's partition
// log, with no translation: entries are record batches, offsets are Kafka
// offsets, terms are the batches' partition leader epochs.
//
// Durability is not part of this interface: append() only buffers. The Raft
// core asks for a flush through its output (ready::flush_through) and the
// adapter reports completion with raft::on_flushed(). So the storage log's
// async flush maps onto it directly.
//
// Threading: one shard, the one that owns the group. Not thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "raft/types.h"

namespace fjord::raft {

class log {
public:
    virtual ~log() = default;

    // First offset still held (Kafka log start offset).
    virtual offset start() const = 0;
    // One past the last offset held (Kafka log end offset).
    virtual offset next() const = 0;
    // Term of the batch containing `o`, for start() - 1 <= o < next(). For
    // start() - 1 it is the term of the last batch removed by prefix
    // truncation (no_term if there never was one).
    virtual term_id term_at(offset o) const = 0;
    // Kafka OffsetForLeaderEpoch: the last offset whose term is <= t, or
    // start() - 1 if there is none in the log.
    virtual offset last_offset_for_term(term_id t) const = 0;
    // Base offset of the batch that contains `o` (start() <= o < next()).
    virtual offset batch_base(offset o) const = 0;

    // Appends one batch at next(); its term is >= the last term. Buffered.
    virtual void append(entry e) = 0;
    // Batches from `from` (a batch base) on, whole batches only, stopping once
    // `max_bytes` is reached; at least one batch if any remains.
    virtual void read(offset from, size_t max_bytes, std::vector<entry>& out) const = 0;
    // Removes every batch at or after `from` (a batch base).
    virtual void truncate_suffix(offset from) = 0;
    // Moves the log start offset to `new_start` (a batch base, or any offset >=
    // next(), which empties the log and sets next() = new_start). `prev_term` is
    // the term of the batch ending at new_start - 1.
    virtual void truncate_prefix(offset new_start, term_id prev_term) = 0;

    term_id last_term() const { return term_at(next() - 1); }
    offset last_offset() const { return next() - 1; }
};

}  // namespace fjord::raft
