// libFuzzer target: a request frame (header + body, without the size prefix)
// as a broker reads it from a socket. Whatever decodes must encode, and the
// encoding must be stable: decoding it again and encoding gives the same bytes.
#include <cstdint>
#include <cstdlib>

#include "protocol/gen/registry.h"
#include "protocol/gen/request_header.h"

using namespace fjord;
using namespace fjord::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    auto frame = shared_bytes::copy_of(std::span<const uint8_t>(data, size));
    reader peek(frame);
    int16_t key = peek.i16();
    int16_t version = peek.i16();
    const gen::api_info* api = gen::find_api(key);
    if (api == nullptr || version < api->min_version || version > api->max_version) return 0;
    int16_t header_version = gen::request_header_version(*api, version);

    reader r(frame);
    gen::request_header header;
    header.decode(r, header_version);
    if (!r.ok()) return 0;
    writer hw;
    header.encode(hw, header_version);
    if (!hw.ok()) std::abort();

    std::string name = std::string(api->name) + "Request";
    const gen::message_info* body = gen::find_message(name);
    if (body == nullptr) std::abort();
    auto once = body->reencode(r.slice(r.remaining()), version);
    if (!once.ok()) return 0;
    auto twice = body->reencode(shared_bytes::copy_of(*once), version);
    if (!twice.ok() || *twice != *once) std::abort();
    return 0;
}
