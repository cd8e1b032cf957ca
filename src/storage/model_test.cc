// Property tests against a simple in-memory model, and power-loss tests.
//
// model: random appends (several batches, sometimes compressed), suffix
// truncations, rolls, DeleteRecords, retention, clean and unclean restarts;
// after every step the log must equal the model.
// power loss: the same with syncs and checkpoints, and random power cuts
// (sim_file_system drops or tears every un-synced write). After each cut every
// batch acknowledged durable is present, byte for byte, and every batch served
// beyond it is one that was appended at that offset.
#include <map>
#include <random>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "protocol/record_batch.h"
#include "storage/log.h"
#include "storage/log_manager.h"
#include "storage/sim_file_system.h"
#include "storage/test_util.h"

namespace fjord::storage {
namespace {

namespace proto = fjord::protocol;
using testing::make_batch;

struct model_batch {
    int64_t base = 0, last = 0;
    std::vector<uint8_t> bytes;
};

std::vector<model_batch> read_all(log& l, int64_t from) {
    std::vector<model_batch> out;
    int64_t o = from;
    while (o < l.end_offset()) {
        auto r = l.read(o, 7000, INT64_MAX);
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : describe(r.error())) << " " << l.offline_detail();
        if (!r.ok() || r->chunks.empty()) break;
        for (const auto& c : r->chunks) {
            proto::batch_splitter s(c);
            while (auto b = s.next()) {
                EXPECT_TRUE(b->crc_ok());
                out.push_back({b->base_offset(), b->last_offset(), {b->bytes().data(), b->bytes().data() + b->size()}});
            }
        }
        EXPECT_GT(r->next_offset, o);
        o = r->next_offset;
    }
    return out;
}

std::vector<uint8_t> random_batches(std::mt19937_64& rng, int& count) {
    std::vector<uint8_t> all;
    count = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int i = 0; i < count; ++i) {
        int records = std::uniform_int_distribution<int>(1, 6)(rng);
        size_t value = std::uniform_int_distribution<size_t>(0, 700)(rng);
        auto codec = rng() % 4 == 0 ? proto::codec::lz4 : proto::codec::none;
        auto b = make_batch(records, value, rng(), 1000 + static_cast<int64_t>(rng() % 100000), codec);
        all.insert(all.end(), b.begin(), b.end());
    }
    return all;
}

// Splits appended bytes into model batches (offsets already assigned).
void add_to_model(std::span<const uint8_t> bytes, std::vector<model_batch>& m) {
    proto::batch_splitter s(shared_bytes::copy_of(bytes));
    while (auto b = s.next())
        m.push_back({b->base_offset(), b->last_offset(), {b->bytes().data(), b->bytes().data() + b->size()}});
}

void expect_equal(log& l, const std::vector<model_batch>& model, int64_t start, uint64_t seed, int step) {
    ASSERT_FALSE(l.offline()) << l.offline_detail();
    const int64_t end = model.empty() ? start : model.back().last + 1;
    ASSERT_EQ(l.end_offset(), std::max(end, l.start_offset())) << "seed " << seed << " step " << step;
    auto got = read_all(l, l.start_offset());
    size_t first = 0;
    while (first < model.size() && model[first].last < l.start_offset()) ++first;
    ASSERT_EQ(got.size(), model.size() - first) << "seed " << seed << " step " << step;
    for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].base, model[first + i].base) << "seed " << seed << " step " << step;
        ASSERT_EQ(got[i].bytes, model[first + i].bytes) << "seed " << seed << " step " << step;
    }
}

