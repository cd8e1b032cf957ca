// The transport over real loopback sockets (ports from binding port 0):
// three nodes exchange Raft envelopes of every kind byte-identically; a peer
// that is down, then up, then restarted gets what was sent; a full queue
// drops and counts; calls answer, time out, fail on a lost connection and
// on an unreachable peer; frames from a non-member, another cluster, for
// another node, or garbage close the connection and deliver nothing.
#include "rpc/transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "net/when_all.h"

#include "base/endian.h"
#include "rpc/frame.h"
#include "rpc/gen/broker_heartbeat.h"
#include "rpc/gen/broker_registration.h"
#include "rpc/gen/forward.h"
#include "rpc/gen/raft_timeout_now.h"
#include "rpc/raft_codec.h"
#include "rpc/raft_test_util.h"

namespace fjord::rpc {
namespace {
namespace asio = net::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using test_util::describe;
using test_util::envelope_maker;

// Runs f on the io_context's thread and returns its result.
template <typename F>
auto on(asio::io_context& ctx, F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(ctx, [&task] { task(); });
    return done.get();
}

using call_result = result<shared_bytes, errc>;

net::awaitable<void> deliver(net::awaitable<call_result> a, std::shared_ptr<std::promise<call_result>> p) {
    auto r = co_await std::move(a);
    p->set_value(std::move(r));
}

// Runs a call on the io_context; its result comes through the future.
std::future<call_result> start(asio::io_context& ctx, net::awaitable<call_result> a) {
    auto p = std::make_shared<std::promise<call_result>>();
    auto f = p->get_future();
    asio::co_spawn(ctx, deliver(std::move(a), std::move(p)), asio::detached);
    return f;
}

call_result wait_for(asio::io_context& ctx, net::awaitable<call_result> a) {
    return start(ctx, std::move(a)).get();
}

net::awaitable<void> deliver_epochs(net::awaitable<std::vector<int64_t>> a, std::promise<std::vector<int64_t>>* p) {
    auto r = co_await std::move(a);
    p->set_value(std::move(r));
}

template <typename F>
bool eventually(F cond, std::chrono::milliseconds limit = 10s) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (cond()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return cond();
}

uint16_t free_port() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

// One node: a transport on shard `home` of `shards` and a server on every
// shard of it, feeding inbound().
struct node {
    node(net::shard_set& shards, unsigned home, int32_t id, transport_config cfg = {}, uint16_t port = 0)
        : shards(shards), ctx(shards.context(home)) {
        cfg.self = id;
        t = std::make_unique<transport>(ctx, cfg);
        net::server_config sc;
        sc.listener_name = "CONTROLLER";
        sc.host = "127.0.0.1";
        sc.port = port;
        srv = std::make_unique<net::server>(shards, sc,
                                            [this](unsigned s) -> net::frame_handler& { return t->inbound(s); });
        auto p = srv->listen();
        EXPECT_TRUE(p.ok());
        this->port = p.ok() ? p.value() : 0;
        srv->start();
        t->on_raft([this](raft::envelope e) { received.push_back(std::move(e)); });
    }
    ~node() {
        srv->stop();
        for (int i = 0; i < 1000 && !srv->stopped(); ++i) std::this_thread::sleep_for(5ms);
        // stopped() turns true before the server's accept and idle loops
        // have run their last step (already queued): let every shard pass
        // them before the server goes (TSan caught the test destroying it
        // under them).
        for (unsigned s = 0; s < shards.count(); ++s) on(shards.context(s), [] {});
        on(ctx, [this] { t->stop(); });
        EXPECT_TRUE(eventually([this] { return on(ctx, [this] { return t->stopped(); }); }));
        on(ctx, [this] { t.reset(); });
    }
    peer_address address(int32_t id) const { return peer_address{id, "127.0.0.1", port}; }
    transport_stats stats() {
        return on(ctx, [this] { return t->stats(); });
    }
    size_t received_count() {
        return on(ctx, [this] { return received.size(); });
    }
    // The envelopes received from `from`, in order.
    std::vector<std::string> received_from(int32_t from) {
        return on(ctx, [this, from] {
            std::vector<std::string> out;
            for (const auto& e : received) {
                if (e.from.get() == from) out.push_back(describe(e));
            }
            return out;
        });
    }

