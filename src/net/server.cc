#include "net/server.h"

#include <sys/socket.h>

#include <chrono>
#include <deque>

#include "base/endian.h"
#include "base/logger.h"

namespace fjord::net {
namespace {
using tcp = asio::ip::tcp;

counter connections_accepted("fjord_connections_accepted_total", "Client connections accepted");
counter connections_open("fjord_connections", "Client connections open", true);
counter requests_rejected("fjord_frames_rejected_total{reason=\"size\"}",
                          "Frames refused before reading them (connection closed)");
counter budget_waits("fjord_backpressure_waits_total{scope=\"shard\"}",
                     "Times a connection stopped reading because its shard's in-flight bytes were at the bound");
counter conn_budget_waits("fjord_backpressure_waits_total{scope=\"connection\"}",
                          "Times a connection stopped reading because its shard's in-flight bytes were at the bound");

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::string peer_of(const tcp::socket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "?";
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// Reads exactly `n` bytes into a buffer grown as the bytes arrive, so a
// length field never allocates more than twice what the peer really sent.
awaitable<bool> read_frame_body(tcp::socket& sock, size_t n, std::vector<uint8_t>& buf) {
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
}  // namespace

struct server::connection {
    struct slot {
        bool done = false;
        size_t request_bytes = 0;
        response resp;
    };
    connection(tcp::socket s, unsigned shard)
        : sock(std::move(s)), wake_reader(sock.get_executor()), wake_writer(sock.get_executor()) {
        info.shard = shard;
    }
    tcp::socket sock;
    connection_info info;
    std::deque<slot> slots;  // in request order; slots.front() has id first_slot
    uint64_t first_slot = 0;
    size_t inflight_bytes = 0;
    bool current_released = true;
    bool reading_done = false;
    bool closed = false;
    int64_t last_active_ms = 0;
    event wake_reader;
    event wake_writer;
};

struct server::shard_state {
    explicit shard_state(asio::io_context& ctx) : acceptor(ctx), idle_timer(ctx), wake(ctx.get_executor()) {}
    tcp::acceptor acceptor;
    asio::steady_timer idle_timer;
    std::map<uint64_t, std::weak_ptr<connection>> conns;
    uint64_t next_id = 1;
    size_t inflight_bytes = 0;
    bool stopping = false;
    bool accept_done = false;
    bool reported_stopped = false;
    event wake;  // readers waiting for the shard budget
};

server::server(shard_set& shards, server_config cfg, std::function<frame_handler&(unsigned)> handler_for)
    : shards_(shards), cfg_(std::move(cfg)), handler_for_(std::move(handler_for)) {
    for (unsigned i = 0; i < shards_.count(); ++i) state_.push_back(std::make_unique<shard_state>(shards_.context(i)));
}

server::~server() = default;

result<uint16_t, std::string> server::listen() {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(cfg_.host, ec);
    if (ec) return fail("listener " + cfg_.listener_name + ": bad address '" + cfg_.host + "': " + ec.message());
    uint16_t port = cfg_.port;
    for (unsigned i = 0; i < shards_.count(); ++i) {
        auto& a = state_[i]->acceptor;
        tcp::endpoint ep(addr, port);
        a.open(ep.protocol(), ec);
        if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) {
            int one = 1;
            if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
                ec = boost::system::error_code(errno, boost::system::system_category());
            }
        }
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            return fail(fmt::format("listener {}: cannot listen on {}:{}: {}", cfg_.listener_name, cfg_.host, port,
                                    ec.message()));
        }
        port = a.local_endpoint().port();  // the first bind picks the port when asked for 0
    }
    port_ = port;
    return port;
}

void server::start() {
    for (unsigned i = 0; i < shards_.count(); ++i) {
        asio::co_spawn(shards_.context(i), accept_loop(this, i), asio::detached);
        asio::co_spawn(shards_.context(i), idle_watch(this, i), asio::detached);
    }
}

void server::stop() {
    for (unsigned i = 0; i < shards_.count(); ++i) {
        asio::post(shards_.context(i), [this, i] { stop_shard(i); });
    }
}

void server::stop_shard(unsigned shard) {
    auto& st = *state_[shard];
    if (st.stopping) return;
    st.stopping = true;
    boost::system::error_code ec;
    st.acceptor.close(ec);
    st.idle_timer.cancel();
    st.wake.notify();
    for (auto& [id, weak] : st.conns) {
        if (auto c = weak.lock()) {
            // Stop reading; what was read is still answered, then the writer closes.
            c->sock.shutdown(tcp::socket::shutdown_receive, ec);
            c->wake_reader.notify();
        }
    }
    if (st.conns.empty() && !st.reported_stopped) {
        st.reported_stopped = true;
        stopped_shards_.fetch_add(1);
    }
}

