#include "net/event.h"

namespace fjord::net {

// Out of line: GCC 12 mishandles coroutines defined inline in headers
// (their frames land in discarded COMDAT sections).
asio::awaitable<void> event::wait() {
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace fjord::net
