// The rpc module's expected failures (result<T, errc>): bytes from the
// network that do not decode or make no sense, and what can go wrong with a
// peer. Plain values; any thread.
#pragma once

#include <cstdint>

namespace fjord::rpc {

enum class errc : uint8_t {
    malformed = 1,        // bytes that do not decode: truncated, lying lengths, trailing bytes
    invalid_value,        // decodes, but a value is out of range (a negative group, an entry kind, ...)
    unknown_api_key,      // no such message in Fjord's RPC numbering (or not of this frame kind)
    unsupported_version,  // no such version of the message
    unknown_peer,         // the node is not among the transport's peers
    disconnected,         // the connection closed before the response came, or the peer is unreachable
    timeout,              // no response within request_timeout_ms
    queue_full,           // the peer's send queue is at max_queue_bytes
    frame_too_large,      // the frame would exceed max_frame_bytes
    stopped,              // the transport is stopping
    remote_error,         // the peer received the request but could not answer it
};

const char* describe(errc e);

}  // namespace fjord::rpc