void run_model(uint64_t seed) {
    std::mt19937_64 rng(seed);
    sim_file_system fs(seed);
    file_cache cache(fs, 8);
    (void)fs.make_dir("/d");
    log_config cfg;
    cfg.segment_bytes = 2000 + rng() % 6000;
    cfg.index_interval_bytes = 200 + static_cast<uint32_t>(rng() % 2000);
    cfg.segment_index_bytes = 8 * (2 + rng() % 20);
    cfg.retention_ms = -1;
    auto created = log::create(cache, "/d/t-0", {"t", 0}, cfg, nullptr);
    ASSERT_TRUE(created.ok());
    std::unique_ptr<log> l = std::move(created).value();
    std::vector<model_batch> model;
    int64_t start = 0;
    int32_t epoch = 0;
    for (int step = 0; step < 150; ++step) {
        const int op = static_cast<int>(rng() % 100);
        if (op < 60) {
            int n = 0;
            auto bytes = random_batches(rng, n);
            if (rng() % 10 == 0) ++epoch;
            auto r = l->append(bytes, {.now_ms = step, .leader_epoch = epoch});
            ASSERT_TRUE(r.ok()) << describe(r.error());
            add_to_model(bytes, model);
            ASSERT_EQ(r->last_offset, model.back().last);
        } else if (op < 68 && !model.empty()) {
            int64_t to = std::uniform_int_distribution<int64_t>(l->start_offset(), l->end_offset())(rng);
            ASSERT_TRUE(l->truncate_suffix(to).ok());
            while (!model.empty() && model.back().last >= to) model.pop_back();
            ASSERT_TRUE(l->epochs().entries().empty() || l->epochs().entries().back().start_offset < l->end_offset() ||
                        l->end_offset() == l->start_offset());
        } else if (op < 73) {
            ASSERT_TRUE(l->roll(step).ok());
        } else if (op < 77 && !model.empty()) {
            int64_t to = std::uniform_int_distribution<int64_t>(l->start_offset(), l->end_offset())(rng);
            ASSERT_TRUE(l->truncate_prefix(to).ok());
            start = std::max(start, to);
        } else if (op < 80) {
            cfg.retention_bytes = static_cast<int64_t>(rng() % 20000);
            l.reset();
            std::string detail;
            auto o =
                log::open(cache, "/d/t-0", {"t", 0}, cfg, {.recovery_point = 0, .log_start_offset = start}, detail);
            ASSERT_TRUE(o.ok()) << detail;
            l = std::move(o).value();
            auto n = l->apply_retention(step);
            ASSERT_TRUE(n.ok());
            start = l->start_offset();
            cfg.retention_bytes = -1;
        } else if (op < 90) {
            // Restart: clean (flushed) or unclean from a random recovery point.
            const bool clean = rng() % 2;
            if (clean) {
                ASSERT_TRUE(l->flush_all().ok());
            }
            const int64_t rp =
                clean ? l->end_offset() : std::uniform_int_distribution<int64_t>(0, l->end_offset())(rng);
            const int64_t start_before = l->start_offset();
            l.reset();
            if (rng() % 4 == 0) l.reset();
            std::string detail;
            auto o =
                log::open(cache, "/d/t-0", {"t", 0}, cfg,
                          {.recovery_point = rp, .log_start_offset = start_before, .clean_shutdown = clean}, detail);
            ASSERT_TRUE(o.ok()) << detail;
            l = std::move(o).value();
            if (rng() % 3 == 0) l->release_memory();
        } else {
            // Timestamp lookups agree with a scan of the model.
            int64_t ts = 1000 + static_cast<int64_t>(rng() % 100000);
            auto got = l->offset_for_timestamp(ts);
            ASSERT_TRUE(got.ok());
            std::optional<int64_t> want;
            std::vector<uint8_t> scratch;
            for (const auto& mb : model) {
                if (want) break;
                auto b = proto::record_batch::parse(shared_bytes::copy_of(mb.bytes));
                if (b->max_timestamp() < ts) continue;
                auto payload = b->payload(scratch);
                auto rr = b->records(*payload);
                proto::record_view rec;
                while (rr.next(rec)) {
                    if (b->timestamp_of(rec) >= ts && b->offset_of(rec) >= l->start_offset()) {
                        want = b->offset_of(rec);
                        break;
                    }
                }
            }
            ASSERT_EQ(got->has_value(), want.has_value()) << "seed " << seed << " ts " << ts;
            if (want) {
                ASSERT_EQ((*got)->offset, *want) << "seed " << seed << " ts " << ts;
            }
        }
        if (l->start_offset() > start) start = l->start_offset();
        expect_equal(*l, model, start, seed, step);
        if (::testing::Test::HasFatalFailure()) return;
    }
}

TEST(storage_model, random_operations_match_the_model) {
    for (uint64_t seed = 1; seed <= 60; ++seed) {
        run_model(seed);
        if (::testing::Test::HasFatalFailure()) {
            ADD_FAILURE() << "seed " << seed;
            return;
        }
    }
}

