#include "kafka/config.h"

#include <gtest/gtest.h>

namespace fjord::kafka {
namespace {

TEST(config, defaults_are_kafkas) {
    auto c = make_broker_config({});
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(c->node_id, 1);
    EXPECT_EQ(c->num_partitions, 1);
    EXPECT_TRUE(c->auto_create_topics_enable);
    EXPECT_EQ(c->socket_request_max_bytes, 104857600);
    ASSERT_EQ(c->listeners.size(), 1u);
    EXPECT_EQ(c->listeners[0].port, 9092);
    EXPECT_EQ(c->advertised_listeners[0].host, "localhost");
    auto t = resolve_topic_config(*c, {});
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->log.segment_bytes, uint64_t{1} << 30);
    EXPECT_EQ(t->log.retention_ms, 604800000);
    EXPECT_EQ(t->max_message_bytes, 1048588);
    EXPECT_EQ(t->timestamp_after_max_ms, 3600000);
    EXPECT_TRUE(t->log.delete_);
    EXPECT_FALSE(t->log.compact);
    EXPECT_EQ(t->durability.mode, storage::durability_mode::group_commit);
    EXPECT_FALSE(t->target_codec().has_value());
}

TEST(config, properties_text_env_and_overrides_in_order) {
    auto file = parse_properties_text(
        "# comment\n! also a comment\nnode.id=3\nlog.dirs = /tmp/a\nnum.partitions: 4\n"
        "listeners=PLAINTEXT://127.0.0.1:9093,\\\n  OTHER://:9094\n");
    ASSERT_TRUE(file.ok()) << file.error();
    EXPECT_EQ(file->at("listeners"), "PLAINTEXT://127.0.0.1:9093,OTHER://:9094");
    char env1[] = "FJORD_NUM_PARTITIONS=6";
    char env2[] = "FJORD_BUILD_DIR=ignored";
    char env3[] = "PATH=/bin";
    char* envp[] = {env1, env2, env3, nullptr};
    auto merged = merge_sources(*file, envp, {{"node.id", "9"}});
    EXPECT_EQ(merged.at("num.partitions"), "6");
    EXPECT_EQ(merged.at("node.id"), "9");
    EXPECT_EQ(merged.count("build.dir"), 0u);
    auto c = make_broker_config(merged);
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(c->node_id, 9);
    EXPECT_EQ(c->num_partitions, 6);
    EXPECT_EQ(c->log_dir, "/tmp/a");
    ASSERT_EQ(c->listeners.size(), 2u);
    EXPECT_EQ(c->listeners[1].name, "OTHER");
    EXPECT_EQ(c->listeners[1].host, "");
}

TEST(config, broker_log_settings_become_topic_defaults) {
    auto c = make_broker_config({{"log.retention.hours", "1"},
                                 {"log.segment.bytes", "1048576"},
                                 {"log.message.timestamp.type", "LogAppendTime"},
                                 {"compression.type", "zstd"}});
    ASSERT_TRUE(c.ok()) << c.error();
    auto t = resolve_topic_config(*c, {});
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->log.retention_ms, 3600000);
    EXPECT_EQ(t->log.segment_bytes, 1048576u);
    EXPECT_TRUE(t->log.log_append_time);
    EXPECT_EQ(t->target_codec(), protocol::codec::zstd);
    // log.retention.ms wins over hours.
    auto c2 = make_broker_config({{"log.retention.hours", "1"}, {"log.retention.ms", "5000"}});
    ASSERT_TRUE(c2.ok());
    EXPECT_EQ(resolve_topic_config(*c2, {})->log.retention_ms, 5000);
    // A topic's own config wins over the broker's.
    auto t2 = resolve_topic_config(*c, {{"retention.ms", "77"}, {"cleanup.policy", "compact,delete"}});
    ASSERT_TRUE(t2.ok());
    EXPECT_EQ(t2->log.retention_ms, 77);
    EXPECT_TRUE(t2->log.compact);
    EXPECT_TRUE(t2->log.delete_);
    EXPECT_EQ(effective_topic_config(*c, {{"retention.ms", "77"}}, "segment.bytes"), "1048576");
}

TEST(config, bad_values_are_reported_with_their_key) {
    EXPECT_FALSE(make_broker_config({{"num.partitions", "x"}}).ok());
    EXPECT_FALSE(make_broker_config({{"num.partitions", "0"}}).ok());
    EXPECT_FALSE(make_broker_config({{"listeners", "nonsense"}}).ok());
    EXPECT_FALSE(make_broker_config({{"log.dirs", "/a,/b"}}).ok());
    EXPECT_FALSE(make_broker_config({{"log.cleanup.policy", "shred"}}).ok());
    auto c = make_broker_config({});
    auto bad = resolve_topic_config(*c, {{"retention.ms", "soon"}});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().find("retention.ms"), std::string::npos);
    EXPECT_FALSE(resolve_topic_config(*c, {{"no.such.config", "1"}}).ok());
    EXPECT_FALSE(resolve_topic_config(*c, {{"compression.type", "brotli"}}).ok());
    EXPECT_FALSE(resolve_topic_config(*c, {{"min.cleanable.dirty.ratio", "1.5"}}).ok());
    auto unknown = make_broker_config({{"totally.unknown", "1"}});
    ASSERT_TRUE(unknown.ok());
    EXPECT_EQ(unknown->warnings.size(), 1u);
}

// Every broker key Fjord reads is known: no "unknown config ... ignored"
// warning for a setting that is in fact applied.
TEST(config, replica_lag_time_max_ms_is_read_without_a_warning) {
    auto c = make_broker_config({{"replica.lag.time.max.ms", "2000"}});
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(c->replica_lag_time_max_ms, 2000);
    EXPECT_TRUE(c->warnings.empty()) << c->warnings.front();
}

}  // namespace
}  // namespace fjord::kafka

namespace fjord::kafka {
namespace {
TEST(config, min_insync_replicas_is_read_and_checked) {
    auto c = make_broker_config({{"min.insync.replicas", "2"}});
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(resolve_topic_config(*c, {})->min_insync_replicas, 2);
    EXPECT_FALSE(resolve_topic_config(*c, {{"min.insync.replicas", "0"}}).ok());
}
}  // namespace
}  // namespace fjord::kafka
