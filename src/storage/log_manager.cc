#include "storage/log_manager.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <random>

#include <fmt/format.h>

#include "base/assert.h"

namespace fjord::storage {

std::string shard_file_name(std::string_view base, uint32_t shard) {
    return shard == 0 ? std::string(base) : fmt::format("{}.{}", base, shard);
}

bool parse_shard_file_name(std::string_view name, std::string_view base, uint32_t& shard) {
    if (name.substr(0, base.size()) != base) return false;
    if (name.size() == base.size()) {
        shard = 0;
        return true;
    }
    auto digits = name.substr(base.size());
    if (digits[0] != '.') return false;
    digits.remove_prefix(1);
    // ".<k>" with k >= 1, no leading zero: "<base>.1.tmp" and the like are not ours.
    if (digits.empty() || digits.size() > 9 || digits[0] == '0') return false;
    uint32_t k = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
    if (ec != std::errc{} || ptr != digits.data() + digits.size()) return false;
    shard = k;
    return true;
}

log_manager::log_manager(file_system& fs, log_manager_config cfg)
    : fs_(fs), cfg_(std::move(cfg)), files_(std::make_unique<file_cache>(fs, cfg_.max_open_files)) {}

log_manager::~log_manager() {
    logs_.clear();  // before the file cache
}

namespace {

constexpr std::array<const char*, 3> checkpoint_bases{recovery_point_checkpoint_file, log_start_checkpoint_file,
                                                      cleaner_checkpoint_file};

result<std::map<topic_partition, int64_t>, errc> read_offsets(file_system& fs, const std::string& path) {
    std::map<topic_partition, int64_t> out;
    auto text = read_small_file(fs, path);
    if (!text) {
        // Another shard may replace (rename over) or a stale file be removed
        // while we look: a missing file lists nothing.
        if (text.error() == errc::not_found) return out;
        return fail(text.error());
    }
    auto entries = parse_offset_checkpoint(*text);
    if (!entries) return fail(entries.error());
    for (auto& e : *entries) out[e.tp] = e.offset;
    return out;
}

// One shard's files as found at open.
struct shard_files {
    bool present[3] = {false, false, false};  // by checkpoint_bases
    bool marker = false;
    std::map<topic_partition, int64_t> offsets[3];
    bool lists(const topic_partition& tp) const {
        return offsets[0].count(tp) || offsets[1].count(tp) || offsets[2].count(tp);
    }
};

result<std::map<uint32_t, shard_files>, errc> list_shard_files(file_system& fs, const std::string& dir) {
    auto names = fs.list_dir(dir);
    if (!names) return fail(names.error());
    std::map<uint32_t, shard_files> out;
    for (const auto& name : *names) {
        uint32_t k = 0;
        for (size_t i = 0; i < checkpoint_bases.size(); ++i) {
            if (parse_shard_file_name(name, checkpoint_bases[i], k)) out[k].present[i] = true;
        }
        if (parse_shard_file_name(name, clean_shutdown_file, k)) out[k].marker = true;
    }
    return out;
}

// What one owned partition's entries say, merged over every file listing it.
struct partition_start {
    int64_t recovery_point = 0;
    int64_t log_start = 0;
    int64_t cleaner_offset = -1;  // -1: none
    int listed_in = 0;
    bool clean = false;
};

partition_start merge_entries(const std::map<uint32_t, shard_files>& shards, const topic_partition& tp) {
    partition_start p;
    bool any_rp = false, any_cleaner = false;
    for (const auto& [k, s] : shards) {
        if (!s.lists(tp)) continue;
        ++p.listed_in;
        p.clean = s.marker;
        if (auto it = s.offsets[0].find(tp); it != s.offsets[0].end()) {
            p.recovery_point = any_rp ? std::min(p.recovery_point, it->second) : it->second;
            any_rp = true;
        }
        if (auto it = s.offsets[1].find(tp); it != s.offsets[1].end()) p.log_start = std::max(p.log_start, it->second);
        if (auto it = s.offsets[2].find(tp); it != s.offsets[2].end()) {
            p.cleaner_offset = any_cleaner ? std::min(p.cleaner_offset, it->second) : it->second;
            any_cleaner = true;
        }
    }
    // Listed twice: a start after a change of shard count was cut short; the
    // newer file has no marker, and which entry is newer is unknown.
    if (p.listed_in != 1) p.clean = false;
    return p;
}

}  // namespace

result<void, errc> log_manager::load_identity() {
    const std::string& dir = cfg_.dir;
    const std::string meta = dir + "/meta.properties";
    node_id_ = cfg_.node_id;
    cluster_id_ = cfg_.cluster_id;
    auto text = read_small_file(fs_, meta);
    if (!text) {
        if (text.error() != errc::not_found) return fail(text.error());
        // Only shard 0 writes the shared file (the others may open concurrently).
        if (cfg_.shard != 0) return {};
        std::random_device rd;
        uuid dir_id;
        for (auto& b : dir_id) b = static_cast<uint8_t>(rd());
        std::map<std::string, std::string> props{{"version", "1"},
                                                 {"node.id", fmt::format("{}", cfg_.node_id)},
                                                 {"directory.id", uuid_to_base64url(dir_id)}};
        if (!cfg_.cluster_id.empty()) props["cluster.id"] = cfg_.cluster_id;
        return write_file_atomically(fs_, dir, "meta.properties", format_properties(props));
    }
    auto props = parse_properties(*text);
    if (!props) return fail(props.error());
    // Kafka's v1 has node.id, v0 (ZooKeeper mode) broker.id.
    auto id = props->find("node.id");
    if (id == props->end()) id = props->find("broker.id");
    if (id != props->end()) {
        int32_t stored = 0;
        const auto& v = id->second;
        auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), stored);
        if (ec != std::errc{} || ptr != v.data() + v.size()) return fail(errc::bad_checkpoint);
        if (stored != cfg_.node_id) return fail(errc::identity_mismatch);  // another node's log dir
        node_id_ = stored;
    }
    if (auto c = props->find("cluster.id"); c != props->end() && !c->second.empty()) {
        if (!cfg_.cluster_id.empty() && cfg_.cluster_id != c->second) return fail(errc::identity_mismatch);
        cluster_id_ = c->second;
    }
    return {};
}

