#include "protocol/compression.h"

#include <gtest/gtest.h>
#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace fjord::protocol {
namespace {

constexpr codec all_codecs[] = {codec::none, codec::gzip, codec::snappy, codec::lz4, codec::zstd};
constexpr codec compressed_codecs[] = {codec::gzip, codec::snappy, codec::lz4, codec::zstd};

// JSON-ish text: compresses like real payloads (2-5x), not like zeros.
std::vector<uint8_t> semi_compressible(size_t n, uint32_t seed = 1) {
    static const char* words[] = {"user", "event", "click", "order",  "price",   "timestamp", "session",
                                  "true", "false", "null",  "region", "eu-west", "us-east",   "item"};
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(n + 64);
    while (s.size() < n) {
        s += "{\"";
        s += words[rng() % 14];
        s += "\":";
        s += std::to_string(rng() % 100000);
        s += ",\"";
        s += words[rng() % 14];
        s += "\":\"";
        s += words[rng() % 14];
        s += "\"}\n";
    }
    s.resize(n);
    return {s.begin(), s.end()};
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed = 2) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

std::vector<uint8_t> round_trip(codec c, const std::vector<uint8_t>& in) {
    auto z = compress(c, in);
    EXPECT_TRUE(z.ok()) << codec_name(c);
    if (!z) return {};
    auto d = decompress(c, *z);
    EXPECT_TRUE(d.ok()) << codec_name(c) << ": " << describe(d.error());
    if (!d) return {};
    return std::move(d).value();
}

TEST(compression, every_codec_round_trips) {
    for (codec c : all_codecs) {
        for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{65536}, size_t{65537}, size_t{1} << 20}) {
            auto text = semi_compressible(n);
            EXPECT_EQ(round_trip(c, text), text) << codec_name(c) << " " << n;
            auto noise = random_bytes(n);
            EXPECT_EQ(round_trip(c, noise), noise) << codec_name(c) << " random " << n;
        }
    }
}

TEST(compression, semi_compressible_input_does_compress) {
    auto text = semi_compressible(1 << 20);
    for (codec c : compressed_codecs) {
        auto z = compress(c, text);
        ASSERT_TRUE(z.ok());
        EXPECT_LT(z->size(), text.size() / 2) << codec_name(c);
    }
}

TEST(compression, levels) {
    auto text = semi_compressible(100000);
    for (int level : {1, 9}) EXPECT_EQ(decompress(codec::gzip, *compress(codec::gzip, text, level)).value(), text);
    for (int level : {1, 17}) EXPECT_EQ(decompress(codec::lz4, *compress(codec::lz4, text, level)).value(), text);
    for (int level : {-5, 1, 19}) EXPECT_EQ(decompress(codec::zstd, *compress(codec::zstd, text, level)).value(), text);
    EXPECT_EQ(compress(codec::gzip, text, 10).error(), compression_errc::invalid_level);
    EXPECT_EQ(compress(codec::lz4, text, 0).error(), compression_errc::invalid_level);
    EXPECT_EQ(compress(codec::zstd, text, 1000).error(), compression_errc::invalid_level);
}

TEST(compression, gzip_writes_a_gzip_header) {
    auto z = compress(codec::gzip, semi_compressible(1000)).value();
    ASSERT_GE(z.size(), 10u);
    EXPECT_EQ(z[0], 0x1f);
    EXPECT_EQ(z[1], 0x8b);
    EXPECT_EQ(z[2], 8);  // deflate
}

TEST(compression, gzip_reads_concatenated_members) {
    auto a = semi_compressible(5000, 1), b = semi_compressible(7000, 2);
    auto za = compress(codec::gzip, a).value(), zb = compress(codec::gzip, b).value();
    za.insert(za.end(), zb.begin(), zb.end());
    auto d = decompress(codec::gzip, za).value();
    a.insert(a.end(), b.begin(), b.end());
    EXPECT_EQ(d, a);
}

