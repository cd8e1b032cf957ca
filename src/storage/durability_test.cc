// The durability driver over a real log, real files and both io_engine
// backends: when an append is acknowledged in each mode, and how many
// fsync rounds group commit costs.
#include "storage/durability.h"

#include "storage/async_read.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "storage/test_loop.h"
#include "storage/test_util.h"

namespace fjord::storage {
namespace {

using testing::test_loop;

// Wraps a real engine: refuses the first `refuse` submissions (a saturated
// queue) and fails the fdatasyncs numbered in `fail_syncs` with EIO.
class flaky_engine final : public io_engine {
public:
    flaky_engine(io_engine& real, int refuse, std::vector<int> fail_syncs)
        : real_(real), refuse_(refuse), fail_(std::move(fail_syncs)) {}
    io_backend backend() const override { return real_.backend(); }
    bool fdatasync(int fd, io_callback done) override {
        if (refuse_ > 0) {
            --refuse_;
            return false;
        }
        int n = syncs_++;
        if (std::find(fail_.begin(), fail_.end(), n) != fail_.end()) {
            return real_.fdatasync(fd, [done = std::move(done)](int64_t) { done(-EIO); });
        }
        return real_.fdatasync(fd, std::move(done));
    }
    bool pread(int fd, void* buf, size_t n, off_t offset, io_callback done) override {
        return real_.pread(fd, buf, n, offset, std::move(done));
    }
    void stop() override {}

private:
    io_engine& real_;
    int refuse_;
    std::vector<int> fail_;
    int syncs_ = 0;
};

class durability_test : public ::testing::TestWithParam<io_backend> {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("fjord-durability-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        io_engine_options o;
        o.preferred = GetParam();
        engine_ = io_engine::create(o);
        ASSERT_EQ(engine_->backend(), GetParam());
        auto l = log::create(files_, (dir_ / "t-0").string(), topic_partition{"t", 0}, log_config{}, nullptr);
        ASSERT_TRUE(l.ok());
        log_ = std::move(l).value();
    }
    void TearDown() override {
        engine_->stop();
        loop_.drain();
        log_.reset();
        std::filesystem::remove_all(dir_);
    }

    durability make(durability_config cfg) { return make(cfg, *engine_); }
    durability make(durability_config cfg, io_engine& engine) {
        return durability(
            *log_, engine, [this](std::function<void()> f) { loop_.post(std::move(f)); }, cfg, 0);
    }
    append_result append(int records) {
        auto batch = testing::make_batch(records, 100, seed_++, 1000);
        auto r = log_->append(batch, append_options{});
        EXPECT_TRUE(r.ok());
        return r.ok() ? r.value() : append_result{};
    }

