#include "protocol/wire.h"

namespace fjord::protocol {

const char* describe(errc e) {
    switch (e) {
        case errc::ok: return "ok";
        case errc::invalid_length: return "a string too long for its length field";
        case errc::truncated: return "a field runs past the end of the frame";
        case errc::unexpected_null: return "null in a non-nullable field";
        case errc::length_too_large: return "length or count larger than the remaining bytes";
        case errc::varint_too_long: return "varint too long";
        case errc::unsupported_version: return "unsupported message version";
        case errc::trailing_bytes: return "unexpected bytes after the message";
        case errc::non_default_in_version: return "value cannot be represented in this version";
    }
    return "unknown error";
}

uuid reader::read_uuid() {
    uuid u;
    if (remaining() < u.bytes.size()) {
        fail(errc::truncated);
        return u;
    }
    std::memcpy(u.bytes.data(), p_, u.bytes.size());
    p_ += u.bytes.size();
    return u;
}

uint32_t reader::uvarint() {
    uint32_t v = 0;
    for (int i = 0; i < 5; ++i) {
        if (p_ == end_) {
            fail(errc::truncated);
            return 0;
        }
        uint8_t b = *p_++;
        if (i == 4 && (b & 0xf0) != 0) {
            fail(errc::varint_too_long);
            return 0;
        }
        v |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) return v;
    }
    fail(errc::varint_too_long);
    return 0;
}

uint64_t reader::uvarlong() {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
        if (p_ == end_) {
            fail(errc::truncated);
            return 0;
        }
        uint8_t b = *p_++;
        if (i == 9 && (b & 0xfe) != 0) {
            fail(errc::varint_too_long);
            return 0;
        }
        v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) return v;
    }
    fail(errc::varint_too_long);
    return 0;
}

namespace {

int32_t checked_length(reader& r, int64_t n) {
    if (!r.ok()) return -1;
    // Any negative length is null, as Kafka's own readers take it (a
    // non-nullable field then fails where the message reads it).
    if (n < 0) return -1;
    if (n > static_cast<int64_t>(r.remaining())) {
        r.fail(errc::length_too_large);
        return -1;
    }
    return static_cast<int32_t>(n);
}

}  // namespace

int32_t reader::string_length(bool compact) {
    return checked_length(*this, compact ? static_cast<int64_t>(uvarint()) - 1 : i16());
}

int32_t reader::bytes_length(bool compact) {
    return checked_length(*this, compact ? static_cast<int64_t>(uvarint()) - 1 : i32());
}

int32_t reader::array_length(bool compact) {
    return checked_length(*this, compact ? static_cast<int64_t>(uvarint()) - 1 : i32());
}

}  // namespace fjord::protocol
