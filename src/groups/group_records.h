// group_records: the records of `__consumer_offsets`, in Kafka's own layout
// (Kafka's DumpLogSegments --offsets-decoder reads Fjord's segments:
// tests/groups/check.py).
//
// Every record key starts with an int16 type: 0 and 1 an offset commit
// (group, topic, partition), 2 a classic group's metadata (group). The value
// starts with its own int16 version; a null value is a tombstone (the offset
// or the group is deleted). Fjord writes OffsetCommitValue v3 and
// GroupMetadataValue v3, and reads every version Kafka has written (0-4,
// v4 being the flexible encoding). The consumer protocol's records are
// Kafka 4.4's version 0 (flexible); their optional tagged fields (the
// metadata hash, assignment timestamps and per-partition epochs) are not
// written and are skipped when read.
//
// Decoding takes untrusted bytes (a segment could be corrupt): every length
// is checked against what remains, and a record that does not decode is
// reported, never trusted.
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "protocol/wire.h"

namespace fjord::groups {

struct offset_key {
    std::string group;
    std::string topic;
    int32_t partition = 0;
    friend bool operator==(const offset_key&, const offset_key&) = default;
};

struct group_key {
    std::string group;
    friend bool operator==(const group_key&, const group_key&) = default;
};

// The consumer group protocol's records (KIP-848), keyed by group (types 3
// and 6) or by group and member (5, 7 and 8).
enum class consumer_record : int16_t {
    group_metadata = 3,      // ConsumerGroupMetadata: the group epoch
    member_metadata = 5,     // ConsumerGroupMemberMetadata: who, what it subscribes to
    target_metadata = 6,     // ConsumerGroupTargetAssignmentMetadata: the assignment epoch
    target_member = 7,       // ConsumerGroupTargetAssignmentMember: one member's target
    current_assignment = 8,  // ConsumerGroupCurrentMemberAssignment: epochs and owned partitions
};

struct consumer_key {
    consumer_record type = consumer_record::group_metadata;
    std::string group;
    std::string member;  // types 5, 7, 8
    friend bool operator==(const consumer_key&, const consumer_key&) = default;
};

// Other types (regex resolutions, share and streams groups) are recognized
// and skipped.
struct other_key {
    int16_t type = 0;
};

using record_key = std::variant<offset_key, group_key, consumer_key, other_key>;

// Partitions by topic id, as the records keep them.
using id_partitions = std::vector<std::pair<protocol::uuid, std::vector<int32_t>>>;

struct consumer_member_value {
    std::optional<std::string> instance_id;
    std::optional<std::string> rack_id;
    std::string client_id;
    std::string client_host;
    std::vector<std::string> topic_names;
    std::optional<std::string> regex;
    int32_t rebalance_timeout = -1;
    std::optional<std::string> server_assignor;
    friend bool operator==(const consumer_member_value&, const consumer_member_value&) = default;
};

struct consumer_current_value {
    int32_t epoch = 0;
    int32_t previous_epoch = 0;
    int8_t state = 0;  // 0 stable, 1 unrevoked partitions, 2 unreleased partitions
    id_partitions assigned;
    id_partitions revoking;
    friend bool operator==(const consumer_current_value&, const consumer_current_value&) = default;
};

struct offset_value {
    int64_t offset = 0;
    int32_t leader_epoch = -1;
    std::string metadata;
    int64_t commit_timestamp = 0;
    int64_t expire_timestamp = -1;  // only version 1 carries it
    friend bool operator==(const offset_value&, const offset_value&) = default;
};

struct group_member_value {
    std::string member_id;
    std::optional<std::string> group_instance_id;
    std::string client_id;
    std::string client_host;
    int32_t rebalance_timeout = 0;
    int32_t session_timeout = 0;
    shared_bytes subscription;
    shared_bytes assignment;
    friend bool operator==(const group_member_value&, const group_member_value&) = default;
};

struct group_value {
    std::string protocol_type;
    int32_t generation = 0;
    std::optional<std::string> protocol;
    std::optional<std::string> leader;
    int64_t current_state_timestamp = -1;
    std::vector<group_member_value> members;
    friend bool operator==(const group_value&, const group_value&) = default;
};

std::vector<uint8_t> encode_key(const offset_key& k);
std::vector<uint8_t> encode_key(const group_key& k);
std::vector<uint8_t> encode_key(const consumer_key& k);
// Values of the consumer records: the group epoch (3) or the assignment
// epoch (6), one int32; the others as their structs.
std::vector<uint8_t> encode_epoch_value(int32_t epoch);
std::vector<uint8_t> encode_value(const consumer_member_value& v);
std::vector<uint8_t> encode_value(const id_partitions& target);
std::vector<uint8_t> encode_value(const consumer_current_value& v);
std::vector<uint8_t> encode_value(const offset_value& v);
std::vector<uint8_t> encode_value(const group_value& v);

enum class group_record_errc : uint8_t { malformed, unknown_version };
const char* describe(group_record_errc e);

result<record_key, group_record_errc> decode_key(shared_bytes key);
result<offset_value, group_record_errc> decode_offset_value(shared_bytes value);
result<group_value, group_record_errc> decode_group_value(shared_bytes value);
result<int32_t, group_record_errc> decode_epoch_value(shared_bytes value);
result<consumer_member_value, group_record_errc> decode_member_value(shared_bytes value);
result<id_partitions, group_record_errc> decode_target_value(shared_bytes value);
result<consumer_current_value, group_record_errc> decode_current_value(shared_bytes value);

// The `__consumer_offsets` partition of a group: Java's String.hashCode of
// the id (over UTF-16 code units, as Kafka computes it), made non-negative
// the way Kafka's Utils.abs does, modulo the partition count.
int32_t group_partition(std::string_view group_id, int32_t partitions);

}  // namespace fjord::groups
