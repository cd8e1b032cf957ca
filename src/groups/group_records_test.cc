#include "groups/group_records.h"

#include <gtest/gtest.h>

#include "protocol/wire.h"

namespace fjord::groups {
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
    auto other = decode_key(bytes_of({0, 16, 0, 0}));
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
}  // namespace fjord::groups

namespace fjord::groups {
namespace {

shared_bytes hex(std::string_view h) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return shared_bytes::adopt(std::move(out));
}

// Records a Kafka 4.4 broker wrote for a consumer-protocol group (one static
// member "inst-1" of librdkafka, a regex subscription, the range assignor),
// read back byte for byte: tagged fields Fjord does not write are skipped.
TEST(group_records, reads_kafka_44_consumer_group_records) {
    auto key = decode_key(hex("0005000564756d70670016385a4943726a4c61514c47737752544867304f455267"));
    ASSERT_TRUE(key);
    const auto& k = std::get<consumer_key>(*key);
    EXPECT_EQ(k.type, consumer_record::member_metadata);
    EXPECT_EQ(k.group, "dumpg");
    EXPECT_EQ(k.member, "8ZICrjLaQLGswRTHg0OERg");
    const auto raw_key = hex("0005000564756d70670016385a4943726a4c61514c47737752544867304f455267");
    EXPECT_EQ(encode_key(k), std::vector<uint8_t>(raw_key.span().begin(), raw_key.span().end()));

    auto m = decode_member_value(hex(
        "000007696e73742d31000872646b61666b610b2f3132372e302e302e310108285e64382e2a29000493e00672616e676501000100"));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->instance_id, "inst-1");
    EXPECT_FALSE(m->rack_id);
    EXPECT_EQ(m->client_id, "rdkafka");
    EXPECT_EQ(m->client_host, "/127.0.0.1");
    EXPECT_TRUE(m->topic_names.empty());
    EXPECT_EQ(m->regex, "(^d8.*)");
    EXPECT_EQ(m->rebalance_timeout, 300000);
    EXPECT_EQ(m->server_assignor, "range");

    // Group epoch 3 with the metadata hash as tagged field 0.
    auto epoch = decode_epoch_value(hex("000000000003010008f23a6995b1a02551"));
    ASSERT_TRUE(epoch);
    EXPECT_EQ(*epoch, 3);
    // Fjord writes the epoch without the tag: Kafka's own bytes minus it.
    auto mine = encode_epoch_value(2);
    EXPECT_EQ(mine, std::vector<uint8_t>({0, 0, 0, 0, 0, 2, 0}));

    auto target = decode_target_value(hex("00000250b791ef87184d938a6b6448ee7204700300000000000000010000"));
    ASSERT_TRUE(target);
    ASSERT_EQ(target->size(), 1u);
    EXPECT_EQ(target->front().second, (std::vector<int32_t>{0, 1}));
    auto again = encode_value(*target);
    EXPECT_EQ(decode_target_value(shared_bytes::adopt(again)).value(), *target);

    // Current assignment with per-partition assignment epochs (tagged).
    auto cur = decode_current_value(
        hex("00000000000300000002000250b791ef87184d938a6b6448ee7204700300000000000000010100090300000003000000030100"));
    ASSERT_TRUE(cur);
    EXPECT_EQ(cur->epoch, 3);
    EXPECT_EQ(cur->previous_epoch, 2);
    EXPECT_EQ(cur->state, 0);
    ASSERT_EQ(cur->assigned.size(), 1u);
    EXPECT_EQ(cur->assigned.front().second, (std::vector<int32_t>{0, 1}));
    EXPECT_TRUE(cur->revoking.empty());
    EXPECT_EQ(decode_current_value(shared_bytes::adopt(encode_value(*cur))).value(), *cur);
    // A static member gone for a restart: epoch -2.
    auto left = decode_current_value(
        hex("0000fffffffe00000002000250b791ef87184d938a6b6448ee7204700300000000000000010100090300000000000000000100"));
    ASSERT_TRUE(left);
    EXPECT_EQ(left->epoch, -2);
}

}  // namespace
}  // namespace fjord::groups
