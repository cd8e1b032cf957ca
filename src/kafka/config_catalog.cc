#include "kafka/config_catalog.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <map>

namespace fjord::kafka {
namespace {

constexpr config_def topic_defs[] = {
#define FJORD_TOPIC_CONFIG(name, type, def, ro, sens, syn) {name, static_cast<config_type>(type), def, ro, sens, syn},
#include "kafka/config_catalog.inc"
#undef FJORD_TOPIC_CONFIG
    // Fjord's own.
    {"fjord.write.caching", config_type::boolean, std::string_view("false"), false, false, "fjord.write.caching"},
};

constexpr config_def broker_defs[] = {
#define FJORD_BROKER_CONFIG(name, type, def, ro, sens, syn) {name, static_cast<config_type>(type), def, ro, sens, syn},
#include "kafka/config_catalog.inc"
#undef FJORD_BROKER_CONFIG
    // Fjord's own.
    {"fjord.http.listener", config_type::string, std::string_view(""), true, false, "fjord.http.listener"},
    {"fjord.smp", config_type::int_, std::string_view("0"), true, false, "fjord.smp"},
    {"fjord.write.caching", config_type::boolean, std::string_view("false"), false, false, "fjord.write.caching"},
};

// Kafka's broker synonyms of topic configs where there is more than one
// (LogConfig's synonyms; the first is the most specific).
struct multi_synonym {
    std::string_view topic;
    std::array<std::string_view, 3> broker;
};
constexpr multi_synonym multi_synonyms[] = {
    {"retention.ms", {"log.retention.ms", "log.retention.minutes", "log.retention.hours"}},
    {"segment.ms", {"log.roll.ms", "log.roll.hours", ""}},
    {"segment.jitter.ms", {"log.roll.jitter.ms", "log.roll.jitter.hours", ""}},
    {"flush.ms", {"log.flush.interval.ms", "", ""}},
};

// Fjord's descriptions: what the config does here (and whether Fjord acts on it).
struct doc {
    std::string_view name;
    std::string_view text;
};
constexpr doc topic_docs[] = {
    {"cleanup.policy",
     "How old segments go: delete (by retention.ms/retention.bytes), compact (keep the latest "
     "record per key), or both, comma-separated."},
    {"compression.type",
     "The codec stored batches use: producer keeps the producer's codec; uncompressed, gzip, "
     "snappy, lz4 or zstd makes the leader recompress batches that differ."},
    {"delete.retention.ms", "How long tombstones (null values) stay in a compacted log after compaction reached them."},
    {"file.delete.delay.ms",
     "Delay before a deleted segment's files are removed (accepted; Fjord removes them at once)."},
    {"flush.messages", "With fjord.write.caching=true: fsync after this many messages."},
    {"flush.ms", "With fjord.write.caching=true: fsync at least this often (ms)."},
    {"index.interval.bytes", "Bytes of log between two entries of the sparse offset index."},
    {"max.compaction.lag.ms", "Longest time a record may stay uncompacted (accepted; not enforced yet)."},
    {"max.message.bytes", "Largest record batch the topic accepts (after compression)."},
    {"message.timestamp.after.max.ms", "How far a CreateTime timestamp may be ahead of the broker clock (ms)."},
    {"message.timestamp.before.max.ms", "How far a CreateTime timestamp may be behind the broker clock (ms)."},
    {"message.timestamp.type", "CreateTime (the producer's timestamps) or LogAppendTime (the broker's clock)."},
    {"min.cleanable.dirty.ratio", "Share of uncompacted log that makes a compacted partition eligible for cleaning."},
    {"min.compaction.lag.ms", "Records younger than this are never compacted away."},
    {"min.insync.replicas", "acks=all writes fail with NOT_ENOUGH_REPLICAS below this many in-sync replicas."},
    {"preallocate", "Preallocate segment files (accepted; Fjord does not preallocate)."},
    {"retention.bytes", "Largest size of a partition's log before old segments are deleted (-1: no limit)."},
    {"retention.ms", "Age after which whole segments are deleted (-1: keep forever)."},
    {"segment.bytes", "Size at which the active segment is rolled."},
    {"segment.index.bytes", "Maximum size of a segment's offset and time index files."},
    {"segment.jitter.ms", "Random jitter subtracted from segment.ms."},
    {"segment.ms", "Age at which the active segment is rolled even if not full."},
    {"unclean.leader.election.enable", "Allow an out-of-sync replica to become leader (a single node: no effect)."},
    {"fjord.write.caching",
     "Fjord: acknowledge acks=all writes from memory and fsync by flush.messages/flush.ms, "
     "as Kafka does, instead of after a group-committed fsync (the default)."},
};
constexpr doc broker_docs[] = {
    {"node.id", "This node's id (Fjord's default: 1)."},
    {"broker.id", "Older name of node.id."},
    {"listeners", "Kafka listeners, NAME://host:port, comma-separated."},
    {"advertised.listeners", "Addresses given to clients in Metadata (default: listeners)."},
    {"log.dirs", "The data directory (Fjord uses one; default ./data)."},
    {"log.dir", "The data directory when log.dirs is not set."},
    {"auto.create.topics.enable", "Create a topic when a client asks Metadata for it."},
    {"num.partitions", "Partitions of a topic created with -1 or by auto-creation."},
    {"default.replication.factor", "Replication factor of a topic created with -1 or by auto-creation."},
    {"socket.request.max.bytes", "Largest request the broker reads; larger ones close the connection."},
    {"connections.max.idle.ms", "Idle connections are closed after this long."},
    {"queued.max.request.bytes", "Bytes of requests queued per node before reading pauses (-1: Fjord's bound)."},
    {"log.retention.check.interval.ms", "How often retention runs."},
    {"log.flush.offset.checkpoint.interval.ms", "How often recovery points are checkpointed."},
    {"log.cleaner.enable", "Run compaction for compacted topics."},
    {"log.cleaner.backoff.ms", "Pause between compaction passes."},
    {"log.cleaner.dedupe.buffer.size", "Memory of the compaction key map (per node)."},
    {"max.incremental.fetch.session.cache.slots", "Incremental fetch sessions kept (per node)."},
    {"fetch.max.bytes", "Largest Fetch response."},
    {"fjord.http.listener", "Fjord: host:port of the HTTP endpoint (/metrics); empty: off."},
    {"fjord.smp", "Fjord: shards (threads); 0: one per core."},
    {"fjord.write.caching", "Fjord: the topic default of fjord.write.caching."},
};

template <size_t N>
const config_def* find_in(const config_def (&defs)[N], std::string_view name) {
    auto it = std::lower_bound(std::begin(defs), std::end(defs) - 0, name,
                               [](const config_def& d, std::string_view n) { return d.name < n; });
    if (it != std::end(defs) && it->name == name) return it;
    // The fjord. extras follow the sorted Kafka part.
    for (const auto& d : defs) {
        if (d.name == name) return &d;
    }
    return nullptr;
}

const std::string* lookup(const cluster::config_map* m, std::string_view key) {
    if (!m) return nullptr;
    auto it = m->find(key);
    return it == m->end() ? nullptr : &it->second;
}

const std::string* lookup(const properties& m, std::string_view key) {
    auto it = m.find(std::string(key));
    return it == m.end() ? nullptr : &it->second;
}

// A broker synonym's value in the topic config's unit (hours and minutes to ms).
std::string in_topic_unit(std::string_view synonym, const std::string& value) {
    int64_t factor = 0;
    if (synonym.ends_with(".hours")) factor = 3600000;
    if (synonym.ends_with(".minutes")) factor = 60000;
    if (factor == 0) return value;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || p != value.data() + value.size()) return value;
    return std::to_string(v * factor);
}

// Fjord's defaults where they differ from Kafka's (Kafka has none for these).
std::optional<std::string> fjord_default(const broker_config& cfg, std::string_view name) {
    if (name == "node.id" || name == "broker.id") return std::to_string(cfg.node_id);
    if (name == "log.dirs") return cfg.log_dir;
    return std::nullopt;
}

}  // namespace

