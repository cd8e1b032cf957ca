// Metadata (API 3): brokers, cluster id, controller, topics with their
// partitions; creates topics on request when auto.create.topics.enable.
//
// Topics by id (v12+; Kafka refuses ids and null names below v12 with
// INVALID_REQUEST): when the request names any topic id, Kafka answers the
// ids only (names given beside them are ignored): UNKNOWN_TOPIC_ID for the
// unknown ones first, then the known topics, each once; never auto-creation.
//
// Offline replicas, as Kafka's KRaftMetadataCache: a replica on a broker that
// is not live (fenced or not registered), or whose log is offline here (a
// log that failed to open at start-up, failed later, or a replicated
// partition's replica stopped on a storage failure: what Kafka calls a
// replica on a failed log directory). Kafka's controller takes such a
// replica out of the ISR (unless it is the last) and its leadership away
// (to no leader when no other replica is in sync); Fjord answers that here
// for the replicas of this node (other nodes' failed replicas are not in the
// metadata yet, so only they list theirs).
//
// A replicated partition the metadata says this node leads, whose replica
// here no longer leads (it stepped down, maybe cut off from the others):
// the leader is the one its Raft group names here, or none, never this node
// again. Otherwise a node cut off from the controller keeps sending clients
// back to itself until the partition heals.
#include "protocol/gen/metadata.h"

#include <algorithm>
#include <map>
#include <set>

#include "base/logger.h"
#include "cluster/topic_name.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"

