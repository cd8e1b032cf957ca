// replicas: the Raft groups of one shard's replicated partitions, driven
// over their storage logs (ARCHITECTURE §5): the partition log is the Raft
// log (raft/storage_log.h), the Raft term is the leader epoch, the commit
// offset + 1 is the high watermark.
//
// One `shard_replicas` per shard runs a raft::group_manager (heartbeats
// coalesced per node pair) for every replicated partition the shard owns,
// and follows raft.h's order for each output: it persists the hard states
// (each replica's `quorum-state` beside its log, hard_state_file.h) before
// any message goes out, sends, flushes through the partition's
// storage::durability (under write caching the flush is reported at once:
// a majority then holds the batch in memory, Kafka's semantics), then
// advances commit offsets.
//
// A leader takes a produced batch in three steps on its shard:
// refuse_append() (nothing touched when it says no), the storage append
// with leader epoch term(), then appended() and wait(): the waiter is told
// once the batch is committed (acks=all) or durable here (acks=1), or
// -ECANCELED when this replica stops leading first.
//
// In-sync replicas: the leader, and every follower that answered and whose
// log reached the leader's log end within replica.lag.time.max.ms.
//
// Threading: everything on the owning shard; io completions come back
// through `post`, and callbacks run from posted functions, never inline from
// the call that caused them. Lifecycle: construct, add() a replica when the
// metadata places one here, tick() every tick and step() every inbound
// envelope; remove() before the partition's log and durability go away
// (completions still in flight for it are then ignored); destroy last.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/group_manager.h"
#include "raft/storage_log.h"
#include "replica/hard_state_file.h"
#include "storage/durability.h"
#include "storage/io_engine.h"
#include "storage/log.h"

namespace fjord::replica {

using post_fn = std::function<void(std::function<void()>)>;
using send_fn = std::function<void(raft::envelope)>;

struct replicas_options {
    int32_t self = -1;
    int election_ticks = 100;  // election timeout [election_ticks, 2 * election_ticks) ticks
    int heartbeat_ticks = 10;
    int64_t replica_lag_time_max_ms = 30000;  // replica.lag.time.max.ms
    uint64_t seed = 0;                        // election jitter; 0: random
    // Tests only (negative controls of the fault suite): a deliberately
    // broken Raft in every partition group.
    raft::broken broken_variant = raft::broken::none;
};

class shard_replicas;

// One replicated partition's replica on this shard.
class replica {
public:
    raft::group_id group() const { return group_; }
    const std::vector<int32_t>& replicas() const { return replicas_; }

    // Leads and has committed an entry of its term: may take writes.
    bool writable() const;
    bool is_leader() const;
    int32_t term() const;
    std::optional<int32_t> leader() const;
    // Raft's commit offset + 1: what consumers may read (0 before any commit).
    int64_t high_watermark() const;
    // Why a produced batch may not be appended now (nullopt: it may).
    std::optional<raft::errc> refuse_append() const;
    // After the leader appended [base, base + records) with epoch term() to
    // the storage log: proposes it (cannot fail after refuse_append() said
    // yes). `payload` is the batch (only its size is used).
    void appended(int64_t base, int32_t records, shared_bytes payload);
    // done(0) once offset `last` is committed (need_commit) or durable here;
    // done(-ECANCELED) when this replica stops leading first (the batch may
    // still survive under the next leader); done(-errno) on a failed fsync.
    void wait(int64_t last, bool need_commit, std::function<void(int)> done);
    // In-sync replicas (the leader's view; just this node elsewhere), sorted.
    const std::vector<int32_t>& isr() const { return isr_; }
    // Called (posted) when the high watermark, the role, the term or the ISR changed.
    void set_listener(std::function<void()> fn) { listener_ = std::move(fn); }
    // The replica stopped on a storage failure; nothing more is done for it.
    bool failed() const { return failed_; }
    // Hands leadership to the in-sync follower furthest along (controlled
    // shutdown), another one than the last time asked when there is one (the
    // last may be shutting down too: it then refuses); false when there is none.
    bool transfer_leadership_away();
    // Hands leadership to replica `node` (the preferred leader); false when
    // this replica does not lead or `node` is no other replica.
    bool transfer_to(int32_t node);
    // Moves the log start offset up to `offset` (retention, DeleteRecords),
    // on the leader or a follower: at most to the high watermark. Raft's
    // snapshot moves to the start of the batch holding it; a follower behind
    // that gets the snapshot, which carries the offset. In memory: the owner
    // checkpoints the log start and then removes the segments below it.
    // False (nothing moved) past the high watermark or on a stopped replica.
    bool advance_log_start(int64_t offset);
    // When this replica last became leader (the tick time), -1 if it does not lead.
    int64_t leader_since_ms() const { return was_leader_ ? leader_since_ms_ : -1; }

private:
    friend class shard_replicas;
    struct waiter {
        int64_t last;
        int32_t term;  // the leader's term when the batch was appended
        std::function<void(int)> done;
    };
    replica(shard_replicas& owner, raft::group_id g, storage::log& lg, storage::durability& dur,
            std::vector<int32_t> replicas, bool write_caching);

