// Transactions in the log: open transactions and the last stable offset,
// ABORT markers and the .txnindex (Kafka's format), restarts (clean and
// unclean, power loss), truncation, retention, and compaction dropping the
// records of aborted transactions.
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "protocol/record_batch.h"
#include "storage/compaction.h"
#include "storage/log.h"
#include "storage/sim_file_system.h"
#include "storage/txn_index.h"

namespace fjord::storage {
namespace {

namespace proto = fjord::protocol;

std::span<const uint8_t> as_bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Transactional data of `pid` (offsets assigned by the log).
std::vector<uint8_t> txn_data(int64_t pid, int32_t seq, const std::vector<std::pair<std::string, std::string>>& kv,
                              bool transactional = true) {
    proto::batch_options o;
    o.producer_id = pid;
    o.producer_epoch = 0;
    o.base_sequence = seq;
    o.transactional = transactional;
    proto::batch_builder b(o);
    for (const auto& [k, v] : kv) b.add(1000, as_bytes(k), as_bytes(v));
    return std::move(b.build()).value();
}

// An end-transaction marker as the coordinator writes it: key {int16
// version 0, int16 type}, value {int16 version 0, int32 coordinator epoch}.
std::vector<uint8_t> marker(int64_t pid, int16_t type, int32_t coordinator_epoch = 3) {
    proto::batch_options o;
    o.producer_id = pid;
    o.producer_epoch = 0;
    o.transactional = true;
    o.control = true;
    proto::batch_builder b(o);
    const uint8_t key[4] = {0, 0, 0, static_cast<uint8_t>(type)};
    const uint8_t value[6] = {0, 0, 0, 0, 0, static_cast<uint8_t>(coordinator_epoch)};
    b.add(1000, std::span<const uint8_t>(key), std::span<const uint8_t>(value));
    return std::move(b.build()).value();
}

std::vector<std::string> dir_names(sim_file_system& fs) {
    auto n = fs.list_dir("/d/t-0");
    FJORD_ASSERT(n.ok(), "list_dir failed");
    return std::move(n).value();
}

int64_t append(log& l, std::vector<uint8_t> bytes) {
    auto r = l.append(bytes, {.now_ms = 1000});
    EXPECT_TRUE(r.ok()) << describe(r.error());
    return r ? r->first_offset : -1;
}

struct txn_fixture {
    sim_file_system fs{7};
    file_cache cache{fs, 16};
    log_config cfg;
    std::unique_ptr<log> l;
    txn_fixture() { (void)fs.make_dir("/d"); }
    void create() { l = std::move(log::create(cache, "/d/t-0", {"t", 0}, cfg, nullptr)).value(); }
    void reopen(bool clean, int64_t recovery_point, recovery_report* rep = nullptr) {
        if (clean) {
            ASSERT_TRUE(l->flush_all().ok());
        }
        l.reset();
        std::string detail;
        auto r = log::open(cache, "/d/t-0", {"t", 0}, cfg, {.recovery_point = recovery_point, .clean_shutdown = clean},
                           detail, rep);
        ASSERT_TRUE(r.ok()) << detail;
        l = std::move(r).value();
    }
    std::vector<aborted_txn> aborted(int64_t from = 0, int64_t upper = INT64_MAX) {
        auto r = l->aborted_transactions(from, upper);
        EXPECT_TRUE(r.ok());
        return r ? *r : std::vector<aborted_txn>{};
    }
};

TEST(txn_index, kafka_format_bytes) {
    std::vector<uint8_t> bytes;
    encode_txn_index(std::vector<aborted_txn>{{0x0102030405060708, 5, 9, 10}}, bytes);
    const std::vector<uint8_t> want{0, 0,                      // version 0
                                    1, 2, 3, 4, 5, 6, 7, 8,    // producer id
                                    0, 0, 0, 0, 0, 0, 0, 5,    // first offset
                                    0, 0, 0, 0, 0, 0, 0, 9,    // last offset (the marker)
                                    0, 0, 0, 0, 0, 0, 0, 10};  // last stable offset
    EXPECT_EQ(bytes, want);
    EXPECT_EQ(bytes.size(), txn_index_entry_size);
    std::vector<aborted_txn> back;
    ASSERT_TRUE(decode_txn_index(bytes, back));
    EXPECT_EQ(back, (std::vector<aborted_txn>{{0x0102030405060708, 5, 9, 10}}));
    // Untrusted: partial entries, another version, markers out of order, first > last.
    std::vector<aborted_txn> out;
    EXPECT_FALSE(decode_txn_index(std::span(bytes).first(33), out));
    auto v1 = bytes;
    v1[1] = 1;
    EXPECT_FALSE(decode_txn_index(v1, out));
    auto two = bytes;
    two.insert(two.end(), bytes.begin(), bytes.end());
    EXPECT_FALSE(decode_txn_index(two, out));
    std::vector<uint8_t> inverted;
    encode_txn_index(std::vector<aborted_txn>{{1, 9, 5, 10}}, inverted);
    EXPECT_FALSE(decode_txn_index(inverted, out));
    EXPECT_TRUE(out.empty());
    EXPECT_TRUE(decode_txn_index({}, out));
}

TEST(txn, begin_commit_abort_and_the_last_stable_offset) {
    txn_fixture f;
    f.create();
    log& l = *f.l;
    EXPECT_EQ(append(l, txn_data(-1, -1, {{"a", "1"}, {"b", "1"}}, false)), 0);  // 0-1: plain
    EXPECT_FALSE(l.first_unstable_offset());
    EXPECT_EQ(l.last_stable_offset(2), 2);
    EXPECT_EQ(append(l, txn_data(10, 0, {{"a", "2"}, {"b", "2"}})), 2);  // A: 2-3
    EXPECT_EQ(l.first_unstable_offset(), 2);
    EXPECT_EQ(l.last_stable_offset(100), 2);
    EXPECT_EQ(l.last_stable_offset(1), 1);                   // the high watermark is lower
    EXPECT_EQ(append(l, txn_data(20, 0, {{"c", "x"}})), 4);  // B: 4
    EXPECT_EQ(append(l, txn_data(10, 2, {{"d", "2"}})), 5);  // A again: its transaction still starts at 2
    EXPECT_EQ(l.producers().find(10)->current_txn_first_offset, 2);
    EXPECT_EQ(l.producers().ongoing_count(), 2u);
    EXPECT_EQ(append(l, marker(10, control_type_commit)), 6);  // A commits
    EXPECT_EQ(l.first_unstable_offset(), 4);
    EXPECT_EQ(l.producers().find(10)->coordinator_epoch, 3);
    EXPECT_TRUE(f.aborted().empty());                         // a commit is not indexed
    EXPECT_EQ(append(l, marker(20, control_type_abort)), 7);  // B aborts
    EXPECT_FALSE(l.first_unstable_offset());
    EXPECT_EQ(l.last_stable_offset(8), 8);
    EXPECT_EQ(f.aborted(), (std::vector<aborted_txn>{{20, 4, 7, 8}}));
    // A new transaction of A; B aborts another while A's is open: its entry's
    // last stable offset is A's first offset.
    EXPECT_EQ(append(l, txn_data(10, 3, {{"e", "3"}})), 8);
    EXPECT_EQ(append(l, txn_data(20, 1, {{"f", "x"}})), 9);
    EXPECT_EQ(append(l, marker(20, control_type_abort)), 10);
    // An abort of a transaction without data here starts at its marker.
    EXPECT_EQ(append(l, marker(30, control_type_abort)), 11);
    const std::vector<aborted_txn> all{{20, 4, 7, 8}, {20, 9, 10, 8}, {30, 11, 11, 8}};
    EXPECT_EQ(f.aborted(), all);
    EXPECT_EQ(l.first_unstable_offset(), 8);
    EXPECT_EQ(l.last_stable_offset(12), 8);
    // Fetch's question: overlapping [from, upper).
    EXPECT_TRUE(f.aborted(0, 4).empty());
    EXPECT_EQ(f.aborted(5, 6), (std::vector<aborted_txn>{{20, 4, 7, 8}}));
    EXPECT_EQ(f.aborted(8, 10), (std::vector<aborted_txn>{{20, 9, 10, 8}}));
    EXPECT_EQ(f.aborted(11, 12), (std::vector<aborted_txn>{{30, 11, 11, 8}}));
    // The file: Kafka's bytes, entry after entry.
    std::vector<uint8_t> want;
    encode_txn_index(all, want);
    EXPECT_EQ(f.fs.contents("/d/t-0/00000000000000000000.txnindex"), want);
}

TEST(txn, index_per_segment_survives_clean_and_unclean_restarts) {
    txn_fixture f;
    f.cfg.segment_bytes = 400;
    f.create();
    std::vector<aborted_txn> expected;
    int32_t seq = 0;
    for (int i = 0; i < 12; ++i) {
        const int64_t pid = 100 + i % 3;
        const int64_t first = append(*f.l, txn_data(pid, seq, {{"k" + std::to_string(i), std::string(80, 'v')}}));
        seq += 1;
        append(*f.l, txn_data(-1, -1, {{"plain", "x"}}, false));
        const bool abort = i % 2 == 0;
        const int64_t m = append(*f.l, marker(pid, abort ? control_type_abort : control_type_commit));
        if (abort) expected.push_back({pid, first, m, m + 1});
    }
    // A transaction left open.
    const int64_t open_first = append(*f.l, txn_data(200, 0, {{"open", "1"}}));
    ASSERT_GT(f.l->segment_count(), 3u);
    EXPECT_EQ(f.aborted(), expected);
    int files = 0;
    for (const auto& n : dir_names(f.fs)) files += n.ends_with(".txnindex");
    EXPECT_GT(files, 1);
    // Each entry lives in the segment that holds its marker; the search stops early.
    EXPECT_EQ(f.aborted(expected[2].first_offset, expected[2].last_offset), (std::vector<aborted_txn>{expected[2]}));

    f.reopen(true, 0);
    EXPECT_EQ(f.aborted(), expected);
    EXPECT_EQ(f.l->first_unstable_offset(), open_first);
    EXPECT_EQ(f.l->producers().find(200)->current_txn_first_offset, open_first);

    // Unclean, from the start: every .txnindex re-derived (a stale or garbled one too).
    {
        auto h = f.fs.open("/d/t-0/00000000000000000000.txnindex", open_mode::create);
        uint8_t junk[5] = {9, 9, 9, 9, 9};
        ASSERT_TRUE((*h)->write_at(0, junk).ok());
    }
    for (const auto& n : dir_names(f.fs))
        if (n.ends_with(".snapshot")) {
            (void)f.fs.remove("/d/t-0/" + n);
        }
    recovery_report rep;
    f.reopen(false, 0, &rep);
    EXPECT_TRUE(rep.scanned);
    EXPECT_EQ(f.aborted(), expected);
    EXPECT_EQ(f.l->first_unstable_offset(), open_first);
    // Unclean from a later segment: the earlier files are kept as they are,
    // the later ones rebuilt from the snapshot at that segment plus the log.
    const int64_t late = expected.back().last_offset;
    f.reopen(false, late, &rep);
    EXPECT_EQ(f.aborted(), expected);
    EXPECT_EQ(f.l->first_unstable_offset(), open_first);

    // A garbled file found on a clean start takes the log offline when read.
    ASSERT_TRUE(f.l->flush_all().ok());
    f.l.reset();
    f.fs.corrupt("/d/t-0/00000000000000000000.txnindex", 1, 0x01);  // version 1
    std::string detail;
    f.l = std::move(log::open(f.cache, "/d/t-0", {"t", 0}, f.cfg, {.clean_shutdown = true}, detail)).value();
    EXPECT_FALSE(f.l->aborted_transactions(0, INT64_MAX).ok());
    EXPECT_TRUE(f.l->offline());
    EXPECT_NE(f.l->offline_detail().find(".txnindex"), std::string::npos) << f.l->offline_detail();
}

TEST(txn, entries_are_durable_with_their_markers_across_power_loss) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
        txn_fixture f;
        f.fs = sim_file_system(seed);
        f.cfg.segment_bytes = 300;
        f.create();
        std::vector<aborted_txn> durable;
        for (int i = 0; i < 10; ++i) {
            const int64_t first = append(*f.l, txn_data(7, i, {{"k", std::string(60, 'v')}}));
            const int64_t m = append(*f.l, marker(7, control_type_abort));
            if (i < 6) durable.push_back({7, first, m, m + 1});
            if (i == 5) {
                ASSERT_TRUE(f.l->sync().ok());
            }
        }
        const int64_t recovery_point = f.l->durable_offset();
        f.fs.power_cut();
        f.l.reset();
        std::string detail;
        auto r = log::open(f.cache, "/d/t-0", {"t", 0}, f.cfg, {.recovery_point = recovery_point}, detail);
        ASSERT_TRUE(r.ok()) << detail;
        f.l = std::move(r).value();
        auto got = f.aborted();
        ASSERT_GE(got.size(), durable.size()) << "seed " << seed;
        EXPECT_TRUE(std::equal(durable.begin(), durable.end(), got.begin())) << "seed " << seed;
        // Whatever survived is consistent: one entry per surviving marker.
        EXPECT_EQ(got.size(), static_cast<size_t>(f.l->end_offset() / 2)) << "seed " << seed;
    }
}

