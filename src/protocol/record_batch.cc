#include "protocol/record_batch.h"

#include <algorithm>

#include "base/assert.h"
#include "protocol/crc32c.h"
#include "protocol/varint.h"

namespace fjord::protocol {

const char* describe(batch_errc e) {
    switch (e) {
        case batch_errc::too_short: return "record batch shorter than its header or its length";
        case batch_errc::bad_magic: return "record batch magic is not 2";
        case batch_errc::length_mismatch: return "record batch length disagrees with its bytes";
        case batch_errc::crc_mismatch: return "record batch CRC mismatch";
        case batch_errc::unknown_codec: return "record batch compression codec unknown";
        case batch_errc::bad_record_count: return "record count inconsistent with last offset delta";
        case batch_errc::bad_offset_delta: return "record offset delta out of order";
        case batch_errc::invalid_varint: return "varint too long";
        case batch_errc::records_truncated: return "fewer records than the record count";
        case batch_errc::record_length_mismatch: return "record fields do not match its length";
        case batch_errc::bad_record_field: return "invalid record field length";
        case batch_errc::trailing_bytes: return "bytes after the last record";
        case batch_errc::decompression_failed: return "record batch does not decompress";
        case batch_errc::decompressed_too_large: return "record batch decompresses beyond the limit";
        case batch_errc::bad_control_record: return "invalid control record";
    }
    return "unknown record batch error";
}

namespace {

// A bounds-checked cursor over untrusted bytes. Reads fail (return false)
// rather than run past the end; `overlong` tells a too-long varint from a
// truncated one.
struct cursor {
    const uint8_t* p;
    const uint8_t* end;
    bool overlong = false;

    explicit cursor(std::span<const uint8_t> s) : p(s.data()), end(s.data() + s.size()) {}
    size_t left() const { return static_cast<size_t>(end - p); }

