// ElectLeaders (kafka-leader-election). A replicated partition's leader is
// elected by its own Raft group, so a PREFERRED election asks the current
// leader (here or on another node, RPC ElectPreferred) to hand leadership to
// the preferred (first) replica when that replica is in sync, and waits, up
// to the request's timeout, until the metadata names it. UNCLEAN elections
// have nothing to do for a partition that has a leader (ELECTION_NOT_NEEDED,
// as Kafka); one without a leader has lost its majority, and Raft cannot
// elect a leader without one (ELIGIBLE_LEADERS_NOT_AVAILABLE: ADR 0005).
//
// As Kafka: with no partitions named, every partition is tried and only the
// ones that needed an election are answered.
#include <map>

#include "base/logger.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "kafka/node_rpc.h"
#include "protocol/gen/elect_leaders.h"
#include "rpc/gen/elect_preferred.h"
#include "rpc/transport.h"

namespace fjord::kafka {

namespace gen = protocol::gen;

namespace {

constexpr int8_t preferred_election = 0;
constexpr int8_t unclean_election = 1;

const char* default_message(int16_t code) {
    switch (code) {
        case error::unknown_topic_or_partition: return "This server does not host this topic-partition.";
        case error::preferred_leader_not_available: return "The preferred leader was not available.";
        case error::eligible_leaders_not_available: return "Eligible topic partition leaders are not available.";
        case error::election_not_needed: return "Leader election not needed for topic partition.";
        case error::request_timed_out: return "The request timed out.";
        case error::not_leader_or_follower:
            return "For requests intended only for the leader, this error indicates "
                   "that the broker is not the current leader.";
        default: return nullptr;
    }
}

struct item {
    std::string topic;
    int32_t partition = 0;
    protocol::uuid topic_id;
    int32_t preferred = -1;
    int16_t error = error::none;
    bool asked = false;  // the leader started the handover: wait for the metadata
};

// Where `it` stands in `img` now: settles it (an error, or NONE once the
// preferred replica leads), else returns the node to ask (its leader).
std::optional<int32_t> classify(item& it, const cluster::metadata_image& img, int8_t type) {
    const cluster::topic_info* t = img.find_topic(it.topic);
    if (!t || it.partition < 0 || it.partition >= static_cast<int32_t>(t->partitions.size())) {
        it.error = error::unknown_topic_or_partition;
        return std::nullopt;
    }
    const cluster::partition_info& p = t->partitions[static_cast<size_t>(it.partition)];
    it.topic_id = t->id;
    it.preferred = p.replicas.empty() ? -1 : p.replicas.front();
    if (type == unclean_election) {
        it.error = p.leader >= 0 ? error::election_not_needed : error::eligible_leaders_not_available;
        return std::nullopt;
    }
    if (p.leader == it.preferred && p.leader >= 0) {
        it.error = it.asked ? error::none : error::election_not_needed;
        return std::nullopt;
    }
    const cluster::broker_info* b = img.find_broker(it.preferred);
    const bool in_sync = std::find(p.isr.begin(), p.isr.end(), it.preferred) != p.isr.end();
    if (!b || b->fenced || !in_sync || p.leader < 0) {
        it.error = error::preferred_leader_not_available;
        return std::nullopt;
    }
    return p.leader;
}

}  // namespace

net::awaitable<net::response> handle_elect_leaders(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::elect_leaders_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::elect_leaders_response resp;
    const int8_t type = ctx.version == 0 ? preferred_election : req->election_type;
    if (type != preferred_election && type != unclean_election) {
        resp.error_code = error::invalid_request;
        co_return encode_response(ctx, resp);
    }
    const bool all = !req->topic_partitions.has_value();
    std::vector<item> items;
    if (all) {
        for (const auto& [name, t] : sh.image->topics()) {
            for (const auto& p : t->partitions) {
                item it;
                it.topic = name;
                it.partition = p.partition;
                items.push_back(std::move(it));
            }
        }
    } else {
        for (const auto& tp : *req->topic_partitions) {
            for (int32_t p : tp.partitions) {
                item it;
                it.topic = tp.topic;
                it.partition = p;
                items.push_back(std::move(it));
            }
        }
    }

    // Ask each leader, then watch the metadata; a leader that moved meanwhile
    // is asked again, until the timeout.
    auto ex = co_await net::asio::this_coro::executor;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(req->timeout_ms, 0));
    bool first = true;
    while (true) {
        std::map<int32_t, std::vector<item*>> ask;
        size_t waiting = 0;
        for (auto& it : items) {
            if (!first && it.error != error::request_timed_out) continue;  // settled
            it.error = error::request_timed_out;
            auto leader = classify(it, *sh.image, type);
            if (!leader) continue;
            ++waiting;
            if (!it.asked) ask[*leader].push_back(&it);
        }
        first = false;
        for (auto& [node, group] : ask) {
            std::vector<broker::partition_ref> refs;
            for (auto* it : group) refs.emplace_back(it->topic_id, it->partition);
            auto call = sh.owner.elect_preferred(node, std::move(refs));
            auto codes = co_await std::move(call);
            for (size_t i = 0; i < group.size(); ++i) {
                const int16_t code = i < codes.size() ? codes[i] : error::request_timed_out;
                if (code == error::none) {
                    group[i]->asked = true;
                } else if (code == error::preferred_leader_not_available) {
                    group[i]->error = code;
                }
                // Otherwise (the leader moved, an RPC failure) ask again next round.
            }
        }
        if (waiting == 0 || std::chrono::steady_clock::now() >= deadline) break;
        net::asio::steady_timer t(ex, std::chrono::milliseconds(50));
        co_await t.async_wait(net::asio::as_tuple(net::asio::use_awaitable));
    }

