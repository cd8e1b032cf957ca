#include "raft/raft.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "raft/memory_log.h"
#include "raft/sim.h"

namespace fjord::raft {
namespace {

// A perfect network and an instant disk: deliver everything in order.
struct cluster {
    struct member {
        memory_log lg;
        std::unique_ptr<raft> core;
        std::vector<read_state> reads;
        std::optional<snapshot_meta> installed;
    };
    std::map<int32_t, std::unique_ptr<member>> members;
    std::vector<message> wire;

    explicit cluster(int n, options base = {}) : base_opts(base) {
        std::vector<node_id> ids;
        for (int i = 0; i < n; ++i) ids.push_back(node_id(i));
        for (int i = 0; i < n; ++i) add(i, make_configuration(ids));
    }
    options base_opts;
    void add(int i, const configuration& c) {
        auto m = std::make_unique<member>();
        options o = base_opts;
        o.self = node_id(i);
        o.group = group_id(7);
        o.seed = 42;
        persisted p;
        p.snapshot.config = c;
        m->core = std::make_unique<raft>(o, m->lg, p);
        members[i] = std::move(m);
    }
    raft& at(int i) { return *members.at(i)->core; }
    void drain_all() {
        for (int round = 0; round < 1000; ++round) {
            bool any = false;
            for (auto& [id, m] : members) {
                ready rd = m->core->take_ready();
                if (rd.empty()) continue;
                any = true;
                for (auto& msg : rd.messages) wire.push_back(std::move(msg));
                if (rd.flush_through) m->core->on_flushed(*rd.flush_through, m->lg.term_at(*rd.flush_through));
                for (auto& r : rd.reads) m->reads.push_back(r);
                if (rd.snapshot) m->installed = rd.snapshot->first;
            }
            std::vector<message> now;
            now.swap(wire);
            for (auto& msg : now) {
                auto it = members.find(msg.to.get());
                if (it != members.end()) it->second->core->step(msg);
                any = true;
            }
            if (!any) return;
        }
    }
    void ticks(int n) {
        for (int i = 0; i < n; ++i) {
            for (auto& [id, m] : members) m->core->tick();
            drain_all();
        }
    }
    int leader() {
        int found = -1;
        for (auto& [id, m] : members) {
            if (m->core->is_leader()) {
                EXPECT_EQ(found, -1);
                found = id;
            }
        }
        return found;
    }
};

TEST(raft, single_node_elects_itself_and_commits) {
    cluster c(1);
    c.ticks(25);
    ASSERT_EQ(c.leader(), 0);
    auto off = c.at(0).propose(shared_bytes::copy_of("hello"), 3);
    ASSERT_TRUE(off.ok());
    c.drain_all();
    EXPECT_EQ(c.at(0).commit(), *off + 2);
}

// The shortest timeouts a driver may choose (a quorum of one elects itself
// within two ticks): a leader whose lease would be zero ticks long keeps no
// heartbeat round at all (it used to read the front of an empty queue).
TEST(raft, shortest_election_timeout_with_no_lease) {
    options o;
    o.election_ticks = 2;
    o.heartbeat_ticks = 1;
    cluster c(1, o);
    c.ticks(50);
    ASSERT_EQ(c.leader(), 0);
    auto off = c.at(0).propose(shared_bytes::copy_of("x"), 1);
    ASSERT_TRUE(off.ok());
    c.drain_all();
    c.ticks(50);
    EXPECT_EQ(c.at(0).commit(), *off);
}

TEST(raft, three_nodes_replicate_read_and_transfer) {
    cluster c(3);
    c.ticks(40);
    int l = c.leader();
    ASSERT_GE(l, 0);
    term_id t = c.at(l).term();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.at(l).propose(shared_bytes::copy_of("v"), 1).ok());
    c.drain_all();
    c.ticks(3);
    for (auto& [id, m] : c.members) {
        EXPECT_EQ(m->core->commit(), c.at(l).commit()) << id;
        EXPECT_EQ(m->lg.next(), c.at(l).get_log().next());
    }
    ASSERT_TRUE(c.at(l).read_index(9).ok());
    c.drain_all();
    ASSERT_EQ(c.members[l]->reads.size(), 1u);
    EXPECT_EQ(c.members[l]->reads[0].index, c.at(l).commit());

    int target = (l + 1) % 3;
    ASSERT_TRUE(c.at(l).transfer_leadership(node_id(target)).ok());
    c.drain_all();
    EXPECT_EQ(c.leader(), target);
    EXPECT_GT(c.at(target).term(), t);
    EXPECT_EQ(c.at(l).propose(shared_bytes::copy_of("x"), 1).error(), errc::not_leader);
}

TEST(raft, lagging_follower_catches_up_from_snapshot) {
    cluster c(3);
    c.ticks(40);
    int l = c.leader();
    ASSERT_GE(l, 0);
    int lagging = (l + 1) % 3;
    auto saved = std::move(c.members[lagging]);
    c.members.erase(lagging);
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.at(l).propose(shared_bytes::copy_of("v"), 2).ok());
    c.drain_all();
    offset commit = c.at(l).commit();
    c.at(l).compact(commit, shared_bytes::copy_of("state"));
    EXPECT_EQ(c.at(l).get_log().start(), commit + 1);
    c.members[lagging] = std::move(saved);
    c.ticks(10);
    ASSERT_TRUE(c.members[lagging]->installed.has_value());
    EXPECT_EQ(c.members[lagging]->installed->last, commit);
    EXPECT_EQ(c.at(lagging).commit(), c.at(l).commit());
}

TEST(raft, membership_change_one_voter_at_a_time) {
    cluster c(3);
    c.ticks(40);
    int l = c.leader();
    ASSERT_GE(l, 0);
    c.add(3, c.at(l).config());
    auto next = make_configuration({node_id(0), node_id(1), node_id(2), node_id(3)});
    ASSERT_TRUE(c.at(l).change_configuration(next).ok());
    EXPECT_EQ(c.at(l).change_configuration(next).error(), errc::config_change_in_progress);
    c.ticks(10);
    EXPECT_EQ(c.at(3).config(), next);
    EXPECT_EQ(c.at(3).commit(), c.at(l).commit());
    auto two = make_configuration({node_id(0), node_id(1)});
    EXPECT_EQ(c.at(l).change_configuration(two).error(), errc::invalid_config_change);
}

TEST(raft, simulator_smoke) {
    for (uint64_t seed = 1; seed <= 5; ++seed) {
        sim::config cfg;
        cfg.seed = seed;
        auto out = sim::run(cfg);
        EXPECT_TRUE(out.ok) << "seed " << seed << ": " << out.failure;
        EXPECT_GT(out.counters.elections, 0u);
        EXPECT_GT(out.counters.committed_batches, 0u);
    }
}

}  // namespace
}  // namespace fjord::raft