    static inline int counter_ = 0;
    std::filesystem::path dir_;
    file_cache files_{posix_file_system(), 64};
    std::unique_ptr<io_engine> engine_;
    std::unique_ptr<log> log_;
    test_loop loop_;
    uint64_t seed_ = 1;
};

TEST_P(durability_test, group_commit_acknowledges_only_durable_appends_and_batches_fsyncs) {
    auto d = make(durability_config{});
    int acked = 0;
    for (int i = 0; i < 50; ++i) {
        auto r = append(3);
        d.appended(r.last_offset, 3, 0, [&, last = r.last_offset](int err) {
            EXPECT_EQ(err, 0);
            EXPECT_GT(log_->durable_offset(), last) << "acknowledged before it was durable";
            ++acked;
        });
    }
    EXPECT_EQ(acked, 0);
    loop_.run([&] { return acked == 50 && d.idle(); });
    // The first append started a round; the 49 that came while it ran share one more.
    EXPECT_LE(d.rounds(), 2u);
    EXPECT_EQ(log_->durable_offset(), log_->end_offset());
}

TEST_P(durability_test, write_caching_acknowledges_at_once_and_flushes_by_flush_messages) {
    durability_config cfg;
    cfg.mode = durability_mode::write_caching;
    cfg.flush_messages = 10;
    auto d = make(cfg);
    int acked = 0;
    for (int i = 0; i < 3; ++i) {
        auto r = append(3);
        d.appended(r.last_offset, 3, 0, [&](int err) {
            EXPECT_EQ(err, 0);
            ++acked;
        });
    }
    loop_.run([&] { return acked == 3; });
    EXPECT_EQ(d.rounds(), 0u) << "9 records are below flush.messages";
    EXPECT_EQ(log_->durable_offset(), 0);
    auto r = append(3);
    d.appended(r.last_offset, 3, 0, [&](int) { ++acked; });
    EXPECT_EQ(d.rounds(), 1u) << "12 records reach flush.messages";
    loop_.run([&] { return acked == 4 && d.idle(); });
    EXPECT_EQ(log_->durable_offset(), log_->end_offset());
}

TEST_P(durability_test, write_caching_flushes_by_flush_ms) {
    durability_config cfg;
    cfg.mode = durability_mode::write_caching;
    cfg.flush_ms = 1000;
    auto d = make(cfg);
    auto r = append(1);
    int acked = 0;
    d.appended(r.last_offset, 1, 10, [&](int) { ++acked; });
    EXPECT_EQ(d.next_deadline_ms(), 1000);
    d.on_timer(999);
    EXPECT_EQ(d.rounds(), 0u);
    d.on_timer(1000);
    EXPECT_EQ(d.rounds(), 1u);
    loop_.run([&] { return acked == 1 && d.idle(); });
    EXPECT_EQ(log_->durable_offset(), log_->end_offset());
}

TEST_P(durability_test, flush_makes_everything_durable_in_either_mode) {
    for (auto mode : {durability_mode::write_caching, durability_mode::group_commit}) {
        durability_config cfg;
        cfg.mode = mode;
        auto d = make(cfg);
        const int64_t before = log_->end_offset();
        append(5);
        append(5);
        bool done = false;
        d.flush([&](int err) {
            EXPECT_EQ(err, 0);
            done = true;
        });
        loop_.run([&] { return done && d.idle(); });
        EXPECT_EQ(log_->durable_offset(), before + 10);
    }
}

TEST_P(durability_test, a_saturated_engine_delays_but_never_skips_the_fsync) {
    flaky_engine flaky(*engine_, 3, {});
    auto d = make(durability_config{}, flaky);
    ASSERT_TRUE(log_->roll(0).ok());  // a second dirty segment and a directory sync
    auto r = append(2);
    bool acked = false;
    d.appended(r.last_offset, 2, 0, [&](int err) {
        EXPECT_EQ(err, 0);
        EXPECT_GT(log_->durable_offset(), r.last_offset);
        acked = true;
    });
    loop_.run([&] { return acked && d.idle(); });
    EXPECT_GE(d.rounds(), 2u) << "the refused round must have been retried";
}

TEST_P(durability_test, a_failed_fsync_fails_the_appends_even_when_a_submission_was_refused_too) {
    // One submission refused, the next fdatasync fails: the round must fail
    // (not be retried as merely busy), and nothing may be acknowledged.
    flaky_engine flaky(*engine_, 1, {0});
    auto d = make(durability_config{}, flaky);
    ASSERT_TRUE(log_->roll(0).ok());
    auto r = append(2);
    int result = 1;
    d.appended(r.last_offset, 2, 0, [&](int err) { result = err; });
    loop_.run([&] { return result != 1 && d.idle(); });
    EXPECT_EQ(result, -EIO);
    EXPECT_EQ(d.error(), -EIO);
    EXPECT_TRUE(log_->offline());
    // Final: later appends fail without touching the disk.
    int later = 1;
    d.appended(r.last_offset + 1, 1, 0, [&](int err) { later = err; });
    loop_.run([&] { return later != 1; });
    EXPECT_EQ(later, -EIO);
}

// A waiter's completion runs inline when its round ends; one that appends
// (or flushes) again starts the next round from inside that callback. The
// completing round must then not start another (issue 18 item 1: concurrent
// topic creation stopped the broker on "a durability round is already in
// flight").
TEST_P(durability_test, a_completion_that_appends_again_starts_exactly_one_round) {
    auto d = make(durability_config{});
    int acked = 0;
    std::function<void(int)> chain;
    chain = [&](int err) {
        EXPECT_EQ(err, 0);
        if (++acked >= 20) return;
        auto r = append(1);
        // Leave a second waiter behind too, so the completing round still
        // sees waiters after the callback started a round.
        d.appended(r.last_offset, 1, 0, chain);
        if (acked % 2 == 0) d.flush([&](int e) { EXPECT_EQ(e, 0); });
    };
    auto a = append(1);
    auto b = append(1);
    d.appended(a.last_offset, 1, 0, chain);
    d.appended(b.last_offset, 1, 0, [&](int err) { EXPECT_EQ(err, 0); });
    loop_.run([&] { return acked >= 20 && d.idle(); });
    EXPECT_EQ(log_->durable_offset(), log_->end_offset());
}

TEST_P(durability_test, truncation_fails_the_waiters_it_removed) {
    auto d = make(durability_config{});
    auto a = append(2);
    auto b = append(2);
    std::vector<int> results(2, 1);
    d.appended(a.last_offset, 2, 0, [&](int e) { results[0] = e; });
    d.appended(b.last_offset, 2, 0, [&](int e) { results[1] = e; });
    d.truncated(b.first_offset);
    loop_.run([&] { return results[0] != 1 && results[1] != 1 && d.idle(); });
    EXPECT_EQ(results[0], 0);
    EXPECT_EQ(results[1], -ECANCELED);
}

// Reads through the io_engine return what the synchronous read returns from
// the segment holding the offset, and never serve a stale plan.
TEST_P(durability_test, async_reads_match_synchronous_reads_segment_by_segment) {
    log_config cfg;
    cfg.segment_bytes = 8 * 1024;
    auto created = log::create(files_, (dir_ / "small-0").string(), topic_partition{"small", 0}, cfg, nullptr);
    ASSERT_TRUE(created.ok());
    auto lg = std::move(created).value();
    for (int i = 0; i < 40; ++i) {
        auto b = testing::make_batch(3, 300, static_cast<uint64_t>(i), 1000);
        ASSERT_TRUE(lg->append(b, append_options{}).ok());
    }
    ASSERT_GE(lg->segment_count(), 5u);
    auto flat = [](const read_result& r) {
        std::vector<uint8_t> out;
        for (const auto& c : r.chunks) out.insert(out.end(), c.data(), c.data() + c.size());
        return out;
    };
    const auto post = [this](std::function<void()> f) { loop_.post(std::move(f)); };
    for (int64_t offset = 0; offset <= lg->end_offset(); offset += 7) {
        auto sync = lg->read(offset, 1 << 20, INT64_MAX);
        ASSERT_TRUE(sync.ok());
        std::optional<result<read_result, errc>> got;
        read_async(*lg, *engine_, post, offset, 1 << 20, INT64_MAX,
                   [&](result<read_result, errc> r) { got.emplace(std::move(r)); });
        loop_.run([&] { return got.has_value(); });
        ASSERT_TRUE(got->ok()) << "offset " << offset;
        auto a = flat(got->value());
        auto s = flat(*sync);
        ASSERT_LE(a.size(), s.size());
        EXPECT_TRUE(std::equal(a.begin(), a.end(), s.begin())) << "offset " << offset;
        if (offset < lg->end_offset()) {
            EXPECT_FALSE(a.empty()) << "offset " << offset;
            EXPECT_GT(got->value().next_offset, offset);
        }
    }
    // A plan made stale by a truncation is refused, not served.
    auto plan = lg->plan_read(30, 1 << 20, INT64_MAX);
    ASSERT_TRUE(plan.ok());
    std::vector<uint8_t> bytes(plan->length);
    ASSERT_TRUE(read_exact(*plan->f, plan->position, bytes).ok());
    ASSERT_TRUE(lg->truncate_suffix(60).ok());
    auto stale = lg->finish_read(*plan, shared_bytes::adopt(std::move(bytes)));
    ASSERT_FALSE(stale.ok());
    EXPECT_EQ(stale.error(), errc::offset_out_of_range);
    // Out of range is an error, as in the synchronous read.
    std::optional<result<read_result, errc>> past;
    read_async(*lg, *engine_, post, lg->end_offset() + 1, 1024, INT64_MAX,
               [&](result<read_result, errc> r) { past.emplace(std::move(r)); });
    loop_.run([&] { return past.has_value(); });
    ASSERT_FALSE(past->ok());
    EXPECT_EQ(past->error(), errc::offset_out_of_range);
}

// The POSIX file system, counting the reads (read_at) each thread makes.
class counting_file_system final : public file_system {
public:
    class counting_file final : public file {
    public:
        counting_file(counting_file_system& fs, std::shared_ptr<file> f) : fs_(fs), f_(std::move(f)) {}
        result<size_t, errc> read_at(uint64_t pos, std::span<uint8_t> out) override {
            fs_.count_read();
            return f_->read_at(pos, out);
        }
        result<void, errc> write_at(uint64_t pos, std::span<const uint8_t> data) override {
            return f_->write_at(pos, data);
        }
        result<void, errc> truncate(uint64_t size) override { return f_->truncate(size); }
        result<uint64_t, errc> size() override { return f_->size(); }
        result<void, errc> sync() override { return f_->sync(); }
        int fd() const override { return f_->fd(); }

