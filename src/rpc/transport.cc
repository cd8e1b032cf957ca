#include "rpc/transport.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>

#include "base/assert.h"
#include "base/endian.h"
#include "base/logger.h"
#include "base/metrics.h"
#include "net/event.h"
#include "protocol/wire.h"
#include "rpc/frame.h"
#include "rpc/gen/registry.h"
#include "rpc/raft_codec.h"

namespace fjord::rpc {
namespace asio = net::asio;
namespace {
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

// Process-wide sums over every transport (each instance also keeps its own
// transport_stats).
counter m_sent_one_way("fjord_rpc_frames_sent_total{kind=\"one_way\"}", "RPC frames written to peers");
counter m_sent_request("fjord_rpc_frames_sent_total{kind=\"request\"}", "RPC frames written to peers");
counter m_sent_response("fjord_rpc_frames_sent_total{kind=\"response\"}", "RPC frames written to peers");
counter m_recv_one_way("fjord_rpc_frames_received_total{kind=\"one_way\"}", "RPC frames received from peers");
counter m_recv_request("fjord_rpc_frames_received_total{kind=\"request\"}", "RPC frames received from peers");
counter m_recv_response("fjord_rpc_frames_received_total{kind=\"response\"}", "RPC frames received from peers");
counter m_dropped_full("fjord_rpc_frames_dropped_total{reason=\"queue_full\"}",
                       "One-way RPC frames not sent (Raft retransmits)");
counter m_dropped_unknown("fjord_rpc_frames_dropped_total{reason=\"unknown_peer\"}",
                          "One-way RPC frames not sent (Raft retransmits)");
counter m_dropped_large("fjord_rpc_frames_dropped_total{reason=\"too_large\"}",
                        "One-way RPC frames not sent (Raft retransmits)");
counter m_dropped_stopped("fjord_rpc_frames_dropped_total{reason=\"stopped\"}",
                          "One-way RPC frames not sent (Raft retransmits)");
counter m_refused_malformed("fjord_rpc_frames_refused_total{reason=\"malformed\"}",
                            "Inbound RPC frames refused; their connection was closed");
counter m_refused_destination("fjord_rpc_frames_refused_total{reason=\"destination\"}",
                              "Inbound RPC frames refused; their connection was closed");
counter m_refused_cluster("fjord_rpc_frames_refused_total{reason=\"cluster_id\"}",
                          "Inbound RPC frames refused; their connection was closed");
counter m_refused_member("fjord_rpc_frames_refused_total{reason=\"not_member\"}",
                         "Inbound RPC frames refused; their connection was closed");
counter m_reconnects("fjord_rpc_reconnects_total", "Outbound RPC connections re-established to a peer");
counter m_connect_failures("fjord_rpc_connect_failures_total", "Outbound RPC connection attempts that failed");
counter m_calls_timed_out("fjord_rpc_calls_failed_total{reason=\"timeout\"}", "RPC calls that got no response");
counter m_calls_disconnected("fjord_rpc_calls_failed_total{reason=\"disconnected\"}", "RPC calls that got no response");

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch()).count();
}

// At most one log line per period; counts the events it held back.
struct log_limiter {
    int64_t period_ms;
    int64_t last_ms = std::numeric_limits<int64_t>::min() / 2;
    uint64_t held = 0;
    // True when a line may go out now; take() then says how many events
    // since the last line (this one included).
    bool allow() {
        ++held;
        int64_t now = now_ms();
        if (now - last_ms < period_ms) return false;
        last_ms = now;
        return true;
    }
    uint64_t take() { return std::exchange(held, 0); }
    void reset() {
        last_ms = std::numeric_limits<int64_t>::min() / 2;
        held = 0;
    }
};

// A frame waiting to be written: its bytes, and the shared buffers spliced
// into them (Raft payloads, request bodies), sent in place.
struct out_frame {
    std::vector<uint8_t> bytes;
    std::vector<protocol::writer::splice> splices;
    size_t size = 0;  // with the size prefix and the spliced bytes
    frame_kind kind = frame_kind::one_way;
    int32_t correlation_id = 0;
};

