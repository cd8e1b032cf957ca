#include "cluster/metadata_records.h"

#include <fmt/format.h>

namespace fjord::cluster {

const char* describe(errc e) {
    switch (e) {
        case errc::invalid_topic_name: return "invalid topic name";
        case errc::topic_name_collision: return "topic name collides with an existing topic ('.' vs '_')";
        case errc::topic_already_exists: return "topic already exists";
        case errc::invalid_partitions: return "invalid number of partitions";
        case errc::invalid_replication_factor: return "invalid replication factor";
        case errc::invalid_replica_assignment: return "invalid replica assignment";
        case errc::invalid_config: return "invalid config";
        case errc::unknown_topic: return "unknown topic";
        case errc::unknown_topic_id: return "unknown topic id";
        case errc::duplicate_topic: return "topic named twice in one request";
        case errc::invalid_record: return "metadata record refused by the tables";
        case errc::corrupt_record: return "corrupt metadata record";
        case errc::unsupported_version: return "unsupported metadata record type or version";
        case errc::io_error: return "metadata log I/O error";
        case errc::metadata_offline: return "cluster metadata offline";
        case errc::not_controller: return "this node is not the active controller";
    }
    return "unknown cluster error";
}

record_type type_of(const metadata_record& r) {
    struct visitor {
        record_type operator()(const register_cluster&) const { return record_type::register_cluster; }
        record_type operator()(const topic_record&) const { return record_type::topic; }
        record_type operator()(const partition_record&) const { return record_type::partition; }
        record_type operator()(const config_record&) const { return record_type::config; }
        record_type operator()(const remove_topic_record&) const { return record_type::remove_topic; }
        record_type operator()(const partition_change_record&) const { return record_type::partition_change; }
        record_type operator()(const producer_ids_record&) const { return record_type::producer_ids; }
        record_type operator()(const register_broker_record&) const { return record_type::register_broker; }
        record_type operator()(const broker_fence_record&) const { return record_type::broker_fence; }
        record_type operator()(const partition_leader_record&) const { return record_type::partition_leader; }
    };
    return std::visit(visitor{}, r);
}

const char* name_of(record_type t) {
    switch (t) {
        case record_type::register_cluster: return "register_cluster";
        case record_type::topic: return "topic";
        case record_type::partition: return "partition";
        case record_type::config: return "config";
        case record_type::remove_topic: return "remove_topic";
        case record_type::partition_change: return "partition_change";
        case record_type::producer_ids: return "producer_ids";
        case record_type::register_broker: return "register_broker";
        case record_type::broker_fence: return "broker_fence";
        case record_type::partition_leader: return "partition_leader";
    }
    return "unknown";
}

namespace {

// ---- encoding --------------------------------------------------------------

void put_string(protocol::writer& w, std::string_view s) {
    w.uvarint(static_cast<uint32_t>(s.size()));
    w.raw(s);
}

void put_ints(protocol::writer& w, const std::vector<int32_t>& v) {
    w.uvarint(static_cast<uint32_t>(v.size()));
    for (int32_t x : v) w.varint(x);
}

struct encoder {
    protocol::writer& w;
    void operator()(const register_cluster& r) const { put_string(w, r.cluster_id); }
    void operator()(const topic_record& r) const {
        put_string(w, r.name);
        w.write_uuid(r.topic_id);
    }
    void operator()(const partition_record& r) const {
        w.write_uuid(r.topic_id);
        w.varint(r.partition);
        put_ints(w, r.replicas);
        put_ints(w, r.isr);
        w.varint(r.leader);
        w.varint(r.leader_epoch);
        w.varint(r.partition_epoch);
    }
    void operator()(const config_record& r) const {
        w.i8(static_cast<int8_t>(r.resource_type));
        put_string(w, r.resource_name);
        put_string(w, r.key);
        w.u8(r.value ? 1 : 0);
        if (r.value) put_string(w, *r.value);
    }
    void operator()(const remove_topic_record& r) const { w.write_uuid(r.topic_id); }
    void operator()(const partition_change_record& r) const {
        w.write_uuid(r.topic_id);
        w.varint(r.partition);
        w.u8(r.leader ? 1 : 0);
        if (r.leader) w.varint(*r.leader);
        w.u8(r.isr ? 1 : 0);
        if (r.isr) put_ints(w, *r.isr);
        w.u8(r.bump_leader_epoch ? 1 : 0);
    }
    void operator()(const producer_ids_record& r) const { w.varlong(r.next_producer_id); }
    void operator()(const register_broker_record& r) const {
        w.varint(r.node_id);
        w.write_uuid(r.incarnation_id);
        w.uvarint(static_cast<uint32_t>(r.endpoints.size()));
        for (const auto& e : r.endpoints) {
            put_string(w, e.name);
            put_string(w, e.host);
            w.varint(e.port);
            w.varint(e.security_protocol);
        }
        w.u8(r.rack ? 1 : 0);
        if (r.rack) put_string(w, *r.rack);
    }
    void operator()(const broker_fence_record& r) const {
        w.varint(r.node_id);
        w.varlong(r.broker_epoch);
        w.u8(r.fenced ? 1 : 0);
    }
    void operator()(const partition_leader_record& r) const {
        w.write_uuid(r.topic_id);
        w.varint(r.partition);
        w.varint(r.leader);
        w.varint(r.leader_epoch);
        put_ints(w, r.isr);
    }
};

// ---- decoding --------------------------------------------------------------

// Wraps the reader with the first semantic error (an out-of-range value),
// which the wire reader cannot express.
struct decoder {
    protocol::reader& r;
    const char* bad = nullptr;  // first invalid value, if any

