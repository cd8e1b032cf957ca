// Kafka's record batch compression codecs: gzip, snappy, lz4, zstd.
//
// compress() writes what the Java client writes, so that any Kafka consumer
// can read batches the broker (re)compresses:
//   gzip    a gzip member (zlib, gzip header), level 6 by default
//   snappy  xerial framing (magic 0x82 "SNAPPY" 0, version 1, compatible
//           version 1, then int32-length-prefixed raw snappy blocks of at
//           most 32 KiB input each), as snappy-java's SnappyOutputStream
//   lz4     one lz4 frame, 64 KiB independent blocks, no block or content
//           checksum, no content size (KafkaLZ4BlockOutputStream's FLG/BD
//           bytes 0x60 0x40); level 9 by default (Kafka's compression.lz4.level)
//   zstd    one zstd frame, level 3 by default
//
// decompress() reads what any client writes: gzip (one or more members),
// snappy both xerial-framed (Java, kafka-python) and raw (librdkafka), lz4
// frames (rejecting linked blocks, as the Java consumer would), zstd frames.
//
// Decompression is bounded: output grows incrementally and never beyond
// `max_output_bytes`; sizes declared in the input are never trusted beyond
// it, so a decompression bomb fails with output_too_large after allocating
// at most the limit. Pure functions: any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace fjord::protocol {

// Bits 0-2 of a record batch's attributes.
enum class codec : uint8_t { none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4 };

// The codec named by attribute bits 0-2; nullopt for 5-7.
std::optional<codec> codec_from_bits(uint8_t bits);
const char* codec_name(codec c);

enum class compression_errc : uint8_t {
    unknown_codec = 1,   // not one of the five codecs
    corrupt_input,       // the library rejected the input (bad header, checksum, data)
    truncated_input,     // the input ends inside the compressed stream
    trailing_bytes,      // bytes after the end of the compressed stream
    unsupported_format,  // valid but not something Kafka reads (linked lz4 blocks)
    output_too_large,    // the output would exceed max_output_bytes
    invalid_level,       // a level the codec does not have
    library_error,       // out of memory or similar inside the library
};
const char* describe(compression_errc e);

// Above anything Kafka accepts (message.max.bytes is an int32; fetches and
// produce requests are far smaller in practice).
inline constexpr size_t default_max_decompressed_bytes = size_t{1} << 30;

// Compresses `in` with `c` at `level` (codec default if unset). codec::none
// returns a copy.
result<std::vector<uint8_t>, compression_errc> compress(codec c, std::span<const uint8_t> in,
                                                        std::optional<int> level = std::nullopt);

// Decompresses `in`; fails with output_too_large rather than produce more
// than `max_output_bytes`. codec::none returns a copy (subject to the limit).
result<std::vector<uint8_t>, compression_errc> decompress(codec c, std::span<const uint8_t> in,
                                                          size_t max_output_bytes = default_max_decompressed_bytes);

// As decompress(), into `out` (cleared first), reusing its capacity: one
// buffer per connection or shard instead of one allocation per batch.
// On failure `out` holds unspecified bytes.
result<void, compression_errc> decompress_into(codec c, std::span<const uint8_t> in, std::vector<uint8_t>& out,
                                               size_t max_output_bytes = default_max_decompressed_bytes);

}  // namespace fjord::protocol
