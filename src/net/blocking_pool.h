// blocking_pool: a few threads for work that blocks and must never run on a
// shard: writing checkpoint files (fsync, rename), cleaning segments for
// compaction. Reads and fsyncs of the data path go through
// storage::io_engine instead.
//
// Threading: submit() and run_blocking() from any shard; the task runs on a
// pool thread and must touch only what it was given. Lifecycle: stop() waits
// for queued tasks and joins the threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "net/asio.h"

namespace fjord::net {

class blocking_pool {
public:
    explicit blocking_pool(size_t threads);
    ~blocking_pool();
    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;

    void submit(std::function<void()> task);
    void stop();

private:
    void run();
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

// Runs `task` on the pool and resumes the caller on its own executor once it
// has finished. What the task produces goes through what it captured.
asio::awaitable<void> run_blocking(blocking_pool& pool, std::function<void()> task);

}  // namespace fjord::net
