#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace fjord::detail {

void assert_failed(const char* file, int line, const char* cond, const std::string& msg) {
    std::fprintf(stderr, "fjord: assertion failed at %s:%d: %s: %s\n", file, line, cond, msg.c_str());
    std::fflush(stderr);
    std::abort();
}

}  // namespace fjord::detail
