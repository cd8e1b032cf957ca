// Test helpers: random raft envelopes of every kind, and an envelope's every
// field as text (two envelopes are equal when their texts are). Tests only.
#pragma once

#include <fmt/format.h>

#include <limits>
#include <random>
#include <string>

#include "raft/group_manager.h"

namespace fjord::rpc::test_util {
using namespace fjord::raft;

// Short byte strings in full, longer ones by size and FNV-1a hash.
inline std::string bytes_text(const shared_bytes& b) {
    if (b.size() <= 32) {
        std::string s = fmt::format("{}:", b.size());
        for (size_t i = 0; i < b.size(); ++i) s += fmt::format("{:02x}", b[i]);
        return s;
    }
    uint64_t h = 14695981039346656037ull;
    for (uint8_t c : b.span()) h = (h ^ c) * 1099511628211ull;
    return fmt::format("{}:#{:016x}", b.size(), h);
}

// Every field of an envelope, as text: two envelopes are equal when their
// descriptions are (independent of the codec under test).
inline std::string describe(const envelope& e) {
    std::string s = fmt::format("{}->{} ", e.from.get(), e.to.get());
    if (const auto* b = std::get_if<heartbeat_batch>(&e.body)) {
        s += "batch beats[";
        for (const auto& i : b->beats) {
            s += fmt::format("({} {} {} {})", i.group.get(), i.term.get(), i.commit.get(), i.seq);
        }
        s += "] acks[";
        for (const auto& a : b->acks) {
            s += fmt::format("({} {} {} {})", a.group.get(), a.term.get(), a.seq, a.need_append);
        }
        return s + "]";
    }
    const auto& m = std::get<message>(e.body);
    s += fmt::format("g{} {}->{} {} ", m.group.get(), m.from.get(), m.to.get(), message_name(m.body));
    std::visit(
        [&s](const auto& b) {
            using T = std::decay_t<decltype(b)>;
            if constexpr (std::is_same_v<T, vote_request>) {
                s += fmt::format("{} {} {} {} {}", b.pre_vote, b.transfer, b.term.get(), b.last_offset.get(),
                                 b.last_term.get());
            } else if constexpr (std::is_same_v<T, vote_reply>) {
                s += fmt::format("{} {} {}", b.pre_vote, b.granted, b.term.get());
            } else if constexpr (std::is_same_v<T, append_request>) {
                s += fmt::format("{} {} {} {} [", b.term.get(), b.prev_offset.get(), b.prev_term.get(), b.commit.get());
                for (const auto& en : b.entries) {
                    s += fmt::format("({} {} {} {} {})", en.base.get(), en.records, en.term.get(),
                                     static_cast<int>(en.kind), bytes_text(en.payload));
                }
                s += "]";
            } else if constexpr (std::is_same_v<T, append_reply>) {
                s += fmt::format("{} {} {} {} {} {}", b.term.get(), b.success, b.match.get(), b.rejected.get(),
                                 b.last_offset.get(), b.conflict_term.get());
            } else if constexpr (std::is_same_v<T, heartbeat_request>) {
                s += fmt::format("{} {} {}", b.term.get(), b.commit.get(), b.seq);
            } else if constexpr (std::is_same_v<T, heartbeat_reply>) {
                s += fmt::format("{} {} {}", b.term.get(), b.seq, b.need_append);
            } else if constexpr (std::is_same_v<T, snapshot_request>) {
                s += fmt::format("{} {} {} [", b.term.get(), b.meta.last.get(), b.meta.last_term.get());
                for (node_id v : b.meta.config.voters) s += fmt::format("{} ", v.get());
                s += "] " + bytes_text(b.data);
            } else if constexpr (std::is_same_v<T, timeout_now>) {
                s += fmt::format("{}", b.term.get());
            }
        },
        m.body);
    return s;
}

// Random, valid envelopes of every kind, biased toward boundary values.
class envelope_maker {
public:
    explicit envelope_maker(uint64_t seed) : g_(seed) {}