out_frame finish(protocol::writer& w, frame_kind kind, int32_t correlation_id) {
    out_frame f;
    f.size = finish_frame(w) + 4;
    f.splices = w.take_splices();
    f.bytes = w.take();
    f.kind = kind;
    f.correlation_id = correlation_id;
    return f;
}

// Appends f's pieces to a gather list (the bytes between the splices, and
// the spliced buffers).
void add_buffers(const out_frame& f, std::vector<asio::const_buffer>& parts) {
    size_t from = 0;
    for (const auto& sp : f.splices) {
        if (sp.at > from) parts.emplace_back(f.bytes.data() + from, sp.at - from);
        parts.emplace_back(sp.bytes.data(), sp.bytes.size());
        from = sp.at;
    }
    if (from < f.bytes.size()) parts.emplace_back(f.bytes.data() + from, f.bytes.size() - from);
}

// Reads exactly n bytes into a buffer grown as they arrive, so a size
// prefix never allocates much more than the peer really sent.
net::awaitable<bool> read_body(tcp::socket& sock, size_t n, std::vector<uint8_t>& buf) {
    constexpr size_t first_chunk = 64 * 1024;
    size_t got = 0;
    buf.resize(std::min(n, first_chunk));
    while (true) {
        boost::system::error_code ec;
        size_t want = buf.size() - got;
        co_await asio::async_read(sock, asio::buffer(buf.data() + got, want),
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return false;
        got += want;
        if (got == n) co_return true;
        buf.resize(std::min(n, got * 2));
    }
}

errc error_of(int16_t header_error_code) {
    switch (static_cast<header_error>(header_error_code)) {
        case header_error::unknown_api_key: return errc::unknown_api_key;
        case header_error::unsupported_version: return errc::unsupported_version;
        default: return errc::remote_error;
    }
}

}  // namespace

struct transport::impl : std::enable_shared_from_this<transport::impl> {
    // One outbound connection; the peer's writer and this connection's
    // reader share it, and whichever fails first breaks it for both.
    struct connection {
        explicit connection(asio::io_context& ctx, uint64_t gen) : sock(ctx), generation(gen) {}
        tcp::socket sock;
        uint64_t generation;
        bool broken = false;
        void fail() {
            broken = true;
            boost::system::error_code ec;
            sock.shutdown(tcp::socket::shutdown_both, ec);
            sock.close(ec);
        }
    };

    struct pending_call {
        pending_call(const asio::any_io_executor& ex, clock::time_point deadline) : done(ex, deadline) {}
        net::event done;  // the outcome is in, or the deadline passed
        std::optional<result<shared_bytes, errc>> outcome;
        uint64_t generation = 0;  // the connection that carried it; 0 while queued
        int16_t api_key = 0;
    };

    struct peer {
        peer(asio::io_context& ctx, peer_address a) : addr(std::move(a)), wake(ctx.get_executor()), timer(ctx) {}
        peer_address addr;
        net::event wake;           // work queued, a connection broke, or the peer was removed
        asio::steady_timer timer;  // connect timeout and backoff
        std::shared_ptr<connection> conn;
        std::deque<out_frame> queue;
        size_t queued = 0;
        std::map<int32_t, std::shared_ptr<pending_call>> calls;  // queued and in flight, by correlation id
        uint32_t next_correlation = 1;
        uint64_t generations = 0;  // connections established so far
        int failures = 0;          // consecutive failed (or short-lived) connections
        log_limiter unreachable_log{30000};
        bool removed = false;
    };

    struct inbound_conn {
        int32_t node = -1;  // the node id its first frame claimed
        bool refused = false;
    };

    class inbound_handler final : public net::frame_handler {
    public:
        explicit inbound_handler(impl& owner) : owner_(owner) {}
        net::awaitable<net::response> handle(const net::connection_info& conn, shared_bytes frame,
                                             net::request_order& order) override {
            // Frames of one connection reach the home shard in their order:
            // each is handed over before the next one is read.
            order.release();
            return impl::hand_over(owner_.shared_from_this(), conn, std::move(frame));
        }
        void closed(const net::connection_info& conn) override {
            asio::post(owner_.ctx, [self = owner_.shared_from_this(), id = conn.id] { self->inbound.erase(id); });
        }

