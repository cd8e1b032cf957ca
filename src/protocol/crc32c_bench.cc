// CRC32C throughput against memcpy of the same bytes.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "protocol/crc32c.h"

namespace {

void bm_crc32c(benchmark::State& state) {
    std::vector<uint8_t> data(static_cast<size_t>(state.range(0)), 0xa5);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
    for (auto _ : state) {
        benchmark::DoNotOptimize(fjord::protocol::crc32c(data));
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(bm_crc32c)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20);

void bm_memcpy(benchmark::State& state) {
    std::vector<uint8_t> src(static_cast<size_t>(state.range(0)), 0xa5), dst(src.size());
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), src.size());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(bm_memcpy)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20);

}  // namespace
