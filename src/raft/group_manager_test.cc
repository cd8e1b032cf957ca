#include "raft/group_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>

#include "raft/memory_log.h"

namespace fjord::raft {
namespace {

// Three nodes, each a group_manager with `n_groups` groups over all three; a
// perfect network and an instant disk, except for nodes cut off.
struct nodes {
    struct node {
        std::unique_ptr<group_manager> mgr;
        std::vector<std::unique_ptr<memory_log>> logs;
        std::vector<read_state> reads;
    };
    std::vector<node> all;
    std::set<int32_t> cut;  // isolated nodes: everything to or from them is lost
    std::vector<envelope> wire;
    std::map<std::pair<int32_t, int32_t>, uint64_t> batches;  // (from, to) -> heartbeat batches sent
    uint64_t group_messages = 0;

    nodes(int n_groups, bool coalesce, bool lease = false) {
        auto cfg = make_configuration({node_id(0), node_id(1), node_id(2)});
        for (int32_t n = 0; n < 3; ++n) {
            node nd;
            nd.mgr = std::make_unique<group_manager>(manager_options{node_id(n), 2, coalesce});
            for (int g = 0; g < n_groups; ++g) {
                nd.logs.push_back(std::make_unique<memory_log>());
                options o;
                o.self = node_id(n);
                o.group = group_id(g);
                o.seed = 5;
                o.lease_reads = lease;
                persisted p;
                p.snapshot.config = cfg;
                nd.mgr->add_group(o, *nd.logs.back(), p);
            }
            all.push_back(std::move(nd));
        }
    }
    raft& at(int32_t n, int g) { return *all[static_cast<size_t>(n)].mgr->group(group_id(g)); }
    void drain() {
        for (int round = 0; round < 1000; ++round) {
            bool any = false;
            for (int32_t n = 0; n < 3; ++n) {
                node& nd = all[static_cast<size_t>(n)];
                auto out = nd.mgr->take_ready();
                if (out.empty()) continue;
                any = true;
                for (auto& [g, rd] : out.groups) {
                    EXPECT_TRUE(rd.messages.empty());
                    auto& lg = *nd.logs[static_cast<size_t>(g.get())];
                    if (rd.flush_through)
                        nd.mgr->group(g)->on_flushed(*rd.flush_through, lg.term_at(*rd.flush_through));
                    for (auto& r : rd.reads) nd.reads.push_back(r);
                }
                for (auto& e : out.messages) {
                    if (is_heartbeat_batch(e)) {
                        ++batches[{e.from.get(), e.to.get()}];
                    } else {
                        ++group_messages;
                    }
                    wire.push_back(std::move(e));
                }
            }
            std::vector<envelope> now;
            now.swap(wire);
            for (auto& e : now) {
                if (cut.contains(e.from.get()) || cut.contains(e.to.get())) continue;
                all[static_cast<size_t>(e.to.get())].mgr->step(e);
                any = true;
            }
            if (!any) return;
        }
        FAIL() << "network never went quiet";
    }
    void ticks(int k) {
        for (int i = 0; i < k; ++i) {
            for (auto& nd : all) nd.mgr->tick();
            drain();
        }
    }
    int leader(int g) {
        int found = -1;
        for (int32_t n = 0; n < 3; ++n) {
            if (at(n, g).is_leader() && !cut.contains(n)) found = n;
        }
        return found;
    }
};

TEST(group_manager, idle_groups_cost_one_heartbeat_stream_per_node_pair) {
    for (int n_groups : {1, 30, 300}) {
        nodes c(n_groups, true);
        c.ticks(60);
        for (int g = 0; g < n_groups; ++g) ASSERT_GE(c.leader(g), 0) << g;
        // Idle now: count 20 rounds (40 ticks).
        c.batches.clear();
        c.group_messages = 0;
        c.ticks(40);
        EXPECT_EQ(c.group_messages, 0u) << n_groups << " groups";
        for (int32_t a = 0; a < 3; ++a) {
            for (int32_t b = 0; b < 3; ++b) {
                if (a == b) continue;
                // One batch of heartbeats (if a leads any group) and one of
                // acks (if b does) per round.
                EXPECT_LE((c.batches[{a, b}]), 40u) << n_groups << " groups, n" << a << " -> n" << b;
            }
        }
    }
}

TEST(group_manager, heartbeats_carry_commit_and_keep_quorum) {
    nodes c(20, true);
    c.ticks(60);
    int l = c.leader(3);
    ASSERT_GE(l, 0);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.at(l, 3).propose(shared_bytes::copy_of("v"), 1).ok());
    c.drain();
    c.ticks(2);  // one round: followers learn the commit offset from it
    for (int32_t n = 0; n < 3; ++n) EXPECT_EQ(c.at(n, 3).commit(), c.at(l, 3).commit()) << n;
    // A read barrier completes on coalesced acknowledgements.
    ASSERT_TRUE(c.at(l, 3).read_index(77).ok());
    c.ticks(2);
    ASSERT_EQ(c.all[static_cast<size_t>(l)].reads.size(), 1u);
    EXPECT_EQ(c.all[static_cast<size_t>(l)].reads[0].id, 77u);
    // Leaders stay leaders while idle (check-quorum counts coalesced acks).
    std::vector<int> leaders;
    for (int g = 0; g < 20; ++g) leaders.push_back(c.leader(g));
    c.ticks(100);
    for (int g = 0; g < 20; ++g) EXPECT_EQ(c.leader(g), leaders[static_cast<size_t>(g)]) << g;
    // Cut off node l: it steps down everywhere (check-quorum) and the others
    // elect new leaders.
    c.cut.insert(l);
    c.ticks(60);
    for (int g = 0; g < 20; ++g) {
        EXPECT_FALSE(c.at(l, g).is_leader()) << g;
        EXPECT_GE(c.leader(g), 0) << g;
    }
}

TEST(group_manager, lease_reads_answer_at_once_and_expire_before_a_new_leader) {
    nodes c(1, true, true);
    c.ticks(60);
    int l = c.leader(0);
    ASSERT_GE(l, 0);
    raft& old = c.at(l, 0);
    ASSERT_TRUE(old.lease_valid());
    ASSERT_TRUE(old.read_index(1).ok());
    auto out = c.all[static_cast<size_t>(l)].mgr->take_ready();
    bool answered = false;
    for (auto& [g, rd] : out.groups) {
        for (auto& r : rd.reads) answered = answered || r.id == 1;
    }
    EXPECT_TRUE(answered) << "a lease read needs no round trip";
    for (auto& e : out.messages) c.wire.push_back(std::move(e));
    c.drain();
    // Isolate the leader: until its lease expires nobody else may lead.
    c.cut.insert(l);
    bool expired = false;
    for (int i = 0; i < 100; ++i) {
        c.ticks(1);
        if (!old.lease_valid()) expired = true;
        for (int32_t n = 0; n < 3; ++n) {
            if (n != l && c.at(n, 0).is_leader()) {
                EXPECT_TRUE(expired) << "n" << n << " leads while n" << l << " holds a lease";
            }
        }
    }
    EXPECT_TRUE(expired);
    EXPECT_GE(c.leader(0), 0);
}

TEST(group_manager, lease_voter_guard_and_transfer) {
    // A restarted voter does not vote for election_ticks ticks.
    memory_log lg;
    options o;
    o.self = node_id(1);
    o.group = group_id(0);
    o.lease_reads = true;
    persisted p;
    p.snapshot.config = make_configuration({node_id(0), node_id(1), node_id(2)});
    raft r(o, lg, p);
    auto vote = [&](bool transfer) {
        r.step(message{group_id(0), node_id(2), node_id(1),
                       vote_request{false, transfer, term_id(5), no_offset, no_term}});
        for (auto& m : r.take_ready().messages) {
            if (auto* v = std::get_if<vote_reply>(&m.body)) return v->granted;
        }
        return false;
    };
    EXPECT_FALSE(vote(false));
    for (int i = 0; i < o.election_ticks; ++i) {
        // (no campaign of its own before the guard ends either)
        r.tick();
    }
    r.take_ready();
    EXPECT_TRUE(vote(false));

    // A transfer ends the old leader's lease: the target's election bypasses
    // the guard.
    nodes c(1, true, true);
    c.ticks(60);
    int l = c.leader(0);
    ASSERT_GE(l, 0);
    ASSERT_TRUE(c.at(l, 0).lease_valid());
    ASSERT_TRUE(c.at(l, 0).transfer_leadership(node_id((l + 1) % 3)).ok());
    EXPECT_FALSE(c.at(l, 0).lease_valid());
    c.drain();
    EXPECT_EQ(c.leader(0), (l + 1) % 3);
}

TEST(group_manager, without_coalescing_every_group_sends_its_own) {
    nodes c(30, false);
    c.ticks(60);
    c.batches.clear();
    c.group_messages = 0;
    c.ticks(40);
    EXPECT_TRUE(c.batches.empty());
    EXPECT_GE(c.group_messages, 30u * 2 * 20);  // 30 groups, 2 followers, 20 rounds, plus replies
}

}  // namespace
}  // namespace fjord::raft
