// group_records: the records of `__consumer_offsets`, in Kafka's own layout
// (Kafka's DumpLogSegments --offsets-decoder reads Fjord's segments:
// tests/groups/check.py).
//
// Every record key starts with an int16 type: 0 and 1 an offset commit
// (group, topic, partition), 2 a classic group's metadata (group). The value
// starts with its own int16 version; a null value is a tombstone (the offset
// or the group is deleted). Fjord writes OffsetCommitValue v3 and
// GroupMetadataValue v3, and reads every version Kafka has written (0-4,
// v4 being the flexible encoding).
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

namespace fjord::coordinator {

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

// The key types this coordinator keeps; other types (KIP-848 and share
// group records written by a newer Kafka) are recognized and skipped.
struct other_key {
    int16_t type = 0;
};

using record_key = std::variant<offset_key, group_key, other_key>;

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
std::vector<uint8_t> encode_value(const offset_value& v);
std::vector<uint8_t> encode_value(const group_value& v);

enum class group_record_errc : uint8_t { malformed, unknown_version };
const char* describe(group_record_errc e);

result<record_key, group_record_errc> decode_key(shared_bytes key);
result<offset_value, group_record_errc> decode_offset_value(shared_bytes value);
result<group_value, group_record_errc> decode_group_value(shared_bytes value);

// The `__consumer_offsets` partition of a group: Java's String.hashCode of
// the id (over UTF-16 code units, as Kafka computes it), made non-negative
// the way Kafka's Utils.abs does, modulo the partition count.
int32_t group_partition(std::string_view group_id, int32_t partitions);

}  // namespace fjord::coordinator