    shard_replicas& owner_;
    raft::group_id group_;
    storage::log& log_;
    storage::durability& dur_;
    std::vector<int32_t> replicas_;
    bool write_caching_;
    std::unique_ptr<raft::storage_log> rlog_;
    std::unique_ptr<hard_state_file> state_;
    raft::raft* core_ = nullptr;  // owned by the owner's group manager
    int64_t commit_ = -1;
    int64_t snapshot_start_ = -1;              // the log start offset of an installed snapshot, not applied yet
    std::deque<waiter> commit_waiters_;        // acks=all, `last` ascending
    std::deque<waiter> flush_waiters_;         // acks=1, `last` ascending
    std::map<int32_t, int64_t> caught_up_ms_;  // follower -> when its log last reached ours
    std::map<int32_t, int64_t> heard_ms_;      // follower -> when it last answered
    std::vector<int32_t> isr_;
    std::function<void()> listener_;
    int32_t last_away_target_ = -1;  // transfer_leadership_away()'s last choice
    // What the listener last saw.
    bool was_leader_ = false;
    int64_t leader_since_ms_ = -1;
    int32_t last_term_ = -1;
    int64_t last_hw_ = -1;
    bool failed_ = false;
    uint64_t generation_ = 0;  // distinguishes this replica's completions from a later one's
};

class shard_replicas {
public:
    shard_replicas(replicas_options opts, storage::io_engine& engine, post_fn post, send_fn send);
    ~shard_replicas();
    shard_replicas(const shard_replicas&) = delete;
    shard_replicas& operator=(const shard_replicas&) = delete;

    // Hosts the replica of group `g` whose log is `lg` (its directory keeps
    // the quorum-state file), with `replicas` as the Raft voters. Reads the
    // quorum-state (may block briefly: replica creation). Fails with the reason.
    result<replica*, std::string> add(raft::group_id g, storage::log& lg, storage::durability& dur,
                                      std::vector<int32_t> replicas, bool write_caching);
    // Stops hosting `g`: its waiters get -ECANCELED.
    void remove(raft::group_id g);
    replica* find(raft::group_id g);
    size_t size() const { return replicas_.size(); }

    void tick(int64_t now_ms);
    // An envelope from another node (checked: a malformed one is dropped and counted).
    void step(const raft::envelope& e);
    // Nothing of ours in flight (hard-state writes, flushes).
    bool idle() const { return !persisting_ && flushes_ == 0; }
    uint64_t dropped_envelopes() const { return dropped_; }
    // Controlled shutdown: this node's replicas (and those added later) stop
    // standing for election and refuse leadership handed to them.
    void set_passive();

private:
    friend class replica;
    void pump();
    void handle(raft::group_manager::output out);
    void persist(replica& r, const raft::hard_state& hs, std::function<void()> then);
    void flush(replica& r, raft::offset o);
    // Releases the waiters the commit offset or the flushed offset covers,
    // and cancels those a change of leadership orphaned.
    void advance(replica& r);
    void cancel_waiters(replica& r, int err);
    void fail_replica(replica& r, std::string why);
    // Recomputes the ISR; tells the listener what changed.
    void notice(replica& r);

    replicas_options opts_;
    storage::io_engine& engine_;
    post_fn post_;
    send_fn send_;
    raft::group_manager mgr_;
    std::map<raft::group_id, std::unique_ptr<replica>> replicas_;
    uint64_t next_generation_ = 1;
    bool persisting_ = false;  // hard-state writes in flight: the output waits
    int flushes_ = 0;
    bool pumping_ = false;
    bool pump_posted_ = false;
    uint64_t dropped_ = 0;
    bool passive_ = false;
    std::vector<raft::group_id> log_failures_;  // storage logs that failed inside the core's last input
    uint64_t rng_;
    int64_t now_ms_ = 0;
    static constexpr int64_t notice_interval_ms = 100;
    int64_t next_notice_ms_ = 0;
    std::shared_ptr<bool> alive_;  // completions check it: the owner may be gone
};

}  // namespace fjord::replica
