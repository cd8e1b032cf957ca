// The leader epoch history of one partition (Kafka's LeaderEpochFileCache):
// the first offset of every leader epoch, for OffsetForLeaderEpoch and Raft's
// term lookups. In memory; the log persists it in leader-epoch-checkpoint and
// truncates it with the log. Single-threaded: the partition's shard.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "storage/checkpoint.h"

namespace fjord::storage {

inline constexpr int32_t undefined_epoch = -1;
inline constexpr int64_t undefined_epoch_offset = -1;

class epoch_history {
public:
    epoch_history() = default;
    explicit epoch_history(std::vector<epoch_entry> entries) : entries_(std::move(entries)) {}

    // Records that `epoch` starts at `start_offset` if it is newer than the
    // latest epoch; true if that changed anything. Callers check regressions.
    bool assign(int32_t epoch, int64_t start_offset);
    int32_t latest_epoch() const { return entries_.empty() ? undefined_epoch : entries_.back().epoch; }
    // The epoch of the entry covering `offset`, or undefined_epoch.
    int32_t epoch_at(int64_t offset) const;
    // Kafka's endOffsetFor: {epoch, end offset} for OffsetForLeaderEpoch.
    std::pair<int32_t, int64_t> end_offset_for(int32_t epoch, int64_t log_end_offset) const;
    // Removes entries starting at or after `end_offset`; true if any.
    bool truncate_from_end(int64_t end_offset);
    // Drops entries wholly below `start_offset`; the one covering it now starts
    // there. True if anything changed.
    bool truncate_from_start(int64_t start_offset);
    const std::vector<epoch_entry>& entries() const { return entries_; }

private:
    std::vector<epoch_entry> entries_;
};

}  // namespace fjord::storage