    std::map<std::string, size_t> at;
    for (const auto& it : items) {
        if (all && it.error == error::election_not_needed) continue;
        auto [pos, added] = at.emplace(it.topic, resp.replica_election_results.size());
        if (added) {
            gen::elect_leaders_response::replica_election_result r;
            r.topic = it.topic;
            resp.replica_election_results.push_back(std::move(r));
        }
        gen::elect_leaders_response::partition_result pr;
        pr.partition_id = it.partition;
        pr.error_code = it.error;
        const char* m = default_message(it.error);
        pr.error_message = m ? std::optional<std::string>(m) : std::nullopt;
        resp.replica_election_results[pos->second].partition_result.push_back(std::move(pr));
    }
    size_t elected = 0;
    for (const auto& it : items) elected += it.error == error::none ? 1 : 0;
    if (elected > 0) {
        log_info("{}: ElectLeaders: {} partitions now led by their preferred replica (client {})", ctx.conn.peer,
                 elected, ctx.client_id.value_or("null"));
    }
    co_return encode_response(ctx, resp);
}

// ---- the broker side: the leader hands over -----------------------------------

net::awaitable<std::vector<int16_t>> broker::elect_preferred(int32_t leader, std::vector<partition_ref> parts) {
    if (leader == cfg_.node_id) co_return co_await elect_preferred_here(this, std::move(parts));
    auto* self = this;
    auto task = shards_->invoke_on(0, [self, leader, parts]() -> net::awaitable<std::vector<int16_t>> {
        std::vector<int16_t> codes(parts.size(), error::request_timed_out);
        if (!self->transport_) co_return codes;
        rpc::gen::elect_preferred_request req;
        for (const auto& [id, p] : parts) {
            rpc::gen::elect_preferred_request::elect_partition e;
            e.topic_id = id;
            e.partition_index = p;
            req.partitions.push_back(std::move(e));
        }
        auto call = self->transport_->call(leader, rpc::gen::elect_preferred_request::api_key, 0, encode_body(req, 0));
        auto r = co_await std::move(call);
        if (!r) co_return codes;
        auto resp = decode_body<rpc::gen::elect_preferred_response>(*r, 0);
        if (!resp) co_return codes;
        for (size_t i = 0; i < codes.size() && i < resp->partitions.size(); ++i) {
            const auto& pr = resp->partitions[i];
            if (pr.topic_id == parts[i].first && pr.partition_index == parts[i].second) codes[i] = pr.error_code;
        }
        co_return codes;
    });
    co_return co_await std::move(task);
}

net::awaitable<std::vector<int16_t>> broker::elect_preferred_here(broker* self, std::vector<partition_ref> parts) {
    std::vector<int16_t> codes;
    const unsigned n = self->shards_->count();
    for (const auto& [id, index] : parts) {
        const auto* t = self->ctx_[0]->image->find_topic(id);
        if (!t) {
            codes.push_back(error::unknown_topic_or_partition);
            continue;
        }
        const storage::topic_partition tp{t->name, index};
        const unsigned s = owner_shard(tp.topic, tp.partition, n);
        auto task = self->shards_->invoke_on(s, [self, s, tp]() -> net::awaitable<int16_t> {
            partition* p = self->ctx_[s]->find(tp);
            replica::replica* r = p ? p->replica() : nullptr;
            if (!r || !r->is_leader()) co_return error::not_leader_or_follower;
            const int32_t preferred = r->replicas().front();
            if (preferred == self->cfg_.node_id) co_return error::election_not_needed;
            const auto& isr = r->isr();
            if (std::find(isr.begin(), isr.end(), preferred) == isr.end()) {
                co_return error::preferred_leader_not_available;
            }
            co_return r->transfer_to(preferred) ? error::none : error::preferred_leader_not_available;
        });
        codes.push_back(co_await std::move(task));
    }
    co_return codes;
}

net::awaitable<std::vector<uint8_t>> broker::serve_elect_preferred(broker* self, int32_t, shared_bytes body) {
    rpc::gen::elect_preferred_response resp;
    auto req = decode_body<rpc::gen::elect_preferred_request>(body, 0);
    if (!req || req->partitions.size() > 1'000'000) co_return encode_body(resp, 0);  // the asker retries or times out
    std::vector<partition_ref> parts;
    for (const auto& p : req->partitions) parts.emplace_back(p.topic_id, p.partition_index);
    auto codes = co_await elect_preferred_here(self, parts);
    for (size_t i = 0; i < parts.size(); ++i) {
        rpc::gen::elect_preferred_response::elect_result e;
        e.topic_id = parts[i].first;
        e.partition_index = parts[i].second;
        e.error_code = codes[i];
        resp.partitions.push_back(std::move(e));
    }
    co_return encode_body(resp, 0);
}

}  // namespace fjord::kafka
