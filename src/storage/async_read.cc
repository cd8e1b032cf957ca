#include "storage/async_read.h"

#include <memory>
#include <vector>

namespace fjord::storage {

namespace {

constexpr int max_plans = 4;
// Fetches one read may need before it can be planned: an index load and a
// header walk each make progress with every fetch, so this is only a guard
// against a bug (a 1 GiB segment rebuilt 1 MiB at a time needs ~1,000).
constexpr int max_fetch_rounds = 1 << 16;

struct read_op {
    log& lg;
    io_engine& engine;
    post_fn post;
    int64_t offset;
    size_t max_bytes;
    int64_t max_offset;
    read_done_fn done;
    read_plan plan;
    std::vector<uint8_t> buf;
    int plans = 0;
    std::unique_ptr<plan_fetches> fetches;
};

void start(std::shared_ptr<read_op> op);
void plan(std::shared_ptr<read_op> op);

// Back on the shard with a read's bytes: validate them, or plan again if a
// truncation made the plan stale.
void finish(const std::shared_ptr<read_op>& op, shared_bytes bytes) {
    auto res = op->lg.finish_read(op->plan, std::move(bytes));
    if (!res.ok() && res.error() == errc::offset_out_of_range && op->plans < max_plans) return start(op);
    op->done(std::move(res));
}

void submit(std::shared_ptr<read_op> op) {
    read_op& o = *op;
    const int fd = o.plan.f->fd();
    if (fd < 0) {
        // Not an OS file (the simulated file system in tests): read inline.
        auto r = read_exact(*o.plan.f, o.plan.position, o.buf);
        o.post([op, ok = r.ok()] {
            if (!ok) return op->done(fail(errc::io_error));
            finish(op, shared_bytes::adopt(std::move(op->buf)));
        });
        return;
    }
    auto on_read = [op](int64_t n) {
        op->post([op, n] {
            if (n < 0 || static_cast<size_t>(n) != op->buf.size()) {
                // A short read: the file is shorter than the log says.
                op->done(fail(errc::io_error));
                return;
            }
            finish(op, shared_bytes::adopt(std::move(op->buf)));
        });
    };
    if (!o.engine.pread(fd, o.buf.data(), o.buf.size(), static_cast<off_t>(o.plan.position), on_read)) {
        // The engine is saturated: try again from the loop.
        o.post([op] { submit(op); });
    }
}

// Reads what planning needs (index files, batch headers) off the shard,
// then plans again on it.
void fetch(std::shared_ptr<read_op> op) {
    read_op& o = *op;
    const auto& rq = o.fetches->fetch();
    o.buf.assign(rq.length, 0);
    const int fd = rq.f->fd();
    if (fd < 0) {
        // Not an OS file (the simulated file system in tests): read inline.
        auto r = rq.f->read_at(rq.position, o.buf);
        o.post([op, n = r.ok() ? static_cast<int64_t>(r.value()) : int64_t{-1}] {
            if (n < 0) return op->done(fail(errc::io_error));
            op->buf.resize(static_cast<size_t>(n));
            op->fetches->supply(std::move(op->buf));
            plan(op);
        });
        return;
    }
    auto on_read = [op](int64_t n) {
        op->post([op, n] {
            if (n < 0) return op->done(fail(errc_from_errno(static_cast<int>(-n))));
            op->buf.resize(static_cast<size_t>(n));
            op->fetches->supply(std::move(op->buf));
            plan(op);
        });
    };
    if (!o.engine.pread(fd, o.buf.data(), o.buf.size(), static_cast<off_t>(rq.position), on_read)) {
        o.post([op] { fetch(op); });
    }
}

void plan(std::shared_ptr<read_op> op) {
    if (op->fetches->rounds() > max_fetch_rounds) {
        op->post([op] { op->done(fail(errc::io_error)); });
        return;
    }
    auto p = op->lg.plan_read_async(op->offset, op->max_bytes, op->max_offset, *op->fetches);
    if (!p) {
        op->post([op, e = p.error()] { op->done(fail(e)); });
        return;
    }
    if (!*p) return fetch(std::move(op));
    op->plan = std::move(**p);
    if (op->plan.length == 0) {
        op->post([op] { op->done(op->lg.finish_read(op->plan, shared_bytes{})); });
        return;
    }
    if (!op->plan.prefetched.empty()) {
        // Planning read these bytes already (the header walk's window).
        op->post([op] { finish(op, std::move(op->plan.prefetched)); });
        return;
    }
    op->buf.assign(op->plan.length, 0);
    submit(std::move(op));
}

void start(std::shared_ptr<read_op> op) {
    ++op->plans;
    op->fetches = std::make_unique<plan_fetches>();
    plan(std::move(op));
}

}  // namespace

void read_async(log& lg, io_engine& engine, post_fn post, int64_t offset, size_t max_bytes, int64_t max_offset,
                read_done_fn done) {
    auto op = std::make_shared<read_op>(
        read_op{lg, engine, std::move(post), offset, max_bytes, max_offset, std::move(done), {}, {}, 0, nullptr});
    start(std::move(op));
}

}  // namespace fjord::storage
