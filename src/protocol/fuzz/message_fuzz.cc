// libFuzzer target for every generated message (requests, responses, headers,
// embedded data): input = u16 message index, i16 version, body. Whatever
// decodes must encode, and the encoding must be stable.
#include <cstdint>
#include <cstdlib>

#include "protocol/gen/registry.h"

using namespace fjord;
using namespace fjord::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    auto all = gen::all_messages();
    size_t index = ((size_t(data[0]) << 8) | data[1]) % all.size();
    auto version = static_cast<int16_t>((data[2] << 8) | data[3]);
    const gen::message_info& m = all[index];
    auto once = m.reencode(shared_bytes::copy_of(std::span<const uint8_t>(data + 4, size - 4)), version);
    if (!once.ok()) return 0;
    auto twice = m.reencode(shared_bytes::copy_of(*once), version);
    if (!twice.ok() || *twice != *once) std::abort();
    return 0;
}
