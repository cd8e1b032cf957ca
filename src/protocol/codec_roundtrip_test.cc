// Every generated message at every version: random instances encode, decode
// to an equal value and encode again to the same bytes; cut short, they fail.
#include <gtest/gtest.h>

#include <set>

#include "protocol/gen/all.h"
#include "protocol/gen/registry.h"
#include "protocol/gen_random/random.h"

namespace fjord::protocol::gen {
namespace {

constexpr int instances_per_version = 40;

TEST(codec_roundtrip, every_message_every_version) {
    rng g(20261125);
    size_t checked = 0;
    for (const auto& info : all_random()) {
        const message_info* m = find_message(info.name);
        ASSERT_NE(m, nullptr) << info.name;
        for (int16_t v = m->min_version; v <= m->max_version; ++v) {
            for (int i = 0; i < instances_per_version; ++i) {
                auto bytes = info.random_encoded(g, v);
                auto again = m->reencode(shared_bytes::copy_of(bytes), v);
                ASSERT_TRUE(again.ok()) << info.name << " v" << v << ": " << describe(again.error());
                ASSERT_EQ(*again, bytes) << info.name << " v" << v;
                if (!bytes.empty()) {
                    std::span<const uint8_t> cut(bytes.data(), bytes.size() - 1);
                    EXPECT_NE(m->check_decode(shared_bytes::copy_of(cut), v), errc::ok)
                        << info.name << " v" << v << " decoded with its last byte missing";
                }
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 20000u);
}

TEST(codec_roundtrip, covers_every_api_key_in_the_specs) {
    std::set<int16_t> keys;
    for (const auto& m : all_messages()) {
        if (m.api_key >= 0) keys.insert(m.api_key);
    }
    // Keys 0..94 less the ones no spec folder defines.
    EXPECT_GE(keys.size(), 90u);
    for (const auto& a : all_apis()) {
        EXPECT_NE(find_message(std::string(a.name) + "Request"), nullptr) << a.name;
        EXPECT_NE(find_message(std::string(a.name) + "Response"), nullptr) << a.name;
    }
}

TEST(codec_roundtrip, unsupported_versions_are_rejected) {
    const message_info* m = find_message("ProduceRequest");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->check_decode(shared_bytes{}, static_cast<int16_t>(m->max_version + 1)), errc::unsupported_version);
    EXPECT_EQ(m->check_decode(shared_bytes{}, -1), errc::unsupported_version);
}

TEST(codec_roundtrip, decodes_a_known_metadata_request) {
    // MetadataRequest v12 (flexible): topics = [{topic_id = 0, name = "a"}],
    // allow_auto_topic_creation = true, include_topic_authorized_operations = false.
    std::vector<uint8_t> body{0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 'a', 0x00, 0x01, 0x00, 0x00};
    auto m = decode_message<metadata_request>(shared_bytes::copy_of(body), 12);
    ASSERT_TRUE(m.ok()) << describe(m.error());
    ASSERT_TRUE(m->topics.has_value());
    ASSERT_EQ(m->topics->size(), 1u);
    EXPECT_EQ((*m->topics)[0].name, "a");
    EXPECT_TRUE(m->allow_auto_topic_creation);
    auto again = encode_message(*m, 12);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, body);
}

}  // namespace
}  // namespace fjord::protocol::gen
