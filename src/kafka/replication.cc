// The broker's side of partition replication: every replicated partition
// (replication factor above 1) is a Raft group on the shard that owns it
// (replica/replicas.h). This file carries the groups' envelopes between the
// shards and the node-to-node transport (which lives on shard 0), ticks the
// groups, and reports each partition's Raft leader, term and in-sync
// replicas to the active controller, which writes them into the metadata so
// that every node's Metadata answers name the elected leader.
#include <chrono>

#include "base/logger.h"
#include "cluster/raft_metadata_log.h"
#include "kafka/broker.h"
#include "kafka/errors.h"
#include "kafka/node_rpc.h"
#include "rpc/gen/partition_leaders.h"
#include "rpc/transport.h"

namespace fjord::kafka {
namespace {
namespace asio = net::asio;

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The partition groups' Raft ticks.
constexpr int tick_ms = 10;
// How often each shard compares its leaders with the metadata.
constexpr int64_t report_interval_ms = 200;

}  // namespace

void shard_ctx::attach_replica(const storage::topic_partition& tp, partition& p, const protocol::uuid& topic_id,
                               const cluster::partition_info& info) {
    if (!replicas) {
        log_error("partition {}-{} has {} replicas but this node is a quorum of one: it is not served", tp.topic,
                  tp.partition, info.replicas.size());
        return;
    }
    const raft::group_id g(cluster::partition_group(topic_id, tp.partition));
    const bool caching = p.config().durability.mode == storage::durability_mode::write_caching;
    auto r = replicas->add(g, p.log(), p.durability(), info.replicas, caching);
    if (!r) {
        log_error("partition {}-{}: its Raft group cannot start: {}", tp.topic, tp.partition, r.error());
        return;
    }
    p.set_replica(*r);
    (*r)->set_listener([this, tp] {
        if (auto* q = find(tp)) q->wake_waiters();
    });
}

void broker::send_raft(raft::envelope e) {
    asio::post(shards_->context(0), [this, e = std::move(e)] {
        if (transport_ && !ctx_[0]->stopping) transport_->send(e);
    });
}

std::optional<unsigned> broker::shard_of_group(int64_t group) {
    const auto& img = ctx_[0]->image;
    if (!img) return std::nullopt;
    if (route_image_ != img) {
        route_topics_.clear();
        for (const auto& [name, t] : img->topics()) route_topics_.emplace(cluster::partition_group(t->id, 0), name);
        route_image_ = img;
    }
    const int64_t prefix = group & ~int64_t{cluster::max_group_partitions - 1};
    auto it = route_topics_.find(prefix);
    if (it == route_topics_.end()) return std::nullopt;
    const auto partition = static_cast<int32_t>(group & (cluster::max_group_partitions - 1));
    return owner_shard(it->second, partition, shards_->count());
}

void broker::route_raft(raft::envelope e) {
    const auto to_shard = [this](unsigned s, raft::envelope env) {
        asio::post(shards_->context(s), [this, s, env = std::move(env)] {
            auto& c = *ctx_[s];
            if (c.replicas && !c.stopping) c.replicas->step(env);
        });
    };
    if (auto* m = std::get_if<raft::message>(&e.body)) {
        if (m->group == cluster::metadata_group) {
            if (metadata_log_) metadata_log_->step(e);
            return;
        }
        if (auto s = shard_of_group(m->group.get())) to_shard(*s, std::move(e));
        return;
    }
    // A coalesced batch: each item to the metadata log or the shard of its group.
    auto& batch = std::get<raft::heartbeat_batch>(e.body);
    const unsigned n = shards_->count();
    std::vector<raft::heartbeat_batch> parts(n + 1);  // [n]: the metadata log
    const auto dest = [&](raft::group_id g) -> std::optional<unsigned> {
        if (g == cluster::metadata_group) return n;
        return shard_of_group(g.get());
    };
    for (auto& b : batch.beats) {
        if (auto d = dest(b.group)) parts[*d].beats.push_back(b);
    }
    for (auto& a : batch.acks) {
        if (auto d = dest(a.group)) parts[*d].acks.push_back(a);
    }
    for (unsigned s = 0; s <= n; ++s) {
        if (parts[s].beats.empty() && parts[s].acks.empty()) continue;
        raft::envelope part{e.from, e.to, std::move(parts[s])};
        if (s == n) {
            if (metadata_log_) metadata_log_->step(part);
        } else {
            to_shard(s, std::move(part));
        }
    }
}

// One shard: Raft ticks of its partition groups, and leader reports.
net::awaitable<void> broker::replication_loop(broker* self, unsigned shard) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    auto& c = *self->ctx_[shard];
    ++c.background;
    int64_t next_report = 0;
    int64_t next_rebalance = wall_ms() + int64_t{self->cfg_.leader_imbalance_check_interval_seconds} * 1000;
    while (!c.stopping) {
        t.expires_after(std::chrono::milliseconds(tick_ms));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        if (c.stopping || !c.replicas) break;
        if (c.replicas->size() == 0) continue;
        const int64_t now = wall_ms();
        c.replicas->tick(now);
        if (now >= next_report) {
            next_report = now + report_interval_ms;
            self->report_partition_leaders(shard);
        }
        // auto.leader.rebalance.enable: leaders hand their partitions back
        // to the preferred (first) replica when it is in sync.
        if (self->cfg_.auto_leader_rebalance_enable && now >= next_rebalance) {
            next_rebalance = now + int64_t{self->cfg_.leader_imbalance_check_interval_seconds} * 1000;
            for (auto& [tp, p] : c.partitions) {
                replica::replica* r = p->replica();
                if (!r || !r->writable()) continue;
                const int32_t preferred = r->replicas().front();
                const auto& isr = r->isr();
                if (preferred != self->cfg_.node_id && std::find(isr.begin(), isr.end(), preferred) != isr.end())
                    r->transfer_to(preferred);
            }
        }
    }
    --c.background;
}

