// fjord_ceiling: what this machine allows, measured without any broker, so
// that broker figures can be read as a fraction of it (bench/compare.sh).
//
//   tcp   one TCP connection over loopback, a sender thread and a receiver
//         thread (each pinned to its CPU with --send-cpu / --recv-cpu),
//         1 MiB writes for --seconds: MB/s
//   disk  in --dir, one file at a time, each deleted afterwards:
//           buffered        1 MiB write()s into the page cache, no fsync
//                           (after one unreported pass of the same)
//           buffered_fsync  the same, then one fdatasync: MB/s to the device
//           fsync_1m        1 MiB write() + fdatasync, repeated
//           direct          O_DIRECT 1 MiB writes (no page cache)
//           direct_dsync    O_DIRECT|O_DSYNC 1 MiB writes
//           sync_4k         4 KiB append + fdatasync, repeated: the floor of
//                           an acknowledge-after-fsync latency (p50/p99)
//         each for at most --bytes and at most --seconds
//
// One JSON line per test on stdout. Linux only; no dependency but libc.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "fjord_ceiling: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

struct options {
    std::string mode;
    std::string dir = "/tmp";
    int64_t bytes = 512LL << 20;
    double seconds = 5;
    int send_cpu = -1;
    int recv_cpu = -1;
};

constexpr size_t block = 1 << 20;

void print_rate(const char* test, int64_t bytes, int64_t ns, const char* note = "") {
    const double s = static_cast<double>(ns) / 1e9;
    std::printf("{\"test\":\"%s\",\"bytes\":%lld,\"seconds\":%.4f,\"mb_per_s\":%.1f%s}\n", test,
                static_cast<long long>(bytes), s, static_cast<double>(bytes) / 1e6 / s, note);
    std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// tcp

void run_tcp(const options& o) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0) die("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
    if (listen(ls, 1) != 0) die("listen");
    if (getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0) die("getsockname");

    std::atomic<int64_t> received{0};
    std::atomic<int64_t> recv_end_ns{0};
    std::thread receiver([&] {
        pin(o.recv_cpu);
        int fd = accept(ls, nullptr, nullptr);
        if (fd < 0) die("accept");
        std::vector<char> buf(block);
        int64_t n = 0;
        while (true) {
            ssize_t r = read(fd, buf.data(), buf.size());
            if (r <= 0) break;
            n += r;
        }
        recv_end_ns = now_ns();
        received = n;
        close(fd);
    });
    pin(o.send_cpu);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    std::vector<char> buf(block, 'x');
    const int64_t t0 = now_ns(), deadline = t0 + static_cast<int64_t>(o.seconds * 1e9);
    while (now_ns() < deadline) {
        size_t off = 0;
        while (off < buf.size()) {
            ssize_t w = write(fd, buf.data() + off, buf.size() - off);
            if (w < 0) die("write");
            off += static_cast<size_t>(w);
        }
    }
    close(fd);
    receiver.join();
    close(ls);
    print_rate("tcp_loopback", received.load(), recv_end_ns.load() - t0);
}

// ---------------------------------------------------------------------------
// disk

void* aligned_block() {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, block) != 0) die("posix_memalign");
    std::memset(p, 0x5a, block);
    // Vary the bytes so that a compressing or deduplicating device gains little.
    auto* b = static_cast<unsigned char*>(p);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < block; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = static_cast<unsigned char>(x);
    }
    return p;
}

void write_all(int fd, const void* buf, size_t n) {
    const auto* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
}

