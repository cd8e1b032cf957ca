// log_manager: the logs of one log directory (one per shard, or one per
// log.dirs entry). Owns the per-directory files:
//   meta.properties                   node and cluster identity
//   recovery-point-offset-checkpoint  per partition: where recovery starts
//   log-start-offset-checkpoint       per partition: DeleteRecords across restarts
//   .kafka_cleanshutdown              present only after a clean shutdown
// and the shared file_cache (the LRU of open segment files).
//
// open() loads every partition directory: after a clean shutdown without any
// scan, otherwise recovering each from its recovery point. A partition that
// fails to open (a corrupt segment below its recovery point, say) is listed in
// offline() with the precise error; the others work.
//
// Threading: one shard. Lifecycle: open() ... shutdown(); after shutdown() the
// manager may only be destroyed.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "storage/log.h"

namespace fjord::storage {

struct log_manager_config {
    std::string dir;
    size_t max_open_files = 1024;
    int32_t node_id = 1;
    std::string cluster_id;
    log_config defaults;
};

class log_manager final : public log_listener {
public:
    static result<std::unique_ptr<log_manager>, errc> open(file_system& fs, log_manager_config cfg, int64_t now_ms);
    ~log_manager() override;

    result<log*, errc> create_log(const topic_partition& tp, const log_config& cfg, const uuid* topic_id);
    // Null if absent or offline.
    log* get(const topic_partition& tp);
    // Partitions that could not be opened, with why.
    const std::map<topic_partition, std::string>& offline() const { return offline_; }
    const std::map<topic_partition, std::unique_ptr<log>>& logs() const { return logs_; }
    bool opened_clean() const { return opened_clean_; }
    const std::map<topic_partition, recovery_report>& recovery_reports() const { return reports_; }

    // Writes recovery-point-offset-checkpoint (durable offsets) and
    // log-start-offset-checkpoint, atomically.
    result<void, errc> checkpoint();
    // Syncs every log, checkpoints, writes the clean shutdown marker.
    result<void, errc> shutdown();

    file_cache& files() { return *files_; }
    const std::string& dir() const { return cfg_.dir; }

    // log_listener
    result<void, errc> checkpoint_offsets() override { return checkpoint(); }

private:
    log_manager(file_system& fs, log_manager_config cfg);

    file_system& fs_;
    log_manager_config cfg_;
    std::unique_ptr<file_cache> files_;
    std::map<topic_partition, std::unique_ptr<log>> logs_;
    std::map<topic_partition, std::string> offline_;
    // Checkpointed {recovery point, log start} of partitions that failed to
    // open: kept as they were, so a later restart judges them the same way.
    std::map<topic_partition, std::pair<int64_t, int64_t>> offline_offsets_;
    std::map<topic_partition, recovery_report> reports_;
    bool opened_clean_ = false;
};

inline constexpr const char* clean_shutdown_file = ".kafka_cleanshutdown";

}  // namespace fjord::storage