    net::shard_set& shards;
    asio::io_context& ctx;
    std::unique_ptr<transport> t;
    std::unique_ptr<net::server> srv;
    uint16_t port = 0;
    std::vector<raft::envelope> received;  // home shard only
};

struct three_nodes {
    explicit three_nodes(transport_config cfg = {}) : shards(3) {
        for (int32_t i = 0; i < 3; ++i) nodes.push_back(std::make_unique<node>(shards, unsigned(i), i, cfg));
        for (int32_t i = 0; i < 3; ++i) {
            std::vector<peer_address> peers;
            for (int32_t j = 0; j < 3; ++j) {
                if (j != i) peers.push_back(nodes[size_t(j)]->address(j));
            }
            nodes[size_t(i)]->t->set_peers(peers);  // before the shards run: no other thread yet
        }
        shards.run();
    }
    ~three_nodes() {
        nodes.clear();
        shards.stop();
        shards.join();
    }
    node& operator[](int32_t i) { return *nodes[size_t(i)]; }
    net::shard_set shards;
    std::vector<std::unique_ptr<node>> nodes;
};

// ---- Raft envelopes

TEST(transport, three_nodes_exchange_every_kind_byte_identically) {
    transport_config cfg;
    cfg.splice_min_bytes = 1024;  // payloads and snapshots go out as spliced buffers
    three_nodes c(cfg);
    envelope_maker mk(21);
    constexpr int per_kind = 30;
    std::map<std::pair<int32_t, int32_t>, std::vector<std::string>> sent;
    std::map<std::pair<int32_t, int32_t>, std::vector<std::vector<uint8_t>>> sent_bytes;
    for (int32_t a = 0; a < 3; ++a) {
        std::vector<raft::envelope> batch;
        for (int32_t b = 0; b < 3; ++b) {
            if (a == b) continue;
            for (int i = 0; i < 9 * per_kind; ++i) {
                auto e = mk.make(i % 9, raft::node_id(a), raft::node_id(b));
                sent[{a, b}].push_back(describe(e));
                sent_bytes[{a, b}].push_back(encode_raft(e));
                batch.push_back(std::move(e));
            }
        }
        // A large append too: more than one write's worth (max_write_bytes).
        raft::append_request big{raft::term_id(3), raft::offset(99), raft::term_id(2), raft::offset(50), {}};
        big.entries.push_back(raft::entry{raft::offset(100), 7, raft::term_id(3), raft::entry_kind::data,
                                          shared_bytes::adopt(std::vector<uint8_t>(3u << 20, uint8_t(a)))});
        int32_t b = (a + 1) % 3;
        raft::envelope e{raft::node_id(a), raft::node_id(b),
                         raft::message{raft::group_id(4), raft::node_id(a), raft::node_id(b), std::move(big)}};
        sent[{a, b}].push_back(describe(e));
        sent_bytes[{a, b}].push_back(encode_raft(e));
        batch.push_back(std::move(e));
        on(c[a].ctx, [&c, &batch, a] {
            for (const auto& e : batch) c[a].t->send(e);
        });
    }
    const size_t each = 2 * 9 * per_kind + 1;
    for (int32_t b = 0; b < 3; ++b) {
        ASSERT_TRUE(eventually([&] { return c[b].received_count() == each; })) << c[b].received_count();
    }
    for (int32_t b = 0; b < 3; ++b) {
        for (int32_t a = 0; a < 3; ++a) {
            if (a == b) continue;
            auto got = c[b].received_from(a);
            ASSERT_EQ(got, (sent[{a, b}])) << a << " -> " << b;
            auto bytes = on(c[b].ctx, [&c, a, b] {
                std::vector<std::vector<uint8_t>> out;
                for (const auto& e : c[b].received) {
                    if (e.from.get() == a) out.push_back(encode_raft(e));
                }
                return out;
            });
            EXPECT_EQ(bytes, (sent_bytes[{a, b}])) << a << " -> " << b;
        }
        auto st = c[b].stats();
        EXPECT_EQ(st.one_way_sent, each);
        EXPECT_EQ(st.one_way_received, each);
        EXPECT_EQ(st.dropped_queue_full + st.dropped_unknown_peer + st.dropped_too_large, 0u);
        EXPECT_EQ(st.refused_malformed + st.refused_destination + st.refused_cluster + st.refused_not_member, 0u);
        EXPECT_EQ(st.connects, 2u);  // one connection per peer
        EXPECT_EQ(st.reconnects, 0u);
    }
}

TEST(transport, unknown_peers_and_oversize_frames_are_dropped_and_counted) {
    transport_config cfg;
    cfg.max_frame_bytes = 4096;
    three_nodes c(cfg);
    on(c[0].ctx, [&c] {
        auto to9 = envelope_maker(1).make(7, raft::node_id(0), raft::node_id(9));
        c[0].t->send(to9);
        raft::append_request big{raft::term_id(3), raft::offset(99), raft::term_id(2), raft::offset(50), {}};
        big.entries.push_back(raft::entry{raft::offset(100), 1, raft::term_id(3), raft::entry_kind::data,
                                          shared_bytes::adopt(std::vector<uint8_t>(5000))});
        c[0].t->send(raft::envelope{raft::node_id(0), raft::node_id(1),
                                    raft::message{raft::group_id(1), raft::node_id(0), raft::node_id(1), big}});
    });
    auto st = c[0].stats();
    EXPECT_EQ(st.dropped_unknown_peer, 1u);
    EXPECT_EQ(st.dropped_too_large, 1u);
    EXPECT_EQ(on(c[0].ctx, [&c] { return c[0].t->queued_bytes(1); }), 0u);
}

TEST(transport, a_peer_that_is_down_gets_its_messages_once_up_and_after_a_restart) {
    transport_config cfg;
    cfg.connect_backoff_min_ms = 20;
    cfg.connect_backoff_max_ms = 100;
    const uint16_t port1 = free_port();
    net::shard_set s0(1);
    node n0(s0, 0, 0, cfg);
    n0.t->set_peers({peer_address{1, "127.0.0.1", port1}});
    s0.run();
    envelope_maker mk(5);
    std::vector<std::string> sent;
    auto send_some = [&](int n) {
        std::vector<raft::envelope> batch;
        for (int i = 0; i < n; ++i) batch.push_back(mk.make(i % 9, raft::node_id(0), raft::node_id(1)));
        for (const auto& e : batch) sent.push_back(describe(e));
        on(n0.ctx, [&n0, &batch] {
            for (const auto& e : batch) n0.t->send(e);
        });
    };
    send_some(40);
    ASSERT_TRUE(eventually([&] { return n0.stats().connect_failures >= 3; }));
    EXPECT_GT(on(n0.ctx, [&n0] { return n0.t->queued_bytes(1); }), 0u);

    {
        net::shard_set s1(1);
        node n1(s1, 0, 1, cfg, port1);
        s1.run();
        ASSERT_TRUE(eventually([&] { return n1.received_count() == 40; })) << n1.received_count();
        send_some(20);
        ASSERT_TRUE(eventually([&] { return n1.received_count() == 60; }));
        EXPECT_EQ(n1.received_from(0), sent);
        auto st = n0.stats();
        EXPECT_EQ(st.connects, 1u);
        EXPECT_EQ(st.reconnects, 0u);
        EXPECT_EQ(st.dropped_queue_full, 0u);
    }
    // Node 1 is gone; what is sent meanwhile waits, and a restarted node 1
    // (same address) gets it over a new connection. (Frames written before
    // node 0 sees the close would be lost, as TCP loses them: wait for it.)
    std::this_thread::sleep_for(200ms);
    sent.clear();
    send_some(30);
    {
        net::shard_set s1(1);
        node n1(s1, 0, 1, cfg, port1);
        s1.run();
        ASSERT_TRUE(eventually([&] { return n1.received_count() == 30; })) << n1.received_count();
        EXPECT_EQ(n1.received_from(0), sent);
        auto st = n0.stats();
        EXPECT_EQ(st.connects, 2u);
        EXPECT_EQ(st.reconnects, 1u);
    }
}

TEST(transport, a_full_queue_drops_one_way_frames_and_counts_them) {
    transport_config cfg;
    cfg.max_queue_bytes = 64 * 1024;
    cfg.connect_backoff_min_ms = 1000;
    cfg.connect_backoff_max_ms = 1000;
    net::shard_set s0(1);
    node n0(s0, 0, 0, cfg);
    n0.t->set_peers({peer_address{1, "127.0.0.1", free_port()}});  // nobody listens there
    s0.run();
    constexpr int n = 500;
    on(n0.ctx, [&n0] {
        for (int i = 0; i < n; ++i) {
            raft::append_request a{raft::term_id(1), raft::offset(i - 1), raft::term_id(1), raft::no_offset, {}};
            a.entries.push_back(raft::entry{raft::offset(i), 1, raft::term_id(1), raft::entry_kind::data,
                                            shared_bytes::adopt(std::vector<uint8_t>(1000))});
            n0.t->send(raft::envelope{raft::node_id(0), raft::node_id(1),
                                      raft::message{raft::group_id(1), raft::node_id(0), raft::node_id(1), a}});
        }
    });
    size_t queued = on(n0.ctx, [&n0] { return n0.t->queued_bytes(1); });
    auto st = n0.stats();
    // Every frame has the same size: the body, a 19-byte header (null cluster
    // id, no tags) and the size prefix.
    raft::append_request a{raft::term_id(1), raft::offset(0), raft::term_id(1), raft::no_offset, {}};
    a.entries.push_back(raft::entry{raft::offset(1), 1, raft::term_id(1), raft::entry_kind::data,
                                    shared_bytes::adopt(std::vector<uint8_t>(1000))});
    const size_t frame =
        4 + 19 +
        encode_raft(raft::envelope{raft::node_id(0), raft::node_id(1),
                                   raft::message{raft::group_id(1), raft::node_id(0), raft::node_id(1), a}})
            .size();
    const size_t fit = cfg.max_queue_bytes / frame;
    EXPECT_EQ(queued, fit * frame);
    EXPECT_EQ(st.dropped_queue_full, n - fit);
    EXPECT_EQ(st.one_way_sent, 0u);
}

// ---- calls

net::awaitable<std::vector<uint8_t>> register_broker(int32_t from, int16_t version, shared_bytes body) {
    auto req = gen::decode_message<gen::broker_registration_request>(std::move(body), version);
    if (!req.ok()) throw std::runtime_error("undecodable registration");
    gen::broker_registration_response resp;
    resp.broker_epoch = 1000 * from + req->node_id;
    resp.error_message = req->rack;
    auto out = gen::encode_message(resp, version);
    co_return std::move(out.value());
}

net::awaitable<std::vector<uint8_t>> slow_answer(int32_t, int16_t, shared_bytes body) {
    asio::steady_timer t(co_await asio::this_coro::executor, 500ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return std::vector<uint8_t>(body.data(), body.data() + body.size());
}

net::awaitable<std::vector<uint8_t>> failing_answer(int32_t, int16_t, shared_bytes) {
    throw std::runtime_error("handler bug");
    co_return std::vector<uint8_t>{};
}

std::vector<uint8_t> registration(int32_t node_id, std::string rack) {
    gen::broker_registration_request r;
    r.node_id = node_id;
    r.rack = std::move(rack);
    r.listeners.push_back({"PLAINTEXT", "localhost", 9092, 0, {}});
    return gen::encode_message(r, 0).value();
}

net::awaitable<std::vector<int64_t>> many_calls(transport* t, int n) {
    std::vector<net::awaitable<void>> tasks;
    std::vector<int64_t> epochs(size_t(n), -1);
    for (int i = 0; i < n; ++i) {
        tasks.push_back([](transport* t, int i, int64_t* out) -> net::awaitable<void> {
            auto calling =
                t->call(1, gen::broker_registration_request::api_key, 0, registration(i, "rack-" + std::to_string(i)));
            auto r = co_await std::move(calling);
            if (!r.ok()) co_return;
            auto resp = gen::decode_message<gen::broker_registration_response>(std::move(r.value()), 0);
            if (resp.ok() && resp->error_message == "rack-" + std::to_string(i)) *out = resp->broker_epoch;
        }(t, i, &epochs[size_t(i)]));
    }
    co_await net::when_all(std::move(tasks));
    co_return epochs;
}

TEST(transport, calls_are_answered_and_matched_by_correlation_id) {
    three_nodes c;
    on(c[1].ctx, [&c] {
        c[1].t->on_request(gen::broker_registration_request::api_key, &register_broker);
        c[1].t->on_request(gen::forward_request::api_key, &failing_answer);
    });
    std::promise<std::vector<int64_t>> done;
    auto got = done.get_future();
    asio::co_spawn(c[0].ctx, deliver_epochs(many_calls(c[0].t.get(), 100), &done), asio::detached);
    auto epochs = got.get();
    for (int i = 0; i < 100; ++i) EXPECT_EQ(epochs[size_t(i)], i) << i;  // 1000 * from(0) + i

    auto* t0 = c[0].t.get();
    auto unknown = wait_for(c[0].ctx, t0->call(1, gen::broker_heartbeat_request::api_key, 0, {}));
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error(), errc::unknown_api_key);
    auto version = wait_for(c[0].ctx, t0->call(1, gen::broker_registration_request::api_key, 3, {}));
    ASSERT_FALSE(version.ok());
    EXPECT_EQ(version.error(), errc::unsupported_version);
    auto failed = wait_for(c[0].ctx, t0->call(1, gen::forward_request::api_key, 0, {}));
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error(), errc::remote_error);
    auto no_peer = wait_for(c[0].ctx, t0->call(7, gen::forward_request::api_key, 0, {}));
    ASSERT_FALSE(no_peer.ok());
    EXPECT_EQ(no_peer.error(), errc::unknown_peer);
    // Node 2 asks too: its own connection, its own correlation ids.
    auto from2 =
        wait_for(c[2].ctx, c[2].t->call(1, gen::broker_registration_request::api_key, 0, registration(5, "r")));
    ASSERT_TRUE(from2.ok());
    EXPECT_EQ(gen::decode_message<gen::broker_registration_response>(*from2, 0)->broker_epoch, 2005);