// Writes 1 MiB blocks until --bytes or --seconds; `sync_each` fdatasyncs
// after every block, `sync_end` once at the end.
void disk_blocks(const options& o, const char* test, int flags, bool sync_each, bool sync_end, void* buf,
                 bool report = true) {
    const std::string path = o.dir + "/fjord-ceiling-" + test;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | flags, 0644);
    if (fd < 0) {
        if (flags & O_DIRECT) {
            std::printf("{\"test\":\"%s\",\"error\":\"open: %s\"}\n", test, std::strerror(errno));
            return;
        }
        die("open");
    }
    const int64_t t0 = now_ns(), deadline = t0 + static_cast<int64_t>(o.seconds * 1e9);
    int64_t n = 0;
    while (n < o.bytes && now_ns() < deadline) {
        write_all(fd, buf, block);
        n += static_cast<int64_t>(block);
        if (sync_each && fdatasync(fd) != 0) die("fdatasync");
    }
    if (sync_end && fdatasync(fd) != 0) die("fdatasync");
    const int64_t t1 = now_ns();
    close(fd);
    unlink(path.c_str());
    if (report) print_rate(test, n, t1 - t0);
}

void disk_sync_4k(const options& o, void* buf) {
    const std::string path = o.dir + "/fjord-ceiling-sync_4k";
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open");
    std::vector<int64_t> lat;
    lat.reserve(200'000);
    const int64_t t0 = now_ns(), deadline = t0 + static_cast<int64_t>(std::min(o.seconds, 5.0) * 1e9);
    while (now_ns() < deadline && lat.size() < lat.capacity()) {
        const int64_t a = now_ns();
        write_all(fd, buf, 4096);
        if (fdatasync(fd) != 0) die("fdatasync");
        lat.push_back(now_ns() - a);
    }
    const int64_t t1 = now_ns();
    close(fd);
    unlink(path.c_str());
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double q) {
        return static_cast<double>(
                   lat[std::min(lat.size() - 1, static_cast<size_t>(q * static_cast<double>(lat.size())))]) /
               1e6;
    };
    std::printf(
        "{\"test\":\"sync_4k\",\"ops\":%zu,\"seconds\":%.4f,\"ops_per_s\":%.0f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,"
        "\"p999_ms\":%.4f,\"max_ms\":%.4f}\n",
        lat.size(), static_cast<double>(t1 - t0) / 1e9,
        static_cast<double>(lat.size()) / (static_cast<double>(t1 - t0) / 1e9), pct(0.5), pct(0.99), pct(0.999),
        static_cast<double>(lat.back()) / 1e6);
    std::fflush(stdout);
}

void run_disk(const options& o) {
    void* buf = aligned_block();
    // A first buffered pass, not reported: the first one after other work
    // also pays for reclaiming the page cache it finds, which is not a
    // property of the disk.
    disk_blocks(o, "buffered", 0, false, false, buf, false);
    disk_blocks(o, "buffered", 0, false, false, buf);
    disk_blocks(o, "buffered_fsync", 0, false, true, buf);
    disk_blocks(o, "fsync_1m", 0, true, false, buf);
    disk_blocks(o, "direct", O_DIRECT, false, false, buf);
    disk_blocks(o, "direct_dsync", O_DIRECT | O_DSYNC, false, false, buf);
    disk_sync_4k(o, buf);
    free(buf);
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (argc < 2) {
        std::fputs("usage: fjord_ceiling tcp|disk [--dir D] [--bytes N] [--seconds S] [--send-cpu C] [--recv-cpu C]\n",
                   stderr);
        return 2;
    }
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string a = argv[i], v = argv[i + 1];
        if (a == "--dir")
            o.dir = v;
        else if (a == "--bytes")
            o.bytes = std::stoll(v);
        else if (a == "--seconds")
            o.seconds = std::stod(v);
        else if (a == "--send-cpu")
            o.send_cpu = std::stoi(v);
        else if (a == "--recv-cpu")
            o.recv_cpu = std::stoi(v);
        else {
            std::fprintf(stderr, "fjord_ceiling: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (o.mode == "tcp") {
        run_tcp(o);
    } else if (o.mode == "disk") {
        run_disk(o);
    } else {
        std::fprintf(stderr, "fjord_ceiling: unknown mode %s\n", o.mode.c_str());
        return 2;
    }
    return 0;
}
