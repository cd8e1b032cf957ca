// Topic admin: CreateTopics (19), DeleteTopics (20), CreatePartitions (37),
// DescribeTopicPartitions (75), and the helpers of admin.h. Requests are
// checked here the way Kafka 4.4's controller checks them (same error codes,
// one result per distinct topic), then handed to the controller (shard 0);
// the answer waits until the change is visible on the request's shard.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "base/logger.h"
#include "cluster/topic_name.h"
#include "kafka/admin.h"
#include "kafka/config_catalog.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "protocol/gen/create_partitions.h"
#include "protocol/gen/create_topics.h"
#include "protocol/gen/delete_topics.h"
#include "protocol/gen/describe_topic_partitions.h"

namespace fjord::kafka {
namespace gen = protocol::gen;
namespace asio = net::asio;

namespace {
struct op_state {
    explicit op_state(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    std::optional<cluster::errc> error;
    int64_t offset = -1;
};
struct op_result {
    std::optional<cluster::errc> error;
    int64_t offset = -1;
};

net::awaitable<op_result> run_on_controller_shard(broker* b, controller_op op) {
    auto st = std::make_shared<op_state>(co_await asio::this_coro::executor);
    op(b->controller(), [st](result<void, cluster::errc> r, cluster::controller::image_ptr img) {
        if (!r) st->error = r.error();
        st->offset = img ? img->last_offset() : -1;
        st->done = true;
        st->ev.notify();
    });
    while (!st->done) co_await st->ev.wait();
    co_return op_result{st->error, st->offset};
}

struct topics_state {
    explicit topics_state(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    std::vector<cluster::topic_outcome> outcomes;
    int64_t offset = -1;
};
struct topics_result {
    std::vector<cluster::topic_outcome> outcomes;
    int64_t offset = -1;
};

// Deletes (or validates the creation of) topics on shard 0.
net::awaitable<topics_result> topics_on_controller(broker* b, std::vector<cluster::topic_spec> create,
                                                   std::vector<protocol::uuid> remove, bool validate_only) {
    auto st = std::make_shared<topics_state>(co_await asio::this_coro::executor);
    auto done = [st](std::vector<cluster::topic_outcome> out, cluster::controller::image_ptr img) {
        st->outcomes = std::move(out);
        st->offset = img ? img->last_offset() : -1;
        st->done = true;
        st->ev.notify();
    };
    if (!remove.empty()) {
        b->controller().delete_topics(std::move(remove), done);
    } else {
        b->controller().create_topics(std::move(create), done, validate_only);
    }
    while (!st->done) co_await st->ev.wait();
    co_return topics_result{std::move(st->outcomes), st->offset};
}

net::awaitable<std::vector<cluster::topic_outcome>> topics_op(shard_ctx& sh, std::vector<cluster::topic_spec> create,
                                                              std::vector<protocol::uuid> remove, bool validate_only) {
    auto* b = &sh.owner;
    auto task = b->shards().invoke_on(0, [b, c = std::move(create), r = std::move(remove), validate_only]() mutable {
        return topics_on_controller(b, std::move(c), std::move(r), validate_only);
    });
    auto res = co_await std::move(task);
    while (sh.image->last_offset() < res.offset) co_await sh.image_advanced->wait();
    co_return std::move(res.outcomes);
}

std::optional<std::string> error_message_of(cluster::errc e, const std::string& name) {
    switch (e) {
        case cluster::errc::topic_already_exists: return fmt::format("Topic '{}' already exists.", name);
        case cluster::errc::duplicate_topic: return std::string("Duplicate topic name.");
        case cluster::errc::topic_name_collision:
            return fmt::format("Topic '{}' collides with an existing topic ('.' and '_' are the same in metric names).",
                               name);
        case cluster::errc::invalid_topic_name: return invalid_topic_name_message(name);
        default: return std::nullopt;
    }
}

// The manual assignment check of CreateTopics and CreatePartitions: every
// replica list non-empty, without repeats, of registered brokers, all of the
// size of the first (`rf`, set from the first list when -1), not all fenced.
std::optional<std::string> check_assignment(int32_t partition, const std::vector<int32_t>& brokers,
                                            const cluster::metadata_image& img, int32_t& rf) {
    if (brokers.empty()) return std::string("The manual partition assignment includes an empty replica list.");
    std::set<int32_t> seen;
    for (int32_t b : brokers) {
        if (!seen.insert(b).second) {
            return fmt::format("The manual partition assignment includes the broker {} more than once.", b);
        }
        if (!img.find_broker(b)) {
            return fmt::format("The manual partition assignment includes broker {}, but no such broker is registered.",
                               b);
        }
    }
    const auto n = static_cast<int32_t>(brokers.size());
    if (rf == -1) rf = n;
    if (std::all_of(brokers.begin(), brokers.end(), [&img](int32_t b) { return img.find_broker(b)->fenced; })) {
        return fmt::format(
            "All brokers specified in the manual partition assignment for partition {} are fenced or in controlled "
            "shutdown.",
            partition);
    }
    if (n != rf) {
        return fmt::format(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with "
            "previous partitions, which have {} replica(s).",
            n, rf);
    }
    return std::nullopt;
}
}  // namespace

net::awaitable<std::optional<cluster::errc>> run_controller_op(shard_ctx& sh, controller_op op) {
    auto* b = &sh.owner;
    auto task =
        b->shards().invoke_on(0, [b, o = std::move(op)]() mutable { return run_on_controller_shard(b, std::move(o)); });
    auto res = co_await std::move(task);
    while (sh.image->last_offset() < res.offset) co_await sh.image_advanced->wait();
    co_return res.error;
}

int16_t kafka_error_of(cluster::errc e) {
    switch (e) {
        case cluster::errc::invalid_topic_name:
        case cluster::errc::topic_name_collision: return error::invalid_topic_exception;
        case cluster::errc::topic_already_exists: return error::topic_already_exists;
        case cluster::errc::invalid_partitions: return error::invalid_partitions;
        case cluster::errc::invalid_replication_factor: return error::invalid_replication_factor;
        case cluster::errc::invalid_replica_assignment: return error::invalid_replica_assignment;
        case cluster::errc::invalid_config: return error::invalid_config;
        case cluster::errc::unknown_topic: return error::unknown_topic_or_partition;
        case cluster::errc::unknown_topic_id: return error::unknown_topic_id;
        case cluster::errc::duplicate_topic: return error::invalid_request;
        case cluster::errc::io_error:
        case cluster::errc::metadata_offline: return error::kafka_storage_error;
        case cluster::errc::not_controller: return error::not_controller;
        default: return error::unknown_server_error;
    }
}

std::string invalid_topic_name_message(const std::string& name) {
    if (cluster::is_valid_topic_name(name)) return {};
    if (name.empty()) return "Topic name is invalid: the empty string is not allowed";
    if (name == "." || name == "..") return "Topic name is invalid: '.' and '..' are not allowed";
    if (name.size() > cluster::max_topic_name_length) {
        return fmt::format("Topic name is invalid: the length of '{}' is longer than the max allowed length {}", name,
                           cluster::max_topic_name_length);
    }
    return fmt::format(
        "Topic name is invalid: '{}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'",
        name);
}

net::awaitable<net::response> handle_create_topics(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::create_topics_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    using result_t = gen::create_topics_response::creatable_topic_result;
    const auto& cfg = sh.owner.config();
    const int32_t node = cfg.node_id;
    gen::create_topics_response resp;

    std::map<std::string, int> seen;
    for (const auto& t : req->topics) ++seen[t.name];
    std::set<std::string> answered;
    std::vector<cluster::topic_spec> specs;
    std::vector<size_t> spec_at;  // index in resp.topics
    auto fail_topic = [](result_t& r, int16_t code, std::optional<std::string> msg) {
        r.error_code = code;
        r.error_message = std::move(msg);
        r.num_partitions = -1;
        r.replication_factor = -1;
        r.configs = std::vector<gen::create_topics_response::creatable_topic_configs>{};
    };
    for (const auto& t : req->topics) {
        if (!answered.insert(t.name).second) continue;  // one result per distinct name
        result_t r;
        r.name = t.name;
        r.error_message = std::nullopt;
        if (seen[t.name] > 1) {
            fail_topic(r, error::invalid_request, "Duplicate topic name.");
        } else if (req->timeout_ms <= 0) {
            // Kafka's controller deadline has already passed.
            fail_topic(r, error::request_timed_out, std::nullopt);
        } else if (!cluster::is_valid_topic_name(t.name)) {
            fail_topic(r, error::invalid_topic_exception, invalid_topic_name_message(t.name));
        } else if (sh.image->find_topic(t.name)) {
            fail_topic(r, error::topic_already_exists, fmt::format("Topic '{}' already exists.", t.name));
        } else {
            std::optional<std::pair<int16_t, std::string>> err;
            int32_t partitions = t.num_partitions;
            int16_t rf = t.replication_factor;
            if (!t.assignments.empty()) {
                if (t.replication_factor != -1) {
                    err = {error::invalid_request,
                           "A manual partition assignment was specified, but replication factor was not set to -1."};
                } else if (t.num_partitions != -1) {
                    err = {error::invalid_request,
                           "A manual partition assignment was specified, but numPartitions was not set to -1."};
                } else {
                    std::set<int32_t> indexes;
                    int32_t want_rf = -1;
                    for (const auto& a : t.assignments) {
                        indexes.insert(a.partition_index);
                        if (auto m = check_assignment(a.partition_index, a.broker_ids, *sh.image, want_rf)) {
                            err = {error::invalid_replica_assignment, *m};
                            break;
                        }
                    }
                    const int32_t n = static_cast<int32_t>(t.assignments.size());
                    if (!err && (static_cast<int32_t>(indexes.size()) != n || *indexes.begin() != 0 ||
                                 *indexes.rbegin() != n - 1)) {
                        err = {error::invalid_replica_assignment,
                               "Partitions should be a consecutive 0-based integer sequence"};
                    }
                    partitions = n;
                    rf = static_cast<int16_t>(t.assignments.front().broker_ids.size());
                }
            } else if (partitions == 0 || partitions < -1) {
                err = {error::invalid_partitions, "Number of partitions was set to an invalid non-positive value."};
            } else if (rf == 0 || rf < -1) {
                err = {error::invalid_replication_factor,
                       "Replication factor must be larger than 0, or -1 to use the default value."};
            }
            const int32_t eff_rf = rf == -1 ? cfg.default_replication_factor : rf;
            const size_t live = sh.image->live_brokers().size();
            // A manual assignment names its brokers (registered, maybe down).
            if (!err && t.assignments.empty() && static_cast<size_t>(eff_rf) > std::max<size_t>(live, 1)) {
                err = {error::invalid_replication_factor,
                       fmt::format("Unable to replicate the partition {} time(s): The target replication factor of {} "
                                   "cannot be reached because only {} broker(s) are registered or some brokers have "
                                   "all their log directories cordoned.",
                                   eff_rf, eff_rf, std::max<size_t>(live, 1))};
            }
            const int32_t eff_partitions = partitions == -1 ? cfg.num_partitions : partitions;
            if (!err && eff_partitions > 100'000) {
                err = {
                    error::invalid_partitions,
                    fmt::format("Number of partitions {} is above Fjord's limit of 100000 per topic.", eff_partitions)};
            }
            properties configs;
            for (const auto& c : t.configs) {
                if (err) break;
                const config_def* def = find_topic_config_def(c.name);
                if (!c.value) {
                    err = {error::invalid_config, "Null value not supported for topic configs: " + c.name};
                } else if (!def) {
                    err = {error::invalid_config, "Unknown topic config name: " + c.name};
                } else if (auto m = check_config_value(*def, *c.value)) {
                    err = {error::invalid_config, *m};
                } else {
                    configs[c.name] = *c.value;
                }
            }
            if (!err) {
                auto dyn = dynamic_configs_of(*sh.image, node);
                if (auto resolved = resolve_topic_config(with_dynamic_topic_defaults(cfg, dyn), configs); !resolved) {
                    err = {error::invalid_config, resolved.error()};
                }
            }
            if (err) {
                fail_topic(r, err->first, err->second);
            } else {
                r.num_partitions = eff_partitions;
                r.replication_factor = static_cast<int16_t>(eff_rf);
                cluster::topic_spec spec{.name = t.name,
                                         .partitions = eff_partitions,
                                         .replication_factor = static_cast<int16_t>(eff_rf),
                                         .configs = {configs.begin(), configs.end()},
                                         .assignment = {}};
                if (!t.assignments.empty()) {
                    spec.assignment.resize(t.assignments.size());
                    for (const auto& a : t.assignments) {
                        spec.assignment[static_cast<size_t>(a.partition_index)] = a.broker_ids;
                    }
                }
                specs.push_back(std::move(spec));
                spec_at.push_back(resp.topics.size());
            }
        }
        resp.topics.push_back(std::move(r));
    }
    if (!specs.empty()) {
        auto requested = specs;
        auto creating = topics_op(sh, std::move(specs), {}, req->validate_only);
        auto outcomes = co_await std::move(creating);
        auto dyn = dynamic_configs_of(*sh.image, node);
        for (size_t i = 0; i < outcomes.size() && i < spec_at.size(); ++i) {
            const auto& o = outcomes[i];
            auto& r = resp.topics[spec_at[i]];
            if (o.error) {
                fail_topic(r, kafka_error_of(*o.error), error_message_of(*o.error, o.name));
                continue;
            }
            r.topic_id = o.topic_id;
            cluster::config_map topic_configs(requested[i].configs.begin(), requested[i].configs.end());
            std::vector<gen::create_topics_response::creatable_topic_configs> out;
            for (auto& d : describe_topic_configs(cfg, dyn, topic_configs)) {
                gen::create_topics_response::creatable_topic_configs c;
                c.name = std::move(d.name);
                c.value = std::move(d.value);
                c.read_only = d.read_only;
                c.config_source = static_cast<int8_t>(d.source);
                c.is_sensitive = d.sensitive;
                out.push_back(std::move(c));
            }
            r.configs = std::move(out);
            if (!req->validate_only) {
                log_info("{}: topic {} created: {} partitions (client {})", ctx.conn.peer, o.name,
                         requested[i].partitions, ctx.client_id.value_or("null"));
            }
        }
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_delete_topics(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::delete_topics_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    using result_t = gen::delete_topics_response::deletable_topic_result;
    std::vector<gen::delete_topics_request::delete_topic_state> wanted;
    if (ctx.version >= 6) {
        wanted = req->topics;
    } else {
        for (const auto& n : req->topic_names)
            wanted.push_back({.name = n, .topic_id = {}, .unknown_tagged_fields = {}});
    }
    std::map<std::string, int> names;
    std::map<std::array<uint8_t, 16>, int> ids;
    for (const auto& w : wanted) {
        if (w.name && w.topic_id.is_zero()) ++names[*w.name];
        if (!w.name && !w.topic_id.is_zero()) ++ids[w.topic_id.bytes];
    }
    gen::delete_topics_response resp;
    std::set<std::string> answered_names;
    std::set<std::array<uint8_t, 16>> answered_ids;
    std::vector<protocol::uuid> to_delete;
    std::vector<size_t> delete_at;
    for (const auto& w : wanted) {
        result_t r;
        r.name = w.name;
        r.topic_id = w.topic_id;
        r.error_message = std::nullopt;
        if (w.name && !w.topic_id.is_zero()) {
            r.error_code = error::invalid_request;
            r.error_message = "You may not specify both topic name and topic id.";
        } else if (!w.name && w.topic_id.is_zero()) {
            r.error_code = error::invalid_request;
            r.error_message = "Neither topic name nor id were specified.";
        } else if (w.name) {
            if (!answered_names.insert(*w.name).second) continue;
            if (names[*w.name] > 1) {
                r.error_code = error::invalid_request;
                r.error_message = "Duplicate topic name.";
            } else if (req->timeout_ms <= 0) {
                r.error_code = error::request_timed_out;
            } else if (const auto* t = sh.image->find_topic(*w.name)) {
                if (ctx.version >= 6) r.topic_id = t->id;
                to_delete.push_back(t->id);
                delete_at.push_back(resp.responses.size());
            } else {
                r.error_code = error::unknown_topic_or_partition;
                r.error_message = "This server does not host this topic-partition.";
            }
        } else {
            if (!answered_ids.insert(w.topic_id.bytes).second) continue;
            if (ids[w.topic_id.bytes] > 1) {
                r.error_code = error::invalid_request;
                r.error_message = "Duplicate topic id.";
            } else if (req->timeout_ms <= 0) {
                r.error_code = error::request_timed_out;
            } else if (const auto* t = sh.image->find_topic(w.topic_id)) {
                r.name = t->name;
                to_delete.push_back(t->id);
                delete_at.push_back(resp.responses.size());
            } else {
                r.error_code = error::unknown_topic_id;
                r.error_message = "This server does not host this topic ID.";
            }
        }
        resp.responses.push_back(std::move(r));
    }
    if (!to_delete.empty()) {
        auto deleting = topics_op(sh, {}, std::move(to_delete), false);
        auto outcomes = co_await std::move(deleting);
        for (size_t i = 0; i < outcomes.size() && i < delete_at.size(); ++i) {
            auto& r = resp.responses[delete_at[i]];
            if (outcomes[i].error) {
                r.error_code = kafka_error_of(*outcomes[i].error);
                if (*outcomes[i].error == cluster::errc::unknown_topic_id) {
                    // Deleted meanwhile by another request: Kafka's answer by name.
                    r.error_code = r.name ? error::unknown_topic_or_partition : error::unknown_topic_id;
                }
            } else {
                log_info("{}: topic {} deleted (client {})", ctx.conn.peer, r.name.value_or("?"),
                         ctx.client_id.value_or("null"));
            }
        }
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_create_partitions(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                       net::request_order&) {
    auto req = decode_request<gen::create_partitions_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    std::map<std::string, int> seen;
    for (const auto& t : req->topics) ++seen[t.name];
    gen::create_partitions_response resp;
    std::set<std::string> answered;
    for (const auto& t : req->topics) {
        if (!answered.insert(t.name).second) continue;
        gen::create_partitions_response::create_partitions_topic_result r;
        r.name = t.name;
        r.error_message = std::nullopt;
        const auto* info = sh.image->find_topic(t.name);
        const int32_t current = info ? static_cast<int32_t>(info->partitions.size()) : 0;
        if (seen[t.name] > 1) {
            r.error_code = error::invalid_request;
            r.error_message = "Duplicate topic name.";
        } else if (req->timeout_ms <= 0) {
            r.error_code = error::request_timed_out;
        } else if (!info) {
            r.error_code = error::unknown_topic_or_partition;
        } else if (t.count == current) {
            r.error_code = error::invalid_partitions;
            r.error_message = fmt::format("Topic already has {} partition(s).", current);
        } else if (t.count < current) {
            r.error_code = error::invalid_partitions;
            r.error_message = fmt::format("The topic {} currently has {} partition(s); {} would not be an increase.",
                                          t.name, current, t.count);
        } else if (t.count > 100'000) {
            r.error_code = error::invalid_partitions;
            r.error_message =
                fmt::format("Number of partitions {} is above Fjord's limit of 100000 per topic.", t.count);
        } else {
            if (t.assignments) {
                if (static_cast<int64_t>(t.assignments->size()) != int64_t{t.count} - current) {
                    r.error_code = error::invalid_replica_assignment;
                    r.error_message = fmt::format(
                        "Attempted to add {} additional partition(s), but only {} assignment(s) were "
                        "specified.",
                        t.count - current, t.assignments->size());
                }
                // The new partitions have the replication factor of the first.
                int32_t want_rf = static_cast<int32_t>(info->partitions.front().replicas.size());
                int32_t index = current;
                for (const auto& a : *t.assignments) {
                    if (r.error_code) break;
                    if (auto m = check_assignment(index++, a.broker_ids, *sh.image, want_rf)) {
                        r.error_code = error::invalid_replica_assignment;
                        r.error_message = *m;
                    }
                }
            }
            if (!r.error_code) {
                const std::string name = t.name;
                const int32_t count = t.count;
                const bool validate = req->validate_only;
                std::vector<std::vector<int32_t>> assignment;
                if (t.assignments) {
                    for (const auto& a : *t.assignments) assignment.push_back(a.broker_ids);
                }
                auto op = run_controller_op(sh, [name, count, validate, assignment = std::move(assignment)](
                                                    cluster::controller& c, controller_done done) mutable {
                    c.create_partitions(name, count, std::move(done), validate, std::move(assignment));
                });
                auto err = co_await std::move(op);
                if (err) {
                    r.error_code = kafka_error_of(*err);
                } else if (!validate) {
                    log_info("{}: topic {}: {} partitions (was {})", ctx.conn.peer, name, count, current);
                }
            }
        }
        resp.results.push_back(std::move(r));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_describe_topic_partitions(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                               net::request_order&) {
    auto req = decode_request<gen::describe_topic_partitions_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    using rtopic = gen::describe_topic_partitions_response::describe_topic_partitions_response_topic;
    auto image = sh.image;
    // Kafka's max.request.partition.size.limit (2000) bounds the answer.
    int32_t budget = std::clamp(req->response_partition_limit, 1, 2000);
    // (name, topic): null for a requested topic that does not exist, which
    // Kafka answers in name order with UNKNOWN_TOPIC_OR_PARTITION and no partitions.
    std::vector<std::pair<std::string, const cluster::topic_info*>> topics;
    if (req->topics.empty()) {
        for (const auto& [name, t] : image->topics()) topics.emplace_back(name, t.get());
    } else {
        std::set<std::string> names;
        for (const auto& t : req->topics) names.insert(t.name);
        for (const auto& n : names) topics.emplace_back(n, image->find_topic(n));
    }
    gen::describe_topic_partitions_response resp;
    for (const auto& [name, t] : topics) {
        int32_t first = 0;
        if (req->cursor) {
            if (name < req->cursor->topic_name) continue;
            if (name == req->cursor->topic_name) first = std::max(req->cursor->partition_index, 0);
        }
        if (budget == 0) {
            resp.next_cursor = gen::describe_topic_partitions_response::cursor{
                .topic_name = name, .partition_index = first, .unknown_tagged_fields = {}};
            break;
        }
        if (!t) {
            rtopic missing;
            missing.error_code = error::unknown_topic_or_partition;
            missing.name = name;
            missing.topic_authorized_operations = topic_operations_all;
            resp.topics.push_back(std::move(missing));
            continue;
        }
        rtopic rt;
        rt.name = t->name;
        rt.topic_id = t->id;
        rt.is_internal = t->name == "__consumer_offsets" || t->name == "__transaction_state";
        rt.topic_authorized_operations = topic_operations_all;
        const int32_t n = static_cast<int32_t>(t->partitions.size());
        int32_t p = first;
        for (; p < n && budget > 0; ++p, --budget) {
            const auto& pi = t->partitions[static_cast<size_t>(p)];
            gen::describe_topic_partitions_response::describe_topic_partitions_response_partition rp;
            rp.error_code = pi.leader >= 0 ? error::none : error::leader_not_available;
            rp.partition_index = pi.partition;
            rp.leader_id = pi.leader;
            rp.leader_epoch = pi.leader_epoch;
            rp.replica_nodes = pi.replicas;
            rp.isr_nodes = pi.isr;
            rp.eligible_leader_replicas = std::vector<int32_t>{};
            rp.last_known_elr = std::vector<int32_t>{};
            rt.partitions.push_back(std::move(rp));
        }
        resp.topics.push_back(std::move(rt));
        if (p < n) {
            resp.next_cursor = gen::describe_topic_partitions_response::cursor{
                .topic_name = t->name, .partition_index = p, .unknown_tagged_fields = {}};
            break;
        }
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
