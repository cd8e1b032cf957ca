// when_all: runs coroutines concurrently on the caller's shard and resumes
// the caller once every one has finished (a fan-out's gather step).
//
// Threading: the caller's shard; the tasks may hop to other shards
// (shard_set::invoke_on) and come back.
#pragma once

#include <memory>
#include <vector>

#include "net/asio.h"

namespace fjord::net {

// Runs every task concurrently; returns once all have finished (a task that
// throws is logged and counts as finished).
asio::awaitable<void> when_all(std::vector<asio::awaitable<void>> tasks);

}  // namespace fjord::net