void run_power_loss(uint64_t seed, int& cuts, durability_test_faults faults = {}) {
    std::mt19937_64 rng(seed);
    sim_file_system fs(seed * 7 + 1);
    fs.tear_granularity = 1 + rng() % 700;
    log_manager_config mc;
    mc.dir = "/data";
    mc.max_open_files = 6;
    mc.defaults.segment_bytes = 1500 + rng() % 5000;
    mc.defaults.index_interval_bytes = 300;
    mc.defaults.retention_ms = -1;
    const topic_partition tp{"t", 0};
    std::vector<model_batch> acked;                        // durable: must survive
    std::vector<model_batch> model;                        // everything in the log now
    std::multimap<int64_t, std::vector<uint8_t>> history;  // every batch ever appended, by base
    {
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        ASSERT_TRUE((*m)->create_log(tp, mc.defaults, nullptr).ok());
        ASSERT_TRUE((*m)->shutdown().ok());
    }
    for (int round = 0; round < 12; ++round) {
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        ASSERT_TRUE((*m)->offline().empty()) << (*m)->offline().begin()->second << " seed " << seed;
        log* l = (*m)->get(tp);
        ASSERT_TRUE(l);
        l->set_durability_test_faults(faults);
        // What came back: every acked batch, then only batches that were appended there.
        auto got = read_all(*l, l->start_offset());
        ASSERT_GE(got.size(), acked.size()) << "seed " << seed << " round " << round;
        for (size_t i = 0; i < acked.size(); ++i) {
            ASSERT_EQ(got[i].base, acked[i].base) << "seed " << seed << " round " << round;
            ASSERT_EQ(got[i].bytes, acked[i].bytes) << "seed " << seed << " round " << round;
        }
        for (size_t i = acked.size(); i < got.size(); ++i) {
            bool known = false;
            auto [lo, hi] = history.equal_range(got[i].base);
            for (auto it = lo; it != hi; ++it) known = known || it->second == got[i].bytes;
            ASSERT_TRUE(known) << "seed " << seed << " round " << round << ": unknown batch at " << got[i].base;
        }
        // No hole: the log end is right after the last batch served.
        ASSERT_EQ(got.empty() ? l->start_offset() : got.back().last + 1, l->end_offset())
            << "seed " << seed << " round " << round << ": the log end jumped over lost offsets";
        model = got;
        const int steps = 1 + static_cast<int>(rng() % 40);
        for (int step = 0; step < steps; ++step) {
            const int op = static_cast<int>(rng() % 100);
            if (op < 70) {
                int n = 0;
                auto bytes = random_batches(rng, n);
                auto r = l->append(bytes, {.now_ms = step, .leader_epoch = round});
                ASSERT_TRUE(r.ok()) << describe(r.error());
                std::vector<model_batch> added;
                add_to_model(bytes, added);
                for (auto& b : added) {
                    history.emplace(b.base, b.bytes);
                    model.push_back(std::move(b));
                }
            } else if (op < 88) {
                ASSERT_TRUE(l->sync().ok());
                acked.clear();
                for (const auto& b : model) {
                    if (b.last < l->durable_offset()) acked.push_back(b);
                }
            } else if (op < 94) {
                ASSERT_TRUE((*m)->checkpoint().ok());
            } else if (op < 97 && !model.empty()) {
                int64_t to = std::uniform_int_distribution<int64_t>(model.front().base, l->end_offset())(rng);
                ASSERT_TRUE(l->truncate_suffix(to).ok());
                while (!model.empty() && model.back().last >= l->end_offset()) model.pop_back();
                while (!acked.empty() && acked.back().last >= l->end_offset()) acked.pop_back();
            } else {
                ASSERT_TRUE(l->roll(step).ok());
            }
        }
        // Power cut: the process dies with everything it held.
        m->reset();
        fs.power_cut();
        ++cuts;
    }
}

TEST(storage_power_loss, acknowledged_batches_survive_random_cuts) {
    int cuts = 0;
    for (uint64_t seed = 1; seed <= 150; ++seed) {
        run_power_loss(seed, cuts);
        if (::testing::Test::HasFatalFailure()) {
            ADD_FAILURE() << "seed " << seed;
            return;
        }
    }
    std::printf("[ measure  ] %d power cuts survived\n", cuts);
}

// The negative control: with durability broken on purpose the power-loss
// test must fail. Its failures are intercepted and counted here.
int power_loss_failures(durability_test_faults faults) {
    ::testing::TestPartResultArray results;
    {
        ::testing::ScopedFakeTestPartResultReporter intercept(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        int cuts = 0;
        for (uint64_t seed = 1; seed <= 150; ++seed) run_power_loss(seed, cuts, faults);
    }
    return results.size();
}

TEST(storage_power_loss, negative_control_skipped_fsync_is_caught) {
    const int failures = power_loss_failures({.skip_fsync = true});
    std::printf("[ measure  ] skipped fsync: %d failures in 150 seeds\n", failures);
    EXPECT_GT(failures, 0) << "the power-loss test did not notice fsyncs being skipped";
}

TEST(storage_power_loss, negative_control_skipped_dir_sync_is_caught) {
    const int failures = power_loss_failures({.skip_dir_sync = true});
    std::printf("[ measure  ] skipped directory fsync: %d failures in 150 seeds\n", failures);
    EXPECT_GT(failures, 0) << "the power-loss test did not notice directory fsyncs being skipped";
}

}  // namespace
}  // namespace fjord::storage
