// Compaction and producer state: unit tests, and a model-based test with
// random keys, tombstones, producers, appends interleaved with cleaning,
// restarts, crashes in the middle of a cleaning and power cuts, checked
// against "the latest value per key, at its original offset".
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "protocol/record_batch.h"
#include "storage/compaction.h"
#include "storage/log.h"
#include "storage/producer_state.h"
#include "storage/sim_file_system.h"

namespace fjord::storage {
namespace {

namespace proto = fjord::protocol;

std::span<const uint8_t> as_bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct rec {
    std::string key;
    std::optional<std::string> value;  // nullopt: tombstone
};

// One batch of records (offsets assigned by the log).
std::vector<uint8_t> keyed_batch(const std::vector<rec>& records, int64_t ts, proto::codec c = proto::codec::none,
                                 int64_t producer_id = -1, int16_t epoch = -1, int32_t base_seq = -1) {
    proto::batch_options o;
    o.compression = c;
    o.producer_id = producer_id;
    o.producer_epoch = epoch;
    o.base_sequence = base_seq;
    proto::batch_builder b(o);
    for (const auto& r : records) {
        proto::nullable_bytes v;
        if (r.value) v = as_bytes(*r.value);
        b.add(ts, as_bytes(r.key), v);
    }
    auto built = b.build();
    FJORD_ASSERT(built.ok(), "build failed");
    return std::move(built).value();
}

result<append_result, errc> append_v(log& l, std::vector<uint8_t> bytes, const append_options& o) {
    return l.append(bytes, o);
}

std::vector<std::string> dir_names(sim_file_system& fs) {
    auto n = fs.list_dir("/d/t-0");
    FJORD_ASSERT(n.ok(), "list_dir failed");
    return std::move(n).value();
}

struct served_record {
    int64_t offset;
    rec r;
};
struct served_batch {
    int64_t base, last;
    uint16_t attributes;
    int64_t producer_id;
    int32_t count;
};

// Everything the log serves from its start, validated as a consumer would.
void read_everything(log& l, std::vector<served_record>& records, std::vector<served_batch>& batches) {
    std::vector<uint8_t> scratch;
    int64_t o = l.start_offset();
    while (o < l.end_offset()) {
        auto r = l.read(o, 5000, INT64_MAX);
        ASSERT_TRUE(r.ok()) << describe(r.error()) << " " << l.offline_detail();
        if (r->chunks.empty()) break;  // a gap left by compaction runs to the end
        for (const auto& c : r->chunks) {
            proto::batch_splitter s(c);
            while (auto b = s.next()) {
                ASSERT_TRUE(
                    b->validate_all(scratch, proto::default_max_decompressed_bytes, {.dense_offsets = false}).ok());
                batches.push_back(
                    {b->base_offset(), b->last_offset(), b->attributes(), b->producer_id(), b->record_count()});
                auto payload = b->payload(scratch);
                ASSERT_TRUE(payload.ok());
                auto rr = b->records(*payload);
                proto::record_view v;
                while (rr.next(v)) {
                    ASSERT_TRUE(v.key.has_value());
                    rec x{std::string(v.key->begin(), v.key->end()), std::nullopt};
                    if (v.value) x.value = std::string(v.value->begin(), v.value->end());
                    records.push_back({b->offset_of(v), std::move(x)});
                }
            }
        }
        ASSERT_GT(r->next_offset, o);
        o = r->next_offset;
    }
}

// ---------------------------------------------------------------------------
// Producer state

TEST(producer_state, snapshot_format_round_trip_and_checks) {
    producer_state ps;
    ps.apply(
        {.producer_id = 7, .epoch = 2, .base_sequence = 0, .base_offset = 10, .last_offset = 12, .max_timestamp = 99});
    ps.apply({.producer_id = 7,
              .epoch = 2,
              .base_sequence = 3,
              .base_offset = 20,
              .last_offset = 21,
              .max_timestamp = 100,
              .transactional = true});
    ps.apply({.producer_id = 3,
              .epoch = 0,
              .base_sequence = INT32_MAX,
              .base_offset = 30,
              .last_offset = 31,
              .max_timestamp = 5});
    const producer_entry* e = ps.find(7);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->count, 2);
    EXPECT_EQ(e->last()->first_seq, 3);
    EXPECT_EQ(e->last()->last_seq, 4);
    EXPECT_EQ(e->current_txn_first_offset, 20);
    EXPECT_EQ(ps.find(3)->last()->last_seq, 0);  // sequences wrap like Kafka's
    auto bytes = ps.encode_snapshot();
    // Kafka's layout: int16 version 1, uint32 crc, int32 count, 46-byte entries sorted by id.
    ASSERT_EQ(bytes.size(), 10u + 2 * 46u);
    EXPECT_EQ(bytes[0], 0);
    EXPECT_EQ(bytes[1], 1);
    EXPECT_EQ(bytes[9], 2);
    EXPECT_EQ(bytes[17], 3);  // first entry: producer 3 (big-endian int64 at 10)
    producer_state back;
    ASSERT_TRUE(back.decode_snapshot(bytes));
    EXPECT_EQ(back.find(7)->last()->first_offset, 20);
    EXPECT_EQ(back.find(7)->last()->last_offset, 21);
    EXPECT_EQ(back.find(7)->last()->first_seq, 3);
    EXPECT_EQ(back.find(7)->epoch, 2);
    EXPECT_EQ(back.find(7)->last_timestamp, 100);
    EXPECT_EQ(back.find(7)->current_txn_first_offset, 20);
    EXPECT_EQ(back.find(3)->last()->first_seq, INT32_MAX);
    // A marker closes the transaction; a new epoch restarts the batches.
    ps.apply(
        {.producer_id = 7, .epoch = 2, .base_offset = 22, .last_offset = 22, .control = true, .coordinator_epoch = 4});
    EXPECT_EQ(ps.find(7)->current_txn_first_offset, -1);
    EXPECT_EQ(ps.find(7)->coordinator_epoch, 4);
    ps.apply({.producer_id = 7, .epoch = 3, .base_sequence = 0, .base_offset = 23, .last_offset = 23});
    EXPECT_EQ(ps.find(7)->count, 1);
    // Untrusted bytes: every flipped bit and every truncation is refused.
    for (size_t i = 0; i < bytes.size(); ++i) {
        auto bad = bytes;
        bad[i] ^= 0x10;
        producer_state x;
        EXPECT_FALSE(x.decode_snapshot(bad)) << "byte " << i;
        EXPECT_FALSE(x.decode_snapshot(std::span(bytes).first(i))) << "length " << i;
    }
}

TEST(producer_state, survives_restarts_rolls_truncation_and_retention) {
    sim_file_system fs(1);
    file_cache cache(fs, 8);
    (void)fs.make_dir("/d");
    log_config cfg;
    cfg.segment_bytes = 600;
    auto l = std::move(log::create(cache, "/d/t-0", {"t", 0}, cfg, nullptr)).value();
    int32_t seq[3] = {0, 0, 0};
    for (int i = 0; i < 40; ++i) {
        const int pid = i % 3;
        auto b = keyed_batch({{"k" + std::to_string(i), std::string(60, 'v')}, {"x", "y"}}, i, proto::codec::none,
                             100 + pid, 1, seq[pid]);
        seq[pid] += 2;
        ASSERT_TRUE(l->append(b, {.now_ms = i}).ok());
    }
    ASSERT_GT(l->segment_count(), 3u);
    const producer_state before = l->producers();
    ASSERT_EQ(before.size(), 3u);
    ASSERT_EQ(before.find(100)->count, producer_batches_kept);
    auto names = fs.list_dir("/d/t-0");
    int snapshots = 0;
    for (const auto& n : *names) snapshots += parse_producer_snapshot_name(n).has_value();
    EXPECT_EQ(snapshots, static_cast<int>(l->segment_count()) - 1) << "one snapshot per roll";
    // Clean restart: from the snapshot at the end.
    ASSERT_TRUE(l->flush_all().ok());
    l.reset();
    std::string detail;
    l = std::move(log::open(cache, "/d/t-0", {"t", 0}, cfg, {.recovery_point = 80, .clean_shutdown = true}, detail))
            .value();
    for (int64_t pid : {100, 101, 102}) {
        ASSERT_TRUE(l->producers().find(pid));
        EXPECT_EQ(l->producers().find(pid)->last()->last_offset, before.find(pid)->last()->last_offset);
        EXPECT_EQ(l->producers().find(pid)->last()->last_seq, before.find(pid)->last()->last_seq);
    }
    // Unclean restart without any snapshot: rebuilt by scanning, all 5 batches.
    for (const auto& n : dir_names(fs))
        if (parse_producer_snapshot_name(n)) (void)fs.remove("/d/t-0/" + n);
    l.reset();
    l = std::move(log::open(cache, "/d/t-0", {"t", 0}, cfg, {.recovery_point = 0}, detail)).value();
    EXPECT_TRUE(l->producers() == before);
    // A corrupt snapshot is ignored (and deleted); an older one plus a scan is used.
    ASSERT_TRUE(l->roll(100).ok());
    ASSERT_TRUE(append_v(*l, keyed_batch({{"z", "z"}}, 1, proto::codec::none, 100, 1, seq[0]), {.now_ms = 101}).ok());
    ASSERT_TRUE(l->roll(102).ok());
    const producer_state later = l->producers();
    ASSERT_TRUE(l->sync().ok());
    fs.corrupt("/d/t-0/" + producer_snapshot_name(l->end_offset()), 12, 0xff);
    l.reset();
    l = std::move(log::open(cache, "/d/t-0", {"t", 0}, cfg, {.recovery_point = 0}, detail)).value();
    EXPECT_EQ(l->producers().find(100)->last()->last_offset, later.find(100)->last()->last_offset);
    EXPECT_FALSE(fs.file_size("/d/t-0/" + producer_snapshot_name(l->end_offset())).ok());
    // Truncation: back to the state at the new end; later snapshots deleted.
    ASSERT_TRUE(l->truncate_suffix(40).ok());
    EXPECT_EQ(l->producers().find(100)->last()->last_offset, 37);  // batch i=18 holds offsets 36..37
    for (const auto& n : dir_names(fs)) {
        if (auto off = parse_producer_snapshot_name(n)) {
            EXPECT_LE(*off, 40) << n;
        }
    }
    // Snapshots older than the log start go with their segments.
    ASSERT_TRUE(l->truncate_prefix(30).ok());
    for (const auto& n : dir_names(fs)) {
        if (auto off = parse_producer_snapshot_name(n)) {
            EXPECT_GE(*off, l->start_offset() - 20) << n;
        }
    }
}

// ---------------------------------------------------------------------------
// Compaction

struct compaction_fixture {
    sim_file_system fs{1};
    file_cache cache{fs, 16};
    log_config cfg;
    std::unique_ptr<log> l;
    compaction_fixture() {
        (void)fs.make_dir("/d");
        cfg.segment_bytes = 800;
        cfg.compact = true;
        cfg.delete_ = false;
        cfg.delete_retention_ms = 1000;
        l = std::move(log::create(cache, "/d/t-0", {"t", 0}, cfg, nullptr)).value();
    }
};

TEST(compaction, keeps_the_latest_value_per_key_and_offsets) {
    compaction_fixture f;
    log& l = *f.l;
    // Batches of 4 records over 6 keys, some compressed, one tombstone for k1.
    for (int i = 0; i < 30; ++i) {
        std::vector<rec> rs;
        for (int j = 0; j < 4; ++j)
            rs.push_back({"k" + std::to_string((i * 4 + j) % 6), "v" + std::to_string(i * 4 + j)});
        if (i == 5) rs[1] = {"gone", "soon"};         // offset 21
        if (i == 20) rs[1] = {"gone", std::nullopt};  // offset 81: a tombstone
        ASSERT_TRUE(
            append_v(l, keyed_batch(rs, 1000 + i, i % 3 == 0 ? proto::codec::lz4 : proto::codec::none), {.now_ms = i})
                .ok());
    }
    ASSERT_TRUE(l.sync().ok());
    const size_t segments_before = l.segment_count();
    compactor c(f.fs, 1 << 20);
    // Below the dirty ratio nothing happens unless forced... it is all dirty here.
    auto st = l.compact(5000, c);
    ASSERT_TRUE(st.ok()) << describe(st.error());
    EXPECT_GT(st->records_dropped, 0u);
    EXPECT_GT(st->segments_replaced, 1);
    std::vector<served_record> recs;
    std::vector<served_batch> batches;
    read_everything(l, recs, batches);
    // Every batch keeps its base offset and span (4 offsets).
    for (const auto& b : batches) {
        EXPECT_EQ(b.base % 4, 0) << b.base;
        EXPECT_EQ(b.last - b.base, 3) << b.base;
    }
    // In the cleaned part each key appears once, with its latest value.
    std::map<std::string, int64_t> seen;
    const int64_t cleaned_to = l.first_dirty_offset();
    for (const auto& r : recs) {
        if (r.offset >= cleaned_to) continue;
        EXPECT_TRUE(seen.emplace(r.r.key, r.offset).second) << "key " << r.r.key << " twice";
    }
    // The tombstone is kept (its delete horizon has not passed) and marks its batch.
    bool tomb = false;
    for (const auto& r : recs) {
        tomb = tomb || (r.offset == 81 && !r.r.value);
        EXPECT_NE(r.offset, 21) << "the value the tombstone deletes is still there";
    }
    EXPECT_TRUE(tomb);
    for (const auto& b : batches) {
        if (b.base == 80) {
            EXPECT_TRUE(b.attributes & proto::attr::delete_horizon);
        }
    }
    // After the horizon (now + delete.retention.ms) a forced cleaning drops it.
    st = l.compact(5000 + f.cfg.delete_retention_ms + 1, c, INT64_MAX, true);
    ASSERT_TRUE(st.ok());
    recs.clear();
    batches.clear();
    read_everything(l, recs, batches);
    for (const auto& r : recs) EXPECT_FALSE(r.offset == 81) << "tombstone still there";
    // The small cleaned segments were grouped into fewer.
    EXPECT_LT(l.segment_count(), segments_before);
    // Appends and reads keep working; a restart (clean or not) reads the same.
    ASSERT_TRUE(append_v(l, keyed_batch({{"k9", "new"}}, 9000), {.now_ms = 99}).ok());
    const int64_t end = l.end_offset();
    f.l.reset();
    std::string detail;
    f.l = std::move(log::open(f.cache, "/d/t-0", {"t", 0}, f.cfg, {.recovery_point = 0}, detail)).value();
    EXPECT_EQ(f.l->end_offset(), end);
    std::vector<served_record> again;
    std::vector<served_batch> again_b;
    read_everything(*f.l, again, again_b);
    EXPECT_EQ(again.size(), recs.size() + 1);
}

TEST(compaction, keep_every_batch_leaves_no_hole) {
    // A replicated partition's log: records go, batches stay (empty if need
    // be), so the log is contiguous batch by batch for Raft.
    compaction_fixture f;
    log& l = *f.l;
    for (int i = 0; i < 30; ++i) {
        ASSERT_TRUE(
            append_v(l, keyed_batch({{"k" + std::to_string(i % 3), "v" + std::to_string(i)}}, 1000 + i), {.now_ms = i})
                .ok());
    }
    ASSERT_TRUE(l.sync().ok());
    compactor c(f.fs, 1 << 20);
    auto plan = l.plan_compaction(5000, INT64_MAX, true);
    ASSERT_TRUE(plan.has_value());
    plan->keep_every_batch = true;
    std::string detail;
    auto res = c.run(*plan, detail);
    ASSERT_TRUE(res.ok()) << detail;
    auto st = l.install_compaction(*plan, res.value());
    ASSERT_TRUE(st.ok());
    EXPECT_GT(st->records_dropped, 0u);
    std::vector<served_record> recs;
    std::vector<served_batch> batches;
    read_everything(l, recs, batches);
    ASSERT_EQ(batches.size(), 30u);
    for (size_t i = 0; i < batches.size(); ++i) EXPECT_EQ(batches[i].base, static_cast<int64_t>(i));
    EXPECT_LT(recs.size(), 30u);
}

TEST(compaction, producer_last_batch_kept_empty_and_codecs_preserved) {
    compaction_fixture f;
    log& l = *f.l;
    // Producer 5 writes k0 once (its only batch); later batches overwrite k0.
    ASSERT_TRUE(append_v(l, keyed_batch({{"k0", "old"}, {"k1", "old"}}, 10, proto::codec::zstd, 5, 0, 0), {}).ok());
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(append_v(l,
                             keyed_batch({{"k0", "x" + std::to_string(i)}, {"k1", std::string(50, 'y')}}, 20 + i,
                                         proto::codec::gzip),
                             {})
                        .ok());
    }
    ASSERT_TRUE(l.roll(0).ok());
    ASSERT_TRUE(l.sync().ok());
    compactor c(f.fs, 1 << 20);
    ASSERT_TRUE(l.compact(100, c).ok());
    std::vector<served_record> recs;
    std::vector<served_batch> batches;
    read_everything(l, recs, batches);
    ASSERT_FALSE(batches.empty());
    EXPECT_EQ(batches[0].base, 0);
    EXPECT_EQ(batches[0].last, 1);
    EXPECT_EQ(batches[0].producer_id, 5);
    EXPECT_EQ(batches[0].count, 0) << "the producer's last batch stays, empty";
    EXPECT_EQ(recs.size(), 2u);
    // The survivor keeps its codec.
    EXPECT_EQ(batches.back().attributes & proto::attr::codec_mask, static_cast<uint16_t>(proto::codec::gzip));
    // The producer state survives a restart that rescans the compacted log.
    f.l.reset();
    for (const auto& n : dir_names(f.fs))
        if (parse_producer_snapshot_name(n)) (void)f.fs.remove("/d/t-0/" + n);
    std::string detail;
    f.l = std::move(log::open(f.cache, "/d/t-0", {"t", 0}, f.cfg, {.recovery_point = 0}, detail)).value();
    ASSERT_TRUE(f.l->producers().find(5));
    EXPECT_EQ(f.l->producers().find(5)->last()->last_offset, 1);
}

