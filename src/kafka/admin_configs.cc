// Config admin: DescribeConfigs (32), AlterConfigs (33),
// IncrementalAlterConfigs (44), ListConfigResources (74). Topic and broker
// resources, every config of Kafka 4.4's catalog (config_catalog.h) with its
// source and synonyms; changes are checked as Kafka 4.4 checks them (same
// error codes) and written through the controller.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "base/logger.h"
#include "cluster/topic_name.h"
#include "kafka/admin.h"
#include "kafka/config_catalog.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "protocol/gen/alter_configs.h"
#include "protocol/gen/describe_configs.h"
#include "protocol/gen/incremental_alter_configs.h"
#include "protocol/gen/list_config_resources.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

namespace {
constexpr int8_t resource_topic = 2;
constexpr int8_t resource_broker = 4;
constexpr int8_t resource_broker_logger = 8;
constexpr int8_t resource_client_metrics = 16;
constexpr int8_t resource_group = 32;

struct resource_error {
    int16_t code = 0;
    std::string message;
};

// The broker resource name check of DescribeConfigs (allow_empty) and the alters.
std::optional<resource_error> check_broker_name(const std::string& name, int32_t node, bool allow_empty) {
    if (name.empty()) {
        if (allow_empty) return std::nullopt;
    }
    int32_t id = 0;
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
    if (name.empty() || ec != std::errc() || p != name.data() + name.size()) {
        return resource_error{error::invalid_request, "Broker id must be an integer, but it is: " + name};
    }
    if (id != node) {
        return resource_error{error::invalid_request,
                              allow_empty
                                  ? fmt::format("Unexpected broker id, expected {} or empty string, but "
                                                "received {}",
                                                node, name)
                                  : fmt::format("Unexpected broker id, expected {}, but received {}", node, name)};
    }
    return std::nullopt;
}

std::vector<std::string> split_list(const std::string& v) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= v.size()) {
        size_t comma = v.find(',', start);
        std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && item.back() == ' ') item.pop_back();
        if (!item.empty()) out.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

std::string join_list(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
    return out;
}

// One resource's wanted changes, in the form both alter APIs reduce to.
struct alter_plan {
    int8_t type = 0;
    std::string name;
    std::vector<cluster::config_change> changes;
    bool replace = false;
};

// Checks the changes of one resource (after duplicates and names were
// checked): keys, values, read-only broker configs. Kafka's codes: topics
// INVALID_CONFIG, brokers INVALID_REQUEST.
std::optional<resource_error> check_changes(shard_ctx& sh, const alter_plan& plan) {
    const auto& cfg = sh.owner.config();
    if (plan.type == resource_topic) {
        const auto* t = sh.image->find_topic(plan.name);
        properties merged = plan.replace || !t ? properties{} : properties(t->configs.begin(), t->configs.end());
        for (const auto& c : plan.changes) {
            const config_def* def = find_topic_config_def(c.key);
            if (!def) return resource_error{error::invalid_config, "Unknown topic config name: " + c.key};
            if (c.value) {
                if (auto m = check_config_value(*def, *c.value)) return resource_error{error::invalid_config, *m};
                merged[c.key] = *c.value;
            } else {
                merged.erase(c.key);
            }
        }
        auto dyn = dynamic_configs_of(*sh.image, cfg.node_id);
        if (auto r = resolve_topic_config(with_dynamic_topic_defaults(cfg, dyn), merged); !r) {
            return resource_error{error::invalid_config, r.error()};
        }
        return std::nullopt;
    }
    std::vector<std::string> read_only;
    for (const auto& c : plan.changes) {
        const config_def* def = find_broker_config_def(c.key);
        if (!def) continue;  // Kafka keeps unknown broker keys (custom plugin configs)
        if (def->read_only) {
            read_only.push_back(c.key);
            continue;
        }
        if (c.value) {
            if (auto m = check_config_value(*def, *c.value)) return resource_error{error::invalid_request, *m};
        }
    }
    if (!read_only.empty()) {
        std::string list;
        for (const auto& k : read_only) list += (list.empty() ? "" : ", ") + k;
        return resource_error{error::invalid_request,
                              fmt::format("Cannot update these configs dynamically: [{}]", list)};
    }
    // A topic default set dynamically must still give valid topic configs.
    const auto* own = sh.image->broker_configs(plan.name);
    cluster::config_map next = own ? *own : cluster::config_map{};
    if (plan.replace) next.clear();
    for (const auto& c : plan.changes) {
        if (c.value) {
            next[c.key] = *c.value;
        } else {
            next.erase(c.key);
        }
    }
    dynamic_broker_configs dyn = dynamic_configs_of(*sh.image, cfg.node_id);
    if (plan.name.empty()) {
        dyn.cluster_default = &next;
    } else {
        dyn.this_broker = &next;
    }
    if (auto r = resolve_topic_config(with_dynamic_topic_defaults(cfg, dyn), {}); !r) {
        return resource_error{error::invalid_request, r.error()};
    }
    return std::nullopt;
}

