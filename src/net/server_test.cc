// The server over real loopback sockets: framing, ordering under pipelining
// with handlers finishing out of order, the size bound, and a draining stop.
#include "net/server.h"

#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "base/endian.h"

namespace fjord::net {
namespace {
using tcp = asio::ip::tcp;

// Echoes the frame back; a first byte of N makes it wait N milliseconds
// after releasing the connection's order (so later requests overtake it).
class echo_handler : public frame_handler {
public:
    awaitable<response> handle(const connection_info&, shared_bytes frame, request_order& order) override {
        ++handled;
        order.release();
        if (!frame.empty() && frame[0] > 0) {
            asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(frame[0]));
            co_await t.async_wait(asio::use_awaitable);
        }
        response r;
        r.frame.resize(4 + frame.size());
        store_be<uint32_t>(r.frame.data(), static_cast<uint32_t>(frame.size()));
        std::copy(frame.data(), frame.data() + frame.size(), r.frame.begin() + 4);
        co_return r;
    }
    std::atomic<int> handled{0};
};

struct fixture {
    explicit fixture(server_config cfg, unsigned shards = 2) : set(shards) {
        cfg.host = "127.0.0.1";
        cfg.port = 0;
        handlers.resize(shards);
        srv = std::make_unique<server>(set, cfg, [this](unsigned s) -> frame_handler& { return handlers[s]; });
        auto p = srv->listen();
        EXPECT_TRUE(p.ok());
        port = p.ok() ? p.value() : 0;
        srv->start();
        set.run();
    }
    ~fixture() {
        srv->stop();
        for (int i = 0; i < 500 && !srv->stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        set.stop();
        set.join();
    }
    shard_set set;
    std::deque<echo_handler> handlers;
    std::unique_ptr<server> srv;
    uint16_t port = 0;
};

std::vector<uint8_t> frame_of(std::vector<uint8_t> body) {
    std::vector<uint8_t> f(4);
    store_be<uint32_t>(f.data(), static_cast<uint32_t>(body.size()));
    f.insert(f.end(), body.begin(), body.end());
    return f;
}

std::vector<uint8_t> read_frame(tcp::socket& s) {
    uint8_t hdr[4];
    asio::read(s, asio::buffer(hdr));
    std::vector<uint8_t> body(load_be<uint32_t>(hdr));
    asio::read(s, asio::buffer(body));
    return body;
}

TEST(server, pipelined_responses_come_back_in_request_order) {
    fixture f(server_config{});
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f.port));
    // Request i waits (20 - i) ms: later requests finish first.
    std::vector<uint8_t> all;
    for (uint8_t i = 0; i < 20; ++i) {
        auto fr = frame_of({static_cast<uint8_t>(20 - i), i});
        all.insert(all.end(), fr.begin(), fr.end());
    }
    asio::write(s, asio::buffer(all));
    for (uint8_t i = 0; i < 20; ++i) {
        auto body = read_frame(s);
        ASSERT_EQ(body.size(), 2u);
        EXPECT_EQ(body[1], i);
    }
}

TEST(server, oversize_and_negative_frames_close_the_connection_without_reading) {
    server_config cfg;
    cfg.max_request_bytes = 1024;
    fixture f(cfg);
    for (uint32_t size : {1025u, 0x80000000u, 0xffffffffu}) {
        asio::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f.port));
        uint8_t hdr[4];
        store_be<uint32_t>(hdr, size);
        asio::write(s, asio::buffer(hdr));
        uint8_t b;
        boost::system::error_code ec;
        asio::read(s, asio::buffer(&b, 1), ec);
        EXPECT_EQ(ec, asio::error::eof) << size;
    }
    // A frame at the bound is served.
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f.port));
    asio::write(s, asio::buffer(frame_of(std::vector<uint8_t>(1024, 0))));
    EXPECT_EQ(read_frame(s).size(), 1024u);
}

TEST(server, a_frame_announced_but_not_sent_leaves_the_server_serving) {
    // 1 MiB announced, 10 bytes sent, then the client goes away: nothing is
    // answered and the server keeps serving others.
    fixture f(server_config{});
    {
        asio::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f.port));
        auto fr = frame_of(std::vector<uint8_t>(10, 0));
        store_be<uint32_t>(fr.data(), 1u << 20);
        asio::write(s, asio::buffer(fr));
    }
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f.port));
    asio::write(s, asio::buffer(frame_of({0, 7})));
    EXPECT_EQ(read_frame(s), (std::vector<uint8_t>{0, 7}));
}

TEST(server, stop_answers_what_was_read_then_closes) {
    auto f = std::make_unique<fixture>(server_config{}, 1);
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f->port));
    asio::write(s, asio::buffer(frame_of({100, 1})));  // answered after 100 ms
    while (f->handlers[0].handled.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    f->srv->stop();
    EXPECT_EQ(read_frame(s), (std::vector<uint8_t>{100, 1}));
    uint8_t b;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(&b, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
    for (int i = 0; i < 500 && !f->srv->stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(f->srv->stopped());
}

TEST(server, idle_connections_are_closed) {
    server_config cfg;
    cfg.idle_timeout_ms = 200;
    fixture f(cfg, 1);
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), f.port));
    auto start = std::chrono::steady_clock::now();
    uint8_t b;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(&b, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
}

}  // namespace
}  // namespace fjord::net

namespace fjord::net {
namespace {

// Answers every request with `size` bytes.
class big_answer_handler : public frame_handler {
public:
    explicit big_answer_handler(size_t size) : size_(size) {}
    awaitable<response> handle(const connection_info&, shared_bytes, request_order&) override {
        ++handled;
        response r;
        r.frame.resize(4 + size_);
        store_be<uint32_t>(r.frame.data(), static_cast<uint32_t>(size_));
        co_return r;
    }
    std::atomic<int> handled{0};

private:
    size_t size_;
};

TEST(server, a_reader_that_never_reads_is_bounded) {
    // 1 MiB answers, 8 MiB per connection: a client that sends 1,000
    // requests and reads nothing gets a handful handled, not 1,000 answers
    // buffered (1 GB).
    shard_set set(1);
    big_answer_handler h(1 << 20);
    server_config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.max_inflight_bytes = 8u << 20;
    cfg.shard_max_inflight_bytes = 16u << 20;
    server srv(set, cfg, [&h](unsigned) -> frame_handler& { return h; });
    auto port = srv.listen();
    ASSERT_TRUE(port.ok());
    srv.start();
    set.run();
    {
        asio::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), *port));
        std::vector<uint8_t> all;
        for (int i = 0; i < 1000; ++i) {
            auto fr = frame_of({1, 2, 3});
            all.insert(all.end(), fr.begin(), fr.end());
        }
        asio::write(s, asio::buffer(all));
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        // What the kernel's socket buffers absorb, plus the 8 MiB bound.
        EXPECT_LT(h.handled.load(), 40);
        EXPECT_GT(h.handled.load(), 0);
        // Reading drains it: every answer arrives, in order.
        for (int i = 0; i < 1000; ++i) ASSERT_EQ(read_frame(s).size(), 1u << 20) << i;
        EXPECT_EQ(h.handled.load(), 1000);
    }
    srv.stop();
    for (int i = 0; i < 500 && !srv.stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    set.stop();
    set.join();
}

}  // namespace
}  // namespace fjord::net
