// Hot paths of the Kafka handlers, without sockets or disks:
//   - produce validation of a 1 MiB batch of 1 KiB records (every record
//     walked; lz4 decompressed into the reused scratch), against a memcpy of
//     the same bytes;
//   - encoding a Fetch response carrying 16 partitions of 1 MiB batches,
//     spliced (the batches are sent from their own buffers) or copied.
#include <benchmark/benchmark.h>

#include <cstring>

#include "kafka/produce_validation.h"
#include "kafka/request.h"
#include "protocol/gen/fetch.h"
#include "protocol/record_batch.h"

namespace fjord::kafka {
namespace {
using namespace fjord::protocol;

std::vector<uint8_t> megabyte_batch(codec c) {
    batch_options o;
    o.compression = c;
    batch_builder b(o);
    std::vector<uint8_t> value(1024);
    for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<uint8_t>("{\"id\":12345,\"name\":\"x\"}"[i % 24]);
    for (int i = 0; i < 1024; ++i) {
        std::string key = "key-" + std::to_string(i);
        b.add(1'700'000'000'000 + i, std::span(reinterpret_cast<const uint8_t*>(key.data()), key.size()),
              std::span<const uint8_t>(value));
    }
    return b.build().value();
}

void produce_validation(benchmark::State& state) {
    auto c = static_cast<codec>(state.range(0));
    auto bytes = shared_bytes::adopt(megabyte_batch(c));
    topic_config cfg;
    cfg.max_message_bytes = 64 << 20;
    cfg.timestamp_after_max_ms = INT64_MAX;
    std::vector<uint8_t> scratch;
    const size_t uncompressed = 1024 * (1024 + 12);
    for (auto _ : state) {
        auto r = validate_produce_records(bytes, cfg, 1'700'000'000'000, "t-0", scratch);
        if (r.error != 0) state.SkipWithError("batch rejected");
        benchmark::DoNotOptimize(r.records);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * uncompressed));
    state.SetItemsProcessed(state.iterations() * 1024);
}
BENCHMARK(produce_validation)->Arg(static_cast<int>(codec::none))->Arg(static_cast<int>(codec::lz4));

void memcpy_megabyte(benchmark::State& state) {
    std::vector<uint8_t> a(1024 * (1024 + 12), 1), b(a.size());
    for (auto _ : state) {
        std::memcpy(b.data(), a.data(), a.size());
        benchmark::DoNotOptimize(b.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * a.size()));
}
BENCHMARK(memcpy_megabyte);

void fetch_response_encode(benchmark::State& state) {
    const bool splice = state.range(0) != 0;
    auto batch = shared_bytes::adopt(megabyte_batch(codec::none));
    gen::fetch_response resp;
    gen::fetch_response::fetchable_topic_response t;
    t.topic_id.bytes[0] = 1;
    for (int p = 0; p < 16; ++p) {
        gen::fetch_response::partition_data pd;
        pd.partition_index = p;
        pd.high_watermark = 1000;
        pd.records = batch;
        t.partitions.push_back(pd);
    }
    resp.responses.push_back(t);
    for (auto _ : state) {
        writer w(256);
        if (splice) w.enable_splices(splice_min_bytes);
        resp.encode(w, 16);
        benchmark::DoNotOptimize(w.total_size());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 16 * batch.size()));
}
BENCHMARK(fetch_response_encode)->Arg(0)->Arg(1);

}  // namespace
}  // namespace fjord::kafka
