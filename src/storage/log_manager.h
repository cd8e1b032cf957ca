// log_manager: the logs of one log directory that one shard owns. Owns the
// per-directory files (Kafka's names for shard 0; shard k > 0 adds ".<k>"):
//   meta.properties                   node and cluster identity (shared; shard 0 creates it)
//   recovery-point-offset-checkpoint  per partition: where recovery starts
//   log-start-offset-checkpoint       per partition: DeleteRecords across restarts
//   cleaner-offset-checkpoint         per compacted partition: the first dirty offset
//   .kafka_cleanshutdown              present only after a clean shutdown of that shard
// and the file_cache (the LRU of open segment files) of its partitions.
//
// Shard-per-core: each shard opens its own log_manager over the same
// directory with `owns` selecting its partitions; directories of other
// shards' partitions are never opened or touched. A shard writes only its own
// checkpoint files and marker, listing only its partitions. At open it reads
// every shard's files (any suffix): a partition takes its entry from the file
// that lists it, and is opened clean (no recovery scan) only if that file's
// marker is present; listed in several files (a crash while starting after a
// change of shard count), it takes the lowest recovery point and cleaner
// offset, the highest log start, and is recovered.
//
// Start-up protocol (the app): open shard 0's manager first (it alone creates
// meta.properties and, if the shard count or ownership changed since the last
// run, renames the previous run's checkpoint files and markers to suffixes >=
// shard_count so that no shard overwrites an entry another shard still has to
// read); then the other shards, in any order or concurrently; then, once every
// shard has opened (open writes the first checkpoint), remove_stale_shard_files().
// With shard_count == 1, open() does that last step itself.
//
// open() loads every owned partition directory: after a clean shutdown without
// any scan, otherwise recovering each from its recovery point. A partition that
// fails to open (a corrupt segment below its recovery point, say) is listed in
// offline() with the precise error; the others work.
//
// Checkpoints: prepare_checkpoint() (on the shard, cheap: names and text) and
// write_checkpoint() (blocking: temp files, fsync, rename, directory fsync; run
// it on an I/O thread). checkpoint() does both inline (tests, tools, shutdown,
// and the log_listener path: truncations and compaction need it durable
// before they go on).
//
// Threading: one shard; write_checkpoint() is static and touches only the
// files named in its argument. Lifecycle: open() ... shutdown(); after
// shutdown() the manager may only be destroyed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/log.h"

namespace fjord::storage {

struct log_manager_config {
    std::string dir;
    size_t max_open_files = 1024;
    // Written to a new meta.properties; one that exists must agree (Kafka
    // refuses a log dir of another node or cluster: open fails with
    // errc::identity_mismatch). An empty cluster_id takes the stored one.
    int32_t node_id = 1;
    std::string cluster_id;
    log_config defaults;
    // This manager's shard, of shard_count sharing `dir`; owns() selects its
    // partitions (null: all of them).
    uint32_t shard = 0;
    uint32_t shard_count = 1;
    std::function<bool(const topic_partition&)> owns;
};

// The text of one shard's checkpoint files, taken on the shard; written
// anywhere by log_manager::write_checkpoint.
struct checkpoint_files {
    struct file {
        std::string name;  // in the log dir, e.g. "recovery-point-offset-checkpoint.3"
        std::string text;
    };
    std::vector<file> files;
};

// Kafka's names of the per-directory files; shard k > 0 appends ".<k>".
inline constexpr const char* recovery_point_checkpoint_file = "recovery-point-offset-checkpoint";
inline constexpr const char* log_start_checkpoint_file = "log-start-offset-checkpoint";
inline constexpr const char* cleaner_checkpoint_file = "cleaner-offset-checkpoint";
inline constexpr const char* clean_shutdown_file = ".kafka_cleanshutdown";

// "<base>" for shard 0, "<base>.<shard>" otherwise.
std::string shard_file_name(std::string_view base, uint32_t shard);
// The shard of a per-shard file name of `base`; false for any other name.
bool parse_shard_file_name(std::string_view name, std::string_view base, uint32_t& shard);

class log_manager final : public log_listener {
public:
    static result<std::unique_ptr<log_manager>, errc> open(file_system& fs, log_manager_config cfg, int64_t now_ms);
    ~log_manager() override;

    // Deletes the per-shard checkpoint files and markers with a suffix >=
    // shard_count (a previous run's, with more shards or renamed by shard 0
    // at open). Call once every shard has opened.
    static result<void, errc> remove_stale_shard_files(file_system& fs, const std::string& dir, uint32_t shard_count);

    result<log*, errc> create_log(const topic_partition& tp, const log_config& cfg, const uuid* topic_id);
    // Null if absent or offline.
    log* get(const topic_partition& tp);
    // Forgets a partition (its topic was deleted) and hands its log over
    // (null if it was offline or absent): the caller destroys it once
    // nothing uses it, and removes its directory (off the shard).
    std::unique_ptr<log> release_log(const topic_partition& tp);
    // Partitions that could not be opened, with why.
    const std::map<topic_partition, std::string>& offline() const { return offline_; }
    const std::map<topic_partition, std::unique_ptr<log>>& logs() const { return logs_; }
    // Every partition was opened without a recovery scan (and, if there were
    // none, this shard's marker was present).
    bool opened_clean() const { return opened_clean_; }
    // The partitions that were scanned at open.
    const std::map<topic_partition, recovery_report>& recovery_reports() const { return reports_; }

    // Identity from meta.properties (or the config, when shard 0 created it).
    const std::string& cluster_id() const { return cluster_id_; }
    int32_t node_id() const { return node_id_; }

    // This shard's checkpoint files: recovery points (durable offsets), log
    // start offsets, cleaner offsets (compacted logs).
    checkpoint_files prepare_checkpoint() const;
    // Writes them atomically (each: temp file, fsync, rename; then one
    // directory fsync). Blocking: any thread.
    static result<void, errc> write_checkpoint(file_system& fs, const std::string& dir, const checkpoint_files& files);
    // Both, inline.
    result<void, errc> checkpoint();
    // Syncs every log, checkpoints, writes this shard's clean shutdown marker.
    result<void, errc> shutdown();

    file_cache& files() { return *files_; }
    const std::string& dir() const { return cfg_.dir; }
    uint32_t shard() const { return cfg_.shard; }
    const log_manager_config& config() const { return cfg_; }

    // log_listener
    result<void, errc> checkpoint_offsets() override { return checkpoint(); }

private:
    log_manager(file_system& fs, log_manager_config cfg);
    result<void, errc> load_identity();
    bool owns(const topic_partition& tp) const { return !cfg_.owns || cfg_.owns(tp); }

    file_system& fs_;
    log_manager_config cfg_;
    std::unique_ptr<file_cache> files_;
    std::map<topic_partition, std::unique_ptr<log>> logs_;
    std::map<topic_partition, std::string> offline_;
    // Checkpointed offsets of partitions that failed to open: kept as they
    // were, so a later restart judges them the same way.
    struct kept_offsets {
        int64_t recovery_point = 0;
        int64_t log_start = 0;
        int64_t cleaner_offset = -1;  // -1: none
    };
    std::map<topic_partition, kept_offsets> offline_offsets_;
    std::map<topic_partition, recovery_report> reports_;
    bool opened_clean_ = false;
    std::string cluster_id_;
    int32_t node_id_ = -1;
};

}  // namespace fjord::storage
