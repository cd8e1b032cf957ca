#include "protocol/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>

namespace fjord::protocol {

uint32_t crc32c(std::span<const uint8_t> data, uint32_t seed) {
    // ISA-L works on the raw (un-inverted) register and takes an int length;
    // Kafka's CRC32C is the usual reflected CRC with ~0 in and ~0 out.
    uint32_t reg = ~seed;
    const uint8_t* p = data.data();
    size_t n = data.size();
    constexpr size_t chunk = size_t{1} << 30;
    while (n > 0) {
        size_t k = std::min(n, chunk);
        // crc32_iscsi does not write through its pointer; the API lacks const.
        reg = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(k), reg);
        p += k;
        n -= k;
    }
    return ~reg;
}

}  // namespace fjord::protocol
