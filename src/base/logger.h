// logger: one line per event on stderr, "time level [shard] message".
//
// Each line is formatted into a local buffer and written with one write(2),
// so lines from different shards never interleave. Logging is for events
// (start, stop, a bad request, a partition going offline), never per record.
//
// Threading: any thread. The shard number printed is the calling thread's
// (set_log_shard), or "-" outside shards.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace fjord {

enum class log_level : uint8_t { debug, info, warn, error };

void set_log_level(log_level l);
log_level current_log_level();
void set_log_shard(int shard);
void write_log_line(log_level l, std::string_view msg);

template <typename... Args>
void log_at(log_level l, fmt::format_string<Args...> f, Args&&... args) {
    if (l < current_log_level()) return;
    write_log_line(l, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
    log_at(log_level::debug, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
    log_at(log_level::info, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
    log_at(log_level::warn, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
    log_at(log_level::error, f, std::forward<Args>(args)...);
}

}  // namespace fjord
