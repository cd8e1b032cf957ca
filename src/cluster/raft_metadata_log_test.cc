// The Raft metadata log over real files and a real io_engine: three nodes
// in one thread, their envelopes carried by a queue that can drop a node's
// traffic (a crash), each node's controller on top. Elections, the cluster
// id from the first leader, commits applied on every node, a leader killed
// and restarted from its files, the quorum state kept across restarts.
#include "cluster/raft_metadata_log.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <deque>
#include <filesystem>
#include <thread>

#include "cluster/controller.h"
#include "storage/test_loop.h"

namespace fjord::cluster {
namespace {

namespace fs = std::filesystem;
using storage::testing::test_loop;

class raft_metadata_log_test : public ::testing::Test {
protected:
    static constexpr int nodes = 3;

    void SetUp() override {
        dir_ = fs::temp_directory_path() / fmt::format("fjord-raft-meta-{}-{}", ::getpid(),
                                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        engine_ = storage::io_engine::create();
        ASSERT_NE(engine_, nullptr);
        for (int i = 1; i <= nodes; ++i) start(i);
    }
    void TearDown() override {
        for (int i = 1; i <= nodes; ++i) stop(i, false);
        engine_->stop();
        loop_.drain();
        fs::remove_all(dir_);
    }

    void start(int id) {
        raft_metadata_log_options o;
        o.dir = (dir_ / fmt::format("node-{}", id)).string();
        o.node_id = id;
        o.voters = {1, 2, 3};
        o.election_ticks = 10;
        o.heartbeat_ticks = 2;
        o.seed = static_cast<uint64_t>(id) * 7919 + seed_;
        auto post = [this](std::function<void()> f) { loop_.post(std::move(f)); };
        auto send = [this](raft::envelope e) { net_.push_back(std::move(e)); };
        std::string detail;
        auto l = raft_metadata_log::open(o, *engine_, post, send, detail);
        ASSERT_TRUE(l.ok()) << detail;
        logs_[id] = l->get();
        controller_config cfg;
        cfg.node_id = id;
        cfg.random_seed = static_cast<uint64_t>(id);
        auto c = controller::open(std::move(l).value(), cfg, post, detail);
        ASSERT_TRUE(c.ok()) << detail;
        ctl_[id] = std::move(c).value();
    }
    // A crash (drop everything) or a clean stop.
    void stop(int id, bool clean) {
        if (!ctl_[id]) return;
        logs_[id]->abandon();
        run_until([&] { return ctl_[id]->idle() && logs_[id]->idle(); });
        if (clean) {
            ASSERT_TRUE(logs_[id]->close().ok());
        }
        ctl_[id].reset();
        logs_[id] = nullptr;
    }

    // Ticks every live node every 2 ms of wall time, delivers envelopes and
    // completions, until `pred` holds (false after 10 s).
    bool run_until(const std::function<bool()>& pred) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        auto next_tick = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() < deadline) {
            loop_.drain();
            while (!net_.empty()) {
                raft::envelope e = std::move(net_.front());
                net_.pop_front();
                const int to = e.to.get();
                if (to >= 1 && to <= nodes && logs_[to]) logs_[to]->step(e);
                loop_.drain();
            }
            if (pred()) return true;
            if (std::chrono::steady_clock::now() >= next_tick) {
                next_tick += std::chrono::milliseconds(2);
                for (int i = 1; i <= nodes; ++i) {
                    if (logs_[i]) logs_[i]->tick();
                }
            } else {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
        }
        return pred();
    }
    int writable_node() {
        for (int i = 1; i <= nodes; ++i) {
            if (logs_[i] && logs_[i]->writable()) return i;
        }
        return 0;
    }
    std::optional<errc> create(int via, std::string name) {
        std::optional<std::vector<topic_outcome>> out;
        ctl_[via]->create_topics({topic_spec{std::move(name), 1, 1, {}}},
                                 [&out](std::vector<topic_outcome> o, controller::image_ptr) { out = std::move(o); });
        EXPECT_TRUE(run_until([&] { return out.has_value(); }));
        return out && out->size() == 1 ? (*out)[0].error : errc::io_error;
    }
    // Registers node `id` as a broker at the writable controller and unfences it.
    void register_broker(int id) {
        const int w = writable_node();
        ASSERT_NE(w, 0);
        std::optional<result<int64_t, errc>> epoch;
        register_broker_record reg;
        reg.node_id = id;
        ctl_[w]->register_broker(reg, [&epoch](result<int64_t, errc> r) { epoch = r; });
        ASSERT_TRUE(run_until([&] { return epoch.has_value(); }));
        ASSERT_TRUE(epoch->ok());
        std::optional<result<controller::heartbeat_reply, errc>> hb;
        ctl_[w]->broker_heartbeat(id, epoch->value(), epoch->value(), 0,
                                  [&hb](result<controller::heartbeat_reply, errc> r) { hb = r; });
        ASSERT_TRUE(run_until([&] { return hb.has_value(); }));
        ASSERT_TRUE(hb->ok());
    }