    void invalid(const char* what) {
        if (!bad) bad = what;
        r.fail(protocol::errc::truncated);  // stop reading; `bad` names the cause
    }
    std::string string() {
        uint32_t n = r.uvarint();
        if (!r.ok()) return {};
        if (n > r.remaining()) {
            r.fail(protocol::errc::length_too_large);
            return {};
        }
        return r.str(n);
    }
    std::vector<int32_t> ints() {
        std::vector<int32_t> v;
        uint32_t n = r.uvarint();
        if (!r.ok()) return v;
        // Every element takes at least one byte: never allocate beyond the input.
        if (n > r.remaining()) {
            r.fail(protocol::errc::length_too_large);
            return v;
        }
        v.reserve(n);
        for (uint32_t i = 0; i < n && r.ok(); ++i) v.push_back(r.varint());
        return v;
    }
    bool flag() {
        uint8_t b = r.u8();
        if (r.ok() && b > 1) invalid("a boolean flag other than 0 or 1");
        return b == 1;
    }
    protocol::uuid id() { return r.read_uuid(); }
};

metadata_record decode_body(record_type t, decoder& d) {
    auto& r = d.r;
    switch (t) {
        case record_type::register_cluster: return register_cluster{d.string()};
        case record_type::topic: {
            topic_record x;
            x.name = d.string();
            x.topic_id = d.id();
            return x;
        }
        case record_type::partition: {
            partition_record x;
            x.topic_id = d.id();
            x.partition = r.varint();
            x.replicas = d.ints();
            x.isr = d.ints();
            x.leader = r.varint();
            x.leader_epoch = r.varint();
            x.partition_epoch = r.varint();
            return x;
        }
        case record_type::config: {
            config_record x;
            int8_t type = r.i8();
            if (r.ok() && type != static_cast<int8_t>(config_resource_type::topic) &&
                type != static_cast<int8_t>(config_resource_type::broker)) {
                d.invalid("an unknown config resource type");
            }
            x.resource_type = static_cast<config_resource_type>(type);
            x.resource_name = d.string();
            x.key = d.string();
            if (d.flag()) x.value = d.string();
            return x;
        }
        case record_type::remove_topic: return remove_topic_record{d.id()};
        case record_type::partition_change: {
            partition_change_record x;
            x.topic_id = d.id();
            x.partition = r.varint();
            if (d.flag()) x.leader = r.varint();
            if (d.flag()) x.isr = d.ints();
            x.bump_leader_epoch = d.flag();
            return x;
        }
        case record_type::producer_ids: return producer_ids_record{r.varlong()};
        case record_type::register_broker: {
            register_broker_record x;
            x.node_id = r.varint();
            x.incarnation_id = d.id();
            uint32_t n = r.uvarint();
            // An endpoint takes at least four bytes: never allocate beyond the input.
            if (r.ok() && n > r.remaining() / 4) {
                r.fail(protocol::errc::length_too_large);
                return x;
            }
            for (uint32_t i = 0; i < n && r.ok(); ++i) {
                broker_endpoint e;
                e.name = d.string();
                e.host = d.string();
                e.port = r.varint();
                const int32_t proto = r.varint();
                if (r.ok() && (e.port < 0 || e.port > 65535)) d.invalid("an endpoint port outside 0-65535");
                if (r.ok() && (proto < 0 || proto > 3)) d.invalid("an unknown security protocol");
                e.security_protocol = static_cast<int16_t>(proto);
                x.endpoints.push_back(std::move(e));
            }
            if (d.flag()) x.rack = d.string();
            if (r.ok() && x.node_id < 0) d.invalid("a negative node id");
            return x;
        }
        case record_type::broker_fence: {
            broker_fence_record x;
            x.node_id = r.varint();
            x.broker_epoch = r.varlong();
            x.fenced = d.flag();
            return x;
        }
        case record_type::partition_leader: {
            partition_leader_record x;
            x.topic_id = d.id();
            x.partition = r.varint();
            x.leader = r.varint();
            x.leader_epoch = r.varint();
            x.isr = d.ints();
            if (r.ok() && (x.leader < 0 || x.leader_epoch < 0)) d.invalid("a negative leader or leader epoch");
            return x;
        }
    }
    FJORD_UNREACHABLE("record type {} not handled", static_cast<int>(t));
}

}  // namespace

void encode(const metadata_record& r, protocol::writer& w) {
    w.uvarint(static_cast<uint32_t>(type_of(r)));
    w.uvarint(current_record_version);
    std::visit(encoder{w}, r);
}

std::vector<uint8_t> encode(const metadata_record& r) {
    protocol::writer w(64);
    encode(r, w);
    return w.take();
}

result<metadata_record, errc> decode(std::span<const uint8_t> bytes, std::string* detail) {
    auto failed = [&](errc e, std::string why) -> result<metadata_record, errc> {
        if (detail) *detail = std::move(why);
        return fail(e);
    };
    protocol::reader r(shared_bytes::copy_of(bytes));
    decoder d{r};
    uint32_t type = r.uvarint();
    uint32_t version = r.uvarint();
    if (!r.ok()) {
        return failed(errc::corrupt_record,
                      fmt::format("record header ({} bytes): {}", bytes.size(), protocol::describe(r.error())));
    }
    if (type < static_cast<uint32_t>(record_type::register_cluster) ||
        type > static_cast<uint32_t>(record_type::partition_leader)) {
        return failed(errc::unsupported_version, fmt::format("unknown record type {}", type));
    }
    const auto t = static_cast<record_type>(type);
    if (version > current_record_version) {
        return failed(errc::unsupported_version, fmt::format("{} record version {} (this build reads up to {})",
                                                             name_of(t), version, current_record_version));
    }
    metadata_record out = decode_body(t, d);
    if (d.bad) {
        return failed(errc::corrupt_record, fmt::format("{} record v{}: {}", name_of(t), version, d.bad));
    }
    if (!r.ok()) {
        return failed(errc::corrupt_record, fmt::format("{} record v{} ({} bytes): {}", name_of(t), version,
                                                        bytes.size(), protocol::describe(r.error())));
    }
    if (r.remaining() != 0) {
        return failed(errc::corrupt_record, fmt::format("{} record v{}: {} trailing bytes after byte {}", name_of(t),
                                                        version, r.remaining(), r.offset()));
    }
    return out;
}

}  // namespace fjord::cluster