result<std::unique_ptr<log_manager>, errc> log_manager::open(file_system& fs, log_manager_config cfg, int64_t now_ms) {
    FJORD_ASSERT(cfg.shard_count >= 1 && cfg.shard < cfg.shard_count, "shard {} of {}", cfg.shard, cfg.shard_count);
    std::unique_ptr<log_manager> m(new log_manager(fs, std::move(cfg)));
    const std::string& dir = m->cfg_.dir;
    const uint32_t shard = m->cfg_.shard, shard_count = m->cfg_.shard_count;
    if (auto r = fs.make_dir(dir); !r) return fail(r.error());
    if (auto r = m->load_identity(); !r) return fail(r.error());

    // Every shard's checkpoints and markers.
    auto listed = list_shard_files(fs, dir);
    if (!listed) return fail(listed.error());
    auto& shards = *listed;
    for (auto& [k, s] : shards) {
        for (size_t i = 0; i < checkpoint_bases.size(); ++i) {
            if (!s.present[i]) continue;
            auto o = read_offsets(fs, dir + "/" + shard_file_name(checkpoint_bases[i], k));
            if (!o) return fail(o.error());
            s.offsets[i] = std::move(o).value();
        }
    }
    const bool own_marker = shards.count(shard) && shards[shard].marker;

    if (shard == 0 && !shards.empty()) {
        // Shard 0 opens alone, first. If the layout changed (more or fewer
        // shards, or partitions listed by a shard that no longer owns them),
        // the live shards would overwrite entries (and remove markers) that
        // other shards still have to read: move the previous run's files out
        // of the live range first. They are stale from then on.
        bool changed = shards.rbegin()->first >= shard_count;
        for (uint32_t k = 0; k < shard_count && !changed; ++k) changed = !shards.count(k) || !shards[k].present[0];
        for (const auto& [k, s] : shards) {
            for (size_t i = 0; i < checkpoint_bases.size() && !changed; ++i) {
                for (const auto& [tp, o] : s.offsets[i]) {
                    if ((k == 0) != m->owns(tp)) {
                        changed = true;
                        break;
                    }
                }
            }
        }
        if (changed) {
            uint32_t next_free = std::max(shard_count, shards.rbegin()->first + 1);
            std::map<uint32_t, shard_files> moved;
            for (auto& [k, s] : shards) {
                if (k >= shard_count) {
                    moved[k] = std::move(s);
                    continue;
                }
                const uint32_t to = next_free++;
                // Checkpoints first, the marker last: a crash in between leaves
                // the renamed checkpoints without their marker (recovered).
                for (size_t i = 0; i < checkpoint_bases.size(); ++i) {
                    if (!s.present[i]) continue;
                    if (auto r = fs.rename(dir + "/" + shard_file_name(checkpoint_bases[i], k),
                                           dir + "/" + shard_file_name(checkpoint_bases[i], to));
                        !r)
                        return fail(r.error());
                }
                if (s.marker) {
                    if (auto r = fs.rename(dir + "/" + shard_file_name(clean_shutdown_file, k),
                                           dir + "/" + shard_file_name(clean_shutdown_file, to));
                        !r)
                        return fail(r.error());
                }
                moved[to] = std::move(s);
            }
            shards = std::move(moved);
            if (auto r = fs.sync_dir(dir); !r) return fail(r.error());
        }
    }

    // This shard's marker goes before anything is written.
    if (shards.count(shard) && shards[shard].marker) {
        if (auto r = fs.remove(dir + "/" + shard_file_name(clean_shutdown_file, shard)); !r) return fail(r.error());
        if (auto r = fs.sync_dir(dir); !r) return fail(r.error());
    }

    auto names = fs.list_dir(dir);
    if (!names) return fail(names.error());
    std::sort(names->begin(), names->end());
    int unclean = 0, opened = 0;
    for (const auto& name : *names) {
        topic_partition tp;
        if (!topic_partition::from_dir_name(name, tp) || !m->owns(tp) || !fs.is_dir(dir + "/" + name)) continue;
        const partition_start ps = merge_entries(shards, tp);
        log::open_options o;
        o.clean_shutdown = ps.clean;
        o.now_ms = now_ms;
        o.recovery_point = ps.recovery_point;
        o.log_start_offset = ps.log_start;
        o.cleaner_offset = ps.cleaner_offset;
        ++opened;
        if (!ps.clean) ++unclean;
        std::string detail;
        recovery_report report;
        auto l = log::open(*m->files_, dir + "/" + name, tp, m->cfg_.defaults, o, detail, &report);
        if (!l) {
            m->offline_[tp] = fmt::format("{}: {}", describe(l.error()), detail);
            m->offline_offsets_[tp] = {o.recovery_point, o.log_start_offset, o.cleaner_offset};
            ++unclean;
            continue;
        }
        (*l)->set_listener(m.get());
        if (report.scanned) {
            m->reports_[tp] = std::move(report);
            if (ps.clean) ++unclean;  // the marker, but the last segment's tail was invalid
        }
        m->logs_[tp] = std::move(l).value();
    }
    m->opened_clean_ = unclean == 0 && (opened > 0 || own_marker);
    if (auto r = m->checkpoint(); !r) return fail(r.error());
    // The only shard: every shard has now written its checkpoint.
    if (shard_count == 1) {
        if (auto r = remove_stale_shard_files(fs, dir, 1); !r) return fail(r.error());
    }
    return m;
}

