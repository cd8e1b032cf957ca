#include "storage/io_engine.h"

#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/assert.h"

namespace fjord::storage {

// An operation reaches the reaper through the ring (the kernel), which
// orders the two threads but is invisible to ThreadSanitizer: tell it.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
inline void handed_to_kernel(void* op) {
    __tsan_release(op);
}
inline void taken_from_kernel(void* op) {
    __tsan_acquire(op);
}
#else
inline void handed_to_kernel(void*) {}
inline void taken_from_kernel(void*) {}
#endif

std::string_view to_string(io_backend b) {
    switch (b) {
        case io_backend::io_uring: return "io_uring";
        case io_backend::thread_pool: return "thread_pool";
    }
    return "unknown";
}

namespace {

struct io_op {
    enum class kind : uint8_t { fdatasync, pread } what;
    int fd = -1;
    void* buf = nullptr;
    size_t n = 0;
    off_t offset = 0;
    io_callback done;
};

int64_t run_blocking(const io_op& op) {
    switch (op.what) {
        case io_op::kind::fdatasync: return ::fdatasync(op.fd) == 0 ? 0 : -errno;
        case io_op::kind::pread: {
            ssize_t r = ::pread(op.fd, op.buf, op.n, op.offset);
            return r >= 0 ? r : -errno;
        }
    }
    return -EINVAL;
}

// Both backends take the same operations; they differ in how they run them.
class op_engine : public io_engine {
public:
    bool fdatasync(int fd, io_callback done) final {
        return submit(io_op{io_op::kind::fdatasync, fd, nullptr, 0, 0, std::move(done)});
    }
    bool pread(int fd, void* buf, size_t n, off_t offset, io_callback done) final {
        return submit(io_op{io_op::kind::pread, fd, buf, n, offset, std::move(done)});
    }

protected:
    virtual bool submit(io_op op) = 0;
};

// A fixed pool of threads over a bounded queue.
class thread_pool_engine final : public op_engine {
public:
    explicit thread_pool_engine(const io_engine_options& opts) : max_(opts.max_in_flight) {
        size_t n = opts.pool_threads == 0 ? 1 : opts.pool_threads;
        for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
    }
    ~thread_pool_engine() override { stop(); }

    io_backend backend() const override { return io_backend::thread_pool; }

    void stop() override {
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
            threads.swap(threads_);  // a second stop() finds none to join
        }
        cv_.notify_all();
        for (auto& t : threads) t.join();
    }

private:
    bool submit(io_op op) override {
        {
            std::lock_guard lock(mu_);
            if (stopping_ || queued_ + running_ >= max_) return false;
            queue_.push_back(std::move(op));
            ++queued_;
        }
        cv_.notify_one();
        return true;
    }

    void work() {
        for (;;) {
            io_op op;
            {
                std::unique_lock lock(mu_);
                cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping and drained
                op = std::move(queue_.front());
                queue_.pop_front();
                --queued_;
                ++running_;
            }
            int64_t r = run_blocking(op);
            op.done(r);
            std::lock_guard lock(mu_);
            --running_;
        }
    }

    const size_t max_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<io_op> queue_;
    size_t queued_ = 0;
    size_t running_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

// One ring; submissions under a short lock, completions reaped by a thread.
class uring_engine final : public op_engine {
public:
    static std::unique_ptr<uring_engine> create(const io_engine_options& opts) {
        auto e = std::unique_ptr<uring_engine>(new uring_engine(opts));
        if (io_uring_queue_init(ring_entries, &e->ring_, 0) != 0) return nullptr;
        e->ring_ok_ = true;
        e->reaper_ = std::thread([p = e.get()] { p->reap(); });
        return e;
    }
    ~uring_engine() override {
        stop();
        if (ring_ok_) io_uring_queue_exit(&ring_);
    }

    io_backend backend() const override { return io_backend::io_uring; }

