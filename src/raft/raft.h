// The Raft consensus core for one group: a pure, deterministic state machine.
//
// Inputs: step(message), tick(), on_flushed() (disk completion), and the
// client calls propose(), read_index(), transfer_leadership(),
// change_configuration(), compact(). Outputs accumulate in a `ready` that the
// driver takes after every input with take_ready() and handles in this order:
//   1. persist ready.hard_state and ready.snapshot durably (synchronously);
//   2. send ready.messages;
//   3. start an async flush of the log through ready.flush_through and later
//      call on_flushed() with the offset and its term;
//   4. apply committed entries up to ready.commit; answer ready.reads.
// The core reads and appends the log (buffered appends, see log.h) itself.
//
// No I/O, no clock, no threads, no exceptions, no coroutines: time is ticks,
// randomness is a seeded generator. Threading: one shard owns the instance.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "raft/log.h"
#include "raft/types.h"

namespace fjord::raft {

enum class errc {
    not_leader = 1,
    transfer_in_progress,
    backlog_full,  // too many uncommitted bytes, or too many pending reads
    no_commit_in_term,
    config_change_in_progress,
    invalid_config_change,
    unknown_node,
};
const char* errc_name(errc e);

enum class role { follower, pre_candidate, candidate, leader };
const char* role_name(role r);

// Test-only switches that break the algorithm on purpose (negative controls):
// the simulator must catch each of them.
enum class broken {
    none,
    vote_not_persisted,    // the vote is never written to the hard state
    commit_old_term,       // commit entries of older terms by counting replicas
    no_suffix_truncation,  // keep a divergent suffix instead of truncating it
    ack_before_majority,   // commit with one acknowledgement fewer than a majority
    lease_too_long,        // a lease four election timeouts long
};
const char* broken_name(broken b);
// The variant named `name` (broken_name), or nullopt.
std::optional<broken> parse_broken(std::string_view name);

struct options {
    node_id self;
    group_id group;
    int election_ticks = 10;  // election timeout is random in [election_ticks, 2 * election_ticks)
    int heartbeat_ticks = 2;
    size_t max_append_bytes = 64 * 1024;      // per append_request
    size_t max_inflight_bytes = 1024 * 1024;  // per follower, unacknowledged
    size_t max_inflight_messages = 32;        // per follower, unacknowledged
    size_t max_uncommitted_bytes = 8 * 1024 * 1024;
    size_t max_pending_reads = 1024;
    uint64_t seed = 1;  // election timeout jitter
    // Heartbeat rounds are started from outside with heartbeat() (the
    // group_manager starts one for all its groups at once and coalesces them
    // per node pair); tick() then sends none. Commit-only notifications and
    // read barriers also wait for the next round instead of going out alone.
    bool external_heartbeats = false;
    // Leader lease: read_index() answers at once, without a round trip, while
    // a quorum acknowledged a heartbeat round sent less than election_ticks -
    // lease_drift_ticks ticks ago. In exchange a voter refuses votes (but for a
    // leadership transfer) for election_ticks ticks after it last accepted a
    // leader's heartbeat or append, and after a restart. The margin covers the
    // phase of the nodes' tick timers (one tick) and their clock-rate drift.
    bool lease_reads = false;
    int lease_drift_ticks = 2;
    broken broken_variant = broken::none;
};

struct read_state {
    uint64_t id;
    offset index;  // apply through this offset, then serve the read
};

struct ready {
    std::optional<fjord::raft::hard_state> hard_state;  // persist before sending messages
    // Install this snapshot (persist and load the state machine from it)
    // before sending messages. The log has already been reset past it.
    std::optional<std::pair<snapshot_meta, shared_bytes>> snapshot;
    std::vector<message> messages;
    std::optional<offset> flush_through;  // flush the log through this offset
    std::optional<offset> commit;         // the commit offset advanced to this
    std::vector<read_state> reads;
    bool empty() const {
        return !hard_state && !snapshot && messages.empty() && !flush_through && !commit && reads.empty();
    }
};

// What a restarted replica recovers from its disk.
struct persisted {
    hard_state hs;
    snapshot_meta snapshot;  // last snapshot (or the bootstrap configuration)
    shared_bytes snapshot_data;
};

class raft {
public:
    // `lg` outlives the raft. Its contents must be durable (a restart loads
    // only what was flushed). `p.snapshot.last` is at or after lg.start() - 1.
    raft(const options& opts, log& lg, persisted p);

