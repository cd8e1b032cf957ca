#include "groups/assignors.h"

#include <gtest/gtest.h>

#include <random>

namespace fjord::groups {
namespace {

// Every partition of every subscribed topic owned by exactly one subscriber.
void expect_complete(const assignor_input& in, const topic_partitions& topics,
                     const std::map<std::string, assignment>& out) {
    std::map<std::pair<std::string, int32_t>, int> owners;
    for (const auto& [id, a] : out) {
        for (const auto& [t, ps] : a) {
            EXPECT_TRUE(in.at(id).topics.count(t)) << id << " got " << t << " without subscribing";
            for (int32_t p : ps) ++owners[{t, p}];
        }
    }
    for (const auto& [t, n] : topics) {
        bool subscribed = false;
        for (const auto& [id, m] : in) subscribed |= m.topics.count(t) > 0;
        for (int32_t p = 0; p < n; ++p) EXPECT_EQ((owners[{t, p}]), (subscribed ? 1 : 0)) << t << "-" << p;
    }
}

TEST(assignors, uniform_balances_and_sticks) {
    assignor_input in;
    for (int i = 0; i < 3; ++i) in["m" + std::to_string(i)].topics = {"a", "b"};
    topic_partitions topics{{"a", 7}, {"b", 5}};
    auto out = assign_uniform(in, topics);
    expect_complete(in, topics, out);
    for (const auto& [id, a] : out) EXPECT_EQ(partition_count(a), 4u) << id;
    // A fourth member: balance within one, and most partitions stay put.
    for (auto& [id, m] : in) m.current = out[id];
    in["m3"].topics = {"a", "b"};
    auto next = assign_uniform(in, topics);
    expect_complete(in, topics, next);
    size_t kept = 0;
    for (const auto& [id, a] : next) {
        EXPECT_GE(partition_count(a), 3u);
        EXPECT_LE(partition_count(a), 3u);
        if (!out.count(id)) continue;
        for (const auto& [t, ps] : a) {
            for (int32_t p : ps) kept += out[id][t].count(p);
        }
    }
    EXPECT_EQ(kept, 9u);  // only the 3 that had to move did
}

TEST(assignors, uniform_heterogeneous_subscriptions_random) {
    std::mt19937 rng(7);
    for (int round = 0; round < 200; ++round) {
        assignor_input in;
        topic_partitions topics;
        const int nt = 1 + static_cast<int>(rng() % 4);
        for (int t = 0; t < nt; ++t) topics["t" + std::to_string(t)] = 1 + static_cast<int32_t>(rng() % 12);
        const int nm = 1 + static_cast<int>(rng() % 6);
        for (int m = 0; m < nm; ++m) {
            auto& mm = in["m" + std::to_string(m)];
            for (const auto& [t, n] : topics) {
                if (rng() % 3 != 0) mm.topics.insert(t);
            }
        }
        auto out = assign_uniform(in, topics);
        expect_complete(in, topics, out);
    }
}

TEST(assignors, range_gives_contiguous_ranges_in_member_order) {
    assignor_input in;
    in["a"].topics = {"t"};
    in["b"].topics = {"t"};
    in["c"].topics = {"t", "u"};
    topic_partitions topics{{"t", 8}, {"u", 2}, {"nobody", 3}};
    auto out = assign_range(in, topics);
    expect_complete(in, topics, out);
    EXPECT_EQ(out["a"]["t"], (std::set<int32_t>{0, 1, 2}));
    EXPECT_EQ(out["b"]["t"], (std::set<int32_t>{3, 4, 5}));
    EXPECT_EQ(out["c"]["t"], (std::set<int32_t>{6, 7}));
    EXPECT_EQ(out["c"]["u"], (std::set<int32_t>{0, 1}));
    EXPECT_TRUE(known_assignor("uniform"));
    EXPECT_TRUE(known_assignor("range"));
    EXPECT_FALSE(known_assignor("sticky"));
}

}  // namespace
}  // namespace fjord::groups
