// raft_metadata_log: the cluster metadata log replicated by Raft group 0 over
// the controller quorum (ARCHITECTURE §5). Every node that is a voter keeps a
// replica in `<metadata dir>/__cluster_metadata-0` (a storage partition log
// whose Raft terms are the batches' leader epochs, raft/storage_log.h) and
// applies what the quorum committed, in log order, through the apply
// function: the records of this node's own appends and everybody else's
// alike. The group-0 leader is the active controller: append() is accepted
// only there (elsewhere it fails with not_controller).
//
// A single node is a quorum of one on the same code path: it elects itself
// after one election timeout and commits alone.
//
// The driver follows raft.h's order for every output of the core: persist the
// hard state (term, vote) durably in `<metadata dir>/quorum-state` before any
// message produced with it goes out (the write is a pwrite of one of two
// checksummed slots plus an fdatasync on the io_engine, never a blocking sync
// on the calling thread; until it completes the core keeps running but
// nothing is sent), then send, then flush the log through
// storage::durability and report on_flushed(), then apply committed entries.
//
// Threading: one thread (shard 0) calls everything; completions come back
// through `post`, and every append completion and apply call runs from a
// posted function, never inline from the call that caused it.
// Lifecycle: open(), then tick() every tick_ms and step() for every inbound
// envelope; wait for idle(), then close() (clean) or destroy (a crash).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/metadata_log.h"
#include "raft/group_manager.h"
#include "raft/storage_log.h"
#include "storage/durability.h"
#include "storage/io_engine.h"
#include "storage/log_manager.h"

namespace fjord::replica {
class hard_state_file;
}

namespace fjord::cluster {

// The group id of the metadata quorum in every node's Raft traffic.
inline constexpr raft::group_id metadata_group{0};

struct raft_metadata_log_options {
    std::string dir;  // the metadata directory, created if missing
    int32_t node_id = 1;
    std::vector<int32_t> voters;  // controller.quorum.voters (node ids); must contain node_id
    int election_ticks = 10;      // election timeout: [election_ticks, 2 * election_ticks) ticks
    int heartbeat_ticks = 2;
    uint64_t seed = 0;  // election jitter; 0: random
    storage::file_system* fs = nullptr;
    uint64_t segment_bytes = uint64_t{1} << 30;  // metadata.log.segment.bytes
};

class raft_metadata_log final : public metadata_log {
public:
    using send_fn = std::function<void(raft::envelope)>;

    // Opens (or creates) this node's replica of the metadata log and the
    // quorum state. `send` carries envelopes to the other voters (it must
    // not call back into this log inline).
    static result<std::unique_ptr<raft_metadata_log>, errc> open(const raft_metadata_log_options& opts,
                                                                 storage::io_engine& engine, post_fn post, send_fn send,
                                                                 std::string& detail);
    ~raft_metadata_log() override;

    // ---- inputs ----
    void tick();
    // An envelope from another node (checked: a malformed one is dropped and counted).
    void step(const raft::envelope& e);

    // ---- metadata_log ----
    void append(std::vector<metadata_record> records, append_done done) override;
    void set_apply(apply_fn fn) override { apply_ = std::move(fn); }
    void set_state_listener(std::function<void()> fn) override { state_listener_ = std::move(fn); }
    bool writable() const override;
    std::optional<int32_t> leader() const override;
    int64_t end_offset() const override { return log_->end_offset(); }
    bool idle() const override;
    bool offline() const override { return offline_; }
    const std::string& offline_detail() const override { return offline_detail_; }

    // ---- observers (DescribeQuorum, tests) ----
    int32_t term() const;
    int64_t commit_offset() const;  // -1 before any commit is known
    int64_t applied_offset() const { return applied_next_ - 1; }
    const std::vector<int32_t>& voters() const { return opts_.voters; }
    uint64_t dropped_envelopes() const { return dropped_; }
    raft::raft& core();

    // Controlled shutdown: a leader hands leadership to the voter whose log
    // is furthest along; false when there is nothing to hand over.
    bool transfer_leadership_away();
    // Shutdown: fails what is pending (not_controller) and every later
    // append; stops the core. Then wait for idle() and close().
    void abandon();
    // Clean shutdown (only when idle): syncs, checkpoints, clean marker.
    result<void, errc> close();

private:
    struct pending_append {
        int64_t first;
        int32_t term;
        append_done done;
    };
    raft_metadata_log(const raft_metadata_log_options& opts, storage::io_engine& engine, post_fn post, send_fn send);
    void pump();
    void handle(raft::group_manager::output out);
    void persist(const raft::hard_state& hs, std::function<void()> then);
    void flush_through(raft::offset o);
    void apply_committed();
    void fail_pending(errc why);
    void notice_state();
    void go_offline(std::string detail);

    raft_metadata_log_options opts_;
    storage::io_engine& engine_;
    post_fn post_;
    send_fn send_;
    apply_fn apply_;
    std::function<void()> state_listener_;
    std::unique_ptr<storage::log_manager> manager_;
    storage::log* log_ = nullptr;  // owned by manager_
    std::unique_ptr<raft::storage_log> rlog_;
    std::unique_ptr<storage::durability> durability_;
    std::unique_ptr<raft::group_manager> mgr_;
    raft::raft* core_ = nullptr;

    std::unique_ptr<replica::hard_state_file> state_;  // quorum-state
    bool persisting_ = false;                          // a hard state write is in flight: hold the outputs
    std::optional<raft::group_manager::output> held_;

    int flushes_ = 0;  // flushes in flight
    int64_t commit_ = -1;
    int64_t applied_next_ = 0;  // the next offset to apply (a batch base)
    std::deque<pending_append> pending_;
    // What the state listener last saw.
    bool was_writable_ = false;
    std::optional<int32_t> last_leader_;
    int32_t last_term_ = 0;
    uint64_t dropped_ = 0;
    bool offline_ = false;
    bool closed_ = false;
    bool abandoned_ = false;
    std::string offline_detail_;
    bool pumping_ = false;
};

}  // namespace fjord::cluster
