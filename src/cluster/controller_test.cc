// The controller over a real metadata log: real files in a temporary
// directory, a real io_engine, and a queue standing in for shard 0's loop.
#include "cluster/controller.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "cluster/local_metadata_log.h"
#include "protocol/record_batch.h"
#include "storage/checkpoint.h"
#include "storage/test_loop.h"

namespace fjord::cluster {
namespace {

namespace fs = std::filesystem;

using storage::testing::test_loop;  // shard 0's loop

class controller_test : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / fmt::format("fjord-cluster-{}-{}", ::getpid(),
                                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        engine_ = storage::io_engine::create();
        ASSERT_NE(engine_, nullptr);
    }
    void TearDown() override {
        if (c_) {
            loop_.run([this] { return c_->idle() && c_->log().idle(); });
            c_.reset();
        }
        engine_->stop();
        fs::remove_all(dir_);
    }

    result<std::unique_ptr<controller>, errc> try_open(std::string& detail) {
        local_metadata_log_options o;
        o.dir = dir_.string();
        auto post = [this](std::function<void()> f) { loop_.post(std::move(f)); };
        auto l = local_metadata_log::open(o, *engine_, post, detail);
        if (!l) return fail(l.error());
        controller_config cfg;
        cfg.random_seed = ++seed_;
        return controller::open(std::move(l).value(), cfg, post, detail);
    }
    void open() {
        std::string detail;
        auto c = try_open(detail);
        ASSERT_TRUE(c.ok()) << describe(c.error()) << ": " << detail;
        c_ = std::move(c).value();
        // A new cluster's id comes from its first writable controller.
        loop_.run([this] { return !c_->image()->cluster_id().empty(); });
        if (!c_->image()->find_broker(1)) add_broker(1);
    }
    // Node `id` registers and heartbeats: a live broker to place partitions on.
    void add_broker(int32_t id) {
        {
            std::optional<result<int64_t, errc>> epoch;
            register_broker_record reg;
            reg.node_id = id;
            reg.endpoints.push_back(broker_endpoint{"PLAINTEXT", "localhost", 9092, 0});
            c_->register_broker(reg, [&epoch](result<int64_t, errc> r) { epoch = r; });
            loop_.run([&epoch] { return epoch.has_value(); });
            ASSERT_TRUE(epoch->ok());
            std::optional<result<controller::heartbeat_reply, errc>> hb;
            c_->broker_heartbeat(id, epoch->value(), c_->image()->last_offset(), 0,
                                 [&hb](result<controller::heartbeat_reply, errc> r) { hb = r; });
            loop_.run([&hb] { return hb.has_value(); });
            ASSERT_TRUE(hb->ok());
            ASSERT_FALSE(hb->value().fenced);
        }
    }
    // Clean shutdown (close) or a crash (just destroy).
    void stop(bool clean) {
        loop_.run([this] { return c_->idle() && c_->log().idle(); });
        if (clean) {
            ASSERT_TRUE(static_cast<local_metadata_log&>(c_->log()).close().ok());
        }
        c_.reset();
    }

    std::vector<topic_outcome> create(std::vector<topic_spec> specs, bool validate_only = false) {
        std::optional<std::vector<topic_outcome>> out;
        c_->create_topics(
            std::move(specs), [&out](std::vector<topic_outcome> o, controller::image_ptr) { out = std::move(o); },
            validate_only);
        EXPECT_FALSE(out.has_value()) << "callback ran inline";
        loop_.run([&out] { return out.has_value(); });
        return out ? *out : std::vector<topic_outcome>{};
    }
    std::optional<errc> create_one(std::string name, int32_t partitions = 1, int16_t rf = 1) {
        auto o = create({topic_spec{std::move(name), partitions, rf, {}}});
        return o.size() == 1 ? o[0].error : errc::io_error;
    }
    result<void, errc> wait_done(const std::function<void(controller::done_fn)>& start) {
        std::optional<result<void, errc>> out;
        start([&out](result<void, errc> r, controller::image_ptr) { out = r; });
        EXPECT_FALSE(out.has_value()) << "callback ran inline";
        loop_.run([&out] { return out.has_value(); });
        return *out;
    }
    std::string segment_file() const { return (dir_ / "__cluster_metadata-0" / "00000000000000000000.log").string(); }

