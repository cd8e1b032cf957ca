// Kafka record batches, magic 2 (the only format Kafka 4 reads and writes).
//
//   offset  field                  size
//   0       base_offset            int64    \ broker-owned, outside the CRC
//   8       batch_length           int32    | (bytes after this field)
//   12      partition_leader_epoch int32    /
//   16      magic                  int8     (2)
//   17      crc                    uint32   CRC32C of bytes 21..end
//   21      attributes             int16    codec bits 0-2, timestamp type 3,
//                                           transactional 4, control 5,
//                                           delete horizon 6
//   23      last_offset_delta      int32
//   27      base_timestamp         int64
//   35      max_timestamp          int64
//   43      producer_id            int64
//   51      producer_epoch         int16
//   53      base_sequence          int32
//   57      record_count           int32
//   61      records (compressed as a whole when the codec is not none)
//
// record: length varint, attributes int8, timestamp_delta varlong,
// offset_delta varint, key (varint length, -1 null), value (likewise),
// header count varint, headers (key: varint length >= 0; value: -1 null).
//
// Everything here is a view: record_batch holds a shared_bytes slice of the
// client's (or the segment's) buffer; batch_splitter walks a records field
// without copying; record_reader yields spans into the (decompressed)
// payload. Nothing allocates per record. All parsing treats the bytes as
// untrusted: failures are batch_errc values, never assertions.
// Values of these types are single-threaded; the bytes they view are
// immutable and may be shared across threads.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/endian.h"
#include "base/result.h"
#include "protocol/compression.h"

namespace fjord::protocol {

enum class batch_errc : uint8_t {
    too_short = 1,           // fewer bytes than a batch header, or than batch_length says
    bad_magic,               // magic is not 2
    length_mismatch,         // batch_length disagrees with the bytes given
    crc_mismatch,            // CRC32C over attributes..end differs from the crc field
    unknown_codec,           // attribute codec bits 5-7
    bad_record_count,        // count < 0, or inconsistent with last_offset_delta
    bad_offset_delta,        // a record's offset delta out of order or range
    invalid_varint,          // a varint longer than 5 (varlong 10) bytes
    records_truncated,       // fewer records than record_count in the payload
    record_length_mismatch,  // a record's fields do not fill exactly its length
    bad_record_field,        // negative length other than -1, null header key, ...
    trailing_bytes,          // bytes after the last record
    decompression_failed,    // the payload does not decompress (see compression_errc)
    decompressed_too_large,  // the payload decompresses beyond the caller's limit
    bad_control_record,      // a control record without a valid key
};
const char* describe(batch_errc e);

enum class timestamp_type : uint8_t { create_time = 0, log_append_time = 1 };

inline constexpr size_t batch_header_size = 61;
inline constexpr size_t batch_length_offset = 8;
inline constexpr size_t batch_crc_offset = 17;
inline constexpr size_t batch_attributes_offset = 21;
inline constexpr size_t batch_max_timestamp_offset = 35;
inline constexpr size_t batch_records_offset = 61;
// Bytes before the part batch_length counts.
inline constexpr size_t batch_log_overhead = 12;

namespace attr {
inline constexpr uint16_t codec_mask = 0x07;
inline constexpr uint16_t timestamp_type = 0x08;
inline constexpr uint16_t transactional = 0x10;
inline constexpr uint16_t control = 0x20;
inline constexpr uint16_t delete_horizon = 0x40;
}  // namespace attr

// A nullable byte string inside a record: key, value, header value.
using nullable_bytes = std::optional<std::span<const uint8_t>>;

struct header_view {
    std::string_view key;
    nullable_bytes value;
};

// Iterates a record's headers (already checked when the record was read).
class header_reader {
public:
    header_reader() = default;
    header_reader(std::span<const uint8_t> bytes, int32_t count) : bytes_(bytes), left_(count) {}
    // False at the end (or, defensively, on malformed bytes).
    bool next(header_view& out);
    int32_t remaining() const { return left_; }

private:
    std::span<const uint8_t> bytes_;
    int32_t left_ = 0;
};

struct record_view {
    int8_t attributes = 0;
    int64_t timestamp_delta = 0;
    int32_t offset_delta = 0;
    nullable_bytes key;
    nullable_bytes value;
    int32_t header_count = 0;
    std::span<const uint8_t> header_bytes;  // the encoded headers
    std::span<const uint8_t> encoded;       // the whole record, length prefix included

