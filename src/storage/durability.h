// durability: when an append to a log may be acknowledged, and the fsyncs
// that make it so. One per partition log, owned by the log's shard.
//
// Two modes, per topic:
//   group_commit (the default): an append is acknowledged once it is on disk.
//     The fsyncs run on the io_engine, never on the shard; one round of
//     fdatasyncs (every dirty segment, and the directory after a segment was
//     created or deleted) covers every append waiting when it starts, and
//     appends that arrive meanwhile wait for the next round: N concurrent
//     appends cost at most two rounds.
//   write_caching (topic config fjord.write.caching=true, Kafka's own
//     behaviour): an append is acknowledged once it is in the page cache;
//     fsyncs run after flush.messages records or flush.ms milliseconds. A
//     power cut (not a process crash) loses what was acknowledged since the
//     last fsync; with replication, another replica usually still has it.
//
// Threading: every method runs on the owning shard. Completions of the
// io_engine come back through `post`. Lifecycle: keep the durability (and its
// log) alive until idle(); a round in flight calls back into it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>

#include "storage/io_engine.h"
#include "storage/log.h"

namespace fjord::storage {

enum class durability_mode : uint8_t { group_commit, write_caching };

struct durability_config {
    durability_mode mode = durability_mode::group_commit;          // fjord.write.caching
    int64_t flush_messages = std::numeric_limits<int64_t>::max();  // flush.messages (write caching)
    int64_t flush_ms = std::numeric_limits<int64_t>::max();        // flush.ms (write caching)
};

class durability {
public:
    using post_fn = std::function<void(std::function<void()>)>;
    // 0 when the append may be acknowledged; -errno (or -ECANCELED when a
    // truncation removed it) when it must not.
    using done_fn = std::function<void(int)>;

    durability(log& lg, io_engine& engine, post_fn post, durability_config cfg, int64_t now_ms);

    // After log.append() returned [.., last_offset] holding `records` records.
    void appended(int64_t last_offset, int64_t records, int64_t now_ms, done_fn done);
    // Write caching: starts a flush when flush.ms has passed. Call it at
    // next_deadline_ms() (or any time).
    void on_timer(int64_t now_ms);
    int64_t next_deadline_ms() const;
    // Makes everything appended so far durable (shutdown, roll), in any mode.
    void flush(done_fn done);
    // After log.truncate_suffix(offset): waiters for removed appends fail.
    void truncated(int64_t offset);

    bool idle() const { return !in_flight_ && !retry_pending_ && waiters_.empty(); }
    // A failed fsync is final: every later append fails with this -errno.
    int error() const { return error_; }
    uint64_t rounds() const { return rounds_; }
    uint64_t fsyncs() const { return fsyncs_; }

private:
    struct waiter {
        int64_t last_offset;  // released once durable_offset() > last_offset
        done_fn done;
    };
    void start_round();
    void part_done(int64_t result);
    void round_done();
    void release(int err);

    log& log_;
    io_engine& engine_;
    post_fn post_;
    durability_config cfg_;
    std::deque<waiter> waiters_;  // last_offset ascending
    sync_work work_;
    size_t parts_left_ = 0;
    int dir_fd_ = -1;
    int error_ = 0;        // sticky: the first failed fsync
    int round_error_ = 0;  // this round's: -EBUSY when a submission was refused
    bool in_flight_ = false;
    bool retry_pending_ = false;
    int64_t unflushed_records_ = 0;
    int64_t last_flush_ms_ = 0;
    uint64_t rounds_ = 0;
    uint64_t fsyncs_ = 0;
};

}  // namespace fjord::storage
