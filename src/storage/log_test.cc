// Unit tests of the storage engine: formats, indexes, log operations,
// recovery, faults, and the per-partition memory of 10,000 idle partitions.
#include <malloc.h>

#include <random>

#include <gtest/gtest.h>

#include "protocol/record_batch.h"
#include "storage/checkpoint.h"
#include "storage/epoch_history.h"
#include "storage/log.h"
#include "storage/log_manager.h"
#include "storage/sim_file_system.h"
#include "storage/test_util.h"

namespace fjord::storage {
namespace {

using testing::make_batch;
namespace proto = fjord::protocol;

std::vector<proto::record_batch> batches_of(const read_result& r) {
    std::vector<proto::record_batch> out;
    for (const auto& c : r.chunks) {
        proto::batch_splitter s(c);
        while (auto b = s.next()) out.push_back(*b);
        EXPECT_TRUE(s.clean_end());
    }
    return out;
}

TEST(checkpoint, offset_checkpoint_round_trip) {
    std::vector<offset_entry> e{{{"orders", 0}, 42}, {{"my-topic", 12}, 7}};
    auto text = format_offset_checkpoint(e);
    EXPECT_EQ(text, "0\n2\norders 0 42\nmy-topic 12 7\n");
    auto back = parse_offset_checkpoint(text);
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(back->size(), 2u);
    EXPECT_EQ((*back)[1].tp.topic, "my-topic");
    EXPECT_EQ((*back)[1].offset, 7);
    EXPECT_FALSE(parse_offset_checkpoint("0\n3\na 0 1\n").ok());
    EXPECT_FALSE(parse_offset_checkpoint("1\n0\n").ok());
    EXPECT_FALSE(parse_offset_checkpoint("0\n1\na x 1\n").ok());
}

TEST(checkpoint, epochs_metadata_uuid) {
    std::vector<epoch_entry> e{{0, 0}, {3, 100}};
    auto text = format_epoch_checkpoint(e);
    EXPECT_EQ(text, "0\n2\n0 0\n3 100\n");
    auto back = parse_epoch_checkpoint(text);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, e);
    EXPECT_FALSE(parse_epoch_checkpoint("0\n2\n3 100\n0 0\n").ok());  // not increasing
    uuid id{};
    for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i * 17 + 3);
    auto s = uuid_to_base64url(id);
    EXPECT_EQ(s.size(), 22u);
    auto meta = format_partition_metadata(id);
    auto parsed = parse_partition_metadata(meta);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, id);
    // Kafka's Uuid.toString of all zeros.
    EXPECT_EQ(uuid_to_base64url(uuid{}), "AAAAAAAAAAAAAAAAAAAAAA");
    topic_partition tp;
    ASSERT_TRUE(topic_partition::from_dir_name("my-topic-12", tp));
    EXPECT_EQ(tp.topic, "my-topic");
    EXPECT_EQ(tp.partition, 12);
    EXPECT_FALSE(topic_partition::from_dir_name("t-0.abc-delete", tp));
}

TEST(epoch_history, end_offset_for_epoch_like_kafka) {
    epoch_history h;
    EXPECT_TRUE(h.assign(1, 0));
    EXPECT_TRUE(h.assign(3, 10));
    EXPECT_FALSE(h.assign(2, 12));
    EXPECT_TRUE(h.assign(5, 20));
    EXPECT_EQ(h.end_offset_for(5, 30), std::make_pair(5, int64_t{30}));
    EXPECT_EQ(h.end_offset_for(3, 30), std::make_pair(3, int64_t{20}));
    EXPECT_EQ(h.end_offset_for(4, 30), std::make_pair(3, int64_t{20}));
    EXPECT_EQ(h.end_offset_for(0, 30), std::make_pair(0, int64_t{0}));
    EXPECT_EQ(h.end_offset_for(6, 30), std::make_pair(-1, int64_t{-1}));
    EXPECT_EQ(h.epoch_at(15), 3);
    EXPECT_TRUE(h.truncate_from_end(20));
    EXPECT_EQ(h.latest_epoch(), 3);
    EXPECT_TRUE(h.truncate_from_start(5));
    EXPECT_EQ(h.entries().front().start_offset, 5);
}

