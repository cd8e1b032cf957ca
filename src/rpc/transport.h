// transport: node-to-node messaging over TCP with Fjord's RPC frames
// (frame.h): one-way Raft envelopes, and requests with responses (forwarded
// admin requests, broker registration and heartbeats).
//
// Outbound: one TCP connection per peer (TCP_NODELAY), opened when there is
// something to send and re-opened after a failure with exponential backoff
// and jitter. Frames wait in a per-peer queue bounded by max_queue_bytes: a
// one-way frame that does not fit is dropped and counted (Raft retransmits),
// a call that does not fit fails with queue_full. One writer per connection
// drains the queue, several frames per write. Responses come back on the same
// connection; correlation ids match them to calls. A call fails with
// `disconnected` when the connection that carried it closes (or when the peer
// cannot be reached while it waits to be sent), with `timeout` after
// request_timeout_ms (or the call's own timeout).
//
// Inbound: inbound(shard) is the net::frame_handler of a net::server bound on
// the node's controller listener; it may run on any shard and hands every
// frame to this transport's io_context. A frame addressed to another node,
// naming another cluster (once set_cluster_id was called; a frame naming none
// passes: its sender has not learned the id yet), from a node that is
// not a member (set_membership), claiming another node id than earlier frames
// of its connection, or that does not decode closes the connection (one log
// line per second at most, naming the peer's address and node id). One-way
// Raft frames go to on_raft(); requests to the handler registered for their
// API key, whose answer is written back as the response. The server answers
// a connection's requests in order and stops reading it at
// max_inflight_requests outstanding frames: give the controller listener a
// large bound, or a slow request holds back the Raft frames behind it
// (README). Its max_request_bytes should be max_frame_bytes.
//
// Threading: one instance per shard that needs it, living on that shard's
// io_context ("home"): every member but inbound() must be called there, and
// the callbacks run there. Today only shard 0 has one; later each shard can
// have its own for the Raft groups of its partitions (ARCHITECTURE §2).
//
// Lifecycle: construct, set_peers() / on_raft() / on_request() (also later:
// peers change as the cluster does), then send() and call(). stop() closes
// every connection, fails pending calls with `stopped` and drops what is
// queued; it blocks on nothing, and stopped() turns true once the background
// coroutines have ended. Stop the net::server feeding inbound() before
// destroying the transport; destroy it on its home shard (the destructor
// stops it) or after the io_context has stopped running.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "net/server.h"
#include "net/shard.h"
#include "raft/group_manager.h"
#include "rpc/errc.h"

namespace fjord::rpc {

struct peer_address {
    int32_t node_id = -1;
    std::string host;
    uint16_t port = 0;
    friend bool operator==(const peer_address&, const peer_address&) = default;
};

struct transport_config {
    int32_t self = -1;
    std::vector<peer_address> peers;      // outbound targets; set_peers() replaces them
    size_t max_queue_bytes = 64u << 20;   // per peer
    int32_t max_frame_bytes = 100 << 20;  // a frame's bytes after its size prefix, either way
    int64_t connect_backoff_min_ms = 50;
    int64_t connect_backoff_max_ms = 2000;
    int64_t connect_timeout_ms = 5000;
    int64_t request_timeout_ms = 30000;
    size_t max_write_bytes = 1u << 20;    // queued frames coalesced into one write, up to this
    size_t splice_min_bytes = 16u << 10;  // byte fields this large are written from their own buffers
};

// Counts of one transport (the process-wide sums are metrics, see
// transport.cc). Frames are counted by kind: one-way, request, response.
struct transport_stats {
    uint64_t one_way_sent = 0;
    uint64_t one_way_received = 0;
    uint64_t requests_sent = 0;
    uint64_t requests_received = 0;
    uint64_t responses_sent = 0;
    uint64_t responses_received = 0;
    // One-way frames not sent.
    uint64_t dropped_queue_full = 0;
    uint64_t dropped_unknown_peer = 0;
    uint64_t dropped_too_large = 0;
    uint64_t dropped_stopped = 0;
    // Inbound frames refused (their connection closed), by reason.
    uint64_t refused_malformed = 0;    // undecodable, or a frame kind or API key out of place
    uint64_t refused_destination = 0;  // for another node, from this one, or a connection changing node id
    uint64_t refused_cluster = 0;      // another cluster id than ours (none passes)
    uint64_t refused_not_member = 0;
    // Outbound connections.
    uint64_t connects = 0;    // established
    uint64_t reconnects = 0;  // established to a peer that had a connection before
    uint64_t connect_failures = 0;
    uint64_t calls_timed_out = 0;
    uint64_t calls_disconnected = 0;
};

// Answers one request: runs on the transport's home shard; its result is the
// response body. Throwing answers with header_error::handler_failed.
using request_handler =
    std::function<net::awaitable<std::vector<uint8_t>>(int32_t from, int16_t version, shared_bytes body)>;

class transport {
public:
    transport(net::asio::io_context& ctx, transport_config cfg);
    ~transport();
    transport(const transport&) = delete;
    transport& operator=(const transport&) = delete;

    // Replaces the outbound targets: a peer that left (or moved) loses its
    // connection, its queue and its calls (`disconnected`).
    void set_peers(std::vector<peer_address> peers);
    // Inbound frames naming another cluster id are refused from now on (none
    // passes); outbound frames carry it (null until set).
    void set_cluster_id(std::string id);
    // Inbound frames from a node for which is_member() is false are refused.
    void set_membership(std::function<bool(int32_t)> is_member);

    // One-way: queues `e` for e.to (e.from must be this node). Dropped and
    // counted when the peer is unknown, its queue is full, or the frame is
    // larger than max_frame_bytes.
    void send(const raft::envelope& e);
    // Inbound Raft envelopes, on the home shard, in each peer's sending order.
    void on_raft(std::function<void(raft::envelope)> fn);

    // Request/response: the response body (a view of the received frame).
    // timeout_ms > 0 replaces request_timeout_ms for this call: a caller
    // whose answer is useless after a while (a broker heartbeat, once the
    // session it keeps alive is over) says so, rather than waiting 30 s on a
    // peer that was cut off without its connection closing.
    net::awaitable<result<shared_bytes, errc>> call(int32_t node, int16_t api_key, int16_t version,
                                                    std::vector<uint8_t> body, int64_t timeout_ms = 0);
    void on_request(int16_t api_key, request_handler fn);

    // The handler for a net::server on the controller listener; any shard.
    net::frame_handler& inbound(unsigned shard);

    void stop();
    bool stopped() const;

    transport_stats stats() const;
    // Bytes waiting in the peer's queue (0 for an unknown peer).
    size_t queued_bytes(int32_t node) const;

private:
    // Shared with the background coroutines, which may outlive the handle.
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace fjord::rpc
