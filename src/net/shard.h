// shard_set: the broker's threads. One shard per core (--smp N), each a
// thread running its own io_context; nothing mutable is shared between
// shards. Code on one shard reaches another with invoke_on(), which runs a
// coroutine on the target shard and resumes the caller on its own shard with
// the result.
//
// Threading: invoke_on() from any shard; context()/count() from anywhere.
// Lifecycle: construct, run() (starts the threads), stop() (each loop ends
// once its work is done or abandoned), join().
#pragma once

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "base/metrics.h"
#include "net/asio.h"

namespace fjord::net {

template <typename T>
using awaitable = asio::awaitable<T>;

class shard_set {
public:
    explicit shard_set(unsigned count);
    ~shard_set();
    shard_set(const shard_set&) = delete;
    shard_set& operator=(const shard_set&) = delete;

    unsigned count() const { return static_cast<unsigned>(shards_.size()); }
    asio::io_context& context(unsigned shard) { return shards_[shard]->ctx; }
    // The calling thread's shard (0 outside shard threads).
    static unsigned current();

    // Starts one thread per shard; each runs its loop until stop().
    void run();
    // Lets every loop finish (work guards released); join() waits.
    void stop();
    void join();

    // Runs `make()`'s coroutine on `shard` and resumes the caller with its
    // result on the caller's own shard. `make` is called on the caller's
    // thread; what it captures must be safe to use on the target shard.
    template <typename F>
    auto invoke_on(unsigned shard, F make) -> decltype(make()) {
        // Named locals, not temporaries, across co_await (GCC 12 destroys
        // some co_await temporaries twice).
        auto inner = make();
        if (shard == current()) co_return co_await std::move(inner);
        forwarded.inc();
        auto outer = asio::co_spawn(context(shard), std::move(inner), asio::use_awaitable);
        co_return co_await std::move(outer);
    }

    // Cross-shard hops, for the --smp test and metrics.
    static counter forwarded;

private:
    struct shard {
        asio::io_context ctx{1};
        std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
        std::thread thread;
    };
    std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace fjord::net
