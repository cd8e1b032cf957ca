// The generated RPC messages and the frame layout: every message round-trips
// and fails cut short, the API table is Fjord's own numbering, and the frame
// header's bytes are pinned (a change to them breaks mixed-version clusters).
#include <gtest/gtest.h>

#include <set>

#include "rpc/frame.h"
#include "rpc/gen/all.h"
#include "rpc/gen/raft_append.h"
#include "rpc/gen/raft_heartbeat_batch.h"
#include "rpc/gen/registry.h"
#include "rpc/gen_random/random.h"

namespace fjord::rpc {
namespace {

TEST(rpc_codec, every_message_round_trips_and_fails_cut_short) {
    gen::rng g(20261126);
    size_t checked = 0;
    for (const auto& info : gen::all_random()) {
        const gen::message_info* m = gen::find_message(info.name);
        ASSERT_NE(m, nullptr) << info.name;
        for (int16_t v = m->min_version; v <= m->max_version; ++v) {
            for (int i = 0; i < 200; ++i) {
                auto bytes = info.random_encoded(g, v);
                auto again = m->reencode(shared_bytes::copy_of(bytes), v);
                ASSERT_TRUE(again.ok()) << info.name << " v" << v << ": " << protocol::describe(again.error());
                ASSERT_EQ(*again, bytes) << info.name << " v" << v;
                ASSERT_FALSE(bytes.empty());
                for (size_t cut : {size_t{0}, bytes.size() / 2, bytes.size() - 1}) {
                    std::span<const uint8_t> part(bytes.data(), cut);
                    EXPECT_NE(m->check_decode(shared_bytes::copy_of(part), v), protocol::errc::ok)
                        << info.name << " v" << v << " decoded from " << cut << " of " << bytes.size() << " bytes";
                }
                auto longer = bytes;
                longer.push_back(0);
                EXPECT_EQ(m->check_decode(shared_bytes::copy_of(longer), v), protocol::errc::trailing_bytes)
                    << info.name;
                ++checked;
            }
        }
    }
    EXPECT_EQ(checked, 20u * 200u);
}

TEST(rpc_codec, api_keys_are_fjords_own_from_zero) {
    std::set<int16_t> keys;
    for (const auto& a : gen::all_apis()) {
        EXPECT_TRUE(keys.insert(a.key).second) << a.key;
        EXPECT_EQ(a.advertised_min, -1) << a.name << ": RPC versions are never advertised to Kafka clients";
        EXPECT_EQ(a.first_flexible, 0) << a.name;
        bool one_way = gen::find_message(a.key, gen::message_kind::oneway) != nullptr;
        bool request = gen::find_message(a.key, gen::message_kind::request) != nullptr;
        bool response = gen::find_message(a.key, gen::message_kind::response) != nullptr;
        EXPECT_TRUE(one_way ? !request && !response : request && response) << a.name;
        EXPECT_EQ(one_way, a.key <= 8) << a.name << ": keys 0-8 are the Raft messages, all one-way";
    }
    ASSERT_FALSE(keys.empty());
    EXPECT_EQ(*keys.begin(), 0);
    EXPECT_EQ(static_cast<size_t>(*keys.rbegin()) + 1, keys.size()) << "keys are contiguous";
    EXPECT_EQ(gen::find_api(gen::forward_request::api_key)->name, "Forward");
}

TEST(rpc_codec, frame_header_bytes_are_pinned) {
    gen::rpc_header h;
    h.api_key = 9;
    h.api_version = 0;
    h.correlation_id = 0x01020304;
    h.kind = static_cast<int8_t>(frame_kind::request);
    h.source_node_id = 1;
    h.destination_node_id = 2;
    h.cluster_id = "c";
    protocol::writer w;
    begin_frame(w, h);
    w.raw(std::string_view("body"));
    EXPECT_EQ(finish_frame(w), w.size() - 4);
    std::vector<uint8_t> want{0,   0,   0,   24,              // size
                              0,   9,   0,   0,               // api key, version
                              1,   2,   3,   4,               // correlation id
                              0,                              // kind
                              0,   0,   0,   1,  0, 0, 0, 2,  // source, destination
                              2,   'c',                       // cluster id (compact string)
                              0,                              // no tagged fields
                              'b', 'o', 'd', 'y'};
    EXPECT_EQ(w.buffer(), want);

    auto f = decode_frame(shared_bytes::copy_of(std::span<const uint8_t>(want).subspan(4)));
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->header, h);
    EXPECT_EQ(f->kind(), frame_kind::request);
    EXPECT_EQ(f->body, shared_bytes::copy_of(std::string_view("body")));
}

TEST(rpc_codec, a_response_error_code_is_a_tagged_field_absent_when_zero) {
    gen::rpc_header h;
    h.kind = static_cast<int8_t>(frame_kind::response);
    h.cluster_id.reset();
    auto plain = gen::encode_message(h, header_version);
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(plain->size(), 19u);  // 2+2+4+1+4+4, a null cluster id, no tags
    h.error_code = static_cast<int16_t>(header_error::unknown_api_key);
    auto tagged = gen::encode_message(h, header_version);
    ASSERT_TRUE(tagged.ok());
    EXPECT_EQ(tagged->size(), plain->size() + 4);  // tag, size, int16
    auto back = gen::decode_message<gen::rpc_header>(shared_bytes::copy_of(*tagged), header_version);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->error_code, 1);
}

TEST(rpc_codec, decode_frame_refuses_bad_headers) {
    EXPECT_EQ(decode_frame(shared_bytes{}).error(), errc::malformed);
    gen::rpc_header h;
    for (int8_t kind : {int8_t{-1}, int8_t{3}, int8_t{127}}) {
        h.kind = kind;
        protocol::writer w;
        begin_frame(w, h);
        finish_frame(w);
        auto bytes = w.take();
        auto f = decode_frame(shared_bytes::copy_of(std::span<const uint8_t>(bytes).subspan(4)));
        EXPECT_EQ(f.error(), errc::invalid_value) << int(kind);
    }
    // A header whose cluster id claims more bytes than the frame holds.
    std::vector<uint8_t> lying{0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0x7f, 'x', 0};
    EXPECT_EQ(decode_frame(shared_bytes::copy_of(lying)).error(), errc::malformed);
}

// The sizes docs/adr/0003-node-rpc.md quotes.
TEST(rpc_codec, sizes_on_the_wire) {
    auto size_of = [](const auto& m) { return gen::encode_message(m, 0).value().size(); };
    gen::rpc_header h;
    EXPECT_EQ(4 + size_of(h), 23u);
    h.cluster_id = std::string(36, 'c');
    EXPECT_EQ(4 + size_of(h), 59u);

    gen::raft_heartbeat_batch b;
    b.beats.resize(10);
    b.acks.resize(10);
    size_t base = size_of(b);
    b.beats.emplace_back();
    EXPECT_EQ(size_of(b) - base, 29u);  // per group in the leader's batch
    b.acks.emplace_back();
    EXPECT_EQ(size_of(b) - base - 29, 22u);  // per group in the reply

    gen::raft_append a;
    a.entries.resize(3);
    base = size_of(a);
    a.entries.emplace_back().payload = shared_bytes::adopt(std::vector<uint8_t>(100));
    EXPECT_EQ(size_of(a) - base, 100u + 19u);  // an entry's own bytes beside its batch
}

}  // namespace
}  // namespace fjord::rpc