TEST(compaction, small_key_map_cleans_in_several_passes_and_respects_the_ratio) {
    compaction_fixture f;
    log& l = *f.l;
    f.cfg.segment_bytes = 4000;
    for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(append_v(l, keyed_batch({{"k" + std::to_string(i % 60), std::to_string(i)}}, i), {}).ok());
        if (i % 25 == 24) {
            ASSERT_TRUE(l.roll(0).ok());
        }
    }
    ASSERT_TRUE(l.sync().ok());
    compactor c(f.fs, 16 * key_map::slot_bytes);  // 14 keys per pass
    ASSERT_LT(c.map().max_entries(), 20u);
    int passes = 0;
    while (l.first_dirty_offset() < 175 && passes < 100) {
        auto st = l.compact(0, c, INT64_MAX, true);
        ASSERT_TRUE(st.ok());
        ASSERT_GT(st->groups_installed, 0)
            << "pass " << passes << " first dirty " << l.first_dirty_offset() << " segments " << l.segment_count();
        ++passes;
    }
    EXPECT_GT(passes, 3);
    std::vector<served_record> recs;
    std::vector<served_batch> batches;
    read_everything(l, recs, batches);
    std::map<std::string, std::string> latest;
    for (const auto& r : recs) latest[r.r.key] = *r.r.value;
    ASSERT_EQ(latest.size(), 60u);
    for (int k = 0; k < 60; ++k) {
        int last = k;
        while (last + 60 < 200) last += 60;
        EXPECT_EQ(latest["k" + std::to_string(k)], std::to_string(last));
    }
    // Now clean: a new cleaning is below min.cleanable.dirty.ratio.
    EXPECT_FALSE(l.plan_compaction(0).has_value());
    EXPECT_TRUE(l.plan_compaction(0, INT64_MAX, true).has_value());
}