    fs::path dir_;
    test_loop loop_;
    std::unique_ptr<storage::io_engine> engine_;
    std::unique_ptr<controller> c_;
    uint64_t seed_ = 0;
};

void expect_same_image(const metadata_image& a, const metadata_image& b) {
    EXPECT_EQ(a.cluster_id(), b.cluster_id());
    EXPECT_EQ(a.last_offset(), b.last_offset());
    ASSERT_EQ(a.topic_count(), b.topic_count());
    for (const auto& [name, t] : a.topics()) {
        const topic_info* u = b.find_topic(name);
        ASSERT_NE(u, nullptr) << name;
        EXPECT_TRUE(*t == *u) << name;
    }
    EXPECT_EQ(a.all_broker_configs(), b.all_broker_configs());
}

TEST_F(controller_test, new_cluster_gets_a_persistent_id) {
    open();
    const std::string id = c_->image()->cluster_id();
    EXPECT_EQ(id.size(), 22u);
    EXPECT_TRUE(storage::uuid_from_base64url(id).ok()) << id;
    EXPECT_TRUE(fs::exists(dir_ / "__cluster_metadata-0"));
    EXPECT_TRUE(fs::exists(dir_ / "meta.properties"));
    stop(false);  // even a crash right after open keeps it: it was fsynced
    open();
    EXPECT_EQ(c_->image()->cluster_id(), id);
}

TEST_F(controller_test, create_topics_and_restart) {
    open();
    std::vector<std::pair<controller::image_ptr, metadata_delta>> seen;
    c_->set_listener([&seen](const controller::image_ptr& img, const metadata_delta& d) { seen.emplace_back(img, d); });
    auto out = create({topic_spec{"orders", 3, 1, {{"retention.ms", "60000"}, {"cleanup.policy", "compact"}}},
                       topic_spec{"payments", -1, -1, {}}});
    ASSERT_EQ(out.size(), 2u);
    for (const auto& o : out) {
        EXPECT_FALSE(o.error) << o.name << ": " << describe(*o.error);
        EXPECT_FALSE(o.topic_id.is_zero());
    }
    EXPECT_NE(out[0].topic_id, out[1].topic_id);
    auto img = c_->image();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].first, img);
    EXPECT_EQ(seen[0].second.created.size(), 2u);
    const topic_info* t = img->find_topic("orders");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->id, out[0].topic_id);
    ASSERT_EQ(t->partitions.size(), 3u);
    for (int p = 0; p < 3; ++p) {
        EXPECT_EQ(t->partitions[p].leader, c_->node_id());
        EXPECT_EQ(t->partitions[p].leader_epoch, 0);
        EXPECT_EQ(t->partitions[p].replicas, std::vector<int32_t>{c_->node_id()});
        EXPECT_EQ(t->partitions[p].isr, std::vector<int32_t>{c_->node_id()});
    }
    EXPECT_EQ(t->configs, (config_map{{"cleanup.policy", "compact"}, {"retention.ms", "60000"}}));
    EXPECT_EQ(img->find_topic("payments")->partitions.size(), 1u);

    // More changes, then a clean restart and a crash restart: same image.
    ASSERT_TRUE(wait_done([this](auto done) { c_->create_partitions("payments", 4, done); }).ok());
    ASSERT_TRUE(wait_done([this](auto done) {
                    c_->alter_topic_configs(
                        "orders", {config_change{"retention.ms", std::nullopt}, config_change{"segment.ms", "1000"}},
                        done);
                }).ok());
    EXPECT_EQ(seen.size(), 3u);
    img = c_->image();
    EXPECT_EQ(img->find_topic("payments")->partitions.size(), 4u);
    EXPECT_EQ(img->find_topic("orders")->configs, (config_map{{"cleanup.policy", "compact"}, {"segment.ms", "1000"}}));
    stop(true);
    open();
    expect_same_image(*img, *c_->image());
    stop(false);
    open();
    expect_same_image(*img, *c_->image());
}

