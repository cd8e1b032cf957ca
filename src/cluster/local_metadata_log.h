// local_metadata_log: the metadata log of a single node without Raft (the
// controller's unit tests; the broker runs raft_metadata_log), kept in a storage
// partition log `<dir>/__cluster_metadata-0` (Kafka's KRaft name), one record
// batch per append, each record's value one encoded metadata_record
// (metadata_records.h).
//
// Durability: storage::durability in group-commit mode, so the fsyncs run on
// the io_engine and never on the calling thread; an append completes once
// its batch is durable. Crash recovery is storage::log's (a torn tail past
// the recovery point is cut at open; corruption below it takes the log
// offline with the precise error). The directory is a storage::log_manager
// directory (meta.properties, recovery point checkpoints, clean shutdown
// marker) that must hold nothing but the metadata log: do not share it with
// a data log directory.
//
// Threading: one thread (shard 0), see metadata_log.h. Lifecycle: open(),
// replay(), append()... wait for idle(), close() (clean shutdown: syncs,
// checkpoints, writes the clean shutdown marker) or just destroy it (what a
// crash leaves behind). Destroying it while not idle is a bug.
#pragma once

#include <memory>
#include <string>

#include "cluster/metadata_log.h"
#include "storage/durability.h"
#include "storage/io_engine.h"
#include "storage/log_manager.h"

namespace fjord::cluster {

struct local_metadata_log_options {
    std::string dir;  // the metadata directory, created if missing
    int32_t node_id = 1;
    // Null: the real (POSIX) file system.
    storage::file_system* fs = nullptr;
    uint64_t segment_bytes = uint64_t{1} << 30;  // Kafka's metadata.log.segment.bytes default
};

class local_metadata_log final : public metadata_log {
public:
    // Opens (or creates) the metadata log, recovering it if the last stop was
    // not clean. On failure `detail` says which file, where and why; a log
    // that fails validation gives errc::metadata_offline.
    static result<std::unique_ptr<local_metadata_log>, errc> open(const local_metadata_log_options& opts,
                                                                  storage::io_engine& engine, post_fn post,
                                                                  std::string& detail);
    ~local_metadata_log() override;

    void append(std::vector<metadata_record> records, append_done done) override;
    void set_apply(apply_fn fn) override { apply_ = std::move(fn); }
    void set_state_listener(std::function<void()>) override {}  // never changes
    bool writable() const override { return !offline_; }
    std::optional<int32_t> leader() const override { return node_id_; }
    result<void, errc> replay(const replay_fn& fn) override;
    int64_t end_offset() const override { return log_->end_offset(); }
    bool idle() const override { return in_flight_ == 0 && (!durability_ || durability_->idle()); }
    bool offline() const override { return offline_; }
    const std::string& offline_detail() const override { return offline_detail_; }

    // Clean shutdown (only when idle): fsyncs everything on the calling
    // thread, checkpoints, and writes the clean shutdown marker.
    result<void, errc> close();

    const storage::log& storage_log() const { return *log_; }

private:
    local_metadata_log(post_fn post) : post_(std::move(post)) {}
    result<std::pair<int64_t, int64_t>, errc> write_batch(const std::vector<metadata_record>& records);
    errc go_offline(std::string detail);

    post_fn post_;
    apply_fn apply_;
    int32_t node_id_ = 1;
    std::unique_ptr<storage::log_manager> manager_;
    storage::log* log_ = nullptr;  // owned by manager_
    std::unique_ptr<storage::durability> durability_;
    size_t in_flight_ = 0;
    bool offline_ = false;
    bool closed_ = false;
    std::string offline_detail_;
};

}  // namespace fjord::cluster
