// CRC32C (Castagnoli), the checksum of Kafka record batches (magic 2).
//
// Backed by ISA-L, which picks the fastest implementation (SSE4.2 crc32
// instructions with folding) at run time. Pure functions: any thread.
#pragma once

#include <cstdint>
#include <span>

namespace fjord::protocol {

// CRC32C of `data`, continuing from `seed` (the CRC of the bytes before it;
// 0 to start). crc32c(b, crc32c(a)) == crc32c(a ++ b).
// crc32c("123456789") == 0xE3069283.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t seed = 0);

// Incremental form, for checksums over bytes that arrive in pieces.
class crc32c_state {
public:
    void update(std::span<const uint8_t> data) { crc_ = crc32c(data, crc_); }
    uint32_t value() const { return crc_; }
    void reset() { crc_ = 0; }

private:
    uint32_t crc_ = 0;
};

}  // namespace fjord::protocol
