// metadata_log: where metadata records are made durable and replayed from.
//
// Two homes: raft_metadata_log (Raft group 0 over the controller quorum:
// what the broker runs, a quorum of one on a single node) and
// local_metadata_log (one node's storage log, no Raft: the controller's unit
// tests). The tables (metadata_table.h) never see which one it is: the
// controller validates and appends through this interface, and applies what
// the log says is committed, in log order, through the apply function.
//
// Threading: one thread (shard 0) calls every method. Completions (`done`)
// and apply calls run on that thread, posted through the function given at
// construction, never inline from the call that caused them.
// Lifecycle: open, replay(), then append()s; keep the log alive until idle().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cluster/errc.h"
#include "cluster/metadata_records.h"

namespace fjord::cluster {

// Kafka's name for the metadata log: the directory of the metadata log
// manager, and the topic of its one partition inside it.
inline constexpr const char* metadata_topic = "__cluster_metadata";

class metadata_log {
public:
    using post_fn = std::function<void(std::function<void()>)>;
    // The offset of the first appended record (record i is at offset + i),
    // or why the records are not durable.
    using append_done = std::function<void(result<int64_t, errc>)>;
    using replay_fn = std::function<result<void, errc>(int64_t offset, const metadata_record&)>;
    // Committed records, in log order: one call per committed append (record
    // i at offset first + i), this node's own appends included, each before
    // that append's completion.
    using apply_fn = std::function<void(int64_t first, const std::vector<metadata_record>&)>;

    virtual ~metadata_log() = default;

    // Appends `records` (at least one) atomically: all become committed at
    // consecutive offsets, or none is acknowledged. Appends complete in order.
    // Only where writable(): elsewhere it fails with not_controller.
    virtual void append(std::vector<metadata_record> records, append_done done) = 0;
    virtual void set_apply(apply_fn fn) = 0;
    // Called (posted) whenever writable() or leader() may have changed.
    virtual void set_state_listener(std::function<void()> fn) = 0;
    // This node may append now: it leads and has applied everything
    // committed before it took over.
    virtual bool writable() const = 0;
    // The node that leads the log, when known.
    virtual std::optional<int32_t> leader() const = 0;

    // At open, before anything is applied: calls `fn` for every record that
    // is known committed without asking anybody (the local log: all of it;
    // the Raft log: none, they come through apply). A record that does not
    // decode, or an error from `fn`, stops the replay and takes the log
    // offline with offline_detail() saying where and why.
    virtual result<void, errc> replay(const replay_fn& fn) { return {}; }

    // The offset the next appended record will get.
    virtual int64_t end_offset() const = 0;
    // No append waiting for its completion.
    virtual bool idle() const = 0;
    virtual bool offline() const = 0;
    virtual const std::string& offline_detail() const = 0;
};

}  // namespace fjord::cluster