    auto st = c[0].stats();
    EXPECT_EQ(st.requests_sent, 103u);
    EXPECT_EQ(st.responses_received, 103u);
    EXPECT_EQ(c[1].stats().requests_received, 104u);
    EXPECT_EQ(c[1].stats().responses_sent, 104u);
}

TEST(transport, a_call_times_out_and_its_late_answer_is_ignored) {
    transport_config cfg;
    cfg.request_timeout_ms = 150;
    three_nodes c(cfg);
    on(c[1].ctx, [&c] {
        c[1].t->on_request(gen::forward_request::api_key, &slow_answer);
        c[1].t->on_request(gen::broker_registration_request::api_key, &register_broker);
    });
    auto start = std::chrono::steady_clock::now();
    auto r = wait_for(c[0].ctx, c[0].t->call(1, gen::forward_request::api_key, 0, {1, 2, 3}));
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), errc::timeout);
    EXPECT_GE(took, 140ms);
    EXPECT_LT(took, 450ms);
    // Once the slow answer has come (and been dropped), the connection serves
    // the next call.
    std::this_thread::sleep_for(500ms);
    auto ok = wait_for(c[0].ctx, c[0].t->call(1, gen::broker_registration_request::api_key, 0, registration(3, "x")));
    ASSERT_TRUE(ok.ok()) << describe(ok.error());
    auto st = c[0].stats();
    EXPECT_EQ(st.calls_timed_out, 1u);
    EXPECT_EQ(st.responses_received, 2u);
    EXPECT_EQ(st.connects, 1u);
}

