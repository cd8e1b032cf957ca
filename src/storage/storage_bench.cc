// Storage microbenchmarks: append and sequential read through the log,
// each beside a plain file doing the same I/O in the same run (the ratio is
// what matters). 1 KiB records in 16 KiB and 1 MiB batches; buffered (what
// write caching acknowledges), with an fdatasync per append, and with group
// commit through the durability driver (16 appends waiting per round); plain
// writes buffered and O_DIRECT; recovery speed after a crash. Files go to
// $FJORD_BENCH_DIR (default /tmp), at most 256 MiB at a time.
#include <fcntl.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "storage/durability.h"
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
// Plain O_DIRECT writes of the same bytes (aligned buffer and offsets).
void BM_plain_write_odirect(benchmark::State& state) {
    const size_t n = static_cast<size_t>(state.range(0));
    const bool fsync_each = state.range(1) != 0;
    const std::string dir = bench_dir("odirect");
    std::filesystem::create_directories(dir);
    int fd = ::open((dir + "/plain").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    if (fd < 0) {
        state.SkipWithError("O_DIRECT is not supported here");
        return;
    }
    void* buf = nullptr;
    if (::posix_memalign(&buf, 4096, n) != 0) std::abort();
    std::memset(buf, 7, n);
    uint64_t pos = 0;
    for (auto _ : state) {
        if (::pwrite(fd, buf, n, static_cast<off_t>(pos)) != static_cast<ssize_t>(n)) state.SkipWithError("write");
        pos += n;
        if (fsync_each) ::fdatasync(fd);
        if (pos > (256u << 20)) pos = 0;
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
    ::close(fd);
    std::free(buf);
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_plain_write_odirect)
    ->Args({16 << 10, 0})
    ->Args({1 << 20, 0})
    ->Args({16 << 10, 1})
    ->Args({1 << 20, 1})
    ->MinTime(0.3)
    ->UseRealTime();

// Group commit: 16 appends wait on the durability driver per round, as 16
// producers (or one pipelining) would; io_uring does the fdatasyncs.
void BM_append_group_commit(benchmark::State& state) {
    const size_t batch_bytes = static_cast<size_t>(state.range(0));
    const int in_flight = 16;
    auto batch = batch_of(batch_bytes);
    const std::string dir = bench_dir("groupcommit");
    file_cache cache(posix_file_system(), 16);
    log_config cfg;
    cfg.segment_bytes = 128 << 20;
    auto l = std::move(log::create(cache, dir, {"bench", 0}, cfg, nullptr)).value();
    auto engine = io_engine::create();
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> q;
    auto post = [&](std::function<void()> f) {
        std::lock_guard lock(mu);
        q.push_back(std::move(f));
        cv.notify_one();
    };
    durability d(*l, *engine, post, durability_config{}, 0);
    for (auto _ : state) {
        int acked = 0;
        for (int i = 0; i < in_flight; ++i) {
            auto r = l->append(batch, {.now_ms = 1});
            if (!r) state.SkipWithError("append failed");
            d.appended(r->last_offset, 1, 1, [&](int) { ++acked; });
        }
        while (acked < in_flight || !d.idle()) {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return !q.empty(); });
            auto f = std::move(q.front());
            q.pop_front();
            lock.unlock();
            f();
        }
        if (l->size_bytes() > (256 << 20)) {
            state.PauseTiming();
            (void)l->truncate_prefix(l->end_offset());
            state.ResumeTiming();
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in_flight * batch.size()));
    state.counters["fsync_rounds"] = static_cast<double>(d.rounds());
    engine->stop();
    l.reset();
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_append_group_commit)->Arg(16 << 10)->Arg(1 << 20)->MinTime(0.3)->UseRealTime();

// Recovery after a crash: open a 128 MiB log with no clean-shutdown marker
// and the recovery point at 0, so every batch is validated. Bytes/s is the
// recovery speed (seconds per GiB = 1 / that).
void BM_recovery_scan(benchmark::State& state) {
    auto batch = batch_of(1 << 20);
    const std::string dir = bench_dir("recovery");
    log_config cfg;
    cfg.segment_bytes = 32 << 20;
    {
        file_cache cache(posix_file_system(), 16);
        auto l = std::move(log::create(cache, dir, {"bench", 0}, cfg, nullptr)).value();
        while (l->size_bytes() < (128 << 20)) (void)l->append(batch, {.now_ms = 1});
        (void)l->sync();
    }
    int64_t bytes = 0;
    for (auto _ : state) {
        file_cache cache(posix_file_system(), 16);
        std::string detail;
        recovery_report report;
        log::open_options o;
        auto l = log::open(cache, dir, {"bench", 0}, cfg, o, detail, &report);
        if (!l || !report.scanned) state.SkipWithError("recovery did not run");
        bytes += (*l)->size_bytes();
    }
    state.SetBytesProcessed(bytes);
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_recovery_scan)->MinTime(0.5)->UseRealTime()->Unit(benchmark::kMillisecond);

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