    // ---- inputs ----
    void step(const message& m);
    void tick();
    // Starts a heartbeat round (leader only; otherwise nothing). tick() calls
    // it every heartbeat_ticks unless options::external_heartbeats.
    void heartbeat();
    // The log is durable through `o`, which had term `t` when the flush began.
    void on_flushed(offset o, term_id t);

    // ---- client calls (leader only) ----
    // Appends a data batch of `records` records; returns its base offset.
    result<offset, errc> propose(shared_bytes payload, int32_t records = 1);
    // Linearizable read barrier: once ready.reads holds `id`, applying through
    // its index and reading is linearizable.
    result<void, errc> read_index(uint64_t id);
    result<void, errc> transfer_leadership(node_id target);
    // Adds or removes exactly one voter.
    result<offset, errc> change_configuration(const configuration& next);
    // A passive voter votes and follows but never stands for election, not
    // even when a leader hands over to it (a node in controlled shutdown:
    // leaderships move to the nodes that stay). Liveness only: a quorum of
    // passive voters elects no one.
    void set_passive(bool passive) { passive_ = passive; }
    bool passive() const { return passive_; }
    // The state machine has a durable snapshot through `last` (<= applied <=
    // commit): the log prefix up to it may go. At the same `last` again, only
    // the data sent to followers that are behind is replaced.
    void compact(offset last, shared_bytes data);

    ready take_ready();
    // take_ready() would return something (cheap: a driver with many groups
    // polls every group after each input).
    bool has_ready() const { return !ready_.empty() || (broadcast_pending_ && role_ == role::leader); }

    // ---- observers ----
    role current_role() const { return role_; }
    bool is_leader() const { return role_ == role::leader; }
    term_id term() const { return term_; }
    std::optional<node_id> leader() const { return leader_; }
    std::optional<node_id> voted_for() const { return vote_; }
    offset commit() const { return commit_; }
    offset flushed() const { return flushed_; }
    const configuration& config() const;
    const snapshot_meta& snapshot() const { return snapshot_; }
    node_id self() const { return opts_.self; }
    group_id group() const { return opts_.group; }
    const log& get_log() const { return log_; }
    bool has_pending_config() const;
    // propose() would fail with backlog_full / transfer_in_progress now.
    bool backlog_full() const { return uncommitted_bytes_ >= opts_.max_uncommitted_bytes; }
    bool transferring() const { return transfer_target_.has_value(); }
    uint64_t truncations() const { return truncations_; }
    // Offset of this leader's leader_change entry (no_offset if not leader).
    offset term_start() const { return term_start_; }
    // The leader holds a valid lease now (options::lease_reads).
    bool lease_valid() const;
    const options& opts() const { return opts_; }
    // Leader only: how far the log of voter `n` (not this node) is known to
    // match this leader's; nullopt when not leader or `n` is no other voter.
    std::optional<offset> follower_match(node_id n) const {
        if (role_ != role::leader) return std::nullopt;
        auto it = progress_.find(n);
        if (it == progress_.end()) return std::nullopt;
        return it->second.match;
    }

private:
    enum class peer_state { probe, replicate, snapshot };
    struct inflight {
        offset last;
        size_t bytes;
    };
    struct progress {
        offset match = no_offset;
        offset next{0};
        peer_state state = peer_state::probe;
        bool probe_sent = false;  // probe: one append outstanding
        std::deque<inflight> inflights;
        size_t inflight_bytes = 0;
        bool active = false;  // heard from since the last quorum check
        offset match_at_check = no_offset;
        int stall_ticks = 0;
        uint64_t hb_seq = 0;  // highest heartbeat round acknowledged
    };
    struct pending_read {
        uint64_t id;
        offset index;
        uint64_t seq;
    };
    struct round {
        uint64_t seq;
        int64_t sent_at;  // leader_clock_ when the round was sent
    };

