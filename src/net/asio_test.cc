// Asio with C++20 coroutines over real loopback sockets: the building blocks
// the server is made of compile, link (against the one compiled Asio) and run.
#include "net/asio.h"

#include <gtest/gtest.h>

#include <string>

namespace fjord::net {
namespace {

using asio::ip::tcp;

asio::awaitable<void> echo_once(tcp::acceptor& acceptor) {
    tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
    std::array<char, 64> buf{};
    size_t n = co_await s.async_read_some(asio::buffer(buf), asio::use_awaitable);
    co_await asio::async_write(s, asio::buffer(buf.data(), n), asio::use_awaitable);
}

asio::awaitable<void> client(tcp::endpoint ep, std::string& reply) {
    tcp::socket s(co_await asio::this_coro::executor);
    co_await s.async_connect(ep, asio::use_awaitable);
    co_await asio::async_write(s, asio::buffer(std::string_view("fjord")), asio::use_awaitable);
    std::array<char, 5> buf{};
    co_await asio::async_read(s, asio::buffer(buf), asio::use_awaitable);
    reply.assign(buf.data(), buf.size());
}

TEST(asio, coroutine_echo_over_loopback) {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::string reply;
    asio::co_spawn(io, echo_once(acceptor), asio::detached);
    asio::co_spawn(io, client(acceptor.local_endpoint(), reply), asio::detached);
    io.run();
    EXPECT_EQ(reply, "fjord");
}

}  // namespace
}  // namespace fjord::net
