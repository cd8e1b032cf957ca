// server: Kafka-style size-prefixed request framing over TCP, shard per core.
//
// Every shard accepts on the same address (SO_REUSEPORT: the kernel spreads
// connections over the shards) and serves its connections on its own loop.
// Per connection, requests are read in order and handed to the frame_handler;
// the handler may let the next request start before it finishes
// (request_order::release, e.g. once a produce is appended and only its fsync
// is awaited), so requests pipeline, and responses are written strictly in
// request order.
//
// Bounds, so that neither a produce flood nor a slow reader exhausts memory:
// a frame larger than socket.request.max.bytes (or negative) closes the
// connection before anything is allocated; a connection stops reading while
// it has max_inflight_requests or max_inflight_bytes (request plus response
// bytes) outstanding; a shard stops reading on all its connections while
// shard_max_inflight_bytes are outstanding (a request alone is always
// admitted, so progress is guaranteed). Idle connections close after
// connections.max.idle.ms.
//
// Threading: each connection lives on the shard that accepted it. Lifecycle:
// listen() (binds on every shard; before shard_set::run), start(), then
// stop() from any thread: acceptors close, connections stop reading,
// in-flight requests finish and their responses are written, then the
// connections close; stopped() reports when every shard is done.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "net/event.h"
#include "net/shard.h"

namespace fjord::net {

struct server_config {
    std::string listener_name = "PLAINTEXT";
    std::string host = "0.0.0.0";
    uint16_t port = 9092;
    int32_t max_request_bytes = 104857600;  // socket.request.max.bytes
    int64_t idle_timeout_ms = 600000;       // connections.max.idle.ms
    size_t max_inflight_requests = 100;     // per connection
    size_t max_inflight_bytes = 64u << 20;  // per connection
    size_t shard_max_inflight_bytes = 256u << 20;
};

struct connection_info {
    uint64_t id = 0;
    unsigned shard = 0;
    std::string peer;  // "ip:port"
    std::string listener;
};

struct response {
    std::vector<uint8_t> frame;  // the whole frame, size prefix included; empty: nothing to send
    // Shared buffers sent in place (record batches, not copied): each goes
    // before frame[at], in order.
    struct splice {
        size_t at = 0;
        shared_bytes bytes;
    };
    std::vector<splice> splices;
    bool close = false;  // close the connection after this (a protocol error)
    size_t size() const {
        size_t n = frame.size();
        for (const auto& s : splices) n += s.bytes.size();
        return n;
    }
};

// Lets the next request on the connection start before this one finishes.
class request_order {
public:
    request_order(bool& connection_flag, event& ev) : flag_(connection_flag), ev_(ev) {}
    void release() {
        if (!released_) {
            released_ = true;
            flag_ = true;
            ev_.notify();
        }
    }
    bool released() const { return released_; }

private:
    bool& flag_;
    event& ev_;
    bool released_ = false;
};

class frame_handler {
public:
    virtual ~frame_handler() = default;
    // Runs on the connection's shard, started in request order. The next
    // request starts when `order.release()` is called or this returns.
    virtual awaitable<response> handle(const connection_info& conn, shared_bytes frame, request_order& order) = 0;
    // The connection closed (by either side); its sessions may be dropped.
    virtual void closed(const connection_info& conn) {}
};

class server {
public:
    // `handler_for(shard)` is the handler serving that shard's connections.
    server(shard_set& shards, server_config cfg, std::function<frame_handler&(unsigned)> handler_for);
    ~server();

    // Binds every shard's acceptor; returns the bound port (useful with port 0).
    result<uint16_t, std::string> listen();
    void start();
    void stop();
    // Every shard has stopped accepting and closed its last connection.
    bool stopped() const { return stopped_shards_.load() == shards_.count(); }
    uint16_t port() const { return port_; }

private:
    struct connection;
    struct shard_state;
    static awaitable<void> accept_loop(server* self, unsigned shard);
    static awaitable<void> read_loop(server* self, std::shared_ptr<connection> c);
    static awaitable<void> write_loop(server* self, std::shared_ptr<connection> c);
    static awaitable<void> run_request(server* self, std::shared_ptr<connection> c, size_t slot_id, shared_bytes frame);
    static awaitable<void> idle_watch(server* self, unsigned shard);
    void stop_shard(unsigned shard);
    void connection_done(connection& c);

    shard_set& shards_;
    server_config cfg_;
    std::function<frame_handler&(unsigned)> handler_for_;
    std::vector<std::unique_ptr<shard_state>> state_;
    uint16_t port_ = 0;
    std::atomic<unsigned> stopped_shards_{0};
};

}  // namespace fjord::net
