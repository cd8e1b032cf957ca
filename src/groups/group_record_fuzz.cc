// libFuzzer: a __consumer_offsets record read back from disk. The input is
// split into a key and a value (first byte: the key's length); decoding
// either must fail cleanly or give a value that re-encodes and decodes to
// the same thing.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/assert.h"
#include "groups/group_records.h"

using namespace fjord::groups;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t key_len = std::min<size_t>(data[0], size - 1);
    auto key = fjord::shared_bytes::copy_of(std::span<const uint8_t>(data + 1, key_len));
    auto value = fjord::shared_bytes::copy_of(std::span<const uint8_t>(data + 1 + key_len, size - 1 - key_len));
    auto k = decode_key(key);
    if (k) {
        if (const auto* ok = std::get_if<offset_key>(&*k)) {
            auto back = decode_key(fjord::shared_bytes::adopt(encode_key(*ok)));
            FJORD_ASSERT(back && std::get<offset_key>(*back) == *ok, "an offset key does not round-trip");
        } else if (const auto* ck = std::get_if<consumer_key>(&*k)) {
            auto back = decode_key(fjord::shared_bytes::adopt(encode_key(*ck)));
            FJORD_ASSERT(back && std::get<consumer_key>(*back) == *ck, "a consumer key does not round-trip");
        } else if (const auto* gk = std::get_if<group_key>(&*k)) {
            auto back = decode_key(fjord::shared_bytes::adopt(encode_key(*gk)));
            FJORD_ASSERT(back && std::get<group_key>(*back) == *gk, "a group key does not round-trip");
        }
    }
    // Fjord writes version 3 (version 1 only with an expiry, by the committer).
    if (auto v = decode_offset_value(value); v && v->expire_timestamp == -1) {
        auto back = decode_offset_value(fjord::shared_bytes::adopt(encode_value(*v)));
        FJORD_ASSERT(back && *back == *v, "an offset value does not round-trip");
    }
    if (auto v = decode_group_value(value)) {
        auto back = decode_group_value(fjord::shared_bytes::adopt(encode_value(*v)));
        FJORD_ASSERT(back && *back == *v, "a group value does not round-trip");
    }
    if (auto e = decode_epoch_value(value)) {
        FJORD_ASSERT(decode_epoch_value(fjord::shared_bytes::adopt(encode_epoch_value(*e))).value() == *e,
                     "an epoch value does not round-trip");
    }
    if (auto v = decode_member_value(value)) {
        auto back = decode_member_value(fjord::shared_bytes::adopt(encode_value(*v)));
        FJORD_ASSERT(back && *back == *v, "a member value does not round-trip");
    }
    if (auto v = decode_target_value(value)) {
        auto back = decode_target_value(fjord::shared_bytes::adopt(encode_value(*v)));
        FJORD_ASSERT(back && *back == *v, "a target value does not round-trip");
    }
    if (auto v = decode_current_value(value)) {
        auto back = decode_current_value(fjord::shared_bytes::adopt(encode_value(*v)));
        FJORD_ASSERT(back && *back == *v, "a current assignment value does not round-trip");
    }
    group_partition(std::string_view(reinterpret_cast<const char*>(data), size), 50);
    return 0;
}
