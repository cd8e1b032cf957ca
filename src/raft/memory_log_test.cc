#include "raft/memory_log.h"

#include <gtest/gtest.h>

namespace fjord::raft {
namespace {

entry batch(int64_t base, int32_t records, int32_t term) {
    return entry{offset(base), records, term_id(term), entry_kind::data, shared_bytes::copy_of("x")};
}

TEST(memory_log, append_read_and_terms) {
    memory_log l;
    EXPECT_EQ(l.start(), offset(0));
    EXPECT_EQ(l.next(), offset(0));
    EXPECT_EQ(l.term_at(offset(-1)), no_term);
    l.append(batch(0, 3, 1));
    l.append(batch(3, 1, 1));
    l.append(batch(4, 2, 3));
    EXPECT_EQ(l.next(), offset(6));
    EXPECT_EQ(l.term_at(offset(1)), term_id(1));
    EXPECT_EQ(l.term_at(offset(5)), term_id(3));
    EXPECT_EQ(l.batch_base(offset(2)), offset(0));
    EXPECT_EQ(l.last_offset_for_term(term_id(1)), offset(3));
    EXPECT_EQ(l.last_offset_for_term(term_id(2)), offset(3));
    EXPECT_EQ(l.last_offset_for_term(term_id(3)), offset(5));
    EXPECT_EQ(l.last_offset_for_term(term_id(0)), offset(-1));
    std::vector<entry> out;
    l.read(offset(3), 1, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].base, offset(3));
}

TEST(memory_log, truncations) {
    memory_log l;
    l.append(batch(0, 2, 1));
    l.append(batch(2, 2, 2));
    l.append(batch(4, 2, 2));
    l.truncate_suffix(offset(4));
    EXPECT_EQ(l.next(), offset(4));
    l.append(batch(4, 1, 5));
    EXPECT_EQ(l.last_offset_for_term(term_id(4)), offset(3));
    l.truncate_prefix(offset(2), term_id(1));
    EXPECT_EQ(l.start(), offset(2));
    EXPECT_EQ(l.term_at(offset(1)), term_id(1));
    EXPECT_EQ(l.last_offset_for_term(term_id(1)), offset(1));
    l.truncate_prefix(offset(10), term_id(7));
    EXPECT_EQ(l.start(), offset(10));
    EXPECT_EQ(l.next(), offset(10));
    EXPECT_EQ(l.last_term(), term_id(7));
    l.append(batch(10, 1, 7));
    EXPECT_EQ(l.next(), offset(11));
}

}  // namespace
}  // namespace fjord::raft
