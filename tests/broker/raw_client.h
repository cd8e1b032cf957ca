// raw_client: a raw Kafka connection for the broker tests, requests encoded
// with the generated messages, for the checks a client library hides (topic
// ids, batch boundaries, the exact time a long-poll Fetch is answered).
//
// Threading: one test thread. Throws std::runtime_error on a socket failure.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "base/endian.h"
#include "protocol/gen/registry.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen/response_header.h"

namespace fjord::testing {

namespace gen = protocol::gen;

class raw_client {
public:
    explicit raw_client(uint16_t port, std::string client_id = "fjord-broker-test") : client_id_(std::move(client_id)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) throw std::runtime_error("socket");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        timeval tv{.tv_sec = 30, .tv_usec = 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~raw_client() { ::close(fd_); }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    template <typename Req>
    void send(const Req& req, int16_t version) {
        const auto* api = gen::find_api(Req::api_key);
        protocol::writer w(256);
        w.u32(0);
        gen::request_header h;
        h.request_api_key = Req::api_key;
        h.request_api_version = version;
        h.correlation_id = ++correlation_;
        h.client_id = client_id_;
        h.encode(w, gen::request_header_version(*api, version));
        req.encode(w, version);
        if (!w.ok()) throw std::runtime_error("encode request");
        auto bytes = w.take();
        store_be<uint32_t>(bytes.data(), static_cast<uint32_t>(bytes.size() - 4));
        write_all(bytes.data(), bytes.size());
    }

    template <typename Resp>
    Resp receive(int16_t version) {
        const auto* api = gen::find_api(Resp::api_key);
        uint8_t size_be[4];
        read_all(size_be, 4);
        std::vector<uint8_t> frame(load_be<uint32_t>(size_be));
        read_all(frame.data(), frame.size());
        protocol::reader r(shared_bytes::adopt(std::move(frame)));
        gen::response_header h;
        h.decode(r, gen::response_header_version(*api, version));
        if (!r.ok() || h.correlation_id != correlation_) throw std::runtime_error("bad response header");
        Resp resp;
        resp.decode(r, version);
        if (!r.ok()) throw std::runtime_error("response does not decode");
        return resp;
    }

    template <typename Resp, typename Req>
    Resp call(const Req& req, int16_t version) {
        send(req, version);
        return receive<Resp>(version);
    }

private:
    void write_all(const uint8_t* p, size_t n) {
        while (n > 0) {
            ssize_t k = ::write(fd_, p, n);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) throw std::runtime_error(std::string("write: ") + std::strerror(errno));
            p += k;
            n -= static_cast<size_t>(k);
        }
    }
    void read_all(uint8_t* p, size_t n) {
        while (n > 0) {
            ssize_t k = ::read(fd_, p, n);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0)
                throw std::runtime_error(k == 0 ? "read: closed" : std::string("read: ") + std::strerror(errno));
            p += k;
            n -= static_cast<size_t>(k);
        }
    }

    int fd_ = -1;

    std::string client_id_;
    int32_t correlation_ = 0;
};

}  // namespace fjord::testing