TEST_F(controller_test, topic_name_validation) {
    open();
    EXPECT_EQ(create_one(""), errc::invalid_topic_name);
    EXPECT_EQ(create_one("."), errc::invalid_topic_name);
    EXPECT_EQ(create_one(".."), errc::invalid_topic_name);
    EXPECT_EQ(create_one("a b"), errc::invalid_topic_name);
    EXPECT_EQ(create_one("a/b"), errc::invalid_topic_name);
    EXPECT_EQ(create_one("ä"), errc::invalid_topic_name);
    EXPECT_EQ(create_one(std::string(250, 'a')), errc::invalid_topic_name);
    EXPECT_EQ(create_one(std::string(249, 'a')), std::nullopt);
    EXPECT_EQ(create_one("..."), std::nullopt);
    EXPECT_EQ(create_one("Az09._-"), std::nullopt);

    EXPECT_EQ(create_one("my.topic"), std::nullopt);
    EXPECT_EQ(create_one("my.topic"), errc::topic_already_exists);
    EXPECT_EQ(create_one("my_topic"), errc::topic_name_collision);
    EXPECT_EQ(create_one("my_topic.x"), std::nullopt);
    EXPECT_EQ(create_one("my.topic_x"), errc::topic_name_collision);

    // Within one request: duplicates, and collisions with an earlier entry.
    auto out = create({topic_spec{"dup", 1, 1, {}}, topic_spec{"dup", 1, 1, {}}, topic_spec{"x.y", 1, 1, {}},
                       topic_spec{"x_y", 1, 1, {}}});
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0].error, errc::duplicate_topic);
    EXPECT_EQ(out[1].error, errc::duplicate_topic);
    EXPECT_EQ(out[2].error, std::nullopt);
    EXPECT_EQ(out[3].error, errc::topic_name_collision);
    EXPECT_EQ(c_->image()->find_topic("dup"), nullptr);
}

TEST_F(controller_test, partitions_replication_factor_and_configs) {
    open();
    EXPECT_EQ(create_one("p0", 0), errc::invalid_partitions);
    EXPECT_EQ(create_one("p-2", -2), errc::invalid_partitions);
    EXPECT_EQ(create_one("p-big", 1'000'000), errc::invalid_partitions);
    EXPECT_EQ(create_one("rf2", 1, 2), errc::invalid_replication_factor);
    EXPECT_EQ(create_one("rf0", 1, 0), errc::invalid_replication_factor);
    auto out = create({topic_spec{"cfg", 1, 1, {{"no.such.config", "1"}}}});
    EXPECT_EQ(out[0].error, errc::invalid_config);
    // A manual assignment: one replica list per partition, all of one size.
    out = create({topic_spec{"short", 2, 1, {}, {{1}}}, topic_spec{"uneven", 2, 1, {}, {{1}, {1, 2}}}});
    EXPECT_EQ(out[0].error, errc::invalid_replica_assignment);
    EXPECT_EQ(out[1].error, errc::invalid_replica_assignment);
    EXPECT_EQ(c_->image()->topic_count(), 0u);

    // validate_only writes nothing.
    const int64_t before = c_->log().end_offset();
    out = create({topic_spec{"v", 2, 1, {}}}, true);
    EXPECT_EQ(out[0].error, std::nullopt);
    EXPECT_EQ(c_->image()->find_topic("v"), nullptr);
    EXPECT_EQ(c_->log().end_offset(), before);

    EXPECT_EQ(create_one("t", 2), std::nullopt);
    EXPECT_EQ(wait_done([this](auto d) { c_->create_partitions("t", 2, d); }).error(), errc::invalid_partitions);
    EXPECT_EQ(wait_done([this](auto d) { c_->create_partitions("t", 1, d); }).error(), errc::invalid_partitions);
    EXPECT_EQ(wait_done([this](auto d) { c_->create_partitions("nope", 3, d); }).error(), errc::unknown_topic);
    EXPECT_EQ(wait_done([this](auto d) {
                  c_->alter_topic_configs("t", {config_change{"bogus", "1"}}, d);
              }).error(),
              errc::invalid_config);
    EXPECT_EQ(wait_done([this](auto d) { c_->alter_topic_configs("nope", {}, d); }).error(), errc::unknown_topic);
    // Deleting an absent key is a successful no-op that writes nothing.
    const int64_t end = c_->log().end_offset();
    EXPECT_TRUE(wait_done([this](auto d) {
                    c_->alter_topic_configs("t", {config_change{"retention.ms", std::nullopt}}, d);
                }).ok());
    EXPECT_EQ(c_->log().end_offset(), end);
}