TEST(segment, names_and_index_codecs) {
    EXPECT_EQ(segment_file_name(42, ".log"), "00000000000000000042.log");
    int64_t base = 0;
    std::string_view ext;
    ASSERT_TRUE(parse_segment_file_name("00000000000000000042.timeindex", base, ext));
    EXPECT_EQ(base, 42);
    EXPECT_EQ(ext, ".timeindex");
    EXPECT_FALSE(parse_segment_file_name("0000000000000000004x.log", base, ext));
    std::vector<offset_index_entry> e{{3, 4200}, {9, 9000}}, back;
    std::vector<uint8_t> bytes;
    encode_offset_index(e, bytes);
    ASSERT_EQ(bytes.size(), 16u);
    EXPECT_EQ(bytes[3], 3);
    EXPECT_TRUE(decode_offset_index(bytes, 10000, back));
    EXPECT_FALSE(decode_offset_index(bytes, 9000, back));  // position beyond the log
    bytes.resize(24, 0);                                   // Kafka's preallocated zeros
    EXPECT_FALSE(decode_offset_index(bytes, 10000, back));
}

struct fixture {
    sim_file_system fs{1};
    file_cache cache{fs, 64};
    log_config cfg;
    fixture() { (void)fs.make_dir("/data"); }
    std::unique_ptr<log> create() {
        auto l = log::create(cache, "/data/t-0", {"t", 0}, cfg, nullptr);
        EXPECT_TRUE(l.ok());
        return std::move(l).value();
    }
    std::unique_ptr<log> reopen(bool clean, int64_t recovery_point = 0, recovery_report* rep = nullptr) {
        std::string detail;
        log::open_options o;
        o.clean_shutdown = clean;
        o.recovery_point = recovery_point;
        auto l = log::open(cache, "/data/t-0", {"t", 0}, cfg, o, detail, rep);
        EXPECT_TRUE(l.ok()) << detail;
        return l.ok() ? std::move(l).value() : nullptr;
    }
};

TEST(log, append_assigns_offsets_and_reads_back) {
    fixture f;
    auto l = f.create();
    for (int i = 0; i < 10; ++i) {
        auto b = make_batch(5, 100, i, 1000 + i * 10);
        auto r = l->append(b, {.now_ms = 1, .leader_epoch = 2});
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->first_offset, i * 5);
        EXPECT_EQ(r->last_offset, i * 5 + 4);
    }
    EXPECT_EQ(l->end_offset(), 50);
    EXPECT_EQ(l->epochs().entries().size(), 1u);
    // From the middle of a batch: starts with the batch holding it.
    auto r = l->read(12, 1 << 20, INT64_MAX);
    ASSERT_TRUE(r.ok());
    auto bs = batches_of(*r);
    ASSERT_EQ(bs.size(), 8u);
    EXPECT_EQ(bs[0].base_offset(), 10);
    EXPECT_EQ(bs[0].partition_leader_epoch(), 2);
    EXPECT_TRUE(bs[0].crc_ok());
    EXPECT_EQ(r->next_offset, 50);
    // A byte limit below one batch still returns one batch.
    r = l->read(0, 10, INT64_MAX);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(batches_of(*r).size(), 1u);
    // The upper bound (high watermark) excludes batches ending at or after it.
    r = l->read(0, 1 << 20, 23);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->next_offset, 20);
    EXPECT_FALSE(l->read(51, 100, INT64_MAX).ok());
    EXPECT_EQ(l->read(50, 100, INT64_MAX)->bytes, 0u);
}

