#include "groups/group_records.h"

#include "protocol/wire.h"

namespace fjord::groups {
namespace {
using protocol::reader;
using protocol::writer;

constexpr int16_t offset_value_version = 3;
constexpr int16_t group_value_version = 3;

void put_string(writer& w, std::string_view s) {
    w.string_length(static_cast<int32_t>(s.size()), false);
    w.raw(s);
}

void put_nullable(writer& w, const std::optional<std::string>& s) {
    if (!s) {
        w.i16(-1);
        return;
    }
    put_string(w, *s);
}

void put_bytes(writer& w, const shared_bytes& b) {
    w.bytes_length(static_cast<int32_t>(b.size()), false);
    w.raw(b.data(), b.size());
}

// Reads a string of either encoding; nullopt for null (or on error, which
// the reader records).
std::optional<std::string> get_nullable(reader& r, bool compact) {
    int32_t n = r.string_length(compact);
    if (n < 0) return std::nullopt;
    return r.str(static_cast<size_t>(n));
}

std::string get_string(reader& r, bool compact) {
    auto s = get_nullable(r, compact);
    if (!s) {
        r.fail(protocol::errc::unexpected_null);
        return {};
    }
    return std::move(*s);
}

shared_bytes get_bytes(reader& r, bool compact) {
    int32_t n = r.bytes_length(compact);
    if (n < 0) {
        r.fail(protocol::errc::unexpected_null);
        return {};
    }
    return r.slice(static_cast<size_t>(n));
}

void skip_tags(reader& r) {
    uint32_t n = r.uvarint();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        r.uvarint();
        r.skip(r.uvarint());
    }
}
}  // namespace

const char* describe(group_record_errc e) {
    switch (e) {
        case group_record_errc::malformed: return "malformed record";
        case group_record_errc::unknown_version: return "unknown record version";
    }
    return "unknown";
}

std::vector<uint8_t> encode_key(const offset_key& k) {
    writer w(8 + k.group.size() + k.topic.size());
    w.i16(1);
    put_string(w, k.group);
    put_string(w, k.topic);
    w.i32(k.partition);
    return w.take();
}

std::vector<uint8_t> encode_key(const group_key& k) {
    writer w(4 + k.group.size());
    w.i16(2);
    put_string(w, k.group);
    return w.take();
}

std::vector<uint8_t> encode_key(const consumer_key& k) {
    writer w(8 + k.group.size() + k.member.size());
    w.i16(static_cast<int16_t>(k.type));
    put_string(w, k.group);
    if (k.type != consumer_record::group_metadata && k.type != consumer_record::target_metadata) {
        put_string(w, k.member);
    }
    return w.take();
}

namespace {
void put_cstring(writer& w, const std::optional<std::string>& s) {
    if (!s) {
        w.uvarint(0);
        return;
    }
    w.uvarint(static_cast<uint32_t>(s->size() + 1));
    w.raw(*s);
}

void put_partitions(writer& w, const id_partitions& ps) {
    w.uvarint(static_cast<uint32_t>(ps.size() + 1));
    for (const auto& [id, parts] : ps) {
        w.write_uuid(id);
        w.uvarint(static_cast<uint32_t>(parts.size() + 1));
        for (int32_t p : parts) w.i32(p);
        w.uvarint(0);  // tagged fields
    }
}

id_partitions get_partitions(reader& r) {
    id_partitions out;
    int32_t n = r.array_length(true);
    for (int32_t i = 0; i < n && r.ok(); ++i) {
        protocol::uuid id = r.read_uuid();
        std::vector<int32_t> parts;
        int32_t m = r.array_length(true);
        for (int32_t k = 0; k < m && r.ok(); ++k) parts.push_back(r.i32());
        skip_tags(r);
        out.emplace_back(id, std::move(parts));
    }
    return out;
}

bool version_zero(reader& r) {
    return r.i16() == 0 && r.ok();
}
}  // namespace

std::vector<uint8_t> encode_epoch_value(int32_t epoch) {
    writer w(8);
    w.i16(0);
    w.i32(epoch);
    w.uvarint(0);
    return w.take();
}

std::vector<uint8_t> encode_value(const consumer_member_value& v) {
    writer w(64);
    w.i16(0);
    put_cstring(w, v.instance_id);
    put_cstring(w, v.rack_id);
    put_cstring(w, v.client_id);
    put_cstring(w, v.client_host);
    w.uvarint(static_cast<uint32_t>(v.topic_names.size() + 1));
    for (const auto& t : v.topic_names) put_cstring(w, t);
    put_cstring(w, v.regex);
    w.i32(v.rebalance_timeout);
    put_cstring(w, v.server_assignor);
    w.uvarint(0);
    return w.take();
}