awaitable<void> server::accept_loop(server* self, unsigned shard) {
    auto& st = *self->state_[shard];
    while (!st.stopping) {
        auto [ec, sock] = co_await st.acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (st.stopping || ec == asio::error::operation_aborted) break;
            log_warn("listener {}: accept failed: {}", self->cfg_.listener_name, ec.message());
            asio::steady_timer t(st.acceptor.get_executor(), std::chrono::milliseconds(100));
            co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        sock.set_option(tcp::no_delay(true), ec);
        auto c = std::make_shared<connection>(std::move(sock), shard);
        c->info.id = (static_cast<uint64_t>(shard) << 48) | st.next_id++;
        c->info.peer = peer_of(c->sock);
        c->info.listener = self->cfg_.listener_name;
        c->last_active_ms = now_ms();
        st.conns[c->info.id] = c;
        connections_accepted.inc();
        connections_open.add(1);
        log_debug("{}: connection {} accepted", c->info.peer, c->info.id);
        auto ex = st.acceptor.get_executor();
        asio::co_spawn(ex, read_loop(self, c), asio::detached);
        asio::co_spawn(ex, write_loop(self, std::move(c)), asio::detached);
    }
    st.accept_done = true;
}

awaitable<void> server::read_loop(server* self, std::shared_ptr<connection> c) {
    auto& st = *self->state_[c->info.shard];
    const auto& cfg = self->cfg_;
    while (!st.stopping && !c->closed) {
        if (c->slots.size() >= cfg.max_inflight_requests ||
            (c->inflight_bytes >= cfg.max_inflight_bytes && !c->slots.empty())) {
            conn_budget_waits.inc();
            while (!st.stopping && !c->closed &&
                   (c->slots.size() >= cfg.max_inflight_requests ||
                    (c->inflight_bytes >= cfg.max_inflight_bytes && !c->slots.empty()))) {
                co_await c->wake_reader.wait();
            }
            continue;
        }
        uint8_t hdr[4];
        boost::system::error_code ec;
        co_await asio::async_read(c->sock, asio::buffer(hdr), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        int32_t size = static_cast<int32_t>(load_be<uint32_t>(hdr));
        if (size < 0 || size > cfg.max_request_bytes) {
            requests_rejected.inc();
            log_warn("{}: request of {} bytes is outside [0, socket.request.max.bytes={}]; closing the connection",
                     c->info.peer, size, cfg.max_request_bytes);
            break;
        }
        auto n = static_cast<size_t>(size);
        if (st.inflight_bytes > 0 && st.inflight_bytes + n > cfg.shard_max_inflight_bytes) {
            budget_waits.inc();
            while (!st.stopping && st.inflight_bytes > 0 && st.inflight_bytes + n > cfg.shard_max_inflight_bytes) {
                co_await st.wake.wait();
            }
        }
        st.inflight_bytes += n;
        c->inflight_bytes += n;
        std::vector<uint8_t> body;
        if (!co_await read_frame_body(c->sock, n, body)) {
            st.inflight_bytes -= n;
            c->inflight_bytes -= n;
            st.wake.notify();
            break;
        }
        c->last_active_ms = now_ms();
        c->slots.emplace_back();
        c->slots.back().request_bytes = n;
        uint64_t id = c->first_slot + c->slots.size() - 1;
        c->current_released = false;
        asio::co_spawn(c->sock.get_executor(), run_request(self, c, id, shared_bytes::adopt(std::move(body))),
                       asio::detached);
        while (!c->current_released && !c->closed) co_await c->wake_reader.wait();
    }
    c->reading_done = true;
    c->wake_writer.notify();
}

awaitable<void> server::run_request(server* self, std::shared_ptr<connection> c, size_t slot_id, shared_bytes frame) {
    auto& st = *self->state_[c->info.shard];
    response resp;
    {
        request_order order(c->current_released, c->wake_reader);
        try {
            auto answer = self->handler_for_(c->info.shard).handle(c->info, std::move(frame), order);
            resp = co_await std::move(answer);
        } catch (const std::exception& e) {
            log_error("{}: request failed: {}; closing the connection", c->info.peer, e.what());
            resp = response{};
            resp.close = true;
        }
        order.release();  // a handler that never released lets the next request start now
    }
    auto& s = c->slots[slot_id - c->first_slot];
    // The request's bytes are free now; the response's count until written
    // (a reader that does not read holds the shard's budget, not more).
    st.inflight_bytes -= s.request_bytes;
    c->inflight_bytes -= s.request_bytes;
    if (c->closed) resp = response{};  // nobody to send it to
    st.inflight_bytes += resp.size();
    c->inflight_bytes += resp.size();
    s.resp = std::move(resp);
    s.done = true;
    st.wake.notify();
    c->wake_reader.notify();
    c->wake_writer.notify();
}

awaitable<void> server::write_loop(server* self, std::shared_ptr<connection> c) {
    bool close_now = false;
    while (!close_now) {
        while (!c->closed && (c->slots.empty() || !c->slots.front().done)) {
            if (c->reading_done && c->slots.empty()) break;
            co_await c->wake_writer.wait();
        }
        if (c->closed || c->slots.empty()) break;
        auto s = std::move(c->slots.front());
        c->slots.pop_front();
        ++c->first_slot;
        const size_t bytes = s.resp.size();
        if (!s.resp.frame.empty()) {
            boost::system::error_code ec;
            if (s.resp.splices.empty()) {
                co_await asio::async_write(c->sock, asio::buffer(s.resp.frame),
                                           asio::redirect_error(asio::use_awaitable, ec));
            } else {
                // Gather write: frame pieces with the spliced batches between them.
                std::vector<asio::const_buffer> parts;
                parts.reserve(2 * s.resp.splices.size() + 1);
                size_t from = 0;
                for (const auto& sp : s.resp.splices) {
                    if (sp.at > from) parts.emplace_back(s.resp.frame.data() + from, sp.at - from);
                    parts.emplace_back(sp.bytes.data(), sp.bytes.size());
                    from = sp.at;
                }
                if (from < s.resp.frame.size())
                    parts.emplace_back(s.resp.frame.data() + from, s.resp.frame.size() - from);
                co_await asio::async_write(c->sock, parts, asio::redirect_error(asio::use_awaitable, ec));
            }
            if (ec) close_now = true;
            c->last_active_ms = now_ms();
        }
        c->inflight_bytes -= bytes;
        self->state_[c->info.shard]->inflight_bytes -= bytes;
        self->state_[c->info.shard]->wake.notify();
        if (s.resp.close) close_now = true;
        c->wake_reader.notify();
    }
    // Handlers still running keep the connection object alive; their
    // responses are dropped, and so are the answers not yet written.
    c->closed = true;
    for (auto& s : c->slots) {
        if (!s.done) continue;
        self->state_[c->info.shard]->inflight_bytes -= s.resp.size();
        c->inflight_bytes -= s.resp.size();
        s.resp = response{};
    }
    self->state_[c->info.shard]->wake.notify();
    boost::system::error_code ec;
    c->sock.shutdown(tcp::socket::shutdown_both, ec);
    c->sock.close(ec);
    c->wake_reader.notify();
    self->connection_done(*c);
}

void server::connection_done(connection& c) {
    auto& st = *state_[c.info.shard];
    st.conns.erase(c.info.id);
    connections_open.add(-1);
    log_debug("{}: connection {} closed", c.info.peer, c.info.id);
    handler_for_(c.info.shard).closed(c.info);
    if (st.stopping && st.conns.empty() && !st.reported_stopped) {
        st.reported_stopped = true;
        stopped_shards_.fetch_add(1);
    }
}

awaitable<void> server::idle_watch(server* self, unsigned shard) {
    auto& st = *self->state_[shard];
    auto period = std::chrono::milliseconds(std::clamp<int64_t>(self->cfg_.idle_timeout_ms / 10, 10, 1000));
    auto& t = st.idle_timer;
    while (!st.stopping) {
        t.expires_after(period);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        int64_t now = now_ms();
        for (auto& [id, weak] : st.conns) {
            auto c = weak.lock();
            if (!c || !c->slots.empty() || now - c->last_active_ms < self->cfg_.idle_timeout_ms) continue;
            log_info("{}: connection idle for more than connections.max.idle.ms={}; closing", c->info.peer,
                     self->cfg_.idle_timeout_ms);
            boost::system::error_code ec;
            c->sock.shutdown(tcp::socket::shutdown_receive, ec);
        }
    }
}

}  // namespace fjord::net