TEST_F(controller_test, replicas_are_distinct_and_leaders_spread) {
    open();
    add_broker(2);
    add_broker(3);
    ASSERT_FALSE(create_one("rf3", 50, 3).has_value());
    ASSERT_FALSE(create_one("rf2", 7, 2).has_value());
    EXPECT_EQ(create_one("rf4", 1, 4), errc::invalid_replication_factor);
    // A manual assignment is taken as given, its first replica leading.
    const std::vector<std::vector<int32_t>> manual{{3, 1}, {2, 3}};
    ASSERT_EQ(create({topic_spec{"manual", 2, 2, {}, manual}})[0].error, std::nullopt);
    for (const auto& p : c_->image()->find_topic("manual")->partitions) {
        EXPECT_EQ(p.replicas, manual[static_cast<size_t>(p.partition)]);
        EXPECT_EQ(p.leader, p.replicas.front());
    }
    for (const char* name : {"rf3", "rf2"}) {
        const topic_info* t = c_->image()->find_topic(name);
        ASSERT_NE(t, nullptr);
        std::map<int32_t, int> leaders;
        for (const auto& p : t->partitions) {
            std::set<int32_t> distinct(p.replicas.begin(), p.replicas.end());
            EXPECT_EQ(distinct.size(), p.replicas.size()) << name << "-" << p.partition;
            EXPECT_EQ(p.replicas.size(), std::string_view(name) == "rf3" ? 3u : 2u);
            EXPECT_EQ(p.leader, p.replicas.front());
            ++leaders[p.leader];
        }
        // Leaders rotate over the three brokers.
        EXPECT_EQ(leaders.size(), 3u) << name;
        for (const auto& [node, count] : leaders) {
            EXPECT_LE(count, static_cast<int>(t->partitions.size() + 2) / 3) << name << ": node " << node;
        }
    }
    // A replicated partition's elected leader is recorded when its term is
    // not below the partition's, and not when it is.
    // Copies: each new image frees the topics it replaced.
    const protocol::uuid id = c_->image()->find_topic("rf3")->id;
    const partition_info p0 = c_->image()->find_topic("rf3")->partitions[0];
    const int32_t other = p0.replicas[1];
    std::optional<result<size_t, errc>> wrote;
    c_->report_leaders({partition_leader_record{id, 0, other, 5, {other, p0.replicas[0]}}},
                       [&wrote](result<size_t, errc> r) { wrote = r; });
    loop_.run([&wrote] { return wrote.has_value(); });
    ASSERT_TRUE(wrote->ok());
    EXPECT_EQ(wrote->value(), 1u);
    const auto& now = c_->image()->find_topic("rf3")->partitions[0];
    EXPECT_EQ(now.leader, other);
    EXPECT_EQ(now.leader_epoch, 5);
    wrote.reset();
    c_->report_leaders({partition_leader_record{id, 0, p0.replicas[0], 4, {p0.replicas[0]}},
                        partition_leader_record{id, 0, 99, 9, {99}}},
                       [&wrote](result<size_t, errc> r) { wrote = r; });
    loop_.run([&wrote] { return wrote.has_value(); });
    ASSERT_TRUE(wrote->ok());
    EXPECT_EQ(wrote->value(), 0u) << "a stale term and a node that is no replica are skipped";
    EXPECT_EQ(c_->image()->find_topic("rf3")->partitions[0].leader, other);
}

