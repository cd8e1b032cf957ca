#include "storage/async_read.h"

#include <memory>
#include <vector>

namespace fjord::storage {

namespace {

constexpr int max_plans = 4;

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
};

void start(std::shared_ptr<read_op> op);

void submit(std::shared_ptr<read_op> op) {
    read_op& o = *op;
    const int fd = o.plan.f->fd();
    if (fd < 0) {
        // Not an OS file (the simulated file system in tests): read inline.
        auto r = read_exact(*o.plan.f, o.plan.position, o.buf);
        o.post([op, ok = r.ok()] {
            auto res = ok ? op->lg.finish_read(op->plan, shared_bytes::adopt(std::move(op->buf)))
                          : result<read_result, errc>(fail(errc::io_error));
            if (!res.ok() && res.error() == errc::offset_out_of_range && op->plans < max_plans) return start(op);
            op->done(std::move(res));
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
            auto res = op->lg.finish_read(op->plan, shared_bytes::adopt(std::move(op->buf)));
            if (!res.ok() && res.error() == errc::offset_out_of_range && op->plans < max_plans) return start(op);
            op->done(std::move(res));
        });
    };
    if (!o.engine.pread(fd, o.buf.data(), o.buf.size(), static_cast<off_t>(o.plan.position), on_read)) {
        // The engine is saturated: try again from the loop.
        o.post([op] { submit(op); });
    }
}

void start(std::shared_ptr<read_op> op) {
    ++op->plans;
    auto p = op->lg.plan_read(op->offset, op->max_bytes, op->max_offset);
    if (!p) {
        op->post([op, e = p.error()] { op->done(fail(e)); });
        return;
    }
    op->plan = std::move(p).value();
    if (op->plan.length == 0) {
        op->post([op] { op->done(op->lg.finish_read(op->plan, shared_bytes{})); });
        return;
    }
    op->buf.assign(op->plan.length, 0);
    submit(std::move(op));
}

}  // namespace

void read_async(log& lg, io_engine& engine, post_fn post, int64_t offset, size_t max_bytes, int64_t max_offset,
                read_done_fn done) {
    auto op = std::make_shared<read_op>(
        read_op{lg, engine, std::move(post), offset, max_bytes, max_offset, std::move(done), {}, {}, 0});
    start(std::move(op));
}

}  // namespace fjord::storage
