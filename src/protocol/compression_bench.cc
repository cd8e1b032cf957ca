// Compress and decompress MB/s per codec, on a batch payload of 1 KiB
// JSON-like records (semi-compressible, like real producer traffic). Bytes
// processed are uncompressed bytes in both directions.
#include <benchmark/benchmark.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "protocol/compression.h"
#include "protocol/record_batch.h"

namespace {

using namespace fjord::protocol;

std::string json_record(std::mt19937& rng) {
    static const char* words[] = {"user",   "click",   "order",  "checkout", "session", "eu-west-1", "us-east-2",
                                  "mobile", "desktop", "chrome", "firefox",  "premium", "free",      "null"};
    std::string s = "{";
    while (s.size() < 1000) {
        s += "\"";
        s += words[rng() % 14];
        s += "\":\"";
        s += words[rng() % 14];
        s += std::to_string(rng() % 10000);
        s += "\",\"ts\":";
        s += std::to_string(1700000000000 + rng() % 100000);
        s += ",";
    }
    s.resize(1023);
    s += "}";
    return s;
}

// The records section of a batch of `n` 1 KiB records.
std::vector<uint8_t> records_payload(int n) {
    std::mt19937 rng(42);
    batch_builder bb;
    for (int i = 0; i < n; ++i) {
        std::string key = "user-" + std::to_string(rng() % 1000);
        std::string value = json_record(rng);
        bb.add(1700000000000 + i, std::span(reinterpret_cast<const uint8_t*>(key.data()), key.size()),
               std::span(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
    }
    auto batch = record_batch::parse(fjord::shared_bytes::adopt(bb.build().value())).value();
    auto r = batch.records_bytes();
    return {r.begin(), r.end()};
}

const std::vector<uint8_t>& payload() {
    static const std::vector<uint8_t> p = records_payload(128);  // ~130 KiB
    return p;
}

void bm_compress(benchmark::State& state) {
    auto c = static_cast<codec>(state.range(0));
    std::optional<int> level;
    if (state.range(1) != 0) level = static_cast<int>(state.range(1));
    const auto& in = payload();
    size_t out_size = 0;
    for (auto _ : state) {
        auto z = compress(c, in, level);
        out_size = z->size();
        benchmark::DoNotOptimize(z->data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.size()));
    state.counters["ratio"] = static_cast<double>(in.size()) / static_cast<double>(out_size);
    state.SetLabel(std::string(codec_name(c)) + (level ? " level " + std::to_string(*level) : " default level"));
}

void bm_decompress(benchmark::State& state) {
    auto c = static_cast<codec>(state.range(0));
    const auto& in = payload();
    auto z = compress(c, in).value();
    std::vector<uint8_t> out;
    for (auto _ : state) {
        auto r = decompress_into(c, z, out);
        if (!r.ok() || out.size() != in.size()) state.SkipWithError("decompress failed");
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.size()));
    state.SetLabel(codec_name(c));
}

// {codec, level (0: Kafka's default)}.
BENCHMARK(bm_compress)
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({2, 0})
    ->Args({3, 0})
    ->Args({3, 1})
    ->Args({4, 0})
    ->Args({4, 1});
BENCHMARK(bm_decompress)->DenseRange(1, 4);

}  // namespace