TEST(compaction, corrupt_source_takes_the_log_offline_and_nothing_is_swapped) {
    compaction_fixture f;
    log& l = *f.l;
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(append_v(l, keyed_batch({{"k", std::string(100, 'a')}}, i), {}).ok());
    ASSERT_TRUE(l.sync().ok());
    f.fs.corrupt("/d/t-0/" + segment_file_name(0, ".log"), 200, 0x01);
    compactor c(f.fs, 1 << 16);
    auto st = l.compact(0, c);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error(), errc::corrupt_log);
    EXPECT_TRUE(l.offline());
    EXPECT_NE(l.offline_detail().find("00000000000000000000.log"), std::string::npos) << l.offline_detail();
    for (const auto& n : dir_names(f.fs)) EXPECT_EQ(n.find(".cleaned"), std::string::npos) << n;
}

// A file system that dies (every call fails) after a budget of calls: a
// crash at an arbitrary point of a cleaning and its swap.
class dying_fs final : public file_system {
public:
    explicit dying_fs(sim_file_system& inner) : inner_(inner) {}
    int64_t budget = -1;  // < 0: unlimited
    bool spend() {
        if (budget < 0) return true;
        if (budget == 0) return false;
        --budget;
        return true;
    }
    class dying_file final : public file {
    public:
        dying_file(dying_fs& fs, std::shared_ptr<file> f) : fs_(fs), f_(std::move(f)) {}
        result<size_t, errc> read_at(uint64_t pos, std::span<uint8_t> out) override { return f_->read_at(pos, out); }
        result<void, errc> write_at(uint64_t pos, std::span<const uint8_t> data) override {
            if (!fs_.spend()) return fail(errc::io_error);
            return f_->write_at(pos, data);
        }
        result<void, errc> truncate(uint64_t size) override {
            if (!fs_.spend()) return fail(errc::io_error);
            return f_->truncate(size);
        }
        result<uint64_t, errc> size() override { return f_->size(); }
        result<void, errc> sync() override {
            if (!fs_.spend()) return fail(errc::io_error);
            return f_->sync();
        }