TEST(txn, truncation_and_retention_drop_entries_with_their_segments) {
    txn_fixture f;
    f.cfg.segment_bytes = 400;
    f.create();
    std::vector<aborted_txn> expected;
    for (int i = 0; i < 10; ++i) {
        const int64_t first = append(*f.l, txn_data(5, i, {{"k", std::string(100, 'v')}}));
        const int64_t m = append(*f.l, marker(5, control_type_abort));
        expected.push_back({5, first, m, m + 1});
    }
    ASSERT_TRUE(f.l->sync().ok());
    // Truncate inside the last aborted transaction: its entry goes, and it
    // is open again (its marker is gone).
    const aborted_txn last = expected.back();
    ASSERT_TRUE(f.l->truncate_suffix(last.last_offset).ok());
    expected.pop_back();
    EXPECT_EQ(f.aborted(), expected);
    EXPECT_EQ(f.l->first_unstable_offset(), last.first_offset);
    // Below a whole segment's markers: its .txnindex goes.
    const aborted_txn mid = expected[5];
    ASSERT_TRUE(f.l->truncate_suffix(mid.first_offset).ok());
    expected.resize(5);
    EXPECT_EQ(f.aborted(), expected);
    EXPECT_FALSE(f.l->first_unstable_offset());
    f.reopen(false, 0);
    EXPECT_EQ(f.aborted(), expected);
    // DeleteRecords past a few segments: their .txnindex files go with them.
    const int64_t new_start = expected[3].last_offset + 1;
    ASSERT_TRUE(f.l->truncate_prefix(new_start).ok());
    for (const auto& n : dir_names(f.fs)) {
        int64_t base = 0;
        std::string_view ext;
        if (parse_segment_file_name(n, base, ext) && ext == ".txnindex") {
            EXPECT_LE(base, new_start) << n;
        }
    }
    EXPECT_EQ(f.aborted(new_start), (std::vector<aborted_txn>{expected[4]}));
}

