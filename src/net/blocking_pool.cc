#include "net/blocking_pool.h"

#include <memory>

#include "net/event.h"

namespace fjord::net {

blocking_pool::blocking_pool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

blocking_pool::~blocking_pool() {
    stop();
}

void blocking_pool::submit(std::function<void()> task) {
    {
        std::lock_guard g(mu_);
        queue_.push_back(std::move(task));
    }
    cv_.notify_one();
}

void blocking_pool::stop() {
    {
        std::lock_guard g(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

void blocking_pool::run() {
    while (true) {
        std::function<void()> task;
        {
            std::unique_lock g(mu_);
            cv_.wait(g, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;
            task = std::move(queue_.front());
            queue_.pop_front();
        }
        task();
    }
}

namespace {
struct blocking_wait {
    explicit blocking_wait(const asio::any_io_executor& ex) : ev(ex) {}
    event ev;
    bool done = false;
};
}  // namespace

asio::awaitable<void> run_blocking(blocking_pool& pool, std::function<void()> task) {
    auto ex = co_await asio::this_coro::executor;
    auto st = std::make_shared<blocking_wait>(ex);
    pool.submit([st, ex, task = std::move(task)] {
        task();
        asio::post(ex, [st] {
            st->done = true;
            st->ev.notify();
        });
    });
    while (!st->done) co_await st->ev.wait();
}

}  // namespace fjord::net
