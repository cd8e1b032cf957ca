// Cluster metadata change records and their binary encoding.
//
// The metadata log is a sequence of these records; every node applies them,
// in log order, to its metadata_table (metadata_table.h). One record is one
// Kafka record's value inside a batch of the `__cluster_metadata` log.
//
// Encoding (every integer big-endian or a protocol varint, see wire.h):
//   uvarint type, uvarint version, then the record's fields at that version:
//   string:   uvarint length, bytes
//   uuid:     16 bytes
//   int32:    zig-zag varint
//   int32[]:  uvarint count, int32 each
//   optional: u8 0 (absent) or 1 (present), then the value
// A record must use every byte given to it. The bytes are untrusted (they
// come from disk, later from Raft peers): decode() checks every length
// against the bytes remaining before allocating, refuses unknown types and
// versions, trailing bytes and out-of-range enum values, and never asserts.
//
// Pure functions and values: any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
#include "cluster/errc.h"
#include "protocol/wire.h"

namespace fjord::cluster {

// Kafka's ConfigResource.Type values.
enum class config_resource_type : int8_t { topic = 2, broker = 4 };

// The cluster's identity, written once when a cluster is first started.
struct register_cluster {
    std::string cluster_id;
    friend bool operator==(const register_cluster&, const register_cluster&) = default;
};

struct topic_record {
    std::string name;
    protocol::uuid topic_id;
    friend bool operator==(const topic_record&, const topic_record&) = default;
};

// A new partition, or the whole state of an existing one.
struct partition_record {
    protocol::uuid topic_id;
    int32_t partition = 0;
    std::vector<int32_t> replicas;
    std::vector<int32_t> isr;
    int32_t leader = -1;
    int32_t leader_epoch = 0;
    int32_t partition_epoch = 0;
    friend bool operator==(const partition_record&, const partition_record&) = default;
};

// Sets (value) or deletes (nullopt) one config key of a topic or broker.
// Broker resource name "" is the cluster-wide default, as in Kafka.
struct config_record {
    config_resource_type resource_type = config_resource_type::topic;
    std::string resource_name;
    std::string key;
    std::optional<std::string> value;
    friend bool operator==(const config_record&, const config_record&) = default;
};

struct remove_topic_record {
    protocol::uuid topic_id;
    friend bool operator==(const remove_topic_record&, const remove_topic_record&) = default;
};

// A change of an existing partition. Every change bumps the partition epoch;
// the leader epoch goes up by one when bump_leader_epoch is set (required
// when the leader changes).
struct partition_change_record {
    protocol::uuid topic_id;
    int32_t partition = 0;
    std::optional<int32_t> leader;
    std::optional<std::vector<int32_t>> isr;
    bool bump_leader_epoch = false;
    friend bool operator==(const partition_change_record&, const partition_change_record&) = default;
};

// A block of producer ids handed out (Kafka's ProducerIdsRecord): every id
// below next_producer_id is taken.
struct producer_ids_record {
    int64_t next_producer_id = 0;
    friend bool operator==(const producer_ids_record&, const producer_ids_record&) = default;
};

// One listener a broker serves clients on (Kafka's BrokerEndpoint).
struct broker_endpoint {
    std::string name;  // the listener name, PLAINTEXT
    std::string host;
    int32_t port = 0;
    int16_t security_protocol = 0;  // Kafka's SecurityProtocol id (0 PLAINTEXT)
    friend bool operator==(const broker_endpoint&, const broker_endpoint&) = default;
};

// A node joins the cluster as a broker, or rejoins it after a restart (a new
// incarnation). Its broker epoch is this record's offset. A newly registered
// broker is fenced until the controller sees it caught up.
struct register_broker_record {
    int32_t node_id = 0;
    protocol::uuid incarnation_id;
    std::vector<broker_endpoint> endpoints;
    std::optional<std::string> rack;  // broker.rack
    friend bool operator==(const register_broker_record&, const register_broker_record&) = default;
};

// The controller fences a broker that stopped heartbeating (it leads
// nothing, clients are not sent to it) or unfences one that caught up.
struct broker_fence_record {
    int32_t node_id = 0;
    int64_t broker_epoch = 0;  // the registration this applies to
    bool fenced = false;
    friend bool operator==(const broker_fence_record&, const broker_fence_record&) = default;
};

// The leader of a replicated partition's Raft group says it leads in
// `leader_epoch` (its Raft term) with these replicas in sync (Kafka's
// AlterPartition, with the epoch chosen by the election instead of by the
// controller). Applied only when the epoch is not below the partition's.
struct partition_leader_record {
    protocol::uuid topic_id;
    int32_t partition = 0;
    int32_t leader = -1;
    int32_t leader_epoch = 0;
    std::vector<int32_t> isr;
    friend bool operator==(const partition_leader_record&, const partition_leader_record&) = default;
};

using metadata_record = std::variant<register_cluster, topic_record, partition_record, config_record,
                                     remove_topic_record, partition_change_record, producer_ids_record,
                                     register_broker_record, broker_fence_record, partition_leader_record>;

// The type tag written first; never reuse a value.
enum class record_type : uint8_t {
    register_cluster = 1,
    topic = 2,
    partition = 3,
    config = 4,
    remove_topic = 5,
    partition_change = 6,
    producer_ids = 7,
    register_broker = 8,
    broker_fence = 9,
    partition_leader = 10,
};

// The version this build writes and the highest it reads, per type.
inline constexpr uint32_t current_record_version = 0;

record_type type_of(const metadata_record& r);
const char* name_of(record_type t);

void encode(const metadata_record& r, protocol::writer& w);
std::vector<uint8_t> encode(const metadata_record& r);

// Decodes exactly one record filling all of `bytes`. Fails with
// corrupt_record or unsupported_version; `detail` (if given) then says what
// failed and at which byte.
result<metadata_record, errc> decode(std::span<const uint8_t> bytes, std::string* detail = nullptr);

}  // namespace fjord::cluster
