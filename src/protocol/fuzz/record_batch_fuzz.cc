// libFuzzer target: untrusted records bytes (a Produce request's records
// field, a segment read from disk) through split -> validate -> decompress ->
// iterate records and headers -> control records. Nothing may crash, leak,
// read out of bounds, or allocate beyond the decompression limit.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/record_batch.h"

using namespace fjord;
using namespace fjord::protocol;

namespace {
constexpr size_t max_decompressed_bytes = 16 << 20;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    batch_splitter split(shared_bytes::copy_of(std::span<const uint8_t>(data, size)));
    std::vector<uint8_t> scratch;
    while (auto batch = split.next()) {
        // Exercise every accessor on a header that parse() accepted.
        volatile uint64_t sink = uint64_t(batch->base_offset()) + uint64_t(batch->partition_leader_epoch()) +
                                 uint64_t(batch->last_offset_delta()) + uint64_t(batch->base_timestamp()) +
                                 uint64_t(batch->max_timestamp()) + uint64_t(batch->producer_id()) +
                                 uint64_t(batch->producer_epoch()) + uint64_t(batch->base_sequence()) +
                                 uint64_t(batch->record_count());
        (void)sink;
        // Both validation modes; continue past failures to reach the record
        // reader with malformed payloads too (it must be safe on its own).
        (void)batch->validate();
        (void)batch->validate({.dense_offsets = false});
        auto payload = batch->payload(scratch, max_decompressed_bytes);
        if (!payload) continue;
        if (payload->size() > max_decompressed_bytes) __builtin_trap();
        (void)batch->validate_records(*payload, {.dense_offsets = false});
        record_reader rr = batch->records(*payload);
        record_view rv;
        size_t bytes = 0;
        while (rr.next(rv)) {
            if (rv.key) bytes += rv.key->size();
            if (rv.value) bytes += rv.value->size();
            header_reader hr = rv.headers();
            header_view h;
            int32_t headers = 0;
            while (hr.next(h)) {
                bytes += h.key.size();
                ++headers;
            }
            // Headers were checked when the record was read: all must decode.
            if (headers != rv.header_count) __builtin_trap();
            if (batch->is_control()) (void)parse_control_record(rv);
            (void)batch->offset_of(rv);
            (void)batch->timestamp_of(rv);
        }
        if (bytes > payload->size()) __builtin_trap();
    }
    return 0;
}
