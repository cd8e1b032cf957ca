#include "coordinator/group_records.h"

#include <gtest/gtest.h>

#include "protocol/wire.h"

namespace fjord::coordinator {
namespace {

shared_bytes bytes_of(std::vector<uint8_t> v) {
    return shared_bytes::adopt(std::move(v));
}

TEST(group_records, offset_commit_round_trips) {
    offset_key k{"my-group", "orders", 7};
    auto key = decode_key(bytes_of(encode_key(k)));
    ASSERT_TRUE(key);
    ASSERT_TRUE(std::holds_alternative<offset_key>(*key));
    EXPECT_EQ(std::get<offset_key>(*key), k);

    offset_value v{
        .offset = 1234, .leader_epoch = 5, .metadata = "meta", .commit_timestamp = 99, .expire_timestamp = -1};
    auto back = decode_offset_value(bytes_of(encode_value(v)));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, v);
}

TEST(group_records, group_metadata_round_trips) {
    group_value g;
    g.protocol_type = "consumer";
    g.generation = 3;
    g.protocol = "range";
    g.leader = "m-1";
    g.current_state_timestamp = 1700000000000;
    g.members.push_back({.member_id = "m-1",
                         .group_instance_id = "i-1",
                         .client_id = "c",
                         .client_host = "/127.0.0.1",
                         .rebalance_timeout = 300000,
                         .session_timeout = 45000,
                         .subscription = shared_bytes::copy_of(std::string_view("sub")),
                         .assignment = shared_bytes::copy_of(std::string_view("asg"))});
    auto key = decode_key(bytes_of(encode_key(group_key{"my-group"})));
    ASSERT_TRUE(key);
    EXPECT_EQ(std::get<group_key>(*key).group, "my-group");
    auto back = decode_group_value(bytes_of(encode_value(g)));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, g);
}

// Kafka's layout, byte for byte: OffsetCommitKey is version 1, then group,
// topic (int16 lengths) and partition.
TEST(group_records, offset_key_layout_is_kafkas) {
    auto k = encode_key(offset_key{"g", "t", 2});
    std::vector<uint8_t> want{0, 1, 0, 1, 'g', 0, 1, 't', 0, 0, 0, 2};
    EXPECT_EQ(k, want);
    auto v = encode_value(offset_value{.offset = 5, .leader_epoch = -1, .metadata = "", .commit_timestamp = 1});
    std::vector<uint8_t> want_v{0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    EXPECT_EQ(v, want_v);
}

TEST(group_records, reads_older_and_flexible_versions) {
    // OffsetCommitValue v1: offset, metadata, commit and expire timestamps.
    protocol::writer w;
    w.i16(1);
    w.i64(42);
    w.i16(2);
    w.raw(std::string_view("md"));
    w.i64(10);
    w.i64(20);
    auto v1 = decode_offset_value(bytes_of(w.take()));
    ASSERT_TRUE(v1);
    EXPECT_EQ(v1->offset, 42);
    EXPECT_EQ(v1->metadata, "md");
    EXPECT_EQ(v1->expire_timestamp, 20);
    // v4: compact string and tagged fields (one unknown tag skipped).
    protocol::writer f;
    f.i16(4);
    f.i64(7);
    f.i32(3);
    f.uvarint(3);
    f.raw(std::string_view("ab"));
    f.i64(11);
    f.uvarint(1);
    f.uvarint(0);
    f.uvarint(2);
    f.raw(std::string_view("zz"));
    auto v4 = decode_offset_value(bytes_of(f.take()));
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->offset, 7);
    EXPECT_EQ(v4->leader_epoch, 3);
    EXPECT_EQ(v4->metadata, "ab");
    EXPECT_EQ(v4->commit_timestamp, 11);
}

TEST(group_records, rejects_malformed_bytes) {
    EXPECT_FALSE(decode_key(bytes_of({0})));
    EXPECT_FALSE(decode_key(bytes_of({0, 1, 0, 50, 'a'})));
    EXPECT_FALSE(decode_offset_value(bytes_of({0, 9, 0, 0})));
    EXPECT_FALSE(decode_offset_value(bytes_of({0, 3, 0, 0})));
    // A member count far beyond the bytes: refused without allocating it.
    protocol::writer w;
    w.i16(3);
    w.i16(0);
    w.i32(1);
    w.i16(-1);
    w.i16(-1);
    w.i64(0);
    w.i32(0x7fffffff);
    EXPECT_FALSE(decode_group_value(bytes_of(w.take())));
    // Other record types (KIP-848) are recognized, not decoded.
    auto other = decode_key(bytes_of({0, 5, 0, 0}));
    ASSERT_TRUE(other);
    EXPECT_TRUE(std::holds_alternative<other_key>(*other));
}

// Java's "group".hashCode() values, modulo 50, as Kafka places groups.
TEST(group_records, partition_matches_java_hash_code) {
    // From Java 17: "test-group".hashCode() == 627841412, "my-group".hashCode() == -1906497762.
    EXPECT_EQ(group_partition("test-group", 1000), 627841412 % 1000);
    EXPECT_EQ(group_partition("my-group", 1000), 1906497762 % 1000);
    EXPECT_EQ(group_partition("", 50), 0);
    // Non-ASCII: "é" is one UTF-16 unit 0xE9; "😀" two (surrogates 0xD83D 0xDE00).
    EXPECT_EQ(group_partition("\xc3\xa9", 1000), 0xe9 % 1000);
    EXPECT_EQ(group_partition("\xf0\x9f\x98\x80", 100000), (31 * 0xd83d + 0xde00) % 100000);
}

}  // namespace
}  // namespace fjord::coordinator
