// partition: one partition replica on the shard that owns it. The leader's
// view for one node: the log, its durability (when an append may be
// acknowledged), the high watermark, and the fetches waiting for data.
//
// The high watermark is what consumers may read. A replicated partition
// (replication factor above 1) has a Raft group (replica::replica): its
// high watermark is the group's commit offset + 1 and its leader epoch the
// group's term. Otherwise: with group commit (the default) the durable
// offset, so a consumer never sees a record a power cut could take back;
// with write caching the log end, as Kafka does.
//
// Threading: the owning shard only. Lifecycle: created when the metadata
// says this node leads it, destroyed (after close(), which waits for its
// in-flight fsyncs) when the topic is deleted or the broker stops.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kafka/config.h"
#include "net/event.h"
#include "protocol/wire.h"
#include "replica/replicas.h"
#include "storage/async_read.h"
#include "storage/durability.h"
#include "storage/log.h"

namespace fjord::storage {
class log_manager;
}

namespace fjord::kafka {

// A fetch waiting on one or more partitions of this shard: woken when any of
// them may have new data (or its deadline passes).
struct data_waiter {
    data_waiter(const net::asio::any_io_executor& ex, net::asio::steady_timer::time_point deadline)
        : ev(ex, deadline) {}
    net::event ev;
    bool woken = false;
};

class partition {
public:
    partition(storage::log& lg, storage::io_engine& io, storage::post_fn post, protocol::uuid topic_id,
              int32_t leader_epoch, topic_config cfg, int64_t now_ms);
    ~partition();

    storage::log& log() { return log_; }
    const storage::log& log() const { return log_; }
    storage::durability& durability() { return *durability_; }
    const protocol::uuid& topic_id() const { return topic_id_; }
    int32_t leader_epoch() const { return replica_ ? replica_->term() : leader_epoch_; }
    const topic_config& config() const { return cfg_; }
    void set_config(topic_config cfg);
    void set_leader_epoch(int32_t e) { leader_epoch_ = e; }

    int64_t high_watermark() const;
    int64_t last_stable_offset() const;
    int64_t log_start_offset() const { return log_.start_offset(); }
    int64_t log_end_offset() const { return log_.end_offset(); }

    // The high watermark (may have) moved: wakes every waiting fetch.
    void wake_waiters();
    void add_waiter(data_waiter* w) { waiters_.push_back(w); }
    void remove_waiter(data_waiter* w);

    bool offline() const { return log_.offline() || (replica_ && replica_->failed()); }

    // The partition's Raft group when it is replicated (owned by the
    // shard's replica::shard_replicas), else null.
    replica::replica* replica() const { return replica_; }
    void set_replica(replica::replica* r) { replica_ = r; }
    // This replica answers clients' produce and fetch: it is not replicated,
    // or it is its group's leader.
    bool leads() const { return !replica_ || replica_->is_leader(); }

private:
    storage::log& log_;
    std::unique_ptr<storage::durability> durability_;
    protocol::uuid topic_id_;
    int32_t leader_epoch_ = 0;
    topic_config cfg_;
    std::vector<data_waiter*> waiters_;
    replica::replica* replica_ = nullptr;
};

// The error for a partition the metadata places on this shard that has no
// partition object: KAFKA_STORAGE_ERROR when its log failed to open at
// start-up (a corrupt segment below its recovery point: in Kafka's terms a
// replica on a failed log directory, answered as one that fails later),
// else UNKNOWN_TOPIC_OR_PARTITION.
int16_t missing_partition_error(const storage::log_manager* logs, const storage::topic_partition& tp);

}  // namespace fjord::kafka
