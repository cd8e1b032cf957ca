// Always-on assertions for invariants. A failed assertion prints the file,
// line, condition and message with its values, then aborts the process before
// it can write anything wrong. Never use these on untrusted input: check it.
#pragma once

#include <fmt/format.h>

namespace fjord::detail {
[[noreturn]] void assert_failed(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace fjord::detail

#define FJORD_ASSERT(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) [[unlikely]] {                                                                \
            ::fjord::detail::assert_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
        }                                                                                          \
    } while (0)

#define FJORD_UNREACHABLE(...) \
    ::fjord::detail::assert_failed(__FILE__, __LINE__, "unreachable", ::fmt::format(__VA_ARGS__))