// A call's own timeout overrides request_timeout_ms (a heartbeat to a
// controller cut off without its connection closing gives up in time).
TEST(transport, a_call_with_its_own_timeout_gives_up_then) {
    transport_config cfg;
    cfg.request_timeout_ms = 20000;
    three_nodes c(cfg);
    on(c[1].ctx, [&c] { c[1].t->on_request(gen::forward_request::api_key, &slow_answer); });
    auto start = std::chrono::steady_clock::now();
    auto r = wait_for(c[0].ctx, c[0].t->call(1, gen::forward_request::api_key, 0, {1, 2, 3}, 100));
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), errc::timeout);
    EXPECT_GE(took, 90ms);
    EXPECT_LT(took, 450ms);  // not the 500 ms answer, nor the 20 s default
    // Without one, the same call waits for the slow answer.
    auto slow = wait_for(c[0].ctx, c[0].t->call(1, gen::forward_request::api_key, 0, {4, 5}));
    ASSERT_TRUE(slow.ok()) << describe(slow.error());
    EXPECT_EQ(c[0].stats().calls_timed_out, 1u);
}

// A peer that reads one request and hangs up without answering.
struct hang_up_peer {
    hang_up_peer() : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        port = acceptor.local_endpoint().port();
        asio::co_spawn(io, serve(this), asio::detached);
        thread = std::thread([this] { io.run(); });
    }
    ~hang_up_peer() {
        io.stop();
        thread.join();
    }
    static net::awaitable<void> serve(hang_up_peer* self) {
        boost::system::error_code ec;
        tcp::socket s(self->io);
        co_await self->acceptor.async_accept(s, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        uint8_t prefix[4];
        co_await asio::async_read(s, asio::buffer(prefix), asio::redirect_error(asio::use_awaitable, ec));
        std::vector<uint8_t> body(load_be<uint32_t>(prefix));
        co_await asio::async_read(s, asio::buffer(body), asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) ++self->frames;
        s.close(ec);
    }
    asio::io_context io;
    tcp::acceptor acceptor;
    uint16_t port = 0;
    std::atomic<int> frames{0};
    std::thread thread;
};

