// An in-memory raft::log: a deque of batches plus the epoch history (first
// offset of every term), as the storage engine's leader epoch cache keeps it.
// Threading: one shard. Holds no locks.
#pragma once

#include <deque>
#include <vector>

#include "raft/log.h"

namespace fjord::raft {

class memory_log final : public log {
public:
    memory_log() = default;

    offset start() const override { return start_; }
    offset next() const override { return next_; }
    term_id term_at(offset o) const override;
    offset last_offset_for_term(term_id t) const override;
    offset batch_base(offset o) const override;
    void append(entry e) override;
    void read(offset from, size_t max_bytes, std::vector<entry>& out) const override;
    void truncate_suffix(offset from) override;
    void truncate_prefix(offset new_start, term_id prev_term) override;

    // Copies this log's contents (used by the simulator's disk model).
    void assign(const memory_log& other) { *this = other; }
    size_t batch_count() const { return batches_.size(); }
    const entry& batch_at_base(offset base) const;

private:
    // Index of the batch containing `o`; requires start_ <= o < next_.
    size_t index_of(offset o) const;
    void check_invariants() const;

    std::deque<entry> batches_;
    offset start_{0};
    offset next_{0};
    term_id prev_term_ = no_term;  // term at start_ - 1
    // (term, first offset) for every term in the log, ascending in both.
    std::vector<std::pair<term_id, offset>> epochs_;
};

}  // namespace fjord::raft
