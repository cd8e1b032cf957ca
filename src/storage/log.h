// log: one partition's segmented log in Kafka's on-disk layout (README.md).
//
// What it does: append (assigning offsets and rewriting the broker-owned
// fields), read whole batches from an offset, ListOffsets by timestamp,
// suffix truncation (replication), prefix truncation (DeleteRecords,
// retention), the leader epoch history, crash recovery at open.
//
// Durability is driven from outside. append() only writes to the page cache.
// pending_sync() describes what is written but not synced (a file per dirty
// segment, and whether the directory needs an fsync); whoever runs those
// fsyncs (the I/O engine, or sync() inline) reports back with on_synced(),
// which advances durable_offset(). One sync_work covers every append made
// before it was taken: that is group commit.
//
// Errors: expected failures are errc values. A write error (ENOSPC, EIO)
// fails that append and leaves the log as it was. A failed fsync or bytes
// that fail validation where they must be valid take the log offline
// (offline_detail() says where and why); the process must reopen it, which
// runs recovery.
//
// Threading: a log belongs to one shard and is not thread-safe. The files in a
// sync_work may be synced on another thread while the shard keeps appending;
// on_synced() must run back on the shard.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "storage/checkpoint.h"
#include "storage/compaction.h"
#include "storage/epoch_history.h"
#include "storage/file_cache.h"
#include "storage/producer_state.h"
#include "storage/segment.h"

namespace fjord::storage {

// Topic configs the log obeys, with Kafka's names and defaults.
struct log_config {
    uint64_t segment_bytes = uint64_t{1} << 30;            // segment.bytes
    int64_t segment_ms = int64_t{7} * 24 * 3600 * 1000;    // segment.ms
    uint64_t segment_index_bytes = uint64_t{10} << 20;     // segment.index.bytes
    uint32_t index_interval_bytes = 4096;                  // index.interval.bytes
    bool log_append_time = false;                          // message.timestamp.type=LogAppendTime
    int64_t retention_ms = int64_t{7} * 24 * 3600 * 1000;  // retention.ms, -1: forever
    int64_t retention_bytes = -1;                          // retention.bytes, -1: unbounded
    // cleanup.policy: "delete" (delete_), "compact" (compact), or both.
    bool compact = false;
    bool delete_ = true;                                      // retention.ms/bytes apply
    int64_t delete_retention_ms = int64_t{24} * 3600 * 1000;  // delete.retention.ms
    double min_cleanable_dirty_ratio = 0.5;                   // min.cleanable.dirty.ratio
    int64_t min_compaction_lag_ms = 0;                        // min.compaction.lag.ms
};

// Test-only: break durability on purpose (the power-loss test's negative
// control must catch it). Never set outside tests.
struct durability_test_faults {
    bool skip_fsync = false;     // sync() reports files synced without fsyncing them
    bool skip_dir_sync = false;  // sync() skips the directory fsync after creating a segment
};

struct append_options {
    int64_t now_ms = 0;
    // The leader's epoch, written into every batch when assigning offsets.
    int32_t leader_epoch = -1;
    // Leader: assign offsets from the log end. Follower (Raft): keep the
    // batches' offsets and epochs; they must not go backwards.
    bool assign_offsets = true;
};

// The most one read() returns beyond its first batch (Kafka's fetch.max.bytes
// default is 55 MiB).
inline constexpr size_t max_read_bytes = size_t{64} << 20;

struct append_result {
    int64_t first_offset = 0;
    int64_t last_offset = 0;
    int64_t append_time_ms = -1;  // LogAppendTime, or -1 (CreateTime)
};

struct read_result {
    std::vector<shared_bytes> chunks;  // whole batches; one slice per segment touched
    size_t bytes = 0;
    int64_t next_offset = 0;  // first offset after what was returned
};

// Where the bytes of one read are: a range of one segment (Kafka serves a
// fetch from one segment). The pread can run anywhere (read_async() in
// durability.h runs it on the io_engine, so a read that misses the page cache
// never blocks the shard); finish_read() then validates the bytes on the
// shard. The plan holds the file open even if retention deletes it meanwhile.
struct read_plan {
    std::shared_ptr<file> f;
    uint64_t position = 0;
    size_t length = 0;        // 0: nothing to read
    int64_t expect = 0;       // base offset of the first batch in the range
    int64_t next_offset = 0;  // the offset asked for
    int64_t max_offset = 0;
    int64_t segment_base = 0;
    uint64_t generation = 0;  // truncations since make the plan stale
    // plan_read_async: the bytes, when planning already read them (no pread).
    shared_bytes prefetched;
};

// One asynchronous read's planning state (read_async, async_read.h). A plan
// made through it never reads a file on the calling thread: when planning
// needs bytes (a segment's index files the first time, validated exactly as
// a synchronous load; the batch headers from an index entry to the batch
// asked for) log::plan_read_async returns nullopt with fetch() set; the
// caller reads those bytes anywhere (the io_engine), hands them back with
// supply() on the shard, and plans again. Every round makes progress (an
// index load and a header walk resume where they stopped; only the latest
// few reads are kept), so a plan takes a bounded number of rounds.
// Single-threaded: the log's shard.
class plan_fetches {
public:
    struct request {
        std::shared_ptr<file> f;
        uint64_t position = 0;
        size_t length = 0;
    };
    plan_fetches();
    ~plan_fetches();
    plan_fetches(const plan_fetches&) = delete;
    plan_fetches& operator=(const plan_fetches&) = delete;