    header_reader headers() const { return header_reader(header_bytes, header_count); }
};

// Reads `count` records from a batch payload (uncompressed bytes). next()
// returns false at the end or on the first error; check ok() afterwards:
// ok() also checks the payload held exactly `count` records.
class record_reader {
public:
    record_reader(std::span<const uint8_t> payload, int32_t count) : p_(payload), left_(count) {}
    bool next(record_view& out);
    bool ok() const { return !error_; }
    batch_errc error() const { return *error_; }
    // Records not yet read.
    int32_t remaining() const { return left_; }

private:
    bool fail(batch_errc e) {
        if (!error_) error_ = e;
        left_ = 0;
        return false;
    }
    std::span<const uint8_t> p_;
    int32_t left_;
    std::optional<batch_errc> error_;
};

struct validate_options {
    // Producer input: record_count > 0, record_count == last_offset_delta + 1
    // and record i has offset delta i (Kafka's checks on produce). Off for
    // segment bytes, where compaction leaves gaps: then deltas only have to
    // increase and stay within [0, last_offset_delta].
    bool dense_offsets = true;
};

class record_batch {
public:
    // Checks the header: length, magic, batch_length == size - 12, codec.
    // Does not check the CRC or the records: see validate().
    static result<record_batch, batch_errc> parse(shared_bytes batch);

    const shared_bytes& bytes() const { return bytes_; }
    size_t size() const { return bytes_.size(); }

    int64_t base_offset() const { return load<int64_t>(0); }
    int32_t batch_length() const { return load<int32_t>(8); }
    int32_t partition_leader_epoch() const { return load<int32_t>(12); }
    int8_t magic() const { return static_cast<int8_t>(bytes_.data()[16]); }
    uint32_t crc() const { return load<uint32_t>(17); }
    uint16_t attributes() const { return load<uint16_t>(21); }
    int32_t last_offset_delta() const { return load<int32_t>(23); }
    int64_t base_timestamp() const { return load<int64_t>(27); }
    int64_t max_timestamp() const { return load<int64_t>(35); }
    int64_t producer_id() const { return load<int64_t>(43); }
    int16_t producer_epoch() const { return load<int16_t>(51); }
    int32_t base_sequence() const { return load<int32_t>(53); }
    int32_t record_count() const { return load<int32_t>(57); }

    codec compression() const { return static_cast<codec>(attributes() & attr::codec_mask); }
    timestamp_type ts_type() const {
        return (attributes() & attr::timestamp_type) ? timestamp_type::log_append_time : timestamp_type::create_time;
    }
    bool is_transactional() const { return attributes() & attr::transactional; }
    bool is_control() const { return attributes() & attr::control; }
    bool has_delete_horizon() const { return attributes() & attr::delete_horizon; }
    // Sums of untrusted fields wrap (as Java's long arithmetic does) rather
    // than overflow; the broker's own checks reject such batches.
    int64_t last_offset() const { return wrapping_add(base_offset(), last_offset_delta()); }

    // The records region as stored (compressed unless codec none).
    std::span<const uint8_t> records_bytes() const { return bytes_.span().subspan(batch_records_offset); }
    // CRC32C over attributes..end, compared to the crc field.
    uint32_t compute_crc() const;
    bool crc_ok() const { return compute_crc() == crc(); }

    // Header consistency and CRC; for uncompressed batches also every record.
    // Compressed batches: call validate_records() on payload() as well (or
    // use validate_all()).
    result<void, batch_errc> validate(const validate_options& opts = {}) const;
    // Checks every record of an uncompressed payload against this header.
    result<void, batch_errc> validate_records(std::span<const uint8_t> payload,
                                              const validate_options& opts = {}) const;
    // validate() + payload() + validate_records().
    result<void, batch_errc> validate_all(std::vector<uint8_t>& scratch,
                                          size_t max_decompressed_bytes = default_max_decompressed_bytes,
                                          const validate_options& opts = {}) const;

    // The uncompressed records: a view of the batch for codec none, else
    // decompressed into `scratch` (reused; no allocation once it is large
    // enough) and valid until scratch changes.
    result<std::span<const uint8_t>, batch_errc> payload(
        std::vector<uint8_t>& scratch, size_t max_decompressed_bytes = default_max_decompressed_bytes) const;

    record_reader records(std::span<const uint8_t> payload) const { return record_reader(payload, record_count()); }

