// Helpers shared by the storage tests, tools and benchmarks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/record_batch.h"

namespace fjord::storage::testing {

// An uncompressed batch of `records` records of `value_bytes` each, values
// derived from `seed`; timestamps from `timestamp_ms` up.
inline std::vector<uint8_t> make_batch(int records, size_t value_bytes, uint64_t seed, int64_t timestamp_ms,
                                       protocol::codec c = protocol::codec::none) {
    protocol::batch_options o;
    o.compression = c;
    protocol::batch_builder b(o);
    std::vector<uint8_t> value(value_bytes);
    std::string key;
    for (int i = 0; i < records; ++i) {
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i);
        for (auto& v : value) {
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdull;
            v = static_cast<uint8_t>(x);
        }
        key = "k" + std::to_string(seed) + "-" + std::to_string(i);
        b.add(timestamp_ms + i, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size()),
              std::span<const uint8_t>(value));
    }
    auto built = b.build();
    FJORD_ASSERT(built.ok(), "batch build failed");
    return std::move(built).value();
}

}  // namespace fjord::storage::testing