// Compaction: the records of aborted transactions go (and never shadow a
// committed value); the markers stay; nothing past an open transaction is cleaned.
TEST(txn, compaction_drops_aborted_records_and_keeps_markers) {
    txn_fixture f;
    f.cfg.segment_bytes = 500;
    f.cfg.compact = true;
    f.cfg.delete_ = false;
    f.create();
    append(*f.l, txn_data(1, 0, {{"k1", "committed"}, {"k2", "committed"}}));
    append(*f.l, marker(1, control_type_commit));
    append(*f.l, txn_data(2, 0, {{"k1", "aborted"}, {"k3", "aborted"}}));  // later than k1's committed value
    append(*f.l, marker(2, control_type_abort));
    for (int i = 0; i < 12; ++i)
        append(*f.l, txn_data(-1, -1, {{"filler" + std::to_string(i % 3), std::string(80, 'x')}}, false));
    // An open transaction: nothing from its first offset on may be cleaned.
    const int64_t open_first = append(*f.l, txn_data(3, 0, {{"k1", "pending"}}));
    for (int i = 0; i < 8; ++i) append(*f.l, txn_data(-1, -1, {{"late", std::string(80, 'y')}}, false));
    ASSERT_TRUE(f.l->sync().ok());
    auto plan = f.l->plan_compaction(5000, INT64_MAX, true);
    ASSERT_TRUE(plan);
    EXPECT_LE(plan->segments.back().end, open_first);
    EXPECT_EQ(plan->aborted.size(), 1u);
    compactor c(f.fs, 1 << 16);
    auto st = f.l->compact(5000, c, INT64_MAX, true);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->aborted_records_dropped, 2u);
    // What is served: k1 = committed (the aborted value did not shadow it),
    // no k3, both markers, the open transaction's record.
    std::map<std::string, std::string> latest;
    int markers = 0;
    std::vector<uint8_t> scratch;
    for (int64_t o = f.l->start_offset(); o < f.l->end_offset();) {
        auto r = f.l->read(o, 1 << 20, INT64_MAX);
        ASSERT_TRUE(r.ok());
        if (r->chunks.empty()) break;
        for (const auto& ch : r->chunks) {
            proto::batch_splitter s(ch);
            while (auto b = s.next()) {
                if (b->is_control()) {
                    ++markers;
                    continue;
                }
                auto payload = b->payload(scratch);
                ASSERT_TRUE(payload.ok());
                auto rr = b->records(*payload);
                proto::record_view v;
                while (rr.next(v)) {
                    latest[std::string(v.key->begin(), v.key->end())] = std::string(v.value->begin(), v.value->end());
                }
            }
        }
        o = r->next_offset;
    }
    EXPECT_EQ(markers, 2);
    EXPECT_EQ(latest.count("k3"), 0u);
    EXPECT_EQ(latest["k2"], "committed");
    EXPECT_EQ(latest["k1"], "pending");  // served after the cleaned range; a read_committed reader stops at the LSO
    // Cleaned segments carry no .txnindex (no aborted data left in them); the
    // marker's entry went with its cleaned segment.
    EXPECT_TRUE(f.aborted(0, open_first).empty());
    EXPECT_EQ(f.l->first_unstable_offset(), open_first);
    // Unclean restart: the marker (kept) is indexed again by the replay; its
    // transaction has no data left, so the entry is harmless.
    f.reopen(false, 0);
    EXPECT_EQ(f.l->first_unstable_offset(), open_first);
    for (const auto& t : f.aborted(0, open_first)) EXPECT_EQ(t.producer_id, 2);
}

}  // namespace
}  // namespace fjord::storage