    // What to read next (after plan_read_async returned nullopt).
    const request& fetch() const { return fetch_; }
    // The bytes of fetch(); fewer means the file is shorter than the log
    // says (the next plan fails with io_error, as a synchronous read does).
    void supply(std::vector<uint8_t> bytes);
    // Fetches supplied so far.
    int rounds() const { return rounds_; }
    // Tests: fetch no more than a read needs beyond `n` bytes (many small
    // rounds, to exercise resuming a load or walk).
    void limit_fetch_bytes(size_t n) { fetch_limit_ = n; }

private:
    friend class log;
    struct window {
        uint64_t serial = 0;  // the segment's
        uint8_t kind = 0;     // .log, .index, .timeindex
        uint64_t position = 0;
        std::vector<uint8_t> bytes;
    };
    struct index_load;  // log.cc
    struct walk {
        bool valid = false;
        uint64_t serial = 0;
        uint64_t generation = 0;
        int64_t offset = 0;
        int attempt = 0;
        bool rebuild_pending = false;
        bool resume = false;  // pos/from_entry hold where the walk stopped
        uint64_t pos = 0;
        bool from_entry = false;
    };
    // Walks completed in earlier rounds (a plan may pass segments that end
    // before the offset: their answers are kept, not walked again).
    struct found {
        uint64_t serial = 0;
        uint64_t generation = 0;
        int64_t offset = 0;
        uint64_t pos = 0;
        int64_t batch_base = 0;
        uint32_t batch_size = 0;
    };
    request fetch_;
    std::vector<found> found_;
    uint64_t fetch_serial_ = 0;
    uint8_t fetch_kind_ = 0;
    bool missed_ = false;
    bool short_read_ = false;
    int rounds_ = 0;
    size_t fetch_limit_ = SIZE_MAX;
    std::vector<window> windows_;  // the latest few fetches
    std::unique_ptr<index_load> load_;
    walk walk_;
};

struct timestamp_offset {
    int64_t offset = 0;
    int64_t timestamp = 0;
};

// The fsyncs that make everything appended so far durable. Take it with
// pending_sync(), run file->sync() on every item (any order, any thread), then
// if dir_sync, sync_dir(dir) of the partition directory, then report with
// on_synced() (or on_sync_failed()).
struct sync_work {
    struct item {
        std::shared_ptr<file> f;
        int64_t segment_base = 0;
        uint64_t bytes = 0;  // the segment's size when the work was taken
        // The segment's .txnindex rather than its .log, at this many changes.
        bool txn_index = false;
        uint32_t txn_changes = 0;
    };
    std::vector<item> files;
    bool dir_sync = false;
    std::string dir;
    int64_t durable_offset = 0;  // durable_offset() once all of this is done
    uint64_t generation = 0;
    uint64_t dir_generation = 0;
    bool empty() const { return files.empty() && !dir_sync; }
};

// Told when a checkpointed offset must be persisted before the operation can
// be considered done: after truncate_suffix (recovery point lowered) and
// prefix truncation (log start moved). The log manager writes its checkpoint
// files. May be null (tests that drive recovery points themselves).
class log_listener {
public:
    virtual ~log_listener() = default;
    virtual result<void, errc> checkpoint_offsets() = 0;
};

struct recovery_report {
    bool scanned = false;  // recovery ran (unclean shutdown)
    int segments_scanned = 0;
    int segments_deleted = 0;  // after a torn or corrupt point
    uint64_t bytes_truncated = 0;
    bool epoch_checkpoint_rewritten = false;
    std::string detail;  // what was cut, where and why
};

class log {
public:
    struct open_options {
        int64_t recovery_point = 0;    // from recovery-point-offset-checkpoint
        int64_t log_start_offset = 0;  // from log-start-offset-checkpoint
        bool clean_shutdown = false;   // skip the recovery scan
        int64_t now_ms = 0;
        int64_t cleaner_offset = -1;  // from cleaner-offset-checkpoint; -1: none
    };

