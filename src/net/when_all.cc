#include "net/when_all.h"

#include "base/logger.h"
#include "net/event.h"

namespace fjord::net {
namespace {
struct when_all_state {
    explicit when_all_state(const asio::any_io_executor& ex) : ev(ex) {}
    event ev;
    size_t left = 0;
};

asio::awaitable<void> when_all_one(asio::awaitable<void> task, std::shared_ptr<when_all_state> st) {
    try {
        co_await std::move(task);
    } catch (const std::exception& e) {
        log_error("a concurrent task failed: {}", e.what());
    }
    if (--st->left == 0) st->ev.notify();
}
}  // namespace

asio::awaitable<void> when_all(std::vector<asio::awaitable<void>> tasks) {
    if (tasks.size() == 1) {
        co_await std::move(tasks.front());
        co_return;
    }
    auto ex = co_await asio::this_coro::executor;
    auto st = std::make_shared<when_all_state>(ex);
    st->left = tasks.size();
    for (auto& t : tasks) {
        auto one = when_all_one(std::move(t), st);
        asio::co_spawn(ex, std::move(one), asio::detached);
    }
    while (st->left > 0) co_await st->ev.wait();
}

}  // namespace fjord::net
