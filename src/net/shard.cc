#include "net/shard.h"

#include "base/assert.h"
#include "base/logger.h"

namespace fjord::net {
namespace {
thread_local unsigned current_shard = 0;
}

counter shard_set::forwarded("fjord_requests_forwarded_total",
                             "Work forwarded from the shard that received it to the shard that owns it");

shard_set::shard_set(unsigned count) {
    FJORD_ASSERT(count >= 1 && count <= max_metric_shards, "shard count {}", count);
    for (unsigned i = 0; i < count; ++i) {
        auto s = std::make_unique<shard>();
        s->guard.emplace(s->ctx.get_executor());
        shards_.push_back(std::move(s));
    }
}

shard_set::~shard_set() {
    stop();
    join();
}

unsigned shard_set::current() {
    return current_shard;
}

void shard_set::run() {
    for (unsigned i = 0; i < shards_.size(); ++i) {
        shards_[i]->thread = std::thread([this, i] {
            current_shard = i;
            set_metrics_shard(i);
            set_log_shard(static_cast<int>(i));
            shards_[i]->ctx.run();
        });
    }
}

void shard_set::stop() {
    for (auto& s : shards_) s->guard.reset();
}

void shard_set::join() {
    for (auto& s : shards_) {
        if (s->thread.joinable()) s->thread.join();
    }
}

}  // namespace fjord::net
