// libFuzzer target for raft_codec alone: input = one byte choosing the Raft
// message (API key 0-8), then its body (version 0). A body that decodes must
// re-encode to bytes that decode to the same envelope, byte for byte.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "rpc/raft_codec.h"

using namespace fjord;
using namespace fjord::rpc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    api_version api{static_cast<int16_t>(data[0] % 9), 0};
    auto body = shared_bytes::copy_of(std::span<const uint8_t>(data + 1, size - 1));
    auto e = decode_raft(api, raft::node_id(1), raft::node_id(2), body);
    if (!e.ok()) return 0;
    auto once = encode_raft(*e);
    auto back = decode_raft(api, raft::node_id(1), raft::node_id(2), shared_bytes::copy_of(once));
    if (!back.ok() || encode_raft(*back) != once) std::abort();
    return 0;
}