    private:
        counting_file_system& fs_;
        std::shared_ptr<file> f_;
    };

    result<std::shared_ptr<file>, errc> open(const std::string& path, open_mode mode) override {
        auto f = real_.open(path, mode);
        if (!f) return fail(f.error());
        return std::shared_ptr<file>(std::make_shared<counting_file>(*this, std::move(f).value()));
    }
    result<void, errc> remove(const std::string& p) override { return real_.remove(p); }
    result<void, errc> rename(const std::string& a, const std::string& b) override { return real_.rename(a, b); }
    result<void, errc> make_dir(const std::string& p) override { return real_.make_dir(p); }
    result<void, errc> remove_dir(const std::string& p) override { return real_.remove_dir(p); }
    result<void, errc> sync_dir(const std::string& p) override { return real_.sync_dir(p); }
    result<std::vector<std::string>, errc> list_dir(const std::string& p) override { return real_.list_dir(p); }
    result<uint64_t, errc> file_size(const std::string& p) override { return real_.file_size(p); }
    bool is_dir(const std::string& p) override { return real_.is_dir(p); }

    // Reads made on `thread` since the last reset.
    void watch(std::thread::id thread) {
        std::lock_guard lock(mu_);
        watched_ = thread;
        watched_reads_ = 0;
    }
    int watched_reads() {
        std::lock_guard lock(mu_);
        return watched_reads_;
    }

private:
    void count_read() {
        std::lock_guard lock(mu_);
        if (std::this_thread::get_id() == watched_) ++watched_reads_;
    }
    file_system& real_ = posix_file_system();
    std::mutex mu_;
    std::thread::id watched_;
    int watched_reads_ = 0;
};

// read_async on a cold partition (indexes not loaded: after a restart, and
// after release_memory() before every read) makes no file read on the
// calling thread: index files, the tail check of a load and the header walk
// all go through the io_engine. Its results are the synchronous read's
// (first segment) for random offsets, sizes and upper bounds, also after an
// index is garbled (rebuilt, validating the segment) or cut short.
TEST_P(durability_test, async_reads_of_cold_segments_never_read_on_the_calling_thread) {
    log_config cfg;
    cfg.segment_bytes = 24 * 1024;
    cfg.index_interval_bytes = 700;
    const std::string dir = (dir_ / "cold-0").string();
    {
        auto created = log::create(files_, dir, topic_partition{"cold", 0}, cfg, nullptr);
        ASSERT_TRUE(created.ok());
        auto lg = std::move(created).value();
        std::mt19937_64 rng(7);
        for (int i = 0; i < 400; ++i) {
            auto b = testing::make_batch(1 + static_cast<int>(rng() % 6), 20 + rng() % 900, rng(), 1000 + i * 10);
            ASSERT_TRUE(lg->append(b, append_options{.now_ms = 1000 + i}).ok());
        }
        ASSERT_GE(lg->segment_count(), 8u);
        ASSERT_TRUE(lg->flush_all().ok());
    }
    // Garble one segment's offset index (entries that name no batch) and cut
    // another's time index: loads must find out and rebuild them.
    std::vector<std::string> indexes;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() == ".index" && std::filesystem::file_size(e.path()) >= 16)
            indexes.push_back(e.path().string());
    }
    std::sort(indexes.begin(), indexes.end());
    ASSERT_GE(indexes.size(), 4u);
    {
        std::vector<uint8_t> bytes(std::filesystem::file_size(indexes[1]));
        auto f = posix_file_system().open(indexes[1], open_mode::read_write);
        ASSERT_TRUE(f.ok());
        ASSERT_TRUE(read_exact(**f, 0, bytes).ok());
        bytes[bytes.size() - 1] ^= 0x01;  // the last entry's position, one byte off
        ASSERT_TRUE((*f)->write_at(0, bytes).ok());
        std::filesystem::path t(indexes[2]);
        t.replace_extension(".timeindex");
        std::filesystem::resize_file(t, 5);
    }
    counting_file_system counting;
    file_cache cold_files(counting, 16);
    std::string detail;
    log::open_options oo;
    oo.clean_shutdown = true;
    auto opened = log::open(cold_files, dir, topic_partition{"cold", 0}, cfg, oo, detail);
    ASSERT_TRUE(opened.ok()) << detail;
    auto lg = std::move(opened).value();
    file_cache ref_files(posix_file_system(), 16);
    auto ref_opened = log::open(ref_files, dir, topic_partition{"cold", 0}, cfg, oo, detail);
    ASSERT_TRUE(ref_opened.ok()) << detail;
    auto ref = std::move(ref_opened).value();

