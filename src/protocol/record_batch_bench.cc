// Decoding a 1 MiB Produce request (v9, one partition, uncompressed batches
// of 1 KiB records) and validating every batch (CRC32C, header, every record),
// against a memcpy of the same bytes.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "protocol/gen/produce.h"
#include "protocol/record_batch.h"

namespace {

using namespace fjord;
using namespace fjord::protocol;

std::vector<uint8_t> produce_request_bytes() {
    std::vector<uint8_t> records;
    std::string value(1024, 'x');
    for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>('a' + (i * 7) % 26);
    int64_t offset = 0;
    while (records.size() < (1 << 20) - (64 << 10)) {
        batch_builder bb(
            {.base_offset = 0, .producer_id = 1, .producer_epoch = 0, .base_sequence = static_cast<int32_t>(offset)});
        for (int i = 0; i < 64; ++i) {
            std::string key = "key-" + std::to_string(offset++);
            bb.add(1700000000000 + i, std::span(reinterpret_cast<const uint8_t*>(key.data()), key.size()),
                   std::span(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
        }
        auto b = bb.build().value();
        records.insert(records.end(), b.begin(), b.end());
    }
    gen::produce_request req;
    req.acks = -1;
    req.timeout_ms = 30000;
    gen::produce_request::topic_produce_data topic;
    topic.name = "bench";
    gen::produce_request::partition_produce_data part;
    part.index = 0;
    part.records = shared_bytes::adopt(std::move(records));
    topic.partition_data.push_back(std::move(part));
    req.topic_data.push_back(std::move(topic));
    return gen::encode_message(req, 9).value();
}

const shared_bytes& request() {
    static const shared_bytes r = shared_bytes::adopt(produce_request_bytes());
    return r;
}

void bm_produce_decode_validate(benchmark::State& state) {
    const shared_bytes& body = request();
    int64_t records = 0;
    for (auto _ : state) {
        auto req = gen::decode_message<gen::produce_request>(body, 9);
        if (!req) {
            state.SkipWithError("decode failed");
            break;
        }
        for (const auto& t : req->topic_data) {
            for (const auto& p : t.partition_data) {
                batch_splitter split(*p.records);
                while (auto batch = split.next()) {
                    if (!batch->validate().ok()) state.SkipWithError("invalid batch");
                    records += batch->record_count();
                }
                if (!split.clean_end()) state.SkipWithError("partial batch");
            }
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
    state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
}
BENCHMARK(bm_produce_decode_validate);

// Validation plus reading every record's key and value (the broker's
// timestamp and key checks touch each record this way).
void bm_produce_iterate_records(benchmark::State& state) {
    const shared_bytes& body = request();
    auto req = gen::decode_message<gen::produce_request>(body, 9).value();
    const shared_bytes& records = *req.topic_data[0].partition_data[0].records;
    std::vector<uint8_t> scratch;
    for (auto _ : state) {
        batch_splitter split(records);
        size_t bytes = 0;
        while (auto batch = split.next()) {
            auto payload = batch->payload(scratch);
            record_reader rr = batch->records(*payload);
            record_view rv;
            while (rr.next(rv)) bytes += rv.value->size();
        }
        benchmark::DoNotOptimize(bytes);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * records.size()));
}
BENCHMARK(bm_produce_iterate_records);

void bm_produce_memcpy(benchmark::State& state) {
    const shared_bytes& body = request();
    std::vector<uint8_t> dst(body.size());
    for (auto _ : state) {
        std::memcpy(dst.data(), body.data(), body.size());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(bm_produce_memcpy);

}  // namespace
