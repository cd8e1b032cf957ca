#include "storage/segment.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/assert.h"
#include "base/endian.h"

namespace fjord::storage {

std::string segment_file_name(int64_t base_offset, std::string_view ext) {
    FJORD_ASSERT(base_offset >= 0, "segment base offset {}", base_offset);
    return fmt::format("{:020d}{}", base_offset, ext);
}

bool parse_segment_file_name(std::string_view name, int64_t& base_offset, std::string_view& ext) {
    if (name.size() <= 20) return false;
    int64_t v = 0;
    for (size_t i = 0; i < 20; ++i) {
        char c = name[i];
        if (c < '0' || c > '9') return false;
        if (v > (INT64_MAX - (c - '0')) / 10) return false;
        v = v * 10 + (c - '0');
    }
    if (name[20] != '.') return false;
    base_offset = v;
    ext = name.substr(20);
    return true;
}

void segment::index_batch(const batch_info& b, uint32_t index_interval_bytes, bool may_index) {
    FJORD_ASSERT(indexes_loaded, "indexing segment {} before loading its indexes", base_offset);
    FJORD_ASSERT(b.last_offset >= b.base_offset && b.base_offset >= base_offset &&
                     b.last_offset - base_offset <= INT32_MAX && b.position + b.size <= (uint64_t{1} << 31),
                 "batch [{}, {}] at {} in segment {}", b.base_offset, b.last_offset, b.position, base_offset);
    if (b.max_timestamp > max_timestamp) {
        max_timestamp = b.max_timestamp;
        offset_of_max_timestamp = b.last_offset;
    }
    if (may_index && bytes_since_index_entry > index_interval_bytes) {
        const auto rel = static_cast<int32_t>(b.last_offset - base_offset);
        FJORD_ASSERT(offsets.empty() || (offsets.back().relative_offset < rel &&
                                         static_cast<uint64_t>(offsets.back().position) < b.position),
                     "offset index entry {} at {} after {} at {}", rel, b.position, offsets.back().relative_offset,
                     offsets.back().position);
        offsets.push_back({rel, static_cast<int32_t>(b.position)});
        if (max_timestamp != no_timestamp && (times.empty() || max_timestamp > times.back().timestamp)) {
            times.push_back({max_timestamp, static_cast<int32_t>(offset_of_max_timestamp - base_offset)});
        }
        bytes_since_index_entry = 0;
    }
    bytes_since_index_entry += b.size;
    next_offset = b.last_offset + 1;
}

void segment::seal_time_index() {
    if (max_timestamp != no_timestamp && (times.empty() || max_timestamp > times.back().timestamp)) {
        times.push_back({max_timestamp, static_cast<int32_t>(offset_of_max_timestamp - base_offset)});
    }
}

bool segment::index_full(uint64_t segment_index_bytes) const {
    return (offsets.size() + 1) * offset_index_entry_size > segment_index_bytes ||
           (times.size() + 1) * time_index_entry_size > segment_index_bytes;
}

uint64_t segment::lookup_position(int64_t offset) const {
    FJORD_ASSERT(indexes_loaded, "lookup in segment {} before loading its indexes", base_offset);
    const int64_t rel = offset - base_offset;
    auto it = std::upper_bound(offsets.begin(), offsets.end(), rel,
                               [](int64_t r, const offset_index_entry& e) { return r < e.relative_offset; });
    if (it == offsets.begin()) return 0;
    return static_cast<uint64_t>(std::prev(it)->position);
}

int64_t segment::lookup_timestamp(int64_t ts) const {
    // The last entry below ts: every batch up to its offset has a smaller max.
    auto it = std::lower_bound(times.begin(), times.end(), ts,
                               [](const time_index_entry& e, int64_t t) { return e.timestamp < t; });
    if (it == times.begin()) return base_offset;
    return base_offset + std::prev(it)->relative_offset;
}

uint64_t segment::truncate_indexes(uint64_t position, int64_t offset) {
    while (!offsets.empty() && static_cast<uint64_t>(offsets.back().position) >= position) offsets.pop_back();
    while (!times.empty() && base_offset + times.back().relative_offset >= offset) times.pop_back();
    offsets_on_disk = std::min(offsets_on_disk, offsets.size());
    times_on_disk = std::min(times_on_disk, times.size());
    max_timestamp = times.empty() ? no_timestamp : times.back().timestamp;
    offset_of_max_timestamp = times.empty() ? -1 : base_offset + times.back().relative_offset;
    bytes_since_index_entry = 0;
    return offsets.empty() ? 0 : static_cast<uint64_t>(offsets.back().position);
}

void segment::unload_indexes() {
    indexes_loaded = false;
    std::vector<offset_index_entry>().swap(offsets);
    std::vector<time_index_entry>().swap(times);
    offsets_on_disk = times_on_disk = 0;
}

namespace {
void put32(std::vector<uint8_t>& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
void put64(std::vector<uint8_t>& out, uint64_t v) {
    put32(out, static_cast<uint32_t>(v >> 32));
    put32(out, static_cast<uint32_t>(v));
}
}  // namespace

bool decode_offset_index(std::span<const uint8_t> bytes, uint64_t log_size, std::vector<offset_index_entry>& out) {
    out.clear();
    if (bytes.size() % offset_index_entry_size != 0) return false;
    out.reserve(bytes.size() / offset_index_entry_size);
    for (size_t i = 0; i < bytes.size(); i += offset_index_entry_size) {
        offset_index_entry e{static_cast<int32_t>(load_be<uint32_t>(&bytes[i])),
                             static_cast<int32_t>(load_be<uint32_t>(&bytes[i + 4]))};
        // Kafka's first entry comes after index.interval.bytes: position > 0.
        if (e.relative_offset < 0 || e.position <= 0 || static_cast<uint64_t>(e.position) >= log_size) return false;
        if (!out.empty() && (e.relative_offset <= out.back().relative_offset || e.position <= out.back().position))
            return false;
        out.push_back(e);
    }
    return true;
}

bool decode_time_index(std::span<const uint8_t> bytes, std::vector<time_index_entry>& out) {
    out.clear();
    if (bytes.size() % time_index_entry_size != 0) return false;
    out.reserve(bytes.size() / time_index_entry_size);
    for (size_t i = 0; i < bytes.size(); i += time_index_entry_size) {
        time_index_entry e{static_cast<int64_t>(load_be<uint64_t>(&bytes[i])),
                           static_cast<int32_t>(load_be<uint32_t>(&bytes[i + 8]))};
        if (e.relative_offset < 0 || e.timestamp < 0) return false;
        if (!out.empty() && (e.timestamp <= out.back().timestamp || e.relative_offset < out.back().relative_offset))
            return false;
        out.push_back(e);
    }
    return true;
}

void encode_offset_index(std::span<const offset_index_entry> entries, std::vector<uint8_t>& out) {
    out.clear();
    for (const auto& e : entries) {
        put32(out, static_cast<uint32_t>(e.relative_offset));
        put32(out, static_cast<uint32_t>(e.position));
    }
}

void encode_time_index(std::span<const time_index_entry> entries, std::vector<uint8_t>& out) {
    out.clear();
    for (const auto& e : entries) {
        put64(out, static_cast<uint64_t>(e.timestamp));
        put32(out, static_cast<uint32_t>(e.relative_offset));
    }
}

}  // namespace fjord::storage