std::vector<uint8_t> encode_value(const id_partitions& target) {
    writer w(32);
    w.i16(0);
    put_partitions(w, target);
    w.uvarint(0);
    return w.take();
}

std::vector<uint8_t> encode_value(const consumer_current_value& v) {
    writer w(32);
    w.i16(0);
    w.i32(v.epoch);
    w.i32(v.previous_epoch);
    w.i8(v.state);
    put_partitions(w, v.assigned);
    put_partitions(w, v.revoking);
    w.uvarint(0);
    return w.take();
}

result<int32_t, group_record_errc> decode_epoch_value(shared_bytes value) {
    reader r(std::move(value));
    if (!version_zero(r)) return fail(group_record_errc::unknown_version);
    int32_t epoch = r.i32();
    skip_tags(r);
    if (!r.ok()) return fail(group_record_errc::malformed);
    return epoch;
}

result<consumer_member_value, group_record_errc> decode_member_value(shared_bytes value) {
    reader r(std::move(value));
    if (!version_zero(r)) return fail(group_record_errc::unknown_version);
    consumer_member_value v;
    v.instance_id = get_nullable(r, true);
    v.rack_id = get_nullable(r, true);
    v.client_id = get_string(r, true);
    v.client_host = get_string(r, true);
    int32_t n = r.array_length(true);
    for (int32_t i = 0; i < n && r.ok(); ++i) v.topic_names.push_back(get_string(r, true));
    v.regex = get_nullable(r, true);
    v.rebalance_timeout = r.i32();
    v.server_assignor = get_nullable(r, true);
    skip_tags(r);
    if (!r.ok()) return fail(group_record_errc::malformed);
    return v;
}

result<id_partitions, group_record_errc> decode_target_value(shared_bytes value) {
    reader r(std::move(value));
    if (!version_zero(r)) return fail(group_record_errc::unknown_version);
    auto out = get_partitions(r);
    skip_tags(r);
    if (!r.ok()) return fail(group_record_errc::malformed);
    return out;
}

result<consumer_current_value, group_record_errc> decode_current_value(shared_bytes value) {
    reader r(std::move(value));
    if (!version_zero(r)) return fail(group_record_errc::unknown_version);
    consumer_current_value v;
    v.epoch = r.i32();
    v.previous_epoch = r.i32();
    v.state = r.i8();
    v.assigned = get_partitions(r);
    v.revoking = get_partitions(r);
    skip_tags(r);
    if (!r.ok()) return fail(group_record_errc::malformed);
    return v;
}

std::vector<uint8_t> encode_value(const offset_value& v) {
    writer w(24 + v.metadata.size());
    w.i16(offset_value_version);
    w.i64(v.offset);
    w.i32(v.leader_epoch);
    put_string(w, v.metadata);
    w.i64(v.commit_timestamp);
    return w.take();
}

std::vector<uint8_t> encode_value(const group_value& v) {
    writer w(64);
    w.i16(group_value_version);
    put_string(w, v.protocol_type);
    w.i32(v.generation);
    put_nullable(w, v.protocol);
    put_nullable(w, v.leader);
    w.i64(v.current_state_timestamp);
    w.i32(static_cast<int32_t>(v.members.size()));
    for (const auto& m : v.members) {
        put_string(w, m.member_id);
        put_nullable(w, m.group_instance_id);
        put_string(w, m.client_id);
        put_string(w, m.client_host);
        w.i32(m.rebalance_timeout);
        w.i32(m.session_timeout);
        put_bytes(w, m.subscription);
        put_bytes(w, m.assignment);
    }
    return w.take();
}

result<record_key, group_record_errc> decode_key(shared_bytes key) {
    reader r(std::move(key));
    int16_t type = r.i16();
    if (!r.ok()) return fail(group_record_errc::malformed);
    if (type == 0 || type == 1) {
        offset_key k;
        k.group = get_string(r, false);
        k.topic = get_string(r, false);
        k.partition = r.i32();
        if (!r.ok()) return fail(group_record_errc::malformed);
        return record_key{std::move(k)};
    }
    if (type == 2) {
        group_key k;
        k.group = get_string(r, false);
        if (!r.ok()) return fail(group_record_errc::malformed);
        return record_key{std::move(k)};
    }
    if (type == 3 || type == 5 || type == 6 || type == 7 || type == 8) {
        consumer_key k;
        k.type = static_cast<consumer_record>(type);
        k.group = get_string(r, false);
        if (type != 3 && type != 6) k.member = get_string(r, false);
        if (!r.ok()) return fail(group_record_errc::malformed);
        return record_key{std::move(k)};
    }
    if (type < 0) return fail(group_record_errc::unknown_version);
    return record_key{other_key{type}};
}