std::span<const config_def> topic_config_catalog() {
    return topic_defs;
}
std::span<const config_def> broker_config_catalog() {
    return broker_defs;
}
const config_def* find_topic_config_def(std::string_view name) {
    return find_in(topic_defs, name);
}
const config_def* find_broker_config_def(std::string_view name) {
    return find_in(broker_defs, name);
}

std::vector<std::string_view> topic_config_broker_synonyms(std::string_view topic_config) {
    std::vector<std::string_view> out;
    for (const auto& m : multi_synonyms) {
        if (m.topic != topic_config) continue;
        for (auto s : m.broker) {
            if (!s.empty()) out.push_back(s);
        }
        return out;
    }
    if (const auto* d = find_topic_config_def(topic_config); d && !d->default_synonym.empty()) {
        out.push_back(d->default_synonym);
    }
    return out;
}

std::string config_documentation(std::string_view name, bool topic) {
    for (const auto& d : topic ? std::span<const doc>(topic_docs) : std::span<const doc>(broker_docs)) {
        if (d.name == name) return std::string(d.text);
    }
    if (!topic) {
        for (const auto& d : topic_docs) {
            // A broker default of a topic config.
            for (auto s : topic_config_broker_synonyms(d.name)) {
                if (s == name) return fmt::format("The default of the topic config {}. {}", d.name, d.text);
            }
        }
    }
    return topic ? "Kafka topic config; accepted, validated and reported; Fjord does not act on it."
                 : "Kafka broker config; accepted and reported; Fjord does not act on it.";
}

dynamic_broker_configs dynamic_configs_of(const cluster::metadata_image& img, int32_t node_id) {
    return {img.broker_configs(""), img.broker_configs(std::to_string(node_id))};
}