// Names, types and duplicates: what both alter APIs check before the changes.
std::optional<resource_error> check_resource(shard_ctx& sh, int8_t type, const std::string& name,
                                             int count_in_request) {
    if (count_in_request > 1) return resource_error{error::invalid_request, "Each resource must appear at most once."};
    if (type == resource_topic) {
        if (!cluster::is_valid_topic_name(name)) {
            return resource_error{error::invalid_topic_exception, invalid_topic_name_message(name)};
        }
        if (!sh.image->find_topic(name)) {
            return resource_error{error::unknown_topic_or_partition,
                                  fmt::format("The topic '{}' does not exist.", name)};
        }
        return std::nullopt;
    }
    if (type == resource_broker) return check_broker_name(name, sh.owner.config().node_id, true);
    if (type == resource_broker_logger) {
        return resource_error{error::invalid_request, "Fjord has no broker loggers to alter."};
    }
    return resource_error{error::invalid_request, fmt::format("Unknown resource type {}", type)};
}

net::awaitable<std::optional<resource_error>> apply_plan(shard_ctx& sh, alter_plan plan, bool validate_only) {
    auto type =
        plan.type == resource_topic ? cluster::config_resource_type::topic : cluster::config_resource_type::broker;
    auto op = run_controller_op(
        sh, [type, plan = std::move(plan), validate_only](cluster::controller& c, controller_done done) mutable {
            c.alter_configs(type, std::move(plan.name), std::move(plan.changes), plan.replace, std::move(done),
                            validate_only);
        });
    auto err = co_await std::move(op);
    if (err) co_return resource_error{kafka_error_of(*err), std::string(cluster::describe(*err))};
    co_return std::nullopt;
}

template <typename Key>
std::map<Key, int> count_resources(const auto& resources) {
    std::map<Key, int> out;
    for (const auto& r : resources) ++out[Key{r.resource_type, r.resource_name}];
    return out;
}
}  // namespace

