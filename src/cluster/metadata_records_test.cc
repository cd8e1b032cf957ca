// Metadata record encoding: round trips, and untrusted bytes (every
// truncation, every byte flipped, lying lengths) fail cleanly.
#include "cluster/metadata_records.h"

#include <gtest/gtest.h>

#include <random>

namespace fjord::cluster {
namespace {

protocol::uuid id_of(uint8_t seed) {
    protocol::uuid u;
    for (size_t i = 0; i < u.bytes.size(); ++i) u.bytes[i] = static_cast<uint8_t>(seed + i * 7);
    return u;
}

std::vector<metadata_record> samples() {
    std::vector<metadata_record> v;
    v.push_back(register_cluster{"MkU3OEVBNTcwNTJENDM2Qk"});
    v.push_back(register_cluster{""});
    v.push_back(topic_record{"orders", id_of(1)});
    v.push_back(topic_record{std::string(249, 'x'), id_of(2)});
    v.push_back(partition_record{id_of(3), 0, {1}, {1}, 1, 0, 0});
    v.push_back(partition_record{id_of(4), 2'000'000'000, {1, 2, 3, 300000}, {}, -1, INT32_MAX, -5});
    v.push_back(config_record{config_resource_type::topic, "orders", "retention.ms", "1000"});
    v.push_back(config_record{config_resource_type::broker, "", "log.retention.ms", std::nullopt});
    v.push_back(config_record{config_resource_type::topic, "t", "cleanup.policy", ""});
    v.push_back(remove_topic_record{id_of(5)});
    v.push_back(partition_change_record{id_of(6), 7, std::nullopt, std::nullopt, false});
    v.push_back(partition_change_record{id_of(7), 0, 3, std::vector<int32_t>{3, 1}, true});
    v.push_back(partition_change_record{id_of(8), 1, -1, std::vector<int32_t>{}, true});
    v.push_back(producer_ids_record{1000});
    v.push_back(producer_ids_record{INT64_MAX});
    v.push_back(partition_leader_record{id_of(9), 3, 2, 7, {2, 1, 3}});
    v.push_back(partition_leader_record{id_of(9), 0, 1, INT32_MAX, {}});
    return v;
}

TEST(metadata_records, round_trip) {
    for (const auto& r : samples()) {
        auto bytes = encode(r);
        ASSERT_GE(bytes.size(), 2u);
        EXPECT_EQ(bytes[0], static_cast<uint8_t>(type_of(r)));
        EXPECT_EQ(bytes[1], current_record_version);
        std::string why;
        auto back = decode(bytes, &why);
        ASSERT_TRUE(back.ok()) << name_of(type_of(r)) << ": " << why;
        EXPECT_TRUE(*back == r) << name_of(type_of(r));
    }
}

TEST(metadata_records, every_truncation_fails) {
    for (const auto& r : samples()) {
        auto bytes = encode(r);
        for (size_t n = 0; n < bytes.size(); ++n) {
            std::string why;
            auto back = decode(std::span<const uint8_t>(bytes.data(), n), &why);
            ASSERT_FALSE(back.ok()) << name_of(type_of(r)) << " cut at " << n << " of " << bytes.size();
            EXPECT_EQ(back.error(), errc::corrupt_record);
            EXPECT_FALSE(why.empty());
        }
    }
}

TEST(metadata_records, trailing_bytes_fail) {
    for (const auto& r : samples()) {
        auto bytes = encode(r);
        bytes.push_back(0);
        std::string why;
        auto back = decode(bytes, &why);
        ASSERT_FALSE(back.ok());
        EXPECT_EQ(back.error(), errc::corrupt_record);
        EXPECT_NE(why.find("trailing"), std::string::npos) << why;
    }
}

TEST(metadata_records, unknown_type_and_future_version_are_unsupported) {
    std::vector<uint8_t> unknown_type{99, 0};
    EXPECT_EQ(decode(unknown_type).error(), errc::unsupported_version);
    std::vector<uint8_t> zero_type{0, 0};
    EXPECT_EQ(decode(zero_type).error(), errc::unsupported_version);
    auto bytes = encode(remove_topic_record{id_of(9)});
    bytes[1] = 1;  // version 1 does not exist yet
    std::string why;
    EXPECT_EQ(decode(bytes, &why).error(), errc::unsupported_version);
    EXPECT_NE(why.find("remove_topic record version 1"), std::string::npos) << why;
}

TEST(metadata_records, lying_lengths_fail_without_allocating) {
    // A string length of 2^32-1 with three bytes behind it.
    std::vector<uint8_t> s{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a', 'b', 'c'};
    EXPECT_EQ(decode(s).error(), errc::corrupt_record);
    // A replica count of 2^32-1.
    protocol::writer w;
    w.uvarint(3);
    w.uvarint(0);
    w.write_uuid(id_of(1));
    w.varint(0);
    w.uvarint(0xffffffffu);
    w.varint(1);
    EXPECT_EQ(decode(w.buffer()).error(), errc::corrupt_record);
    // A varint that never ends.
    std::vector<uint8_t> v{3, 0};
    v.insert(v.end(), 16, 0);
    v.insert(v.end(), 12, 0xff);
    EXPECT_EQ(decode(v).error(), errc::corrupt_record);
}

TEST(metadata_records, out_of_range_values_fail) {
    auto c = encode(config_record{config_resource_type::topic, "t", "k", "v"});
    c[2] = 3;  // resource type 3 (group) is not a config resource here
    std::string why;
    EXPECT_EQ(decode(c, &why).error(), errc::corrupt_record);
    EXPECT_NE(why.find("resource type"), std::string::npos) << why;

    auto p = encode(partition_change_record{id_of(1), 0, std::nullopt, std::nullopt, false});
    p.back() = 2;  // bump flag
    EXPECT_EQ(decode(p).error(), errc::corrupt_record);
}

// Every byte of every sample replaced by several values: never a crash, and
// whatever decodes round-trips.
TEST(metadata_records, mutations_fail_or_round_trip) {
    std::mt19937 rng(7);
    for (const auto& r : samples()) {
        auto bytes = encode(r);
        for (size_t i = 0; i < bytes.size(); ++i) {
            for (int k = 0; k < 8; ++k) {
                auto m = bytes;
                m[i] = static_cast<uint8_t>(rng());
                auto back = decode(m);
                if (!back) continue;
                auto again = decode(encode(*back));
                ASSERT_TRUE(again.ok());
                EXPECT_TRUE(*again == *back);
            }
        }
    }
    // Random garbage.
    for (int n = 0; n < 20000; ++n) {
        std::vector<uint8_t> g(rng() % 40);
        for (auto& b : g) b = static_cast<uint8_t>(rng());
        if (!g.empty()) g[0] = static_cast<uint8_t>(1 + rng() % 6);
        if (g.size() > 1) g[1] = 0;
        (void)decode(g);
    }
}

}  // namespace
}  // namespace fjord::cluster