void broker::report_partition_leaders(unsigned shard) {
    auto& c = *ctx_[shard];
    if (c.leader_report_in_flight || !c.image) return;
    std::vector<cluster::partition_leader_record> reports;
    for (const auto& [tp, p] : c.partitions) {
        replica::replica* r = p->replica();
        if (!r || !r->writable()) continue;
        const cluster::topic_info* t = c.image->find_topic(tp.topic);
        if (!t || t->id != p->topic_id() || tp.partition >= static_cast<int32_t>(t->partitions.size())) continue;
        const auto& info = t->partitions[static_cast<size_t>(tp.partition)];
        if (r->term() < info.leader_epoch) continue;  // the metadata knows a later term: a newer leader reports
        // A new partition's first leader is whichever replica's timer fired
        // first: the preferred (first) replica takes over at once when it is
        // in sync, as Kafka's controller would have made it leader (tried
        // for two election timeouts; then this leader reports itself).
        const int32_t preferred = info.replicas.empty() ? -1 : info.replicas.front();
        if (cfg_.auto_leader_rebalance_enable && info.leader_epoch == 0 && preferred != cfg_.node_id &&
            wall_ms() - r->leader_since_ms() < 2 * int64_t{cfg_.election_timeout_ms} &&
            std::find(r->isr().begin(), r->isr().end(), preferred) != r->isr().end()) {
            r->transfer_to(preferred);
            continue;
        }
        if (info.leader == cfg_.node_id && info.leader_epoch == r->term() && info.isr == r->isr()) continue;
        reports.push_back(cluster::partition_leader_record{t->id, tp.partition, cfg_.node_id, r->term(), r->isr()});
    }
    if (reports.empty()) return;
    c.leader_report_in_flight = true;
    asio::co_spawn(
        shards_->context(shard),
        [](broker* self, unsigned shard,
           std::vector<cluster::partition_leader_record> reports) -> net::awaitable<void> {
            auto work = self->shards().invoke_on(
                0, [self, reports = std::move(reports)]() mutable { return report_leaders(self, std::move(reports)); });
            co_await std::move(work);
            self->ctx_[shard]->leader_report_in_flight = false;
        }(this, shard, std::move(reports)),
        asio::detached);
}

