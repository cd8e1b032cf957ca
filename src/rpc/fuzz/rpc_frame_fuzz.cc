// libFuzzer target for the RPC frame decoder and every message behind it:
// input = a frame after its size prefix (header + body), as the transport
// receives it. The header must decode or be refused; a one-way Raft body goes
// through raft_codec, any other body through the generated codec of its API
// key and kind. Whatever decodes must encode, and decode again to the same
// bytes.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "rpc/frame.h"
#include "rpc/gen/registry.h"
#include "rpc/raft_codec.h"

using namespace fjord;
using namespace fjord::rpc;

namespace {

void check_raft(const frame& f) {
    api_version api{f.header.api_key, f.header.api_version};
    raft::node_id from(f.header.source_node_id), to(f.header.destination_node_id);
    auto e = decode_raft(api, from, to, f.body);
    if (!e.ok()) return;
    auto api_again = raft_api(*e);
    if (api_again.key != api.key || api_again.version != api.version) std::abort();
    auto once = encode_raft(*e);
    auto back = decode_raft(api, from, to, shared_bytes::copy_of(once));
    if (!back.ok() || encode_raft(*back) != once) std::abort();
}

void check_message(const frame& f) {
    gen::message_kind kind = f.kind() == frame_kind::request    ? gen::message_kind::request
                             : f.kind() == frame_kind::response ? gen::message_kind::response
                                                                : gen::message_kind::oneway;
    const gen::message_info* m = gen::find_message(f.header.api_key, kind);
    if (m == nullptr) return;
    auto once = m->reencode(f.body, f.header.api_version);
    if (!once.ok()) return;
    auto twice = m->reencode(shared_bytes::copy_of(*once), f.header.api_version);
    if (!twice.ok() || *twice != *once) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto f = decode_frame(shared_bytes::copy_of(std::span<const uint8_t>(data, size)));
    if (!f.ok()) return 0;
    // The header re-encodes to a header that decodes to the same values.
    protocol::writer w;
    begin_frame(w, f->header);
    finish_frame(w);
    auto bytes = w.take();
    auto again = decode_frame(shared_bytes::copy_of(std::span<const uint8_t>(bytes).subspan(4)));
    if (!again.ok() || !(again->header == f->header) || !again->body.empty()) std::abort();
    if (f->kind() == frame_kind::one_way && is_raft_api(f->header.api_key)) {
        check_raft(*f);
    } else {
        check_message(*f);
    }
    return 0;
}
