#include "base/result.h"

#include <gtest/gtest.h>

#include <string>

namespace fjord {
namespace {

enum class test_errc { bad = 1 };

result<int, test_errc> half(int x) {
    if (x % 2 != 0) return fail(test_errc::bad);
    return x / 2;
}

TEST(result, holds_value_or_error) {
    auto a = half(4);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(*a, 2);
    auto b = half(3);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error(), test_errc::bad);
}

TEST(result, void_specialisation) {
    result<void, test_errc> ok;
    EXPECT_TRUE(ok.ok());
    result<void, test_errc> bad = fail(test_errc::bad);
    EXPECT_FALSE(bad.ok());
    EXPECT_EQ(bad.error(), test_errc::bad);
}

TEST(result_death, value_of_error_aborts) {
    auto b = half(3);
    EXPECT_DEATH((void)b.value(), "value\\(\\) on an error");
}

}  // namespace
}  // namespace fjord
