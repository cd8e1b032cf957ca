// The broker's side of the metadata quorum (shard 0): Raft group 0 driven by
// a timer and the node-to-node transport, the broker's registration and
// heartbeats, and the requests that only the active controller serves
// (forwarded to it from any node).
#include <chrono>
#include <fstream>
#include <random>
#include <sstream>

#include "base/logger.h"
#include "cluster/raft_metadata_log.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "kafka/node_rpc.h"
#include "protocol/gen/allocate_producer_ids.h"
#include "protocol/gen/create_topics.h"
#include "protocol/gen/describe_quorum.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen/response_header.h"
#include "rpc/gen/broker_heartbeat.h"
#include "rpc/gen/broker_registration.h"
#include "rpc/gen/elect_preferred.h"
#include "rpc/gen/forward.h"
#include "rpc/gen/partition_leaders.h"
#include "rpc/transport.h"

namespace fjord::kafka {
namespace {
namespace asio = net::asio;
namespace gen = protocol::gen;

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Raft ticks of the metadata quorum.
constexpr int tick_ms = 10;

// A Kafka request frame (header v2 + body, no size prefix) that this node
// sends to the controller on its own behalf.
template <typename T>
std::vector<uint8_t> kafka_request(const T& m, int16_t version, int32_t correlation) {
    protocol::writer w;
    gen::request_header h;
    h.request_api_key = T::api_key;
    h.request_api_version = version;
    h.correlation_id = correlation;
    h.client_id = "fjord-broker";
    h.encode(w, 2);
    m.encode(w, version);
    return w.take();
}

// The cluster id in `<log.dirs>/meta.properties`, "" when there is none yet.
std::string stored_cluster_id(const std::string& log_dir) {
    std::ifstream in(log_dir + "/meta.properties");
    if (!in) return {};
    std::stringstream ss;
    ss << in.rdbuf();
    auto props = parse_properties_text(ss.str());
    if (!props) return {};
    auto it = props->find("cluster.id");
    return it == props->end() ? std::string() : it->second;
}

}  // namespace

// Kafka requests that change cluster metadata: served by the active
// controller, forwarded to it by every other node.
bool is_controller_api(int16_t key) {
    switch (key) {
        case 19:  // CreateTopics
        case 20:  // DeleteTopics
        case 33:  // AlterConfigs
        case 37:  // CreatePartitions
        case 44:  // IncrementalAlterConfigs
        case 55:  // DescribeQuorum: the leader knows its voters' progress
            return true;
        default: return false;
    }
}

result<void, std::string> broker::open_metadata() {
    auto& ctx0 = shards_->context(0);
    auto post0 = [&ctx0](std::function<void()> fn) { asio::post(ctx0, std::move(fn)); };
    return run_on(ctx0, [&]() -> result<void, std::string> {
        cluster::raft_metadata_log_options mo;
        mo.dir = cfg_.log_dir + "/" + cluster::metadata_topic;
        mo.node_id = cfg_.node_id;
        for (const auto& v : cfg_.voters) mo.voters.push_back(v.node_id);
        if (mo.voters.size() == 1) {
            // A quorum of one elects itself within a few ticks.
            mo.election_ticks = 3;
            mo.heartbeat_ticks = 1;
        } else {
            mo.election_ticks = std::max(3, cfg_.election_timeout_ms / tick_ms);
            mo.heartbeat_ticks = std::max(1, std::min(mo.election_ticks / 4, 10));
        }
        std::string detail;
        auto send = [this](raft::envelope e) {
            if (transport_) transport_->send(e);
        };
        auto mlog = cluster::raft_metadata_log::open(mo, *io_, post0, send, detail);
        if (!mlog) return fail(fmt::format("metadata log {}: {}", mo.dir, detail));
        if (cfg_.voters.size() > 1) {
            rpc::transport_config tc;
            tc.self = cfg_.node_id;
            for (const auto& v : cfg_.voters) {
                if (v.node_id != cfg_.node_id) tc.peers.push_back(rpc::peer_address{v.node_id, v.host, v.port});
            }
            transport_ = std::make_unique<rpc::transport>(ctx0, tc);
            // A node that already belongs to a cluster says so in every frame,
            // so that another cluster's quorum refuses it (and it them).
            if (auto known = stored_cluster_id(cfg_.log_dir); !known.empty()) transport_->set_cluster_id(known);
            transport_->set_membership([this](int32_t node) {
                for (const auto& v : cfg_.voters) {
                    if (v.node_id == node) return true;
                }
                return false;
            });
        }
        metadata_log_ = mlog->get();
        if (transport_) {
            transport_->on_raft([this](raft::envelope e) { route_raft(std::move(e)); });
            transport_->on_request(rpc::gen::partition_leaders_request::api_key,
                                   [this](int32_t from, int16_t, shared_bytes body) {
                                       return serve_partition_leaders(this, from, std::move(body));
                                   });
            transport_->on_request(rpc::gen::elect_preferred_request::api_key,
                                   [this](int32_t from, int16_t, shared_bytes body) {
                                       return serve_elect_preferred(this, from, std::move(body));
                                   });
            transport_->on_request(rpc::gen::forward_request::api_key,
                                   [this](int32_t from, int16_t version, shared_bytes body) {
                                       return serve_forward(this, from, version, std::move(body));
                                   });
            transport_->on_request(rpc::gen::broker_registration_request::api_key,
                                   [this](int32_t from, int16_t, shared_bytes body) {
                                       return serve_rpc_registration(this, from, std::move(body));
                                   });
            transport_->on_request(rpc::gen::broker_heartbeat_request::api_key,
                                   [this](int32_t from, int16_t, shared_bytes body) {
                                       return serve_rpc_heartbeat(this, from, std::move(body));
                                   });
        }
        cluster::controller_config cc;
        cc.node_id = cfg_.node_id;
        cc.default_partitions = cfg_.num_partitions;
        cc.default_replication_factor = cfg_.default_replication_factor;
        cc.broker_session_timeout_ms = cfg_.broker_session_timeout_ms;
        auto ctl = cluster::controller::open(std::move(mlog).value(), cc, post0, detail);
        if (!ctl) return fail(fmt::format("metadata: {}", detail));
        controller_ = std::move(ctl).value();
        controller_->set_state_listener([this] { on_quorum_state(); });
        on_quorum_state();
        return {};
    });
}

void broker::on_quorum_state() {
    if (!metadata_log_) return;
    const auto l = metadata_log_->leader();
    quorum_leader_.store(l ? *l : -1);
    active_controller_.store(metadata_log_->writable());
    if (transport_ && !controller_->image()->cluster_id().empty()) {
        transport_->set_cluster_id(controller_->image()->cluster_id());
    }
}

result<void, std::string> broker::start_controller_listener() {
    if (!transport_ || !cfg_.controller_listener) return {};
    net::server_config sc;
    sc.listener_name = cfg_.controller_listener->name;
    sc.host = cfg_.controller_listener->host.empty() ? "0.0.0.0" : cfg_.controller_listener->host;
    sc.port = cfg_.controller_listener->port;
    sc.max_request_bytes = cfg_.socket_request_max_bytes;
    sc.idle_timeout_ms = cfg_.connections_max_idle_ms;
    // Raft frames share a peer's connection with forwarded requests, whose
    // answers are written in order: a slow Forward must not stop the reading
    // of the Raft traffic behind it (the transport's own queues bound it).
    sc.max_inflight_requests = 10000;
    sc.max_inflight_bytes = size_t{256} << 20;
    controller_server_ = std::make_unique<net::server>(
        *shards_, sc, [this](unsigned s) -> net::frame_handler& { return transport_->inbound(s); });
    auto port = controller_server_->listen();
    if (!port) return fail(fmt::format("controller listener {}: {}", sc.listener_name, port.error()));
    controller_server_->start();
    std::string voters;
    for (const auto& v : cfg_.voters)
        voters += fmt::format("{}{}@{}:{}", voters.empty() ? "" : ",", v.node_id, v.host, v.port);
    log_info("controller listener {}://{}:{}: the metadata quorum is [{}]", sc.listener_name, sc.host, *port, voters);
    return {};
}

// Shard 0: Raft ticks, the controller's broker sessions, and this node's
// own registration and heartbeats.
net::awaitable<void> broker::quorum_loop(broker* self) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    int64_t next_sessions = 0;
    int64_t next_heartbeat = 0;
    ++self->ctx_[0]->background;
    while (!self->ctx_[0]->stopping) {
        t.expires_after(std::chrono::milliseconds(tick_ms));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        if (self->ctx_[0]->stopping || !self->metadata_log_) break;
        self->metadata_log_->tick();
        const int64_t now = wall_ms();
        if (now >= next_sessions) {
            next_sessions = now + 250;
            self->controller_->check_sessions(now);
        }
        if (now >= next_heartbeat && self->endpoints_ready_.load() && !self->heartbeat_in_flight_) {
            next_heartbeat = now + (self->broker_fenced_.load() ? 100 : self->cfg_.broker_heartbeat_interval_ms);
            self->heartbeat_in_flight_ = true;
            asio::co_spawn(ex, lifecycle_step(self), asio::detached);
        }
    }
    --self->ctx_[0]->background;
}