result<offset_value, group_record_errc> decode_offset_value(shared_bytes value) {
    reader r(std::move(value));
    int16_t version = r.i16();
    if (!r.ok()) return fail(group_record_errc::malformed);
    if (version < 0 || version > 4) return fail(group_record_errc::unknown_version);
    const bool compact = version >= 4;
    offset_value v;
    v.offset = r.i64();
    if (version >= 3) v.leader_epoch = r.i32();
    v.metadata = get_string(r, compact);
    v.commit_timestamp = r.i64();
    if (version == 1) v.expire_timestamp = r.i64();
    if (compact) skip_tags(r);
    if (!r.ok()) return fail(group_record_errc::malformed);
    return v;
}

result<group_value, group_record_errc> decode_group_value(shared_bytes value) {
    reader r(std::move(value));
    int16_t version = r.i16();
    if (!r.ok()) return fail(group_record_errc::malformed);
    if (version < 0 || version > 4) return fail(group_record_errc::unknown_version);
    const bool compact = version >= 4;
    group_value v;
    v.protocol_type = get_string(r, compact);
    v.generation = r.i32();
    v.protocol = get_nullable(r, compact);
    v.leader = get_nullable(r, compact);
    if (version >= 2) v.current_state_timestamp = r.i64();
    int32_t n = r.array_length(compact);
    if (n < 0) return fail(group_record_errc::malformed);
    for (int32_t i = 0; i < n && r.ok(); ++i) {
        group_member_value m;
        m.member_id = get_string(r, compact);
        if (version >= 3) m.group_instance_id = get_nullable(r, compact);
        m.client_id = get_string(r, compact);
        m.client_host = get_string(r, compact);
        if (version >= 1) m.rebalance_timeout = r.i32();
        m.session_timeout = r.i32();
        if (version == 0) m.rebalance_timeout = m.session_timeout;
        m.subscription = get_bytes(r, compact);
        m.assignment = get_bytes(r, compact);
        if (compact) skip_tags(r);
        v.members.push_back(std::move(m));
    }
    if (compact) skip_tags(r);
    if (!r.ok()) return fail(group_record_errc::malformed);
    return v;
}

int32_t group_partition(std::string_view group_id, int32_t partitions) {
    // Java's String.hashCode: h = 31 * h + c over UTF-16 code units. The
    // wire string is UTF-8; bytes that are not valid UTF-8 decode to
    // U+FFFD, as Java's decoder makes them.
    uint32_t h = 0;
    auto unit = [&](uint32_t c) { h = 31 * h + c; };
    const auto* p = reinterpret_cast<const uint8_t*>(group_id.data());
    const size_t n = group_id.size();
    size_t i = 0;
    while (i < n) {
        uint32_t b = p[i];
        uint32_t cp = 0xfffd;
        size_t len = 1;
        if (b < 0x80) {
            cp = b;
        } else {
            size_t need = 0;
            uint32_t min = 0;
            if ((b & 0xe0) == 0xc0) {
                need = 1, cp = b & 0x1f, min = 0x80;
            } else if ((b & 0xf0) == 0xe0) {
                need = 2, cp = b & 0x0f, min = 0x800;
            } else if ((b & 0xf8) == 0xf0) {
                need = 3, cp = b & 0x07, min = 0x10000;
            }
            size_t k = 0;
            for (; need && k < need && i + 1 + k < n && (p[i + 1 + k] & 0xc0) == 0x80; ++k) {
                cp = (cp << 6) | (p[i + 1 + k] & 0x3f);
            }
            if (need == 0 || k < need || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                cp = 0xfffd;
                len = 1 + k;
                if (need == 0) len = 1;
            } else {
                len = 1 + need;
            }
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            unit(0xd800 + (cp >> 10));
            unit(0xdc00 + (cp & 0x3ff));
        } else {
            unit(cp);
        }
        i += len;
    }
    const auto hash = static_cast<int32_t>(h);
    const int32_t abs = hash == INT32_MIN ? 0 : (hash < 0 ? -hash : hash);
    return abs % partitions;
}

}  // namespace fjord::groups
