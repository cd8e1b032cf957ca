// An RPC frame: int32 size prefix, RpcHeader (src/rpc/messages, always header
// version 0), then the body of the message the header names. Builds frames
// into a protocol::writer and splits received ones into header and body.
//
// Decoding checks the header's shape only (it decodes, Kind is 0, 1 or 2);
// whether the sender may talk to us is the transport's decision.
// Plain functions; any thread.
#pragma once

#include <cstdint>

#include "base/bytes.h"
#include "base/result.h"
#include "protocol/wire.h"
#include "rpc/errc.h"
#include "rpc/gen/rpc_header.h"

namespace fjord::rpc {

enum class frame_kind : int8_t {
    request = 0,   // expects a response with the same CorrelationId
    response = 1,  // answers a request
    one_way = 2,   // no response (Raft messages)
};

// A response header's ErrorCode (a tagged field, absent when 0): why the
// receiver could not answer; the body is then empty.
enum class header_error : int16_t {
    none = 0,
    unknown_api_key = 1,
    unsupported_version = 2,
    handler_failed = 3,
};

inline constexpr int16_t header_version = 0;

// A received frame: its header and a view of its body (not a copy).
struct frame {
    gen::rpc_header header;
    shared_bytes body;

    frame_kind kind() const { return static_cast<frame_kind>(header.kind); }
};

// Splits a frame received without its size prefix.
result<frame, errc> decode_frame(shared_bytes bytes);

// Starts a frame in an empty writer: the size prefix (patched by
// finish_frame) and the header. The caller then writes the body.
void begin_frame(protocol::writer& w, const gen::rpc_header& h);
// Patches the size prefix; returns the frame's bytes after the prefix
// (spliced bytes included).
size_t finish_frame(protocol::writer& w);

}  // namespace fjord::rpc