TEST(log, rolls_indexes_timestamps_and_clean_restart) {
    fixture f;
    f.cfg.segment_bytes = 8000;
    f.cfg.index_interval_bytes = 1000;
    auto l = f.create();
    for (int i = 0; i < 60; ++i) {
        auto b = make_batch(3, 200, i, 10000 + i * 100);
        ASSERT_TRUE(l->append(b, {.now_ms = 5}).ok());
    }
    EXPECT_GT(l->segment_count(), 5u);
    auto ts = l->offset_for_timestamp(10000 + 30 * 100 + 1);
    ASSERT_TRUE(ts.ok());
    ASSERT_TRUE(ts->has_value());
    EXPECT_EQ((*ts)->offset, 91);
    EXPECT_EQ((*ts)->timestamp, 13001);
    EXPECT_FALSE(l->offset_for_timestamp(99999)->has_value());
    auto all = l->read(0, 1 << 20, INT64_MAX);
    ASSERT_TRUE(l->flush_all().ok());
    l.reset();
    // Index files are Kafka's: 8-byte entries, positions within the log.
    auto idx = f.fs.contents("/data/t-0/00000000000000000000.index");
    EXPECT_GT(idx.size(), 0u);
    EXPECT_EQ(idx.size() % 8, 0u);
    l = f.reopen(true);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->end_offset(), 180);
    auto again = l->read(0, 1 << 20, INT64_MAX);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again->chunks.size(), all->chunks.size());
    for (size_t i = 0; i < all->chunks.size(); ++i) EXPECT_EQ(again->chunks[i], all->chunks[i]);
    for (int64_t o = 0; o < 180; o += 7) {
        auto r = l->read(o, 1, INT64_MAX);
        ASSERT_TRUE(r.ok());
        auto bs = batches_of(*r);
        ASSERT_EQ(bs.size(), 1u);
        EXPECT_LE(bs[0].base_offset(), o);
        EXPECT_GE(bs[0].last_offset(), o);
    }
}

// plan_read_async in tiny fetches (each exactly what one step needs): index
// loads that resume chunk by chunk through segments larger than the scan
// chunk (no index entries: the whole segment is the tail), rebuilds of a
// garbled index, and header walks resumed one header at a time, give the
// synchronous read's first segment, and touch files only through fetches.
TEST(log, async_plans_resume_in_small_fetches_and_match_sync_reads) {
    for (int variant = 0; variant < 2; ++variant) {
        fixture f;
        f.cfg.segment_bytes = 3 << 20;
        f.cfg.index_interval_bytes = variant == 0 ? (64u << 20) : 40000;
        {
            auto l = f.create();
            std::mt19937_64 rng(variant + 1);
            while (l->segment_count() < 3) {
                auto b = make_batch(1 + static_cast<int>(rng() % 4), 5000 + rng() % 15000, rng(), 1000);
                ASSERT_TRUE(l->append(b, {.now_ms = 1}).ok());
            }
            ASSERT_TRUE(l->flush_all().ok());
        }
        if (variant == 1) {
            // A partial entry: the index does not decode and is rebuilt.
            auto idx = f.fs.open("/data/t-0/" + segment_file_name(0, ".index"), open_mode::read_write);
            ASSERT_TRUE(idx.ok());
            auto size = (*idx)->size();
            ASSERT_TRUE(size.ok() && *size >= 16);
            ASSERT_TRUE((*idx)->truncate(*size - 3).ok());
            ASSERT_TRUE((*idx)->sync().ok());
        }
        auto l = f.reopen(true);
        ASSERT_TRUE(l);
        file_cache ref_cache(f.fs, 16);
        std::string detail;
        log::open_options oo;
        oo.clean_shutdown = true;
        auto ref = log::open(ref_cache, "/data/t-0", {"t", 0}, f.cfg, oo, detail);
        ASSERT_TRUE(ref.ok()) << detail;
        std::mt19937_64 rng(99);
        int most_rounds = 0;
        for (int i = 0; i < 12; ++i) {
            const int64_t offset = static_cast<int64_t>(rng() % static_cast<uint64_t>(l->end_offset()));
            const size_t max_bytes = 1 + rng() % 100000;
            l->release_memory();
            plan_fetches st;
            st.limit_fetch_bytes(0);
            std::optional<read_plan> plan;
            for (int round = 0; !plan; ++round) {
                ASSERT_LT(round, 100000) << "no progress";
                auto p = l->plan_read_async(offset, max_bytes, INT64_MAX, st);
                ASSERT_TRUE(p.ok()) << describe(p.error()) << " " << l->offline_detail();
                if (*p) {
                    plan = std::move(*p);
                    break;
                }
                const auto& rq = st.fetch();
                ASSERT_LE(rq.length, size_t{1} << 21) << "a fetch larger than a scan chunk and a batch";
                std::vector<uint8_t> bytes(rq.length);
                ASSERT_TRUE(read_exact(*rq.f, rq.position, bytes).ok());
                st.supply(std::move(bytes));
            }
            most_rounds = std::max(most_rounds, st.rounds());
            shared_bytes data = plan->prefetched;
            if (data.empty() && plan->length > 0) {
                std::vector<uint8_t> bytes(plan->length);
                ASSERT_TRUE(read_exact(*plan->f, plan->position, bytes).ok());
                data = shared_bytes::adopt(std::move(bytes));
            }
            auto got = l->finish_read(*plan, data);
            ASSERT_TRUE(got.ok());
            auto want = (*ref)->read(offset, max_bytes, INT64_MAX);
            ASSERT_TRUE(want.ok());
            ASSERT_EQ(got->chunks.size(), 1u);
            ASSERT_FALSE(want->chunks.empty());
            ASSERT_EQ(got->chunks[0].size(), want->chunks[0].size()) << "offset " << offset;
            EXPECT_TRUE(std::equal(got->chunks[0].data(), got->chunks[0].data() + got->chunks[0].size(),
                                   want->chunks[0].data()));
        }
        // Whole-segment scans in 1 MiB chunks and one header per round.
        EXPECT_GT(most_rounds, variant == 0 ? 10 : 4) << "variant " << variant;
        EXPECT_FALSE(l->offline());
        if (variant == 1) {
            // The cut index was rebuilt whole.
            auto size = f.fs.file_size("/data/t-0/" + segment_file_name(0, ".index"));
            ASSERT_TRUE(size.ok());
            EXPECT_EQ(*size % offset_index_entry_size, 0u);
        }
    }
}