// One registration or heartbeat, to the active controller wherever it is.
// Its call gives up after half a session (rpc_session_timeout_ms): while it
// waits no other heartbeat is sent, and a controller cut off without its
// connections closing would hold it for the transport's 30 s, long after
// the new controller had fenced this broker (itself too, when the new
// controller is this node).
net::awaitable<void> broker::lifecycle_step(broker* self) {
    struct flag_reset {
        broker* b;
        ~flag_reset() { b->heartbeat_in_flight_ = false; }
    } reset{self};
    const int32_t leader = self->quorum_leader_.load();
    if (leader < 0 || self->controller_->image()->cluster_id().empty()) co_return;
    const bool local = leader == self->cfg_.node_id;
    if (self->broker_epoch_ < 0) {
        rpc::gen::broker_registration_request req;
        req.node_id = self->cfg_.node_id;
        req.incarnation_id = self->incarnation_;
        req.rack = self->cfg_.rack;
        for (const auto& l : self->cfg_.advertised_listeners) {
            auto [host, port] = self->advertised_for(l.name);
            req.listeners.push_back({.name = l.name,
                                     .host = host,
                                     .port = static_cast<uint16_t>(port),
                                     .security_protocol = 0,
                                     .unknown_tagged_fields = {}});
        }
        std::optional<rpc::gen::broker_registration_response> resp;
        if (local) {
            auto r = co_await serve_registration(self, req);
            resp = std::move(r);
        } else {
            auto call = self->transport_->call(leader, rpc::gen::broker_registration_request::api_key, 0,
                                               encode_body(req, 0), rpc_session_timeout_ms(self->cfg_));
            auto r = co_await std::move(call);
            if (r) resp = decode_body<rpc::gen::broker_registration_response>(*r, 0);
        }
        if (!resp || resp->error_code != error::none) co_return;
        self->broker_epoch_ = resp->broker_epoch;
        log_info("registered with the controller (node {}): broker epoch {}", leader, self->broker_epoch_);
    }
    rpc::gen::broker_heartbeat_request hb;
    hb.node_id = self->cfg_.node_id;
    hb.broker_epoch = self->broker_epoch_;
    hb.metadata_offset = self->controller_->image()->last_offset();
    std::optional<rpc::gen::broker_heartbeat_response> resp;
    if (local) {
        auto r = co_await serve_heartbeat(self, hb);
        resp = std::move(r);
    } else {
        auto call = self->transport_->call(leader, rpc::gen::broker_heartbeat_request::api_key, 0, encode_body(hb, 0),
                                           rpc_session_timeout_ms(self->cfg_));
        auto r = co_await std::move(call);
        if (r) resp = decode_body<rpc::gen::broker_heartbeat_response>(*r, 0);
    }
    if (!resp) co_return;
    if (resp->error_code == error::stale_broker_epoch) {
        self->broker_epoch_ = -1;  // register again
        co_return;
    }
    if (resp->error_code != error::none) co_return;
    const bool was = self->broker_fenced_.exchange(resp->is_fenced);
    if (was != resp->is_fenced) log_info("broker {}", resp->is_fenced ? "fenced" : "unfenced: serving");
}