TEST_F(controller_test, delete_topics) {
    open();
    auto out = create({topic_spec{"a", 2, 1, {{"retention.ms", "1"}}}, topic_spec{"b", 1, 1, {}}});
    const protocol::uuid a = out[0].topic_id;
    std::optional<metadata_delta> delta;
    c_->set_listener([&delta](const controller::image_ptr&, const metadata_delta& d) { delta = d; });
    std::optional<std::vector<topic_outcome>> res;
    protocol::uuid unknown;
    unknown.bytes[0] = 9;
    c_->delete_topics({a, unknown}, [&res](std::vector<topic_outcome> o, controller::image_ptr) { res = o; });
    loop_.run([&res] { return res.has_value(); });
    ASSERT_EQ(res->size(), 2u);
    EXPECT_EQ((*res)[0].error, std::nullopt);
    EXPECT_EQ((*res)[0].name, "a");
    EXPECT_EQ((*res)[1].error, errc::unknown_topic_id);
    EXPECT_EQ(c_->image()->find_topic("a"), nullptr);
    ASSERT_TRUE(delta.has_value());
    ASSERT_EQ(delta->deleted.size(), 1u);
    EXPECT_EQ(delta->deleted[0]->partitions.size(), 2u);
    // The name is free again, with a new id and no old configs; after a restart too.
    out = create({topic_spec{"a", 1, 1, {}}});
    EXPECT_EQ(out[0].error, std::nullopt);
    EXPECT_NE(out[0].topic_id, a);
    auto img = c_->image();
    stop(false);
    open();
    expect_same_image(*img, *c_->image());
    EXPECT_TRUE(c_->image()->find_topic("a")->configs.empty());
}

TEST_F(controller_test, concurrent_requests_run_in_order) {
    open();
    std::vector<std::optional<errc>> results;
    for (int i = 0; i < 5; ++i) {
        c_->create_topics({topic_spec{"same", 1, 1, {}}},
                          [&results](std::vector<topic_outcome> o, auto) { results.push_back(o[0].error); });
    }
    loop_.run([&results] { return results.size() == 5; });
    EXPECT_EQ(results[0], std::nullopt);
    for (int i = 1; i < 5; ++i) EXPECT_EQ(results[i], errc::topic_already_exists);
}

TEST_F(controller_test, torn_tail_recovers_to_the_last_whole_change) {
    open();
    const std::string cluster_id = c_->image()->cluster_id();
    ASSERT_EQ(create_one("first", 2), std::nullopt);
    auto img = c_->image();
    ASSERT_EQ(create_one("second", 3), std::nullopt);
    stop(false);  // a crash: no clean shutdown marker, the appends lie past the recovery point
    const auto size = fs::file_size(segment_file());
    fs::resize_file(segment_file(), size - 5);  // power loss tore the last batch
    open();
    expect_same_image(*img, *c_->image());
    EXPECT_EQ(c_->image()->cluster_id(), cluster_id);
    EXPECT_EQ(c_->image()->find_topic("second"), nullptr);
    // And the log goes on from there.
    ASSERT_EQ(create_one("second", 1), std::nullopt);
    img = c_->image();
    stop(true);
    open();
    expect_same_image(*img, *c_->image());
}

// After a clean shutdown everything in the log was promised durable: a
// damaged tail there is corruption, reported, never cut silently.
TEST_F(controller_test, damage_below_the_recovery_point_takes_the_metadata_offline) {
    open();
    ASSERT_EQ(create_one("first"), std::nullopt);
    stop(true);
    fs::resize_file(segment_file(), fs::file_size(segment_file()) - 5);
    std::string detail;
    auto c = try_open(detail);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error(), errc::metadata_offline);
    std::cout << "offline: " << detail << "\n";
    EXPECT_NE(detail.find("__cluster_metadata-0"), std::string::npos) << detail;
    EXPECT_NE(detail.find("corrupt"), std::string::npos) << detail;
}

