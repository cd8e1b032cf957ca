// Cluster metadata errors: expected failures of the controller, the metadata
// tables and the metadata log. The Kafka handlers map them to Kafka error
// codes (the comment on each value names the code it stands for).
#pragma once

#include <cstdint>

namespace fjord::cluster {

enum class errc : uint8_t {
    // Per-topic request errors (CreateTopics, DeleteTopics, CreatePartitions,
    // IncrementalAlterConfigs).
    invalid_topic_name = 1,      // INVALID_TOPIC_EXCEPTION (17): illegal characters, length, "." or ".."
    topic_name_collision,        // INVALID_TOPIC_EXCEPTION (17): same name once '.' is replaced by '_'
    topic_already_exists,        // TOPIC_ALREADY_EXISTS (36)
    invalid_partitions,          // INVALID_PARTITIONS (37): < 1, beyond the limit, or not an increase
    invalid_replication_factor,  // INVALID_REPLICATION_FACTOR (38): < 1 or more than the brokers
    invalid_config,              // INVALID_CONFIG (40): unknown topic config key, empty value
    unknown_topic,               // UNKNOWN_TOPIC_OR_PARTITION (3)
    unknown_topic_id,            // UNKNOWN_TOPIC_ID (100)
    duplicate_topic,             // INVALID_REQUEST (42): the same topic twice in one request
    // A record the tables refuse (a partition of an unknown topic, an id
    // already used...): from the log this is corruption, see below.
    invalid_record,
    // Metadata log and decoding.
    corrupt_record,       // bytes that do not decode as a metadata record
    unsupported_version,  // a record type or version this build does not know
    io_error,             // the log could not write (EIO, ENOSPC...): KAFKA_STORAGE_ERROR (56)
    metadata_offline,     // an earlier error took the metadata offline: KAFKA_STORAGE_ERROR (56)
    // The metadata quorum.
    not_controller,  // this node is not (or no longer) the active controller: NOT_CONTROLLER (41)
    // CreateTopics / CreatePartitions: a manual assignment that does not
    // match the partition count or has replica lists of different sizes.
    invalid_replica_assignment,  // INVALID_REPLICA_ASSIGNMENT (39)
};

const char* describe(errc e);

}  // namespace fjord::cluster