net::awaitable<rpc::gen::broker_registration_response> broker::serve_registration(
    broker* self, rpc::gen::broker_registration_request req) {
    rpc::gen::broker_registration_response resp;
    cluster::register_broker_record reg;
    reg.node_id = req.node_id;
    reg.incarnation_id = req.incarnation_id;
    reg.rack = req.rack;
    for (const auto& l : req.listeners) {
        reg.endpoints.push_back(cluster::broker_endpoint{l.name, l.host, l.port, l.security_protocol});
    }
    auto w = std::make_shared<waiter<result<int64_t, cluster::errc>>>(co_await asio::this_coro::executor);
    self->controller_->register_broker(std::move(reg), [w](result<int64_t, cluster::errc> r) {
        w->value = r;
        w->ev.notify();
    });
    while (!w->value) co_await w->ev.wait();
    if (!*w->value) {
        resp.error_code =
            w->value->error() == cluster::errc::not_controller ? error::not_controller : error::unknown_server_error;
        resp.error_message = cluster::describe(w->value->error());
    } else {
        resp.broker_epoch = **w->value;
    }
    co_return resp;
}

net::awaitable<rpc::gen::broker_heartbeat_response> broker::serve_heartbeat(broker* self,
                                                                            rpc::gen::broker_heartbeat_request req) {
    rpc::gen::broker_heartbeat_response resp;
    auto w = std::make_shared<waiter<result<cluster::controller::heartbeat_reply, cluster::errc>>>(
        co_await asio::this_coro::executor);
    self->controller_->broker_heartbeat(req.node_id, req.broker_epoch, req.metadata_offset, wall_ms(),
                                        [w](result<cluster::controller::heartbeat_reply, cluster::errc> r) {
                                            w->value = r;
                                            w->ev.notify();
                                        });
    while (!w->value) co_await w->ev.wait();
    if (!*w->value) {
        resp.error_code =
            w->value->error() == cluster::errc::not_controller ? error::not_controller : error::unknown_server_error;
    } else if ((*w->value)->unknown) {
        resp.error_code = error::stale_broker_epoch;
    } else {
        resp.is_fenced = (*w->value)->fenced;
    }
    co_return resp;
}

