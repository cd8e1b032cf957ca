#include "kafka/partition.h"

#include <algorithm>

#include "kafka/errors.h"
#include "storage/log_manager.h"

namespace fjord::kafka {

partition::partition(storage::log& lg, storage::io_engine& io, storage::post_fn post, protocol::uuid topic_id,
                     int32_t leader_epoch, topic_config cfg, int64_t now_ms)
    : log_(lg),
      durability_(std::make_unique<storage::durability>(lg, io, std::move(post), cfg.durability, now_ms)),
      topic_id_(topic_id),
      leader_epoch_(leader_epoch),
      cfg_(std::move(cfg)) {}

partition::~partition() {
    // Waiting fetches hold pointers to their waiters, not to this partition.
    for (auto* w : waiters_) {
        w->woken = true;
        w->ev.notify();
    }
}

void partition::set_config(topic_config cfg) {
    log_.set_config(cfg.log);
    cfg_ = std::move(cfg);
}

int64_t partition::high_watermark() const {
    if (replica_) return replica_->high_watermark();
    if (cfg_.durability.mode == storage::durability_mode::write_caching) return log_.end_offset();
    return std::min(log_.durable_offset(), log_.end_offset());
}

int64_t partition::last_stable_offset() const {
    return log_.last_stable_offset(high_watermark());
}

void partition::wake_waiters() {
    for (auto* w : waiters_) {
        w->woken = true;
        w->ev.notify();
    }
}

void partition::remove_waiter(data_waiter* w) {
    std::erase(waiters_, w);
}

int16_t missing_partition_error(const storage::log_manager* logs, const storage::topic_partition& tp) {
    return logs && logs->offline().count(tp) ? error::kafka_storage_error : error::unknown_topic_or_partition;
}

}  // namespace fjord::kafka