result<void, errc> log_manager::remove_stale_shard_files(file_system& fs, const std::string& dir,
                                                         uint32_t shard_count) {
    auto names = fs.list_dir(dir);
    if (!names) return fail(names.error());
    bool removed = false;
    for (const auto& name : *names) {
        uint32_t k = 0;
        bool stale = false;
        for (const char* base : checkpoint_bases)
            stale = stale || (parse_shard_file_name(name, base, k) && k >= shard_count);
        stale = stale || (parse_shard_file_name(name, clean_shutdown_file, k) && k >= shard_count);
        if (!stale) continue;
        if (auto r = fs.remove(dir + "/" + name); !r && r.error() != errc::not_found) return r;
        removed = true;
    }
    if (removed) return fs.sync_dir(dir);
    return {};
}

result<log*, errc> log_manager::create_log(const topic_partition& tp, const log_config& cfg, const uuid* topic_id) {
    FJORD_ASSERT(owns(tp), "shard {} creating {} it does not own", cfg_.shard, tp.dir_name());
    if (logs_.count(tp) || offline_.count(tp)) return fail(errc::already_exists);
    auto l = log::create(*files_, cfg_.dir + "/" + tp.dir_name(), tp, cfg, topic_id);
    if (!l) return fail(l.error());
    (*l)->set_listener(this);
    log* p = l->get();
    logs_[tp] = std::move(l).value();
    return p;
}