// The controller side of a broker's registration and heartbeat RPCs (shard
// 0). A node may only speak for itself.
net::awaitable<std::vector<uint8_t>> broker::serve_rpc_registration(broker* self, int32_t from, shared_bytes body) {
    auto req = decode_body<rpc::gen::broker_registration_request>(body, 0);
    rpc::gen::broker_registration_response resp;
    if (!req || req->node_id != from) {
        resp.error_code = error::invalid_request;
        resp.error_message = "a registration that does not decode, or for another node";
        co_return encode_body(resp, 0);
    }
    resp = co_await serve_registration(self, std::move(*req));
    co_return encode_body(resp, 0);
}

net::awaitable<std::vector<uint8_t>> broker::serve_rpc_heartbeat(broker* self, int32_t from, shared_bytes body) {
    auto req = decode_body<rpc::gen::broker_heartbeat_request>(body, 0);
    rpc::gen::broker_heartbeat_response resp;
    if (!req || req->node_id != from) {
        resp.error_code = error::invalid_request;
        co_return encode_body(resp, 0);
    }
    resp = co_await serve_heartbeat(self, std::move(*req));
    co_return encode_body(resp, 0);
}

// The controller side of a forwarded request (shard 0).
net::awaitable<std::vector<uint8_t>> broker::serve_forward(broker* self, int32_t from, int16_t version,
                                                           shared_bytes body) {
    (void)version;
    rpc::gen::forward_response resp;
    auto req = decode_body<rpc::gen::forward_request>(body, 0);
    if (!req || req->request_frame.size() < 8) {
        resp.error_code = error::invalid_request;
        co_return encode_body(resp, 0);
    }
    shared_bytes frame = req->request_frame;
    const auto key = static_cast<int16_t>(load_be<uint16_t>(frame.data()));
    const auto kv = static_cast<int16_t>(load_be<uint16_t>(frame.data() + 2));
    // Fjord's own controller calls arrive as Kafka's messages where they fit.
    if (key == gen::allocate_producer_ids_request::api_key) {
        protocol::reader r(frame);
        gen::request_header h;
        h.decode(r, 2);
        gen::allocate_producer_ids_request a;
        a.decode(r, kv);
        gen::allocate_producer_ids_response out;
        if (!r.ok()) {
            out.error_code = error::invalid_request;
        } else {
            auto first = co_await allocate_producer_ids_here(self, a.broker_id);
            if (!first) {
                out.error_code = first.error() == cluster::errc::not_controller ? error::not_controller
                                                                                : error::unknown_server_error;
            } else {
                out.producer_id_start = *first;
                out.producer_id_len = static_cast<int32_t>(producer_id_block);
            }
        }
        protocol::writer w;
        gen::response_header rh;
        rh.correlation_id = h.correlation_id;
        rh.encode(w, 1);
        out.encode(w, kv);
        resp.response_frame = shared_bytes::adopt(w.take());
        co_return encode_body(resp, 0);
    }
    if (!is_controller_api(key)) {
        resp.error_code = error::invalid_request;
        co_return encode_body(resp, 0);
    }
    net::connection_info conn;
    conn.peer = fmt::format("{} (forwarded by node {})", req->client_host, from);
    conn.listener = req->listener_name;
    auto& sh = *self->ctx_[0];
    bool released = false;
    net::event ev(co_await asio::this_coro::executor);
    net::request_order order(released, ev);
    auto answer = sh.handler->handle(conn, frame, order);
    net::response r = co_await std::move(answer);
    if (r.close || r.frame.size() < 4) {
        resp.error_code = error::invalid_request;
        co_return encode_body(resp, 0);
    }
    // Without its size prefix, splices folded in.
    std::vector<uint8_t> out;
    out.reserve(r.size());
    size_t at = 4;
    for (const auto& s : r.splices) {
        out.insert(out.end(), r.frame.begin() + static_cast<std::ptrdiff_t>(at),
                   r.frame.begin() + static_cast<std::ptrdiff_t>(s.at));
        out.insert(out.end(), s.bytes.data(), s.bytes.data() + s.bytes.size());
        at = s.at;
    }
    out.insert(out.end(), r.frame.begin() + static_cast<std::ptrdiff_t>(at), r.frame.end());
    resp.response_frame = shared_bytes::adopt(std::move(out));
    co_return encode_body(resp, 0);
}

