// storage_log (the storage engine's partition log as a raft::log) against
// memory_log: the same random operations, including restarts of the storage
// log, must give the same answers to every query Raft makes.
#include "raft/storage_log.h"

#include <gtest/gtest.h>

#include <random>

#include "protocol/record_batch.h"
#include "raft/memory_log.h"
#include "storage/sim_file_system.h"
#include "storage/test_util.h"

namespace fjord::raft {
namespace {

entry make_entry(std::mt19937_64& rng, offset base, term_id term) {
    entry e;
    e.base = base;
    e.term = term;
    int kind = static_cast<int>(rng() % 10);
    if (kind < 7) {
        e.kind = entry_kind::data;
        e.records = 1 + static_cast<int32_t>(rng() % 5);
        auto bytes = storage::testing::make_batch(e.records, 1 + rng() % 300, rng(), 1000);
        protocol::set_base_offset(bytes, base.get());
        protocol::set_partition_leader_epoch(bytes, term.get());
        e.payload = shared_bytes::adopt(std::move(bytes));
    } else if (kind < 9) {
        e.kind = entry_kind::leader_change;
    } else {
        e.kind = entry_kind::configuration;
        e.payload = encode_configuration(make_configuration({node_id(1), node_id(2), node_id(3)}));
    }
    return e;
}

void expect_same_entries(const std::vector<entry>& a, const std::vector<entry>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].base, b[i].base) << what;
        EXPECT_EQ(a[i].records, b[i].records) << what;
        EXPECT_EQ(a[i].term, b[i].term) << what;
        EXPECT_EQ(a[i].kind, b[i].kind) << what;
        EXPECT_EQ(a[i].payload, b[i].payload) << what << " at " << a[i].base.get();
    }
}

void expect_same(const log& model, const log& real, int32_t max_term) {
    ASSERT_EQ(model.start(), real.start());
    ASSERT_EQ(model.next(), real.next());
    for (offset o = model.start() - 1; o < model.next(); o = o + 1) {
        if (o.get() < 0) continue;
        ASSERT_EQ(model.term_at(o), real.term_at(o)) << "term_at " << o.get();
        if (o >= model.start()) {
            ASSERT_EQ(model.batch_base(o), real.batch_base(o)) << "batch_base " << o.get();
        }
    }
    if (model.start() == offset(0) || model.next() > model.start()) {
        for (int32_t t = 0; t <= max_term + 1; ++t) {
            EXPECT_EQ(model.last_offset_for_term(term_id(t)), real.last_offset_for_term(term_id(t)))
                << "last_offset_for_term " << t;
        }
    }
    std::vector<entry> a, b;
    model.read(model.start(), SIZE_MAX, a);
    real.read(real.start(), SIZE_MAX, b);
    expect_same_entries(a, b, "read all");
    if (!a.empty()) {
        a.clear();
        b.clear();
        model.read(model.start(), 1, a);
        real.read(real.start(), 1, b);
        expect_same_entries(a, b, "read one");
    }
}

TEST(storage_log, answers_like_memory_log_under_random_operations) {
    for (uint64_t seed = 1; seed <= 25; ++seed) {
        SCOPED_TRACE(seed);
        std::mt19937_64 rng(seed);
        storage::sim_file_system fs(seed);
        storage::file_cache files(fs, 16);
        storage::log_config cfg;
        cfg.segment_bytes = 4096;  // many segments
        auto created = storage::log::create(files, "/data/t-0", {"t", 0}, cfg, nullptr);
        ASSERT_TRUE(created.ok());
        std::unique_ptr<storage::log> slog = std::move(created).value();
        auto real = std::make_unique<storage_log>(*slog, no_term);
        memory_log model;
        int32_t term = 1;
        for (int step = 0; step < 120; ++step) {
            int op = static_cast<int>(rng() % 20);
            if (op < 13) {
                if (rng() % 4 == 0) ++term;
                auto e = make_entry(rng, model.next(), term_id(term));
                model.append(e);
                real->append(e);
            } else if (op < 15 && model.next() > model.start()) {
                // Raft truncates a divergent suffix at a batch base.
                offset at =
                    model.batch_base(model.start() + static_cast<int64_t>(rng() % (model.next() - model.start())));
                model.truncate_suffix(at);
                real->truncate_suffix(at);
            } else if (op < 16 && model.next() > model.start()) {
                // A snapshot: the prefix up to a batch base goes.
                offset at =
                    model.batch_base(model.start() + static_cast<int64_t>(rng() % (model.next() - model.start())));
                term_id prev = model.term_at(at - 1);
                model.truncate_prefix(at, prev);
                real->truncate_prefix(at, prev);
            } else if (op < 18) {
                // Restart: sync everything, reopen the partition directory.
                ASSERT_TRUE(slog->flush_all().ok());
                real.reset();
                slog.reset();
                std::string detail;
                storage::log::open_options o;
                o.clean_shutdown = true;
                o.recovery_point = model.next().get();
                o.log_start_offset = model.start().get();
                auto opened = storage::log::open(files, "/data/t-0", {"t", 0}, cfg, o, detail);
                ASSERT_TRUE(opened.ok()) << detail;
                slog = std::move(opened).value();
                real = std::make_unique<storage_log>(
                    *slog, model.start() == offset(0) ? no_term : model.term_at(model.start() - 1));
            }
            expect_same(model, *real, term);
            if (HasFatalFailure()) return;
        }
        real.reset();
        slog.reset();
    }
}

TEST(storage_log, control_entries_are_kafka_control_batches) {
    entry e;
    e.base = offset(42);
    e.term = term_id(7);
    e.kind = entry_kind::leader_change;
    auto bytes = storage_log::to_batch(e);
    auto b = protocol::record_batch::parse(shared_bytes::copy_of(bytes));
    ASSERT_TRUE(b.ok());
    EXPECT_TRUE(b->is_control());
    EXPECT_EQ(b->base_offset(), 42);
    EXPECT_EQ(b->partition_leader_epoch(), 7);
    EXPECT_TRUE(b->validate().ok());
    auto back = storage_log::from_batch(b->bytes());
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->kind, entry_kind::leader_change);
}

}  // namespace
}  // namespace fjord::raft