    private:
        dying_fs& fs_;
        std::shared_ptr<file> f_;
    };
    result<std::shared_ptr<file>, errc> open(const std::string& path, open_mode mode) override {
        auto f = inner_.open(path, mode);
        if (!f) return fail(f.error());
        return std::shared_ptr<file>(std::make_shared<dying_file>(*this, std::move(f).value()));
    }
    result<void, errc> remove(const std::string& p) override {
        if (!spend()) return fail(errc::io_error);
        return inner_.remove(p);
    }
    result<void, errc> rename(const std::string& a, const std::string& b) override {
        if (!spend()) return fail(errc::io_error);
        return inner_.rename(a, b);
    }
    result<void, errc> make_dir(const std::string& p) override { return inner_.make_dir(p); }
    result<void, errc> remove_dir(const std::string& p) override { return inner_.remove_dir(p); }
    result<void, errc> sync_dir(const std::string& p) override {
        if (!spend()) return fail(errc::io_error);
        return inner_.sync_dir(p);
    }
    result<std::vector<std::string>, errc> list_dir(const std::string& p) override { return inner_.list_dir(p); }
    result<uint64_t, errc> file_size(const std::string& p) override { return inner_.file_size(p); }
    bool is_dir(const std::string& p) override { return inner_.is_dir(p); }

private:
    sim_file_system& inner_;
};

