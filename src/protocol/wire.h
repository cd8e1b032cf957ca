// Kafka wire primitives: a bounds-checked reader and an appending writer.
//
// reader is the only code that touches untrusted bytes. Every read checks the
// remaining length; a failed read sets a sticky error, returns a zero value and
// consumes nothing more, so decoders check ok() once per struct or loop rather
// than after every field. No length field ever causes an allocation larger
// than the bytes actually remaining in the frame.
//
// writer appends big-endian encodings to a growable buffer. Encoding errors
// (a null in a non-nullable version, a non-default value in a version that
// cannot carry it) also set a sticky error, mirroring Kafka's serializer,
// which throws in the same cases.
//
// Both are single-threaded values; use one per message.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/endian.h"

namespace fjord::protocol {

// byteswap is C++23; g++ 12 has the builtins.
template <typename T>
constexpr T byteswap(T v) {
    if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(v));
    return v;
}

enum class errc : uint8_t {
    ok = 0,
    truncated,               // a field runs past the end of the frame
    invalid_length,          // encode: a string too long for its length field
    unexpected_null,         // null where the version does not allow it
    length_too_large,        // a length or count larger than the remaining bytes
    varint_too_long,         // a varint longer than its type allows
    unsupported_version,     // no such version of this message
    trailing_bytes,          // bytes left after the message
    non_default_in_version,  // encode: a value the version cannot carry
};

const char* describe(errc e);

struct uuid {
    std::array<uint8_t, 16> bytes{};
    bool is_zero() const { return bytes == std::array<uint8_t, 16>{}; }
    friend bool operator==(const uuid&, const uuid&) = default;
};

// A tagged field this code does not know, kept verbatim for re-encoding.
struct raw_tagged_field {
    uint32_t tag = 0;
    shared_bytes data;
    friend bool operator==(const raw_tagged_field&, const raw_tagged_field&) = default;
};
using unknown_tags = std::vector<raw_tagged_field>;

class reader {
public:
    explicit reader(shared_bytes buf) : buf_(std::move(buf)), p_(buf_.data()), end_(p_ + buf_.size()) {}

    bool ok() const { return error_ == errc::ok; }
    errc error() const { return error_; }
    size_t remaining() const { return static_cast<size_t>(end_ - p_); }
    size_t offset() const { return static_cast<size_t>(p_ - buf_.data()); }
    void fail(errc e) {
        if (error_ == errc::ok) error_ = e;
        p_ = end_;
    }

    int8_t i8() { return static_cast<int8_t>(fixed<uint8_t>()); }
    uint8_t u8() { return fixed<uint8_t>(); }
    int16_t i16() { return static_cast<int16_t>(fixed<uint16_t>()); }
    uint16_t u16() { return fixed<uint16_t>(); }
    int32_t i32() { return static_cast<int32_t>(fixed<uint32_t>()); }
    uint32_t u32() { return fixed<uint32_t>(); }
    int64_t i64() { return static_cast<int64_t>(fixed<uint64_t>()); }
    double f64() { return std::bit_cast<double>(fixed<uint64_t>()); }
    bool boolean() { return fixed<uint8_t>() != 0; }
    uuid read_uuid();

    uint32_t uvarint();   // at most 5 bytes
    uint64_t uvarlong();  // at most 10 bytes
    int32_t varint() {
        uint32_t v = uvarint();
        return static_cast<int32_t>((v >> 1) ^ (~(v & 1) + 1));
    }
    int64_t varlong() {
        uint64_t v = uvarlong();
        return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
    }

    // Length prefixes. Return -1 for null; fail and return -1 for anything
    // negative other than the null marker or longer than the remaining bytes.
    int32_t string_length(bool compact);
    int32_t bytes_length(bool compact);
    // Element count of an array; -1 for null. Never more than remaining().
    int32_t array_length(bool compact);

    std::string str(size_t n) {
        std::string s;
        if (n > remaining()) {
            fail(errc::truncated);
            return s;
        }
        s.assign(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        return s;
    }
    // A slice of the frame, not a copy.
    shared_bytes slice(size_t n) {
        if (n > remaining()) {
            fail(errc::truncated);
            return {};
        }
        shared_bytes s = buf_.slice(offset(), n);
        p_ += n;
        return s;
    }
    void skip(size_t n) {
        if (n > remaining()) {
            fail(errc::truncated);
            return;
        }
        p_ += n;
    }

    // A reader over the next n bytes, sharing the buffer; advances past them.
    reader sub(size_t n) {
        if (n > remaining()) {
            fail(errc::truncated);
            return reader(shared_bytes{});
        }
        reader r(buf_.slice(offset(), n));
        p_ += n;
        return r;
    }

private:
    template <typename T>
    T fixed() {
        if (sizeof(T) > remaining()) [[unlikely]] {
            fail(errc::truncated);
            return 0;
        }
        T v;
        std::memcpy(&v, p_, sizeof(T));
        p_ += sizeof(T);
        if constexpr (sizeof(T) > 1) v = byteswap(v);
        return v;
    }

    shared_bytes buf_;
    const uint8_t* p_;
    const uint8_t* end_;
    errc error_ = errc::ok;
};

class writer {
public:
    writer() = default;
    explicit writer(size_t reserve) { buf_.reserve(reserve); }

