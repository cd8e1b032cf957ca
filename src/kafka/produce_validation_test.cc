// Produce validation against the codes Kafka 4.4 gives (tests/bad_input
// checks the same cases over the wire against the reference broker).
#include "kafka/produce_validation.h"

#include <gtest/gtest.h>

#include "kafka/errors.h"
#include "protocol/crc32c.h"
#include "protocol/record_batch.h"

namespace fjord::kafka {
namespace {
using namespace fjord::protocol;

std::vector<uint8_t> batch(int n, codec c = codec::none, bool keys = true, int64_t ts = -1) {
    batch_options o;
    o.compression = c;
    batch_builder b(o);
    if (ts < 0) ts = 1'700'000'000'000;
    for (int i = 0; i < n; ++i) {
        std::string k = "k" + std::to_string(i), v = "value-" + std::to_string(i);
        auto ks = std::span(reinterpret_cast<const uint8_t*>(k.data()), k.size());
        auto vs = std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size());
        b.add(ts + i, keys ? nullable_bytes(ks) : std::nullopt, vs);
    }
    return b.build().value();
}

void recrc(std::vector<uint8_t>& b) {
    store_be<uint32_t>(b.data() + batch_crc_offset, crc32c(std::span(b).subspan(batch_attributes_offset)));
}

struct produce_validation : ::testing::Test {
    topic_config cfg = [] {
        topic_config c;
        c.timestamp_after_max_ms = INT64_MAX;
        return c;
    }();
    std::vector<uint8_t> scratch;
    produce_check check(std::vector<uint8_t> bytes, int64_t now = 1'700'000'000'000) {
        return validate_produce_records(shared_bytes::adopt(std::move(bytes)), cfg, now, "t-0", scratch);
    }
};

TEST_F(produce_validation, valid_batches_pass_with_every_codec) {
    for (codec c : {codec::none, codec::gzip, codec::snappy, codec::lz4, codec::zstd}) {
        auto r = check(batch(10, c));
        EXPECT_EQ(r.error, 0) << static_cast<int>(c);
        EXPECT_EQ(r.records, 10);
        EXPECT_FALSE(r.rebuilt);
    }
}

TEST_F(produce_validation, structure_errors_match_kafka) {
    auto b = batch(3);
    auto bad_crc = b;
    bad_crc[bad_crc.size() - 1] ^= 1;
    EXPECT_EQ(check(bad_crc).error, error::corrupt_message);
    auto magic1 = b;
    magic1[16] = 1;
    EXPECT_EQ(check(magic1).error, error::invalid_record);
    auto magic3 = b;
    magic3[16] = 3;
    auto m3 = check(magic3);
    EXPECT_EQ(m3.error, error::corrupt_message);
    EXPECT_FALSE(m3.message.empty());
    auto two = b;
    two.insert(two.end(), b.begin(), b.end());
    EXPECT_EQ(check(two).error, error::invalid_record);
    EXPECT_EQ(check({}).error, error::invalid_record);
    auto base = b;
    store_be<int64_t>(base.data(), 5);
    auto rb = check(base);
    EXPECT_EQ(rb.error, error::invalid_record);
    EXPECT_TRUE(rb.reports_log_start);
    auto delta = b;
    store_be<int32_t>(delta.data() + 23, 5);
    recrc(delta);
    EXPECT_EQ(check(delta).error, error::invalid_record);
    auto control = b;
    store_be<uint16_t>(control.data() + batch_attributes_offset, attr::control);
    recrc(control);
    EXPECT_EQ(check(control).error, error::invalid_record);
    auto codec7 = b;
    store_be<uint16_t>(codec7.data() + batch_attributes_offset, 7);
    recrc(codec7);
    EXPECT_EQ(check(codec7).error, error::unknown_server_error);
    // A length field 5 bytes short: one (shorter) batch whose CRC fails.
    auto short_len = b;
    store_be<int32_t>(short_len.data() + batch_length_offset, load_be<int32_t>(b.data() + batch_length_offset) - 5);
    EXPECT_EQ(check(short_len).error, error::corrupt_message);
    // A length field past the data: no whole batch at all.
    auto long_len = b;
    store_be<int32_t>(long_len.data() + batch_length_offset, load_be<int32_t>(b.data() + batch_length_offset) + 100);
    EXPECT_EQ(check(long_len).error, error::invalid_record);
}

TEST_F(produce_validation, size_limit_is_message_too_large) {
    cfg.max_message_bytes = 100;
    EXPECT_EQ(check(batch(20)).error, error::message_too_large);
}

TEST_F(produce_validation, compacted_topics_need_keys_and_name_the_record) {
    cfg.log.compact = true;
    auto r = check(batch(3, codec::lz4, false));
    EXPECT_EQ(r.error, error::invalid_record);
    ASSERT_EQ(r.record_errors.size(), 3u);
    EXPECT_EQ(r.record_errors[1].batch_index, 1);
    EXPECT_NE(r.record_errors[0].message.find("t-0"), std::string::npos);
    EXPECT_EQ(check(batch(3, codec::lz4, true)).error, 0);
}

TEST_F(produce_validation, timestamps_outside_the_window_are_invalid_timestamp) {
    cfg.timestamp_after_max_ms = 3600000;
    cfg.timestamp_before_max_ms = 3600000;
    const int64_t now = 1'700'000'000'000;
    EXPECT_EQ(check(batch(2, codec::none, true, now), now).error, 0);
    auto future = check(batch(2, codec::none, true, now + 2 * 3600000), now);
    EXPECT_EQ(future.error, error::invalid_timestamp);
    EXPECT_EQ(future.record_errors.size(), 2u);
    EXPECT_EQ(check(batch(2, codec::zstd, true, now - 3 * 3600000), now).error, error::invalid_timestamp);
    cfg.log.log_append_time = true;  // the broker's clock replaces them
    EXPECT_EQ(check(batch(2, codec::none, true, now + 2 * 3600000), now).error, 0);
}

TEST_F(produce_validation, compression_type_rebuilds_the_batch_with_the_topic_codec) {
    cfg.compression = compression_policy::zstd;
    auto r = check(batch(50, codec::gzip));
    ASSERT_EQ(r.error, 0);
    ASSERT_TRUE(r.rebuilt);
    auto rebuilt = record_batch::parse(shared_bytes::adopt(*r.rebuilt));
    ASSERT_TRUE(rebuilt.ok());
    EXPECT_EQ(rebuilt->compression(), codec::zstd);
    EXPECT_EQ(rebuilt->record_count(), 50);
    std::vector<uint8_t> s;
    EXPECT_TRUE(rebuilt->validate_all(s).ok());
    cfg.compression = compression_policy::gzip;
    EXPECT_FALSE(check(batch(5, codec::gzip)).rebuilt);  // same codec: kept as sent
}

}  // namespace
}  // namespace fjord::kafka
