#include "protocol/record_batch.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "protocol/crc32c.h"

namespace fjord::protocol {
namespace {

std::span<const uint8_t> b(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string str(std::span<const uint8_t> s) {
    return {reinterpret_cast<const char*>(s.data()), s.size()};
}
std::optional<std::string> str(const nullable_bytes& s) {
    if (!s) return std::nullopt;
    return str(*s);
}

struct test_record {
    int64_t timestamp;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
    friend bool operator==(const test_record&, const test_record&) = default;
};

std::vector<test_record> sample_records(size_t n) {
    std::vector<test_record> out;
    for (size_t i = 0; i < n; ++i) {
        test_record r;
        r.timestamp = 1700000000000 + static_cast<int64_t>(i * 7 % 5);  // not monotonic
        if (i % 5 != 1) r.key = "key-" + std::to_string(i);
        if (i % 7 != 3) r.value = std::string(i * 37 % 2000, static_cast<char>('a' + i % 26));
        if (i % 3 == 0) r.headers.push_back({"trace", "id-" + std::to_string(i)});
        if (i % 6 == 0) r.headers.push_back({"nothing", std::nullopt});
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<uint8_t> build(const std::vector<test_record>& records, batch_options o) {
    batch_builder bb(o);
    for (const auto& r : records) {
        std::vector<header_in> hs;
        for (const auto& [k, v] : r.headers) {
            hs.push_back({k, v ? nullable_bytes(b(*v)) : std::nullopt});
        }
        bb.add(r.timestamp, r.key ? nullable_bytes(b(*r.key)) : std::nullopt,
               r.value ? nullable_bytes(b(*r.value)) : std::nullopt, hs);
    }
    auto out = bb.build();
    EXPECT_TRUE(out.ok());
    return std::move(out).value();
}

std::vector<test_record> read_back(const record_batch& batch, std::vector<uint8_t>& scratch) {
    std::vector<test_record> out;
    auto payload = batch.payload(scratch);
    EXPECT_TRUE(payload.ok());
    if (!payload) return out;
    record_reader rr = batch.records(*payload);
    record_view rv;
    while (rr.next(rv)) {
        test_record r;
        r.timestamp = batch.timestamp_of(rv);
        r.key = str(rv.key);
        r.value = str(rv.value);
        header_reader hr = rv.headers();
        header_view h;
        while (hr.next(h)) r.headers.push_back({std::string(h.key), str(h.value)});
        out.push_back(std::move(r));
    }
    EXPECT_TRUE(rr.ok()) << describe(rr.error());
    return out;
}

// A batch with the given payload and header fields, CRC set: for malformed records.
std::vector<uint8_t> raw_batch(const std::vector<uint8_t>& payload, int32_t count, int32_t last_delta,
                               uint16_t attributes = 0) {
    batch_builder bb;
    auto out = bb.build().value();  // an empty batch: a header to patch
    out.insert(out.end(), payload.begin(), payload.end());
    auto put32 = [&](size_t at, uint32_t v) {
        for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
    };
    put32(8, static_cast<uint32_t>(out.size() - 12));
    out[21] = static_cast<uint8_t>(attributes >> 8);
    out[22] = static_cast<uint8_t>(attributes);
    put32(23, static_cast<uint32_t>(last_delta));
    put32(57, static_cast<uint32_t>(count));
    put32(17, crc32c(std::span<const uint8_t>(out).subspan(21)));
    return out;
}

record_batch parsed(const std::vector<uint8_t>& bytes) {
    auto r = record_batch::parse(shared_bytes::copy_of(bytes));
    EXPECT_TRUE(r.ok()) << describe(r.error());
    return std::move(r).value();
}

batch_errc validate_error(const std::vector<uint8_t>& bytes, validate_options o = {}) {
    auto p = record_batch::parse(shared_bytes::copy_of(bytes));
    if (!p) return p.error();
    std::vector<uint8_t> scratch;
    auto v = p->validate_all(scratch, default_max_decompressed_bytes, o);
    EXPECT_FALSE(v.ok());
    return v.ok() ? batch_errc{} : v.error();
}

constexpr codec all_codecs[] = {codec::none, codec::gzip, codec::snappy, codec::lz4, codec::zstd};

TEST(record_batch, build_parse_validate_iterate_every_codec) {
    auto records = sample_records(50);
    for (codec c : all_codecs) {
        batch_options o;
        o.compression = c;
        o.base_offset = 1000;
        o.partition_leader_epoch = 7;
        o.producer_id = 42;
        o.producer_epoch = 3;
        o.base_sequence = 17;
        o.transactional = true;
        auto bytes = build(records, o);
        auto batch = parsed(bytes);
        std::vector<uint8_t> scratch;
        auto v = batch.validate_all(scratch);
        ASSERT_TRUE(v.ok()) << codec_name(c) << ": " << describe(v.error());
        EXPECT_EQ(batch.compression(), c);
        EXPECT_EQ(batch.magic(), 2);
        EXPECT_EQ(batch.base_offset(), 1000);
        EXPECT_EQ(batch.batch_length(), static_cast<int32_t>(bytes.size() - 12));
        EXPECT_EQ(batch.partition_leader_epoch(), 7);
        EXPECT_EQ(batch.producer_id(), 42);
        EXPECT_EQ(batch.producer_epoch(), 3);
        EXPECT_EQ(batch.base_sequence(), 17);
        EXPECT_TRUE(batch.is_transactional());
        EXPECT_FALSE(batch.is_control());
        EXPECT_EQ(batch.ts_type(), timestamp_type::create_time);
        EXPECT_EQ(batch.record_count(), 50);
        EXPECT_EQ(batch.last_offset_delta(), 49);
        EXPECT_EQ(batch.last_offset(), 1049);
        EXPECT_EQ(batch.base_timestamp(), records[0].timestamp);
        EXPECT_EQ(batch.max_timestamp(), 1700000000004);
        EXPECT_EQ(read_back(batch, scratch), records) << codec_name(c);
        if (c != codec::none) {
            EXPECT_LT(bytes.size(), 50 * 1000u) << codec_name(c);
        }
    }
}

TEST(record_batch, offsets_of_records) {
    auto batch = parsed(build(sample_records(5), {.base_offset = 100}));
    record_reader rr = batch.records(batch.records_bytes());
    record_view rv;
    int64_t expected = 100;
    while (rr.next(rv)) EXPECT_EQ(batch.offset_of(rv), expected++);
    EXPECT_TRUE(rr.ok());
    EXPECT_EQ(expected, 105);
}

TEST(record_batch, flipped_byte_fails_crc) {
    for (codec c : {codec::none, codec::zstd}) {
        auto bytes = build(sample_records(10), {.compression = c});
        ASSERT_TRUE(parsed(bytes).validate().ok());
        for (size_t i = batch_attributes_offset; i < bytes.size(); i += 13) {
            auto f = bytes;
            f[i] ^= 0x01;
            auto p = record_batch::parse(shared_bytes::copy_of(f));
            if (!p) continue;  // e.g. the codec bits became unknown
            auto v = p->validate();
            ASSERT_FALSE(v.ok()) << "byte " << i;
            EXPECT_EQ(v.error(), batch_errc::crc_mismatch) << "byte " << i;
        }
        // The CRC field itself.
        auto f = bytes;
        f[batch_crc_offset + 2] ^= 0x80;
        EXPECT_EQ(parsed(f).validate().error(), batch_errc::crc_mismatch);
    }
}

TEST(record_batch, header_errors) {
    auto bytes = build(sample_records(3), {});
    // Truncated anywhere: too_short (or bad magic below the magic byte).
    for (size_t n = 0; n < bytes.size(); ++n) {
        auto t = std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(n));
        auto p = record_batch::parse(shared_bytes::copy_of(t));
        ASSERT_FALSE(p.ok()) << n;
        EXPECT_EQ(p.error(), batch_errc::too_short) << n;
    }
    auto magic = bytes;
    magic[16] = 1;
    EXPECT_EQ(record_batch::parse(shared_bytes::copy_of(magic)).error(), batch_errc::bad_magic);
    auto longer = bytes;
    longer.push_back(0);
    EXPECT_EQ(record_batch::parse(shared_bytes::copy_of(longer)).error(), batch_errc::length_mismatch);
    auto tiny_length = bytes;
    tiny_length[8] = tiny_length[9] = tiny_length[10] = 0;
    tiny_length[11] = 10;
    EXPECT_EQ(record_batch::parse(shared_bytes::copy_of(tiny_length)).error(), batch_errc::length_mismatch);
    auto codec_bits = raw_batch({}, 0, 0, 6);
    EXPECT_EQ(record_batch::parse(shared_bytes::copy_of(codec_bits)).error(), batch_errc::unknown_codec);
}

// Encodes one record by hand so tests can break it.
std::vector<uint8_t> record_bytes(std::vector<uint8_t> body) {
    std::vector<uint8_t> out;
    uint32_t z = static_cast<uint32_t>(body.size()) << 1;
    while (z >= 0x80) {
        out.push_back(static_cast<uint8_t>(z | 0x80));
        z >>= 7;
    }
    out.push_back(static_cast<uint8_t>(z));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}
// attributes 0, ts delta 0, offset delta `delta`, key null, value "v", no headers.
std::vector<uint8_t> good_record(uint8_t delta = 0) {
    return record_bytes({0, 0, uint8_t(delta * 2), 1, 2, 'v', 0});
}

TEST(record_batch, record_errors) {
    EXPECT_TRUE(parsed(raw_batch(good_record(), 1, 0)).validate().ok());

    // Record count disagrees with last offset delta / the records present.
    EXPECT_EQ(validate_error(raw_batch(good_record(), 2, 0)), batch_errc::bad_record_count);
    EXPECT_EQ(validate_error(raw_batch(good_record(), 2, 1)), batch_errc::records_truncated);
    EXPECT_EQ(validate_error(raw_batch(good_record(), 0, -1)), batch_errc::bad_record_count);
    EXPECT_EQ(validate_error(raw_batch(good_record(), -1, 0)), batch_errc::bad_record_count);
    auto two = good_record(0);
    auto second = good_record(1);
    two.insert(two.end(), second.begin(), second.end());
    EXPECT_EQ(validate_error(raw_batch(two, 1, 0)), batch_errc::trailing_bytes);
    EXPECT_TRUE(parsed(raw_batch(two, 2, 1)).validate().ok());

    // Offset deltas out of order.
    auto swapped = good_record(1);
    auto first = good_record(0);
    swapped.insert(swapped.end(), first.begin(), first.end());
    EXPECT_EQ(validate_error(raw_batch(swapped, 2, 1)), batch_errc::bad_offset_delta);

    // Over-long varint (6 bytes for an int32) in the timestamp-delta position of offsetDelta.
    EXPECT_EQ(validate_error(raw_batch(record_bytes({0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 1, 1, 0}), 1, 0)),
              batch_errc::invalid_varint);
    // Over-long record length varint.
    EXPECT_EQ(validate_error(raw_batch({0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, 0)), batch_errc::invalid_varint);

    // Record length larger than its fields, smaller than its fields, negative.
    auto longer = record_bytes({0, 0, 0, 1, 2, 'v', 0, 0});
    EXPECT_EQ(validate_error(raw_batch(longer, 1, 0)), batch_errc::record_length_mismatch);
    auto shorter = record_bytes({0, 0, 0, 1, 2, 'v'});
    EXPECT_EQ(validate_error(raw_batch(shorter, 1, 0)), batch_errc::record_length_mismatch);
    EXPECT_EQ(validate_error(raw_batch({0x01, 0, 0, 0, 1, 1, 0}, 1, 0)), batch_errc::record_length_mismatch);
    // Record length past the end of the batch.
    EXPECT_EQ(validate_error(raw_batch({0x40, 0, 0, 0}, 1, 0)), batch_errc::records_truncated);

    // Key length -2; value length past the record; negative header count;
    // null header key.
    EXPECT_EQ(validate_error(raw_batch(record_bytes({0, 0, 0, 3, 2, 'v', 0}), 1, 0)), batch_errc::bad_record_field);
    EXPECT_EQ(validate_error(raw_batch(record_bytes({0, 0, 0, 1, 20, 'v', 0}), 1, 0)),
              batch_errc::record_length_mismatch);
    EXPECT_EQ(validate_error(raw_batch(record_bytes({0, 0, 0, 1, 2, 'v', 1}), 1, 0)), batch_errc::bad_record_field);
    EXPECT_EQ(validate_error(raw_batch(record_bytes({0, 0, 0, 1, 2, 'v', 2, 1, 1}), 1, 0)),
              batch_errc::bad_record_field);
}

TEST(record_batch, compacted_offsets_need_relaxed_validation) {
    // Deltas 0, 2, 5 with last_offset_delta 5: what compaction leaves.
    std::vector<uint8_t> payload;
    for (uint8_t d : {0, 2, 5}) {
        auto r = good_record(d);
        payload.insert(payload.end(), r.begin(), r.end());
    }
    auto bytes = raw_batch(payload, 3, 5);
    EXPECT_EQ(validate_error(bytes), batch_errc::bad_record_count);
    EXPECT_TRUE(parsed(bytes).validate({.dense_offsets = false}).ok());
    EXPECT_EQ(validate_error(raw_batch(payload, 3, 4), {.dense_offsets = false}), batch_errc::bad_offset_delta);
    EXPECT_TRUE(parsed(raw_batch({}, 0, 5)).validate({.dense_offsets = false}).ok());
}

TEST(record_batch, compressed_payload_errors) {
    auto bytes = build(sample_records(30), {.compression = codec::zstd});
    auto batch = parsed(bytes);
    std::vector<uint8_t> scratch;
    EXPECT_EQ(batch.payload(scratch, 100).error(), batch_errc::decompressed_too_large);
    EXPECT_EQ(batch.validate_all(scratch, 100).error(), batch_errc::decompressed_too_large);
    // Garbage as a "zstd" payload, with a correct CRC.
    EXPECT_EQ(validate_error(raw_batch({1, 2, 3, 4, 5, 6, 7, 8}, 1, 0, uint16_t(codec::zstd))),
              batch_errc::decompression_failed);
    // A compressed payload holding fewer records than the count claims.
    auto payload = compress(codec::lz4, good_record()).value();
    EXPECT_EQ(validate_error(raw_batch(payload, 2, 1, uint16_t(codec::lz4))), batch_errc::records_truncated);
}

TEST(record_batch, splitter_walks_batches_and_stops_at_a_truncated_tail) {
    std::vector<uint8_t> all;
    std::vector<size_t> sizes;
    for (codec c : all_codecs) {
        auto one = build(sample_records(8), {.compression = c, .base_offset = int64_t(sizes.size() * 8)});
        sizes.push_back(one.size());
        all.insert(all.end(), one.begin(), one.end());
    }
    batch_splitter whole(shared_bytes::copy_of(all));
    size_t n = 0;
    while (auto batch = whole.next()) {
        EXPECT_EQ(batch->size(), sizes[n]);
        EXPECT_EQ(batch->base_offset(), static_cast<int64_t>(n * 8));
        std::vector<uint8_t> scratch;
        EXPECT_TRUE(batch->validate_all(scratch).ok());
        ++n;
    }
    EXPECT_EQ(n, 5u);
    EXPECT_TRUE(whole.clean_end());
    EXPECT_FALSE(whole.truncated_tail());

    // Cut into the last batch at several points, including inside its header.
    for (size_t cut : {size_t{1}, size_t{5}, size_t{12}, size_t{40}, sizes.back() - 1}) {
        auto t = std::vector<uint8_t>(all.begin(), all.end() - static_cast<long>(cut));
        batch_splitter s(shared_bytes::copy_of(t));
        size_t m = 0;
        while (s.next()) ++m;
        EXPECT_EQ(m, 4u) << cut;
        EXPECT_TRUE(s.truncated_tail()) << cut;
        EXPECT_FALSE(s.error().has_value()) << cut;
        EXPECT_FALSE(s.clean_end()) << cut;
        EXPECT_EQ(s.consumed(), all.size() - sizes.back()) << cut;
    }

    // A corrupt header stops the walk with an error.
    auto bad = all;
    bad[sizes[0] + 16] = 0x63;
    batch_splitter s(shared_bytes::copy_of(bad));
    size_t m = 0;
    while (s.next()) ++m;
    EXPECT_EQ(m, 1u);
    EXPECT_EQ(s.error(), batch_errc::bad_magic);

    batch_splitter empty(shared_bytes{});
    EXPECT_FALSE(empty.next().has_value());
    EXPECT_TRUE(empty.clean_end());
}

TEST(record_batch, control_records) {
    auto bytes = build_end_txn_marker(77, 2, control_type::commit, 9, 1700000000000);
    auto batch = parsed(bytes);
    ASSERT_TRUE(batch.validate().ok());
    EXPECT_TRUE(batch.is_control());
    EXPECT_TRUE(batch.is_transactional());
    EXPECT_EQ(batch.producer_id(), 77);
    EXPECT_EQ(batch.producer_epoch(), 2);
    record_reader rr = batch.records(batch.records_bytes());
    record_view rv;
    ASSERT_TRUE(rr.next(rv));
    auto c = parse_control_record(rv);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->version, 0);
    EXPECT_EQ(c->type, control_type::commit);
    ASSERT_TRUE(rv.value.has_value());
    EXPECT_EQ(rv.value->size(), 6u);
    EXPECT_EQ((*rv.value)[5], 9);  // coordinator epoch
    EXPECT_FALSE(rr.next(rv));
    EXPECT_TRUE(rr.ok());

    auto abort = parsed(build_end_txn_marker(77, 2, control_type::abort, 9, 0));
    rr = abort.records(abort.records_bytes());
    ASSERT_TRUE(rr.next(rv));
    EXPECT_EQ(parse_control_record(rv)->type, control_type::abort);

    record_view no_key;
    EXPECT_EQ(parse_control_record(no_key).error(), batch_errc::bad_control_record);
}

TEST(record_batch, broker_field_rewrites_keep_the_crc_valid) {
    for (codec c : {codec::none, codec::snappy}) {
        auto bytes = build(sample_records(10), {.compression = c});
        const uint32_t crc_before = parsed(bytes).crc();
        set_base_offset(bytes, 5000);
        set_partition_leader_epoch(bytes, 12);
        {
            auto batch = parsed(bytes);
            EXPECT_EQ(batch.crc(), crc_before);  // outside the CRC
            std::vector<uint8_t> scratch;
            EXPECT_TRUE(batch.validate_all(scratch).ok());
            EXPECT_EQ(batch.base_offset(), 5000);
            EXPECT_EQ(batch.partition_leader_epoch(), 12);
        }
        const int64_t now = 1800000000000;
        set_log_append_time(bytes, now);
        auto batch = parsed(bytes);
        std::vector<uint8_t> scratch;
        auto v = batch.validate_all(scratch);
        ASSERT_TRUE(v.ok()) << describe(v.error());
        EXPECT_NE(batch.crc(), crc_before);
        EXPECT_EQ(batch.ts_type(), timestamp_type::log_append_time);
        EXPECT_EQ(batch.max_timestamp(), now);
        EXPECT_EQ(batch.compression(), c);
        for (const auto& r : read_back(batch, scratch)) EXPECT_EQ(r.timestamp, now);
    }
}

TEST(record_batch, builder_reset_and_reuse) {
    batch_builder bb({.compression = codec::gzip});
    bb.add(1, b("k"), b("v"));
    auto first = bb.build().value();
    bb.reset({.compression = codec::lz4});
    EXPECT_EQ(bb.record_count(), 0);
    bb.add(2, std::nullopt, b("w"));
    bb.add(3, std::nullopt, std::nullopt);
    auto batch = parsed(bb.build().value());
    std::vector<uint8_t> scratch;
    ASSERT_TRUE(batch.validate_all(scratch).ok());
    EXPECT_EQ(batch.compression(), codec::lz4);
    auto records = read_back(batch, scratch);
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[1].timestamp, 3);
    EXPECT_FALSE(records[1].value.has_value());
}

}  // namespace
}  // namespace fjord::protocol
