#include "raft/types.h"

#include <type_traits>

namespace fjord::raft {

configuration make_configuration(std::vector<node_id> voters) {
    std::sort(voters.begin(), voters.end());
    voters.erase(std::unique(voters.begin(), voters.end()), voters.end());
    return configuration{std::move(voters)};
}

shared_bytes encode_configuration(const configuration& c) {
    std::vector<uint8_t> out;
    out.reserve(4 + 4 * c.voters.size());
    auto put32 = [&out](uint32_t v) {
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    put32(static_cast<uint32_t>(c.voters.size()));
    for (node_id n : c.voters) put32(static_cast<uint32_t>(n.get()));
    return shared_bytes::adopt(std::move(out));
}

std::optional<configuration> decode_configuration(const shared_bytes& b) {
    auto get32 = [&b](size_t at) {
        uint32_t v = 0;
        for (size_t i = 0; i < 4; ++i) v |= static_cast<uint32_t>(b[at + i]) << (8 * i);
        return v;
    };
    if (b.size() < 4) return std::nullopt;
    uint32_t n = get32(0);
    if (n == 0 || n > 1024 || b.size() != 4 + 4 * static_cast<size_t>(n)) return std::nullopt;
    configuration c;
    for (uint32_t i = 0; i < n; ++i) c.voters.push_back(node_id(static_cast<int32_t>(get32(4 + 4 * i))));
    if (!std::is_sorted(c.voters.begin(), c.voters.end()) ||
        std::adjacent_find(c.voters.begin(), c.voters.end()) != c.voters.end()) {
        return std::nullopt;
    }
    return c;
}

size_t message_bytes(const message& m) {
    size_t n = 32;
    if (auto* a = std::get_if<append_request>(&m.body)) {
        for (const auto& e : a->entries) n += e.size_bytes();
    } else if (auto* s = std::get_if<snapshot_request>(&m.body)) {
        n += s->data.size() + 4 * s->meta.config.voters.size();
    }
    return n;
}

const char* message_name(const message_body& b) {
    return std::visit(
        [](const auto& v) -> const char* {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, vote_request>) return v.pre_vote ? "pre_vote" : "vote";
            if constexpr (std::is_same_v<T, vote_reply>) return v.pre_vote ? "pre_vote_reply" : "vote_reply";
            if constexpr (std::is_same_v<T, append_request>) return "append";
            if constexpr (std::is_same_v<T, append_reply>) return "append_reply";
            if constexpr (std::is_same_v<T, heartbeat_request>) return "heartbeat";
            if constexpr (std::is_same_v<T, heartbeat_reply>) return "heartbeat_reply";
            if constexpr (std::is_same_v<T, snapshot_request>) return "snapshot";
            if constexpr (std::is_same_v<T, timeout_now>) return "timeout_now";
            return "?";
        },
        b);
}

}  // namespace fjord::raft