TEST(log, log_append_time_rewrites_timestamps) {
    fixture f;
    f.cfg.log_append_time = true;
    auto l = f.create();
    auto b = make_batch(3, 10, 1, 100);
    auto r = l->append(b, {.now_ms = 777});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->append_time_ms, 777);
    auto bs = batches_of(*l->read(0, 1000, INT64_MAX));
    ASSERT_EQ(bs.size(), 1u);
    EXPECT_EQ(bs[0].ts_type(), proto::timestamp_type::log_append_time);
    EXPECT_EQ(bs[0].max_timestamp(), 777);
    EXPECT_TRUE(bs[0].crc_ok());
}

TEST(log, rejects_bad_input_without_writing) {
    fixture f;
    auto l = f.create();
    auto b = make_batch(2, 10, 1, 100);
    b[30] ^= 1;  // inside the CRC range
    EXPECT_EQ(l->append(b, {}).error(), errc::invalid_batch);
    std::vector<uint8_t> shorty(20, 0);
    EXPECT_EQ(l->append(shorty, {}).error(), errc::invalid_batch);
    EXPECT_EQ(l->end_offset(), 0);
    // Follower appends keep offsets and refuse to go backwards.
    auto c = make_batch(2, 10, 2, 100);
    proto::set_base_offset(c, 10);
    proto::set_partition_leader_epoch(c, 4);
    ASSERT_TRUE(l->append(c, {.assign_offsets = false}).ok());
    EXPECT_EQ(l->end_offset(), 12);
    EXPECT_EQ(l->epochs().latest_epoch(), 4);
    auto d = make_batch(1, 10, 3, 100);
    proto::set_base_offset(d, 11);
    EXPECT_EQ(l->append(d, {.assign_offsets = false}).error(), errc::offset_regression);
    proto::set_base_offset(d, 12);
    proto::set_partition_leader_epoch(d, 3);
    EXPECT_EQ(l->append(d, {.assign_offsets = false}).error(), errc::epoch_regression);
}