    // Kind: 0-7 a group's message (the order of raft::message_body), 8 a batch.
    envelope make(int kind) {
        node_id from(pick32()), to(pick32());
        if (from == to) to = node_id(from.get() ^ 1);
        return make(kind, from, to);
    }
    envelope make(int kind, node_id from, node_id to) {
        if (kind == 8) return envelope{from, to, batch()};
        message m{group_id(group()), from, to, timeout_now{}};
        switch (kind) {
            case 0: m.body = vote_request{flip(), flip(), term(), offset_v(), term()}; break;
            case 1: m.body = vote_reply{flip(), flip(), term()}; break;
            case 2: m.body = append(); break;
            case 3: m.body = append_reply{term(), flip(), offset_v(), offset_v(), offset_v(), term()}; break;
            case 4: m.body = heartbeat_request{term(), offset_v(), g_()}; break;
            case 5: m.body = heartbeat_reply{term(), g_(), flip()}; break;
            case 6: m.body = snapshot(); break;
            default: m.body = timeout_now{term()}; break;
        }
        return envelope{from, to, std::move(m)};
    }

private:
    bool flip() { return (g_() & 1) != 0; }
    uint64_t below(uint64_t n) { return g_() % n; }
    int32_t pick32() {
        switch (below(4)) {
            case 0: return 0;
            case 1: return std::numeric_limits<int32_t>::max();
            default: return static_cast<int32_t>(below(1000));
        }
    }
    int64_t group() {
        switch (below(4)) {
            case 0: return 0;
            case 1: return std::numeric_limits<int64_t>::max();
            default: return static_cast<int64_t>(below(100000));
        }
    }
    term_id term() { return term_id(below(5) == 0 ? std::numeric_limits<int32_t>::max() : pick32()); }
    offset offset_v() {
        switch (below(5)) {
            case 0: return no_offset;
            case 1: return offset(std::numeric_limits<int64_t>::max());
            default: return offset(static_cast<int64_t>(below(1u << 30)));
        }
    }
    shared_bytes blob(size_t max) {
        std::vector<uint8_t> v(below(max + 1));
        for (auto& b : v) b = static_cast<uint8_t>(g_());
        return shared_bytes::adopt(std::move(v));
    }
    append_request append() {
        int32_t t = static_cast<int32_t>(1 + below(1000));
        append_request r{term_id(t),
                         offset(static_cast<int64_t>(below(1u << 20)) - 1),
                         term_id(static_cast<int32_t>(below(static_cast<uint64_t>(t) + 1))),
                         offset_v(),
                         {}};
        offset next = r.prev_offset + 1;
        int32_t et = r.prev_term.get();
        for (size_t i = 0, n = below(6); i < n; ++i) {
            et = static_cast<int32_t>(et + below(static_cast<uint64_t>(t - et) + 1));
            entry e{next, 1, term_id(et), entry_kind::data, {}};
            switch (below(3)) {
                case 0:
                    e.records = static_cast<int32_t>(1 + below(500));
                    e.payload = blob(4000);
                    break;
                case 1: e.kind = entry_kind::leader_change; break;
                default: {
                    std::vector<node_id> voters;
                    for (size_t k = 0, nv = 1 + below(5); k < nv; ++k) voters.push_back(node_id(pick32()));
                    e.kind = entry_kind::configuration;
                    e.payload = encode_configuration(make_configuration(voters));
                }
            }
            next = e.next();
            r.entries.push_back(std::move(e));
        }
        return r;
    }
    snapshot_request snapshot() {
        std::vector<node_id> voters;
        for (size_t k = 0, nv = 1 + below(7); k < nv; ++k) voters.push_back(node_id(pick32()));
        term_id t = term();
        term_id lt(static_cast<int32_t>(below(static_cast<uint64_t>(t.get()) + 1)));
        return snapshot_request{t, snapshot_meta{offset_v(), lt, make_configuration(voters)}, blob(10000)};
    }
    heartbeat_batch batch() {
        heartbeat_batch b;
        for (size_t i = 0, n = below(50); i < n; ++i) b.beats.push_back({group_id(group()), term(), offset_v(), g_()});
        for (size_t i = 0, n = below(50); i < n; ++i) b.acks.push_back({group_id(group()), term(), g_(), flip()});
        return b;
    }

    std::mt19937_64 g_;
};

}  // namespace fjord::rpc::test_util