// The model: every record ever appended at each offset of the current
// history; the log must serve a subset of it, at the same offsets, in whole
// original batch spans, with each key's latest record present (or, for a
// tombstone, the key absent altogether). SEED=n runs one seed, TRACE=1 logs steps.
struct compaction_model {
    std::map<int64_t, rec> records;
    std::map<int64_t, int64_t> spans;          // batch base -> last
    std::map<int64_t, int64_t> producer_last;  // pid -> last offset of its last batch
    std::map<int64_t, int32_t> producer_seq;

    void truncate(int64_t end) {
        records.erase(records.lower_bound(end), records.end());
        spans.erase(spans.lower_bound(end), spans.end());
        for (auto it = spans.begin(); it != spans.end(); ++it) FJORD_ASSERT(it->second < end, "span across end");
    }
};

void check_against_model(log& l, const compaction_model& m, uint64_t seed, int step) {
    ASSERT_FALSE(l.offline()) << l.offline_detail() << " seed " << seed << " step " << step;
    std::vector<served_record> recs;
    std::vector<served_batch> batches;
    read_everything(l, recs, batches);
    if (::testing::Test::HasFatalFailure()) return;
    for (const auto& b : batches) {
        auto it = m.spans.find(b.base);
        ASSERT_TRUE(it != m.spans.end() && it->second == b.last)
            << "seed " << seed << " step " << step << ": batch [" << b.base << ", " << b.last << "] not appended";
    }
    std::map<std::string, const served_record*> log_latest;
    for (const auto& r : recs) {
        auto it = m.records.find(r.offset);
        ASSERT_TRUE(it != m.records.end()) << "seed " << seed << " step " << step << " offset " << r.offset;
        ASSERT_EQ(it->second.key, r.r.key) << "seed " << seed << " offset " << r.offset;
        ASSERT_EQ(it->second.value, r.r.value) << "seed " << seed << " offset " << r.offset;
        log_latest[r.r.key] = &r;
    }
    std::map<std::string, int64_t> model_latest;
    for (const auto& [o, r] : m.records) model_latest[r.key] = o;
    for (const auto& [key, o] : model_latest) {
        const rec& want = m.records.at(o);
        auto it = log_latest.find(key);
        if (want.value) {
            ASSERT_TRUE(it != log_latest.end()) << "seed " << seed << " step " << step << ": key " << key << " lost";
            ASSERT_EQ(it->second->offset, o)
                << "seed " << seed << " step " << step << ": key " << key << " shows an older value";
        } else if (it != log_latest.end()) {
            ASSERT_EQ(it->second->offset, o)
                << "seed " << seed << " step " << step << ": deleted key " << key << " resurrected";
        }
    }
    for (const auto& [pid, last] : m.producer_last) {
        const producer_entry* e = l.producers().find(pid);
        ASSERT_TRUE(e && e->last()) << "seed " << seed << " step " << step << " producer " << pid;
        ASSERT_EQ(e->last()->last_offset, last) << "seed " << seed << " step " << step << " producer " << pid;
    }
}

