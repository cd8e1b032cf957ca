#include "storage/log_manager.h"

#include <random>

#include <fmt/format.h>

namespace fjord::storage {

log_manager::log_manager(file_system& fs, log_manager_config cfg)
    : fs_(fs), cfg_(std::move(cfg)), files_(std::make_unique<file_cache>(fs, cfg_.max_open_files)) {}

log_manager::~log_manager() {
    logs_.clear();  // before the file cache
}

namespace {
result<std::map<topic_partition, int64_t>, errc> read_offsets(file_system& fs, const std::string& path) {
    std::map<topic_partition, int64_t> out;
    auto text = read_small_file(fs, path);
    if (!text) {
        if (text.error() == errc::not_found) return out;
        return fail(text.error());
    }
    auto entries = parse_offset_checkpoint(*text);
    if (!entries) return fail(entries.error());
    for (auto& e : *entries) out[e.tp] = e.offset;
    return out;
}
}  // namespace

result<std::unique_ptr<log_manager>, errc> log_manager::open(file_system& fs, log_manager_config cfg, int64_t now_ms) {
    std::unique_ptr<log_manager> m(new log_manager(fs, std::move(cfg)));
    const std::string& dir = m->cfg_.dir;
    if (auto r = fs.make_dir(dir); !r) return fail(r.error());

    // Identity.
    const std::string meta = dir + "/meta.properties";
    if (auto size = fs.file_size(meta); !size) {
        std::random_device rd;
        uuid dir_id;
        for (auto& b : dir_id) b = static_cast<uint8_t>(rd());
        std::map<std::string, std::string> props{{"version", "1"},
                                                 {"node.id", fmt::format("{}", m->cfg_.node_id)},
                                                 {"directory.id", uuid_to_base64url(dir_id)}};
        if (!m->cfg_.cluster_id.empty()) props["cluster.id"] = m->cfg_.cluster_id;
        if (auto r = write_file_atomically(fs, dir, "meta.properties", format_properties(props)); !r)
            return fail(r.error());
    } else {
        auto text = read_small_file(fs, meta);
        if (!text) return fail(text.error());
        if (auto props = parse_properties(*text); !props) return fail(props.error());
    }

    // The clean shutdown marker goes before anything is written.
    const std::string marker = dir + "/" + clean_shutdown_file;
    m->opened_clean_ = fs.file_size(marker).ok();
    if (m->opened_clean_) {
        if (auto r = fs.remove(marker); !r) return fail(r.error());
        if (auto r = fs.sync_dir(dir); !r) return fail(r.error());
    }

    auto recovery_points = read_offsets(fs, dir + "/recovery-point-offset-checkpoint");
    if (!recovery_points) return fail(recovery_points.error());
    auto log_starts = read_offsets(fs, dir + "/log-start-offset-checkpoint");
    if (!log_starts) return fail(log_starts.error());

    auto names = fs.list_dir(dir);
    if (!names) return fail(names.error());
    for (const auto& name : *names) {
        topic_partition tp;
        if (!topic_partition::from_dir_name(name, tp) || !fs.is_dir(dir + "/" + name)) continue;
        log::open_options o;
        o.clean_shutdown = m->opened_clean_;
        o.now_ms = now_ms;
        if (auto it = recovery_points->find(tp); it != recovery_points->end()) o.recovery_point = it->second;
        if (auto it = log_starts->find(tp); it != log_starts->end()) o.log_start_offset = it->second;
        std::string detail;
        recovery_report report;
        auto l = log::open(*m->files_, dir + "/" + name, tp, m->cfg_.defaults, o, detail, &report);
        if (!l) {
            m->offline_[tp] = fmt::format("{}: {}", describe(l.error()), detail);
            m->offline_offsets_[tp] = {o.recovery_point, o.log_start_offset};
            continue;
        }
        (*l)->set_listener(m.get());
        if (report.scanned) m->reports_[tp] = std::move(report);
        m->logs_[tp] = std::move(l).value();
    }
    if (auto r = m->checkpoint(); !r) return fail(r.error());
    return m;
}

result<log*, errc> log_manager::create_log(const topic_partition& tp, const log_config& cfg, const uuid* topic_id) {
    if (logs_.count(tp) || offline_.count(tp)) return fail(errc::already_exists);
    auto l = log::create(*files_, cfg_.dir + "/" + tp.dir_name(), tp, cfg, topic_id);
    if (!l) return fail(l.error());
    (*l)->set_listener(this);
    log* p = l->get();
    logs_[tp] = std::move(l).value();
    return p;
}

log* log_manager::get(const topic_partition& tp) {
    auto it = logs_.find(tp);
    return it == logs_.end() || it->second->offline() ? nullptr : it->second.get();
}

result<void, errc> log_manager::checkpoint() {
    std::vector<offset_entry> recovery, starts;
    recovery.reserve(logs_.size());
    starts.reserve(logs_.size());
    // An offline log's durable offset is still what was last made durable.
    for (const auto& [tp, l] : logs_) {
        recovery.push_back({tp, l->durable_offset()});
        starts.push_back({tp, l->start_offset()});
    }
    for (const auto& [tp, o] : offline_offsets_) {
        recovery.push_back({tp, o.first});
        starts.push_back({tp, o.second});
    }
    if (auto r = write_file_atomically(fs_, cfg_.dir, "recovery-point-offset-checkpoint",
                                       format_offset_checkpoint(recovery));
        !r)
        return r;
    return write_file_atomically(fs_, cfg_.dir, "log-start-offset-checkpoint", format_offset_checkpoint(starts));
}

result<void, errc> log_manager::shutdown() {
    bool all_ok = offline_.empty();
    for (auto& [tp, l] : logs_) {
        if (l->offline() || !l->flush_all()) all_ok = false;
    }
    if (auto r = checkpoint(); !r) return r;
    // Only a directory whose every log is consistent and synced is clean.
    if (!all_ok) return {};
    auto f = fs_.open(cfg_.dir + "/" + clean_shutdown_file, open_mode::create);
    if (!f) return fail(f.error());
    constexpr std::string_view body = "{\"version\":0,\"brokerEpoch\":-1}";
    if (auto r = (*f)->write_at(0, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())); !r) return r;
    if (auto r = (*f)->sync(); !r) return r;
    return fs_.sync_dir(cfg_.dir);
}

}  // namespace fjord::storage
