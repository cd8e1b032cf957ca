#include "protocol/wire.h"

#include <gtest/gtest.h>

namespace fjord::protocol {
namespace {

shared_bytes of(std::initializer_list<uint8_t> b) {
    return shared_bytes::copy_of(std::vector<uint8_t>(b));
}

TEST(wire, fixed_width_big_endian) {
    writer w;
    w.i16(0x0102);
    w.i32(-2);
    w.i64(0x0102030405060708);
    auto bytes = w.take();
    EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8}));
    reader r(shared_bytes::adopt(bytes));
    EXPECT_EQ(r.i16(), 0x0102);
    EXPECT_EQ(r.i32(), -2);
    EXPECT_EQ(r.i64(), 0x0102030405060708);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.remaining(), 0u);
}

TEST(wire, varints_match_kafka_encoding) {
    // Kafka's zig-zag varints: 0 -> 00, -1 -> 01, 1 -> 02, 300 -> d8 04.
    writer w;
    w.varint(0);
    w.varint(-1);
    w.varint(1);
    w.varint(300);
    w.uvarint(0xffffffffu);
    EXPECT_EQ(w.take(), (std::vector<uint8_t>{0, 1, 2, 0xd8, 0x04, 0xff, 0xff, 0xff, 0xff, 0x0f}));
    reader r(of({0xd8, 0x04, 0xff, 0xff, 0xff, 0xff, 0x0f}));
    EXPECT_EQ(r.varint(), 300);
    EXPECT_EQ(r.uvarint(), 0xffffffffu);
    EXPECT_TRUE(r.ok());
}

TEST(wire, varint_longer_than_five_bytes_is_an_error) {
    reader r(of({0x80, 0x80, 0x80, 0x80, 0x80, 0x01}));
    r.uvarint();
    EXPECT_EQ(r.error(), errc::varint_too_long);
}

TEST(wire, reads_past_the_end_fail_and_stick) {
    reader r(of({1, 2, 3}));
    EXPECT_EQ(r.i32(), 0);
    EXPECT_EQ(r.error(), errc::truncated);
    EXPECT_EQ(r.i8(), 0);
    EXPECT_EQ(r.error(), errc::truncated);
}

TEST(wire, lengths_never_exceed_the_remaining_bytes) {
    // An array count of 2^31-1 in a 20-byte frame is an error, not an allocation.
    reader r(of({0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(r.array_length(false), -1);
    EXPECT_EQ(r.error(), errc::length_too_large);

    reader c(of({0xff, 0xff, 0xff, 0xff, 0x07, 0}));
    EXPECT_EQ(c.array_length(true), -1);
    EXPECT_EQ(c.error(), errc::length_too_large);
}

TEST(wire, every_negative_length_is_null_as_in_kafka) {
    reader r(of({0xff, 0xff}));
    EXPECT_EQ(r.string_length(false), -1);
    EXPECT_TRUE(r.ok());
    reader minus_two(of({0xff, 0xfe}));
    EXPECT_EQ(minus_two.string_length(false), -1);
    EXPECT_TRUE(minus_two.ok());
    reader array(of({0x80, 0, 0, 0}));
    EXPECT_EQ(array.array_length(false), -1);
    EXPECT_TRUE(array.ok());
    reader compact_null(of({0}));
    EXPECT_EQ(compact_null.string_length(true), -1);
    EXPECT_TRUE(compact_null.ok());
}

TEST(wire, slices_do_not_copy) {
    auto buf = of({3, 'a', 'b', 'c'});
    reader r(buf);
    int32_t n = r.bytes_length(true);
    ASSERT_EQ(n, 2);
    auto s = r.slice(static_cast<size_t>(n));
    EXPECT_EQ(s.data(), buf.data() + 1);
}

}  // namespace
}  // namespace fjord::protocol

namespace fjord::protocol {
namespace {
TEST(wire, large_shared_bytes_are_spliced_not_copied) {
    auto big = shared_bytes::adopt(std::vector<uint8_t>(5000, 7));
    auto small = shared_bytes::adopt(std::vector<uint8_t>(10, 8));
    writer w;
    w.enable_splices(4096);
    w.i32(1);
    w.raw(big);
    w.i16(2);
    w.raw(small);
    EXPECT_EQ(w.total_size(), 4u + 5000 + 2 + 10);
    ASSERT_EQ(w.splices().size(), 1u);
    EXPECT_EQ(w.splices()[0].at, 4u);
    EXPECT_EQ(w.splices()[0].bytes.data(), big.data());  // the same buffer, not a copy
    EXPECT_EQ(w.buffer().size(), 4u + 2 + 10);
    writer plain;  // splicing is off by default: tagged-field sub-writers copy
    plain.raw(big);
    EXPECT_EQ(plain.buffer().size(), 5000u);
    EXPECT_TRUE(plain.splices().empty());
}
}  // namespace
}  // namespace fjord::protocol
