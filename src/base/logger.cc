#include "base/logger.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace fjord {
namespace {
std::atomic<log_level> level{log_level::info};
thread_local int shard_of_thread = -1;
constexpr std::string_view names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
}  // namespace

void set_log_level(log_level l) {
    level.store(l, std::memory_order_relaxed);
}
log_level current_log_level() {
    return level.load(std::memory_order_relaxed);
}
void set_log_shard(int shard) {
    shard_of_thread = shard;
}

void write_log_line(log_level l, std::string_view msg) {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    fmt::memory_buffer buf;
    fmt::format_to(std::back_inserter(buf), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000, names[static_cast<int>(l)]);
    if (shard_of_thread >= 0) {
        fmt::format_to(std::back_inserter(buf), "{}", shard_of_thread);
    } else {
        buf.push_back('-');
    }
    fmt::format_to(std::back_inserter(buf), "] {}\n", msg);
    const char* p = buf.data();
    size_t n = buf.size();
    while (n > 0) {
        ssize_t w = ::write(STDERR_FILENO, p, n);
        if (w <= 0) return;  // nowhere to report it
        p += w;
        n -= static_cast<size_t>(w);
    }
}

}  // namespace fjord
