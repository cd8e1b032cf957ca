#include "kafka/config.h"

#include "kafka/config_catalog.h"
#include "raft/raft.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <tuple>

namespace fjord::kafka {
namespace {

constexpr topic_config_def defs[] = {
    {"cleanup.policy", "log.cleanup.policy", "delete"},
    {"compression.type", "compression.type", "producer"},
    {"delete.retention.ms", "log.cleaner.delete.retention.ms", "86400000"},
    {"file.delete.delay.ms", "log.segment.delete.delay.ms", "60000"},
    {"flush.messages", "log.flush.interval.messages", "9223372036854775807"},
    {"flush.ms", "log.flush.interval.ms", "9223372036854775807"},
    {"index.interval.bytes", "log.index.interval.bytes", "4096"},
    {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "9223372036854775807"},
    {"max.message.bytes", "message.max.bytes", "1048588"},
    {"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", "3600000"},
    {"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", "9223372036854775807"},
    {"message.timestamp.type", "log.message.timestamp.type", "CreateTime"},
    {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "0.5"},
    {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "0"},
    {"min.insync.replicas", "min.insync.replicas", "1"},
    {"preallocate", "log.preallocate", "false"},
    {"retention.bytes", "log.retention.bytes", "-1"},
    {"retention.ms", "log.retention.ms", "604800000"},
    {"segment.bytes", "log.segment.bytes", "1073741824"},
    {"segment.index.bytes", "log.index.size.max.bytes", "10485760"},
    {"segment.jitter.ms", "log.roll.jitter.ms", "0"},
    {"segment.ms", "log.roll.ms", "604800000"},
    {"unclean.leader.election.enable", "unclean.leader.election.enable", "false"},
    {"fjord.write.caching", "fjord.write.caching", "false"},
};

// Broker-only keys Fjord reads (others are accepted with a warning).
constexpr std::string_view broker_keys[] = {
    "node.id",
    "process.roles",
    "controller.quorum.voters",
    "controller.listener.names",
    "controller.quorum.election.timeout.ms",
    "broker.rack",
    "broker.heartbeat.interval.ms",
    "broker.session.timeout.ms",
    "replica.lag.time.max.ms",
    "inter.broker.listener.name",
    "broker.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "fjord.smp",
    "auto.create.topics.enable",
    "num.partitions",
    "default.replication.factor",
    "socket.request.max.bytes",
    "connections.max.idle.ms",
    "queued.max.request.bytes",
    "log.retention.check.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.cleaner.enable",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.threads",
    "max.incremental.fetch.session.cache.slots",
    "fetch.max.bytes",
    "fjord.http.listener",
    "fjord.testing.raft.broken",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "offsets.topic.segment.bytes",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offset.metadata.max.bytes",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.max.size",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.session.timeout.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.max.size",
    "group.consumer.assignors",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.minutes",
    "log.roll.hours",
    "log.roll.jitter.hours",
    // Accepted for compatibility with Kafka's sample configs; one node needs none of them.
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "group.initial.rebalance.delay.ms",
};

template <typename T>
result<T, std::string> parse_int(std::string_view key, std::string_view v) {
    T out{};
    auto s = v;
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
        return fail(fmt::format("{}: '{}' is not a valid integer", key, v));
    }
    return out;
}

result<bool, std::string> parse_bool(std::string_view key, std::string_view v) {
    if (v == "true") return true;
    if (v == "false") return false;
    return fail(fmt::format("{}: '{}' is not true or false", key, v));
}

result<double, std::string> parse_double(std::string_view key, std::string_view v) {
    try {
        size_t used = 0;
        double d = std::stod(std::string(v), &used);
        if (used != v.size()) throw std::invalid_argument("trailing");
        return d;
    } catch (...) {
        return fail(fmt::format("{}: '{}' is not a number", key, v));
    }
}

std::string trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\f')) ++b;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
    return std::string(s.substr(b, e - b));
}

}  // namespace

std::span<const topic_config_def> topic_config_defs() {
    return defs;
}

