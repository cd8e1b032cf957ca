// Produce validation as Apache Kafka's leader does it (LogValidator and the
// produce request checks), once per partition, before the append:
//   - exactly one whole record batch of magic 2 per partition (Produce v3+;
//     else INVALID_RECORD; a magic above 2 is CORRUPT_MESSAGE);
//   - the batch's size within max.message.bytes (MESSAGE_TOO_LARGE);
//   - the CRC (CORRUPT_MESSAGE);
//   - no control batches from clients, record count == lastOffsetDelta + 1,
//     at least one record, records that decode (INVALID_RECORD); a codec
//     that does not decode is UNKNOWN_SERVER_ERROR, as in Kafka;
//   - CreateTime timestamps within message.timestamp.before/after.max.ms of
//     the broker clock (INVALID_TIMESTAMP with the offending records);
//   - keys on compacted topics (INVALID_RECORD with the offending records).
// Error messages only where Kafka sends them (record-level errors).
// When the topic's compression.type names a codec other than the batch's,
// the batch is rebuilt with that codec (the only recompression on the path).
//
// No allocation per record: records are walked in place (compressed ones are
// decompressed into a reused scratch buffer, bounded).
//
// Threading: any thread; pure function of its inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "kafka/config.h"

namespace fjord::kafka {

struct record_error {
    int32_t batch_index = 0;  // the record's index in the batch
    std::string message;
};

struct produce_check {
    int16_t error = 0;  // 0: valid
    std::string message;
    std::vector<record_error> record_errors;
    int64_t records = 0;
    // The batch's producer fields (idempotence is checked against the log's
    // producer state at append time).
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    int32_t base_sequence = -1;
    int32_t last_offset_delta = 0;
    // Kafka's log validator found it (not the request checks before it):
    // the answer then carries the partition's log start offset.
    bool reports_log_start = false;
    // Set when the batch had to be rebuilt (compression.type differs).
    std::optional<std::vector<uint8_t>> rebuilt;
};

// Decompressed records beyond this fail validation (a bound on what a
// compressed batch may make the broker allocate).
inline constexpr size_t max_decompressed_produce_bytes = size_t{256} << 20;

produce_check validate_produce_records(const shared_bytes& records, const topic_config& cfg, int64_t now_ms,
                                       const std::string& partition_name, std::vector<uint8_t>& scratch);

}  // namespace fjord::kafka