    // Creates `dir` with partition.metadata (if topic_id) and an empty segment.
    static result<std::unique_ptr<log>, errc> create(file_cache& files, std::string dir, topic_partition tp,
                                                     log_config cfg, const uuid* topic_id, int64_t start_offset = 0);
    // Opens an existing partition directory, recovering it if needed. On
    // errc::corrupt_log, `detail` says which file, position and check failed.
    static result<std::unique_ptr<log>, errc> open(file_cache& files, std::string dir, topic_partition tp,
                                                   log_config cfg, const open_options& opts, std::string& detail,
                                                   recovery_report* report = nullptr);
    ~log();
    log(const log&) = delete;
    log& operator=(const log&) = delete;

    // Appends one or more concatenated batches (the caller's only copy: the
    // broker-owned fields are rewritten in place). Checks each batch's header
    // and CRC; the caller (the Produce handler) validates records.
    result<append_result, errc> append(std::span<uint8_t> batches, const append_options& opts);

    // Whole batches from the one holding `offset`, up to `max_bytes` (at least
    // one batch if any), only batches ending before `max_offset` (exclusive:
    // the high watermark). offset == end_offset() reads nothing.
    result<read_result, errc> read(int64_t offset, size_t max_bytes, int64_t max_offset);
    // The same in two steps around a pread that may run off the shard: where
    // the bytes are (one segment), then their validation. finish_read fails
    // with offset_out_of_range when a truncation made the plan stale.
    result<read_plan, errc> plan_read(int64_t offset, size_t max_bytes, int64_t max_offset);
    result<read_result, errc> finish_read(const read_plan& p, shared_bytes bytes);
    // plan_read without reading any file on the calling thread (read_async):
    // nullopt when it needs the bytes of st.fetch() first (plan_fetches).
    result<std::optional<read_plan>, errc> plan_read_async(int64_t offset, size_t max_bytes, int64_t max_offset,
                                                           plan_fetches& st);
    // ListOffsets: the first record with timestamp >= ts (nullopt if none).
    result<std::optional<timestamp_offset>, errc> offset_for_timestamp(int64_t ts);
    // ListOffsets -3 (KIP-734): the first record with the largest timestamp (nullopt if empty).
    result<std::optional<timestamp_offset>, errc> max_timestamp_offset();

    int64_t start_offset() const { return start_offset_; }
    int64_t end_offset() const { return next_offset_; }
    int64_t durable_offset() const { return durable_offset_; }

    // Removes the batch holding `offset` and all after it (Kafka's truncateTo).
    // Durable when it returns (fsync of the file and directory: leader changes
    // are rare, and a truncated suffix must never come back after a crash).
    result<void, errc> truncate_suffix(int64_t offset);
    // Moves the log start offset up (DeleteRecords) and deletes segments wholly
    // below it. Beyond the end, the log is emptied and restarts at new_start.
    result<void, errc> truncate_prefix(int64_t new_start);
    // DeleteRecords without blocking the shard, in three steps: this moves
    // the log start up in memory (readers see it at once; new_start must
    // not pass the end); the caller makes it durable (the log manager's
    // checkpoint, off the shard); then detach_segments_below_start() drops
    // the segments wholly below it and returns their files, for the caller
    // to remove off the shard (open readers keep their descriptors).
    result<void, errc> advance_start_offset(int64_t new_start);
    std::vector<std::string> detach_segments_below_start();
    // Retention: deletes whole old segments by retention.ms / retention.bytes
    // (never the active one). Returns how many were deleted.
    result<int, errc> apply_retention(int64_t now_ms);
    // The log start offset retention would leave (a segment base, or the
    // current start), moving it no further than `max_offset` (a replicated
    // partition's high watermark); nothing is deleted.
    result<int64_t, errc> retention_start(int64_t now_ms, int64_t max_offset = INT64_MAX);
    // Starts a new segment at the log end (if the active one is not empty).
    result<void, errc> roll(int64_t now_ms);