TEST(transport, a_call_fails_when_its_connection_closes_or_the_peer_is_unreachable) {
    transport_config cfg;
    cfg.request_timeout_ms = 20000;
    cfg.connect_backoff_min_ms = 20;
    cfg.connect_backoff_max_ms = 50;
    hang_up_peer peer;
    net::shard_set s0(1);
    node n0(s0, 0, 0, cfg);
    n0.t->set_peers({peer_address{1, "127.0.0.1", peer.port}, peer_address{2, "127.0.0.1", free_port()}});
    s0.run();
    auto start = std::chrono::steady_clock::now();
    auto r = wait_for(n0.ctx, n0.t->call(1, gen::forward_request::api_key, 0, {9}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), errc::disconnected);
    EXPECT_EQ(peer.frames.load(), 1);
    auto unreachable = wait_for(n0.ctx, n0.t->call(2, gen::forward_request::api_key, 0, {9}));
    ASSERT_FALSE(unreachable.ok());
    EXPECT_EQ(unreachable.error(), errc::disconnected);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // not the 20 s timeout
    EXPECT_EQ(n0.stats().calls_disconnected, 2u);
}

TEST(transport, stop_fails_pending_calls_and_ends_its_work) {
    three_nodes c;
    on(c[1].ctx, [&c] { c[1].t->on_request(gen::forward_request::api_key, &slow_answer); });
    auto pending = start(c[0].ctx, c[0].t->call(1, gen::forward_request::api_key, 0, {}));
    std::this_thread::sleep_for(50ms);
    on(c[0].ctx, [&c] { c[0].t->stop(); });
    auto r = pending.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), errc::stopped);
    EXPECT_TRUE(eventually([&c] { return on(c[0].ctx, [&c] { return c[0].t->stopped(); }); }));
    auto after = wait_for(c[0].ctx, c[0].t->call(1, gen::forward_request::api_key, 0, {}));
    EXPECT_EQ(after.error(), errc::stopped);
    on(c[0].ctx, [&c] {
        c[0].t->send(envelope_maker(3).make(7, raft::node_id(0), raft::node_id(1)));
        EXPECT_EQ(c[0].t->stats().dropped_stopped, 1u);
    });
}

