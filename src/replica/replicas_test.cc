// Partition replicas over real storage logs and a real io_engine: three
// nodes in one thread, each a shard_replicas hosting one partition group,
// their envelopes carried by a queue that can cut a node off (a crash).
// A leader is elected, takes batches the way the produce path appends them,
// acknowledges acks=all only after a majority has them, and every replica
// ends up with the same batches; a killed leader is replaced by a new term,
// its unacknowledged waiters are cancelled, and nothing acknowledged is lost.
#include "replica/replicas.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <deque>
#include <filesystem>
#include <thread>

#include "protocol/record_batch.h"
#include "storage/log_manager.h"
#include "storage/test_loop.h"

namespace fjord::replica {
namespace {

namespace fs = std::filesystem;
using storage::testing::test_loop;

constexpr raft::group_id group{(int64_t{77} << 23) | 3};

class replicas_test : public ::testing::Test {
protected:
    static constexpr int nodes = 3;

    struct node {
        std::unique_ptr<storage::log_manager> logs;
        storage::log* lg = nullptr;
        std::unique_ptr<storage::durability> dur;
        std::unique_ptr<shard_replicas> host;
        replica* rep = nullptr;
        bool up = false;
    };

    void SetUp() override {
        dir_ = fs::temp_directory_path() / fmt::format("fjord-replicas-{}-{}", ::getpid(),
                                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        engine_ = storage::io_engine::create();
        ASSERT_NE(engine_, nullptr);
        for (int i = 1; i <= nodes; ++i) start(i);
    }
    void TearDown() override {
        for (int i = 1; i <= nodes; ++i) crash(i);
        engine_->stop();
        loop_.drain();
        fs::remove_all(dir_);
    }

    void start(int id) {
        node& n = nodes_[id];
        storage::log_manager_config cfg;
        cfg.dir = (dir_ / fmt::format("node-{}", id)).string();
        cfg.node_id = id;
        auto m = storage::log_manager::open(storage::posix_file_system(), cfg, 0);
        ASSERT_TRUE(m.ok());
        n.logs = std::move(m).value();
        const storage::topic_partition tp{"orders", 3};
        n.lg = n.logs->get(tp);
        if (!n.lg) {
            storage::uuid id_bytes{};
            id_bytes[0] = 1;
            auto created = n.logs->create_log(tp, cfg.defaults, &id_bytes);
            ASSERT_TRUE(created.ok());
            n.lg = *created;
        }
        auto post = [this](std::function<void()> f) { loop_.post(std::move(f)); };
        n.dur = std::make_unique<storage::durability>(*n.lg, *engine_, post, storage::durability_config{}, 0);
        replicas_options o;
        o.self = id;
        o.election_ticks = 10;
        o.heartbeat_ticks = 2;
        o.replica_lag_time_max_ms = 100;
        o.seed = static_cast<uint64_t>(id) * 7919;
        n.host = std::make_unique<shard_replicas>(o, *engine_, post,
                                                  [this](raft::envelope e) { net_.push_back(std::move(e)); });
        auto r = n.host->add(group, *n.lg, *n.dur, {1, 2, 3}, false);
        ASSERT_TRUE(r.ok()) << r.error();
        n.rep = *r;
        n.up = true;
    }
    // kill -9: the node's state goes without a flush (the files keep what the
    // page cache has, as after a process crash).
    void crash(int id) {
        node& n = nodes_[id];
        if (!n.up) return;
        n.up = false;
        run_until([&] { return n.host->idle() && n.dur->idle(); }, 2000);
        n.host.reset();
        n.dur.reset();
        n.logs.reset();
        n.rep = nullptr;
    }

    // Ticks every live node every 2 ms (a tick is 10 ms of replica time),
    // delivers envelopes and completions, until `pred` holds.
    bool run_until(const std::function<bool()>& pred, int max_ms = 10000) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
        auto next_tick = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() < deadline) {
            loop_.drain();
            while (!net_.empty()) {
                raft::envelope e = std::move(net_.front());
                net_.pop_front();
                const int to = e.to.get();
                if (to >= 1 && to <= nodes && nodes_[to].up && nodes_[e.from.get()].up) nodes_[to].host->step(e);
                loop_.drain();
            }
            if (pred()) return true;
            if (std::chrono::steady_clock::now() >= next_tick) {
                next_tick += std::chrono::milliseconds(2);
                now_ms_ += 10;
                for (int i = 1; i <= nodes; ++i) {
                    if (nodes_[i].up) nodes_[i].host->tick(now_ms_);
                }
            } else {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
        }
        return pred();
    }
    int leader() {
        for (int i = 1; i <= nodes; ++i) {
            if (nodes_[i].up && nodes_[i].rep->writable()) return i;
        }
        return 0;
    }
    // Produces one batch of `records` records at node `id` as the produce
    // path does; the waiter's outcome lands in `*out`.
    void produce(int id, int records, bool need_commit, std::shared_ptr<std::optional<int>> out,
                 int64_t* last = nullptr) {
        node& n = nodes_[id];
        ASSERT_FALSE(n.rep->refuse_append().has_value());
        protocol::batch_builder b;
        for (int i = 0; i < records; ++i) {
            std::string v = fmt::format("value-{}-{}", id, i);
            b.add(1000 + i, std::nullopt,
                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size()));
        }
        auto bytes = b.build().value();
        storage::append_options o;
        o.leader_epoch = n.rep->term();
        auto a = n.lg->append(bytes, o);
        ASSERT_TRUE(a.ok());
        n.rep->appended(a->first_offset, records, shared_bytes::adopt(std::move(bytes)));
        n.rep->wait(a->last_offset, need_commit, [out](int err) { *out = err; });
        if (last) *last = a->last_offset;
    }
    // Every live replica's log, batch by batch (offset, epoch, bytes).
    std::vector<std::vector<uint8_t>> batches(int id, int64_t below) {
        std::vector<std::vector<uint8_t>> out;
        auto r = nodes_[id].lg->read(0, size_t{64} << 20, below);
        EXPECT_TRUE(r.ok());
        for (const auto& c : r->chunks) {
            protocol::batch_splitter split(c);
            while (auto b = split.next()) out.emplace_back(b->bytes().data(), b->bytes().data() + b->bytes().size());
        }
        return out;
    }

