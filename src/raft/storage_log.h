// storage_log: the storage engine's partition log as a raft::log, so a
// partition's Raft group replicates the partition log itself: Raft offsets
// are Kafka offsets, Raft terms are the batches' partition leader epochs,
// OffsetForLeaderEpoch and Raft's term lookups read the same epoch history.
//
// Entries are Kafka record batches:
//   data            the proposer's record batch; its base offset and leader
//                   epoch are rewritten to the entry's on append.
//   leader_change   a control batch with a LEADER_CHANGE record (the value is
//                   a LeaderChangeMessage), written by every new leader;
//                   consumers skip it like any control batch.
//   configuration   a control batch of Fjord's own control type 100 whose
//                   value is encode_configuration(); consumers skip it.
//
// Durability stays outside, as raft::log requires: append() writes to the
// page cache; the node's driver makes it durable through storage::durability
// and reports raft::on_flushed().
//
// Threading: the shard that owns the partition. Lifecycle: the storage log
// outlives the adapter.
#pragma once

#include <functional>
#include <string>

#include "raft/group_manager.h"
#include "raft/log.h"
#include "storage/log.h"

namespace fjord::raft {

// The control record type that carries a Raft configuration.
inline constexpr int16_t fjord_configuration_control_type = 100;

class storage_log final : public log {
public:
    // `prev_term`: the term of the batch just below the log start (the last
    // snapshot's term), no_term for a log that starts at 0.
    storage_log(storage::log& lg, term_id prev_term);
    // After a restart, when that term is not on record: it is recovered from
    // the epoch history, exactly for an empty log and a log starting at 0.
    // Otherwise the history starts at the log start and the term of the
    // batch there stands in (never below the true one). The core treats the
    // offset below its start as committed, so a term too high costs at most
    // a follower's spurious refusal and a snapshot, never a false match.
    explicit storage_log(storage::log& lg);

    // Raft's log start is the base of the first batch the storage log still
    // shows: Kafka's log start offset may sit inside a batch (DeleteRecords),
    // and Raft moves whole batches. Every move of a replicated partition's
    // log start goes through the core (raft::compact, a snapshot), which
    // calls truncate_prefix() here.
    offset start() const override { return start_; }
    offset next() const override { return staged_base_ != no_offset ? staged_base_ : offset(log_.end_offset()); }
    term_id term_at(offset o) const override;
    offset last_offset_for_term(term_id t) const override;
    offset batch_base(offset o) const override;
    void append(entry e) override;
    void read(offset from, size_t max_bytes, std::vector<entry>& out) const override;
    void truncate_suffix(offset from) override;
    // Within the log, the storage log start moves in memory only
    // (advance_start_offset): the owner makes it durable and removes the
    // segments below (checkpoint, then detach_segments_below_start) off the
    // shard. Beyond the end (a snapshot installed on a follower that is
    // behind), the storage log restarts there, durably, at once.
    void truncate_prefix(offset new_start, term_id prev_term) override;

    // A partition leader appends a produced batch to the storage log itself
    // (validation, offsets, the leader epoch, producer state: the produce
    // path) and then proposes it: stage(base, records) right after that
    // append makes the log look as before it until the core appends the
    // data entry [base, base + records) of the proposal, which is then
    // already there. The proposal must follow at once, on the same thread.
    void stage(offset base, int32_t records);

    // A storage operation failed (a full disk, an I/O error): the log no
    // longer holds what the core believes, and nothing the core says from
    // now on may leave the node. The driver checks this after every input
    // and stops the replica (its messages of that output are dropped); a
    // restart recovers the log from its files. `failure()` says what failed.
    bool failed() const { return !failure_.empty(); }
    const std::string& failure() const { return failure_; }
    // Called once, at the first failure (from inside the core's call).
    void on_failure(std::function<void()> fn) { on_failure_ = std::move(fn); }

    // The Kafka batch an entry becomes (exposed for tests).
    static std::vector<uint8_t> to_batch(const entry& e);
    // The entry a stored batch is (kind, payload), or nullopt if unreadable.
    static std::optional<entry> from_batch(const shared_bytes& batch);

private:
    // Where a read for Raft offset `o` starts in the storage log: inside the
    // first batch Kafka's log start is the only offset the storage serves.
    int64_t storage_offset(offset o) const { return std::max(o.get(), log_.start_offset()); }
    // The base of the batch holding the storage log start (or the start
    // itself at the end of the log).
    offset first_batch_base() const;

    void fail(std::string what) const {
        if (!failure_.empty()) return;
        failure_ = std::move(what);
        if (on_failure_) on_failure_();
    }

    storage::log& log_;
    mutable std::string failure_;
    std::function<void()> on_failure_;
    offset start_;
    term_id prev_term_;
    offset staged_base_ = no_offset;
    int32_t staged_records_ = 0;
};

// What a peer may legitimately send to this node's replicas whose logs are
// storage logs: addressed to `self`, from another node, a message's own ids
// matching its envelope, entries contiguous with sane record counts, data
// entries single record batches that pass their CRC, configurations that
// decode. Snapshots only where `snapshots` (partition groups: the data is
// the leader's log start offset, 8 bytes; the metadata group sends none
// yet), with a sane position, term and configuration. The core asserts much
// of this; the network is untrusted.
bool plausible_envelope(const envelope& e, node_id self, bool snapshots);

}  // namespace fjord::raft
