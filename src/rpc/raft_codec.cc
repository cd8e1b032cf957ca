#include "rpc/raft_codec.h"

#include <limits>
#include <type_traits>

#include "rpc/gen/raft_append.h"
#include "rpc/gen/raft_append_reply.h"
#include "rpc/gen/raft_heartbeat.h"
#include "rpc/gen/raft_heartbeat_batch.h"
#include "rpc/gen/raft_heartbeat_reply.h"
#include "rpc/gen/raft_snapshot.h"
#include "rpc/gen/raft_timeout_now.h"
#include "rpc/gen/raft_vote.h"
#include "rpc/gen/raft_vote_reply.h"

namespace fjord::rpc {
namespace {

// The generated message each raft message body travels as.
template <typename T>
struct wire_of;
template <>
struct wire_of<raft::vote_request> {
    using type = gen::raft_vote;
};
template <>
struct wire_of<raft::vote_reply> {
    using type = gen::raft_vote_reply;
};
template <>
struct wire_of<raft::append_request> {
    using type = gen::raft_append;
};
template <>
struct wire_of<raft::append_reply> {
    using type = gen::raft_append_reply;
};
template <>
struct wire_of<raft::heartbeat_request> {
    using type = gen::raft_heartbeat;
};
template <>
struct wire_of<raft::heartbeat_reply> {
    using type = gen::raft_heartbeat_reply;
};
template <>
struct wire_of<raft::snapshot_request> {
    using type = gen::raft_snapshot;
};
template <>
struct wire_of<raft::timeout_now> {
    using type = gen::raft_timeout_now;
};

constexpr int16_t raft_version = 0;

// ---- raft -> wire

gen::raft_vote to_wire(raft::group_id g, const raft::vote_request& r) {
    gen::raft_vote m;
    m.group = g.get();
    m.pre_vote = r.pre_vote;
    m.transfer = r.transfer;
    m.term = r.term.get();
    m.last_offset = r.last_offset.get();
    m.last_term = r.last_term.get();
    return m;
}

gen::raft_vote_reply to_wire(raft::group_id g, const raft::vote_reply& r) {
    gen::raft_vote_reply m;
    m.group = g.get();
    m.pre_vote = r.pre_vote;
    m.granted = r.granted;
    m.term = r.term.get();
    return m;
}

gen::raft_append to_wire(raft::group_id g, const raft::append_request& r) {
    gen::raft_append m;
    m.group = g.get();
    m.term = r.term.get();
    m.prev_offset = r.prev_offset.get();
    m.prev_term = r.prev_term.get();
    m.commit = r.commit.get();
    m.entries.reserve(r.entries.size());
    for (const auto& e : r.entries) {
        auto& w = m.entries.emplace_back();
        w.base = e.base.get();
        w.records = e.records;
        w.term = e.term.get();
        w.kind = static_cast<int8_t>(e.kind);
        w.payload = e.payload;  // a reference, not a copy of the bytes
    }
    return m;
}

gen::raft_append_reply to_wire(raft::group_id g, const raft::append_reply& r) {
    gen::raft_append_reply m;
    m.group = g.get();
    m.term = r.term.get();
    m.success = r.success;
    m.match = r.match.get();
    m.rejected = r.rejected.get();
    m.last_offset = r.last_offset.get();
    m.conflict_term = r.conflict_term.get();
    return m;
}

gen::raft_heartbeat to_wire(raft::group_id g, const raft::heartbeat_request& r) {
    gen::raft_heartbeat m;
    m.group = g.get();
    m.term = r.term.get();
    m.commit = r.commit.get();
    m.seq = static_cast<int64_t>(r.seq);
    return m;
}

gen::raft_heartbeat_reply to_wire(raft::group_id g, const raft::heartbeat_reply& r) {
    gen::raft_heartbeat_reply m;
    m.group = g.get();
    m.term = r.term.get();
    m.seq = static_cast<int64_t>(r.seq);
    m.need_append = r.need_append;
    return m;
}

gen::raft_snapshot to_wire(raft::group_id g, const raft::snapshot_request& r) {
    gen::raft_snapshot m;
    m.group = g.get();
    m.term = r.term.get();
    m.meta.last = r.meta.last.get();
    m.meta.last_term = r.meta.last_term.get();
    m.meta.voters.reserve(r.meta.config.voters.size());
    for (raft::node_id v : r.meta.config.voters) m.meta.voters.push_back(v.get());
    m.data = r.data;
    return m;
}

gen::raft_timeout_now to_wire(raft::group_id g, const raft::timeout_now& r) {
    gen::raft_timeout_now m;
    m.group = g.get();
    m.term = r.term.get();
    return m;
}

gen::raft_heartbeat_batch to_wire(const raft::heartbeat_batch& b) {
    gen::raft_heartbeat_batch m;
    m.beats.reserve(b.beats.size());
    for (const auto& i : b.beats) {
        auto& w = m.beats.emplace_back();
        w.group = i.group.get();
        w.term = i.term.get();
        w.commit = i.commit.get();
        w.seq = static_cast<int64_t>(i.seq);
    }
    m.acks.reserve(b.acks.size());
    for (const auto& a : b.acks) {
        auto& w = m.acks.emplace_back();
        w.group = a.group.get();
        w.term = a.term.get();
        w.seq = static_cast<int64_t>(a.seq);
        w.need_append = a.need_append;
    }
    return m;
}

template <typename M>
void encode_body(const M& m, protocol::writer& w) {
    m.encode(w, raft_version);
    FJORD_ASSERT(w.ok(), "{} does not encode: {}", M::spec_name, protocol::describe(w.error()));
}

// ---- wire -> raft (checked: the bytes come from the network)

bool group_ok(int64_t g) {
    return g >= 0;
}
bool term_ok(int32_t t) {
    return t >= 0;
}
bool offset_ok(int64_t o) {
    return o >= -1;
}

result<raft::vote_request, errc> from_wire(const gen::raft_vote& m) {
    if (!term_ok(m.term) || !term_ok(m.last_term) || !offset_ok(m.last_offset)) return fail(errc::invalid_value);
    return raft::vote_request{m.pre_vote, m.transfer, raft::term_id(m.term), raft::offset(m.last_offset),
                              raft::term_id(m.last_term)};
}

result<raft::vote_reply, errc> from_wire(const gen::raft_vote_reply& m) {
    if (!term_ok(m.term)) return fail(errc::invalid_value);
    return raft::vote_reply{m.pre_vote, m.granted, raft::term_id(m.term)};
}

result<raft::entry_kind, errc> entry_kind_of(int8_t k) {
    switch (k) {
        case static_cast<int8_t>(raft::entry_kind::data): return raft::entry_kind::data;
        case static_cast<int8_t>(raft::entry_kind::leader_change): return raft::entry_kind::leader_change;
        case static_cast<int8_t>(raft::entry_kind::configuration): return raft::entry_kind::configuration;
        default: return fail(errc::invalid_value);
    }
}

result<raft::append_request, errc> from_wire(gen::raft_append& m) {
    if (!term_ok(m.term) || !term_ok(m.prev_term) || !offset_ok(m.prev_offset) || !offset_ok(m.commit)) {
        return fail(errc::invalid_value);
    }
    raft::append_request r{
        raft::term_id(m.term), raft::offset(m.prev_offset), raft::term_id(m.prev_term), raft::offset(m.commit), {}};
    r.entries.reserve(m.entries.size());
    constexpr int64_t max_offset = std::numeric_limits<int64_t>::max();
    if (!m.entries.empty() && m.prev_offset == max_offset) return fail(errc::invalid_value);
    int64_t next = m.prev_offset == max_offset ? max_offset : m.prev_offset + 1;
    int32_t last_term = m.prev_term;
    for (auto& w : m.entries) {
        // Contiguous from prev_offset + 1, at least one record, no offset past INT64_MAX.
        if (w.base != next || w.records < 1 || w.base > max_offset - w.records) {
            return fail(errc::invalid_value);
        }
        // Terms never go backwards in a log, and no entry is newer than its leader.
        if (w.term < last_term || w.term > m.term) return fail(errc::invalid_value);
        auto kind = entry_kind_of(w.kind);
        if (!kind.ok()) return fail(kind.error());
        if (*kind != raft::entry_kind::data && w.records != 1) return fail(errc::invalid_value);
        if (*kind == raft::entry_kind::configuration && !raft::decode_configuration(w.payload).has_value()) {
            return fail(errc::invalid_value);
        }
        r.entries.push_back(
            raft::entry{raft::offset(w.base), w.records, raft::term_id(w.term), *kind, std::move(w.payload)});
        next = w.base + w.records;
        last_term = w.term;
    }
    return r;
}

result<raft::append_reply, errc> from_wire(const gen::raft_append_reply& m) {
    if (!term_ok(m.term) || !term_ok(m.conflict_term) || !offset_ok(m.match) || !offset_ok(m.rejected) ||
        !offset_ok(m.last_offset)) {
        return fail(errc::invalid_value);
    }
    return raft::append_reply{raft::term_id(m.term),       m.success,
                              raft::offset(m.match),       raft::offset(m.rejected),
                              raft::offset(m.last_offset), raft::term_id(m.conflict_term)};
}

result<raft::heartbeat_request, errc> from_wire(const gen::raft_heartbeat& m) {
    if (!term_ok(m.term) || !offset_ok(m.commit)) return fail(errc::invalid_value);
    return raft::heartbeat_request{raft::term_id(m.term), raft::offset(m.commit), static_cast<uint64_t>(m.seq)};
}

result<raft::heartbeat_reply, errc> from_wire(const gen::raft_heartbeat_reply& m) {
    if (!term_ok(m.term)) return fail(errc::invalid_value);
    return raft::heartbeat_reply{raft::term_id(m.term), static_cast<uint64_t>(m.seq), m.need_append};
}

result<raft::snapshot_request, errc> from_wire(gen::raft_snapshot& m) {
    if (!term_ok(m.term) || !term_ok(m.meta.last_term) || m.meta.last_term > m.term || !offset_ok(m.meta.last)) {
        return fail(errc::invalid_value);
    }
    // The voters as the core keeps them: ascending, no duplicates, at least one.
    if (m.meta.voters.empty()) return fail(errc::invalid_value);
    raft::configuration c;
    c.voters.reserve(m.meta.voters.size());
    for (int32_t v : m.meta.voters) {
        if (!c.voters.empty() && v <= c.voters.back().get()) return fail(errc::invalid_value);
        c.voters.push_back(raft::node_id(v));
    }
    raft::snapshot_meta meta{raft::offset(m.meta.last), raft::term_id(m.meta.last_term), std::move(c)};
    return raft::snapshot_request{raft::term_id(m.term), std::move(meta), std::move(m.data)};
}

result<raft::timeout_now, errc> from_wire(const gen::raft_timeout_now& m) {
    if (!term_ok(m.term)) return fail(errc::invalid_value);
    return raft::timeout_now{raft::term_id(m.term)};
}

result<raft::heartbeat_batch, errc> from_wire(const gen::raft_heartbeat_batch& m) {
    raft::heartbeat_batch b;
    b.beats.reserve(m.beats.size());
    for (const auto& w : m.beats) {
        if (!group_ok(w.group) || !term_ok(w.term) || !offset_ok(w.commit)) return fail(errc::invalid_value);
        b.beats.push_back(raft::heartbeat_item{raft::group_id(w.group), raft::term_id(w.term), raft::offset(w.commit),
                                               static_cast<uint64_t>(w.seq)});
    }
    b.acks.reserve(m.acks.size());
    for (const auto& w : m.acks) {
        if (!group_ok(w.group) || !term_ok(w.term)) return fail(errc::invalid_value);
        b.acks.push_back(raft::heartbeat_ack{raft::group_id(w.group), raft::term_id(w.term),
                                             static_cast<uint64_t>(w.seq), w.need_append});
    }
    return b;
}

template <typename M>
result<M, errc> decode_wire(shared_bytes body, int16_t version) {
    auto m = gen::decode_message<M>(std::move(body), version);
    if (!m.ok()) {
        return fail(m.error() == protocol::errc::unsupported_version ? errc::unsupported_version : errc::malformed);
    }
    return std::move(m.value());
}

// One group's message: decode, check the group, convert the body.
template <typename M>
result<raft::envelope, errc> decode_group_message(shared_bytes body, int16_t version, raft::node_id from,
                                                  raft::node_id to) {
    auto m = decode_wire<M>(std::move(body), version);
    if (!m.ok()) return fail(m.error());
    if (!group_ok(m->group)) return fail(errc::invalid_value);
    auto b = from_wire(*m);
    if (!b.ok()) return fail(b.error());
    raft::message msg{raft::group_id(m->group), from, to, std::move(b.value())};
    return raft::envelope{from, to, std::move(msg)};
}

}  // namespace

api_version raft_api(const raft::envelope& e) {
    if (raft::is_heartbeat_batch(e)) return {gen::raft_heartbeat_batch::api_key, raft_version};
    const auto& m = std::get<raft::message>(e.body);
    int16_t key =
        std::visit([](const auto& b) -> int16_t { return wire_of<std::decay_t<decltype(b)>>::type::api_key; }, m.body);
    return {key, raft_version};
}

bool is_raft_api(int16_t key) {
    return key >= gen::raft_vote::api_key && key <= gen::raft_heartbeat_batch::api_key;
}

void encode_raft(const raft::envelope& e, protocol::writer& w) {
    if (const auto* b = std::get_if<raft::heartbeat_batch>(&e.body)) {
        encode_body(to_wire(*b), w);
        return;
    }
    const auto& m = std::get<raft::message>(e.body);
    FJORD_ASSERT(m.from == e.from && m.to == e.to, "message {}->{} in envelope {}->{}", m.from.get(), m.to.get(),
                 e.from.get(), e.to.get());
    std::visit([&](const auto& b) { encode_body(to_wire(m.group, b), w); }, m.body);
}

std::vector<uint8_t> encode_raft(const raft::envelope& e) {
    protocol::writer w;
    encode_raft(e, w);
    return w.take();
}

result<raft::envelope, errc> decode_raft(api_version api, raft::node_id from, raft::node_id to, shared_bytes body) {
    if (from == to) return fail(errc::invalid_value);
    switch (api.key) {
        case gen::raft_vote::api_key:
            return decode_group_message<gen::raft_vote>(std::move(body), api.version, from, to);
        case gen::raft_vote_reply::api_key:
            return decode_group_message<gen::raft_vote_reply>(std::move(body), api.version, from, to);
        case gen::raft_append::api_key:
            return decode_group_message<gen::raft_append>(std::move(body), api.version, from, to);
        case gen::raft_append_reply::api_key:
            return decode_group_message<gen::raft_append_reply>(std::move(body), api.version, from, to);
        case gen::raft_heartbeat::api_key:
            return decode_group_message<gen::raft_heartbeat>(std::move(body), api.version, from, to);
        case gen::raft_heartbeat_reply::api_key:
            return decode_group_message<gen::raft_heartbeat_reply>(std::move(body), api.version, from, to);
        case gen::raft_snapshot::api_key:
            return decode_group_message<gen::raft_snapshot>(std::move(body), api.version, from, to);
        case gen::raft_timeout_now::api_key:
            return decode_group_message<gen::raft_timeout_now>(std::move(body), api.version, from, to);
        case gen::raft_heartbeat_batch::api_key: {
            auto m = decode_wire<gen::raft_heartbeat_batch>(std::move(body), api.version);
            if (!m.ok()) return fail(m.error());
            auto b = from_wire(*m);
            if (!b.ok()) return fail(b.error());
            return raft::envelope{from, to, std::move(b.value())};
        }
        default: return fail(errc::unknown_api_key);
    }
}

}  // namespace fjord::rpc
