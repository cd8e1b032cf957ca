// raft::envelope <-> frame body: random envelopes of every kind round-trip
// field for field; the traffic of three real group_managers (elections,
// replication, a snapshot, a leadership transfer, membership changes, both
// heartbeat modes) goes through the codec on every hop; malformed bodies of
// every kind are refused, never asserted on.
#include "rpc/raft_codec.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <set>

#include "raft/memory_log.h"
#include "rpc/gen/raft_append.h"
#include "rpc/gen/raft_heartbeat_batch.h"
#include "rpc/gen/raft_snapshot.h"
#include "rpc/gen/raft_timeout_now.h"
#include "rpc/gen/raft_vote.h"
#include "rpc/raft_test_util.h"

namespace fjord::rpc {
namespace {
using namespace fjord::raft;
using test_util::describe;
using test_util::envelope_maker;

// Encodes, decodes, compares field for field and byte for byte.
envelope round_trip(const envelope& e) {
    api_version api = raft_api(e);
    EXPECT_TRUE(is_raft_api(api.key));
    auto bytes = encode_raft(e);
    auto body = shared_bytes::adopt(bytes);
    auto back = decode_raft(api, e.from, e.to, body);
    EXPECT_TRUE(back.ok()) << describe(e) << ": " << (back.ok() ? "" : rpc::describe(back.error()));
    if (!back.ok()) return e;
    EXPECT_EQ(describe(*back), describe(e));
    EXPECT_EQ(encode_raft(*back), bytes) << describe(e);
    // Payloads are views of the received body, not copies.
    if (const auto* m = std::get_if<message>(&back->body)) {
        if (const auto* a = std::get_if<append_request>(&m->body)) {
            for (const auto& en : a->entries) {
                if (en.payload.empty()) continue;
                EXPECT_GE(en.payload.data(), body.data());
                EXPECT_LE(en.payload.data() + en.payload.size(), body.data() + body.size());
            }
        }
        if (const auto* s = std::get_if<snapshot_request>(&m->body); s && !s->data.empty()) {
            EXPECT_GE(s->data.data(), body.data());
            EXPECT_LE(s->data.data() + s->data.size(), body.data() + body.size());
        }
    }
    return std::move(back.value());
}

TEST(raft_codec, random_envelopes_of_every_kind_round_trip) {
    envelope_maker mk(7);
    std::set<int16_t> keys;
    for (int i = 0; i < 9 * 300; ++i) {
        envelope e = mk.make(i % 9);
        keys.insert(raft_api(e).key);
        round_trip(e);
        if (HasFailure()) return;
    }
    EXPECT_EQ(keys.size(), 9u);
    EXPECT_FALSE(is_raft_api(9));
    EXPECT_FALSE(is_raft_api(-1));
}

// Three nodes, `n_groups` groups on all three, a perfect network through the
// codec and an instant disk, except for nodes cut off.
struct cluster {
    struct node {
        std::unique_ptr<group_manager> mgr;
        std::vector<std::unique_ptr<memory_log>> logs;
    };
    std::vector<node> nodes;
    std::set<int32_t> cut;
    std::map<int16_t, uint64_t> seen;  // api key -> envelopes that crossed the codec

