#include "kafka/produce_validation.h"

#include <fmt/format.h>

#include "kafka/errors.h"
#include "protocol/record_batch.h"

namespace fjord::kafka {
namespace {
using namespace fjord::protocol;

produce_check failed(int16_t code, std::string msg) {
    produce_check c;
    c.error = code;
    c.message = std::move(msg);
    return c;
}

}  // namespace

produce_check validate_produce_records(const shared_bytes& records, const topic_config& cfg, int64_t now_ms,
                                       const std::string& partition_name, std::vector<uint8_t>& scratch) {
    // Kafka reads whole batches and stops at an incomplete one (fewer bytes
    // than its length field claims): only complete batches count.
    constexpr size_t header_up_to_magic = 17;
    std::span<const uint8_t> bytes = records.span();
    size_t pos = 0, batches = 0, first_size = 0;
    while (bytes.size() - pos >= header_up_to_magic) {
        const int64_t len = load_be<int32_t>(bytes.data() + pos + batch_length_offset);
        const int8_t magic = static_cast<int8_t>(bytes[pos + 16]);
        if (magic < 0 || magic > 2) {
            return failed(error::corrupt_message, fmt::format("Invalid magic found in record: {}", magic));
        }
        const int64_t size = len + static_cast<int64_t>(batch_log_overhead);
        if (len < 0 || size > static_cast<int64_t>(bytes.size() - pos)) break;
        if (batches == 0) first_size = static_cast<size_t>(size);
        ++batches;
        pos += static_cast<size_t>(size);
    }
    if (batches != 1) return failed(error::invalid_record, {});
    if (bytes[16] != 2) return failed(error::invalid_record, {});
    if (first_size > static_cast<size_t>(std::max(cfg.max_message_bytes, 0))) {
        return failed(error::message_too_large, {});
    }
    if (first_size < batch_header_size) return failed(error::corrupt_message, {});
    if ((load_be<uint16_t>(bytes.data() + batch_attributes_offset) & attr::codec_mask) > 4) {
        auto c = failed(error::unknown_server_error, {});
        c.reports_log_start = true;
        return c;
    }
    auto parsed = record_batch::parse(records.slice(0, first_size));
    if (!parsed) return failed(error::corrupt_message, {});
    const record_batch& b = *parsed;
    if (!b.crc_ok()) return failed(error::corrupt_message, {});
    // From here on Kafka's log validator runs, and its errors carry the
    // partition's log start offset.
    auto invalid = [](int16_t code) {
        auto c = failed(code, {});
        c.reports_log_start = true;
        return c;
    };
    if (b.base_offset() != 0) return invalid(error::invalid_record);
    if (b.is_control()) return invalid(error::invalid_record);
    if (b.record_count() <= 0 || static_cast<int64_t>(b.last_offset_delta()) + 1 != b.record_count()) {
        return invalid(error::invalid_record);
    }
    if (b.producer_id() >= 0 && b.base_sequence() < 0) return invalid(error::invalid_record);
    auto payload = b.payload(scratch, max_decompressed_produce_bytes);
    if (!payload) {
        // Kafka fails a codec it cannot decode with UNKNOWN_SERVER_ERROR.
        return invalid(payload.error() == batch_errc::decompressed_too_large ? error::corrupt_message
                                                                             : error::unknown_server_error);
    }

    produce_check out;
    out.records = b.record_count();
    out.producer_id = b.producer_id();
    out.producer_epoch = b.producer_epoch();
    out.base_sequence = b.base_sequence();
    out.last_offset_delta = b.last_offset_delta();
    const bool check_ts = b.ts_type() == timestamp_type::create_time && !cfg.log.log_append_time;
    auto reader = b.records(*payload);
    record_view r;
    int32_t index = 0;
    int16_t record_code = 0;
    while (reader.next(r)) {
        if (cfg.log.compact && !r.key.has_value()) {
            record_code = error::invalid_record;
            out.record_errors.push_back(
                {index, fmt::format("Compacted topic cannot accept message without key in topic partition {}.",
                                    partition_name)});
        } else if (check_ts) {
            int64_t ts = b.timestamp_of(r);
            bool too_old = cfg.timestamp_before_max_ms < now_ms && ts < now_ms - cfg.timestamp_before_max_ms;
            bool too_new = ts > now_ms && ts - now_ms > cfg.timestamp_after_max_ms;
            if (too_old || too_new) {
                if (record_code == 0) record_code = error::invalid_timestamp;
                out.record_errors.push_back(
                    {index, fmt::format(
                                "Timestamp {} of message with offset {} is out of range. The timestamp should "
                                "be within [{}, {}]",
                                ts, index,
                                cfg.timestamp_before_max_ms < now_ms ? now_ms - cfg.timestamp_before_max_ms : INT64_MIN,
                                now_ms + std::min(cfg.timestamp_after_max_ms, INT64_MAX - now_ms))});
            }
        }
        ++index;
    }
    if (!reader.ok()) return invalid(error::invalid_record);
    if (record_code != 0) {
        out.error = record_code;
        out.message = out.record_errors.front().message;
        out.reports_log_start = true;
        return out;
    }

    // compression.type: rebuild the batch with the topic's codec.
    if (auto target = cfg.target_codec(); target && *target != b.compression()) {
        batch_options o;
        o.compression = *target;
        o.producer_id = b.producer_id();
        o.producer_epoch = b.producer_epoch();
        o.base_sequence = b.base_sequence();
        o.transactional = b.is_transactional();
        o.ts_type = b.ts_type();
        batch_builder builder(o);
        std::vector<header_in> headers;
        auto again = b.records(*payload);
        while (again.next(r)) {
            headers.clear();
            auto hr = r.headers();
            header_view hv;
            while (hr.next(hv)) {
                headers.push_back({hv.key, hv.value});
            }
            builder.add(b.timestamp_of(r), r.key, r.value, headers);
        }
        auto built = builder.build();
        if (!built) return failed(error::unknown_server_error, "recompression failed");
        out.rebuilt = std::move(built).value();
    }
    return out;
}

}  // namespace fjord::kafka