    const auto post = [this](std::function<void()> f) { loop_.post(std::move(f)); };
    const size_t cold_memory = (lg->release_memory(), lg->memory_bytes());
    std::mt19937_64 rng(11);
    int checked = 0;
    for (int i = 0; i < 300; ++i) {
        const int64_t offset = static_cast<int64_t>(rng() % static_cast<uint64_t>(lg->end_offset() + 1));
        const size_t max_bytes = 1 + rng() % (i % 3 == 0 ? 200 : 60000);
        const int64_t max_offset = rng() % 4 == 0 ? offset + static_cast<int64_t>(rng() % 50) : INT64_MAX;
        lg->release_memory();
        counting.watch(std::this_thread::get_id());
        std::optional<result<read_result, errc>> got;
        read_async(*lg, *engine_, post, offset, max_bytes, max_offset,
                   [&](result<read_result, errc> r) { got.emplace(std::move(r)); });
        loop_.run([&] { return got.has_value(); });
        ASSERT_EQ(counting.watched_reads(), 0) << "read of " << offset << " read files on the calling thread";
        auto sync = ref->read(offset, max_bytes, max_offset);
        ASSERT_TRUE(sync.ok());
        ASSERT_TRUE(got->ok()) << "offset " << offset << ": " << describe(got->error()) << " " << lg->offline_detail();
        const read_result& a = got->value();
        ASSERT_LE(a.chunks.size(), 1u);
        if (sync->chunks.empty()) {
            EXPECT_EQ(a.bytes, 0u) << offset;
            EXPECT_EQ(a.next_offset, offset);
            continue;
        }
        ASSERT_EQ(a.chunks.size(), 1u) << "offset " << offset;
        const auto& x = a.chunks[0];
        const auto& y = sync->chunks[0];
        ASSERT_EQ(x.size(), y.size()) << "offset " << offset << " max_bytes " << max_bytes;
        EXPECT_TRUE(std::equal(x.data(), x.data() + x.size(), y.data())) << "offset " << offset;
        if (sync->chunks.size() == 1) {
            EXPECT_EQ(a.next_offset, sync->next_offset);
        }
        ++checked;
    }
    EXPECT_GT(checked, 200);
    EXPECT_FALSE(lg->offline());
    // The loads were real: a read installs indexes, release_memory drops them.
    EXPECT_GT(lg->memory_bytes(), cold_memory);
    // The garbled index was rebuilt from the log (as a synchronous load does).
    auto rebuilt = read_small_file(posix_file_system(), indexes[1]);
    ASSERT_TRUE(rebuilt.ok());
    std::vector<offset_index_entry> entries;
    EXPECT_TRUE(decode_offset_index(std::span(reinterpret_cast<const uint8_t*>(rebuilt->data()), rebuilt->size()),
                                    UINT32_MAX, entries));
    EXPECT_FALSE(entries.empty());
}