    private:
        impl& owner_;
    };

    impl(asio::io_context& c, transport_config config)
        : ctx(c),
          cfg(std::move(config)),
          handler(*this),
          rng(std::random_device{}() ^ static_cast<uint64_t>(cfg.self)) {}

    asio::io_context& ctx;
    transport_config cfg;
    inbound_handler handler;
    std::mt19937_64 rng;
    std::map<int32_t, std::shared_ptr<peer>> peers;
    std::optional<std::string> cluster_id;
    std::function<bool(int32_t)> is_member;
    std::function<void(raft::envelope)> raft_fn;
    std::map<int16_t, request_handler> handlers;
    std::unordered_map<uint64_t, inbound_conn> inbound;
    transport_stats st;
    bool stopping = false;
    int live = 0;  // background coroutines still running
    log_limiter refusal_log{1000};
    log_limiter too_large_log{10000};

    // Keeps `live` while a background coroutine runs.
    struct live_guard {
        explicit live_guard(impl& i) : owner(i) { ++owner.live; }
        ~live_guard() { --owner.live; }
        live_guard(const live_guard&) = delete;
        live_guard& operator=(const live_guard&) = delete;
        impl& owner;
    };

    gen::rpc_header header(int16_t key, int16_t version, int32_t correlation_id, frame_kind kind, int32_t to) const {
        gen::rpc_header h;
        h.api_key = key;
        h.api_version = version;
        h.correlation_id = correlation_id;
        h.kind = static_cast<int8_t>(kind);
        h.source_node_id = cfg.self;
        h.destination_node_id = to;
        h.cluster_id = cluster_id;
        return h;
    }

