// Kafka's varints (unsigned LEB128, and zig-zag for signed values), for
// code that appends to a byte vector: record building, compaction. The
// bounds-checked readers are in wire.h (reader) and record_batch.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fjord::protocol {

inline uint64_t zigzag(int64_t v) {
    return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

inline size_t uvarint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

inline size_t varint_size(int64_t v) {
    return uvarint_size(zigzag(v));
}

inline void put_uvarint(std::vector<uint8_t>& out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<uint8_t>(v));
}

inline void put_varint(std::vector<uint8_t>& out, int64_t v) {
    put_uvarint(out, zigzag(v));
}

}  // namespace fjord::protocol
