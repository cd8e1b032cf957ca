// request_context: one decoded request header and where it came from, and
// the encoding of a response frame (size, response header, body).
//
// Threading: lives on the connection's shard for one request.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/endian.h"
#include "base/logger.h"
#include "net/server.h"
#include "protocol/gen/registry.h"
#include "protocol/gen/support.h"

namespace fjord::kafka {

struct request_context {
    const net::connection_info& conn;
    const protocol::gen::api_info& api;
    int16_t version = 0;
    int32_t correlation_id = 0;
    std::optional<std::string> client_id;
    int64_t now_ms = 0;  // wall clock when the request started
};

// Decodes a request body. Bytes after the message are ignored, as Kafka
// ignores them; everything else must decode.
template <typename M>
result<M, protocol::errc> decode_request(shared_bytes body, int16_t version) {
    if (version < M::min_version || version > M::max_version) return fail(protocol::errc::unsupported_version);
    protocol::reader r(std::move(body));
    M m;
    m.decode(r, version);
    if (!r.ok()) return fail(r.error());
    return m;
}

// A response frame: size prefix, response header (correlation id, and the
// empty tagged-field section when the header is flexible), body at `version`.
// Record batches of at least this many bytes go out from their own buffers
// (a gather write) instead of being copied into the response.
inline constexpr size_t splice_min_bytes = 4096;

template <typename M>
net::response encode_response(const request_context& ctx, const M& body, int16_t version) {
    protocol::writer w(256);
    w.enable_splices(splice_min_bytes);
    w.u32(0);  // size, patched below
    w.i32(ctx.correlation_id);
    if (protocol::gen::response_header_version(ctx.api, version) >= 1) w.uvarint(0);
    body.encode(w, version);
    net::response r;
    if (!w.ok()) {
        // A handler bug (a value the version cannot carry): this client's
        // connection closes, the broker and every other client go on.
        log_error("{}: encoding {} v{} failed ({}); closing the connection (a Fjord bug, please report)", ctx.conn.peer,
                  M::spec_name, version, protocol::describe(w.error()));
        r.close = true;
        return r;
    }
    const size_t total = w.total_size();
    for (auto& s : w.take_splices()) r.splices.push_back({s.at, std::move(s.bytes)});
    r.frame = w.take();
    store_be<uint32_t>(r.frame.data(), static_cast<uint32_t>(total - 4));
    return r;
}

template <typename M>
net::response encode_response(const request_context& ctx, const M& body) {
    return encode_response(ctx, body, ctx.version);
}

}  // namespace fjord::kafka
