#include "rpc/frame.h"

namespace fjord::rpc {

result<frame, errc> decode_frame(shared_bytes bytes) {
    protocol::reader r(std::move(bytes));
    frame f;
    f.header.decode(r, header_version);
    if (!r.ok()) return fail(errc::malformed);
    if (f.header.kind < 0 || f.header.kind > static_cast<int8_t>(frame_kind::one_way)) {
        return fail(errc::invalid_value);
    }
    f.body = r.slice(r.remaining());
    return f;
}

void begin_frame(protocol::writer& w, const gen::rpc_header& h) {
    FJORD_ASSERT(w.size() == 0 && w.total_size() == 0, "a frame starts in an empty writer, not at {}", w.size());
    w.i32(0);
    h.encode(w, header_version);
    FJORD_ASSERT(w.ok(), "an RPC header does not encode: {}", protocol::describe(w.error()));
}

size_t finish_frame(protocol::writer& w) {
    FJORD_ASSERT(w.size() >= 4, "finish_frame without begin_frame");
    size_t n = w.total_size() - 4;
    FJORD_ASSERT(n <= 0x7fffffff, "frame of {} bytes", n);
    w.patch_i32(0, static_cast<int32_t>(n));
    return n;
}

}  // namespace fjord::rpc
