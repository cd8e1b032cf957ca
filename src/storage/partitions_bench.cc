// partitions_bench: memory per idle partition, measured as process RSS (and
// as heap, as the ten_thousand_partitions test does).
//
//   partitions_bench [N=10000] [BATCHES=3]
//
// A child process creates N partitions with BATCHES small batches each in a
// temp dir under $FJORD_BENCH_DIR (default /tmp) on the real file system and
// shuts down cleanly. This process then reads VmRSS (/proc/self/status) and
// the malloc heap, opens the log dir (no scans after a clean shutdown), reads
// one batch from every partition (loading its indexes and opening files, as
// a first fetch would), calls release_memory() on every log, and reads them
// again: (after - before) / N. The open-file cache is bounded (1024 by
// default) and counted in both figures.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "storage/log_manager.h"
#include "storage/test_util.h"

using namespace fjord;
using namespace fjord::storage;

namespace {

long vm_rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
}

int write_partitions(const std::string& dir, int n, int batches) {
    log_manager_config mc;
    mc.dir = dir;
    auto m = log_manager::open(posix_file_system(), mc, 0);
    if (!m) return std::fprintf(stderr, "open %s: %s\n", dir.c_str(), describe(m.error())), 1;
    for (int p = 0; p < n; ++p) {
        auto l = (*m)->create_log({"idle", p}, mc.defaults, nullptr);
        if (!l) return std::fprintf(stderr, "create %d: %s\n", p, describe(l.error())), 1;
        for (int b = 0; b < batches; ++b) {
            auto bytes = testing::make_batch(2, 100, static_cast<uint64_t>(p * batches + b), 1700000000000 + b);
            if (auto r = (*l)->append(bytes, {.now_ms = 1700000000000}); !r)
                return std::fprintf(stderr, "append: %s\n", describe(r.error())), 1;
        }
    }
    if (auto r = (*m)->shutdown(); !r) return std::fprintf(stderr, "shutdown: %s\n", describe(r.error())), 1;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
    const int batches = argc > 2 ? std::atoi(argv[2]) : 3;
    if (n <= 0 || batches <= 0) return std::fprintf(stderr, "usage: partitions_bench [N] [BATCHES]\n"), 2;
    const char* base = std::getenv("FJORD_BENCH_DIR");
    const std::string dir = std::string(base ? base : "/tmp") + "/fjord-bench-partitions-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    // Written by a child, so that none of its memory is in this process.
    const pid_t child = ::fork();
    if (child == 0) std::_Exit(write_partitions(dir, n, batches));
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return std::fprintf(stderr, "writing %d partitions failed\n", n), 1;

    malloc_trim(0);
    const long rss_before = vm_rss_kib();
    const size_t heap_before = mallinfo2().uordblks;
    int rc = 0;
    {
        log_manager_config mc;
        mc.dir = dir;
        auto m = log_manager::open(posix_file_system(), mc, 0);
        if (!m) return std::fprintf(stderr, "open: %s\n", describe(m.error())), 1;
        if ((*m)->logs().size() != static_cast<size_t>(n) || !(*m)->opened_clean())
            return std::fprintf(stderr, "opened %zu partitions (clean %d)\n", (*m)->logs().size(),
                                int((*m)->opened_clean())),
                   1;
        for (const auto& [tp, l] : (*m)->logs()) {
            auto r = l->read(0, 1, INT64_MAX);
            if (!r || r->chunks.empty()) return std::fprintf(stderr, "read %s failed\n", tp.topic.c_str()), 1;
        }
        size_t accounted = 0;
        for (const auto& [tp, l] : (*m)->logs()) {
            l->release_memory();
            accounted += l->memory_bytes();
        }
        malloc_trim(0);
        const long rss_after = vm_rss_kib();
        const size_t heap_after = mallinfo2().uordblks;
        std::printf(
            "%d idle partitions (%d batches each, released): RSS %.0f bytes per partition "
            "(VmRSS %ld -> %ld KiB), heap %.0f bytes per partition (%.0f in log objects), %zu open files\n",
            n, batches, (rss_after - rss_before) * 1024.0 / n, rss_before, rss_after,
            static_cast<double>(heap_after - heap_before) / n, static_cast<double>(accounted) / n,
            (*m)->files().open_count());
        if (auto r = (*m)->shutdown(); !r) rc = 1;
    }
    std::filesystem::remove_all(dir);
    return rc;
}
