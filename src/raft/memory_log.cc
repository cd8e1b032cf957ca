#include "raft/memory_log.h"

namespace fjord::raft {

size_t memory_log::index_of(offset o) const {
    FJORD_ASSERT(o >= start_ && o < next_, "offset {} outside [{}, {})", o.get(), start_.get(), next_.get());
    // Binary search on base offsets: the last batch with base <= o.
    size_t lo = 0;
    size_t hi = batches_.size();
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (batches_[mid].base <= o) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    const entry& e = batches_[lo];
    FJORD_ASSERT(e.base <= o && o <= e.last(), "batch [{}, {}] does not hold {}", e.base.get(), e.last().get(),
                 o.get());
    return lo;
}

term_id memory_log::term_at(offset o) const {
    if (o == start_ - 1) return prev_term_;
    return batches_[index_of(o)].term;
}

offset memory_log::last_offset_for_term(term_id t) const {
    // The first epoch with a term > t starts one past the answer.
    for (size_t i = 0; i < epochs_.size(); ++i) {
        if (epochs_[i].first > t) return epochs_[i].second - 1;
    }
    return next_ - 1;
}

offset memory_log::batch_base(offset o) const {
    return batches_[index_of(o)].base;
}

const entry& memory_log::batch_at_base(offset base) const {
    const entry& e = batches_[index_of(base)];
    FJORD_ASSERT(e.base == base, "{} is not a batch base", base.get());
    return e;
}

void memory_log::append(entry e) {
    FJORD_ASSERT(e.base == next_, "append at {} but log end is {}", e.base.get(), next_.get());
    FJORD_ASSERT(e.records >= 1, "batch of {} records", e.records);
    term_id last = next_ == start_ ? prev_term_ : batches_.back().term;
    FJORD_ASSERT(e.term >= last, "term {} after term {}", e.term.get(), last.get());
    if (epochs_.empty() || epochs_.back().first != e.term) epochs_.emplace_back(e.term, e.base);
    next_ = e.next();
    batches_.push_back(std::move(e));
}

void memory_log::read(offset from, size_t max_bytes, std::vector<entry>& out) const {
    if (from >= next_) return;
    size_t i = index_of(from);
    FJORD_ASSERT(batches_[i].base == from, "read from {} inside batch at {}", from.get(), batches_[i].base.get());
    size_t bytes = 0;
    for (; i < batches_.size(); ++i) {
        if (bytes > 0 && bytes + batches_[i].size_bytes() > max_bytes) break;
        bytes += batches_[i].size_bytes();
        out.push_back(batches_[i]);
    }
}

void memory_log::truncate_suffix(offset from) {
    if (from >= next_) return;
    FJORD_ASSERT(from >= start_, "suffix truncation at {} below log start {}", from.get(), start_.get());
    size_t i = index_of(from);
    FJORD_ASSERT(batches_[i].base == from, "truncation at {} inside batch at {}", from.get(), batches_[i].base.get());
    batches_.erase(batches_.begin() + static_cast<std::ptrdiff_t>(i), batches_.end());
    next_ = from;
    while (!epochs_.empty() && epochs_.back().second >= from) epochs_.pop_back();
    check_invariants();
}

void memory_log::truncate_prefix(offset new_start, term_id prev_term) {
    if (new_start <= start_) return;
    if (new_start >= next_) {
        batches_.clear();
        epochs_.clear();
        start_ = new_start;
        next_ = new_start;
        prev_term_ = prev_term;
        check_invariants();
        return;
    }
    size_t i = index_of(new_start);
    FJORD_ASSERT(batches_[i].base == new_start, "prefix truncation at {} inside batch at {}", new_start.get(),
                 batches_[i].base.get());
    FJORD_ASSERT(term_at(new_start - 1) == prev_term, "prefix truncation: term {} at {}, caller says {}",
                 term_at(new_start - 1).get(), (new_start - 1).get(), prev_term.get());
    batches_.erase(batches_.begin(), batches_.begin() + static_cast<std::ptrdiff_t>(i));
    start_ = new_start;
    prev_term_ = prev_term;
    // Keep the epoch that covers the new start, with its first offset clamped.
    std::vector<std::pair<term_id, offset>> kept;
    for (auto& [t, first] : epochs_) {
        if (t >= batches_.front().term) kept.emplace_back(t, std::max(first, new_start));
    }
    epochs_ = std::move(kept);
    check_invariants();
}

void memory_log::check_invariants() const {
    FJORD_ASSERT(start_ <= next_, "start {} > next {}", start_.get(), next_.get());
    if (batches_.empty()) {
        FJORD_ASSERT(start_ == next_, "empty log with start {} next {}", start_.get(), next_.get());
        FJORD_ASSERT(epochs_.empty(), "empty log with {} epochs", epochs_.size());
        return;
    }
    FJORD_ASSERT(batches_.front().base == start_, "first batch at {} but start {}", batches_.front().base.get(),
                 start_.get());
    FJORD_ASSERT(batches_.back().next() == next_, "last batch ends at {} but next {}", batches_.back().next().get(),
                 next_.get());
    FJORD_ASSERT(!epochs_.empty() && epochs_.front().second == start_, "epoch history does not start at {}",
                 start_.get());
}

}  // namespace fjord::raft