    void become_follower(term_id t, std::optional<node_id> leader);
    void become_pre_candidate();
    void become_candidate(bool transfer);
    void become_leader();
    void reset_timeouts();
    void persist_hard_state();
    void send(node_id to, message_body body);

    void on_vote_request(const message& m, const vote_request& r);
    void on_vote_reply(const message& m, const vote_reply& r);
    void on_append(const message& m, const append_request& r);
    void on_append_reply(const message& m, const append_reply& r);
    void on_heartbeat(const message& m, const heartbeat_request& r);
    void on_heartbeat_reply(const message& m, const heartbeat_reply& r);
    void on_snapshot(const message& m, const snapshot_request& r);
    void on_timeout_now(const message& m, const timeout_now& r);

    void reply_append(node_id to);
    void send_append(node_id to, progress& pr);
    void send_heartbeats(uint64_t seq);
    void start_round();
    bool vote_guarded() const;
    int64_t lease_ticks() const;
    void maybe_commit();
    void set_commit(offset c);
    void release_inflights(progress& pr);
    void reset_progress();
    void request_flush();
    void append_local(entry e);
    void truncate_suffix(offset from);
    void on_config_appended(const entry& e);
    void on_configs_truncated(offset from);
    void on_commit_advanced();
    void check_reads();
    bool log_up_to_date(offset last, term_id t) const;
    bool recently_heard_leader() const;
    size_t quorum() const;
    bool self_is_voter() const { return config().contains(opts_.self); }
    void check_invariants() const;

    options opts_;
    log& log_;
    uint64_t rng_;

    role role_ = role::follower;
    term_id term_ = no_term;
    std::optional<node_id> vote_;
    std::optional<node_id> leader_;
    offset commit_ = no_offset;
    offset flushed_ = no_offset;       // durable through here (and consistent)
    offset flush_asked_ = no_offset;   // flush requested through here
    offset leader_match_ = no_offset;  // our log matches the leader's through here

    snapshot_meta snapshot_;
    shared_bytes snapshot_data_;
    // Configuration entries above the snapshot, in log order.
    std::vector<std::pair<offset, configuration>> configs_;

    int election_elapsed_ = 0;
    int election_timeout_ = 0;
    int heartbeat_elapsed_ = 0;
    int check_elapsed_ = 0;
    int leader_ticks_ = 0;  // ticks since the leader was last heard from

    std::map<node_id, bool> votes_;         // voter -> granted
    std::map<node_id, progress> progress_;  // leader: every other voter
    offset term_start_ = no_offset;
    std::optional<node_id> transfer_target_;
    int transfer_elapsed_ = 0;
    std::deque<inflight> uncommitted_;  // leader: proposals not yet committed
    size_t uncommitted_bytes_ = 0;
    bool broadcast_pending_ = false;  // leader: send appends at take_ready()
    uint64_t hb_seq_ = 0;             // last heartbeat round sent (monotonic across terms)
    std::deque<pending_read> reads_;
    // Leader lease: ticks since this node became leader, the recent rounds,
    // and whether a transfer (which bypasses the voters' guard) was started.
    int64_t leader_clock_ = 0;
    std::deque<round> rounds_;
    bool transfer_started_ = false;
    // Ticks since this node last accepted a leader's heartbeat or append (0
    // after a restart); with lease_reads it votes only past election_ticks.
    int lease_guard_ticks_ = 0;

    bool passive_ = false;
    ready ready_;
    hard_state persisted_hs_;
    uint64_t truncations_ = 0;
};

}  // namespace fjord::raft