TEST(log, truncate_suffix_and_prefix_with_epochs) {
    fixture f;
    f.cfg.segment_bytes = 3000;
    auto l = f.create();
    for (int i = 0; i < 30; ++i) {
        auto b = make_batch(2, 300, i, 100 + i);
        ASSERT_TRUE(l->append(b, {.now_ms = 1, .leader_epoch = i / 10}).ok());
    }
    EXPECT_EQ(l->epochs().entries().size(), 3u);
    EXPECT_EQ(l->end_offset_for_epoch(1), std::make_pair(1, int64_t{40}));
    ASSERT_TRUE(l->truncate_suffix(35).ok());  // inside batch [34, 35]
    EXPECT_EQ(l->end_offset(), 34);
    EXPECT_EQ(l->epochs().entries().size(), 2u);
    EXPECT_EQ(l->durable_offset(), 34);
    auto b = make_batch(2, 300, 99, 500);
    auto r = l->append(b, {.now_ms = 1, .leader_epoch = 7});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->first_offset, 34);
    ASSERT_TRUE(l->truncate_prefix(21).ok());
    EXPECT_EQ(l->start_offset(), 21);
    EXPECT_FALSE(l->read(19, 100, INT64_MAX).ok());
    auto rr = l->read(21, 100, INT64_MAX);
    ASSERT_TRUE(rr.ok());
    EXPECT_EQ(batches_of(*rr)[0].base_offset(), 20);  // the batch holding 21
    const size_t before = l->segment_count();
    ASSERT_TRUE(l->truncate_prefix(30).ok());
    EXPECT_LT(l->segment_count(), before);
    // Restart (unclean) keeps all of it.
    ASSERT_TRUE(l->sync().ok());
    l.reset();
    l = f.reopen(false, 0);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->end_offset(), 36);
    EXPECT_EQ(l->epochs().latest_epoch(), 7);
}

TEST(log, a_follower_append_spanning_several_epochs_records_each_of_them) {
    fixture f;
    auto l = f.create();
    // Batches [0,1] epoch 3, [2,3] epoch 4, [4,5] epoch 6, in one append.
    std::vector<uint8_t> all;
    const int32_t epochs[] = {3, 4, 6};
    for (int i = 0; i < 3; ++i) {
        auto b = make_batch(2, 50, i, 100);
        protocol::set_base_offset(b, 2 * i);
        protocol::set_partition_leader_epoch(b, epochs[i]);
        all.insert(all.end(), b.begin(), b.end());
    }
    ASSERT_TRUE(l->append(all, {.now_ms = 1, .assign_offsets = false}).ok());
    ASSERT_EQ(l->epochs().entries().size(), 3u);
    EXPECT_EQ(l->end_offset_for_epoch(3), std::make_pair(3, int64_t{2}));
    EXPECT_EQ(l->end_offset_for_epoch(4), std::make_pair(4, int64_t{4}));
    EXPECT_EQ(l->end_offset_for_epoch(5), std::make_pair(4, int64_t{4}));
    // Recovery derives the same history from the batches.
    ASSERT_TRUE(l->sync().ok());
    l.reset();
    l = f.reopen(false, 0);
    ASSERT_TRUE(l);
    ASSERT_EQ(l->epochs().entries().size(), 3u);
    EXPECT_EQ(l->end_offset_for_epoch(4), std::make_pair(4, int64_t{4}));
}

TEST(log, retention_by_bytes_and_time) {
    fixture f;
    f.cfg.segment_bytes = 2000;
    f.cfg.retention_bytes = 5000;
    f.cfg.retention_ms = 10000;
    auto l = f.create();
    for (int i = 0; i < 40; ++i) {
        auto b = make_batch(1, 400, i, 1000 + i);
        ASSERT_TRUE(l->append(b, {.now_ms = 1}).ok());
    }
    auto n = l->apply_retention(2000);
    ASSERT_TRUE(n.ok());
    EXPECT_GT(*n, 0);
    EXPECT_LE(l->size_bytes(), 5000 + 2000);
    EXPECT_GT(l->start_offset(), 0);
    n = l->apply_retention(100000);  // everything expired but the active segment
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(l->segment_count(), 1u);
    EXPECT_EQ(l->end_offset(), 40);
}

TEST(log, durability_is_driven_from_outside) {
    fixture f;
    f.cfg.segment_bytes = 2000;
    auto l = f.create();
    auto b = make_batch(2, 400, 1, 1);
    ASSERT_TRUE(l->append(b, {}).ok());
    EXPECT_TRUE(l->needs_sync());
    EXPECT_EQ(l->durable_offset(), 0);
    sync_work w = l->pending_sync();
    ASSERT_EQ(w.files.size(), 1u);
    EXPECT_EQ(w.durable_offset, 2);
    // Appends after the work was taken are not covered by it.
    for (int i = 0; i < 8; ++i) {
        auto c = make_batch(2, 400, 2 + i, 1);
        ASSERT_TRUE(l->append(c, {}).ok());
    }
    for (auto& it : w.files) ASSERT_TRUE(it.f->sync().ok());
    l->on_synced(w);
    EXPECT_EQ(l->durable_offset(), 2);
    w = l->pending_sync();
    EXPECT_GT(w.files.size(), 1u);  // rolled: every dirty segment
    EXPECT_TRUE(w.dir_sync);
    ASSERT_TRUE(l->sync().ok());
    EXPECT_EQ(l->durable_offset(), 18);
    EXPECT_FALSE(l->needs_sync());
    // A truncation overtaking a sync in flight: its completion is ignored.
    auto c = make_batch(2, 400, 50, 1);
    ASSERT_TRUE(l->append(c, {}).ok());
    w = l->pending_sync();
    ASSERT_TRUE(l->truncate_suffix(18).ok());
    l->on_synced(w);
    EXPECT_EQ(l->durable_offset(), 18);
}

