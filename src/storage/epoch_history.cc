#include "storage/epoch_history.h"

#include <algorithm>

#include "base/assert.h"

namespace fjord::storage {

bool epoch_history::assign(int32_t epoch, int64_t start_offset) {
    FJORD_ASSERT(epoch >= 0 && start_offset >= 0, "assign epoch {} at {}", epoch, start_offset);
    if (!entries_.empty()) {
        if (epoch <= entries_.back().epoch) return false;
        FJORD_ASSERT(start_offset >= entries_.back().start_offset, "epoch {} at {} before epoch {} at {}", epoch,
                     start_offset, entries_.back().epoch, entries_.back().start_offset);
        // An epoch that never got a batch is replaced (Kafka does the same).
        if (start_offset == entries_.back().start_offset) entries_.pop_back();
    }
    entries_.push_back({epoch, start_offset});
    return true;
}

int32_t epoch_history::epoch_at(int64_t offset) const {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), offset,
                               [](int64_t o, const epoch_entry& e) { return o < e.start_offset; });
    if (it == entries_.begin()) return undefined_epoch;
    return std::prev(it)->epoch;
}

std::pair<int32_t, int64_t> epoch_history::end_offset_for(int32_t epoch, int64_t log_end_offset) const {
    if (epoch == undefined_epoch || entries_.empty()) return {undefined_epoch, undefined_epoch_offset};
    if (epoch == entries_.back().epoch) return {epoch, log_end_offset};
    // The first entry with a higher epoch ends the requested one.
    auto higher = std::upper_bound(entries_.begin(), entries_.end(), epoch,
                                   [](int32_t e, const epoch_entry& x) { return e < x.epoch; });
    if (higher == entries_.end()) return {undefined_epoch, undefined_epoch_offset};
    if (higher == entries_.begin()) return {epoch, higher->start_offset};
    return {std::prev(higher)->epoch, higher->start_offset};
}

bool epoch_history::truncate_from_end(int64_t end_offset) {
    size_t before = entries_.size();
    while (!entries_.empty() && entries_.back().start_offset >= end_offset) entries_.pop_back();
    return entries_.size() != before;
}

bool epoch_history::truncate_from_start(int64_t start_offset) {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), start_offset,
                               [](int64_t o, const epoch_entry& e) { return o < e.start_offset; });
    if (it == entries_.begin()) return false;
    auto covering = std::prev(it);
    bool changed = covering != entries_.begin() || covering->start_offset != start_offset;
    covering->start_offset = start_offset;
    entries_.erase(entries_.begin(), covering);
    return changed;
}

}  // namespace fjord::storage