namespace fjord::storage {
namespace {

// Model-based: random transactional appends (several producers, commits,
// aborts, markers without data, plain batches), rolls, truncations, clean and
// unclean restarts and power cuts, against a replay of the batches kept.
TEST(txn_model, open_transactions_and_aborted_index_match_a_replay) {
    struct appended {
        int64_t base, last, pid;
        int kind;  // 0 plain, 1 transactional data, 2 commit, 3 abort
    };
    for (uint64_t seed = 0; seed < 300; ++seed) {
        std::mt19937_64 rng(seed);
        txn_fixture f;
        f.fs = sim_file_system(seed + 100);
        f.cfg.segment_bytes = 350;
        f.create();
        std::vector<appended> batches;
        std::map<int64_t, int32_t> seqs;
        for (int step = 0; step < 120; ++step) {
            const int op = static_cast<int>(rng() % 100);
            const int64_t pid = static_cast<int64_t>(rng() % 4);
            if (op < 70) {
                const int kind = static_cast<int>(rng() % 4);
                std::vector<uint8_t> b;
                if (kind == 0) b = txn_data(-1, -1, {{"p", std::string(rng() % 60, 'p')}}, false);
                if (kind == 1) b = txn_data(pid, seqs[pid]++, {{"k", std::string(rng() % 60, 't')}});
                if (kind >= 2) b = marker(pid, kind == 3 ? control_type_abort : control_type_commit);
                auto r = f.l->append(b, {.now_ms = 1000});
                ASSERT_TRUE(r.ok());
                batches.push_back({r->first_offset, r->last_offset, kind == 0 ? -1 : pid, kind});
            } else if (op < 78) {
                ASSERT_TRUE(f.l->sync().ok());
            } else if (op < 84 && f.l->end_offset() > 0) {
                const int64_t to = static_cast<int64_t>(rng() % static_cast<uint64_t>(f.l->end_offset()));
                ASSERT_TRUE(f.l->truncate_suffix(to).ok());
            } else if (op < 88) {
                f.reopen(true, f.l->durable_offset());
            } else if (op < 92) {
                const int64_t rp = f.l->durable_offset();
                f.l.reset();
                f.fs.power_cut();
                std::string detail;
                auto r = log::open(f.cache, "/d/t-0", {"t", 0}, f.cfg, {.recovery_point = rp}, detail);
                ASSERT_TRUE(r.ok()) << detail;
                f.l = std::move(r).value();
            } else {
                ASSERT_TRUE(f.l->roll(1000).ok());
            }
            // The model: replay what the log still has.
            while (!batches.empty() && batches.back().base >= f.l->end_offset()) batches.pop_back();
            std::map<int64_t, int64_t> open;  // pid -> first offset
            std::vector<aborted_txn> aborted;
            for (const auto& b : batches) {
                if (b.kind == 1 && !open.count(b.pid)) open[b.pid] = b.base;
                if (b.kind >= 2) {
                    const int64_t first = open.count(b.pid) ? open[b.pid] : b.base;
                    open.erase(b.pid);
                    if (b.kind == 3) {
                        int64_t lso = b.last + 1;
                        for (const auto& [p, o] : open) lso = std::min(lso, o);
                        aborted.push_back({b.pid, first, b.last, lso});
                    }
                }
            }
            std::optional<int64_t> first_unstable;
            for (const auto& [p, o] : open) first_unstable = std::min(first_unstable.value_or(INT64_MAX), o);
            ASSERT_EQ(f.l->first_unstable_offset(), first_unstable) << "seed " << seed << " step " << step;
            ASSERT_EQ(f.aborted(), aborted) << "seed " << seed << " step " << step;
            if (!aborted.empty()) {
                const auto& t = aborted[rng() % aborted.size()];
                auto got = f.aborted(t.first_offset, t.first_offset + 1);
                ASSERT_TRUE(std::find(got.begin(), got.end(), t) != got.end()) << "seed " << seed;
            }
        }
    }
}

}  // namespace
}  // namespace fjord::storage
