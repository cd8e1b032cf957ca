#include "base/bytes.h"

#include <gtest/gtest.h>

namespace fjord {
namespace {

TEST(shared_bytes, adopt_keeps_bytes_without_copy) {
    std::vector<uint8_t> v{1, 2, 3, 4};
    const uint8_t* p = v.data();
    auto b = shared_bytes::adopt(std::move(v));
    EXPECT_EQ(b.data(), p);
    EXPECT_EQ(b.size(), 4u);
}

TEST(shared_bytes, slices_share_the_buffer_and_outlive_the_parent) {
    shared_bytes s;
    {
        auto b = shared_bytes::copy_of(std::string_view("hello world"));
        s = b.slice(6, 5);
        EXPECT_EQ(s.data(), b.data() + 6);
    }
    EXPECT_EQ(s, shared_bytes::copy_of(std::string_view("world")));
}

TEST(shared_bytes, equality_compares_content) {
    EXPECT_EQ(shared_bytes(), shared_bytes::copy_of(std::string_view("")));
    EXPECT_NE(shared_bytes::copy_of(std::string_view("a")), shared_bytes::copy_of(std::string_view("b")));
}

TEST(shared_bytes_death, slice_out_of_range_aborts) {
    auto b = shared_bytes::copy_of(std::string_view("abc"));
    EXPECT_DEATH((void)b.slice(2, 2), "slice");
}

}  // namespace
}  // namespace fjord