TEST(compression, snappy_writes_xerial_framing) {
    auto text = semi_compressible(100000);  // 4 blocks of at most 32 KiB
    auto z = compress(codec::snappy, text).value();
    const uint8_t header[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    ASSERT_GE(z.size(), 16u);
    EXPECT_EQ(std::memcmp(z.data(), header, 16), 0);
    // Walk the blocks: each an int32 length and a raw snappy block of <= 32 KiB.
    size_t pos = 16, blocks = 0, total = 0;
    while (pos < z.size()) {
        uint32_t n = (uint32_t{z[pos]} << 24) | (uint32_t{z[pos + 1]} << 16) | (uint32_t{z[pos + 2]} << 8) | z[pos + 3];
        pos += 4;
        size_t raw = 0;
        ASSERT_TRUE(snappy::GetUncompressedLength(reinterpret_cast<const char*>(z.data() + pos), n, &raw));
        EXPECT_LE(raw, 32768u);
        total += raw;
        pos += n;
        ++blocks;
    }
    EXPECT_EQ(pos, z.size());
    EXPECT_EQ(blocks, 4u);
    EXPECT_EQ(total, text.size());
}

TEST(compression, snappy_reads_raw_blocks) {
    auto text = semi_compressible(200000);
    std::string raw;
    snappy::Compress(reinterpret_cast<const char*>(text.data()), text.size(), &raw);
    auto d = decompress(codec::snappy, std::span(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, text);
}

TEST(compression, lz4_writes_kafka_frame_descriptor) {
    auto z = compress(codec::lz4, semi_compressible(200000)).value();
    ASSERT_GE(z.size(), 7u);
    const uint8_t expected[6] = {0x04, 0x22, 0x4d, 0x18, 0x60, 0x40};  // magic, FLG, BD
    EXPECT_EQ(std::memcmp(z.data(), expected, 6), 0);
}

TEST(compression, lz4_rejects_linked_blocks) {
    auto text = semi_compressible(200000);
    LZ4F_preferences_t prefs{};
    prefs.frameInfo.blockMode = LZ4F_blockLinked;
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    std::vector<uint8_t> z(LZ4F_compressFrameBound(text.size(), &prefs));
    size_t n = LZ4F_compressFrame(z.data(), z.size(), text.data(), text.size(), &prefs);
    ASSERT_FALSE(LZ4F_isError(n));
    z.resize(n);
    EXPECT_EQ(decompress(codec::lz4, z).error(), compression_errc::unsupported_format);
}

TEST(compression, limit_is_exact) {
    auto text = semi_compressible(300000);
    for (codec c : all_codecs) {
        auto z = compress(c, text).value();
        auto at = decompress(c, z, text.size());
        ASSERT_TRUE(at.ok()) << codec_name(c) << ": " << describe(at.error());
        EXPECT_EQ(*at, text);
        auto below = decompress(c, z, text.size() - 1);
        ASSERT_FALSE(below.ok()) << codec_name(c);
        EXPECT_EQ(below.error(), compression_errc::output_too_large) << codec_name(c);
    }
}

TEST(compression, decompress_into_reuses_the_buffer) {
    auto text = semi_compressible(100000);
    auto z = compress(codec::zstd, text).value();
    std::vector<uint8_t> out;
    ASSERT_TRUE(decompress_into(codec::zstd, z, out).ok());
    EXPECT_EQ(out, text);
    const uint8_t* buffer = out.data();
    ASSERT_TRUE(decompress_into(codec::zstd, z, out).ok());
    EXPECT_EQ(out, text);
    EXPECT_EQ(out.data(), buffer);
}

// ---------------------------------------------------------------------------
// Decompression bombs: a small input that would expand far beyond the limit
// fails with output_too_large, and the output buffer never exceeds the limit.

constexpr size_t bomb_limit = 16 << 20;

std::vector<uint8_t> zstd_zeros(size_t total) {
    std::vector<uint8_t> zeros(1 << 20, 0), out, chunk(ZSTD_CStreamOutSize());
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
    for (size_t done = 0; done < total; done += zeros.size()) {
        bool last = done + zeros.size() >= total;
        ZSTD_inBuffer in{zeros.data(), zeros.size(), 0};
        size_t remaining;
        do {
            ZSTD_outBuffer o{chunk.data(), chunk.size(), 0};
            remaining = ZSTD_compressStream2(cctx, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
            out.insert(out.end(), chunk.data(), chunk.data() + o.pos);
        } while (last ? remaining != 0 : in.pos < in.size);
    }
    ZSTD_freeCCtx(cctx);
    return out;
}

std::vector<uint8_t> gzip_zeros(size_t total) {
    std::vector<uint8_t> zeros(1 << 20, 0), out, chunk(1 << 16);
    z_stream zs{};
    deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    for (size_t done = 0; done < total; done += zeros.size()) {
        bool last = done + zeros.size() >= total;
        zs.next_in = zeros.data();
        zs.avail_in = static_cast<uInt>(zeros.size());
        do {
            zs.next_out = chunk.data();
            zs.avail_out = static_cast<uInt>(chunk.size());
            deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
            out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - zs.avail_out));
        } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
    return out;
}

void expect_bomb_fails(codec c, const std::vector<uint8_t>& bomb) {
    std::vector<uint8_t> out;
    auto r = decompress_into(c, bomb, out, bomb_limit);
    ASSERT_FALSE(r.ok()) << codec_name(c);
    EXPECT_EQ(r.error(), compression_errc::output_too_large) << codec_name(c);
    EXPECT_LE(out.capacity(), bomb_limit) << codec_name(c);
}

TEST(compression_bomb, zstd_1_gib_of_zeros) {
    auto bomb = zstd_zeros(size_t{1} << 30);
    EXPECT_LT(bomb.size(), 200u << 10);
    expect_bomb_fails(codec::zstd, bomb);
}

TEST(compression_bomb, gzip_1_gib_of_zeros) {
    auto bomb = gzip_zeros(size_t{1} << 30);
    EXPECT_LT(bomb.size(), 8u << 20);
    expect_bomb_fails(codec::gzip, bomb);
}

TEST(compression_bomb, lz4_and_snappy_zeros) {
    std::vector<uint8_t> zeros(64 << 20, 0);
    expect_bomb_fails(codec::lz4, compress(codec::lz4, zeros, 1).value());
    expect_bomb_fails(codec::snappy, compress(codec::snappy, zeros).value());
}

TEST(compression_bomb, snappy_declared_length_is_not_trusted) {
    // Raw snappy claiming 2 GiB (varint 0x80 0x80 0x80 0x80 0x08) then a literal.
    const uint8_t huge[] = {0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 'x'};
    EXPECT_EQ(decompress(codec::snappy, huge, bomb_limit).error(), compression_errc::output_too_large);
    // Claiming 8 MiB (within the limit) from 7 bytes: an impossible ratio.
    const uint8_t liar[] = {0x80, 0x80, 0x80, 0x04, 0x00, 'x'};
    EXPECT_EQ(decompress(codec::snappy, liar, bomb_limit).error(), compression_errc::corrupt_input);
}

TEST(compression_bomb, zstd_window_beyond_the_limit) {
    // A streamed frame (no content size) declaring a 2^27 window holds only
    // 512 KiB; against a 1 MiB limit its window is refused before the decoder
    // allocates it. The default limit reads it.
    std::vector<uint8_t> text = semi_compressible(512 << 10);
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 27);
    std::vector<uint8_t> z(ZSTD_compressBound(text.size()) + 1024);
    ZSTD_outBuffer out{z.data(), z.size(), 0};
    ZSTD_inBuffer first{text.data(), text.size() / 2, 0};
    ZSTD_compressStream2(cctx, &out, &first, ZSTD_e_continue);
    ASSERT_EQ(first.pos, first.size);
    ZSTD_inBuffer rest{text.data() + text.size() / 2, text.size() - text.size() / 2, 0};
    ASSERT_EQ(ZSTD_compressStream2(cctx, &out, &rest, ZSTD_e_end), 0u);
    ZSTD_freeCCtx(cctx);
    z.resize(out.pos);
    // Frame header descriptor: no single-segment flag, so a window
    // descriptor follows, whose exponent + 10 is the window log.
    ASSERT_GT(z.size(), 6u);
    ASSERT_EQ(z[4] & 0x20, 0);
    ASSERT_EQ((z[5] >> 3) + 10, 27);
    EXPECT_EQ(decompress(codec::zstd, z, 1 << 20).error(), compression_errc::output_too_large);
    EXPECT_EQ(decompress(codec::zstd, z).value(), text);
}

// ---------------------------------------------------------------------------
// Corrupt and truncated input fails cleanly (and under ASan, safely).

TEST(compression, corrupt_input_fails) {
    auto text = semi_compressible(200000);
    for (codec c : compressed_codecs) {
        auto z = compress(c, text).value();
        // Truncation anywhere.
        for (size_t cut : {size_t{0}, size_t{1}, size_t{5}, z.size() / 2, z.size() - 1}) {
            auto t = std::vector<uint8_t>(z.begin(), z.begin() + static_cast<long>(cut));
            auto r = decompress(c, t);
            EXPECT_FALSE(r.ok()) << codec_name(c) << " cut at " << cut;
        }
        // Garbage and bit flips: must not crash; a flip in the headers must fail.
        auto garbage = random_bytes(1000, 7);
        EXPECT_FALSE(decompress(c, garbage).ok()) << codec_name(c);
        for (size_t i = 0; i < z.size(); i += std::max<size_t>(1, z.size() / 97)) {
            auto f = z;
            f[i] ^= 0x55;
            auto r = decompress(c, f);
            if (r.ok()) {
                EXPECT_LE(r->size(), default_max_decompressed_bytes);
            }
        }
        auto header_flip = z;
        header_flip[0] ^= 0xff;
        if (c != codec::snappy) {  // snappy falls back to raw, which may still parse
            EXPECT_FALSE(decompress(c, header_flip).ok()) << codec_name(c);
        }
        // Trailing garbage after a complete stream.
        auto trailing = z;
        trailing.push_back(0x42);
        EXPECT_FALSE(decompress(c, trailing).ok()) << codec_name(c);
    }
}

TEST(compression, specific_errors) {
    auto z = compress(codec::zstd, semi_compressible(10000)).value();
    z.resize(z.size() / 2);
    EXPECT_EQ(decompress(codec::zstd, z).error(), compression_errc::truncated_input);
    auto g = compress(codec::gzip, semi_compressible(10000)).value();
    g.resize(g.size() / 2);
    EXPECT_EQ(decompress(codec::gzip, g).error(), compression_errc::truncated_input);
    EXPECT_EQ(decompress(static_cast<codec>(5), g).error(), compression_errc::unknown_codec);
    EXPECT_FALSE(codec_from_bits(5).has_value());
    EXPECT_EQ(codec_from_bits(3), codec::lz4);
}

}  // namespace
}  // namespace fjord::protocol
