// config_catalog: every topic and broker config Apache Kafka 4.4 describes
// (names, types, defaults, read-only and sensitive flags, recorded from the
// reference broker by tools/configs/record.sh into kafka-4.4-configs.tsv),
// plus Fjord's own `fjord.`-prefixed ones; and the DescribeConfigs view of
// a topic or of this broker built from them (values with their source and
// synonyms, in Kafka's precedence order).
//
// Threading: the catalog is immutable; describe_* are pure functions of
// their arguments (call them on any shard with that shard's image).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/metadata_table.h"
#include "kafka/config.h"

namespace fjord::kafka {

// DescribeConfigs config_type (KIP-569).
enum class config_type : int8_t {
    unknown = 0,
    boolean = 1,
    string = 2,
    int_ = 3,
    short_ = 4,
    long_ = 5,
    double_ = 6,
    list = 7,
    class_ = 8,
    password = 9
};

// DescribeConfigs config_source.
enum class config_source : int8_t {
    unknown = 0,
    dynamic_topic = 1,           // TOPIC_CONFIG
    dynamic_broker = 2,          // DYNAMIC_BROKER_CONFIG
    dynamic_default_broker = 3,  // DYNAMIC_DEFAULT_BROKER_CONFIG
    static_broker = 4,           // STATIC_BROKER_CONFIG
    default_config = 5,          // DEFAULT_CONFIG
};

struct config_def {
    std::string_view name;
    config_type type = config_type::string;
    std::optional<std::string_view> default_value;  // nullopt: no default (null)
    bool read_only = false;                         // brokers: not dynamically updatable per broker
    bool sensitive = false;
    // Topics: the broker config Kafka names as the DEFAULT_CONFIG synonym ("" none).
    std::string_view default_synonym;
};

std::span<const config_def> topic_config_catalog();
std::span<const config_def> broker_config_catalog();
const config_def* find_topic_config_def(std::string_view name);
const config_def* find_broker_config_def(std::string_view name);
// The broker configs a topic config falls back to, most specific first
// (retention.ms: log.retention.ms, log.retention.minutes, log.retention.hours).
std::vector<std::string_view> topic_config_broker_synonyms(std::string_view topic_config);
// Fjord's description of a config (DescribeConfigs documentation).
std::string config_documentation(std::string_view name, bool topic);

struct config_synonym {
    std::string name;
    std::optional<std::string> value;
    config_source source = config_source::default_config;
};

struct described_config {
    std::string name;
    std::optional<std::string> value;
    config_source source = config_source::default_config;
    bool read_only = false;
    bool sensitive = false;
    config_type type = config_type::string;
    std::vector<config_synonym> synonyms;  // the value's own source first
};

// Dynamic broker configs in effect for this node: the cluster-wide default
// ("" in the image) and this broker's own (its node id).
struct dynamic_broker_configs {
    const cluster::config_map* cluster_default = nullptr;
    const cluster::config_map* this_broker = nullptr;
};
dynamic_broker_configs dynamic_configs_of(const cluster::metadata_image& img, int32_t node_id);

// Every config of a topic, defaults included, sorted by name.
std::vector<described_config> describe_topic_configs(const broker_config& cfg, const dynamic_broker_configs& dyn,
                                                     const cluster::config_map& topic);
// Every config of this broker, sorted by name.
std::vector<described_config> describe_broker_configs(const broker_config& cfg, const dynamic_broker_configs& dyn);

// The broker's topic defaults with the dynamic broker configs applied
// (log.retention.ms set by kafka-configs applies to every topic without its own).
broker_config with_dynamic_topic_defaults(const broker_config& cfg, const dynamic_broker_configs& dyn);

// Checks that `value` parses as `type` (Kafka's ConfigDef parsing); the
// error text when it does not.
std::optional<std::string> check_config_value(const config_def& def, std::string_view value);

}  // namespace fjord::kafka