    // Leader epochs (persisted in leader-epoch-checkpoint).
    const epoch_history& epochs() const { return epochs_; }
    std::pair<int32_t, int64_t> end_offset_for_epoch(int32_t epoch) const {
        return epochs_.end_offset_for(epoch, next_offset_);
    }

    // Durability (see the file comment).
    bool needs_sync() const;
    sync_work pending_sync();
    void on_synced(const sync_work& w);
    void on_sync_failed(errc e);
    result<void, errc> sync();  // pending_sync, inline fsyncs, on_synced

    // Flushes index files and syncs everything, and writes a producer state
    // snapshot at the log end (durably); the log stays usable.
    result<void, errc> flush_all();

    // Compaction (cleanup.policy=compact; compaction.h). plan (shard) ->
    // compactor::run (any thread) -> install (shard). Only segments wholly
    // below min(durable_offset(), max_offset) are cleaned. `force` ignores
    // min.cleanable.dirty.ratio.
    std::optional<compaction_plan> plan_compaction(int64_t now_ms, int64_t max_offset = INT64_MAX, bool force = false);
    result<compaction_stats, errc> install_compaction(const compaction_plan& plan, compaction_result& res);
    // The three steps inline.
    result<compaction_stats, errc> compact(int64_t now_ms, compactor& c, int64_t max_offset = INT64_MAX,
                                           bool force = false);
    // Where the next cleaning starts (persisted by the log manager in
    // cleaner-offset-checkpoint). The setter restores it at open, as Kafka
    // does: below the log start it is the log start; beyond the log end
    // (the log was truncated since) it restarts from the log start.
    int64_t first_dirty_offset() const { return std::max(cleaner_checkpoint_, start_offset_); }
    void set_first_dirty_offset(int64_t offset) {
        cleaner_checkpoint_ = offset > next_offset_ ? start_offset_ : std::max(offset, start_offset_);
    }

    // Idempotent/transactional producers seen in this log (producer_state.h).
    const producer_state& producers() const { return producers_; }

    // Transactions (Kafka's transactional log; txn_index.h). The first
    // offset of the earliest open transaction (at least the log start);
    // nullopt if none is open.
    std::optional<int64_t> first_unstable_offset() const;
    // Kafka's last stable offset: the earliest open transaction's first
    // offset, or the high watermark if that is lower (or none is open).
    int64_t last_stable_offset(int64_t high_watermark) const {
        auto u = first_unstable_offset();
        return u ? std::min(*u, high_watermark) : high_watermark;
    }
    // The aborted transactions that overlap [from, upper) (marker at or
    // after `from`, first offset below `upper`), in marker order: what a
    // read_committed Fetch of that range returns (Kafka's
    // collectAbortedTransactions; `upper` is the offset after the last batch
    // served). Reads .txnindex files the first time.
    result<std::vector<aborted_txn>, errc> aborted_transactions(int64_t from, int64_t upper);

    void set_durability_test_faults(durability_test_faults f) { test_faults_ = f; }
    // Drops the in-memory indexes of inactive segments (idle partitions).
    void release_memory();

    bool offline() const { return offline_; }
    const std::string& offline_detail() const { return offline_detail_; }
    const std::string& dir() const { return dir_; }
    const topic_partition& tp() const { return tp_; }
    const log_config& config() const { return cfg_; }
    // A topic's configs changed (AlterConfigs): retention, rolling,
    // compaction and timestamps follow at once, as in Kafka.
    void set_config(const log_config& c) { cfg_ = c; }
    void set_listener(log_listener* l) { listener_ = l; }
    size_t segment_count() const { return segments_.size(); }
    int64_t size_bytes() const;
    // Heap bytes held by this log (object, segments, loaded indexes, epochs).
    size_t memory_bytes() const;

private:
    friend class plan_fetches;
    struct scan_outcome;
    log(file_cache& files, std::string dir, topic_partition tp, log_config cfg);