namespace fjord::kafka {
namespace gen = protocol::gen;
using mresp = gen::metadata_response;

namespace {
using offline_set = std::set<storage::topic_partition>;
// Partitions the metadata has this node lead but whose replica here does
// not: the leader and term its Raft group knows (-1: none known).
using stepped_down_map = std::map<storage::topic_partition, std::pair<int32_t, int32_t>>;

struct local_replicas {
    offline_set offline;
    stepped_down_map stepped_down;
};

// What fill_topic needs beyond the topic.
struct partition_view {
    int32_t self = -1;
    std::vector<int32_t> live;  // brokers clients may use, sorted
    const local_replicas* local = nullptr;
};

void fill_topic(mresp::metadata_response_topic& t, const cluster::topic_info& info, bool authorized_ops,
                const partition_view& view) {
    t.error_code = error::none;
    t.name = info.name;
    t.topic_id = info.id;
    t.is_internal = info.name == "__consumer_offsets" || info.name == "__transaction_state";
    t.partitions.reserve(info.partitions.size());
    for (const auto& p : info.partitions) {
        mresp::metadata_response_partition mp;
        mp.partition_index = p.partition;
        mp.leader_id = p.leader;
        mp.leader_epoch = p.leader_epoch;
        mp.replica_nodes = p.replicas;
        mp.isr_nodes = p.isr;
        const storage::topic_partition tp{info.name, p.partition};
        const bool offline_here = view.local->offline.count(tp) > 0;
        if (auto it = view.local->stepped_down.find(tp); it != view.local->stepped_down.end()) {
            mp.leader_id = it->second.first;
            if (it->second.first >= 0) mp.leader_epoch = it->second.second;
        }
        for (int32_t r : p.replicas) {
            const bool live = std::binary_search(view.live.begin(), view.live.end(), r);
            if (!live || (r == view.self && offline_here)) mp.offline_replicas.push_back(r);
        }
        if (offline_here) {
            if (mp.isr_nodes.size() > 1) std::erase(mp.isr_nodes, view.self);
            if (mp.leader_id == view.self) mp.leader_id = -1;
        }
        mp.error_code = mp.leader_id >= 0 ? error::none : error::leader_not_available;
        t.partitions.push_back(std::move(mp));
    }
    if (authorized_ops) t.topic_authorized_operations = topic_operations_all;
}

// What this node's replicas say beyond the metadata, from one shard: the
// partitions whose log is offline here, and those whose replica stepped down.
net::awaitable<local_replicas> local_on_shard(shard_ctx* sh) {
    local_replicas out;
    if (sh->logs) {
        for (const auto& [tp, why] : sh->logs->offline()) out.offline.insert(tp);
    }
    const int32_t self = sh->owner.config().node_id;
    for (const auto& [tp, p] : sh->partitions) {
        if (p->offline()) {
            out.offline.insert(tp);
            continue;
        }
        const replica::replica* r = p->replica();
        if (!r || r->is_leader()) continue;
        const cluster::topic_info* t = sh->image ? sh->image->find_topic(tp.topic) : nullptr;
        if (!t || tp.partition >= static_cast<int32_t>(t->partitions.size()) ||
            t->partitions[static_cast<size_t>(tp.partition)].leader != self) {
            continue;
        }
        out.stepped_down.emplace(tp, std::pair<int32_t, int32_t>{r->leader().value_or(-1), r->term()});
    }
    co_return out;
}

net::awaitable<local_replicas> local_view(shard_ctx& sh) {
    local_replicas all;
    for (unsigned s = 0; s < sh.owner.shards().count(); ++s) {
        auto* owner = &sh.owner.shard(s);
        auto one = sh.owner.shards().invoke_on(s, [owner] { return local_on_shard(owner); });
        auto got = co_await std::move(one);
        all.offline.merge(got.offline);
        all.stepped_down.merge(got.stepped_down);
    }
    co_return all;
}

// Kafka's answer to a request it cannot serve (MetadataRequest.getErrorResponse):
// no brokers, no cluster id, every requested topic with `code`.
mresp error_response(const gen::metadata_request& req, int16_t code) {
    mresp err;
    err.cluster_id = std::nullopt;
    if (req.topics) {
        for (const auto& t : *req.topics) {
            mresp::metadata_response_topic et;
            et.error_code = code;
            et.name = t.name.value_or("");
            et.topic_id = t.topic_id;
            err.topics.push_back(std::move(et));
        }
    }
    return err;
}
}  // namespace

net::awaitable<net::response> handle_metadata(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                              net::request_order&) {
    auto req = decode_request<gen::metadata_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const auto& cfg = sh.owner.config();
    const int16_t v = ctx.version;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    const bool all_topics = !req->topics || (v == 0 && req->topics->empty());
    // v4+ carries the client's wish; older versions always allow it.
    const bool may_create = cfg.auto_create_topics_enable && (v < 4 || req->allow_auto_topic_creation);
    const bool topic_ops = v >= 8 && req->include_topic_authorized_operations;

    mresp resp;
    const auto brokers_image = sh.image;
    for (int32_t node : sh.owner.client_brokers(*brokers_image)) {
        auto ep = sh.owner.endpoint_of(*brokers_image, node, ctx.conn.listener);
        if (!ep) continue;
        mresp::metadata_response_broker b;
        b.node_id = node;
        b.host = ep->first;
        b.port = ep->second;
        if (const auto* info = brokers_image->find_broker(node)) b.rack = info->rack;
        resp.brokers.push_back(std::move(b));
    }
    resp.cluster_id = sh.owner.cluster_id();
    // As a KRaft broker: the controller clients see is a live broker (it
    // forwards); the quorum's leader when it is one.
    const int32_t leader = sh.owner.quorum_leader();
    resp.controller_id = brokers_image->find_broker(leader) ? leader : cfg.node_id;
    if (v >= 8 && v <= 10 && req->include_cluster_authorized_operations) {
        resp.cluster_authorized_operations = cluster_operations_all;
    }

    // Below v12 Kafka refuses topic ids and null names (v10 and v11 carry
    // the fields): INVALID_REQUEST for the whole request.
    if (!all_topics && v < 12) {
        for (const auto& rt : *req->topics) {
            if (!rt.name || !rt.topic_id.is_zero())
                co_return encode_response(ctx, error_response(*req, error::invalid_request));
        }
    }

    auto image = sh.image;
    auto brokers = sh.owner.client_brokers(*image);
    std::sort(brokers.begin(), brokers.end());
    auto collecting = local_view(sh);
    const auto local = co_await std::move(collecting);
    const partition_view view{.self = cfg.node_id, .live = std::move(brokers), .local = &local};
    if (all_topics) {
        for (const auto& [name, info] : image->topics()) {
            mresp::metadata_response_topic t;
            fill_topic(t, *info, topic_ops, view);
            resp.topics.push_back(std::move(t));
        }
        co_return encode_response(ctx, resp);
    }

    // By id: the ids alone answer (Kafka ignores the names beside them).
    std::vector<protocol::uuid> ids;
    for (const auto& rt : *req->topics) {
        if (!rt.topic_id.is_zero() && std::find(ids.begin(), ids.end(), rt.topic_id) == ids.end())
            ids.push_back(rt.topic_id);
    }
    if (!ids.empty()) {
        std::vector<const cluster::topic_info*> known;
        for (const auto& id : ids) {
            if (const auto* info = image->find_topic(id)) {
                known.push_back(info);
                continue;
            }
            mresp::metadata_response_topic t;
            t.error_code = error::unknown_topic_id;
            t.name = std::nullopt;
            t.topic_id = id;
            resp.topics.push_back(std::move(t));
        }
        for (const auto* info : known) {
            mresp::metadata_response_topic t;
            fill_topic(t, *info, topic_ops, view);
            resp.topics.push_back(std::move(t));
        }
        co_return encode_response(ctx, resp);
    }

    // A topic with neither name nor id: Kafka fails the whole request with
    // its generic error answer (no brokers, every topic UNKNOWN_SERVER_ERROR).
    for (const auto& rt : *req->topics) {
        if (!rt.name) co_return encode_response(ctx, error_response(*req, error::unknown_server_error));
    }

    std::vector<cluster::topic_spec> to_create;
    std::vector<size_t> created_at;
    for (const auto& rt : *req->topics) {
        mresp::metadata_response_topic t;
        const std::string name = rt.name.value_or("");
        t.name = name;
        if (const auto* info = image->find_topic(name)) {
            fill_topic(t, *info, topic_ops, view);
        } else if (!cluster::is_valid_topic_name(name)) {
            t.error_code = error::invalid_topic_exception;
        } else if (may_create) {
            // Kafka answers LEADER_NOT_AVAILABLE while the topic is created;
            // this waits for the creation, so the client's retry finds it.
            t.error_code = error::leader_not_available;
            to_create.push_back(
                cluster::topic_spec{.name = name, .partitions = -1, .replication_factor = -1, .configs = {}});
            created_at.push_back(resp.topics.size());
        } else {
            t.error_code = error::unknown_topic_or_partition;
        }
        if (topic_ops && t.error_code != error::none) t.topic_authorized_operations = operations_omitted;
        resp.topics.push_back(std::move(t));
    }
    if (!to_create.empty()) {
        auto creating = sh.owner.create_topics(std::move(to_create));
        auto outcomes = co_await std::move(creating);
        for (size_t i = 0; i < outcomes.size() && i < created_at.size(); ++i) {
            const auto& o = outcomes[i];
            auto& t = resp.topics[created_at[i]];
            if (!o.error) {
                log_info("{}: topic {} auto-created (client {})", ctx.conn.peer, o.name,
                         ctx.client_id.value_or("null"));
            } else if (*o.error == cluster::errc::topic_already_exists) {
                // Another request created it meanwhile: answer with it.
                if (const auto* info = sh.image->find_topic(o.name)) fill_topic(t, *info, topic_ops, view);
            } else if (*o.error == cluster::errc::invalid_topic_name ||
                       *o.error == cluster::errc::topic_name_collision) {
                t.error_code = error::invalid_topic_exception;
            } else {
                t.error_code = error::unknown_topic_or_partition;
                log_warn("topic {}: auto-creation failed ({})", o.name, static_cast<int>(*o.error));
            }
        }
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