// A cold segment whose bytes fail validation when its indexes load takes the
// log offline through read_async exactly as through the synchronous path.
TEST_P(durability_test, async_read_of_a_corrupt_cold_segment_takes_the_log_offline) {
    log_config cfg;
    cfg.segment_bytes = 8 * 1024;
    cfg.index_interval_bytes = 500;
    const std::string dir = (dir_ / "bad-0").string();
    {
        auto created = log::create(files_, dir, topic_partition{"bad", 0}, cfg, nullptr);
        ASSERT_TRUE(created.ok());
        auto lg = std::move(created).value();
        for (int i = 0; i < 40; ++i) {
            auto b = testing::make_batch(3, 300, static_cast<uint64_t>(i), 1000);
            ASSERT_TRUE(lg->append(b, append_options{}).ok());
        }
        ASSERT_TRUE(lg->flush_all().ok());
    }
    // Remove the first segment's indexes (rebuilt at load) and flip a byte
    // inside its last batch's records: the rebuild's scan must refuse it.
    const std::string base = dir + "/" + segment_file_name(0, "");
    std::filesystem::remove(base + ".index");
    std::filesystem::remove(base + ".timeindex");
    const auto size = std::filesystem::file_size(base + ".log");
    {
        auto f = posix_file_system().open(base + ".log", open_mode::read_write);
        ASSERT_TRUE(f.ok());
        uint8_t b = 0;
        ASSERT_TRUE(read_exact(**f, size - 10, std::span<uint8_t>(&b, 1)).ok());
        b ^= 0x40;
        ASSERT_TRUE((*f)->write_at(size - 10, std::span<const uint8_t>(&b, 1)).ok());
    }
    log::open_options oo;
    oo.clean_shutdown = true;
    std::string detail;
    std::string details[2];
    for (int mode = 0; mode < 2; ++mode) {
        file_cache fc(posix_file_system(), 16);
        auto opened = log::open(fc, dir, topic_partition{"bad", 0}, cfg, oo, detail);
        ASSERT_TRUE(opened.ok()) << detail;
        auto lg = std::move(opened).value();
        result<read_result, errc> r = fail(errc::not_found);
        if (mode == 0) {
            r = lg->read(0, 1 << 20, INT64_MAX);
        } else {
            std::optional<result<read_result, errc>> got;
            read_async(
                *lg, *engine_, [this](std::function<void()> f) { loop_.post(std::move(f)); }, 0, 1 << 20, INT64_MAX,
                [&](result<read_result, errc> res) { got.emplace(std::move(res)); });
            loop_.run([&] { return got.has_value(); });
            r = std::move(*got);
        }
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error(), errc::corrupt_log);
        EXPECT_TRUE(lg->offline());
        details[mode] = lg->offline_detail();
    }
    EXPECT_EQ(details[0], details[1]);
    EXPECT_NE(details[0].find("00000000000000000000.log"), std::string::npos) << details[0];
}

INSTANTIATE_TEST_SUITE_P(backends, durability_test, ::testing::Values(io_backend::io_uring, io_backend::thread_pool),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace fjord::storage
