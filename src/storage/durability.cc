#include "storage/durability.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/assert.h"

namespace fjord::storage {

durability::durability(log& lg, io_engine& engine, post_fn post, durability_config cfg, int64_t now_ms)
    : log_(lg), engine_(engine), post_(std::move(post)), cfg_(cfg), last_flush_ms_(now_ms) {}

void durability::appended(int64_t last_offset, int64_t records, int64_t now_ms, done_fn done) {
    FJORD_ASSERT(waiters_.empty() || waiters_.back().last_offset < last_offset,
                 "appends must be reported in offset order: {} after {}", last_offset,
                 waiters_.empty() ? -1 : waiters_.back().last_offset);
    if (error_ != 0) {
        post_([done = std::move(done), e = error_] { done(e); });
        return;
    }
    if (cfg_.mode == durability_mode::write_caching) {
        post_([done = std::move(done)] { done(0); });
        unflushed_records_ += records;
        if (unflushed_records_ >= cfg_.flush_messages && !in_flight_) start_round();
        (void)now_ms;
        return;
    }
    if (last_offset < log_.durable_offset()) {
        post_([done = std::move(done)] { done(0); });
        return;
    }
    waiters_.push_back(waiter{last_offset, std::move(done)});
    if (!in_flight_) start_round();
}

void durability::on_timer(int64_t now_ms) {
    if (cfg_.mode != durability_mode::write_caching || in_flight_ || error_ != 0) return;
    if (now_ms - last_flush_ms_ >= cfg_.flush_ms && log_.needs_sync()) start_round();
}

int64_t durability::next_deadline_ms() const {
    if (cfg_.mode != durability_mode::write_caching || cfg_.flush_ms == std::numeric_limits<int64_t>::max()) {
        return std::numeric_limits<int64_t>::max();
    }
    return last_flush_ms_ + cfg_.flush_ms;
}

void durability::flush(done_fn done) {
    if (error_ != 0) {
        post_([done = std::move(done), e = error_] { done(e); });
        return;
    }
    int64_t end = log_.end_offset();
    if (end <= log_.durable_offset()) {
        post_([done = std::move(done)] { done(0); });
        return;
    }
    // Waiters are ordered by offset: a flush waits for the last one appended.
    if (!waiters_.empty() && waiters_.back().last_offset >= end - 1) {
        auto prev = std::move(waiters_.back().done);
        waiters_.back().done = [prev = std::move(prev), done = std::move(done)](int e) {
            prev(e);
            done(e);
        };
    } else {
        waiters_.push_back(waiter{end - 1, std::move(done)});
    }
    if (!in_flight_) start_round();
}

void durability::truncated(int64_t offset) {
    while (!waiters_.empty() && waiters_.back().last_offset >= offset) {
        auto w = std::move(waiters_.back());
        waiters_.pop_back();
        post_([done = std::move(w.done)] { done(-ECANCELED); });
    }
}

void durability::start_round() {
    FJORD_ASSERT(!in_flight_, "a durability round is already in flight");
    work_ = log_.pending_sync();
    if (log_.offline()) {
        error_ = -EIO;
        release(error_);
        return;
    }
    in_flight_ = true;
    ++rounds_;
    unflushed_records_ = 0;
    parts_left_ = work_.files.size() + (work_.dir_sync ? 1 : 0);
    if (parts_left_ == 0) {
        post_([this] { round_done(); });
        return;
    }
    auto completion = [this](int64_t r) { post_([this, r] { part_done(r); }); };
    for (const auto& item : work_.files) {
        int fd = item.f->fd();
        ++fsyncs_;
        if (fd < 0) {
            // Not an OS file (the simulated file system in tests): sync inline.
            auto r = item.f->sync();
            post_([this, ok = r.ok()] { part_done(ok ? 0 : -EIO); });
        } else if (!engine_.fdatasync(fd, completion)) {
            post_([this] { part_done(-EBUSY); });
        }
    }
    if (work_.dir_sync) {
        ++fsyncs_;
        dir_fd_ = ::open(work_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd_ < 0) {
            post_([this, e = -errno] { part_done(e); });
        } else if (!engine_.fdatasync(dir_fd_, completion)) {
            post_([this] { part_done(-EBUSY); });
        }
    }
}

void durability::part_done(int64_t result) {
    FJORD_ASSERT(in_flight_ && parts_left_ > 0, "unexpected fsync completion");
    // A real failure outranks a refused submission: it must not be retried.
    if (result < 0 && (round_error_ == 0 || round_error_ == -EBUSY)) round_error_ = static_cast<int>(result);
    if (--parts_left_ == 0) round_done();
}

void durability::round_done() {
    in_flight_ = false;
    if (dir_fd_ >= 0) {
        ::close(dir_fd_);
        dir_fd_ = -1;
    }
    const int round_error = round_error_;
    round_error_ = 0;
    if (round_error == -EBUSY) {
        // The engine was saturated and nothing failed: the whole round again,
        // from the loop. Until then the durability is not idle.
        retry_pending_ = true;
        post_([this] {
            retry_pending_ = false;
            if (!in_flight_ && error_ == 0 && (!waiters_.empty() || log_.needs_sync())) start_round();
        });
        return;
    }
    if (round_error != 0) {
        // After a failed fsync nothing since the last good one can be trusted.
        error_ = round_error;
        log_.on_sync_failed(errc::io_error);
        release(error_);
        return;
    }
    log_.on_synced(work_);
    work_ = sync_work{};
    release(0);
    // A released waiter may have appended or flushed again and so started
    // the next round itself (its callback runs inline here).
    if (in_flight_) return;
    const bool flush_due = cfg_.mode == durability_mode::write_caching && unflushed_records_ >= cfg_.flush_messages;
    if (!waiters_.empty() || flush_due) start_round();
}

void durability::release(int err) {
    const int64_t durable = log_.durable_offset();
    while (!waiters_.empty() && (err != 0 || waiters_.front().last_offset < durable)) {
        auto w = std::move(waiters_.front());
        waiters_.pop_front();
        w.done(err);
    }
}

}  // namespace fjord::storage
