#include "protocol/compression.h"

#include "base/endian.h"

#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <memory>

namespace fjord::protocol {

std::optional<codec> codec_from_bits(uint8_t bits) {
    if (bits <= 4) return static_cast<codec>(bits);
    return std::nullopt;
}

const char* codec_name(codec c) {
    switch (c) {
        case codec::none: return "none";
        case codec::gzip: return "gzip";
        case codec::snappy: return "snappy";
        case codec::lz4: return "lz4";
        case codec::zstd: return "zstd";
    }
    return "unknown";
}

const char* describe(compression_errc e) {
    switch (e) {
        case compression_errc::unknown_codec: return "unknown compression codec";
        case compression_errc::corrupt_input: return "corrupt compressed data";
        case compression_errc::truncated_input: return "compressed data ends early";
        case compression_errc::trailing_bytes: return "bytes after the end of the compressed data";
        case compression_errc::unsupported_format: return "compressed format Kafka does not read";
        case compression_errc::output_too_large: return "decompressed size exceeds the limit";
        case compression_errc::invalid_level: return "invalid compression level";
        case compression_errc::library_error: return "compression library error";
    }
    return "unknown compression error";
}

namespace {

using errc = compression_errc;

// ---------------------------------------------------------------------------
// Bounded output: a decoder step writes into a window of `out`; the window
// grows by doubling up to the limit. At the limit, one more step into a
// one-byte scratch window tells "ends exactly here" from "would exceed".

// Resizes to exactly n bytes of capacity when growing: vector::resize alone
// may over-allocate geometrically, past the limit.
void resize_exact(std::vector<uint8_t>& out, size_t n) {
    if (n > out.capacity()) out.reserve(n);
    out.resize(n);
}

struct step_result {
    size_t consumed = 0;
    size_t produced = 0;
    bool done = false;
    std::optional<errc> error;
};

template <typename Step>
result<void, errc> drive(std::vector<uint8_t>& out, size_t max_output, size_t input_size, Step&& step) {
    size_t initial = std::min(max_output, std::max({input_size * 4, size_t{16} << 10, out.capacity()}));
    out.clear();
    resize_exact(out, initial);
    size_t used = 0;
    int stalled = 0;
    for (;;) {
        uint8_t scratch = 0;
        if (used == out.size() && out.size() < max_output) {
            resize_exact(out, std::min(max_output, out.size() * 2));
        }
        bool probing = used == out.size();
        uint8_t* dst = probing ? &scratch : out.data() + used;
        size_t room = probing ? 1 : out.size() - used;
        step_result r = step(dst, room);
        if (probing && r.produced > 0) return fail(errc::output_too_large);
        used += r.produced;
        if (r.error) return fail(*r.error);
        if (r.done) {
            out.resize(used);
            return {};
        }
        // A step always has output room; two in a row that neither read nor
        // write mean the decoder is stuck: never spin on hostile input.
        stalled = (r.produced == 0 && r.consumed == 0) ? stalled + 1 : 0;
        if (stalled >= 2) return fail(errc::corrupt_input);
    }
}

size_t clamp_uint(size_t n) {
    return std::min<size_t>(n, UINT_MAX);
}

// ---------------------------------------------------------------------------
// gzip

result<void, errc> gzip_compress(std::span<const uint8_t> in, int level, std::vector<uint8_t>& out) {
    z_stream zs{};
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return fail(errc::library_error);
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, deflateEnd);
    out.resize(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
    zs.next_in = const_cast<Bytef*>(in.data());
    size_t in_left = in.size();
    size_t used = 0;
    for (;;) {
        size_t feed = clamp_uint(in_left);
        zs.next_in = const_cast<Bytef*>(in.data() + (in.size() - in_left));
        zs.avail_in = static_cast<uInt>(feed);
        if (used == out.size()) out.resize(out.size() * 2);
        zs.next_out = out.data() + used;
        zs.avail_out = static_cast<uInt>(clamp_uint(out.size() - used));
        uInt out_before = zs.avail_out;
        int ret = deflate(&zs, feed == in_left ? Z_FINISH : Z_NO_FLUSH);
        in_left -= feed - zs.avail_in;
        used += out_before - zs.avail_out;
        if (ret == Z_STREAM_END) break;
        if (ret != Z_OK && ret != Z_BUF_ERROR) return fail(errc::library_error);
    }
    out.resize(used);
    return {};
}

result<void, errc> gzip_decompress(std::span<const uint8_t> in, std::vector<uint8_t>& out, size_t max_output) {
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return fail(errc::library_error);
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
    size_t pos = 0;
    return drive(out, max_output, in.size(), [&](uint8_t* dst, size_t room) {
        step_result r;
        size_t feed = clamp_uint(in.size() - pos);
        zs.next_in = const_cast<Bytef*>(in.data() + pos);
        zs.avail_in = static_cast<uInt>(feed);
        zs.next_out = dst;
        zs.avail_out = static_cast<uInt>(clamp_uint(room));
        uInt out_before = zs.avail_out;
        int ret = inflate(&zs, Z_NO_FLUSH);
        pos += feed - zs.avail_in;
        r.consumed = feed - zs.avail_in;
        r.produced = out_before - zs.avail_out;
        switch (ret) {
            case Z_STREAM_END:
                if (pos == in.size()) {
                    r.done = true;
                } else if (in.size() - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b) {
                    inflateReset(&zs);  // another gzip member, as GZIPInputStream reads
                } else {
                    r.error = errc::trailing_bytes;
                }
                break;
            case Z_OK:
                if (pos == in.size() && zs.avail_out > 0) r.error = errc::truncated_input;
                break;
            case Z_BUF_ERROR:
                // No progress possible: out of input (an output-full window
                // is handled by the driver, which always offers room).
                r.error = errc::truncated_input;
                break;
            case Z_MEM_ERROR: r.error = errc::library_error; break;
            default: r.error = errc::corrupt_input; break;
        }
        return r;
    });
}

// ---------------------------------------------------------------------------
// snappy

constexpr uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
constexpr size_t xerial_header_size = 16;
constexpr size_t xerial_block_size = 32 << 10;  // snappy-java's default

result<void, errc> snappy_compress(std::span<const uint8_t> in, std::vector<uint8_t>& out) {
    size_t blocks = (in.size() + xerial_block_size - 1) / xerial_block_size;
    out.resize(xerial_header_size + blocks * (4 + snappy::MaxCompressedLength(xerial_block_size)));
    std::memcpy(out.data(), xerial_magic, 8);
    store_be<uint32_t>(out.data() + 8, 1);   // version
    store_be<uint32_t>(out.data() + 12, 1);  // minimum compatible version
    size_t used = xerial_header_size;
    for (size_t at = 0; at < in.size(); at += xerial_block_size) {
        size_t n = std::min(xerial_block_size, in.size() - at);
        size_t written = 0;
        snappy::RawCompress(reinterpret_cast<const char*>(in.data() + at), n,
                            reinterpret_cast<char*>(out.data() + used + 4), &written);
        store_be<uint32_t>(out.data() + used, static_cast<uint32_t>(written));
        used += 4 + written;
    }
    out.resize(used);
    return {};
}

// Appends one raw snappy block to out[used..].
result<void, errc> snappy_raw_block(std::span<const uint8_t> block, std::vector<uint8_t>& out, size_t& used,
                                    size_t max_output) {
    if (block.empty()) return fail(errc::truncated_input);
    size_t n = 0;
    auto src = reinterpret_cast<const char*>(block.data());
    if (!snappy::GetUncompressedLength(src, block.size(), &n)) return fail(errc::corrupt_input);
    if (n > max_output - used) return fail(errc::output_too_large);
    // The densest snappy element (a 3-byte copy) yields 64 bytes: a larger
    // declared length is a lie, rejected before allocating for it.
    if (n / 22 > block.size()) return fail(errc::corrupt_input);
    if (out.size() < used + n) resize_exact(out, std::max(used + n, std::min(max_output, out.size() * 2)));
    if (!snappy::RawUncompress(src, block.size(), reinterpret_cast<char*>(out.data() + used))) {
        return fail(errc::corrupt_input);
    }
    used += n;
    return {};
}

result<void, errc> snappy_decompress(std::span<const uint8_t> in, std::vector<uint8_t>& out, size_t max_output) {
    out.clear();
    size_t used = 0;
    bool xerial = in.size() >= 8 && std::memcmp(in.data(), xerial_magic, 8) == 0;
    if (!xerial) {
        auto r = snappy_raw_block(in, out, used, max_output);
        if (!r) return r;
        out.resize(used);
        return {};
    }
    if (in.size() < xerial_header_size) return fail(errc::truncated_input);
    size_t pos = xerial_header_size;
    while (pos < in.size()) {
        if (in.size() - pos < 4) return fail(errc::truncated_input);
        uint32_t n = load_be<uint32_t>(in.data() + pos);
        pos += 4;
        if (n > INT32_MAX) return fail(errc::corrupt_input);
        if (n > in.size() - pos) return fail(errc::truncated_input);
        if (n > 0) {
            auto r = snappy_raw_block(in.subspan(pos, n), out, used, max_output);
            if (!r) return r;
        }
        pos += n;
    }
    out.resize(used);
    return {};
}

// ---------------------------------------------------------------------------
// lz4

struct lz4_dctx_deleter {
    void operator()(LZ4F_dctx* c) const { LZ4F_freeDecompressionContext(c); }
};
struct lz4_cctx_deleter {
    void operator()(LZ4F_cctx* c) const { LZ4F_freeCompressionContext(c); }
};

LZ4F_dctx* lz4_dctx() {
    thread_local std::unique_ptr<LZ4F_dctx, lz4_dctx_deleter> ctx = [] {
        LZ4F_dctx* c = nullptr;
        if (LZ4F_isError(LZ4F_createDecompressionContext(&c, LZ4F_VERSION))) c = nullptr;
        return std::unique_ptr<LZ4F_dctx, lz4_dctx_deleter>(c);
    }();
    return ctx.get();
}
LZ4F_cctx* lz4_cctx() {
    thread_local std::unique_ptr<LZ4F_cctx, lz4_cctx_deleter> ctx = [] {
        LZ4F_cctx* c = nullptr;
        if (LZ4F_isError(LZ4F_createCompressionContext(&c, LZ4F_VERSION))) c = nullptr;
        return std::unique_ptr<LZ4F_cctx, lz4_cctx_deleter>(c);
    }();
    return ctx.get();
}

result<void, errc> lz4_compress(std::span<const uint8_t> in, int level, std::vector<uint8_t>& out) {
    LZ4F_cctx* ctx = lz4_cctx();
    if (ctx == nullptr) return fail(errc::library_error);
    LZ4F_preferences_t prefs{};
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
    prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
    prefs.frameInfo.frameType = LZ4F_frame;
    prefs.frameInfo.contentSize = 0;
    prefs.compressionLevel = level;
    out.resize(LZ4F_HEADER_SIZE_MAX + LZ4F_compressBound(in.size(), &prefs));
    size_t n = LZ4F_compressBegin(ctx, out.data(), out.size(), &prefs);
    if (LZ4F_isError(n)) return fail(errc::library_error);
    size_t used = n;
    if (!in.empty()) {
        n = LZ4F_compressUpdate(ctx, out.data() + used, out.size() - used, in.data(), in.size(), nullptr);
        if (LZ4F_isError(n)) return fail(errc::library_error);
        used += n;
    }
    n = LZ4F_compressEnd(ctx, out.data() + used, out.size() - used, nullptr);
    if (LZ4F_isError(n)) return fail(errc::library_error);
    out.resize(used + n);
    return {};
}

result<void, errc> lz4_decompress(std::span<const uint8_t> in, std::vector<uint8_t>& out, size_t max_output) {
    LZ4F_dctx* ctx = lz4_dctx();
    if (ctx == nullptr) return fail(errc::library_error);
    LZ4F_resetDecompressionContext(ctx);
    // Magic, then FLG: version in bits 7-6, block independence in bit 5.
    if (in.size() < 5) return fail(in.empty() ? errc::truncated_input : errc::corrupt_input);
    if (in[0] != 0x04 || in[1] != 0x22 || in[2] != 0x4d || in[3] != 0x18) return fail(errc::corrupt_input);
    if ((in[4] & 0x20) == 0) return fail(errc::unsupported_format);
    size_t pos = 0;
    return drive(out, max_output, in.size(), [&](uint8_t* dst, size_t room) {
        step_result r;
        size_t dst_size = room;
        size_t src_size = in.size() - pos;
        size_t hint = LZ4F_decompress(ctx, dst, &dst_size, in.data() + pos, &src_size, nullptr);
        pos += src_size;
        r.consumed = src_size;
        r.produced = dst_size;
        if (LZ4F_isError(hint)) {
            r.error = errc::corrupt_input;
        } else if (hint == 0) {
            if (pos == in.size()) {
                r.done = true;
            } else {
                r.error = errc::trailing_bytes;
            }
        } else if (pos == in.size() && dst_size < room) {
            r.error = errc::truncated_input;
        }
        return r;
    });
}

// ---------------------------------------------------------------------------
// zstd

struct zstd_dctx_deleter {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
struct zstd_cctx_deleter {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

ZSTD_DCtx* zstd_dctx() {
    thread_local std::unique_ptr<ZSTD_DCtx, zstd_dctx_deleter> ctx(ZSTD_createDCtx());
    return ctx.get();
}
ZSTD_CCtx* zstd_cctx() {
    thread_local std::unique_ptr<ZSTD_CCtx, zstd_cctx_deleter> ctx(ZSTD_createCCtx());
    return ctx.get();
}

result<void, errc> zstd_compress(std::span<const uint8_t> in, int level, std::vector<uint8_t>& out) {
    ZSTD_CCtx* ctx = zstd_cctx();
    if (ctx == nullptr) return fail(errc::library_error);
    ZSTD_CCtx_reset(ctx, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level))) {
        return fail(errc::invalid_level);
    }
    out.resize(ZSTD_compressBound(in.size()));
    size_t n = ZSTD_compress2(ctx, out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n)) return fail(errc::library_error);
    out.resize(n);
    return {};
}

result<void, errc> zstd_decompress(std::span<const uint8_t> in, std::vector<uint8_t>& out, size_t max_output) {
    ZSTD_DCtx* ctx = zstd_dctx();
    if (ctx == nullptr) return fail(errc::library_error);
    ZSTD_DCtx_reset(ctx, ZSTD_reset_session_and_parameters);
    // No frame needs a window larger than the whole output: bound the
    // decoder's memory by the limit (a bomb declaring a huge window fails),
    // but never below 8 MiB, so that frames from the Java client (windows of
    // a few MiB) decode under any limit a caller picks.
    int window_log = std::clamp(static_cast<int>(std::bit_width(std::max<size_t>(max_output, 1) - 1)), 23, 27);
    ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, window_log);
    if (in.empty()) return fail(errc::truncated_input);
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    return drive(out, max_output, in.size(), [&](uint8_t* dst, size_t room) {
        step_result r;
        ZSTD_outBuffer ob{dst, room, 0};
        const size_t in_before = ib.pos;
        size_t ret = ZSTD_decompressStream(ctx, &ob, &ib);
        r.consumed = ib.pos - in_before;
        r.produced = ob.pos;
        if (ZSTD_isError(ret)) {
            switch (ZSTD_getErrorCode(ret)) {
                case ZSTD_error_memory_allocation: r.error = errc::library_error; break;
                case ZSTD_error_frameParameter_windowTooLarge: r.error = errc::output_too_large; break;
                default: r.error = errc::corrupt_input; break;
            }
        } else if (ret == 0 && ib.pos == ib.size) {
            r.done = true;  // a frame ended with the input (more frames are read on)
        } else if (ib.pos == ib.size && ob.pos < ob.size) {
            r.error = errc::truncated_input;
        }
        return r;
    });
}

}  // namespace

