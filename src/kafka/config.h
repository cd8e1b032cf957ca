// Broker configuration: Kafka's names and defaults, read from a
// server.properties file, then FJORD_* environment variables, then
// --override flags (later sources win). Topic configs resolve against the
// broker's log.* defaults.
//
// Threading: parsed once at start-up (exceptions are not used; errors are
// returned as text for the operator); the result is immutable and shared.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "protocol/compression.h"
#include "storage/durability.h"
#include "storage/log.h"

namespace fjord::kafka {

using properties = std::map<std::string, std::string>;

struct listener {
    std::string name;  // PLAINTEXT
    std::string host;  // "" means every interface
    uint16_t port = 0;
};

// One voter of the metadata quorum (controller.quorum.voters: id@host:port).
struct quorum_voter {
    int32_t node_id = 0;
    std::string host;
    uint16_t port = 0;
};

// How the broker treats a producer's codec (compression.type).
enum class compression_policy : uint8_t { producer, none, gzip, snappy, lz4, zstd };

struct broker_config {
    int32_t node_id = 1;                                               // node.id
    std::vector<listener> listeners;                                   // listeners (client listeners only)
    std::optional<listener> controller_listener;                       // the one named in controller.listener.names
    std::vector<std::string> controller_listener_names{"CONTROLLER"};  // controller.listener.names
    std::vector<quorum_voter> voters;                                  // controller.quorum.voters (self alone if unset)
    std::optional<std::string> rack;                                   // broker.rack
    int32_t election_timeout_ms = 1000;                                // controller.quorum.election.timeout.ms
    int32_t broker_heartbeat_interval_ms = 2000;                       // broker.heartbeat.interval.ms
    int32_t broker_session_timeout_ms = 9000;                          // broker.session.timeout.ms
    int32_t replica_lag_time_max_ms = 30000;                           // replica.lag.time.max.ms
    bool auto_leader_rebalance_enable = true;                          // auto.leader.rebalance.enable
    int32_t leader_imbalance_check_interval_seconds = 300;             // leader.imbalance.check.interval.seconds
    // fjord.testing.raft.broken: a deliberately broken Raft in every
    // partition group (the fault suite's negative control; never in production).
    std::string raft_broken = "none";
    std::vector<listener> advertised_listeners;                // advertised.listeners (default: listeners)
    std::string log_dir = "./data";                            // log.dirs (one directory)
    unsigned smp = 0;                                          // --smp / fjord.smp, 0: one per core
    bool auto_create_topics_enable = true;                     // auto.create.topics.enable
    int32_t num_partitions = 1;                                // num.partitions
    int16_t default_replication_factor = 1;                    // default.replication.factor
    int32_t socket_request_max_bytes = 104857600;              // socket.request.max.bytes
    int64_t connections_max_idle_ms = 600000;                  // connections.max.idle.ms
    int64_t queued_max_request_bytes = -1;                     // queued.max.request.bytes (-1: Fjord's bound)
    int64_t log_retention_check_interval_ms = 300000;          // log.retention.check.interval.ms
    int64_t log_flush_offset_checkpoint_interval_ms = 60000;   // log.flush.offset.checkpoint.interval.ms
    bool log_cleaner_enable = true;                            // log.cleaner.enable
    int64_t log_cleaner_backoff_ms = 15000;                    // log.cleaner.backoff.ms
    int64_t log_cleaner_dedupe_buffer_size = 134217728;        // log.cleaner.dedupe.buffer.size (per node)
    int32_t max_incremental_fetch_session_cache_slots = 1000;  // max.incremental.fetch.session.cache.slots
    int64_t fetch_max_bytes = 57671680;                        // fetch.max.bytes
    std::string http_listener;                                 // fjord.http.listener (host:port, "" off)
    // Group coordinator.
    int32_t offsets_topic_num_partitions = 50;                        // offsets.topic.num.partitions
    int16_t offsets_topic_replication_factor = 3;                     // offsets.topic.replication.factor
    int32_t offsets_topic_segment_bytes = 104857600;                  // offsets.topic.segment.bytes
    int64_t offsets_retention_minutes = 10080;                        // offsets.retention.minutes
    int64_t offsets_retention_check_interval_ms = 600000;             // offsets.retention.check.interval.ms
    int32_t offset_metadata_max_bytes = 4096;                         // offset.metadata.max.bytes
    int32_t group_min_session_timeout_ms = 6000;                      // group.min.session.timeout.ms
    int32_t group_max_session_timeout_ms = 1800000;                   // group.max.session.timeout.ms
    int32_t group_initial_rebalance_delay_ms = 3000;                  // group.initial.rebalance.delay.ms
    int32_t group_max_size = 2147483647;                              // group.max.size
    int32_t consumer_heartbeat_interval_ms = 5000;                    // group.consumer.heartbeat.interval.ms
    int32_t consumer_session_timeout_ms = 45000;                      // group.consumer.session.timeout.ms
    int32_t consumer_max_size = 2147483647;                           // group.consumer.max.size
    std::vector<std::string> consumer_assignors{"uniform", "range"};  // group.consumer.assignors
    // Every key=value the broker was started with (file, environment,
    // overrides): DescribeConfigs' STATIC_BROKER_CONFIG values.
    properties static_props;
    // Topic defaults: the topic-level configs when a topic sets none.
    properties topic_defaults;
    std::vector<std::string> warnings;  // unknown keys and the like, logged at start
};

// The topic configs Fjord knows, with the broker config each one falls back
// to and Kafka's default.
struct topic_config_def {
    std::string_view name;         // segment.bytes
    std::string_view broker_name;  // log.segment.bytes ("" when none)
    std::string_view default_value;
};
std::span<const topic_config_def> topic_config_defs();
const topic_config_def* find_topic_config(std::string_view name);

// Everything a partition needs from its topic's configs.
struct topic_config {
    storage::log_config log;
    storage::durability_config durability;
    int32_t max_message_bytes = 1048588;                            // max.message.bytes
    int32_t min_insync_replicas = 1;                                // min.insync.replicas
    int64_t timestamp_before_max_ms = INT64_MAX;                    // message.timestamp.before.max.ms
    int64_t timestamp_after_max_ms = 3600000;                       // message.timestamp.after.max.ms
    compression_policy compression = compression_policy::producer;  // compression.type
    std::optional<protocol::codec> target_codec() const;
};

// Resolves a topic's explicitly set configs over the broker defaults. An
// invalid value is an error naming the key (CreateTopics/AlterConfigs
// report it as INVALID_CONFIG).
result<topic_config, std::string> resolve_topic_config(const broker_config& broker, const properties& topic);
// The effective value of one topic config (the topic's, else the broker's,
// else Kafka's default), as DescribeConfigs shows it.
std::string effective_topic_config(const broker_config& broker, const properties& topic, std::string_view name);

// Parses a server.properties text (Java properties: key=value or key:value,
// # and ! comments, backslash line continuations).
result<properties, std::string> parse_properties_text(std::string_view text);
// Merges: file, then FJORD_* environment (FJORD_LOG_DIRS -> log.dirs), then overrides.
properties merge_sources(const properties& file, char** envp, const properties& overrides);
result<broker_config, std::string> make_broker_config(const properties& props);
result<std::vector<listener>, std::string> parse_listeners(std::string_view text);

}  // namespace fjord::kafka