const topic_config_def* find_topic_config(std::string_view name) {
    for (const auto& d : defs) {
        if (d.name == name) return &d;
    }
    return nullptr;
}

std::optional<protocol::codec> topic_config::target_codec() const {
    switch (compression) {
        case compression_policy::producer: return std::nullopt;
        case compression_policy::none: return protocol::codec::none;
        case compression_policy::gzip: return protocol::codec::gzip;
        case compression_policy::snappy: return protocol::codec::snappy;
        case compression_policy::lz4: return protocol::codec::lz4;
        case compression_policy::zstd: return protocol::codec::zstd;
    }
    return std::nullopt;
}

std::string effective_topic_config(const broker_config& broker, const properties& topic, std::string_view name) {
    if (auto it = topic.find(std::string(name)); it != topic.end()) return it->second;
    if (auto it = broker.topic_defaults.find(std::string(name)); it != broker.topic_defaults.end()) return it->second;
    const auto* d = find_topic_config(name);
    return d ? std::string(d->default_value) : std::string();
}

result<topic_config, std::string> resolve_topic_config(const broker_config& broker, const properties& topic) {
    for (const auto& [k, v] : topic) {
        // Kafka's configs that Fjord does not act on are accepted (and shown by DescribeConfigs).
        if (!find_topic_config(k) && !find_topic_config_def(k)) {
            return fail(fmt::format("Unknown topic config name: {}", k));
        }
    }
    auto get = [&](std::string_view n) { return effective_topic_config(broker, topic, n); };
    topic_config t;
    auto& l = t.log;

#define FJORD_INT(field, T, key, lo)                                                                 \
    {                                                                                                \
        auto r = parse_int<T>(key, get(key));                                                        \
        if (!r) return fail(r.error());                                                              \
        if (*r < (lo)) return fail(fmt::format("Invalid value {} for configuration {}", *r, (key))); \
        field = *r;                                                                                  \
    }
    int64_t segment_bytes = 0;
    FJORD_INT(segment_bytes, int64_t, "segment.bytes", 14);
    l.segment_bytes = static_cast<uint64_t>(segment_bytes);
    FJORD_INT(l.segment_ms, int64_t, "segment.ms", 1);
    int64_t index_bytes = 0;
    FJORD_INT(index_bytes, int64_t, "segment.index.bytes", 4);
    l.segment_index_bytes = static_cast<uint64_t>(index_bytes);
    int32_t interval = 0;
    FJORD_INT(interval, int32_t, "index.interval.bytes", 0);
    l.index_interval_bytes = static_cast<uint32_t>(interval);
    FJORD_INT(l.retention_ms, int64_t, "retention.ms", -1);
    FJORD_INT(l.retention_bytes, int64_t, "retention.bytes", -1);
    FJORD_INT(l.delete_retention_ms, int64_t, "delete.retention.ms", 0);
    FJORD_INT(l.min_compaction_lag_ms, int64_t, "min.compaction.lag.ms", 0);
    FJORD_INT(t.max_message_bytes, int32_t, "max.message.bytes", 0);
    FJORD_INT(t.min_insync_replicas, int32_t, "min.insync.replicas", 1);
    FJORD_INT(t.timestamp_before_max_ms, int64_t, "message.timestamp.before.max.ms", 0);
    FJORD_INT(t.timestamp_after_max_ms, int64_t, "message.timestamp.after.max.ms", 0);
    FJORD_INT(t.durability.flush_messages, int64_t, "flush.messages", 1);
    FJORD_INT(t.durability.flush_ms, int64_t, "flush.ms", 0);
#undef FJORD_INT
    {
        auto r = parse_double("min.cleanable.dirty.ratio", get("min.cleanable.dirty.ratio"));
        if (!r) return fail(r.error());
        if (*r < 0 || *r > 1)
            return fail(fmt::format("Invalid value {} for configuration min.cleanable.dirty.ratio", *r));
        l.min_cleanable_dirty_ratio = *r;
    }
    {
        std::string policy = get("cleanup.policy");
        l.compact = false;
        l.delete_ = false;
        size_t start = 0;
        while (start <= policy.size()) {
            size_t comma = policy.find(',', start);
            std::string part = trim(
                std::string_view(policy).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (part == "compact") {
                l.compact = true;
            } else if (part == "delete") {
                l.delete_ = true;
            } else if (!(part.empty() && policy.empty())) {
                return fail(fmt::format("Invalid value {} for configuration cleanup.policy", policy));
            }
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    {
        std::string ts = get("message.timestamp.type");
        if (ts == "CreateTime") {
            l.log_append_time = false;
        } else if (ts == "LogAppendTime") {
            l.log_append_time = true;
        } else {
            return fail(fmt::format("Invalid value {} for configuration message.timestamp.type", ts));
        }
    }
    {
        std::string c = get("compression.type");
        if (c == "producer") {
            t.compression = compression_policy::producer;
        } else if (c == "uncompressed" || c == "none") {
            t.compression = compression_policy::none;
        } else if (c == "gzip") {
            t.compression = compression_policy::gzip;
        } else if (c == "snappy") {
            t.compression = compression_policy::snappy;
        } else if (c == "lz4") {
            t.compression = compression_policy::lz4;
        } else if (c == "zstd") {
            t.compression = compression_policy::zstd;
        } else {
            return fail(fmt::format("Invalid value {} for configuration compression.type", c));
        }
    }
    {
        auto wc = parse_bool("fjord.write.caching", get("fjord.write.caching"));
        if (!wc) return fail(wc.error());
        t.durability.mode = *wc ? storage::durability_mode::write_caching : storage::durability_mode::group_commit;
    }
    for (std::string_view k : {"preallocate", "unclean.leader.election.enable"}) {
        if (auto r = parse_bool(k, get(k)); !r) return fail(r.error());
    }
    return t;
}

result<properties, std::string> parse_properties_text(std::string_view text) {
    properties out;
    std::string logical;
    size_t pos = 0;
    int line_no = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        ++line_no;
        std::string t = trim(line);
        if (logical.empty() && (t.empty() || t[0] == '#' || t[0] == '!')) continue;
        if (!t.empty() && t.back() == '\\') {
            logical += t.substr(0, t.size() - 1);
            continue;
        }
        logical += t;
        size_t sep = logical.find_first_of("=:");
        if (sep == std::string::npos) {
            return fail(fmt::format("line {}: expected key=value, got '{}'", line_no, logical));
        }
        std::string key = trim(std::string_view(logical).substr(0, sep));
        std::string value = trim(std::string_view(logical).substr(sep + 1));
        if (key.empty()) return fail(fmt::format("line {}: empty key", line_no));
        out[key] = value;
        logical.clear();
    }
    return out;
}

properties merge_sources(const properties& file, char** envp, const properties& overrides) {
    properties out = file;
    for (char** e = envp; e && *e; ++e) {
        std::string_view kv(*e);
        if (kv.substr(0, 6) != "FJORD_") continue;
        size_t eq = kv.find('=');
        if (eq == std::string_view::npos) continue;
        std::string key(kv.substr(6, eq - 6));
        // FJORD_BUILD_DIR and friends belong to the tooling, not the broker.
        static constexpr std::string_view tooling[] = {"BUILD_DIR", "CACHE",          "IO_BACKEND", "JOBS",
                                                       "BIN",       "KAFKA_PROTOCOL", "IT_BROKER"};
        if (std::find(std::begin(tooling), std::end(tooling), key) != std::end(tooling)) continue;
        for (auto& c : key) c = c == '_' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out[key] = std::string(kv.substr(eq + 1));
    }
    for (const auto& [k, v] : overrides) out[k] = v;
    return out;
}

result<std::vector<listener>, std::string> parse_listeners(std::string_view text) {
    std::vector<listener> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t comma = text.find(',', start);
        std::string item =
            trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        start = comma == std::string_view::npos ? text.size() : comma + 1;
        if (item.empty()) continue;
        size_t sep = item.find("://");
        if (sep == std::string::npos) return fail(fmt::format("listeners: '{}' is not NAME://host:port", item));
        listener l;
        l.name = item.substr(0, sep);
        std::string hostport = item.substr(sep + 3);
        size_t colon = hostport.rfind(':');
        if (colon == std::string::npos) return fail(fmt::format("listeners: '{}' has no port", item));
        l.host = hostport.substr(0, colon);
        if (l.host.size() >= 2 && l.host.front() == '[' && l.host.back() == ']') {
            l.host = l.host.substr(1, l.host.size() - 2);
        }
        auto port = parse_int<int32_t>("listeners", std::string_view(hostport).substr(colon + 1));
        if (!port || *port < 0 || *port > 65535) return fail(fmt::format("listeners: bad port in '{}'", item));
        l.port = static_cast<uint16_t>(*port);
        out.push_back(std::move(l));
    }
    if (out.empty()) return fail(std::string("listeners: empty"));
    return out;
}

result<broker_config, std::string> make_broker_config(const properties& props) {
    broker_config c;
    c.static_props = props;
    auto has = [&](const char* k) { return props.count(k) > 0; };
    auto get = [&](const char* k) -> const std::string& { return props.at(k); };
#define FJORD_BROKER_INT(field, T, key)       \
    if (has(key)) {                           \
        auto r = parse_int<T>(key, get(key)); \
        if (!r) return fail(r.error());       \
        c.field = *r;                         \
    }
    FJORD_BROKER_INT(node_id, int32_t, "broker.id");
    FJORD_BROKER_INT(node_id, int32_t, "node.id");
    FJORD_BROKER_INT(num_partitions, int32_t, "num.partitions");
    FJORD_BROKER_INT(default_replication_factor, int16_t, "default.replication.factor");
    FJORD_BROKER_INT(socket_request_max_bytes, int32_t, "socket.request.max.bytes");
    FJORD_BROKER_INT(connections_max_idle_ms, int64_t, "connections.max.idle.ms");
    FJORD_BROKER_INT(queued_max_request_bytes, int64_t, "queued.max.request.bytes");
    FJORD_BROKER_INT(log_retention_check_interval_ms, int64_t, "log.retention.check.interval.ms");
    FJORD_BROKER_INT(log_flush_offset_checkpoint_interval_ms, int64_t, "log.flush.offset.checkpoint.interval.ms");
    FJORD_BROKER_INT(log_cleaner_backoff_ms, int64_t, "log.cleaner.backoff.ms");
    FJORD_BROKER_INT(log_cleaner_dedupe_buffer_size, int64_t, "log.cleaner.dedupe.buffer.size");
    FJORD_BROKER_INT(max_incremental_fetch_session_cache_slots, int32_t, "max.incremental.fetch.session.cache.slots");
    FJORD_BROKER_INT(fetch_max_bytes, int64_t, "fetch.max.bytes");
    FJORD_BROKER_INT(smp, unsigned, "fjord.smp");
    FJORD_BROKER_INT(offsets_topic_num_partitions, int32_t, "offsets.topic.num.partitions");
    FJORD_BROKER_INT(offsets_topic_replication_factor, int16_t, "offsets.topic.replication.factor");
    FJORD_BROKER_INT(offsets_topic_segment_bytes, int32_t, "offsets.topic.segment.bytes");
    FJORD_BROKER_INT(offsets_retention_minutes, int64_t, "offsets.retention.minutes");
    FJORD_BROKER_INT(offsets_retention_check_interval_ms, int64_t, "offsets.retention.check.interval.ms");
    FJORD_BROKER_INT(offset_metadata_max_bytes, int32_t, "offset.metadata.max.bytes");
    FJORD_BROKER_INT(group_min_session_timeout_ms, int32_t, "group.min.session.timeout.ms");
    FJORD_BROKER_INT(group_max_session_timeout_ms, int32_t, "group.max.session.timeout.ms");
    FJORD_BROKER_INT(group_initial_rebalance_delay_ms, int32_t, "group.initial.rebalance.delay.ms");
    FJORD_BROKER_INT(group_max_size, int32_t, "group.max.size");
    FJORD_BROKER_INT(consumer_heartbeat_interval_ms, int32_t, "group.consumer.heartbeat.interval.ms");
    FJORD_BROKER_INT(consumer_session_timeout_ms, int32_t, "group.consumer.session.timeout.ms");
    FJORD_BROKER_INT(consumer_max_size, int32_t, "group.consumer.max.size");
    FJORD_BROKER_INT(election_timeout_ms, int32_t, "controller.quorum.election.timeout.ms");
    FJORD_BROKER_INT(broker_heartbeat_interval_ms, int32_t, "broker.heartbeat.interval.ms");
    FJORD_BROKER_INT(broker_session_timeout_ms, int32_t, "broker.session.timeout.ms");
    FJORD_BROKER_INT(replica_lag_time_max_ms, int32_t, "replica.lag.time.max.ms");
    FJORD_BROKER_INT(leader_imbalance_check_interval_seconds, int32_t, "leader.imbalance.check.interval.seconds");
#undef FJORD_BROKER_INT
    if (c.election_timeout_ms < 20 || c.broker_heartbeat_interval_ms < 1 || c.replica_lag_time_max_ms < 1 ||
        c.broker_session_timeout_ms <= c.broker_heartbeat_interval_ms) {
        return fail(
            std::string("controller.quorum.election.timeout.ms must be at least 20; replica.lag.time.max.ms "
                        "positive; broker.heartbeat.interval.ms positive and below broker.session.timeout.ms"));
    }
    if (has("broker.rack")) c.rack = get("broker.rack");
    if (has("group.consumer.assignors")) {
        // Kafka's class names or the short names.
        c.consumer_assignors.clear();
        std::string list = get("group.consumer.assignors");
        size_t start = 0;
        while (start <= list.size()) {
            size_t comma = list.find(',', start);
            std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            item.erase(0, item.find_first_not_of(" \t"));
            item.erase(item.find_last_not_of(" \t") + 1);
            if (item == "org.apache.kafka.coordinator.group.assignor.UniformAssignor") item = "uniform";
            if (item == "org.apache.kafka.coordinator.group.assignor.RangeAssignor") item = "range";
            if (item != "uniform" && item != "range") {
                return fail("group.consumer.assignors: unknown assignor '" + item + "' (uniform and range are built)");
            }
            c.consumer_assignors.push_back(item);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    if (c.consumer_heartbeat_interval_ms < 1 || c.consumer_session_timeout_ms <= c.consumer_heartbeat_interval_ms ||
        c.consumer_max_size < 1) {
        return fail(
            std::string("group.consumer.heartbeat.interval.ms must be positive and below "
                        "group.consumer.session.timeout.ms; group.consumer.max.size at least 1"));
    }
    if (c.offsets_topic_num_partitions < 1) return fail(std::string("offsets.topic.num.partitions must be at least 1"));
    if (c.offsets_topic_replication_factor < 1) {
        return fail(std::string("offsets.topic.replication.factor must be at least 1"));
    }
    if (c.offsets_topic_segment_bytes < 1) return fail(std::string("offsets.topic.segment.bytes must be at least 1"));
    if (c.offsets_retention_minutes < 1 || c.offsets_retention_check_interval_ms < 1) {
        return fail(std::string("offsets.retention.minutes and offsets.retention.check.interval.ms must be positive"));
    }
    if (c.offset_metadata_max_bytes < 0 || c.group_min_session_timeout_ms < 0 ||
        c.group_max_session_timeout_ms < c.group_min_session_timeout_ms || c.group_initial_rebalance_delay_ms < 0 ||
        c.group_max_size < 1) {
        return fail(
            std::string("group coordinator settings out of range (offset.metadata.max.bytes, "
                        "group.*.session.timeout.ms, group.initial.rebalance.delay.ms, group.max.size)"));
    }
    if (c.num_partitions < 1) return fail(std::string("num.partitions must be at least 1"));
    if (c.socket_request_max_bytes < 1) return fail(std::string("socket.request.max.bytes must be at least 1"));
    if (c.log_retention_check_interval_ms < 1) {
        return fail(std::string("log.retention.check.interval.ms must be at least 1"));
    }
    if (has("log.cleaner.enable")) {
        auto r = parse_bool("log.cleaner.enable", get("log.cleaner.enable"));
        if (!r) return fail(r.error());
        c.log_cleaner_enable = *r;
    }
    if (c.log_cleaner_backoff_ms < 1 || c.log_flush_offset_checkpoint_interval_ms < 1) {
        return fail(std::string("log.cleaner.backoff.ms and log.flush.offset.checkpoint.interval.ms must be positive"));
    }
    if (c.log_cleaner_dedupe_buffer_size < (1 << 20)) {
        return fail(std::string("log.cleaner.dedupe.buffer.size must be at least 1048576"));
    }
    if (has("auto.create.topics.enable")) {
        auto r = parse_bool("auto.create.topics.enable", get("auto.create.topics.enable"));
        if (!r) return fail(r.error());
        c.auto_create_topics_enable = *r;
    }
    if (has("log.dir")) c.log_dir = get("log.dir");
    if (has("log.dirs")) {
        const auto& d = get("log.dirs");
        if (d.find(',') != std::string::npos) {
            return fail(std::string("log.dirs: Fjord uses one log directory per node (got a list)"));
        }
        c.log_dir = d;
    }
    auto ls = parse_listeners(has("listeners") ? get("listeners") : "PLAINTEXT://:9092");
    if (!ls) return fail(ls.error());
    c.listeners = *ls;
    if (has("advertised.listeners")) {
        auto a = parse_listeners(get("advertised.listeners"));
        if (!a) return fail(a.error());
        c.advertised_listeners = *a;
    } else {
        c.advertised_listeners = c.listeners;
    }
    for (auto& a : c.advertised_listeners) {
        if (a.host.empty() || a.host == "0.0.0.0" || a.host == "::") a.host = "localhost";
    }
    if (has("fjord.http.listener")) c.http_listener = get("fjord.http.listener");
    if (has("auto.leader.rebalance.enable")) {
        auto b = parse_bool("auto.leader.rebalance.enable", get("auto.leader.rebalance.enable"));
        if (!b) return fail(b.error());
        c.auto_leader_rebalance_enable = *b;
    }
    if (c.leader_imbalance_check_interval_seconds < 1) {
        return fail(std::string("leader.imbalance.check.interval.seconds must be at least 1"));
    }
    if (has("fjord.testing.raft.broken")) {
        c.raft_broken = get("fjord.testing.raft.broken");
        if (!raft::parse_broken(c.raft_broken)) {
            return fail(fmt::format("fjord.testing.raft.broken: unknown variant '{}'", c.raft_broken));
        }
        if (c.raft_broken != "none") {
            c.warnings.push_back(
                fmt::format("fjord.testing.raft.broken={}: partition replication is DELIBERATELY UNSAFE (tests only)",
                            c.raft_broken));
        }
    }

    // The metadata quorum: controller.quorum.voters (id@host:port,...) and the
    // listener(s) that carry node-to-node traffic. Without voters this node is
    // a quorum of one.
    if (has("controller.listener.names")) {
        c.controller_listener_names.clear();
        std::string list = get("controller.listener.names");
        size_t start = 0;
        while (start <= list.size()) {
            size_t comma = list.find(',', start);
            std::string item = trim(
                std::string_view(list).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (!item.empty()) c.controller_listener_names.push_back(item);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    auto is_controller = [&c](const listener& l) {
        return std::find(c.controller_listener_names.begin(), c.controller_listener_names.end(), l.name) !=
               c.controller_listener_names.end();
    };
    for (const auto& l : c.listeners) {
        if (is_controller(l)) c.controller_listener = l;
    }
    std::erase_if(c.listeners, is_controller);
    std::erase_if(c.advertised_listeners, is_controller);
    if (c.listeners.empty()) return fail(std::string("listeners: no client listener besides the controller listener"));
    if (c.advertised_listeners.empty()) c.advertised_listeners = c.listeners;
    for (auto& a : c.advertised_listeners) {
        if (a.host.empty() || a.host == "0.0.0.0" || a.host == "::") a.host = "localhost";
    }
    if (has("controller.quorum.voters") && !trim(get("controller.quorum.voters")).empty()) {
        const std::string list = get("controller.quorum.voters");
        size_t start = 0;
        while (start <= list.size()) {
            size_t comma = list.find(',', start);
            std::string item = trim(
                std::string_view(list).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos)
                start = list.size() + 1;
            else
                start = comma + 1;
            if (item.empty()) continue;
            const size_t at = item.find('@');
            const size_t colon = item.rfind(':');
            if (at == std::string::npos || colon == std::string::npos || colon < at) {
                return fail(fmt::format("controller.quorum.voters: '{}' is not id@host:port", item));
            }
            auto id = parse_int<int32_t>("controller.quorum.voters", std::string_view(item).substr(0, at));
            auto port = parse_int<int32_t>("controller.quorum.voters", std::string_view(item).substr(colon + 1));
            if (!id || *id < 0 || !port || *port < 1 || *port > 65535) {
                return fail(fmt::format("controller.quorum.voters: bad id or port in '{}'", item));
            }
            std::string host = item.substr(at + 1, colon - at - 1);
            if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
            for (const auto& v : c.voters) {
                if (v.node_id == *id) return fail(fmt::format("controller.quorum.voters: node {} listed twice", *id));
            }
            c.voters.push_back(quorum_voter{*id, host, static_cast<uint16_t>(*port)});
        }
        bool self = false;
        for (const auto& v : c.voters) self = self || v.node_id == c.node_id;
        if (!self) {
            return fail(fmt::format("controller.quorum.voters does not list node.id {}: every Fjord node is a voter",
                                    c.node_id));
        }
        if (c.voters.size() > 1 && !c.controller_listener) {
            return fail(fmt::format(
                "controller.quorum.voters lists {} nodes but no listener is named in controller.listener.names ({}): "
                "add one to listeners, e.g. CONTROLLER://:9093",
                c.voters.size(), fmt::join(c.controller_listener_names, ",")));
        }
    }
    if (c.voters.empty()) c.voters.push_back(quorum_voter{c.node_id, "", 0});

    // Broker-level topic defaults: log.retention.ms beats minutes beats hours.
    properties derived;
    auto scaled = [&](const char* from, int64_t factor, const char* to) -> result<void, std::string> {
        if (!has(from) || derived.count(to)) return {};
        auto r = parse_int<int64_t>(from, get(from));
        if (!r) return fail(r.error());
        derived[to] = std::to_string(*r * factor);
        return {};
    };
    for (auto [from, factor, to] : {std::tuple{"log.retention.minutes", int64_t{60000}, "log.retention.ms"},
                                    std::tuple{"log.retention.hours", int64_t{3600000}, "log.retention.ms"},
                                    std::tuple{"log.roll.hours", int64_t{3600000}, "log.roll.ms"},
                                    std::tuple{"log.roll.jitter.hours", int64_t{3600000}, "log.roll.jitter.ms"}}) {
        if (auto r = scaled(from, factor, to); !r) return fail(r.error());
    }
    for (const auto& d : defs) {
        std::string broker_key(d.broker_name);
        if (auto it = props.find(broker_key); it != props.end()) {
            c.topic_defaults[std::string(d.name)] = it->second;
        } else if (auto it2 = derived.find(broker_key); it2 != derived.end()) {
            c.topic_defaults[std::string(d.name)] = it2->second;
        }
    }
    // Every topic default must itself be valid.
    if (auto t = resolve_topic_config(c, {}); !t) return fail(t.error());

    for (const auto& [k, v] : props) {
        bool known = std::find(std::begin(broker_keys), std::end(broker_keys), k) != std::end(broker_keys);
        for (const auto& d : defs) known = known || d.broker_name == k;
        if (!known) c.warnings.push_back(fmt::format("unknown config '{}' ignored", k));
    }
    return c;
}

}  // namespace fjord::kafka
