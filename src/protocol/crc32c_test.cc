#include "protocol/crc32c.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace fjord::protocol {
namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Bit-at-a-time reference (reflected polynomial 0x82F63B78).
uint32_t reference_crc32c(std::span<const uint8_t> data) {
    uint32_t crc = ~0u;
    for (uint8_t b : data) {
        crc ^= b;
        for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

TEST(crc32c, check_vector) {
    EXPECT_EQ(crc32c(as_bytes("123456789")), 0xE3069283u);
}

TEST(crc32c, empty_is_zero) {
    EXPECT_EQ(crc32c({}), 0u);
}

TEST(crc32c, matches_reference_at_every_length_and_alignment) {
    std::vector<uint8_t> data(4096 + 64);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
    for (size_t offset : {0, 1, 3, 7}) {
        for (size_t n : {0, 1, 2, 7, 8, 15, 16, 63, 64, 255, 256, 1000, 4096}) {
            auto s = std::span<const uint8_t>(data).subspan(offset, n);
            ASSERT_EQ(crc32c(s), reference_crc32c(s)) << "offset " << offset << " n " << n;
        }
    }
}

TEST(crc32c, incremental_equals_one_shot) {
    std::vector<uint8_t> data(10000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ (i >> 8));
    const uint32_t whole = crc32c(data);
    for (size_t cut : {0, 1, 17, 4096, 9999, 10000}) {
        auto s = std::span<const uint8_t>(data);
        EXPECT_EQ(crc32c(s.subspan(cut), crc32c(s.first(cut))), whole) << cut;
        crc32c_state st;
        st.update(s.first(cut));
        st.update(s.subspan(cut));
        EXPECT_EQ(st.value(), whole) << cut;
    }
}

TEST(crc32c, detects_a_flipped_bit) {
    std::vector<uint8_t> data(512, 0x5a);
    const uint32_t before = crc32c(data);
    data[300] ^= 0x10;
    EXPECT_NE(crc32c(data), before);
}

}  // namespace
}  // namespace fjord::protocol