    cluster(int n_groups, bool coalesce) {
        auto cfg = make_configuration({node_id(0), node_id(1), node_id(2)});
        for (int32_t n = 0; n < 3; ++n) {
            node nd;
            nd.mgr = std::make_unique<group_manager>(manager_options{node_id(n), 2, coalesce});
            for (int g = 0; g < n_groups; ++g) {
                nd.logs.push_back(std::make_unique<memory_log>());
                options o;
                o.self = node_id(n);
                o.group = group_id(g);
                o.seed = static_cast<uint64_t>(11 + g);
                persisted p;
                p.snapshot.config = cfg;
                nd.mgr->add_group(o, *nd.logs.back(), p);
            }
            nodes.push_back(std::move(nd));
        }
    }
    raft::raft& at(int32_t n, int g) { return *nodes[static_cast<size_t>(n)].mgr->group(group_id(g)); }
    int leader(int g) {
        for (int32_t n = 0; n < 3; ++n) {
            if (!cut.contains(n) && at(n, g).is_leader()) return n;
        }
        return -1;
    }
    void drain() {
        for (int round = 0; round < 1000; ++round) {
            std::vector<envelope> wire;
            for (int32_t n = 0; n < 3; ++n) {
                node& nd = nodes[static_cast<size_t>(n)];
                auto out = nd.mgr->take_ready();
                for (auto& [g, rd] : out.groups) {
                    auto& lg = *nd.logs[static_cast<size_t>(g.get())];
                    if (rd.flush_through) {
                        nd.mgr->group(g)->on_flushed(*rd.flush_through, lg.term_at(*rd.flush_through));
                    }
                }
                for (auto& e : out.messages) wire.push_back(std::move(e));
            }
            if (wire.empty()) return;
            for (auto& e : wire) {
                if (cut.contains(e.from.get()) || cut.contains(e.to.get())) continue;
                ++seen[raft_api(e).key];
                envelope back = round_trip(e);
                nodes[static_cast<size_t>(e.to.get())].mgr->step(back);
            }
        }
        FAIL() << "the network never went quiet";
    }
    void ticks(int k) {
        for (int i = 0; i < k; ++i) {
            for (auto& nd : nodes) nd.mgr->tick();
            drain();
        }
    }
    void propose(int g, int batches, std::mt19937_64& rnd) {
        int l = leader(g);
        ASSERT_GE(l, 0) << "group " << g << " has no leader";
        for (int i = 0; i < batches; ++i) {
            std::vector<uint8_t> payload(100 + rnd() % 3000, static_cast<uint8_t>(i));
            auto r = at(l, g).propose(shared_bytes::adopt(std::move(payload)), static_cast<int32_t>(1 + rnd() % 5));
            EXPECT_TRUE(r.ok());
        }
        drain();
    }
};

void exercise(cluster& c, std::mt19937_64& rnd) {
    c.ticks(80);
    for (int g = 0; g < 3; ++g) c.propose(g, 30, rnd);
    c.ticks(10);

    // A follower of group 0 misses writes and a compaction: it gets a snapshot.
    int l0 = c.leader(0);
    ASSERT_GE(l0, 0);
    int32_t lagging = (l0 + 1) % 3;
    c.cut.insert(lagging);
    c.propose(0, 30, rnd);
    c.ticks(4);
    raft::raft& leader0 = c.at(l0, 0);
    leader0.compact(leader0.commit(), shared_bytes::copy_of(std::string_view("state machine image")));
    c.cut.clear();
    c.ticks(30);
    EXPECT_EQ(c.at(lagging, 0).commit(), leader0.commit());

    // A leadership transfer in group 1 (timeout_now, a transfer vote).
    int l1 = c.leader(1);
    ASSERT_GE(l1, 0);
    EXPECT_TRUE(c.at(l1, 1).transfer_leadership(node_id((l1 + 1) % 3)).ok());
    c.ticks(30);
    EXPECT_EQ(c.leader(1), (l1 + 1) % 3);

    // Group 2 drops a voter and takes it back (configuration entries).
    int l2 = c.leader(2);
    ASSERT_GE(l2, 0);
    int32_t other = (l2 + 1) % 3;
    std::vector<node_id> two;
    for (int32_t n = 0; n < 3; ++n) {
        if (n != other) two.push_back(node_id(n));
    }
    EXPECT_TRUE(c.at(l2, 2).change_configuration(make_configuration(two)).ok());
    c.ticks(20);
    l2 = c.leader(2);
    ASSERT_GE(l2, 0);
    EXPECT_TRUE(c.at(l2, 2).change_configuration(make_configuration({node_id(0), node_id(1), node_id(2)})).ok());
    c.ticks(20);
    c.propose(2, 5, rnd);
    c.ticks(10);
}

TEST(raft_codec, real_group_manager_traffic_crosses_the_codec_unchanged) {
    std::set<int16_t> keys;
    std::mt19937_64 rnd(3);
    for (bool coalesce : {true, false}) {
        cluster c(3, coalesce);
        exercise(c, rnd);
        if (HasFailure()) return;
        for (const auto& [k, n] : c.seen) keys.insert(k);
        if (coalesce) {
            EXPECT_GT(c.seen[gen::raft_heartbeat_batch::api_key], 0u);
        } else {
            EXPECT_EQ(c.seen[gen::raft_heartbeat_batch::api_key], 0u);
        }
    }
    // Every kind of message went over the codec in real traffic.
    EXPECT_EQ(keys, (std::set<int16_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

// ---- malformed input

template <typename M>
shared_bytes encoded(const M& m) {
    protocol::writer w;
    m.encode(w, 0);
    return shared_bytes::adopt(w.take());
}

errc refused(int16_t key, const shared_bytes& body, int16_t version = 0) {
    auto r = decode_raft(api_version{key, version}, node_id(1), node_id(2), body);
    return r.ok() ? errc{} : r.error();
}

TEST(raft_codec, truncated_bodies_and_trailing_bytes_are_refused) {
    envelope_maker mk(9);
    for (int i = 0; i < 9 * 20; ++i) {
        envelope e = mk.make(i % 9);
        auto api = raft_api(e);
        auto bytes = encode_raft(e);
        for (size_t n = 0; n < bytes.size(); ++n) {
            auto cut = shared_bytes::copy_of(std::span<const uint8_t>(bytes.data(), n));
            ASSERT_EQ(refused(api.key, cut), errc::malformed) << describe(e) << " cut at " << n;
        }
        auto longer = bytes;
        longer.push_back(0);
        EXPECT_EQ(refused(api.key, shared_bytes::adopt(longer)), errc::malformed) << describe(e);
    }
}

TEST(raft_codec, unknown_keys_versions_and_self_addressed_are_refused) {
    auto body = encoded(gen::raft_timeout_now{});
    EXPECT_EQ(refused(9, body), errc::unknown_api_key);
    EXPECT_EQ(refused(-1, body), errc::unknown_api_key);
    EXPECT_EQ(refused(7, body, 1), errc::unsupported_version);
    EXPECT_EQ(refused(7, body, -1), errc::unsupported_version);
    EXPECT_EQ(decode_raft(api_version{7, 0}, node_id(3), node_id(3), body).error(), errc::invalid_value);
    EXPECT_TRUE(decode_raft(api_version{7, 0}, node_id(3), node_id(4), body).ok());
}

TEST(raft_codec, lying_lengths_are_refused_without_allocating_them) {
    // RaftAppend whose entry count claims 2^31 - 2 entries; then one whose
    // payload claims 1 GiB. Both have a handful of bytes.
    gen::raft_append a;
    a.prev_offset = 9;
    a.entries.emplace_back().base = 10;
    a.entries.back().records = 1;
    auto bytes = encoded(a);
    std::vector<uint8_t> v(bytes.data(), bytes.data() + bytes.size());
    // group 8, term 4, prev_offset 8, prev_term 4, commit 8: the entries count is at 32.
    ASSERT_EQ(v[32], 2);  // compact: count + 1
    auto lie = v;
    lie[32] = 0xff;
    lie.insert(lie.begin() + 33, {0xff, 0xff, 0xff, 0x07});
    EXPECT_EQ(refused(2, shared_bytes::adopt(lie)), errc::malformed);
    // Entry: base 8, records 4, term 4, kind 1, then the payload length.
    size_t payload_at = 33 + 8 + 4 + 4 + 1;
    ASSERT_EQ(v[payload_at], 1);  // an empty payload: length + 1
    lie = v;
    lie[payload_at] = 0x81;
    lie.insert(lie.begin() + static_cast<long>(payload_at) + 1, {0x80, 0x80, 0x80, 0x04});
    EXPECT_EQ(refused(2, shared_bytes::adopt(lie)), errc::malformed);
    EXPECT_TRUE(decode_raft(api_version{2, 0}, node_id(1), node_id(2), shared_bytes::adopt(v)).ok());
}

TEST(raft_codec, values_the_core_would_assert_on_are_refused) {
    auto valid_append = [] {
        gen::raft_append a;
        a.group = 5;
        a.term = 7;
        a.prev_offset = 99;
        a.prev_term = 3;
        a.commit = 50;
        for (int i = 0; i < 3; ++i) {
            auto& e = a.entries.emplace_back();
            e.base = 100 + 10 * i;
            e.records = 10;
            e.term = 3 + i;
        }
        return a;
    };
    ASSERT_TRUE(decode_raft(api_version{2, 0}, node_id(1), node_id(2), encoded(valid_append())).ok());
    std::vector<std::pair<std::string, gen::raft_append>> bad;
    auto add = [&bad, &valid_append](std::string what, auto change) {
        auto a = valid_append();
        change(a);
        bad.emplace_back(std::move(what), std::move(a));
    };
    add("negative group", [](auto& a) { a.group = -1; });
    add("negative term", [](auto& a) { a.term = -1; });
    add("prev offset below -1", [](auto& a) { a.prev_offset = -2; });
    add("commit below -1", [](auto& a) { a.commit = -5; });
    add("entry kind 3", [](auto& a) { a.entries[1].kind = 3; });
    add("entry kind -1", [](auto& a) { a.entries[1].kind = -1; });
    add("a gap between entries", [](auto& a) { a.entries[2].base = 121; });
    add("an overlap between entries", [](auto& a) { a.entries[2].base = 119; });
    add("first entry not after prev", [](auto& a) { a.entries[0].base = 101; });
    add("no records", [](auto& a) { a.entries[1].records = 0; });
    add("negative records", [](auto& a) { a.entries[1].records = -3; });
    add("terms going back", [](auto& a) { a.entries[2].term = 3; });
    add("entry term below prev term", [](auto& a) { a.entries[0].term = 2; });
    add("entry term above the leader's", [](auto& a) { a.entries[2].term = 8; });
    add("control entry of two records", [](auto& a) {
        a.entries[2].kind = 1;
        a.entries[2].records = 2;
    });
    add("undecodable configuration", [](auto& a) {
        a.entries[2].kind = 2;
        a.entries[2].records = 1;
        a.entries[2].payload = shared_bytes::copy_of(std::string_view("garbage"));
    });
    add("offsets past INT64_MAX", [](auto& a) {
        a.entries.resize(1);
        a.prev_offset = std::numeric_limits<int64_t>::max() - 5;
        a.entries[0].base = std::numeric_limits<int64_t>::max() - 4;
        a.entries[0].records = 10;
    });
    add("entries after INT64_MAX", [](auto& a) {
        a.entries.resize(1);
        a.prev_offset = std::numeric_limits<int64_t>::max();
        a.entries[0].base = std::numeric_limits<int64_t>::min();
    });
    for (const auto& [what, a] : bad) {
        EXPECT_EQ(refused(2, encoded(a)), errc::invalid_value) << what;
    }

    gen::raft_snapshot s;
    s.term = 4;
    s.meta.last = 10;
    s.meta.last_term = 4;
    s.meta.voters = {1, 2, 3};
    EXPECT_EQ(refused(6, encoded(s)), errc{});
    for (std::vector<int32_t> voters : {std::vector<int32_t>{}, {2, 1}, {1, 1}, {3, 2, 1}}) {
        s.meta.voters = voters;
        EXPECT_EQ(refused(6, encoded(s)), errc::invalid_value) << voters.size();
    }
    s.meta.voters = {1};
    s.meta.last_term = 5;  // newer than the leader
    EXPECT_EQ(refused(6, encoded(s)), errc::invalid_value);
    s.meta.last_term = 4;
    s.group = -7;
    EXPECT_EQ(refused(6, encoded(s)), errc::invalid_value);

    gen::raft_vote v;
    v.last_offset = -2;
    EXPECT_EQ(refused(0, encoded(v)), errc::invalid_value);
    v.last_offset = -1;
    v.last_term = -1;
    EXPECT_EQ(refused(0, encoded(v)), errc::invalid_value);

    gen::raft_heartbeat_batch b;
    b.beats.emplace_back().group = -1;
    EXPECT_EQ(refused(8, encoded(b)), errc::invalid_value);
    b.beats[0].group = 1;
    b.beats[0].commit = -2;
    EXPECT_EQ(refused(8, encoded(b)), errc::invalid_value);
    b.beats[0].commit = -1;
    b.acks.emplace_back().term = -4;
    EXPECT_EQ(refused(8, encoded(b)), errc::invalid_value);
    b.acks[0].term = 4;
    EXPECT_EQ(refused(8, encoded(b)), errc{});
}

}  // namespace
}  // namespace fjord::rpc