    // Absolute offset and timestamp of a record of this batch.
    int64_t offset_of(const record_view& r) const { return wrapping_add(base_offset(), r.offset_delta); }
    int64_t timestamp_of(const record_view& r) const {
        return ts_type() == timestamp_type::log_append_time ? max_timestamp()
                                                            : wrapping_add(base_timestamp(), r.timestamp_delta);
    }

private:
    static int64_t wrapping_add(int64_t a, int64_t b) {
        return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
    }
    explicit record_batch(shared_bytes b) : bytes_(std::move(b)) {}
    template <typename T>
    T load(size_t at) const {
        return load_be<T>(bytes_.data() + at);
    }

    shared_bytes bytes_;
};

// Walks concatenated batches (a Produce/Fetch records field, a segment
// file) without copying. next() yields each whole batch (header-checked by
// record_batch::parse) and stops at the end, at a truncated tail (fewer bytes
// than the next batch claims: normal at the end of a fetch response or of a
// segment being written), or at a corrupt header.
class batch_splitter {
public:
    explicit batch_splitter(shared_bytes records) : bytes_(std::move(records)) {}

    std::optional<record_batch> next();

    // Bytes of whole batches returned so far.
    size_t consumed() const { return pos_; }
    // After next() returned nullopt: true if bytes remained that did not form
    // a whole batch.
    bool truncated_tail() const { return truncated_; }
    // After next() returned nullopt: the error if a header was corrupt.
    std::optional<batch_errc> error() const { return error_; }
    // Everything consumed, nothing corrupt, no partial tail.
    bool clean_end() const { return pos_ == bytes_.size() && !error_; }

private:
    shared_bytes bytes_;
    size_t pos_ = 0;
    bool truncated_ = false;
    std::optional<batch_errc> error_;
};

// ---------------------------------------------------------------------------
// Control records (control batches: transaction markers and KRaft records).

enum class control_type : int16_t {
    abort = 0,
    commit = 1,
    leader_change = 2,
    snapshot_header = 3,
    snapshot_footer = 4,
    kraft_version = 5,
    kraft_voters = 6,
};

struct control_record {
    int16_t version = 0;
    control_type type = control_type::abort;  // may hold a value not named above
};

// Decodes a control record's key: int16 version, int16 type.
result<control_record, batch_errc> parse_control_record(const record_view& r);

// ---------------------------------------------------------------------------
// Building batches (producers in tests, markers, recompression, compaction).

struct header_in {
    std::string_view key;
    nullable_bytes value;
};

struct batch_options {
    codec compression = codec::none;
    std::optional<int> level{};
    int64_t base_offset = 0;
    int32_t partition_leader_epoch = -1;
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    int32_t base_sequence = -1;
    bool transactional = false;
    bool control = false;
    timestamp_type ts_type = timestamp_type::create_time;
};

// Accumulates records into one buffer and writes one batch. The first
// record's timestamp is the base timestamp; offset deltas are 0, 1, 2, ...
// Reusable: reset() keeps the buffers' capacity.
class batch_builder {
public:
    explicit batch_builder(batch_options opts = {}) : opts_(opts) {}

    void add(int64_t timestamp_ms, nullable_bytes key, nullable_bytes value, std::span<const header_in> headers = {});
    int32_t record_count() const { return count_; }
    size_t payload_size() const { return payload_.size(); }

    // The whole batch, CRC set. Fails only if compression fails.
    result<std::vector<uint8_t>, compression_errc> build() const;
    void reset(batch_options opts);

private:
    batch_options opts_;
    std::vector<uint8_t> payload_;
    int32_t count_ = 0;
    int64_t base_timestamp_ = -1;
    int64_t max_timestamp_ = -1;
};

// A control batch holding one end-transaction marker (abort or commit).
std::vector<uint8_t> build_end_txn_marker(int64_t producer_id, int16_t producer_epoch, control_type type,
                                          int32_t coordinator_epoch, int64_t timestamp_ms,
                                          int32_t partition_leader_epoch = -1);

// ---------------------------------------------------------------------------
// Broker-owned fields, rewritten in place on a batch the broker owns (one
// that passed parse()). base offset and leader epoch lie outside the CRC;
// the LogAppendTime rewrite changes attributes and max timestamp inside it,
// so it recomputes the CRC (over the whole batch: one pass, no allocation).
// Callers must hold the only reference to the bytes.

void set_base_offset(std::span<uint8_t> batch, int64_t base_offset);
void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch);
// Sets timestamp type LogAppendTime and max_timestamp = now_ms, then the CRC.
void set_log_append_time(std::span<uint8_t> batch, int64_t now_ms);

}  // namespace fjord::protocol
