// Storage microbenchmarks: append and sequential read through the log,
// each beside a plain file doing the same I/O in the same run (the ratio is
// what matters). 1 KiB records in 16 KiB and 1 MiB batches; buffered and
// with an fdatasync per append. Files go to $FJORD_BENCH_DIR (default /tmp).
#include <fcntl.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include "storage/log.h"
#include "storage/test_util.h"

namespace fjord::storage {
namespace {

std::string bench_dir(const char* name) {
    const char* base = std::getenv("FJORD_BENCH_DIR");
    std::string d = std::string(base ? base : "/tmp") + "/fjord-bench-" + name + "-" + std::to_string(::getpid());
    std::filesystem::remove_all(d);
    return d;
}

std::vector<uint8_t> batch_of(size_t batch_bytes) {
    return testing::make_batch(static_cast<int>(batch_bytes / 1024), 1000, 7, 1);
}

void append_log(benchmark::State& state, bool fsync_each) {
    const size_t batch_bytes = static_cast<size_t>(state.range(0));
    auto batch = batch_of(batch_bytes);
    const std::string dir = bench_dir("append");
    file_cache cache(posix_file_system(), 16);
    log_config cfg;
    cfg.segment_bytes = 128 << 20;
    auto l = std::move(log::create(cache, dir, {"bench", 0}, cfg, nullptr)).value();
    for (auto _ : state) {
        auto r = l->append(batch, {.now_ms = 1});
        if (!r) state.SkipWithError("append failed");
        if (fsync_each && !l->sync()) state.SkipWithError("sync failed");
        if (l->size_bytes() > (256 << 20)) {
            state.PauseTiming();
            (void)l->sync();
            (void)l->truncate_prefix(l->end_offset());  // drop old segments, keep going
            state.ResumeTiming();
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
    l.reset();
    std::filesystem::remove_all(dir);
}

void plain_write(benchmark::State& state, bool fsync_each) {
    const size_t batch_bytes = static_cast<size_t>(state.range(0));
    auto batch = batch_of(batch_bytes);
    const std::string dir = bench_dir("plain");
    std::filesystem::create_directories(dir);
    int fd = ::open((dir + "/plain").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    uint64_t pos = 0;
    for (auto _ : state) {
        if (::pwrite(fd, batch.data(), batch.size(), static_cast<off_t>(pos)) != static_cast<ssize_t>(batch.size()))
            state.SkipWithError("write failed");
        pos += batch.size();
        if (fsync_each) ::fdatasync(fd);
        if (pos > (256u << 20)) {
            state.PauseTiming();
            ::ftruncate(fd, 0);
            pos = 0;
            state.ResumeTiming();
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
    ::close(fd);
    std::filesystem::remove_all(dir);
}

void BM_append_buffered(benchmark::State& s) {
    append_log(s, false);
}
void BM_plain_write_buffered(benchmark::State& s) {
    plain_write(s, false);
}
void BM_append_fdatasync(benchmark::State& s) {
    append_log(s, true);
}
void BM_plain_write_fdatasync(benchmark::State& s) {
    plain_write(s, true);
}
BENCHMARK(BM_append_buffered)->Arg(16 << 10)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
BENCHMARK(BM_plain_write_buffered)->Arg(16 << 10)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
BENCHMARK(BM_append_fdatasync)->Arg(16 << 10)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
BENCHMARK(BM_plain_write_fdatasync)->Arg(16 << 10)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();

// Sequential reads of a 64 MiB log (page cache warm), 1 MiB per read.
void BM_read_sequential(benchmark::State& state) {
    const size_t batch_bytes = static_cast<size_t>(state.range(0));
    auto batch = batch_of(batch_bytes);
    const std::string dir = bench_dir("read");
    file_cache cache(posix_file_system(), 16);
    auto l = std::move(log::create(cache, dir, {"bench", 0}, log_config{}, nullptr)).value();
    while (l->size_bytes() < (64 << 20)) (void)l->append(batch, {.now_ms = 1});
    int64_t o = 0;
    size_t bytes = 0;
    for (auto _ : state) {
        auto r = l->read(o, 1 << 20, INT64_MAX);
        if (!r) state.SkipWithError("read failed");
        bytes += r->bytes;
        o = r->next_offset >= l->end_offset() ? 0 : r->next_offset;
    }
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    l.reset();
    std::filesystem::remove_all(dir);
}

void BM_plain_read(benchmark::State& state) {
    const std::string dir = bench_dir("plainread");
    std::filesystem::create_directories(dir);
    int fd = ::open((dir + "/plain").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    std::vector<uint8_t> chunk(1 << 20, 1);
    for (int i = 0; i < 64; ++i) (void)::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(i) << 20);
    uint64_t pos = 0;
    size_t bytes = 0;
    for (auto _ : state) {
        // Allocates a buffer per read, as the log does.
        std::vector<uint8_t> buf(chunk.size());
        ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(pos));
        bytes += static_cast<size_t>(n);
        pos = pos + (1 << 20) >= (64u << 20) ? 0 : pos + (1 << 20);
        benchmark::DoNotOptimize(buf.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    ::close(fd);
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_read_sequential)->Arg(16 << 10)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();
BENCHMARK(BM_plain_read)->MinTime(0.3)->UseRealTime();

}  // namespace
}  // namespace fjord::storage
