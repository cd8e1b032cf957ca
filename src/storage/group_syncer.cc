#include "storage/group_syncer.h"

#include <cerrno>

#include "base/assert.h"

namespace fjord::storage {

group_syncer::group_syncer(io_engine& engine, int fd, post_fn post)
    : engine_(engine), fd_(fd), post_(std::move(post)) {}

void group_syncer::sync_to(uint64_t mark, done_fn done) {
    FJORD_ASSERT(mark >= requested_ || mark <= durable_, "sync marks must not decrease: {} after {}", mark, requested_);
    if (error_ != 0) {
        post_([done = std::move(done), e = error_] { done(e); });
        return;
    }
    if (mark <= durable_) {
        post_([done = std::move(done)] { done(0); });
        return;
    }
    requested_ = mark;
    waiters_.push_back(waiter{mark, std::move(done)});
    if (!in_flight_) start();
}

void group_syncer::start() {
    FJORD_ASSERT(!in_flight_ && !waiters_.empty(), "start with in_flight={} waiters={}", in_flight_, waiters_.size());
    // Everything requested so far was written before this call: one sync covers it.
    uint64_t target = requested_;
    in_flight_ = true;
    ++syncs_;
    bool queued =
        engine_.fdatasync(fd_, [this, target](int64_t r) { post_([this, r, target] { completed(r, target); }); });
    if (!queued) {
        // The engine is saturated: try again from the loop, after others complete.
        in_flight_ = false;
        --syncs_;
        post_([this] {
            if (!in_flight_ && !waiters_.empty()) start();
        });
    }
}

void group_syncer::completed(int64_t result, uint64_t target) {
    FJORD_ASSERT(in_flight_, "completion without a sync in flight");
    in_flight_ = false;
    if (result < 0) {
        error_ = static_cast<int>(result);
        while (!waiters_.empty()) {
            auto w = std::move(waiters_.front());
            waiters_.pop_front();
            w.done(error_);
        }
        return;
    }
    FJORD_ASSERT(target >= durable_, "durable mark going back from {} to {}", durable_, target);
    durable_ = target;
    while (!waiters_.empty() && waiters_.front().mark <= durable_) {
        auto w = std::move(waiters_.front());
        waiters_.pop_front();
        w.done(0);
    }
    if (!waiters_.empty()) start();
}

}  // namespace fjord::storage