TEST(log, full_disk_and_io_errors_fail_cleanly) {
    fixture f;
    auto l = f.create();
    auto b = make_batch(2, 400, 1, 1);
    ASSERT_TRUE(l->append(b, {}).ok());
    ASSERT_TRUE(l->sync().ok());
    f.fs.set_capacity(f.fs.contents("/data/t-0/00000000000000000000.log").size() + 300);
    auto c = make_batch(2, 400, 2, 1);
    auto r = l->append(c, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), errc::no_space);
    EXPECT_EQ(l->end_offset(), 2);
    EXPECT_FALSE(l->offline());
    f.fs.clear_faults();
    f.fs.fail_next(sim_file_system::op::write, errc::io_error);
    EXPECT_EQ(l->append(c, {}).error(), errc::io_error);
    auto d = make_batch(3, 100, 3, 1);
    auto ok = l->append(d, {});
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->first_offset, 2);
    auto bs = batches_of(*l->read(0, 1 << 20, INT64_MAX));
    ASSERT_EQ(bs.size(), 2u);
    // A failed fsync takes the log offline; reopening recovers.
    f.fs.fail_next(sim_file_system::op::sync, errc::io_error);
    EXPECT_FALSE(l->sync().ok());
    EXPECT_TRUE(l->offline());
    EXPECT_EQ(l->append(d, {}).error(), errc::log_offline);
    l.reset();
    l = f.reopen(false, 2);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->end_offset(), 5);
}

TEST(log, recovery_truncates_a_torn_tail_and_rebuilds_indexes) {
    fixture f;
    f.cfg.index_interval_bytes = 500;
    auto l = f.create();
    for (int i = 0; i < 20; ++i) {
        auto b = make_batch(2, 200, i, 100 + i);
        ASSERT_TRUE(l->append(b, {}).ok());
    }
    ASSERT_TRUE(l->sync().ok());
    l.reset();
    const std::string seg = "/data/t-0/00000000000000000000.log";
    auto bytes = f.fs.contents(seg);
    // Tear the last batch and drop the index.
    {
        auto file = f.fs.open(seg, open_mode::read_write);
        ASSERT_TRUE((*file)->truncate(bytes.size() - 10).ok());
        ASSERT_TRUE(f.fs.remove("/data/t-0/00000000000000000000.index").ok());
    }
    recovery_report rep;
    l = f.reopen(false, 10, &rep);
    ASSERT_TRUE(l);
    EXPECT_TRUE(rep.scanned);
    EXPECT_GT(rep.bytes_truncated, 0u);
    EXPECT_EQ(l->end_offset(), 38);
    EXPECT_FALSE(f.fs.contents("/data/t-0/00000000000000000000.index").empty());
    auto r = l->read(37, 1, INT64_MAX);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(batches_of(*r)[0].base_offset(), 36);
}

