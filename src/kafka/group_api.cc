// The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete, ListGroups,
// DescribeGroups, DeleteGroups. Each decodes on the connection's shard,
// resolves topic names and ids against that shard's image, and runs the
// group's part on the shard whose coordinator owns the group
// (group_coordinator.h).
#include "base/logger.h"
#include "groups/group_records.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "kafka/group_coordinator.h"
#include "protocol/gen/find_coordinator.h"

namespace fjord::kafka {
namespace gen = protocol::gen;
using groups::group_partition;

namespace {
unsigned coordinator_shard(const shard_ctx& sh, const std::string& group) {
    int32_t parts = sh.owner.config().offsets_topic_num_partitions;
    if (const auto* t = sh.image->find_topic(offsets_topic)) parts = static_cast<int32_t>(t->partitions.size());
    return owner_shard(offsets_topic, group_partition(group, parts), sh.owner.shards().count());
}

group_coordinator* coordinator(shard_ctx& sh, unsigned shard) {
    return sh.owner.shard(shard).groups.get();
}

// Kafka shows a member's host as Java's InetAddress.toString(): "/1.2.3.4".
std::string client_host(const std::string& peer) {
    auto colon = peer.rfind(':');
    std::string host = colon == std::string::npos ? peer : peer.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return "/" + host;
}

// Creates `__consumer_offsets` (on the first FindCoordinator for a group,
// as Kafka does); true once it exists.
net::awaitable<bool> ensure_offsets_topic(shard_ctx& sh) {
    if (sh.image->find_topic(offsets_topic)) co_return true;
    const auto& cfg = sh.owner.config();
    cluster::topic_spec spec;
    spec.name = std::string(offsets_topic);
    spec.partitions = cfg.offsets_topic_num_partitions;
    // min(offsets.topic.replication.factor, live brokers): a cluster of one
    // works without tuning.
    spec.replication_factor = static_cast<int16_t>(std::max<size_t>(
        1,
        std::min<size_t>(static_cast<size_t>(cfg.offsets_topic_replication_factor), sh.image->live_brokers().size())));
    spec.configs = {{"cleanup.policy", "compact"},
                    {"compression.type", "producer"},
                    {"segment.bytes", std::to_string(cfg.offsets_topic_segment_bytes)}};
    std::vector<cluster::topic_spec> specs;
    specs.push_back(std::move(spec));
    auto created = sh.owner.create_topics(std::move(specs));
    auto outcomes = co_await std::move(created);
    if (!outcomes.empty() && outcomes.front().error && *outcomes.front().error != cluster::errc::topic_already_exists) {
        log_warn("cannot create {}: {}", offsets_topic, cluster::describe(*outcomes.front().error));
    }
    co_return sh.image->find_topic(offsets_topic) != nullptr;
}

net::awaitable<fetched_offsets> fetch_on(group_coordinator* gc, std::string group,
                                         std::optional<std::vector<std::pair<std::string, std::vector<int32_t>>>> t) {
    co_return gc->fetch(group, t);
}

net::awaitable<gen::describe_groups_response::described_group> describe_on(group_coordinator* gc, std::string group,
                                                                           int16_t version) {
    co_return gc->describe(group, version);
}

using topic_list = std::vector<std::pair<std::string, std::vector<int32_t>>>;

// One group of an OffsetFetch, on its coordinator's shard; partitions of
// topic ids this node does not know answer UNKNOWN_TOPIC_ID.
net::awaitable<fetched_offsets> fetch_group(shard_ctx& sh, std::string group, std::optional<topic_list> topics,
                                            std::vector<bool> unknown_ids) {
    const unsigned s = coordinator_shard(sh, group);
    auto* gc = coordinator(sh, s);
    auto task = sh.owner.shards().invoke_on(
        s, [gc, group, topics]() mutable { return fetch_on(gc, std::move(group), std::move(topics)); });
    auto out = co_await std::move(task);
    for (size_t i = 0; i < unknown_ids.size() && i < out.topics.size(); ++i) {
        if (!unknown_ids[i]) continue;
        for (auto& p : out.topics[i].second) {
            const int32_t index = p.index;
            p = fetched_offsets::partition{};
            p.index = index;
            p.error = error::unknown_topic_id;
        }
    }
    co_return out;
}

// A request about one group, answered by the coordinator's `Method` on the
// group's shard.
template <typename Request, auto Method>
net::awaitable<net::response> on_coordinator(shard_ctx& sh, request_context& ctx, shared_bytes body) {
    auto req = decode_request<Request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const unsigned s = coordinator_shard(sh, req->group_id);
    auto* gc = coordinator(sh, s);
    group_call call{ctx.version, ctx.client_id.value_or(""), client_host(ctx.conn.peer)};
    auto task = sh.owner.shards().invoke_on(s, [gc, r = std::move(*req), c = std::move(call)]() mutable {
        return (gc->*Method)(std::move(r), std::move(c));
    });
    auto resp = co_await std::move(task);
    co_return encode_response(ctx, resp);
}

net::awaitable<gen::consumer_group_describe_response::described_group> consumer_describe_on(group_coordinator* gc,
                                                                                            std::string group) {
    co_return gc->consumer_describe(group);
}

struct listed {
    std::vector<gen::list_groups_response::listed_group> groups;
    int16_t error = 0;
};

net::awaitable<listed> list_on(group_coordinator* gc, std::vector<std::string> states, std::vector<std::string> types) {
    listed out;
    out.groups = gc->list(states, types, &out.error);
    co_return out;
}
}  // namespace

net::awaitable<net::response> handle_find_coordinator(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                      net::request_order&) {
    auto req = decode_request<gen::find_coordinator_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    std::vector<std::string> keys;
    if (ctx.version >= 4) {
        keys = std::move(req->coordinator_keys);
    } else {
        keys.push_back(std::move(req->key));
    }
    // Groups only: the transaction coordinator is not built yet, so
    // transactional ids get COORDINATOR_NOT_AVAILABLE (clients retry).
    bool ready = false;
    if (req->key_type == 0) {
        // As Kafka: the call that finds `__consumer_offsets` missing creates
        // it and answers COORDINATOR_NOT_AVAILABLE; the client's retry finds
        // it (here it is created before this answer, so the retry succeeds).
        ready = sh.image->find_topic(offsets_topic) != nullptr;
        if (!ready) {
            auto ensured = ensure_offsets_topic(sh);
            co_await std::move(ensured);
        }
    }
    gen::find_coordinator_response resp;
    const auto img = sh.image;
    const cluster::topic_info* offsets = img->find_topic(offsets_topic);
    for (const auto& key : keys) {
        gen::find_coordinator_response::coordinator c;
        c.key = key;
        // The coordinator is the leader of the group's partition.
        std::optional<std::pair<std::string, int32_t>> ep;
        int32_t leader = -1;
        if (ready && offsets && !offsets->partitions.empty()) {
            const auto part =
                static_cast<size_t>(group_partition(key, static_cast<int32_t>(offsets->partitions.size())));
            const auto& info = offsets->partitions[part];
            leader = info.leader;
            // A replicated partition's first metadata names its preferred
            // replica in epoch 0, before any election: that node cannot
            // write the group's records yet, and a commit sent there fails
            // with NOT_COORDINATOR, which librdkafka does not retry. Until a
            // leader is elected (and reported) the coordinator is not
            // available, which clients retry.
            const bool elected = info.replicas.size() <= 1 || info.leader_epoch > 0;
            if (leader >= 0 && elected) ep = sh.owner.endpoint_of(*img, leader, ctx.conn.listener);
        }
        if (ep) {
            c.node_id = leader;
            c.host = ep->first;
            c.port = ep->second;
            c.error_code = error::none;
            c.error_message.reset();
        } else {
            c.node_id = -1;
            c.host = "";
            c.port = -1;
            c.error_code = error::coordinator_not_available;
            c.error_message = "The coordinator is not available.";
        }
        resp.coordinators.push_back(std::move(c));
    }
    if (ctx.version < 4) {
        auto& c = resp.coordinators.front();
        resp.error_code = c.error_code;
        resp.error_message = c.error_code == error::none ? std::nullopt : c.error_message;
        resp.node_id = c.node_id;
        resp.host = c.host;
        resp.port = c.port;
        resp.coordinators.clear();
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_join_group(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                net::request_order&) {
    return on_coordinator<gen::join_group_request, &group_coordinator::join>(sh, ctx, std::move(body));
}

net::awaitable<net::response> handle_sync_group(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                net::request_order&) {
    return on_coordinator<gen::sync_group_request, &group_coordinator::sync>(sh, ctx, std::move(body));
}

net::awaitable<net::response> handle_heartbeat(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                               net::request_order&) {
    return on_coordinator<gen::heartbeat_request, &group_coordinator::heartbeat>(sh, ctx, std::move(body));
}

net::awaitable<net::response> handle_leave_group(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                 net::request_order&) {
    return on_coordinator<gen::leave_group_request, &group_coordinator::leave>(sh, ctx, std::move(body));
}

net::awaitable<net::response> handle_consumer_group_heartbeat(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                              net::request_order&) {
    return on_coordinator<gen::consumer_group_heartbeat_request, &group_coordinator::consumer_heartbeat>(
        sh, ctx, std::move(body));
}

net::awaitable<net::response> handle_consumer_group_describe(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                             net::request_order&) {
    auto req = decode_request<gen::consumer_group_describe_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::consumer_group_describe_response resp;
    for (const auto& id : req->group_ids) {
        const unsigned s = coordinator_shard(sh, id);
        auto* gc = coordinator(sh, s);
        auto task = sh.owner.shards().invoke_on(s, [gc, id] { return consumer_describe_on(gc, id); });
        auto d = co_await std::move(task);
        if (req->include_authorized_operations) d.authorized_operations = group_operations_all;
        resp.groups.push_back(std::move(d));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_offset_delete(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    return on_coordinator<gen::offset_delete_request, &group_coordinator::delete_offsets>(sh, ctx, std::move(body));
}

net::awaitable<net::response> handle_offset_commit(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::offset_commit_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const int16_t v = ctx.version;
    const bool by_id = v >= 10;
    auto image = sh.image;
    std::vector<commit_item> items;
    for (const auto& t : req->topics) {
        const cluster::topic_info* info = by_id ? image->find_topic(t.topic_id) : image->find_topic(t.name);
        for (const auto& p : t.partitions) {
            commit_item it;
            it.topic = info ? info->name : t.name;
            it.partition = p.partition_index;
            it.offset = p.committed_offset;
            it.leader_epoch = v >= 6 ? p.committed_leader_epoch : -1;
            it.metadata = p.committed_metadata;
            if (!info) it.error = by_id ? error::unknown_topic_id : error::unknown_topic_or_partition;
            items.push_back(std::move(it));
        }
    }
    const unsigned s = coordinator_shard(sh, req->group_id);
    auto* gc = coordinator(sh, s);
    auto task = sh.owner.shards().invoke_on(
        s, [gc, g = req->group_id, gen_id = req->generation_id_or_member_epoch, m = req->member_id,
            inst = req->group_instance_id, ret = v >= 2 && v <= 4 ? req->retention_time_ms : int64_t{-1}, v,
            items = &items]() mutable {
            return gc->commit(std::move(g), gen_id, std::move(m), std::move(inst), ret, v, items);
        });
    co_await std::move(task);
    gen::offset_commit_response resp;
    size_t i = 0;
    for (const auto& t : req->topics) {
        gen::offset_commit_response::offset_commit_response_topic rt;
        rt.name = t.name;
        rt.topic_id = t.topic_id;
        for (const auto& p : t.partitions) {
            rt.partitions.push_back(
                {.partition_index = p.partition_index, .error_code = items[i++].error, .unknown_tagged_fields = {}});
        }
        resp.topics.push_back(std::move(rt));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_offset_fetch(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                  net::request_order&) {
    auto req = decode_request<gen::offset_fetch_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const int16_t v = ctx.version;
    auto image = sh.image;
    gen::offset_fetch_response resp;

    if (v < 8) {
        std::optional<topic_list> topics;
        if (req->topics) {
            topics.emplace();
            for (const auto& t : *req->topics) topics->emplace_back(t.name, t.partition_indexes);
        }
        auto fetched = fetch_group(sh, req->group_id, std::move(topics), {});
        auto out = co_await std::move(fetched);
        if (out.error != error::none) {
            resp.error_code = out.error;
            if (v < 2 && req->topics) {
                for (const auto& t : *req->topics) {
                    gen::offset_fetch_response::offset_fetch_response_topic rt;
                    rt.name = t.name;
                    for (int32_t p : t.partition_indexes) {
                        rt.partitions.push_back({.partition_index = p,
                                                 .committed_offset = -1,
                                                 .committed_leader_epoch = -1,
                                                 .metadata = "",
                                                 .error_code = out.error,
                                                 .unknown_tagged_fields = {}});
                    }
                    resp.topics.push_back(std::move(rt));
                }
            }
            co_return encode_response(ctx, resp);
        }
        for (auto& [name, parts] : out.topics) {
            gen::offset_fetch_response::offset_fetch_response_topic rt;
            rt.name = name;
            for (auto& p : parts) {
                rt.partitions.push_back({.partition_index = p.index,
                                         .committed_offset = p.offset,
                                         .committed_leader_epoch = p.leader_epoch,
                                         .metadata = std::move(p.metadata),
                                         .error_code = p.error,
                                         .unknown_tagged_fields = {}});
            }
            resp.topics.push_back(std::move(rt));
        }
        co_return encode_response(ctx, resp);
    }

    for (const auto& g : req->groups) {
        std::optional<topic_list> topics;
        std::vector<bool> unknown_ids;
        if (g.topics) {
            topics.emplace();
            for (const auto& t : *g.topics) {
                std::string name = t.name;
                bool unknown = false;
                if (v >= 10) {
                    const auto* info = image->find_topic(t.topic_id);
                    unknown = info == nullptr;
                    name = info ? info->name : std::string();
                }
                topics->emplace_back(std::move(name), t.partition_indexes);
                unknown_ids.push_back(unknown);
            }
        }
        auto fetched = fetch_group(sh, g.group_id, std::move(topics), unknown_ids);
        auto out = co_await std::move(fetched);
        gen::offset_fetch_response::offset_fetch_response_group rg;
        rg.group_id = g.group_id;
        rg.error_code = out.error;
        for (size_t i = 0; i < out.topics.size(); ++i) {
            auto& [name, parts] = out.topics[i];
            gen::offset_fetch_response::offset_fetch_response_topics rt;
            rt.name = name;
            if (v >= 10) {
                if (g.topics) {
                    rt.topic_id = (*g.topics)[i].topic_id;
                } else if (const auto* info = image->find_topic(name)) {
                    rt.topic_id = info->id;
                }
            }
            for (auto& p : parts) {
                rt.partitions.push_back({.partition_index = p.index,
                                         .committed_offset = p.offset,
                                         .committed_leader_epoch = p.leader_epoch,
                                         .metadata = std::move(p.metadata),
                                         .error_code = p.error,
                                         .unknown_tagged_fields = {}});
            }
            rg.topics.push_back(std::move(rt));
        }
        resp.groups.push_back(std::move(rg));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_list_groups(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                 net::request_order&) {
    auto req = decode_request<gen::list_groups_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::list_groups_response resp;
    for (unsigned s = 0; s < sh.owner.shards().count(); ++s) {
        auto* gc = coordinator(sh, s);
        auto task = sh.owner.shards().invoke_on(
            s, [gc, st = req->states_filter, ty = req->types_filter]() mutable { return list_on(gc, st, ty); });
        auto out = co_await std::move(task);
        if (out.error != error::none) resp.error_code = out.error;
        for (auto& g : out.groups) resp.groups.push_back(std::move(g));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_describe_groups(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                     net::request_order&) {
    auto req = decode_request<gen::describe_groups_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::describe_groups_response resp;
    for (const auto& id : req->groups) {
        const unsigned s = coordinator_shard(sh, id);
        auto* gc = coordinator(sh, s);
        auto task = sh.owner.shards().invoke_on(s, [gc, id, v = ctx.version] { return describe_on(gc, id, v); });
        auto d = co_await std::move(task);
        if (req->include_authorized_operations) d.authorized_operations = group_operations_all;
        resp.groups.push_back(std::move(d));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_delete_groups(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::delete_groups_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::delete_groups_response resp;
    for (const auto& id : req->groups_names) {
        const unsigned s = coordinator_shard(sh, id);
        auto* gc = coordinator(sh, s);
        auto task = sh.owner.shards().invoke_on(s, [gc, id] { return gc->delete_group(id); });
        gen::delete_groups_response::deletable_group_result r;
        r.group_id = id;
        r.error_code = co_await std::move(task);
        resp.results.push_back(std::move(r));
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
