// group_syncer: group commit for one file.
//
// Appends write to the page cache and then ask for durability up to the
// byte mark they wrote. One fdatasync covers every request waiting when it
// starts; requests that arrive while it runs wait for the next one. So N
// concurrent appends to a segment cost at most two fdatasyncs, not N.
//
// Threading: owned by one shard; every method runs on that shard's thread.
// The engine's completion arrives on its own thread and is handed back
// through `post` (e.g. asio::post to the shard's io_context), so the syncer's
// state is only ever touched by its owner.
//
// Lifecycle: the owner keeps the syncer (and the fd) alive until idle():
// an fdatasync in flight calls back into it.
//
// A failed fdatasync is final for the file (after a failed fsync the kernel
// may have dropped the dirty pages): every waiting and later request fails
// with the first error, and the owner must treat the log as broken.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "storage/io_engine.h"

namespace fjord::storage {

class group_syncer {
public:
    // `post` runs a function on the owning shard's thread, later.
    using post_fn = std::function<void(std::function<void()>)>;
    // 0 on success, -errno on failure.
    using done_fn = std::function<void(int)>;

    group_syncer(io_engine& engine, int fd, post_fn post);

    // Calls `done` once every byte up to `mark` is durable. Marks must not
    // decrease between calls (appends are sequential).
    void sync_to(uint64_t mark, done_fn done);

    uint64_t durable_mark() const { return durable_; }
    uint64_t syncs_issued() const { return syncs_; }
    bool failed() const { return error_ != 0; }
    bool idle() const { return !in_flight_ && waiters_.empty(); }

private:
    struct waiter {
        uint64_t mark;
        done_fn done;
    };
    void start();
    void completed(int64_t result, uint64_t target);

    io_engine& engine_;
    int fd_;
    post_fn post_;
    std::deque<waiter> waiters_;  // marks ascending
    uint64_t durable_ = 0;
    uint64_t requested_ = 0;
    uint64_t syncs_ = 0;
    bool in_flight_ = false;
    int error_ = 0;
};

}  // namespace fjord::storage
