// Kafka's small text files: offset checkpoints (recovery-point-offset-
// checkpoint, log-start-offset-checkpoint), leader-epoch-checkpoint,
// partition.metadata and meta.properties. Formats are Kafka's, byte for byte:
//
//   checkpoint files:   "0\n" <count> "\n" then one entry per line
//                       offsets: "<topic> <partition> <offset>"
//                       epochs:  "<epoch> <start_offset>"
//   partition.metadata: "version: 0\ntopic_id: <base64url uuid, no padding>\n"
//   meta.properties:    "key=value" lines, '#' comments
//
// The bytes are untrusted: parsers return errc::bad_checkpoint. Pure
// functions, any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "storage/errc.h"

namespace fjord::storage {

struct topic_partition {
    std::string topic;
    int32_t partition = 0;

    friend bool operator==(const topic_partition&, const topic_partition&) = default;
    friend auto operator<=>(const topic_partition&, const topic_partition&) = default;
    // "<topic>-<partition>", the partition's directory name.
    std::string dir_name() const;
    // Parses a directory name; false if it is not one.
    static bool from_dir_name(std::string_view name, topic_partition& out);
};

struct offset_entry {
    topic_partition tp;
    int64_t offset = 0;
};

struct epoch_entry {
    int32_t epoch = 0;
    int64_t start_offset = 0;
    friend bool operator==(const epoch_entry&, const epoch_entry&) = default;
};

using uuid = std::array<uint8_t, 16>;

std::string format_offset_checkpoint(std::span<const offset_entry> entries);
result<std::vector<offset_entry>, errc> parse_offset_checkpoint(std::string_view text);

std::string format_epoch_checkpoint(std::span<const epoch_entry> entries);
result<std::vector<epoch_entry>, errc> parse_epoch_checkpoint(std::string_view text);

std::string format_partition_metadata(const uuid& topic_id);
result<uuid, errc> parse_partition_metadata(std::string_view text);

std::string format_properties(const std::map<std::string, std::string>& props);
result<std::map<std::string, std::string>, errc> parse_properties(std::string_view text);

// Kafka's Uuid.toString(): base64url without padding (22 characters).
std::string uuid_to_base64url(const uuid& id);
result<uuid, errc> uuid_from_base64url(std::string_view s);

}  // namespace fjord::storage