// Any shard: a controller-bound Kafka request sent to the active controller.
// Nullopt when no controller answered (the caller then serves it here, and
// the handler answers NOT_CONTROLLER).
net::awaitable<std::optional<net::response>> broker::forward(const net::connection_info& conn, shared_bytes frame) {
    auto* self = this;
    auto task = shards_->invoke_on(0, [self, conn, frame]() -> net::awaitable<std::optional<shared_bytes>> {
        return forward_on_0(self, conn.peer, conn.listener, frame);
    });
    auto bytes = co_await std::move(task);
    if (!bytes) co_return std::nullopt;
    // The controller's response frame goes out as it came (no copy).
    net::response r;
    r.frame.resize(4);
    store_be<uint32_t>(r.frame.data(), static_cast<uint32_t>(bytes->size()));
    r.splices.push_back(net::response::splice{4, std::move(*bytes)});
    co_return r;
}

net::awaitable<std::optional<shared_bytes>> broker::forward_on_0(broker* self, std::string peer, std::string listener,
                                                                 shared_bytes frame) {
    rpc::gen::forward_request req;
    req.request_frame = frame;
    req.client_host = std::move(peer);
    req.listener_name = std::move(listener);
    auto body = encode_body(req, 0);
    // A leader may be elected meanwhile: try for a few seconds.
    auto ex = co_await asio::this_coro::executor;
    for (int attempt = 0; attempt < 50 && !self->ctx_[0]->stopping; ++attempt) {
        const int32_t leader = self->quorum_leader_.load();
        if (leader == self->cfg_.node_id && self->active_controller_.load()) co_return std::nullopt;
        if (leader >= 0 && self->transport_) {
            auto call = self->transport_->call(leader, rpc::gen::forward_request::api_key, 0, body);
            auto r = co_await std::move(call);
            if (r) {
                auto resp = decode_body<rpc::gen::forward_response>(*r, 0);
                if (resp && resp->error_code == error::none) co_return std::move(resp->response_frame);
            }
        }
        asio::steady_timer t(ex, std::chrono::milliseconds(100));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return std::nullopt;
}

// Shard 0: a block of producer ids from the active controller, wherever it is.
net::awaitable<result<int64_t, cluster::errc>> broker::allocate_producer_ids_here(broker* self, int32_t) {
    auto w = std::make_shared<waiter<result<int64_t, cluster::errc>>>(co_await asio::this_coro::executor);
    self->controller_->allocate_producer_ids(producer_id_block, [w](result<int64_t, cluster::errc> r) {
        w->value = r;
        w->ev.notify();
    });
    while (!w->value) co_await w->ev.wait();
    co_return *w->value;
}

net::awaitable<result<int64_t, cluster::errc>> broker::allocate_producer_ids(broker* self) {
    if (self->active_controller_.load() || !self->transport_) co_return co_await allocate_producer_ids_here(self, 0);
    gen::allocate_producer_ids_request a;
    a.broker_id = self->cfg_.node_id;
    a.broker_epoch = self->broker_epoch_;
    auto frame = shared_bytes::adopt(kafka_request(a, 0, 1));
    auto fwd = forward_on_0(self, "self", "CONTROLLER", frame);
    auto bytes = co_await std::move(fwd);
    if (!bytes) co_return fail(cluster::errc::not_controller);
    protocol::reader r(std::move(*bytes));
    gen::response_header rh;
    rh.decode(r, 1);
    gen::allocate_producer_ids_response out;
    out.decode(r, 0);
    if (!r.ok() || out.error_code != error::none) co_return fail(cluster::errc::not_controller);
    co_return out.producer_id_start;
}

// Any shard: CreateTopics on this node's behalf (auto-creation, internal
// topics) at the active controller when it is elsewhere.
net::awaitable<std::vector<cluster::topic_outcome>> broker::create_topics_remote(
    std::vector<cluster::topic_spec> specs) {
    gen::create_topics_request req;
    req.timeout_ms = 30000;
    for (const auto& s : specs) {
        gen::create_topics_request::creatable_topic t;
        t.name = s.name;
        t.num_partitions = s.partitions;
        t.replication_factor = s.replication_factor;
        for (const auto& [k, v] : s.configs) t.configs.push_back({.name = k, .value = v, .unknown_tagged_fields = {}});
        req.topics.push_back(std::move(t));
    }
    constexpr int16_t version = 7;
    auto frame = shared_bytes::adopt(kafka_request(req, version, 1));
    net::connection_info conn;
    conn.peer = "self";
    conn.listener = cfg_.listeners.front().name;
    std::vector<cluster::topic_outcome> out(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
        out[i].name = specs[i].name;
        out[i].error = cluster::errc::not_controller;
    }
    auto fwd = forward(conn, frame);
    auto r = co_await std::move(fwd);
    if (!r) co_return out;
    protocol::reader rd(r->splices.front().bytes);
    gen::response_header rh;
    rh.decode(rd, 1);
    gen::create_topics_response resp;
    resp.decode(rd, version);
    if (!rd.ok()) co_return out;
    for (const auto& t : resp.topics) {
        for (auto& o : out) {
            if (o.name != t.name) continue;
            o.topic_id = t.topic_id;
            switch (t.error_code) {
                case error::none: o.error.reset(); break;
                case error::topic_already_exists: o.error = cluster::errc::topic_already_exists; break;
                case error::invalid_topic_exception: o.error = cluster::errc::invalid_topic_name; break;
                case error::invalid_replication_factor: o.error = cluster::errc::invalid_replication_factor; break;
                case error::invalid_partitions: o.error = cluster::errc::invalid_partitions; break;
                case error::invalid_config: o.error = cluster::errc::invalid_config; break;
                default: o.error = cluster::errc::not_controller; break;
            }
        }
    }
    co_return out;
}

namespace {
struct quorum_state {
    int32_t leader = -1;
    int32_t term = 0;
    int64_t high_watermark = 0;
    std::vector<std::pair<int32_t, int64_t>> voters;  // node, log end offset (-1 unknown)
};
}  // namespace

// DescribeQuorum (API 55): the metadata quorum as its leader sees it
// (another node forwards the request to the leader; a node that is not the
// leader answers NOT_LEADER_OR_FOLLOWER for the partition).
net::awaitable<net::response> handle_describe_quorum(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                     net::request_order&) {
    auto req = decode_request<gen::describe_quorum_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    auto* b = &sh.owner;
    auto task = b->shards().invoke_on(0, [b]() -> net::awaitable<quorum_state> {
        quorum_state q;
        auto* ml = b->metadata_log();
        if (!ml) co_return q;
        q.leader = ml->leader().value_or(-1);
        q.term = ml->term();
        q.high_watermark = ml->commit_offset() + 1;
        for (int32_t v : ml->voters()) {
            int64_t end = -1;
            if (v == b->config().node_id) {
                end = b->controller().log().end_offset();
            } else if (auto m = ml->core().follower_match(raft::node_id(v))) {
                end = m->get() + 1;
            }
            q.voters.emplace_back(v, end);
        }
        co_return q;
    });
    const quorum_state q = co_await std::move(task);
    gen::describe_quorum_response resp;
    for (const auto& t : req->topics) {
        gen::describe_quorum_response::topic_data td;
        td.topic_name = t.topic_name;
        for (const auto& p : t.partitions) {
            gen::describe_quorum_response::partition_data pd;
            pd.partition_index = p.partition_index;
            if (t.topic_name != cluster::metadata_topic || p.partition_index != 0) {
                pd.error_code = error::unknown_topic_or_partition;
                pd.error_message = "The topic or partition does not exist on this broker.";
            } else if (q.leader != sh.owner.config().node_id) {
                pd.error_code = error::not_leader_or_follower;
                pd.error_message = "This node is not the leader of the metadata quorum.";
                pd.leader_id = q.leader;
                pd.leader_epoch = q.term;
            } else {
                pd.error_code = error::none;
                pd.error_message.reset();
                pd.leader_id = q.leader;
                pd.leader_epoch = q.term;
                pd.high_watermark = q.high_watermark;
                const int64_t now = wall_ms();
                for (const auto& [node, end] : q.voters) {
                    gen::describe_quorum_response::replica_state rs;
                    rs.replica_id = node;
                    rs.log_end_offset = end;
                    if (node == q.leader || end >= q.high_watermark) {
                        rs.last_fetch_timestamp = now;
                        rs.last_caught_up_timestamp = now;
                    }
                    pd.current_voters.push_back(rs);
                }
            }
            td.partitions.push_back(std::move(pd));
        }
        resp.topics.push_back(std::move(td));
    }
    if (ctx.version >= 2) {
        const auto img = sh.image;
        for (const auto& [node, end] : q.voters) {
            gen::describe_quorum_response::node n;
            n.node_id = node;
            for (const auto& v : sh.owner.config().voters) {
                if (v.node_id != node || v.port == 0) continue;
                n.listeners.push_back({.name = sh.owner.config().controller_listener
                                                   ? sh.owner.config().controller_listener->name
                                                   : std::string("CONTROLLER"),
                                       .host = v.host,
                                       .port = v.port,
                                       .unknown_tagged_fields = {}});
            }
            resp.nodes.push_back(std::move(n));
        }
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
