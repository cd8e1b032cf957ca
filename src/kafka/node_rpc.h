// Helpers of the broker's node-to-node calls (quorum.cc, replication.cc):
// RPC message bodies to and from bytes, a value a coroutine waits for from a
// callback, and how long a call to the active controller may wait.
//
// Threading: a waiter belongs to the shard of the executor it was made with.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/bytes.h"
#include "kafka/config.h"
#include "net/event.h"
#include "protocol/wire.h"

namespace fjord::kafka {

template <typename T>
std::vector<uint8_t> encode_body(const T& m, int16_t version) {
    protocol::writer w;
    m.encode(w, version);
    return w.take();
}

// The whole of `b` as one T, or nullopt (malformed, or bytes left over).
template <typename T>
std::optional<T> decode_body(const shared_bytes& b, int16_t version) {
    protocol::reader r(b);
    T m;
    m.decode(r, version);
    if (!r.ok() || r.remaining() != 0) return std::nullopt;
    return m;
}

// A callback's result for a coroutine: the callback sets `value` and
// notifies `ev`; the coroutine waits on `ev` until `value` is set.
template <typename T>
struct waiter {
    explicit waiter(const net::asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    std::optional<T> value;
};

// A registration, heartbeat or leader report waits at most half a broker
// session for its answer: later, the session it belongs to may be over and
// the next attempt (perhaps to a new active controller) is due.
inline int64_t rpc_session_timeout_ms(const broker_config& c) {
    return std::max<int64_t>(1, c.broker_session_timeout_ms / 2);
}

}  // namespace fjord::kafka