result<std::vector<uint8_t>, compression_errc> compress(codec c, std::span<const uint8_t> in,
                                                        std::optional<int> level) {
    std::vector<uint8_t> out;
    result<void, errc> r;
    switch (c) {
        case codec::none: out.assign(in.begin(), in.end()); break;
        case codec::gzip: {
            int l = level.value_or(Z_DEFAULT_COMPRESSION);
            if (l != Z_DEFAULT_COMPRESSION && (l < 1 || l > 9)) return fail(errc::invalid_level);
            r = gzip_compress(in, l, out);
            break;
        }
        case codec::snappy: r = snappy_compress(in, out); break;
        case codec::lz4: {
            int l = level.value_or(9);
            if (l < 1 || l > 17) return fail(errc::invalid_level);
            r = lz4_compress(in, l, out);
            break;
        }
        case codec::zstd: {
            int l = level.value_or(3);
            if (l < ZSTD_minCLevel() || l > ZSTD_maxCLevel()) return fail(errc::invalid_level);
            r = zstd_compress(in, l, out);
            break;
        }
        default: return fail(errc::unknown_codec);
    }
    if (!r) return fail(r.error());
    return out;
}

result<void, compression_errc> decompress_into(codec c, std::span<const uint8_t> in, std::vector<uint8_t>& out,
                                               size_t max_output_bytes) {
    switch (c) {
        case codec::none:
            if (in.size() > max_output_bytes) return fail(errc::output_too_large);
            out.assign(in.begin(), in.end());
            return {};
        case codec::gzip: return gzip_decompress(in, out, max_output_bytes);
        case codec::snappy: return snappy_decompress(in, out, max_output_bytes);
        case codec::lz4: return lz4_decompress(in, out, max_output_bytes);
        case codec::zstd: return zstd_decompress(in, out, max_output_bytes);
    }
    return fail(errc::unknown_codec);
}

result<std::vector<uint8_t>, compression_errc> decompress(codec c, std::span<const uint8_t> in,
                                                          size_t max_output_bytes) {
    std::vector<uint8_t> out;
    auto r = decompress_into(c, in, out, max_output_bytes);
    if (!r) return fail(r.error());
    return out;
}

}  // namespace fjord::protocol