    fs::path dir_;
    uint64_t seed_ = 1;
    test_loop loop_;
    std::unique_ptr<storage::io_engine> engine_;
    std::deque<raft::envelope> net_;
    raft_metadata_log* logs_[nodes + 1] = {};
    std::unique_ptr<controller> ctl_[nodes + 1];
};

TEST_F(raft_metadata_log_test, elects_one_controller_that_names_the_cluster_and_every_node_applies_its_changes) {
    ASSERT_TRUE(run_until([&] {
        if (writable_node() == 0) return false;
        for (int i = 1; i <= nodes; ++i) {
            if (ctl_[i]->image()->cluster_id().empty()) return false;
        }
        return true;
    }));
    const int leader = writable_node();
    const std::string id = ctl_[leader]->image()->cluster_id();
    EXPECT_EQ(id.size(), 22u);
    for (int i = 1; i <= nodes; ++i) {
        EXPECT_EQ(ctl_[i]->image()->cluster_id(), id) << "node " << i;
        EXPECT_EQ(logs_[i]->leader(), std::optional<int32_t>(leader)) << "node " << i;
        if (i != leader) {
            EXPECT_FALSE(logs_[i]->writable()) << "node " << i;
        }
    }
    register_broker(leader);
    // Only the active controller writes; the others say so.
    const int other = leader % nodes + 1;
    ASSERT_TRUE(run_until([&] { return ctl_[other]->image()->live_brokers().size() == 1; }));
    EXPECT_EQ(create(other, "refused"), errc::not_controller);
    EXPECT_EQ(create(leader, "orders"), std::nullopt);
    ASSERT_TRUE(run_until([&] {
        for (int i = 1; i <= nodes; ++i) {
            if (!ctl_[i]->image()->find_topic("orders")) return false;
        }
        return true;
    }));
    for (int i = 1; i <= nodes; ++i) {
        EXPECT_EQ(ctl_[i]->image()->last_offset(), ctl_[leader]->image()->last_offset()) << "node " << i;
        const auto* b = ctl_[i]->image()->find_broker(leader);
        ASSERT_NE(b, nullptr) << "node " << i;
        EXPECT_FALSE(b->fenced);
    }
}

TEST_F(raft_metadata_log_test, a_killed_leader_is_replaced_and_catches_up_after_a_restart) {
    ASSERT_TRUE(run_until([&] { return writable_node() != 0; }));
    const int first = writable_node();
    register_broker(first);
    ASSERT_EQ(create(first, "before"), std::nullopt);
    const int32_t term = logs_[first]->term();
    stop(first, false);  // kill -9: nothing more from it
    ASSERT_TRUE(run_until([&] { return writable_node() != 0 && writable_node() != first; }));
    const int second = writable_node();
    EXPECT_GT(logs_[second]->term(), term);
    register_broker(second);
    ASSERT_EQ(create(second, "after"), std::nullopt);
    EXPECT_EQ(create(second, "before"), errc::topic_already_exists) << "the new leader lost a committed change";
    start(first);
    ASSERT_TRUE(run_until([&] { return ctl_[first]->image()->find_topic("after") != nullptr; }));
    EXPECT_NE(ctl_[first]->image()->find_topic("before"), nullptr);
    EXPECT_GE(logs_[first]->term(), logs_[second]->term());
    EXPECT_FALSE(logs_[first]->writable());
}

TEST_F(raft_metadata_log_test, the_vote_survives_a_restart) {
    ASSERT_TRUE(run_until([&] { return writable_node() != 0; }));
    for (int i = 1; i <= nodes; ++i) stop(i, true);
    const fs::path state = dir_ / "node-1" / "quorum-state";
    ASSERT_TRUE(fs::exists(state));
    EXPECT_EQ(fs::file_size(state), 128u) << "two slots";
    for (int i = 1; i <= nodes; ++i) start(i);
    // A restarted node starts in the term it had: never behind a vote it gave.
    ASSERT_TRUE(run_until([&] { return writable_node() != 0; }));
    EXPECT_GE(logs_[writable_node()]->term(), 2);
}

TEST_F(raft_metadata_log_test, a_torn_or_corrupt_quorum_state_is_refused_not_trusted) {
    ASSERT_TRUE(run_until([&] { return writable_node() != 0; }));
    stop(1, true);
    const fs::path state = dir_ / "node-1" / "quorum-state";
    {
        // Both slots garbage: the vote cannot be trusted.
        std::FILE* f = std::fopen(state.c_str(), "r+b");
        ASSERT_NE(f, nullptr);
        std::vector<uint8_t> junk(128, 0x5a);
        ASSERT_EQ(std::fwrite(junk.data(), 1, junk.size(), f), junk.size());
        std::fclose(f);
    }
    raft_metadata_log_options o;
    o.dir = (dir_ / "node-1").string();
    o.node_id = 1;
    o.voters = {1, 2, 3};
    std::string detail;
    auto l = raft_metadata_log::open(
        o, *engine_, [this](std::function<void()> f) { loop_.post(std::move(f)); }, [](raft::envelope) {}, detail);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.error(), errc::metadata_offline);
    EXPECT_NE(detail.find("quorum-state"), std::string::npos) << detail;
}

TEST_F(raft_metadata_log_test, envelopes_that_lie_are_dropped_not_asserted) {
    ASSERT_TRUE(run_until([&] { return writable_node() != 0; }));
    auto* l = logs_[1];
    const uint64_t before = l->dropped_envelopes();
    // Addressed to another node; from itself; a group other than 0; entries
    // that do not follow each other; a snapshot nobody may send.
    raft::message m{metadata_group, raft::node_id(2), raft::node_id(1), raft::heartbeat_request{}};
    l->step(raft::envelope{raft::node_id(2), raft::node_id(3), m});
    l->step(raft::envelope{raft::node_id(1), raft::node_id(1), m});
    raft::message g = m;
    g.group = raft::group_id(7);
    l->step(raft::envelope{raft::node_id(2), raft::node_id(1), g});
    raft::append_request a;
    a.term = raft::term_id(1000);
    a.prev_offset = raft::offset(0);
    a.entries.push_back(raft::entry{raft::offset(5), 1, raft::term_id(1000), raft::entry_kind::leader_change, {}});
    l->step(raft::envelope{raft::node_id(2), raft::node_id(1),
                           raft::message{metadata_group, raft::node_id(2), raft::node_id(1), a}});
    raft::snapshot_request s;
    s.term = raft::term_id(1000);
    l->step(raft::envelope{raft::node_id(2), raft::node_id(1),
                           raft::message{metadata_group, raft::node_id(2), raft::node_id(1), s}});
    EXPECT_EQ(l->dropped_envelopes(), before + 5);
    EXPECT_LT(l->term(), 1000) << "a lying envelope moved the term";
}

}  // namespace
}  // namespace fjord::cluster
