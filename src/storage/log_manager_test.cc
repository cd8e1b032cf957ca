// log_manager: shard-per-core over one log directory (per-shard checkpoint
// files and markers, changes of shard count, crashes while starting), the
// identity in meta.properties, and the persisted cleaner position.
#include <algorithm>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "storage/compaction.h"
#include "storage/log_manager.h"
#include "storage/sim_file_system.h"
#include "storage/test_util.h"

namespace fjord::storage {
namespace {

using testing::make_batch;

constexpr int partitions = 7;

log_manager_config shard_config(uint32_t shard, uint32_t count) {
    log_manager_config mc;
    mc.dir = "/data";
    mc.defaults.segment_bytes = 3000;
    mc.shard = shard;
    mc.shard_count = count;
    mc.owns = [shard, count](const topic_partition& tp) {
        return static_cast<uint32_t>(tp.partition) % count == shard;
    };
    return mc;
}

using managers = std::vector<std::unique_ptr<log_manager>>;

// Opens shards [0, opened) of `count`, shard 0 first, as the app does.
managers open_shards(file_system& fs, uint32_t count, uint32_t opened = UINT32_MAX) {
    managers ms;
    for (uint32_t k = 0; k < std::min(count, opened); ++k) {
        auto m = log_manager::open(fs, shard_config(k, count), 0);
        EXPECT_TRUE(m.ok()) << "shard " << k << ": " << describe(m.error());
        if (!m) return {};
        ms.push_back(std::move(m).value());
    }
    return ms;
}

log* find_log(managers& ms, int p) {
    for (auto& m : ms) {
        if (auto* l = m->get({"t", p})) return l;
    }
    return nullptr;
}

std::vector<std::string> top_names(sim_file_system& fs) {
    auto n = fs.list_dir("/data");
    EXPECT_TRUE(n.ok());
    std::vector<std::string> out;
    for (auto& s : *n) {
        if (s.find("checkpoint") != std::string::npos || s.find("cleanshutdown") != std::string::npos) out.push_back(s);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<offset_entry> read_checkpoint(sim_file_system& fs, const std::string& name) {
    auto text = read_small_file(fs, "/data/" + name);
    EXPECT_TRUE(text.ok()) << name;
    if (!text) return {};
    auto e = parse_offset_checkpoint(*text);
    EXPECT_TRUE(e.ok()) << name;
    return e ? *e : std::vector<offset_entry>{};
}

void append_some(log& l, int n, uint64_t seed) {
    for (int i = 0; i < n; ++i) {
        auto b = make_batch(2, 300, seed * 100 + static_cast<uint64_t>(i), 1000);
        ASSERT_TRUE(l.append(b, {.now_ms = 1000}).ok());
    }
}

TEST(shard_file_names, kafka_names_for_shard_zero) {
    EXPECT_EQ(shard_file_name(recovery_point_checkpoint_file, 0), "recovery-point-offset-checkpoint");
    EXPECT_EQ(shard_file_name(clean_shutdown_file, 3), ".kafka_cleanshutdown.3");
    uint32_t k = 99;
    EXPECT_TRUE(parse_shard_file_name("log-start-offset-checkpoint", log_start_checkpoint_file, k));
    EXPECT_EQ(k, 0u);
    EXPECT_TRUE(parse_shard_file_name("log-start-offset-checkpoint.12", log_start_checkpoint_file, k));
    EXPECT_EQ(k, 12u);
    for (const char* bad :
         {"log-start-offset-checkpoint.tmp", "log-start-offset-checkpoint.1.tmp", "log-start-offset-checkpoint.0",
          "log-start-offset-checkpoint.01", "log-start-offset-checkpoint.", "log-start-offset-checkpointx", "x"})
        EXPECT_FALSE(parse_shard_file_name(bad, log_start_checkpoint_file, k)) << bad;
}

TEST(log_manager_shards, shard_count_changes_keep_clean_restarts_clean) {
    sim_file_system fs(11);
    std::map<int, int64_t> ends;
    // Two shards over one directory, each with its partitions.
    {
        auto ms = open_shards(fs, 2);
        ASSERT_EQ(ms.size(), 2u);
        for (int p = 0; p < partitions; ++p) {
            auto& m = ms[static_cast<size_t>(p % 2)];
            auto l = m->create_log({"t", p}, m->config().defaults, nullptr);
            ASSERT_TRUE(l.ok());
            append_some(**l, 3 + p, static_cast<uint64_t>(p));
            ends[p] = (*l)->end_offset();
        }
        EXPECT_FALSE(ms[1]->get({"t", 0}));
        for (auto& m : ms) ASSERT_TRUE(m->shutdown().ok());
        EXPECT_EQ(top_names(fs),
                  (std::vector<std::string>{".kafka_cleanshutdown", ".kafka_cleanshutdown.1",
                                            "cleaner-offset-checkpoint", "cleaner-offset-checkpoint.1",
                                            "log-start-offset-checkpoint", "log-start-offset-checkpoint.1",
                                            "recovery-point-offset-checkpoint", "recovery-point-offset-checkpoint.1"}));
        // Each shard lists only its own partitions.
        for (const auto& e : read_checkpoint(fs, "recovery-point-offset-checkpoint")) EXPECT_EQ(e.tp.partition % 2, 0);
        for (const auto& e : read_checkpoint(fs, "recovery-point-offset-checkpoint.1"))
            EXPECT_EQ(e.tp.partition % 2, 1);
        EXPECT_EQ(read_checkpoint(fs, "recovery-point-offset-checkpoint.1").size(), 3u);
    }
    // One shard: everything clean, no scan, the other shard's files removed.
    {
        auto ms = open_shards(fs, 1);
        ASSERT_EQ(ms.size(), 1u);
        EXPECT_TRUE(ms[0]->opened_clean());
        EXPECT_TRUE(ms[0]->recovery_reports().empty());
        EXPECT_EQ(ms[0]->logs().size(), static_cast<size_t>(partitions));
        for (int p = 0; p < partitions; ++p) EXPECT_EQ(find_log(ms, p)->end_offset(), ends[p]);
        EXPECT_EQ(top_names(fs), (std::vector<std::string>{"cleaner-offset-checkpoint", "log-start-offset-checkpoint",
                                                           "recovery-point-offset-checkpoint"}));
        EXPECT_EQ(read_checkpoint(fs, "recovery-point-offset-checkpoint").size(), static_cast<size_t>(partitions));
        // DeleteRecords on t-4 (shard 0 now, shard 1 of 3 next).
        ASSERT_TRUE(find_log(ms, 4)->truncate_prefix(3).ok());
        ASSERT_TRUE(ms[0]->shutdown().ok());
    }
    // Three shards: partitions move between shards, still clean, and the
    // log start of t-4 moves with it.
    {
        auto ms = open_shards(fs, 3);
        ASSERT_EQ(ms.size(), 3u);
        for (uint32_t k = 0; k < 3; ++k) {
            EXPECT_TRUE(ms[k]->opened_clean()) << k;
            EXPECT_TRUE(ms[k]->recovery_reports().empty()) << k;
            for (const auto& [tp, l] : ms[k]->logs()) EXPECT_EQ(static_cast<uint32_t>(tp.partition) % 3, k);
        }
        for (int p = 0; p < partitions; ++p) EXPECT_EQ(find_log(ms, p)->end_offset(), ends[p]) << p;
        EXPECT_EQ(ms[1]->get({"t", 4})->start_offset(), 3);
        ASSERT_TRUE(log_manager::remove_stale_shard_files(fs, "/data", 3).ok());
        for (const auto& n : top_names(fs)) {
            uint32_t k = 0;
            bool ours = false;
            for (const char* base : {recovery_point_checkpoint_file, log_start_checkpoint_file, cleaner_checkpoint_file,
                                     clean_shutdown_file})
                ours = ours || (parse_shard_file_name(n, base, k) && k < 3);
            EXPECT_TRUE(ours) << n;
        }
        EXPECT_EQ(read_checkpoint(fs, "log-start-offset-checkpoint.1").size(), 2u);  // t-1, t-4
        for (const auto& e : read_checkpoint(fs, "log-start-offset-checkpoint.1")) {
            if (e.tp.partition == 4) {
                EXPECT_EQ(e.offset, 3);
            }
        }
        for (auto& m : ms) ASSERT_TRUE(m->shutdown().ok());
    }
    // The same three shards again: nothing moves, nothing is renamed.
    {
        auto ms = open_shards(fs, 3);
        for (auto& m : ms) {
            EXPECT_TRUE(m->opened_clean());
            EXPECT_TRUE(m->recovery_reports().empty());
        }
        EXPECT_EQ(top_names(fs).size(), 9u);  // three files per shard, markers removed
        for (int p = 0; p < partitions; ++p) append_some(*find_log(ms, p), 1, 99);
        // No shutdown: a crash.
    }
    // Unclean (no markers), and two shards: every partition is scanned.
    {
        auto ms = open_shards(fs, 2);
        ASSERT_EQ(ms.size(), 2u);
        size_t scanned = 0;
        for (auto& m : ms) {
            EXPECT_FALSE(m->opened_clean());
            scanned += m->recovery_reports().size();
        }
        EXPECT_EQ(scanned, static_cast<size_t>(partitions));
        EXPECT_EQ(find_log(ms, 4)->start_offset(), 3);
        ASSERT_TRUE(log_manager::remove_stale_shard_files(fs, "/data", 2).ok());
        EXPECT_EQ(top_names(fs).size(), 6u);
        for (auto& m : ms) ASSERT_TRUE(m->shutdown().ok());
    }
}

TEST(log_manager_shards, a_start_cut_short_after_a_change_of_shard_count) {
    sim_file_system fs(12);
    {
        auto ms = open_shards(fs, 2);
        for (int p = 0; p < partitions; ++p) {
            auto& m = ms[static_cast<size_t>(p % 2)];
            auto l = m->create_log({"t", p}, m->config().defaults, nullptr);
            ASSERT_TRUE(l.ok());
            append_some(**l, 4, static_cast<uint64_t>(p));
            if (p == 5) {
                ASSERT_TRUE((*l)->truncate_prefix(2).ok());
            }
        }
        for (auto& m : ms) ASSERT_TRUE(m->shutdown().ok());
    }
    // Three shards, but only shards 0 and 1 open before the process dies.
    {
        auto ms = open_shards(fs, 3, 2);
        ASSERT_EQ(ms.size(), 2u);
        EXPECT_TRUE(ms[0]->opened_clean());
        EXPECT_TRUE(ms[1]->opened_clean());
        append_some(*ms[0]->get({"t", 3}), 1, 77);
        ASSERT_TRUE(ms[0]->get({"t", 3})->sync().ok());
    }
    // The opened shards' partitions are listed twice (the old files and the
    // new, unmarked ones): recovered. Shard 2's were never opened: clean.
    {
        auto ms = open_shards(fs, 3);
        ASSERT_EQ(ms.size(), 3u);
        EXPECT_FALSE(ms[0]->opened_clean());
        EXPECT_EQ(ms[0]->recovery_reports().size(), ms[0]->logs().size());
        EXPECT_EQ(ms[1]->recovery_reports().size(), ms[1]->logs().size());
        EXPECT_TRUE(ms[2]->opened_clean());
        EXPECT_TRUE(ms[2]->recovery_reports().empty());
        EXPECT_EQ(ms[2]->get({"t", 5})->start_offset(), 2);  // the highest log start
        EXPECT_EQ(ms[0]->get({"t", 3})->end_offset(), 10);
        ASSERT_TRUE(log_manager::remove_stale_shard_files(fs, "/data", 3).ok());
        for (auto& m : ms) ASSERT_TRUE(m->shutdown().ok());
    }
    {
        auto ms = open_shards(fs, 3);
        for (auto& m : ms) {
            EXPECT_TRUE(m->opened_clean());
            EXPECT_TRUE(m->recovery_reports().empty());
        }
    }
}

TEST(log_manager_shards, unowned_partition_directories_are_not_touched) {
    sim_file_system fs(13);
    {
        auto ms = open_shards(fs, 1);
        auto l = ms[0]->create_log({"t", 1}, ms[0]->config().defaults, nullptr);
        ASSERT_TRUE(l.ok());
        append_some(**l, 2, 1);
        // Leave a torn tail: a scan would cut it.
        auto f = fs.open("/data/t-1/00000000000000000000.log", open_mode::read_write);
        uint8_t junk[7] = {1, 2, 3, 4, 5, 6, 7};
        ASSERT_TRUE((*f)->write_at(fs.contents("/data/t-1/00000000000000000000.log").size(), junk).ok());
    }
    const auto before = fs.contents("/data/t-1/00000000000000000000.log");
    auto m0 = log_manager::open(fs, shard_config(0, 2), 0);
    ASSERT_TRUE(m0.ok());
    EXPECT_TRUE((*m0)->logs().empty());
    EXPECT_EQ(fs.contents("/data/t-1/00000000000000000000.log"), before);
    auto m1 = log_manager::open(fs, shard_config(1, 2), 0);
    ASSERT_TRUE(m1.ok());
    EXPECT_EQ((*m1)->recovery_reports().size(), 1u);
    EXPECT_LT(fs.contents("/data/t-1/00000000000000000000.log").size(), before.size());
}

TEST(log_manager_shards, shards_open_concurrently_on_posix) {
    namespace stdfs = std::filesystem;
    const stdfs::path dir = stdfs::temp_directory_path() / ("fjord-shards-" + std::to_string(::getpid()));
    stdfs::remove_all(dir);
    constexpr uint32_t count = 4;
    auto config = [&](uint32_t k, uint32_t n) {
        auto c = shard_config(k, n);
        c.dir = dir.string();
        return c;
    };
    for (uint32_t run = 0; run < 3; ++run) {
        const uint32_t n = run == 1 ? count - 1 : count;
        std::vector<std::unique_ptr<log_manager>> ms(n);
        auto m0 = log_manager::open(posix_file_system(), config(0, n), 0);
        ASSERT_TRUE(m0.ok());
        ms[0] = std::move(m0).value();
        std::vector<std::thread> threads;
        std::atomic<int> failures{0};
        for (uint32_t k = 1; k < n; ++k) {
            threads.emplace_back([&, k] {
                auto m = log_manager::open(posix_file_system(), config(k, n), 0);
                if (!m) {
                    ++failures;
                    return;
                }
                if (run == 0) {
                    for (int p = 0; p < 16; ++p) {
                        if (static_cast<uint32_t>(p) % n != k) continue;
                        auto l = (*m)->create_log({"t", p}, (*m)->config().defaults, nullptr);
                        if (!l) {
                            ++failures;
                            continue;
                        }
                        auto b = make_batch(1, 10, 1, 1);
                        if (!(*l)->append(b, {}).ok()) ++failures;
                    }
                }
                ms[k] = std::move(m).value();
            });
        }
        for (auto& t : threads) t.join();
        ASSERT_EQ(failures.load(), 0);
        ASSERT_TRUE(log_manager::remove_stale_shard_files(posix_file_system(), dir.string(), n).ok());
        size_t logs = 0;
        for (uint32_t k = 0; k < n; ++k) {
            if (run > 0) {
                EXPECT_TRUE(ms[k]->recovery_reports().empty()) << "run " << run << " shard " << k;
            }
            logs += ms[k]->logs().size();
        }
        EXPECT_EQ(logs, 12u);  // created by shards 1-3 of 4 in the first run
        for (auto& m : ms) ASSERT_TRUE(m->shutdown().ok());
    }
    stdfs::remove_all(dir);
}

TEST(log_manager_identity, meta_properties_written_once_and_read_back) {
    sim_file_system fs(14);
    {
        // A Kafka 4 log dir: version 1 with node.id, cluster.id, directory.id.
        ASSERT_TRUE(fs.make_dir("/data").ok());
        ASSERT_TRUE(
            write_file_atomically(fs, "/data", "meta.properties",
                                  "#\n#Thu Jan 01 00:00:00 UTC 2025\nnode.id=1\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAQ\n"
                                  "version=1\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\n")
                .ok());
        auto m = log_manager::open(fs, shard_config(0, 1), 0);
        ASSERT_TRUE(m.ok());
        EXPECT_EQ((*m)->cluster_id(), "q1Sh-9_ISia_zwGINzRvyQ");
        EXPECT_EQ((*m)->node_id(), 1);
        auto m1 = log_manager::open(fs, shard_config(1, 2), 0);
        ASSERT_TRUE(m1.ok());
        EXPECT_EQ((*m1)->cluster_id(), "q1Sh-9_ISia_zwGINzRvyQ");
        // Another cluster's or node's directory is refused.
        auto other = shard_config(0, 1);
        other.cluster_id = "another";
        auto refused = log_manager::open(fs, other, 0);
        ASSERT_FALSE(refused.ok());
        EXPECT_EQ(refused.error(), errc::identity_mismatch);
        other = shard_config(0, 1);
        other.node_id = 2;
        EXPECT_FALSE(log_manager::open(fs, other, 0).ok());
    }
    sim_file_system fresh(15);
    {
        // Shard 1 never writes the shared file; shard 0 does.
        auto m1 = log_manager::open(fresh, shard_config(1, 2), 0);
        ASSERT_TRUE(m1.ok());
        EXPECT_EQ(fresh.contents("/data/meta.properties").size(), 0u);
        auto c = shard_config(0, 2);
        c.cluster_id = "abc";
        auto m0 = log_manager::open(fresh, c, 0);
        ASSERT_TRUE(m0.ok());
        EXPECT_EQ((*m0)->cluster_id(), "abc");
        auto text = read_small_file(fresh, "/data/meta.properties");
        ASSERT_TRUE(text.ok());
        auto props = parse_properties(*text);
        ASSERT_TRUE(props.ok());
        EXPECT_EQ(props->at("cluster.id"), "abc");
        EXPECT_EQ(props->at("version"), "1");
        EXPECT_EQ(props->at("node.id"), "1");
        EXPECT_EQ(props->at("directory.id").size(), 22u);
        auto again = log_manager::open(fresh, shard_config(1, 2), 0);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ((*again)->cluster_id(), "abc");
    }
}

}  // namespace
}  // namespace fjord::storage

namespace fjord::storage {
namespace {

TEST(log_manager_checkpoints, prepared_off_the_shard_and_cleaner_position_survives_restart) {
    sim_file_system fs(16);
    auto mc = shard_config(1, 2);
    mc.defaults.compact = true;
    mc.defaults.delete_ = false;
    mc.defaults.segment_bytes = 1500;
    int64_t first_dirty = 0;
    {
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        auto l = (*m)->create_log({"t", 1}, mc.defaults, nullptr);
        ASSERT_TRUE(l.ok());
        // The same keys over and over (make_batch's keys depend on the seed).
        for (int i = 0; i < 30; ++i) {
            auto b = make_batch(3, 100, static_cast<uint64_t>(i % 2), 1000 + i);
            ASSERT_TRUE((*l)->append(b, {.now_ms = 1000}).ok());
        }
        ASSERT_TRUE((*l)->sync().ok());
        compactor c(fs, 1 << 16);
        auto st = (*l)->compact(2000, c, INT64_MAX, true);
        ASSERT_TRUE(st.ok());
        EXPECT_GT(st->segments_replaced, 0);
        first_dirty = (*l)->first_dirty_offset();
        EXPECT_GT(first_dirty, 0);

        // The two halves: text on the shard, the writing anywhere.
        const checkpoint_files files = (*m)->prepare_checkpoint();
        ASSERT_EQ(files.files.size(), 3u);
        EXPECT_EQ(files.files[0].name, "recovery-point-offset-checkpoint.1");
        EXPECT_EQ(files.files[1].name, "log-start-offset-checkpoint.1");
        EXPECT_EQ(files.files[2].name, "cleaner-offset-checkpoint.1");
        EXPECT_EQ(files.files[2].text, fmt::format("0\n1\nt 1 {}\n", first_dirty));
        std::thread io([&] { ASSERT_TRUE(log_manager::write_checkpoint(fs, "/data", files).ok()); });
        io.join();
        EXPECT_EQ(read_checkpoint(fs, "cleaner-offset-checkpoint.1").at(0).offset, first_dirty);
        // A crash: no shutdown.
    }
    {
        auto m = log_manager::open(fs, mc, 0);
        ASSERT_TRUE(m.ok());
        auto* l = (*m)->get({"t", 1});
        ASSERT_TRUE(l);
        EXPECT_EQ(l->first_dirty_offset(), first_dirty);
        auto plan = l->plan_compaction(3000, INT64_MAX, true);
        ASSERT_TRUE(plan);
        EXPECT_EQ(plan->first_dirty, first_dirty);
        // A truncation below it moves it back (Kafka's maybeTruncateCheckpoint).
        ASSERT_TRUE(l->truncate_suffix(first_dirty - 1).ok());
        EXPECT_LE(l->first_dirty_offset(), l->end_offset());
        ASSERT_TRUE((*m)->shutdown().ok());
        EXPECT_LE(read_checkpoint(fs, "cleaner-offset-checkpoint.1").at(0).offset, l->end_offset());
    }
    // Not a compacted topic, never cleaned: not listed (as Kafka).
    {
        auto plain = shard_config(0, 2);
        auto m = log_manager::open(fs, plain, 0);
        ASSERT_TRUE(m.ok());
        ASSERT_TRUE((*m)->create_log({"t", 0}, plain.defaults, nullptr).ok());
        EXPECT_EQ((*m)->prepare_checkpoint().files[2].text, "0\n0\n");
    }
}

}  // namespace
}  // namespace fjord::storage