TEST(log, corruption_below_the_recovery_point_takes_the_partition_offline) {
    sim_file_system fs(3);
    log_manager_config mc;
    mc.dir = "/data";
    mc.defaults.segment_bytes = 2000;
    {
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        log_config cfg = mc.defaults;
        for (int p = 0; p < 2; ++p) {
            auto l = (*m)->create_log({"t", p}, cfg, nullptr);
            ASSERT_TRUE(l.ok());
            for (int i = 0; i < 20; ++i) {
                auto b = make_batch(1, 400, i, 100);
                ASSERT_TRUE((*l)->append(b, {}).ok());
            }
            ASSERT_TRUE((*l)->sync().ok());
        }
        ASSERT_TRUE((*m)->shutdown().ok());
    }
    // A bit flips in the middle segment of t-0.
    fs.corrupt("/data/t-0/00000000000000000004.log", 100, 0x40);
    {
        // Clean restart: no scan; the read that meets the bad batch fails and
        // takes only that partition offline.
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        EXPECT_TRUE((*m)->opened_clean());
        auto* l0 = (*m)->get({"t", 0});
        ASSERT_TRUE(l0);
        auto r = l0->read(0, 100, INT64_MAX);
        ASSERT_TRUE(r.ok());
        auto r2 = l0->read(4, 1 << 20, INT64_MAX);
        EXPECT_FALSE(r2.ok());
        EXPECT_TRUE(l0->offline());
        EXPECT_NE(l0->offline_detail().find("00000000000000000004.log"), std::string::npos) << l0->offline_detail();
        auto* l1 = (*m)->get({"t", 1});
        ASSERT_TRUE(l1);
        EXPECT_TRUE(l1->read(0, 1 << 20, INT64_MAX).ok());
        auto b = make_batch(1, 10, 1, 1);
        EXPECT_TRUE(l1->append(b, {}).ok());
        EXPECT_TRUE((*m)->shutdown().ok());  // not clean: t-0 is offline
    }
    // And one in the last segment, which an unclean restart scans.
    fs.corrupt("/data/t-0/00000000000000000016.log", 100, 0x40);
    {
        // Unclean restart with the recovery point at the end: the scan meets the
        // corruption below it: offline at open, with the file and position.
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        EXPECT_FALSE((*m)->opened_clean());
        ASSERT_EQ((*m)->offline().count({"t", 0}), 1u);
        EXPECT_NE((*m)->offline().at({"t", 0}).find("position"), std::string::npos);
        EXPECT_TRUE((*m)->get({"t", 1}));
        EXPECT_EQ((*m)->get({"t", 1})->end_offset(), 21);
    }
}

// 10,000 idle partitions: bytes per partition and bounded file handles.
TEST(log_manager, ten_thousand_partitions) {
    constexpr int partitions = 10000;
    sim_file_system fs(4);
    log_manager_config mc;
    mc.dir = "/data";
    mc.max_open_files = 256;
    {
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        for (int p = 0; p < partitions; ++p) {
            auto l = (*m)->create_log({"topic", p}, mc.defaults, nullptr);
            ASSERT_TRUE(l.ok());
            auto b = make_batch(2, 100, static_cast<uint64_t>(p), 1);
            ASSERT_TRUE((*l)->append(b, {}).ok());
        }
        EXPECT_LE((*m)->files().open_count(), 256u);
        EXPECT_LE(fs.open_files(), 256u);
        ASSERT_TRUE((*m)->shutdown().ok());
    }
    malloc_trim(0);
    const size_t before = mallinfo2().uordblks;
    auto m = log_manager::open(fs, mc, 0);
    ASSERT_TRUE(m.ok());
    ASSERT_EQ((*m)->logs().size(), static_cast<size_t>(partitions));
    const size_t after = mallinfo2().uordblks;
    // After a clean shutdown no partition is scanned.
    EXPECT_TRUE((*m)->opened_clean());
    EXPECT_TRUE((*m)->recovery_reports().empty()) << (*m)->recovery_reports().size() << " partitions were scanned";
    size_t accounted = 0;
    for (const auto& [tp, l] : (*m)->logs()) accounted += l->memory_bytes();
    const double per_partition = static_cast<double>(after - before) / partitions;
    std::printf(
        "[ measure  ] %d idle partitions: %.0f heap bytes per partition (%.0f in log objects), %zu open files\n",
        partitions, per_partition, static_cast<double>(accounted) / partitions, (*m)->files().open_count());
    EXPECT_LT(per_partition, 2048.0);
    EXPECT_LE((*m)->files().open_count(), 256u);
    // Every partition still serves reads through the bounded cache.
    for (int p = 0; p < partitions; p += 97) {
        auto r = (*m)->get({"topic", p})->read(0, 1000, INT64_MAX);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->next_offset, 2);
    }
    EXPECT_LE(fs.open_files(), 256u);
}

}  // namespace
}  // namespace fjord::storage
