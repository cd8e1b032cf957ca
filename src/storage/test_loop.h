// Tests only (uses GoogleTest): a shard's loop reduced to a queue that the
// test thread drains, for components whose completions are posted back to
// their owner (storage::durability, the cluster metadata log).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

namespace fjord::storage::testing {

class test_loop {
public:
    void post(std::function<void()> f) {
        std::lock_guard lock(mu_);
        q_.push_back(std::move(f));
        cv_.notify_one();
    }
    // Runs posted functions until `until` holds; fails after 10 s without.
    void run(const std::function<bool()>& until) {
        while (!until()) {
            std::function<void()> f;
            {
                std::unique_lock lock(mu_);
                if (!cv_.wait_for(lock, std::chrono::seconds(10), [this] { return !q_.empty(); })) {
                    ADD_FAILURE() << "nothing happened for 10 s: a completion is lost";
                    return;
                }
                f = std::move(q_.front());
                q_.pop_front();
            }
            f();
        }
    }
    // Runs what is queued now, without waiting.
    void drain() {
        for (;;) {
            std::function<void()> f;
            {
                std::lock_guard lock(mu_);
                if (q_.empty()) return;
                f = std::move(q_.front());
                q_.pop_front();
            }
            f();
        }
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> q_;
};

}  // namespace fjord::storage::testing