    int64_t backoff_ms(int failures) {
        int shift = std::clamp(failures - 1, 0, 20);
        int64_t cap = std::min(cfg.connect_backoff_max_ms, cfg.connect_backoff_min_ms << shift);
        cap = std::max<int64_t>(cap, 1);
        // Half fixed, half random: peers that lost each other at once do not retry in step.
        return cap / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(cap / 2 + 1));
    }

    // ---- peers

    void add_peer(const peer_address& a) {
        auto p = std::make_shared<peer>(ctx, a);
        peers[a.node_id] = p;
        asio::co_spawn(ctx, run_peer(shared_from_this(), p), asio::detached);
    }

    void remove_peer(peer& p, errc why) {
        p.removed = true;
        if (p.conn) p.conn->fail();
        p.timer.cancel();
        p.wake.notify();
        p.queue.clear();
        p.queued = 0;
        for (auto& [id, c] : p.calls) {
            if (why == errc::disconnected) {
                ++st.calls_disconnected;
                m_calls_disconnected.inc();
            }
            complete(*c, fail(why));
        }
        p.calls.clear();
    }

    void complete(pending_call& c, result<shared_bytes, errc> r) {
        if (c.outcome) return;
        c.outcome = std::move(r);
        c.done.notify();
    }

    // Fails the calls a broken connection carried (generation g), or the
    // ones still queued (g == 0) when the peer cannot be reached; their
    // frames leave the queue.
    void fail_calls(peer& p, uint64_t g) {
        for (auto it = p.calls.begin(); it != p.calls.end();) {
            if (it->second->generation == g) {
                ++st.calls_disconnected;
                m_calls_disconnected.inc();
                complete(*it->second, fail(errc::disconnected));
                it = p.calls.erase(it);
            } else {
                ++it;
            }
        }
        if (g != 0) return;
        std::deque<out_frame> keep;
        p.queued = 0;
        for (auto& f : p.queue) {
            if (f.kind == frame_kind::request) continue;
            p.queued += f.size;
            keep.push_back(std::move(f));
        }
        p.queue = std::move(keep);
    }

    void log_unreachable(peer& p, const std::string& why) {
        if (!p.unreachable_log.allow()) return;
        log_warn("rpc: node {} at {}:{} unreachable: {} ({} failed attempts since the last such line)", p.addr.node_id,
                 p.addr.host, p.addr.port, why, p.unreachable_log.take());
    }

    static net::awaitable<bool> connect(std::shared_ptr<impl> self, std::shared_ptr<peer> p,
                                        std::shared_ptr<connection> c) {
        boost::system::error_code ec;
        std::vector<tcp::endpoint> endpoints;
        auto addr = asio::ip::make_address(p->addr.host, ec);
        if (!ec) {
            endpoints.emplace_back(addr, p->addr.port);
        } else {
            tcp::resolver resolver(self->ctx);
            auto found = co_await resolver.async_resolve(p->addr.host, std::to_string(p->addr.port),
                                                         asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                self->log_unreachable(*p, "cannot resolve: " + ec.message());
                co_return false;
            }
            for (const auto& e : found) endpoints.push_back(e.endpoint());
        }
        if (p->removed || c->broken) co_return false;
        p->timer.expires_after(std::chrono::milliseconds(self->cfg.connect_timeout_ms));
        p->timer.async_wait([c](const boost::system::error_code& e) {
            if (!e && !c->broken) c->fail();  // the connect takes too long: abort it
        });
        co_await asio::async_connect(c->sock, endpoints, asio::redirect_error(asio::use_awaitable, ec));
        p->timer.cancel();
        if (ec || c->broken || p->removed) {
            if (!p->removed) self->log_unreachable(*p, c->broken ? "connect timed out" : ec.message());
            co_return false;
        }
        c->sock.set_option(tcp::no_delay(true), ec);
        co_return true;
    }

    // A peer's life: connect when there is something to send, write until
    // the connection breaks, back off, again; until the peer is removed.
    static net::awaitable<void> run_peer(std::shared_ptr<impl> self, std::shared_ptr<peer> p) {
        live_guard guard(*self);
        while (!p->removed) {
            while (!p->removed && p->queue.empty()) co_await p->wake.wait();
            if (p->removed) break;
            auto c = std::make_shared<connection>(self->ctx, p->generations + 1);
            p->conn = c;
            auto connecting = connect(self, p, c);
            bool up = co_await std::move(connecting);
            if (!up) {
                c->fail();
                p->conn.reset();
                if (p->removed) break;
                ++self->st.connect_failures;
                m_connect_failures.inc();
                self->fail_calls(*p, 0);
                ++p->failures;
                auto wait = backoff(self, p);
                co_await std::move(wait);
                continue;
            }
            ++p->generations;
            ++self->st.connects;
            if (p->generations > 1) {
                ++self->st.reconnects;
                m_reconnects.inc();
            }
            if (p->unreachable_log.held > 0 || p->generations > 1) {
                log_info("rpc: connected to node {} at {}:{}", p->addr.node_id, p->addr.host, p->addr.port);
            }
            p->unreachable_log.reset();
            int64_t since = now_ms();
            asio::co_spawn(self->ctx, read_loop(self, p, c), asio::detached);
            auto writing = write_loop(self, p, c);
            co_await std::move(writing);
            c->fail();
            if (p->conn == c) p->conn.reset();
            self->fail_calls(*p, c->generation);
            if (p->removed) break;
            // A connection that closes at once (the peer refuses us) backs
            // off like a failed connect; after a long one, reconnect at once.
            p->failures = now_ms() - since < 1000 ? p->failures + 1 : 0;
            if (p->failures > 0) {
                auto wait = backoff(self, p);
                co_await std::move(wait);
            }
        }
    }

    // Waits before the next attempt: min << (failures - 1), at most max, jittered.
    static net::awaitable<void> backoff(std::shared_ptr<impl> self, std::shared_ptr<peer> p) {
        int64_t ms = self->backoff_ms(p->failures);
        p->timer.expires_after(std::chrono::milliseconds(ms));
        boost::system::error_code ec;
        co_await p->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    static net::awaitable<void> write_loop(std::shared_ptr<impl> self, std::shared_ptr<peer> p,
                                           std::shared_ptr<connection> c) {
        std::vector<out_frame> batch;
        std::vector<asio::const_buffer> parts;
        while (true) {
            while (!p->removed && !c->broken && p->queue.empty()) co_await p->wake.wait();
            if (p->removed || c->broken) co_return;
            batch.clear();
            parts.clear();
            size_t bytes = 0;
            while (!p->queue.empty() && batch.size() < 64 &&
                   (batch.empty() || bytes + p->queue.front().size <= self->cfg.max_write_bytes)) {
                out_frame f = std::move(p->queue.front());
                p->queue.pop_front();
                p->queued -= f.size;
                if (f.kind == frame_kind::request) {
                    auto it = p->calls.find(f.correlation_id);
                    if (it == p->calls.end()) continue;  // timed out while queued
                    it->second->generation = c->generation;
                }
                bytes += f.size;
                batch.push_back(std::move(f));
            }
            if (batch.empty()) continue;
            for (const auto& f : batch) add_buffers(f, parts);
            boost::system::error_code ec;
            co_await asio::async_write(c->sock, parts, asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            for (const auto& f : batch) self->count_sent(f.kind);
        }
    }

    void count_sent(frame_kind k) {
        switch (k) {
            case frame_kind::one_way:
                ++st.one_way_sent;
                m_sent_one_way.inc();
                break;
            case frame_kind::request:
                ++st.requests_sent;
                m_sent_request.inc();
                break;
            case frame_kind::response:
                ++st.responses_sent;
                m_sent_response.inc();
                break;
        }
    }

    // Responses to our calls, on our outbound connection to `p`.
    static net::awaitable<void> read_loop(std::shared_ptr<impl> self, std::shared_ptr<peer> p,
                                          std::shared_ptr<connection> c) {
        live_guard guard(*self);
        std::vector<uint8_t> body;
        while (!c->broken) {
            uint8_t prefix[4];
            boost::system::error_code ec;
            co_await asio::async_read(c->sock, asio::buffer(prefix), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            auto size = static_cast<int32_t>(load_be<uint32_t>(prefix));
            if (size < 0 || size > self->cfg.max_frame_bytes) {
                log_warn("rpc: node {} sent a frame of {} bytes (max {}); closing the connection", p->addr.node_id,
                         size, self->cfg.max_frame_bytes);
                break;
            }
            if (!co_await read_body(c->sock, static_cast<size_t>(size), body)) break;
            auto f = decode_frame(shared_bytes::adopt(std::move(body)));
            body = {};
            if (!f.ok() || !self->response_ok(*p, f->header)) {
                log_warn("rpc: node {} sent {} on our connection; closing it", p->addr.node_id,
                         f.ok() ? "a frame that is not a response to us" : "an undecodable frame");
                break;
            }
            ++self->st.responses_received;
            m_recv_response.inc();
            auto it = p->calls.find(f->header.correlation_id);
            if (it == p->calls.end() || it->second->generation != c->generation) continue;  // timed out
            auto& call = *it->second;
            if (f->header.api_key != call.api_key) {
                log_warn("rpc: node {} answered call {} of API {} as API {}; closing the connection", p->addr.node_id,
                         f->header.correlation_id, call.api_key, f->header.api_key);
                break;
            }
            if (f->header.error_code != 0) {
                self->complete(call, fail(error_of(f->header.error_code)));
            } else {
                self->complete(call, std::move(f->body));
            }
            p->calls.erase(it);
        }
        if (!c->broken) c->fail();
        p->wake.notify();
    }

    bool response_ok(const peer& p, const gen::rpc_header& h) const {
        if (h.kind != static_cast<int8_t>(frame_kind::response)) return false;
        if (h.source_node_id != p.addr.node_id || h.destination_node_id != cfg.self) return false;
        if (cluster_id && h.cluster_id && *h.cluster_id != *cluster_id) return false;
        return true;
    }

    // ---- outbound

    void send(const raft::envelope& e) {
        FJORD_ASSERT(e.from.get() == cfg.self, "envelope from node {} sent by node {}", e.from.get(), cfg.self);
        if (stopping) {
            ++st.dropped_stopped;
            m_dropped_stopped.inc();
            return;
        }
        auto it = peers.find(e.to.get());
        if (it == peers.end()) {
            ++st.dropped_unknown_peer;
            m_dropped_unknown.inc();
            return;
        }
        peer& p = *it->second;
        api_version api = raft_api(e);
        protocol::writer w;
        begin_frame(w, header(api.key, api.version, 0, frame_kind::one_way, e.to.get()));
        w.enable_splices(cfg.splice_min_bytes);
        encode_raft(e, w);
        out_frame f = finish(w, frame_kind::one_way, 0);
        if (f.size - 4 > static_cast<size_t>(cfg.max_frame_bytes)) {
            ++st.dropped_too_large;
            m_dropped_large.inc();
            if (too_large_log.allow()) {
                log_warn(
                    "rpc: a {} of {} bytes for node {} exceeds the frame bound {}; dropped ({} since the last "
                    "such line)",
                    gen::find_api(api.key)->name, f.size - 4, p.addr.node_id, cfg.max_frame_bytes,
                    too_large_log.take());
            }
            return;
        }
        if (p.queued + f.size > cfg.max_queue_bytes) {
            ++st.dropped_queue_full;
            m_dropped_full.inc();
            return;
        }
        p.queued += f.size;
        p.queue.push_back(std::move(f));
        p.wake.notify();
    }

    static net::awaitable<result<shared_bytes, errc>> call(std::shared_ptr<impl> self, int32_t node, int16_t api_key,
                                                           int16_t version, std::vector<uint8_t> body,
                                                           int64_t timeout_ms) {
        if (self->stopping) co_return fail(errc::stopped);
        auto it = self->peers.find(node);
        if (it == self->peers.end()) co_return fail(errc::unknown_peer);
        std::shared_ptr<peer> p = it->second;
        auto correlation = static_cast<int32_t>(p->next_correlation++);
        protocol::writer w;
        begin_frame(w, self->header(api_key, version, correlation, frame_kind::request, node));
        w.enable_splices(1);
        w.raw(shared_bytes::adopt(std::move(body)));
        out_frame f = finish(w, frame_kind::request, correlation);
        if (f.size - 4 > static_cast<size_t>(self->cfg.max_frame_bytes)) co_return fail(errc::frame_too_large);
        if (p->queued + f.size > self->cfg.max_queue_bytes) co_return fail(errc::queue_full);
        auto deadline =
            clock::now() + std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : self->cfg.request_timeout_ms);
        auto pc = std::make_shared<pending_call>(self->ctx.get_executor(), deadline);
        pc->api_key = api_key;
        p->calls[correlation] = pc;
        p->queued += f.size;
        p->queue.push_back(std::move(f));
        p->wake.notify();
        while (!pc->outcome && clock::now() < deadline) co_await pc->done.wait();
        if (!pc->outcome) {
            auto at = p->calls.find(correlation);
            if (at != p->calls.end() && at->second == pc) p->calls.erase(at);
            ++self->st.calls_timed_out;
            m_calls_timed_out.inc();
            co_return fail(errc::timeout);
        }
        co_return std::move(*pc->outcome);
    }

    // ---- inbound

    // On the connection's shard: runs on_frame on the home shard.
    static net::awaitable<net::response> hand_over(std::shared_ptr<impl> self, net::connection_info conn,
                                                   shared_bytes frame) {
        if (self->ctx.get_executor().running_in_this_thread()) {
            auto here = on_frame(self, std::move(conn), std::move(frame));
            co_return co_await std::move(here);
        }
        auto there = asio::co_spawn(self->ctx, on_frame(self, std::move(conn), std::move(frame)), asio::use_awaitable);
        co_return co_await std::move(there);
    }

    net::response refuse(const net::connection_info& conn, inbound_conn& ic, int32_t node, counter& metric,
                         uint64_t& stat, const std::string& why) {
        ic.refused = true;
        ++stat;
        metric.inc();
        if (refusal_log.allow()) {
            log_warn("rpc: refusing {} (node {}): {}; closing the connection ({} refused since the last such line)",
                     conn.peer, node, why, refusal_log.take());
        }
        net::response r;
        r.close = true;
        return r;
    }

    static net::awaitable<net::response> on_frame(std::shared_ptr<impl> self, net::connection_info conn,
                                                  shared_bytes bytes) {
        auto& ic = self->inbound[conn.id];
        if (ic.refused || self->stopping) {
            net::response r;
            r.close = true;
            co_return r;
        }
        auto f = decode_frame(std::move(bytes));
        if (!f.ok()) {
            co_return self->refuse(conn, ic, -1, m_refused_malformed, self->st.refused_malformed,
                                   std::string("an undecodable frame header: ") + describe(f.error()));
        }
        const gen::rpc_header& h = f->header;
        const int32_t from = h.source_node_id;
        if (h.destination_node_id != self->cfg.self || from == self->cfg.self) {
            co_return self->refuse(conn, ic, from, m_refused_destination, self->st.refused_destination,
                                   fmt::format("a frame from node {} to node {}, but this is node {}", from,
                                               h.destination_node_id, self->cfg.self));
        }
        // A node that has not learned the cluster id yet (a new node) sends
        // none; one that names another cluster is refused.
        if (self->cluster_id && h.cluster_id && *h.cluster_id != *self->cluster_id) {
            co_return self->refuse(
                conn, ic, from, m_refused_cluster, self->st.refused_cluster,
                fmt::format("cluster id '{}', this is cluster '{}'", h.cluster_id.value_or("null"), *self->cluster_id));
        }
        if (self->is_member && !self->is_member(from)) {
            co_return self->refuse(conn, ic, from, m_refused_member, self->st.refused_not_member,
                                   "not a member of the cluster");
        }
        if (ic.node >= 0 && ic.node != from) {
            co_return self->refuse(conn, ic, from, m_refused_destination, self->st.refused_destination,
                                   fmt::format("the connection spoke for node {} before", ic.node));
        }
        ic.node = from;
        switch (f->kind()) {
            case frame_kind::one_way: {
                if (!is_raft_api(h.api_key)) {
                    co_return self->refuse(conn, ic, from, m_refused_malformed, self->st.refused_malformed,
                                           fmt::format("a one-way frame of API key {}", h.api_key));
                }
                auto e = decode_raft(api_version{h.api_key, h.api_version}, raft::node_id(from),
                                     raft::node_id(self->cfg.self), std::move(f->body));
                if (!e.ok()) {
                    co_return self->refuse(conn, ic, from, m_refused_malformed, self->st.refused_malformed,
                                           fmt::format("a Raft message (API key {} v{}): {}", h.api_key, h.api_version,
                                                       describe(e.error())));
                }
                ++self->st.one_way_received;
                m_recv_one_way.inc();
                if (self->raft_fn) self->raft_fn(std::move(e.value()));
                co_return net::response{};
            }
            case frame_kind::request: {
                ++self->st.requests_received;
                m_recv_request.inc();
                auto answering = answer(self, from, h, std::move(f->body));
                auto out = co_await std::move(answering);
                co_return out;
            }
            case frame_kind::response: break;
        }
        co_return self->refuse(conn, ic, from, m_refused_malformed, self->st.refused_malformed,
                               "a response on an inbound connection");
    }

    static net::awaitable<net::response> answer(std::shared_ptr<impl> self, int32_t from, gen::rpc_header h,
                                                shared_bytes body) {
        header_error err = header_error::none;
        std::vector<uint8_t> out;
        auto it = self->handlers.find(h.api_key);
        const gen::api_info* api = gen::find_api(h.api_key);
        if (it == self->handlers.end()) {
            err = header_error::unknown_api_key;
        } else if (api != nullptr && (h.api_version < api->min_version || h.api_version > api->max_version)) {
            err = header_error::unsupported_version;
        } else {
            // A copy: the handler's state lives in this frame while it runs,
            // whatever on_request() does meanwhile.
            request_handler fn = it->second;
            try {
                auto op = fn(from, h.api_version, std::move(body));
                out = co_await std::move(op);
            } catch (const std::exception& e) {
                log_error("rpc: the handler of API key {} failed on a request from node {}: {}", h.api_key, from,
                          e.what());
                err = header_error::handler_failed;
            }
        }
        if (out.size() + 64 > static_cast<size_t>(self->cfg.max_frame_bytes)) {
            log_error("rpc: a response of {} bytes to node {} (API key {}) exceeds the frame bound {}", out.size(),
                      from, h.api_key, self->cfg.max_frame_bytes);
            err = header_error::handler_failed;
            out.clear();
        }
        if (err != header_error::none) out.clear();
        auto rh = self->header(h.api_key, h.api_version, h.correlation_id, frame_kind::response, from);
        rh.error_code = static_cast<int16_t>(err);
        protocol::writer w;
        begin_frame(w, rh);
        w.enable_splices(1);
        if (!out.empty()) w.raw(shared_bytes::adopt(std::move(out)));
        finish_frame(w);
        net::response r;
        for (auto& sp : w.take_splices()) r.splices.push_back(net::response::splice{sp.at, std::move(sp.bytes)});
        r.frame = w.take();
        self->count_sent(frame_kind::response);
        co_return r;
    }

    void stop() {
        if (stopping) return;
        stopping = true;
        for (auto& [id, p] : peers) remove_peer(*p, errc::stopped);
        peers.clear();
        raft_fn = nullptr;
        handlers.clear();
    }
};

transport::transport(asio::io_context& ctx, transport_config cfg) : impl_(std::make_shared<impl>(ctx, std::move(cfg))) {
    FJORD_ASSERT(impl_->cfg.self >= 0, "transport for node id {}", impl_->cfg.self);
    FJORD_ASSERT(
        impl_->cfg.connect_backoff_min_ms > 0 && impl_->cfg.connect_backoff_min_ms <= impl_->cfg.connect_backoff_max_ms,
        "connect backoff {}..{} ms", impl_->cfg.connect_backoff_min_ms, impl_->cfg.connect_backoff_max_ms);
    FJORD_ASSERT(impl_->cfg.max_frame_bytes > 64, "max_frame_bytes {}", impl_->cfg.max_frame_bytes);
    auto peers = std::move(impl_->cfg.peers);
    impl_->cfg.peers.clear();
    set_peers(std::move(peers));
}

transport::~transport() {
    impl_->stop();
}

void transport::set_peers(std::vector<peer_address> peers) {
    auto& m = *impl_;
    if (m.stopping) return;
    std::map<int32_t, peer_address> next;
    for (auto& a : peers) {
        FJORD_ASSERT(a.node_id >= 0 && a.node_id != m.cfg.self, "peer node id {} (self {})", a.node_id, m.cfg.self);
        next[a.node_id] = std::move(a);
    }
    for (auto it = m.peers.begin(); it != m.peers.end();) {
        auto n = next.find(it->first);
        if (n == next.end() || n->second != it->second->addr) {
            m.remove_peer(*it->second, errc::disconnected);
            it = m.peers.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& [id, a] : next) {
        if (!m.peers.contains(id)) m.add_peer(a);
    }
    m.cfg.peers.clear();
    for (auto& [id, a] : next) m.cfg.peers.push_back(a);
}

void transport::set_cluster_id(std::string id) {
    impl_->cluster_id = std::move(id);
}

void transport::set_membership(std::function<bool(int32_t)> is_member) {
    impl_->is_member = std::move(is_member);
}

void transport::send(const raft::envelope& e) {
    impl_->send(e);
}

void transport::on_raft(std::function<void(raft::envelope)> fn) {
    impl_->raft_fn = std::move(fn);
}

net::awaitable<result<shared_bytes, errc>> transport::call(int32_t node, int16_t api_key, int16_t version,
                                                           std::vector<uint8_t> body, int64_t timeout_ms) {
    return impl::call(impl_, node, api_key, version, std::move(body), timeout_ms);
}

void transport::on_request(int16_t api_key, request_handler fn) {
    impl_->handlers[api_key] = std::move(fn);
}

net::frame_handler& transport::inbound(unsigned /*shard*/) {
    // Stateless on the calling shard: one handler serves them all.
    return impl_->handler;
}

void transport::stop() {
    impl_->stop();
}

bool transport::stopped() const {
    return impl_->stopping && impl_->live == 0;
}

transport_stats transport::stats() const {
    return impl_->st;
}

size_t transport::queued_bytes(int32_t node) const {
    auto it = impl_->peers.find(node);
    return it == impl_->peers.end() ? 0 : it->second->queued;
}

}  // namespace fjord::rpc