net::awaitable<net::response> handle_describe_configs(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                      net::request_order&) {
    auto req = decode_request<gen::describe_configs_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const auto& cfg = sh.owner.config();
    const int16_t v = ctx.version;
    auto image = sh.image;
    auto dyn = dynamic_configs_of(*image, cfg.node_id);
    gen::describe_configs_response resp;
    for (const auto& res : req->resources) {
        gen::describe_configs_response::describe_configs_result out;
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_message = "";
        std::vector<described_config> configs;
        bool topic = res.resource_type == resource_topic;
        if (topic) {
            if (!cluster::is_valid_topic_name(res.resource_name)) {
                out.error_code = error::invalid_topic_exception;
                out.error_message = invalid_topic_name_message(res.resource_name);
            } else if (const auto* t = image->find_topic(res.resource_name)) {
                configs = describe_topic_configs(cfg, dyn, t->configs);
            } else {
                out.error_code = error::unknown_topic_or_partition;
            }
        } else if (res.resource_type == resource_broker || res.resource_type == resource_broker_logger) {
            if (auto e = check_broker_name(res.resource_name, cfg.node_id, res.resource_type == resource_broker)) {
                out.error_code = e->code;
                out.error_message = e->message;
            } else if (res.resource_type == resource_broker_logger) {
                described_config root;
                root.name = "root";
                root.value = "INFO";
                root.source = static_cast<config_source>(6);  // DYNAMIC_BROKER_LOGGER_CONFIG
                root.type = config_type::unknown;
                configs.push_back(std::move(root));
            } else if (res.resource_name.empty()) {
                // The cluster-wide default resource: only what is set dynamically.
                if (dyn.cluster_default) {
                    for (const auto& [k, val] : *dyn.cluster_default) {
                        described_config c;
                        c.name = k;
                        c.value = val;
                        c.source = config_source::dynamic_default_broker;
                        if (const auto* d = find_broker_config_def(k)) {
                            c.type = d->type;
                            c.sensitive = d->sensitive;
                            c.read_only = d->read_only;
                            if (c.sensitive) c.value.reset();
                        }
                        c.synonyms.push_back({c.name, c.value, c.source});
                        configs.push_back(std::move(c));
                    }
                }
            } else {
                configs = describe_broker_configs(cfg, dyn);
            }
        } else {
            out.error_code = error::invalid_request;
            out.error_message =
                "This most likely occurs because of a request being malformed by the client library or the message "
                "was sent to an incompatible broker. See the broker logs for more details.";
        }
        std::set<std::string> keys;
        if (res.configuration_keys) keys.insert(res.configuration_keys->begin(), res.configuration_keys->end());
        for (auto& c : configs) {
            if (res.configuration_keys && !keys.count(c.name)) continue;
            gen::describe_configs_response::describe_configs_resource_result r;
            r.name = c.name;
            r.value = c.value;
            r.read_only = c.read_only;
            // Each field only where the version has it (is_default: v0; source: v1+).
            if (v == 0) {
                r.is_default = c.source == config_source::default_config;
            } else {
                r.config_source = static_cast<int8_t>(c.source);
            }
            r.is_sensitive = c.sensitive;
            if (req->include_synonyms && v >= 1) {
                for (auto& s : c.synonyms) {
                    r.synonyms.push_back({.name = std::move(s.name),
                                          .value = std::move(s.value),
                                          .source = static_cast<int8_t>(s.source),
                                          .unknown_tagged_fields = {}});
                }
            }
            if (v >= 3) {
                r.config_type = static_cast<int8_t>(c.type);
                if (req->include_documentation) {
                    r.documentation = res.resource_type == resource_broker_logger ? std::string()
                                                                                  : config_documentation(c.name, topic);
                } else {
                    r.documentation = std::nullopt;
                }
            }
            out.configs.push_back(std::move(r));
        }
        resp.results.push_back(std::move(out));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_alter_configs(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::alter_configs_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    auto counts = count_resources<std::pair<int8_t, std::string>>(req->resources);
    gen::alter_configs_response resp;
    for (const auto& res : req->resources) {
        gen::alter_configs_response::alter_configs_resource_response out;
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_message = std::nullopt;
        auto err =
            check_resource(sh, res.resource_type, res.resource_name, counts[{res.resource_type, res.resource_name}]);
        alter_plan plan{res.resource_type, res.resource_name, {}, true};
        if (!err) {
            std::set<std::string> keys;
            for (const auto& c : res.configs) {
                if (!keys.insert(c.name).second) {
                    err = resource_error{error::invalid_request, "Error due to duplicate config keys"};
                    break;
                }
                if (!c.value && res.resource_type == resource_topic) {
                    err =
                        resource_error{error::invalid_config, "Null value not supported for topic configs: " + c.name};
                    break;
                }
                plan.changes.push_back({c.name, c.value});
            }
        }
        if (!err) err = check_changes(sh, plan);
        if (!err) {
            auto applying = apply_plan(sh, std::move(plan), req->validate_only);
            err = co_await std::move(applying);
        }
        if (err) {
            out.error_code = err->code;
            out.error_message = err->message;
        }
        resp.responses.push_back(std::move(out));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_incremental_alter_configs(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                               net::request_order&) {
    auto req = decode_request<gen::incremental_alter_configs_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const auto& cfg = sh.owner.config();
    auto counts = count_resources<std::pair<int8_t, std::string>>(req->resources);
    gen::incremental_alter_configs_response resp;
    for (const auto& res : req->resources) {
        gen::incremental_alter_configs_response::alter_configs_resource_response out;
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_message = std::nullopt;
        const bool topic = res.resource_type == resource_topic;
        auto err =
            check_resource(sh, res.resource_type, res.resource_name, counts[{res.resource_type, res.resource_name}]);
        alter_plan plan{res.resource_type, res.resource_name, {}, false};
        if (!err) {
            std::set<std::string> keys;
            for (const auto& c : res.configs) {
                if (!keys.insert(c.name).second) {
                    err = resource_error{error::invalid_request, "Error due to duplicate config keys"};
                    break;
                }
            }
        }
        // The current explicit values, for APPEND and SUBTRACT.
        const cluster::config_map* current = nullptr;
        if (!err) {
            if (topic) {
                current = &sh.image->find_topic(res.resource_name)->configs;
            } else {
                current = sh.image->broker_configs(res.resource_name);
            }
        }
        for (const auto& c : res.configs) {
            if (err) break;
            const config_def* def = topic ? find_topic_config_def(c.name) : find_broker_config_def(c.name);
            switch (c.config_operation) {
                case 0:  // SET
                    if (!c.value) {
                        err = resource_error{error::invalid_request, "Null value not supported for : " + c.name};
                    } else {
                        plan.changes.push_back({c.name, c.value});
                    }
                    break;
                case 1:  // DELETE
                    plan.changes.push_back({c.name, std::nullopt});
                    break;
                case 2:    // APPEND
                case 3: {  // SUBTRACT
                    const char* what = c.config_operation == 2 ? "APPEND" : "SUBTRACT";
                    if (topic && !def) {
                        err = resource_error{error::invalid_config, "Unknown topic config name: " + c.name};
                        break;
                    }
                    if (def && def->type != config_type::list) {
                        err = resource_error{
                            topic ? error::invalid_config : error::invalid_request,
                            fmt::format("Can't {} to key {} because its type is not LIST.", what, c.name)};
                        break;
                    }
                    std::string base;
                    if (current && current->count(c.name)) {
                        base = current->at(c.name);
                    } else if (topic) {
                        auto dyn = dynamic_configs_of(*sh.image, cfg.node_id);
                        for (const auto& d : describe_topic_configs(cfg, dyn, {})) {
                            if (d.name == c.name) base = d.value.value_or("");
                        }
                    } else if (def && def->default_value) {
                        base = std::string(*def->default_value);
                    }
                    auto items = split_list(base);
                    for (const auto& item : split_list(c.value.value_or(""))) {
                        auto it = std::find(items.begin(), items.end(), item);
                        if (c.config_operation == 2 && it == items.end()) items.push_back(item);
                        if (c.config_operation == 3 && it != items.end()) items.erase(it);
                    }
                    plan.changes.push_back({c.name, join_list(items)});
                    break;
                }
                default:
                    // Kafka fails the resource with UNKNOWN_SERVER_ERROR and no message.
                    err = resource_error{error::unknown_server_error, ""};
                    break;
            }
        }
        if (!err) err = check_changes(sh, plan);
        if (!err) {
            auto applying = apply_plan(sh, std::move(plan), req->validate_only);
            err = co_await std::move(applying);
        }
        if (err) {
            out.error_code = err->code;
            if (!err->message.empty()) out.error_message = err->message;
        } else if (!req->validate_only) {
            log_info("{}: configs of {} '{}' altered (client {})", ctx.conn.peer, topic ? "topic" : "broker",
                     res.resource_name, ctx.client_id.value_or("null"));
        }
        resp.responses.push_back(std::move(out));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_list_config_resources(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                           net::request_order&) {
    auto req = decode_request<gen::list_config_resources_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::list_config_resources_response resp;
    // v0 (ListClientMetricsResources) lists client metrics resources only.
    std::set<int8_t> types;
    if (ctx.version == 0) {
        types = {resource_client_metrics};
    } else if (req->resource_types.empty()) {
        types = {resource_topic, resource_broker, resource_broker_logger, resource_client_metrics, resource_group};
    } else {
        for (int8_t t : req->resource_types) {
            if (t != resource_topic && t != resource_broker && t != resource_broker_logger &&
                t != resource_client_metrics && t != resource_group) {
                resp.error_code = error::unsupported_version;
                co_return encode_response(ctx, resp);
            }
            types.insert(t);
        }
    }
    const std::string node = std::to_string(sh.owner.config().node_id);
    using cr = gen::list_config_resources_response::config_resource;
    if (types.count(resource_broker_logger)) {
        resp.config_resources.push_back(
            cr{.resource_name = node, .resource_type = resource_broker_logger, .unknown_tagged_fields = {}});
    }
    if (types.count(resource_broker)) {
        resp.config_resources.push_back(
            cr{.resource_name = node, .resource_type = resource_broker, .unknown_tagged_fields = {}});
    }
    if (types.count(resource_topic)) {
        for (const auto& [name, t] : sh.image->topics()) {
            resp.config_resources.push_back(
                cr{.resource_name = name, .resource_type = resource_topic, .unknown_tagged_fields = {}});
        }
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
