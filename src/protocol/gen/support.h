// What the generated codecs need beyond wire.h. Hand-written; not generated.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "protocol/wire.h"

namespace fjord::protocol::gen {

inline void write_raw_tagged_field(writer& w, const raw_tagged_field& f) {
    w.uvarint(f.tag);
    w.uvarint(static_cast<uint32_t>(f.data.size()));
    w.raw(f.data);
}

// Decodes a whole message body at `version`: the version must be one the
// message has, and every byte must be consumed.
template <typename M>
result<M, errc> decode_message(shared_bytes body, int16_t version) {
    if (version < M::min_version || version > M::max_version) return fail(errc::unsupported_version);
    reader r(std::move(body));
    M m;
    m.decode(r, version);
    if (!r.ok()) return fail(r.error());
    if (r.remaining() != 0) return fail(errc::trailing_bytes);
    return m;
}

// Encodes a message body at `version`.
template <typename M>
result<std::vector<uint8_t>, errc> encode_message(const M& m, int16_t version) {
    if (version < M::min_version || version > M::max_version) return fail(errc::unsupported_version);
    writer w;
    m.encode(w, version);
    if (!w.ok()) return fail(w.error());
    return w.take();
}

}  // namespace fjord::protocol::gen