std::unique_ptr<log> log_manager::release_log(const topic_partition& tp) {
    std::unique_ptr<log> out;
    if (auto it = logs_.find(tp); it != logs_.end()) {
        out = std::move(it->second);
        out->set_listener(nullptr);
        logs_.erase(it);
    }
    offline_.erase(tp);
    offline_offsets_.erase(tp);
    return out;
}

log* log_manager::get(const topic_partition& tp) {
    auto it = logs_.find(tp);
    return it == logs_.end() || it->second->offline() ? nullptr : it->second.get();
}

checkpoint_files log_manager::prepare_checkpoint() const {
    std::vector<offset_entry> recovery, starts, cleaner;
    recovery.reserve(logs_.size() + offline_offsets_.size());
    starts.reserve(logs_.size() + offline_offsets_.size());
    // An offline log's durable offset is still what was last made durable.
    for (const auto& [tp, l] : logs_) {
        recovery.push_back({tp, l->durable_offset()});
        starts.push_back({tp, l->start_offset()});
        if (l->config().compact || l->first_dirty_offset() > l->start_offset())
            cleaner.push_back({tp, l->first_dirty_offset()});
    }
    for (const auto& [tp, o] : offline_offsets_) {
        recovery.push_back({tp, o.recovery_point});
        starts.push_back({tp, o.log_start});
        if (o.cleaner_offset >= 0) cleaner.push_back({tp, o.cleaner_offset});
    }
    checkpoint_files out;
    out.files.push_back(
        {shard_file_name(recovery_point_checkpoint_file, cfg_.shard), format_offset_checkpoint(recovery)});
    out.files.push_back({shard_file_name(log_start_checkpoint_file, cfg_.shard), format_offset_checkpoint(starts)});
    out.files.push_back({shard_file_name(cleaner_checkpoint_file, cfg_.shard), format_offset_checkpoint(cleaner)});
    return out;
}

result<void, errc> log_manager::write_checkpoint(file_system& fs, const std::string& dir,
                                                 const checkpoint_files& files) {
    // Kafka's atomic replace per file, with one directory fsync for all.
    for (const auto& f : files.files) {
        const std::string tmp = dir + "/" + f.name + ".tmp";
        auto h = fs.open(tmp, open_mode::create);
        if (!h) return fail(h.error());
        if (auto r = (*h)->truncate(0); !r) return r;
        auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(f.text.data()), f.text.size());
        if (auto r = (*h)->write_at(0, bytes); !r) return r;
        if (auto r = (*h)->sync(); !r) return r;
    }
    for (const auto& f : files.files) {
        if (auto r = fs.rename(dir + "/" + f.name + ".tmp", dir + "/" + f.name); !r) return r;
    }
    return fs.sync_dir(dir);
}

result<void, errc> log_manager::checkpoint() {
    return write_checkpoint(fs_, cfg_.dir, prepare_checkpoint());
}

result<void, errc> log_manager::shutdown() {
    bool all_ok = offline_.empty();
    for (auto& [tp, l] : logs_) {
        if (l->offline() || !l->flush_all()) all_ok = false;
    }
    if (auto r = checkpoint(); !r) return r;
    // Only a shard whose every log is consistent and synced is clean.
    if (!all_ok) return {};
    auto f = fs_.open(cfg_.dir + "/" + shard_file_name(clean_shutdown_file, cfg_.shard), open_mode::create);
    if (!f) return fail(f.error());
    constexpr std::string_view body = "{\"version\":0,\"brokerEpoch\":-1}";
    if (auto r = (*f)->truncate(0); !r) return r;
    if (auto r = (*f)->write_at(0, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())); !r) return r;
    if (auto r = (*f)->sync(); !r) return r;
    return fs_.sync_dir(cfg_.dir);
}

}  // namespace fjord::storage