void run_compaction_model(uint64_t seed, int& cleanings, int& crashes, int& cuts) {
    std::mt19937_64 rng(seed);
    sim_file_system sim(seed * 31 + 7);
    sim.tear_granularity = 1 + rng() % 300;
    dying_fs fs(sim);
    (void)sim.make_dir("/d");
    auto cache = std::make_unique<file_cache>(fs, 6);
    log_config cfg;
    cfg.segment_bytes = 600 + rng() % 2500;
    cfg.index_interval_bytes = 100 + static_cast<uint32_t>(rng() % 500);
    cfg.segment_index_bytes = 8 * (4 + rng() % 40);
    cfg.compact = true;
    cfg.delete_ = rng() % 2;  // compact,delete with retention off = compact
    cfg.retention_ms = -1;
    cfg.delete_retention_ms = static_cast<int64_t>(rng() % 40);
    cfg.min_cleanable_dirty_ratio = (rng() % 4) * 0.25;
    const size_t map_bytes = rng() % 2 ? 16 * key_map::slot_bytes : 1 << 16;
    compactor c(fs, map_bytes);
    const int keys = 3 + static_cast<int>(rng() % 40);
    auto l = std::move(log::create(*cache, "/d/t-0", {"t", 0}, cfg, nullptr)).value();
    compaction_model m;
    int64_t acked = 0;  // durable offset: survives power cuts
    int64_t now = 0;
    auto reopen = [&](bool clean, int64_t rp) {
        l.reset();
        cache = std::make_unique<file_cache>(fs, 6);
        std::string detail;
        recovery_report rep;
        auto o =
            log::open(*cache, "/d/t-0", {"t", 0}, cfg, {.recovery_point = rp, .clean_shutdown = clean}, detail, &rep);
        if (getenv("TRACE")) std::printf("  reopen from %ld: %s\n", static_cast<long>(rp), rep.detail.c_str());
        ASSERT_TRUE(o.ok()) << detail << " seed " << seed;
        l = std::move(o).value();
    };
    for (int step = 0; step < 120; ++step) {
        now += static_cast<int64_t>(rng() % 10);
        const int op = static_cast<int>(rng() % 100);
        if (getenv("TRACE")) std::printf("step %d op %d end %ld\n", step, op, static_cast<long>(l->end_offset()));
        if (op < 55) {
            std::vector<rec> rs(1 + rng() % 5);
            for (auto& r : rs) {
                r.key = "key-" + std::to_string(rng() % static_cast<uint64_t>(keys));
                if (rng() % 6) r.value = std::string(rng() % 80, static_cast<char>('a' + rng() % 26));
            }
            const auto codec = rng() % 3 == 0 ? proto::codec::lz4 : proto::codec::none;
            int64_t pid = -1;
            int32_t seq = -1;
            if (rng() % 3 == 0) {
                pid = static_cast<int64_t>(rng() % 3);
                seq = m.producer_seq[pid];
                m.producer_seq[pid] += static_cast<int32_t>(rs.size());
            }
            auto bytes = keyed_batch(rs, now, codec, pid, pid >= 0 ? 0 : -1, seq);
            auto r = l->append(bytes, {.now_ms = now});
            ASSERT_TRUE(r.ok()) << describe(r.error());
            for (size_t i = 0; i < rs.size(); ++i) m.records[r->first_offset + static_cast<int64_t>(i)] = rs[i];
            m.spans[r->first_offset] = r->last_offset;
            if (pid >= 0) m.producer_last[pid] = r->last_offset;
        } else if (op < 65) {
            ASSERT_TRUE(l->sync().ok());
            acked = l->durable_offset();
        } else if (op < 72) {
            ASSERT_TRUE(l->roll(now).ok());
        } else if (op < 85) {
            ASSERT_TRUE(l->sync().ok());
            acked = l->durable_offset();
            auto st = l->compact(now, c, INT64_MAX, rng() % 2);
            ASSERT_TRUE(st.ok()) << describe(st.error()) << " " << l->offline_detail();
            if (getenv("TRACE"))
                std::printf("  cleaned: %d groups, %d segments\n", st->groups_installed, st->segments_replaced);
            cleanings += st->groups_installed > 0;
        } else if (op < 90) {
            // A crash somewhere inside a cleaning (or its swap), then a power cut.
            ASSERT_TRUE(l->sync().ok());
            acked = l->durable_offset();
            fs.budget = static_cast<int64_t>(rng() % 12);
            (void)l->compact(now, c, INT64_MAX, true);
            fs.budget = -1;

            l.reset();
            cache.reset();
            sim.power_cut();
            ++crashes;
            reopen(false, acked);
            if (::testing::Test::HasFatalFailure()) return;
            ASSERT_GE(l->end_offset(), acked) << "seed " << seed << " step " << step;
            m.truncate(l->end_offset());
        } else if (op < 95) {
            const bool clean = rng() % 2;
            if (clean) {
                ASSERT_TRUE(l->flush_all().ok());
            }
            reopen(clean, clean ? l->end_offset() : acked);
            if (::testing::Test::HasFatalFailure()) return;
        } else {
            l.reset();
            cache.reset();
            sim.power_cut();
            ++cuts;
            reopen(false, acked);
            if (::testing::Test::HasFatalFailure()) return;
            ASSERT_GE(l->end_offset(), acked) << "seed " << seed << " step " << step;
            m.truncate(l->end_offset());
        }
        // Producers whose last batch was lost in a cut: recompute from spans.
        for (auto it = m.producer_last.begin(); it != m.producer_last.end();) {
            if (it->second >= l->end_offset()) {
                it = m.producer_last.erase(it);  // its last surviving batch is unknown to the model: skip it
            } else {
                ++it;
            }
        }
        check_against_model(*l, m, seed, step);
        if (::testing::Test::HasFatalFailure()) return;
    }
}

TEST(compaction_model, latest_value_per_key_survives_cleaning_restarts_crashes_and_cuts) {
    int cleanings = 0, crashes = 0, cuts = 0;
    const uint64_t only = getenv("SEED") ? std::strtoull(getenv("SEED"), nullptr, 10) : 0;
    for (uint64_t seed = 1; seed <= 300; ++seed) {
        if (only && seed != only) continue;
        run_compaction_model(seed, cleanings, crashes, cuts);
        if (::testing::Test::HasFatalFailure()) {
            ADD_FAILURE() << "seed " << seed;
            return;
        }
    }
    std::printf("[ measure  ] %d cleanings installed, %d crashes mid-cleaning, %d power cuts\n", cleanings, crashes,
                cuts);
    EXPECT_GT(cleanings, 1000);
}

}  // namespace
}  // namespace fjord::storage