    bool u8(uint8_t& v) {
        if (p == end) return false;
        v = *p++;
        return true;
    }
    template <int MaxBytes, typename U>
    bool uvar(U& out) {
        U v = 0;
        for (int i = 0; i < MaxBytes; ++i) {
            if (p == end) return false;
            uint8_t b = *p++;
            v |= static_cast<U>(b & 0x7f) << (7 * i);
            if ((b & 0x80) == 0) {
                out = v;
                return true;
            }
        }
        overlong = true;
        return false;
    }
    bool varint(int32_t& out) {
        uint32_t v;
        if (!uvar<5>(v)) return false;
        out = static_cast<int32_t>((v >> 1) ^ (~(v & 1) + 1));
        return true;
    }
    bool varlong(int64_t& out) {
        uint64_t v;
        if (!uvar<10>(v)) return false;
        out = static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
        return true;
    }
    // A varint length then that many bytes; -1 is null.
    enum class field { ok, truncated, overlong, negative };
    field nullable(nullable_bytes& out, bool allow_null) {
        int32_t n;
        if (!varint(n)) return overlong ? field::overlong : field::truncated;
        if (n < 0) {
            if (n == -1 && allow_null) {
                out.reset();
                return field::ok;
            }
            return field::negative;
        }
        if (static_cast<size_t>(n) > left()) return field::truncated;
        out = std::span<const uint8_t>(p, static_cast<size_t>(n));
        p += n;
        return field::ok;
    }
};

}  // namespace

// ---------------------------------------------------------------------------

bool header_reader::next(header_view& out) {
    if (left_ <= 0) return false;
    cursor c(bytes_);
    nullable_bytes key;
    if (c.nullable(key, false) != cursor::field::ok || c.nullable(out.value, true) != cursor::field::ok) {
        left_ = 0;
        return false;
    }
    out.key = std::string_view(reinterpret_cast<const char*>(key->data()), key->size());
    bytes_ = bytes_.subspan(static_cast<size_t>(c.p - bytes_.data()));
    --left_;
    return true;
}

bool record_reader::next(record_view& out) {
    if (error_) return false;
    if (left_ < 0) return fail(batch_errc::bad_record_count);
    if (left_ == 0) {
        if (!p_.empty()) return fail(batch_errc::trailing_bytes);
        return false;
    }
    cursor c(p_);
    int32_t length;
    if (!c.varint(length)) return fail(c.overlong ? batch_errc::invalid_varint : batch_errc::records_truncated);
    if (length < 0) return fail(batch_errc::record_length_mismatch);
    if (static_cast<size_t>(length) > c.left()) return fail(batch_errc::records_truncated);
    const uint8_t* record_start = p_.data();
    const uint8_t* body_end = c.p + length;
    cursor b(std::span<const uint8_t>(c.p, static_cast<size_t>(length)));

    auto field_error = [&](cursor::field f) {
        switch (f) {
            case cursor::field::overlong: return fail(batch_errc::invalid_varint);
            case cursor::field::negative: return fail(batch_errc::bad_record_field);
            default: return fail(batch_errc::record_length_mismatch);
        }
    };
    auto scalar_error = [&]() {
        return fail(b.overlong ? batch_errc::invalid_varint : batch_errc::record_length_mismatch);
    };

    uint8_t attributes;
    if (!b.u8(attributes)) return scalar_error();
    out.attributes = static_cast<int8_t>(attributes);
    if (!b.varlong(out.timestamp_delta) || !b.varint(out.offset_delta)) return scalar_error();
    if (auto f = b.nullable(out.key, true); f != cursor::field::ok) return field_error(f);
    if (auto f = b.nullable(out.value, true); f != cursor::field::ok) return field_error(f);
    int32_t header_count;
    if (!b.varint(header_count)) return scalar_error();
    if (header_count < 0) return fail(batch_errc::bad_record_field);
    const uint8_t* headers_start = b.p;
    // Each header takes at least two bytes, so this loop ends within the record.
    for (int32_t i = 0; i < header_count; ++i) {
        nullable_bytes k, v;
        if (auto f = b.nullable(k, false); f != cursor::field::ok) return field_error(f);
        if (auto f = b.nullable(v, true); f != cursor::field::ok) return field_error(f);
    }
    if (b.p != body_end) return fail(batch_errc::record_length_mismatch);
    out.header_count = header_count;
    out.header_bytes = std::span<const uint8_t>(headers_start, static_cast<size_t>(body_end - headers_start));
    out.encoded = std::span<const uint8_t>(record_start, static_cast<size_t>(body_end - record_start));
    p_ = p_.subspan(static_cast<size_t>(body_end - p_.data()));
    --left_;
    return true;
}

// ---------------------------------------------------------------------------

result<record_batch, batch_errc> record_batch::parse(shared_bytes batch) {
    const size_t n = batch.size();
    if (n <= 16) return fail(batch_errc::too_short);
    if (batch.data()[16] != 2) return fail(batch_errc::bad_magic);
    if (n < batch_header_size) return fail(batch_errc::too_short);
    int32_t length = load_be<int32_t>(batch.data() + batch_length_offset);
    if (length < static_cast<int32_t>(batch_header_size - batch_log_overhead)) {
        return fail(batch_errc::length_mismatch);
    }
    if (static_cast<size_t>(length) > n - batch_log_overhead) return fail(batch_errc::too_short);
    if (static_cast<size_t>(length) < n - batch_log_overhead) return fail(batch_errc::length_mismatch);
    record_batch b(std::move(batch));
    if (!codec_from_bits(b.attributes() & attr::codec_mask)) return fail(batch_errc::unknown_codec);
    return b;
}

uint32_t record_batch::compute_crc() const {
    return crc32c(bytes_.span().subspan(batch_attributes_offset));
}

result<void, batch_errc> record_batch::validate(const validate_options& opts) const {
    if (!crc_ok()) return fail(batch_errc::crc_mismatch);
    const int32_t count = record_count();
    const int32_t last = last_offset_delta();
    if (count < 0) return fail(batch_errc::bad_record_count);
    if (opts.dense_offsets) {
        if (count == 0 || last < 0 || static_cast<int64_t>(count) != static_cast<int64_t>(last) + 1) {
            return fail(batch_errc::bad_record_count);
        }
    } else if (count > 0 && (last < 0 || count - 1 > last)) {
        return fail(batch_errc::bad_record_count);
    }
    if (compression() == codec::none) return validate_records(records_bytes(), opts);
    return {};
}

result<void, batch_errc> record_batch::validate_records(std::span<const uint8_t> payload,
                                                        const validate_options& opts) const {
    record_reader rr = records(payload);
    record_view r;
    int64_t expected = 0;
    int64_t previous = -1;
    const int32_t last = last_offset_delta();
    while (rr.next(r)) {
        if (opts.dense_offsets) {
            if (r.offset_delta != expected) return fail(batch_errc::bad_offset_delta);
        } else if (r.offset_delta <= previous || r.offset_delta > last) {
            return fail(batch_errc::bad_offset_delta);
        }
        previous = r.offset_delta;
        ++expected;
    }
    if (!rr.ok()) return fail(rr.error());
    return {};
}

result<std::span<const uint8_t>, batch_errc> record_batch::payload(std::vector<uint8_t>& scratch,
                                                                   size_t max_decompressed_bytes) const {
    if (compression() == codec::none) return records_bytes();
    auto r = decompress_into(compression(), records_bytes(), scratch, max_decompressed_bytes);
    if (!r) {
        return fail(r.error() == compression_errc::output_too_large ? batch_errc::decompressed_too_large
                                                                    : batch_errc::decompression_failed);
    }
    return std::span<const uint8_t>(scratch);
}

result<void, batch_errc> record_batch::validate_all(std::vector<uint8_t>& scratch, size_t max_decompressed_bytes,
                                                    const validate_options& opts) const {
    if (auto v = validate(opts); !v) return v;
    if (compression() == codec::none) return {};
    auto p = payload(scratch, max_decompressed_bytes);
    if (!p) return fail(p.error());
    return validate_records(*p, opts);
}

// ---------------------------------------------------------------------------

std::optional<record_batch> batch_splitter::next() {
    if (error_ || truncated_) return std::nullopt;
    const size_t left = bytes_.size() - pos_;
    if (left == 0) return std::nullopt;
    const uint8_t* p = bytes_.data() + pos_;
    if (left > 16 && p[16] != 2) {
        error_ = batch_errc::bad_magic;
        return std::nullopt;
    }
    if (left < batch_log_overhead) {
        truncated_ = true;
        return std::nullopt;
    }
    int32_t length = load_be<int32_t>(p + batch_length_offset);
    if (length < static_cast<int32_t>(batch_header_size - batch_log_overhead)) {
        error_ = batch_errc::length_mismatch;
        return std::nullopt;
    }
    if (static_cast<size_t>(length) > left - batch_log_overhead) {
        truncated_ = true;
        return std::nullopt;
    }
    size_t n = batch_log_overhead + static_cast<size_t>(length);
    auto b = record_batch::parse(bytes_.slice(pos_, n));
    if (!b) {
        error_ = b.error();
        return std::nullopt;
    }
    pos_ += n;
    return std::move(b).value();
}

// ---------------------------------------------------------------------------

result<control_record, batch_errc> parse_control_record(const record_view& r) {
    if (!r.key || r.key->size() < 4) return fail(batch_errc::bad_control_record);
    const uint8_t* k = r.key->data();
    control_record c;
    c.version = static_cast<int16_t>((k[0] << 8) | k[1]);
    c.type = static_cast<control_type>(static_cast<int16_t>((k[2] << 8) | k[3]));
    if (c.version < 0) return fail(batch_errc::bad_control_record);
    return c;
}

// ---------------------------------------------------------------------------

namespace {

void put_raw(std::vector<uint8_t>& out, const void* p, size_t n) {
    auto b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
}
size_t nullable_bytes_size(const nullable_bytes& b) {
    return b ? varint_size(static_cast<int64_t>(b->size())) + b->size() : 1;
}
void put_nullable(std::vector<uint8_t>& out, const nullable_bytes& b) {
    if (!b) {
        put_varint(out, -1);
        return;
    }
    put_varint(out, static_cast<int64_t>(b->size()));
    put_raw(out, b->data(), b->size());
}

}  // namespace

void batch_builder::add(int64_t timestamp_ms, nullable_bytes key, nullable_bytes value,
                        std::span<const header_in> headers) {
    if (count_ == 0) base_timestamp_ = timestamp_ms;
    max_timestamp_ = count_ == 0 ? timestamp_ms : std::max(max_timestamp_, timestamp_ms);
    const int64_t ts_delta = timestamp_ms - base_timestamp_;
    size_t body = 1 + varint_size(ts_delta) + varint_size(count_) + nullable_bytes_size(key) +
                  nullable_bytes_size(value) + varint_size(static_cast<int64_t>(headers.size()));
    for (const header_in& h : headers) {
        body += varint_size(static_cast<int64_t>(h.key.size())) + h.key.size() + nullable_bytes_size(h.value);
    }
    put_varint(payload_, static_cast<int64_t>(body));
    const size_t start = payload_.size();
    payload_.push_back(0);  // record attributes: unused
    put_varint(payload_, ts_delta);
    put_varint(payload_, count_);
    put_nullable(payload_, key);
    put_nullable(payload_, value);
    put_varint(payload_, static_cast<int64_t>(headers.size()));
    for (const header_in& h : headers) {
        put_varint(payload_, static_cast<int64_t>(h.key.size()));
        put_raw(payload_, h.key.data(), h.key.size());
        put_nullable(payload_, h.value);
    }
    FJORD_ASSERT(payload_.size() - start == body, "record body {} != computed {}", payload_.size() - start, body);
    ++count_;
}

result<std::vector<uint8_t>, compression_errc> batch_builder::build() const {
    std::vector<uint8_t> compressed;
    std::span<const uint8_t> records(payload_);
    if (opts_.compression != codec::none) {
        auto c = compress(opts_.compression, payload_, opts_.level);
        if (!c) return fail(c.error());
        compressed = std::move(c).value();
        records = compressed;
    }
    std::vector<uint8_t> out(batch_header_size + records.size());
    uint8_t* p = out.data();
    uint16_t attributes = static_cast<uint16_t>(opts_.compression) & attr::codec_mask;
    if (opts_.ts_type == timestamp_type::log_append_time) attributes |= attr::timestamp_type;
    if (opts_.transactional) attributes |= attr::transactional;
    if (opts_.control) attributes |= attr::control;
    store_be<int64_t>(p + 0, opts_.base_offset);
    store_be<int32_t>(p + 8, static_cast<int32_t>(out.size() - batch_log_overhead));
    store_be<int32_t>(p + 12, opts_.partition_leader_epoch);
    p[16] = 2;
    store_be<uint16_t>(p + 21, attributes);
    store_be<int32_t>(p + 23, std::max(count_ - 1, 0));
    store_be<int64_t>(p + 27, base_timestamp_);
    store_be<int64_t>(p + 35, max_timestamp_);
    store_be<int64_t>(p + 43, opts_.producer_id);
    store_be<int16_t>(p + 51, opts_.producer_epoch);
    store_be<int32_t>(p + 53, opts_.base_sequence);
    store_be<int32_t>(p + 57, count_);
    if (!records.empty()) std::memcpy(p + batch_records_offset, records.data(), records.size());
    store_be<uint32_t>(p + batch_crc_offset, crc32c(std::span<const uint8_t>(out).subspan(batch_attributes_offset)));
    return out;
}

void batch_builder::reset(batch_options opts) {
    opts_ = opts;
    payload_.clear();
    count_ = 0;
    base_timestamp_ = -1;
    max_timestamp_ = -1;
}

std::vector<uint8_t> build_end_txn_marker(int64_t producer_id, int16_t producer_epoch, control_type type,
                                          int32_t coordinator_epoch, int64_t timestamp_ms,
                                          int32_t partition_leader_epoch) {
    batch_options o;
    o.producer_id = producer_id;
    o.producer_epoch = producer_epoch;
    o.transactional = true;
    o.control = true;
    o.partition_leader_epoch = partition_leader_epoch;
    batch_builder b(o);
    uint8_t key[4];
    store_be<int16_t>(key, 0);
    store_be<int16_t>(key + 2, static_cast<int16_t>(type));
    uint8_t value[6];
    store_be<int16_t>(value, 0);
    store_be<int32_t>(value + 2, coordinator_epoch);
    b.add(timestamp_ms, std::span<const uint8_t>(key), std::span<const uint8_t>(value));
    return b.build().value();  // codec none cannot fail
}

void set_base_offset(std::span<uint8_t> batch, int64_t base_offset) {
    FJORD_ASSERT(batch.size() >= batch_header_size, "batch of {} bytes", batch.size());
    store_be<int64_t>(batch.data(), base_offset);
}

void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch) {
    FJORD_ASSERT(batch.size() >= batch_header_size, "batch of {} bytes", batch.size());
    store_be<int32_t>(batch.data() + 12, epoch);
}

void set_log_append_time(std::span<uint8_t> batch, int64_t now_ms) {
    FJORD_ASSERT(batch.size() >= batch_header_size, "batch of {} bytes", batch.size());
    uint16_t attributes;
    std::memcpy(&attributes, batch.data() + batch_attributes_offset, 2);
    attributes = static_cast<uint16_t>(__builtin_bswap16(attributes) | attr::timestamp_type);
    store_be<uint16_t>(batch.data() + batch_attributes_offset, attributes);
    store_be<int64_t>(batch.data() + batch_max_timestamp_offset, now_ms);
    std::span<const uint8_t> covered(batch.data() + batch_attributes_offset, batch.size() - batch_attributes_offset);
    store_be<uint32_t>(batch.data() + batch_crc_offset, crc32c(covered));
}

}  // namespace fjord::protocol