// ---- refusals

std::vector<uint8_t> raw_frame(int32_t from, int32_t to, std::optional<std::string> cluster, int8_t kind = 2,
                               int16_t key = gen::raft_timeout_now::api_key) {
    gen::rpc_header h;
    h.api_key = key;
    h.kind = kind;
    h.source_node_id = from;
    h.destination_node_id = to;
    h.cluster_id = std::move(cluster);
    protocol::writer w;
    begin_frame(w, h);
    gen::raft_timeout_now body;
    body.group = 3;
    body.term = 4;
    body.encode(w, 0);
    finish_frame(w);
    return w.take();
}

// Sends the frames on a new connection; true if the node then closed it.
bool closed_after(uint16_t port, const std::vector<std::vector<uint8_t>>& frames) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    for (const auto& f : frames) asio::write(s, asio::buffer(f));
    // A one-way frame gets no answer: the connection either closes or stays
    // silent (then the read times out).
    uint8_t b;
    boost::system::error_code ec;
    bool got = false;
    s.async_read_some(asio::buffer(&b, 1), [&](const boost::system::error_code& e, size_t) {
        ec = e;
        got = true;
    });
    io.run_for(1s);
    return got && (ec == asio::error::eof || ec == asio::error::connection_reset);
}

TEST(transport, frames_from_strangers_close_the_connection_and_deliver_nothing) {
    three_nodes c;
    on(c[0].ctx, [&c] {
        c[0].t->set_cluster_id("fjord-test");
        c[0].t->set_membership([](int32_t n) { return n >= 0 && n <= 2; });
    });
    const uint16_t port = c[0].port;
    const std::string cid = "fjord-test";
    // A frame that passes: delivered, the connection stays open.
    EXPECT_FALSE(closed_after(port, {raw_frame(1, 0, cid), raw_frame(1, 0, cid)}));
    ASSERT_TRUE(eventually([&c] { return c[0].received_count() == 2; }));

    EXPECT_TRUE(closed_after(port, {raw_frame(7, 0, cid)}));      // not a member
    EXPECT_TRUE(closed_after(port, {raw_frame(1, 0, "other")}));  // another cluster
    // A node that has not learned the cluster id yet (new, joining) names
    // none: accepted, or it could never learn it.
    EXPECT_FALSE(closed_after(port, {raw_frame(1, 0, std::nullopt)}));
    ASSERT_TRUE(eventually([&c] { return c[0].received_count() == 3; }));
    EXPECT_TRUE(closed_after(port, {raw_frame(1, 5, cid)}));  // for node 5
    EXPECT_TRUE(closed_after(port, {raw_frame(0, 0, cid)}));  // from this node itself
    // One connection, two node ids.
    EXPECT_TRUE(closed_after(port, {raw_frame(1, 0, cid), raw_frame(2, 0, cid)}));
    // A response on an inbound connection; a one-way frame of a request API.
    EXPECT_TRUE(closed_after(port, {raw_frame(1, 0, cid, 1)}));
    EXPECT_TRUE(closed_after(port, {raw_frame(1, 0, cid, 2, gen::forward_request::api_key)}));
    // A Raft body cut short.
    auto cut = raw_frame(1, 0, cid);
    cut.pop_back();
    store_be<uint32_t>(cut.data(), static_cast<uint32_t>(cut.size() - 4));
    EXPECT_TRUE(closed_after(port, {cut}));
    // Garbage.
    std::vector<uint8_t> ff(14, 0xff);
    store_be<uint32_t>(ff.data(), 10);
    EXPECT_TRUE(closed_after(port, {ff}));
    std::mt19937_64 g(4);
    for (int i = 0; i < 30; ++i) {
        std::vector<uint8_t> junk(4 + g() % 200);
        for (auto& b : junk) b = static_cast<uint8_t>(g());
        store_be<uint32_t>(junk.data(), static_cast<uint32_t>(junk.size() - 4));
        EXPECT_TRUE(closed_after(port, {junk})) << i;
    }

    // Only the first two frames, the one without a cluster id and the first
    // of the two-node connection were delivered.
    EXPECT_EQ(c[0].received_count(), 4u);
    auto st = c[0].stats();
    EXPECT_EQ(st.refused_not_member, 1u);
    EXPECT_EQ(st.refused_cluster, 1u);
    EXPECT_GE(st.refused_destination, 3u);
    EXPECT_GE(st.refused_malformed, 4u + 25u);  // a junk frame may decode as a header for another node
    EXPECT_EQ(st.refused_not_member + st.refused_cluster + st.refused_destination + st.refused_malformed, 39u);
    EXPECT_EQ(st.one_way_received, 4u);

    // A transport of another cluster: node 2's frames are refused, node 1's
    // (now in the cluster too) are not.
    on(c[1].ctx, [&c] { c[1].t->set_cluster_id("fjord-test"); });
    on(c[2].ctx, [&c] { c[2].t->set_cluster_id("elsewhere"); });
    on(c[1].ctx, [&c] { c[1].t->send(envelope_maker(8).make(7, raft::node_id(1), raft::node_id(0))); });
    on(c[2].ctx, [&c] { c[2].t->send(envelope_maker(8).make(7, raft::node_id(2), raft::node_id(0))); });
    ASSERT_TRUE(eventually([&c] { return c[0].stats().refused_cluster == 2; }));
    ASSERT_TRUE(eventually([&c] { return c[0].received_count() == 5; }));
    EXPECT_EQ(c[0].received_from(2).size(), 0u);
}

}  // namespace
}  // namespace fjord::rpc