// Shard 0, the active controller: writes the reports; how many changed the metadata.
net::awaitable<result<size_t, cluster::errc>> broker::write_reports(
    broker* self, std::vector<cluster::partition_leader_record> reports) {
    auto w = std::make_shared<waiter<result<size_t, cluster::errc>>>(co_await asio::this_coro::executor);
    self->controller_->report_leaders(std::move(reports), [w](result<size_t, cluster::errc> r) {
        w->value = r;
        w->ev.notify();
    });
    while (!w->value) co_await w->ev.wait();
    co_return *w->value;
}

// Shard 0: the reports to the active controller, here or elsewhere.
net::awaitable<void> broker::report_leaders(broker* self, std::vector<cluster::partition_leader_record> reports) {
    if (self->ctx_[0]->stopping) co_return;
    if (self->active_controller()) {
        auto written = write_reports(self, std::move(reports));
        co_await std::move(written);
        co_return;
    }
    const int32_t leader = self->quorum_leader();
    if (leader < 0 || leader == self->cfg_.node_id || !self->transport_) co_return;
    rpc::gen::partition_leaders_request req;
    req.node_id = self->cfg_.node_id;
    for (auto& r : reports) {
        req.partitions.push_back({.topic_id = r.topic_id,
                                  .partition_index = r.partition,
                                  .leader_epoch = r.leader_epoch,
                                  .isr = std::move(r.isr),
                                  .unknown_tagged_fields = {}});
    }
    // Reports go again every round: one stuck on a controller that was cut
    // off must not hold back the next, to the new one (lifecycle_step).
    auto call = self->transport_->call(leader, rpc::gen::partition_leaders_request::api_key, 0, encode_body(req, 0),
                                       rpc_session_timeout_ms(self->cfg_));
    co_await std::move(call);
}

net::awaitable<std::vector<uint8_t>> broker::serve_partition_leaders(broker* self, int32_t from, shared_bytes body) {
    rpc::gen::partition_leaders_response resp;
    auto req = decode_body<rpc::gen::partition_leaders_request>(body, 0);
    if (!req || req->node_id != from) {
        resp.error_code = error::invalid_request;
        co_return encode_body(resp, 0);
    }
    if (!self->active_controller()) {
        resp.error_code = error::not_controller;
        co_return encode_body(resp, 0);
    }
    std::vector<cluster::partition_leader_record> reports;
    for (auto& p : req->partitions) {
        reports.push_back(
            cluster::partition_leader_record{p.topic_id, p.partition_index, from, p.leader_epoch, std::move(p.isr)});
    }
    auto written = write_reports(self, std::move(reports));
    const result<size_t, cluster::errc> r = co_await std::move(written);
    if (!r) {
        resp.error_code =
            r.error() == cluster::errc::not_controller ? error::not_controller : error::unknown_server_error;
    } else {
        resp.written = static_cast<int32_t>(*r);
    }
    co_return encode_body(resp, 0);
}

void broker::move_leaderships_away(int64_t max_ms) {
    if (!transport_) return;
    const unsigned n = shards_->count();
    // No replica here takes a leadership from now on: nodes that stop at
    // the same time would otherwise hand their partitions to each other.
    for (unsigned i = 0; i < n; ++i) {
        run_on(shards_->context(i), [&, i] {
            if (ctx_[i]->replicas) ctx_[i]->replicas->set_passive();
            return 0;
        });
    }
    // Each round asks every leader here to hand over (a transfer whose target
    // was not caught up, or refused, is asked again, of another follower when
    // there is one) and counts who still leads.
    const auto round = [&] {
        size_t leading = 0;
        for (unsigned i = 0; i < n; ++i) {
            leading += run_on(shards_->context(i), [&, i] {
                size_t k = 0;
                for (auto& [tp, p] : ctx_[i]->partitions) {
                    auto* r = p->replica();
                    if (!r || !r->is_leader()) continue;
                    ++k;
                    r->transfer_leadership_away();
                }
                return k;
            });
        }
        return leading;
    };
    const int64_t deadline = wall_ms() + max_ms;
    size_t left = round();
    while (left > 0 && wall_ms() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        left = round();
    }
    if (left > 0) log_info("controlled shutdown: {} partitions still led here after {} ms", left, max_ms);
}

}  // namespace fjord::kafka
