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

    offset start() const override { return offset(log_.start_offset()); }
    offset next() const override { return staged_base_ != no_offset ? staged_base_ : offset(log_.end_offset()); }
    term_id term_at(offset o) const override;
    offset last_offset_for_term(term_id t) const override;
    offset batch_base(offset o) const override;
    void append(entry e) override;
    void read(offset from, size_t max_bytes, std::vector<entry>& out) const override;
    void truncate_suffix(offset from) override;
    void truncate_prefix(offset new_start, term_id prev_term) override;

    // A partition leader appends a produced batch to the storage log itself
    // (validation, offsets, the leader epoch, producer state: the produce
    // path) and then proposes it: stage(base, records) right after that
    // append makes the log look as before it until the core appends the
    // data entry [base, base + records) of the proposal, which is then
    // already there. The proposal must follow at once, on the same thread.
    void stage(offset base, int32_t records);

    // The Kafka batch an entry becomes (exposed for tests).
    static std::vector<uint8_t> to_batch(const entry& e);
    // The entry a stored batch is (kind, payload), or nullopt if unreadable.
    static std::optional<entry> from_batch(const shared_bytes& batch);

private:
    storage::log& log_;
    term_id prev_term_;
    offset staged_base_ = no_offset;
    int32_t staged_records_ = 0;
};

// What a peer may legitimately send to this node's replicas whose logs are
// storage logs: addressed to `self`, from another node, a message's own ids
// matching its envelope, entries contiguous with sane record counts, data
// entries single record batches that pass their CRC, configurations that
// decode, no snapshot (partition and metadata snapshots are not sent yet).
// The core asserts much of this; the network is untrusted.
bool plausible_envelope(const envelope& e, node_id self);

}  // namespace fjord::raft