TEST_F(controller_test, a_record_that_does_not_decode_takes_the_metadata_offline) {
    open();
    ASSERT_EQ(create_one("t"), std::nullopt);
    stop(true);
    {
        // A well-formed batch (CRC and all) whose record is not a metadata record.
        storage::log_manager_config cfg;
        cfg.dir = dir_.string();
        auto m = storage::log_manager::open(storage::posix_file_system(), cfg, 0);
        ASSERT_TRUE(m.ok());
        storage::log* l = (*m)->get({"__cluster_metadata", 0});
        ASSERT_NE(l, nullptr);
        protocol::batch_builder b;
        const std::vector<uint8_t> junk{2, 0, 0xff};  // a topic record cut short
        b.add(0, std::nullopt, std::span<const uint8_t>(junk));
        auto batch = b.build().value();
        ASSERT_TRUE(l->append(batch, storage::append_options{}).ok());
        ASSERT_TRUE((*m)->shutdown().ok());
    }
    std::string detail;
    auto c = try_open(detail);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error(), errc::metadata_offline);
    std::cout << "offline: " << detail << "\n";
    EXPECT_NE(detail.find("record at offset"), std::string::npos) << detail;
    EXPECT_NE(detail.find("corrupt metadata record"), std::string::npos) << detail;
}

TEST_F(controller_test, a_record_the_tables_refuse_takes_the_metadata_offline) {
    open();
    stop(true);
    {
        storage::log_manager_config cfg;
        cfg.dir = dir_.string();
        auto m = storage::log_manager::open(storage::posix_file_system(), cfg, 0);
        ASSERT_TRUE(m.ok());
        storage::log* l = (*m)->get({"__cluster_metadata", 0});
        protocol::uuid nobody;
        nobody.bytes[3] = 1;
        const auto value = encode(partition_record{nobody, 0, {1}, {1}, 1, 0, 0});
        protocol::batch_builder b;
        b.add(0, std::nullopt, std::span<const uint8_t>(value));
        auto batch = b.build().value();
        ASSERT_TRUE(l->append(batch, storage::append_options{}).ok());
        ASSERT_TRUE((*m)->shutdown().ok());
    }
    std::string detail;
    auto c = try_open(detail);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error(), errc::metadata_offline);
    std::cout << "offline: " << detail << "\n";
    // After the cluster id (0) and node 1's registration and unfencing (1, 2).
    EXPECT_NE(detail.find("partition record at offset 3 refused"), std::string::npos) << detail;
    EXPECT_NE(detail.find("unknown topic"), std::string::npos) << detail;
}

TEST(random_uuid, never_zero_sentinel_or_dash) {
    std::mt19937_64 rng(1);
    for (int i = 0; i < 20000; ++i) {
        auto id = random_uuid(rng);
        EXPECT_FALSE(id.is_zero());
        EXPECT_EQ(id.bytes[6] >> 4, 4);
        auto s = storage::uuid_to_base64url(id.bytes);
        ASSERT_EQ(s.size(), 22u);
        ASSERT_NE(s[0], '-');
    }
}

}  // namespace
}  // namespace fjord::cluster

namespace fjord::cluster {
namespace {
TEST_F(controller_test, producer_id_blocks_never_repeat_across_restarts) {
    open();
    auto take = [this](int64_t n) {
        std::optional<result<int64_t, errc>> out;
        c_->allocate_producer_ids(n, [&out](result<int64_t, errc> r) { out = r; });
        EXPECT_FALSE(out.has_value()) << "callback ran inline";
        loop_.run([&out] { return out.has_value(); });
        return out->value();
    };
    EXPECT_EQ(take(1000), 0);
    EXPECT_EQ(take(1000), 1000);
    stop(false);  // a crash: the blocks were durable before they were handed out
    open();
    EXPECT_EQ(c_->image()->next_producer_id(), 2000);
    EXPECT_EQ(take(10), 2000);
    stop(true);
    open();
    EXPECT_EQ(take(1), 2010);
}
}  // namespace
}  // namespace fjord::cluster