std::vector<described_config> describe_topic_configs(const broker_config& cfg, const dynamic_broker_configs& dyn,
                                                     const cluster::config_map& topic) {
    std::vector<described_config> out;
    out.reserve(std::size(topic_defs));
    for (const auto& d : topic_defs) {
        described_config c;
        c.name = std::string(d.name);
        c.type = d.type;
        c.read_only = d.read_only;
        c.sensitive = d.sensitive;
        if (const auto* v = lookup(&topic, d.name)) c.synonyms.push_back({c.name, *v, config_source::dynamic_topic});
        for (auto s : topic_config_broker_synonyms(d.name)) {
            if (const auto* v = lookup(dyn.this_broker, s))
                c.synonyms.push_back({std::string(s), *v, config_source::dynamic_broker});
            if (const auto* v = lookup(dyn.cluster_default, s))
                c.synonyms.push_back({std::string(s), *v, config_source::dynamic_default_broker});
            if (const auto* v = lookup(cfg.static_props, s))
                c.synonyms.push_back({std::string(s), *v, config_source::static_broker});
        }
        if (!d.default_synonym.empty() && d.default_value) {
            c.synonyms.push_back(
                {std::string(d.default_synonym), std::string(*d.default_value), config_source::default_config});
        }
        if (!c.synonyms.empty() && c.synonyms.front().source != config_source::default_config) {
            c.source = c.synonyms.front().source;
            c.value = in_topic_unit(c.synonyms.front().name, *c.synonyms.front().value);
        } else {
            c.source = config_source::default_config;
            if (d.default_value) c.value = std::string(*d.default_value);
        }
        if (c.sensitive) {
            c.value.reset();
            for (auto& s : c.synonyms) s.value.reset();
        }
        out.push_back(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

std::vector<described_config> describe_broker_configs(const broker_config& cfg, const dynamic_broker_configs& dyn) {
    std::vector<described_config> out;
    out.reserve(std::size(broker_defs));
    for (const auto& d : broker_defs) {
        described_config c;
        c.name = std::string(d.name);
        c.type = d.type;
        c.read_only = d.read_only;
        c.sensitive = d.sensitive;
        if (const auto* v = lookup(dyn.this_broker, d.name))
            c.synonyms.push_back({c.name, *v, config_source::dynamic_broker});
        if (const auto* v = lookup(dyn.cluster_default, d.name))
            c.synonyms.push_back({c.name, *v, config_source::dynamic_default_broker});
        if (const auto* v = lookup(cfg.static_props, d.name))
            c.synonyms.push_back({c.name, *v, config_source::static_broker});
        auto fjord_def = fjord_default(cfg, d.name);
        if (fjord_def) {
            c.synonyms.push_back({c.name, *fjord_def, config_source::default_config});
        } else if (d.default_value && !d.sensitive) {
            c.synonyms.push_back({c.name, std::string(*d.default_value), config_source::default_config});
        }
        if (!c.synonyms.empty()) {
            c.source = c.synonyms.front().source;
            c.value = c.synonyms.front().value;
        } else {
            c.source = config_source::default_config;
        }
        if (c.sensitive) {
            c.value.reset();
            for (auto& s : c.synonyms) s.value.reset();
        }
        out.push_back(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

broker_config with_dynamic_topic_defaults(const broker_config& cfg, const dynamic_broker_configs& dyn) {
    broker_config out = cfg;
    if (!dyn.cluster_default && !dyn.this_broker) return out;
    for (const auto& d : topic_config_defs()) {
        // The most specific broker synonym set dynamically wins (per-broker
        // over cluster default), then the static one already in topic_defaults.
        for (const auto* level : {dyn.this_broker, dyn.cluster_default}) {
            bool found = false;
            for (auto s : topic_config_broker_synonyms(d.name)) {
                if (const auto* v = lookup(level, s)) {
                    out.topic_defaults[std::string(d.name)] = in_topic_unit(s, *v);
                    found = true;
                    break;
                }
            }
            if (found) break;
        }
    }
    return out;
}

std::optional<std::string> check_config_value(const config_def& def, std::string_view value) {
    std::string_view v = value;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    auto integral = [&](auto zero, const char* tname) -> std::optional<std::string> {
        decltype(zero) out{};
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
        if (v.empty() || ec != std::errc() || p != v.data() + v.size()) {
            return fmt::format("Invalid value {} for configuration {}: Not a number of type {}", value, def.name,
                               tname);
        }
        return std::nullopt;
    };
    switch (def.type) {
        case config_type::boolean: {
            std::string lower(v);
            for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (lower == "true" || lower == "false") return std::nullopt;
            return fmt::format("Invalid value {} for configuration {}: Expected value to be either true or false",
                               value, def.name);
        }
        case config_type::int_: return integral(int32_t{}, "INT");
        case config_type::short_: return integral(int16_t{}, "SHORT");
        case config_type::long_: return integral(int64_t{}, "LONG");
        case config_type::double_: {
            try {
                size_t used = 0;
                (void)std::stod(std::string(v), &used);
                if (used == v.size()) return std::nullopt;
            } catch (...) {
            }
            return fmt::format("Invalid value {} for configuration {}: Not a number of type DOUBLE", value, def.name);
        }
        default: return std::nullopt;
    }
}

}  // namespace fjord::kafka