    void stop() override {
        {
            std::unique_lock lock(mu_);
            if (!reaper_.joinable()) return;
            stopping_ = true;
            io_uring_submit(&ring_);  // anything a failed submit left queued
            // A NOP with no op wakes the reaper once everything before it is done.
            drained_.wait(lock, [this] { return in_flight_ == 0; });
            io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
            FJORD_ASSERT(sqe != nullptr, "io_uring: no sqe for the stop NOP");
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data(sqe, nullptr);
            io_uring_submit(&ring_);
        }
        reaper_.join();
    }

private:
    // The completion queue holds 2 x ring_entries: never more in flight.
    static constexpr unsigned ring_entries = 256;
    explicit uring_engine(const io_engine_options& opts)
        : max_(std::min<size_t>(opts.max_in_flight, 2 * ring_entries)) {}

    bool submit(io_op op) override {
        std::lock_guard lock(mu_);
        if (stopping_ || in_flight_ >= max_) return false;
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) {
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
            if (sqe == nullptr) return false;
        }
        auto* owned = new io_op(std::move(op));
        if (owned->what == io_op::kind::fdatasync) {
            io_uring_prep_fsync(sqe, owned->fd, IORING_FSYNC_DATASYNC);
        } else {
            io_uring_prep_read(sqe, owned->fd, owned->buf, static_cast<unsigned>(owned->n),
                               static_cast<__u64>(owned->offset));
        }
        io_uring_sqe_set_data(sqe, owned);
        handed_to_kernel(owned);
        // A failed submit (-EAGAIN, say) leaves the sqe queued: the reaper
        // submits it again within reap_interval. It owns `owned` from here.
        (void)io_uring_submit(&ring_);
        ++in_flight_;
        return true;
    }

    void reap() {
        for (;;) {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec interval{0, 10'000'000};
            int r = io_uring_wait_cqe_timeout(&ring_, &cqe, &interval);
            if (r == -EINTR) continue;
            if (r == -ETIME) {
                std::lock_guard lock(mu_);
                if (io_uring_sq_ready(&ring_) > 0) (void)io_uring_submit(&ring_);
                continue;
            }
            FJORD_ASSERT(r == 0, "io_uring_wait_cqe failed: {}", r);
            auto* op = static_cast<io_op*>(io_uring_cqe_get_data(cqe));
            int64_t res = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
            if (op == nullptr) return;  // the stop NOP
            taken_from_kernel(op);
            op->done(res);
            delete op;
            std::lock_guard lock(mu_);
            --in_flight_;
            if (in_flight_ == 0) drained_.notify_all();
        }
    }

    const size_t max_;
    io_uring ring_{};
    bool ring_ok_ = false;
    std::mutex mu_;
    std::condition_variable drained_;
    size_t in_flight_ = 0;
    bool stopping_ = false;
    std::thread reaper_;
};

}  // namespace

bool io_uring_available() {
    io_uring ring{};
    if (io_uring_queue_init(4, &ring, 0) != 0) return false;
    bool ok = false;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe != nullptr) {
        io_uring_prep_nop(sqe);
        if (io_uring_submit(&ring) == 1) {
            io_uring_cqe* cqe = nullptr;
            ok = io_uring_wait_cqe(&ring, &cqe) == 0 && cqe->res == 0;
            if (cqe != nullptr) io_uring_cqe_seen(&ring, cqe);
        }
    }
    io_uring_queue_exit(&ring);
    return ok;
}

std::unique_ptr<io_engine> io_engine::create(const io_engine_options& opts) {
    io_backend want = opts.preferred;
    if (const char* env = std::getenv("FJORD_IO_BACKEND"); env != nullptr && std::string(env) == "thread_pool") {
        want = io_backend::thread_pool;
    }
    if (want == io_backend::io_uring && io_uring_available()) {
        if (auto e = uring_engine::create(opts)) return e;
    }
    return std::make_unique<thread_pool_engine>(opts);
}

}  // namespace fjord::storage