    std::string path_of(const segment& s, std::string_view ext) const;
    std::string path_of_base(int64_t base, std::string_view ext) const {
        return dir_ + "/" + segment_file_name(base, ext);
    }
    // Producer state (producer_state.cc).
    // Applies a batch to the producer state; an ABORT marker at or after
    // `txn_index_from` gets its .txnindex entry.
    void track_producer(std::span<const uint8_t> batch, int64_t txn_index_from);
    // From the latest valid snapshot (at or below txn_index_from) and the
    // batches after it; markers from txn_index_from on are indexed again.
    result<void, errc> rebuild_producer_state(std::string& detail, int64_t txn_index_from = INT64_MAX);
    // Transaction index (txn_index.cc).
    result<void, errc> load_txn_index(segment& s);  // offline if the file is corrupt
    void add_aborted_txn(const aborted_txn& t);
    // Drops the entries of markers at or after `end` (truncation).
    result<void, errc> truncate_txn_index(segment& s, int64_t end);
    // Empties it (before a recovery scan re-derives it).
    void clear_txn_index(segment& s);
    result<void, errc> sync_txn_indexes();  // inline fsync of changed .txnindex files
    void write_producer_snapshot(bool durable);
    // Removes snapshots below `lo` or above `hi`; returns whether any went.
    bool delete_snapshots_outside(int64_t lo, int64_t hi);
    result<std::shared_ptr<file>, errc> log_file(segment& s);
    size_t segment_index_for(int64_t offset) const;
    segment& active() { return *segments_.back(); }

    // How planning reads bytes: inline, or from plan_fetches (async).
    struct plan_io;
    struct scan_state;
    struct scan_io;
    scan_outcome scan(segment& s, uint64_t from, int64_t expected_next, bool index, bool first_indexed,
                      bool assign_epochs, scan_io* sio = nullptr);
    // Loads (or, with `rebuild`, re-derives from the log) a segment's indexes.
    result<void, errc> load_indexes(segment& s, plan_io& io, bool rebuild = false);
    result<void, errc> load_indexes(segment& s);
    // load_indexes, taking the log offline if the segment is corrupt.
    result<void, errc> ensure_indexes(segment& s, plan_io& io);
    result<void, errc> ensure_indexes(segment& s);
    result<void, errc> rebuild_indexes(segment& s);
    void write_index_entries(segment& s);
    result<void, errc> rewrite_index_files(segment& s);
    result<uint64_t, errc> find_batch(segment& s, int64_t offset, int64_t* batch_base, uint32_t* batch_size,
                                      plan_io& io);
    result<read_plan, errc> plan_read(int64_t offset, size_t max_bytes, int64_t max_offset, plan_io& io);
    // The checks every read starts with; clamps max_bytes. False when there
    // is nothing to read (the log end, or max_offset reached).
    result<bool, errc> start_read(int64_t offset, size_t& max_bytes, int64_t max_offset) const;
    // Segment i's part of a read from `want`; length 0 if it has none.
    result<read_plan, errc> plan_segment(size_t i, int64_t want, size_t budget, bool first, int64_t max_offset,
                                         plan_io& io);
    // Validates read bytes into r (cut at max_offset: `stop`); returns the bytes kept.
    result<size_t, errc> accept_chunk(const read_plan& p, shared_bytes bytes, read_result& r, bool& stop);
    result<void, errc> recover(size_t from_segment, int64_t recovery_point, recovery_report& report,
                               std::string& detail);
    result<void, errc> new_segment(int64_t base);
    void delete_segment_files(segment& s);
    result<void, errc> write_epoch_checkpoint();
    bool should_roll(const segment& s, uint64_t bytes, int64_t last_offset, int64_t now_ms) const;
    errc go_offline(errc e, std::string detail);

    file_cache& files_;
    file_system& fs_;
    std::string dir_;
    topic_partition tp_;
    log_config cfg_;
    log_listener* listener_ = nullptr;
    std::vector<std::unique_ptr<segment>> segments_;  // by base offset; never empty
    epoch_history epochs_;
    int64_t start_offset_ = 0;
    int64_t next_offset_ = 0;
    int64_t durable_offset_ = 0;
    uint64_t generation_ = 0;      // bumped by truncations: stale sync completions are ignored
    uint64_t dir_generation_ = 0;  // bumped by file creations/deletions
    uint64_t dir_synced_generation_ = 0;
    bool offline_ = false;
    int64_t cleaner_checkpoint_ = 0;                // first dirty offset (compaction)
    int64_t next_tombstone_expiry_ms_ = INT64_MAX;  // a cleaning can drop a tombstone then
    producer_state producers_;
    int64_t last_snapshot_offset_ = -1;
    durability_test_faults test_faults_;
    std::string offline_detail_;
    std::string offline_detail_scratch_;  // the last failed scan's problem
};

}  // namespace fjord::storage