    fs::path dir_;
    std::unique_ptr<storage::io_engine> engine_;
    test_loop loop_;
    std::deque<raft::envelope> net_;
    node nodes_[nodes + 1];
    int64_t now_ms_ = 0;
};

TEST_F(replicas_test, a_leader_replicates_and_acknowledges_after_a_majority) {
    ASSERT_TRUE(run_until([&] { return leader() != 0; }));
    const int l = leader();
    const int32_t term = nodes_[l].rep->term();
    EXPECT_GE(term, 1);
    // Everyone in sync once the followers have caught up with the leader_change batch.
    ASSERT_TRUE(run_until([&] { return nodes_[l].rep->isr() == std::vector<int32_t>{1, 2, 3}; }));

    std::vector<std::shared_ptr<std::optional<int>>> acks;
    int64_t last = -1;
    for (int i = 0; i < 50; ++i) {
        acks.push_back(std::make_shared<std::optional<int>>());
        produce(l, 1 + i % 5, true, acks.back(), &last);
    }
    ASSERT_TRUE(
        run_until([&] { return std::all_of(acks.begin(), acks.end(), [](const auto& a) { return a->has_value(); }); }));
    for (const auto& a : acks) EXPECT_EQ(**a, 0);
    EXPECT_GE(nodes_[l].rep->high_watermark(), last + 1);
    // Every replica holds the same batches, byte for byte, with the leader's term.
    ASSERT_TRUE(run_until([&] {
        for (int i = 1; i <= nodes; ++i) {
            if (nodes_[i].rep->high_watermark() < last + 1) return false;
        }
        return true;
    }));
    const auto want = batches(l, last + 1);
    EXPECT_EQ(want.size(), 51u);  // the leader_change control batch + 50
    for (int i = 1; i <= nodes; ++i) EXPECT_EQ(batches(i, last + 1), want) << "node " << i;
    // The followers rebuilt the producers' state and the epochs from the batches.
    for (int i = 1; i <= nodes; ++i) EXPECT_EQ(nodes_[i].lg->epochs().latest_epoch(), term) << "node " << i;
}

TEST_F(replicas_test, acks_all_waits_for_a_majority_and_a_killed_leader_loses_nothing_acknowledged) {
    ASSERT_TRUE(run_until([&] { return leader() != 0; }));
    const int l = leader();
    const int32_t term = nodes_[l].rep->term();
    auto committed = std::make_shared<std::optional<int>>();
    int64_t kept = -1;
    produce(l, 3, true, committed, &kept);
    ASSERT_TRUE(run_until([&] { return committed->has_value(); }));
    ASSERT_EQ(**committed, 0);

    // One follower down: the ISR shrinks to the other two once it lags past
    // replica.lag.time.max.ms, and acks=all still commits with them.
    const int f1 = l % 3 + 1, f2 = (l + 1) % 3 + 1;
    crash(f1);
    std::vector<int32_t> two{l, f2};
    std::sort(two.begin(), two.end());
    EXPECT_TRUE(run_until([&] { return nodes_[l].rep->isr() == two; }))
        << "leader " << l << " leads: " << nodes_[l].rep->is_leader() << ", term " << nodes_[l].rep->term()
        << ", isr size " << nodes_[l].rep->isr().size() << ", node " << f2 << " term " << nodes_[f2].rep->term()
        << " leader " << nodes_[f2].rep->leader().value_or(-1);
    auto with_two = std::make_shared<std::optional<int>>();
    produce(l, 2, true, with_two, &kept);
    ASSERT_TRUE(run_until([&] { return with_two->has_value(); }));
    EXPECT_EQ(**with_two, 0);

    // Both followers down: acks=1 is answered (the leader's own fsync);
    // acks=all never is, and once the leader steps down for lack of a
    // quorum its waiter is cancelled.
    crash(f2);
    auto local = std::make_shared<std::optional<int>>();
    auto majority = std::make_shared<std::optional<int>>();
    produce(l, 2, false, local, nullptr);
    produce(l, 2, true, majority, nullptr);
    ASSERT_TRUE(run_until([&] { return local->has_value() && majority->has_value(); }));
    EXPECT_EQ(**local, 0);
    EXPECT_EQ(**majority, -ECANCELED);
    EXPECT_FALSE(nodes_[l].rep->is_leader());

    // The leader dies; the followers come back and elect a new one in a later term.
    crash(l);
    start(f1);
    start(f2);
    ASSERT_TRUE(run_until([&] { return leader() != 0; }));
    const int l2 = leader();
    EXPECT_NE(l2, l);
    EXPECT_GT(nodes_[l2].rep->term(), term);
    // What was acknowledged with acks=all is there.
    EXPECT_GE(nodes_[l2].rep->high_watermark(), kept + 1);
    auto after = std::make_shared<std::optional<int>>();
    produce(l2, 1, true, after, nullptr);
    ASSERT_TRUE(run_until([&] { return after->has_value(); }));
    EXPECT_EQ(**after, 0);

    // The old leader restarts from its files and follows: its divergent
    // suffix (acknowledged only with acks=1) is replaced by the new leader's log.
    start(l);
    ASSERT_TRUE(run_until([&] {
        return nodes_[l].rep->high_watermark() == nodes_[l2].rep->high_watermark() &&
               nodes_[l].lg->end_offset() == nodes_[l2].lg->end_offset();
    }));
    const int64_t hw = nodes_[l2].rep->high_watermark();
    EXPECT_EQ(batches(l, hw), batches(l2, hw));
    EXPECT_FALSE(nodes_[l].rep->is_leader());
}

TEST_F(replicas_test, a_follower_behind_the_leaders_log_start_catches_up_from_a_snapshot) {
    ASSERT_TRUE(run_until([&] { return leader() != 0; }));
    const int l = leader();
    const int f = l % 3 + 1, other = (l + 1) % 3 + 1;
    auto first = std::make_shared<std::optional<int>>();
    produce(l, 3, true, first, nullptr);
    ASSERT_TRUE(run_until([&] { return first->has_value() && nodes_[f].rep->high_watermark() >= 4; }));
    crash(f);

    // While it is down the leader takes 20 batches of 5 and DeleteRecords
    // moves its log start into the middle of one of them.
    std::vector<std::shared_ptr<std::optional<int>>> acks;
    int64_t last = -1;
    for (int i = 0; i < 20; ++i) {
        acks.push_back(std::make_shared<std::optional<int>>());
        produce(l, 5, true, acks.back(), &last);
    }
    ASSERT_TRUE(run_until([&] {
        return std::all_of(acks.begin(), acks.end(), [](const auto& a) { return a->has_value(); }) &&
               nodes_[other].rep->high_watermark() == last + 1;
    }));
    const int64_t lso = last - 12;  // inside the third batch from the end
    EXPECT_FALSE(nodes_[l].rep->advance_log_start(last + 2)) << "past the high watermark";
    ASSERT_TRUE(nodes_[l].rep->advance_log_start(lso));
    EXPECT_EQ(nodes_[l].lg->start_offset(), lso);
    // The other follower applies its own retention: the start of a batch.
    ASSERT_TRUE(nodes_[other].rep->advance_log_start(lso - 2));

    // The follower comes back with a log that ends before the leader's start:
    // it installs the snapshot (the storage log restarts at the batch that
    // holds the leader's log start offset, which it then takes) and follows.
    start(f);
    auto more = std::make_shared<std::optional<int>>();
    produce(l, 2, true, more, &last);
    ASSERT_TRUE(run_until([&] {
        return more->has_value() && nodes_[f].rep->high_watermark() == last + 1 &&
               nodes_[f].lg->end_offset() == last + 1;
    }));
    EXPECT_EQ(**more, 0);
    EXPECT_EQ(nodes_[f].lg->start_offset(), lso);
    const auto read_from = [&](int id, int64_t from) {
        std::vector<std::vector<uint8_t>> out;
        auto r = nodes_[id].lg->read(from, size_t{64} << 20, last + 1);
        EXPECT_TRUE(r.ok());
        if (!r.ok()) return out;
        for (const auto& c : r->chunks) {
            protocol::batch_splitter split(c);
            while (auto b = split.next()) out.emplace_back(b->bytes().data(), b->bytes().data() + b->bytes().size());
        }
        return out;
    };
    EXPECT_EQ(read_from(f, lso), read_from(l, lso));

    // Every replica restarts with a log start inside a batch and goes on.
    for (int id : {f, other, l}) {
        crash(id);
        start(id);
    }
    ASSERT_TRUE(run_until([&] { return leader() != 0; }));
    auto after = std::make_shared<std::optional<int>>();
    produce(leader(), 1, true, after, &last);
    ASSERT_TRUE(run_until([&] {
        if (!after->has_value()) return false;
        for (int i = 1; i <= nodes; ++i) {
            if (nodes_[i].rep->high_watermark() != last + 1) return false;
        }
        return true;
    }));
    EXPECT_EQ(**after, 0);
    for (int i = 1; i <= nodes; ++i) EXPECT_EQ(read_from(i, lso), read_from(l, lso)) << "node " << i;
}

TEST_F(replicas_test, a_malformed_envelope_is_dropped) {
    raft::message m;
    m.from = raft::node_id(2);
    m.to = raft::node_id(1);
    m.group = group;
    raft::append_request a;
    a.term = raft::term_id(5);
    a.prev_offset = raft::offset(-1);
    raft::entry e{raft::offset(0), 1, raft::term_id(5), raft::entry_kind::data,
                  shared_bytes::copy_of(std::string_view("junk"))};
    a.entries.push_back(e);
    m.body = a;
    nodes_[1].host->step(raft::envelope{raft::node_id(2), raft::node_id(1), m});
    EXPECT_EQ(nodes_[1].host->dropped_envelopes(), 1u);
    EXPECT_EQ(nodes_[1].lg->end_offset(), 0);
}

}  // namespace
}  // namespace fjord::replica