    bool ok() const { return error_ == errc::ok; }
    errc error() const { return error_; }
    void fail(errc e) {
        if (error_ == errc::ok) error_ = e;
    }
    size_t size() const { return buf_.size(); }

    void i8(int8_t v) { buf_.push_back(static_cast<uint8_t>(v)); }
    void u8(uint8_t v) { buf_.push_back(v); }
    void i16(int16_t v) { fixed(static_cast<uint16_t>(v)); }
    void u16(uint16_t v) { fixed(v); }
    void i32(int32_t v) { fixed(static_cast<uint32_t>(v)); }
    void u32(uint32_t v) { fixed(v); }
    void i64(int64_t v) { fixed(static_cast<uint64_t>(v)); }
    void f64(double v) { fixed(std::bit_cast<uint64_t>(v)); }
    void boolean(bool v) { buf_.push_back(v ? 1 : 0); }
    void write_uuid(const uuid& u) { raw(u.bytes.data(), u.bytes.size()); }

    void uvarint(uint32_t v) {
        while (v >= 0x80) {
            buf_.push_back(static_cast<uint8_t>(v | 0x80));
            v >>= 7;
        }
        buf_.push_back(static_cast<uint8_t>(v));
    }
    void uvarlong(uint64_t v) {
        while (v >= 0x80) {
            buf_.push_back(static_cast<uint8_t>(v | 0x80));
            v >>= 7;
        }
        buf_.push_back(static_cast<uint8_t>(v));
    }
    void varint(int32_t v) { uvarint((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31)); }
    void varlong(int64_t v) { uvarlong((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }

    // Length prefixes: int16/int32 or compact (length + 1, 0 for null).
    void string_length(int32_t n, bool compact) {
        if (compact) {
            uvarint(static_cast<uint32_t>(n + 1));
        } else {
            i16(static_cast<int16_t>(n));
        }
    }
    void bytes_length(int32_t n, bool compact) {
        if (compact) {
            uvarint(static_cast<uint32_t>(n + 1));
        } else {
            i32(n);
        }
    }
    void array_length(int32_t n, bool compact) { bytes_length(n, compact); }

    void raw(const void* p, size_t n) {
        auto b = static_cast<const uint8_t*>(p);
        buf_.insert(buf_.end(), b, b + n);
    }
    void raw(std::string_view s) { raw(s.data(), s.size()); }
    // Large shared byte fields (record batches) are not copied once splicing
    // is on: the writer remembers where they go, and the bytes are sent from
    // their own buffer (a gather write).
    void raw(const shared_bytes& b) {
        if (splice_min_bytes_ != 0 && b.size() >= splice_min_bytes_) {
            splices_.push_back({buf_.size(), b});
            spliced_bytes_ += b.size();
            return;
        }
        raw(b.data(), b.size());
    }

    struct splice {
        size_t at;  // position in buffer() before which the bytes go
        shared_bytes bytes;
    };
    // From now on, shared byte fields of at least `min_bytes` are spliced.
    void enable_splices(size_t min_bytes) { splice_min_bytes_ = min_bytes; }
    const std::vector<splice>& splices() const { return splices_; }
    std::vector<splice> take_splices() { return std::move(splices_); }
    // Bytes written, spliced ones included.
    size_t total_size() const { return buf_.size() + spliced_bytes_; }

    // Overwrites previously written bytes (for length prefixes filled late).
    void patch_i32(size_t at, int32_t v) {
        uint32_t be = byteswap(static_cast<uint32_t>(v));
        std::memcpy(buf_.data() + at, &be, 4);
    }

    std::vector<uint8_t>& buffer() { return buf_; }
    std::vector<uint8_t> take() { return std::move(buf_); }

private:
    template <typename T>
    void fixed(T v) {
        v = byteswap(v);
        auto p = reinterpret_cast<const uint8_t*>(&v);
        buf_.insert(buf_.end(), p, p + sizeof(T));
    }
    size_t splice_min_bytes_ = 0;
    size_t spliced_bytes_ = 0;
    std::vector<splice> splices_;

    std::vector<uint8_t> buf_;
    errc error_ = errc::ok;
};

}  // namespace fjord::protocol
