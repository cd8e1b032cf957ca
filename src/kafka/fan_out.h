// fan_out: runs a per-partition job on the shards that own the partitions,
// concurrently, and waits for all of them. `Item` has `shard` (its owner) and
// `error` (items already failed are skipped); `make(shard_ctx*, group)` returns
// the awaitable that handles one shard's group of items on that shard.
//
// Threading: called on the request's shard; each group runs on its owner.
#pragma once

#include <vector>

#include "kafka/broker.h"
#include "kafka/errors.h"
#include "net/when_all.h"

namespace fjord::kafka {

template <typename Item, typename Make>
net::awaitable<void> fan_out(shard_ctx& sh, std::vector<Item>& items, Make make) {
    const unsigned n = sh.owner.shards().count();
    std::vector<std::vector<Item*>> by_shard(n);
    for (auto& it : items) {
        if (it.error == error::none) by_shard[it.shard].push_back(&it);
    }
    std::vector<net::awaitable<void>> tasks;
    for (unsigned s = 0; s < n; ++s) {
        if (by_shard[s].empty()) continue;
        auto* owner = &sh.owner.shard(s);
        tasks.push_back(
            sh.owner.shards().invoke_on(s, [owner, g = std::move(by_shard[s]), make] { return make(owner, g); }));
    }
    if (!tasks.empty()) {
        auto all = net::when_all(std::move(tasks));
        co_await std::move(all);
    }
}

}  // namespace fjord::kafka
