// io_engine: runs the file operations that may block (fdatasync, and reads
// that may miss the page cache) away from shard threads.
//
// Two backends behind one interface: io_uring where the host allows it
// (probed at start: a ring is created and a NOP makes the round trip), and a
// small pool of I/O threads otherwise. Both are tested; FJORD_IO_BACKEND=
// thread_pool forces the pool.
//
// Threading: submit from any thread. Completion callbacks run on the
// engine's own completion thread and must only hand the result back to the
// caller's loop (post to its io_context) and return: they never block and
// never touch shard state directly. Submission never waits for I/O: it
// takes a short lock to enqueue, and fails with errc::busy when the bounded
// queue is full (back-pressure; the caller retries after a completion).
//
// Lifecycle: create(), submit, stop(). stop() waits until every submitted
// operation has completed and its callback has run.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace fjord::storage {

enum class io_backend : uint8_t { io_uring, thread_pool };
std::string_view to_string(io_backend b);

struct io_engine_options {
    // Backend to use when it works here; io_uring falls back to the pool.
    io_backend preferred = io_backend::io_uring;
    size_t pool_threads = 2;
    // Operations queued or in flight at most; more fail with EBUSY.
    size_t max_in_flight = 4096;
};

// `result` is the syscall's return value (bytes for reads, 0 for syncs) or
// -errno on failure.
using io_callback = std::function<void(int64_t result)>;

class io_engine {
public:
    virtual ~io_engine() = default;

    // Probes the preferred backend and falls back as needed.
    static std::unique_ptr<io_engine> create(const io_engine_options& opts = {});

    virtual io_backend backend() const = 0;

    // fdatasync(fd). Returns false (and never calls `done`) when the queue is full.
    [[nodiscard]] virtual bool fdatasync(int fd, io_callback done) = 0;
    // pread(fd, buf, n, offset) into memory the caller keeps alive until `done`.
    [[nodiscard]] virtual bool pread(int fd, void* buf, size_t n, off_t offset, io_callback done) = 0;

    // Waits for every submitted operation; later submissions fail.
    virtual void stop() = 0;
};

// Whether io_uring works on this host (ring set-up and a NOP round trip).
bool io_uring_available();

}  // namespace fjord::storage
