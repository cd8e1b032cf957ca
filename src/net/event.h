// event: wakes coroutines waiting on one shard's loop. A waiter re-checks its
// condition after every wake-up (`while (!cond) co_await ev.wait();`), so a
// notify() with nobody waiting is simply lost, never needed later.
//
// Threading: one shard (the executor it was built with).
#pragma once

#include "net/asio.h"

namespace fjord::net {

class event {
public:
    explicit event(const asio::any_io_executor& ex) : timer_(ex, asio::steady_timer::time_point::max()) {}
    // An event that also fires by itself at `deadline`.
    event(const asio::any_io_executor& ex, asio::steady_timer::time_point deadline) : timer_(ex, deadline) {}

    // Until notify() (or the deadline).
    asio::awaitable<void> wait();
    void notify() { timer_.cancel(); }

private:
    asio::steady_timer timer_;
};

}  // namespace fjord::net
