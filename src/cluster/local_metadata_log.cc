#include "cluster/local_metadata_log.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>

#include "protocol/record_batch.h"

namespace fjord::cluster {

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Kafka's Uuid.METADATA_TOPIC_ID (0, 1): the topic id of __cluster_metadata.
storage::uuid metadata_topic_id() {
    storage::uuid id{};
    id[15] = 1;
    return id;
}

const storage::topic_partition& metadata_tp() {
    static const storage::topic_partition tp{metadata_topic, 0};
    return tp;
}

// Reads of the log during replay: at most this much per read call.
constexpr size_t replay_read_bytes = size_t{1} << 20;

}  // namespace

result<std::unique_ptr<local_metadata_log>, errc> local_metadata_log::open(const local_metadata_log_options& opts,
                                                                           storage::io_engine& engine, post_fn post,
                                                                           std::string& detail) {
    std::unique_ptr<local_metadata_log> l(new local_metadata_log(std::move(post)));
    l->node_id_ = opts.node_id;
    storage::log_manager_config cfg;
    cfg.dir = opts.dir;
    cfg.max_open_files = 16;
    cfg.node_id = opts.node_id;
    cfg.defaults.segment_bytes = opts.segment_bytes;
    // The metadata log is never cut by retention (there are no snapshots yet).
    cfg.defaults.retention_ms = -1;
    cfg.defaults.retention_bytes = -1;
    storage::file_system& fs = opts.fs ? *opts.fs : storage::posix_file_system();
    const int64_t now = now_ms();
    auto m = storage::log_manager::open(fs, cfg, now);
    if (!m) {
        detail = fmt::format("metadata directory {}: {}", opts.dir, storage::describe(m.error()));
        return fail(errc::io_error);
    }
    l->manager_ = std::move(m).value();
    if (auto it = l->manager_->offline().find(metadata_tp()); it != l->manager_->offline().end()) {
        detail = fmt::format("metadata log {}/{}: {}", opts.dir, metadata_tp().dir_name(), it->second);
        return fail(errc::metadata_offline);
    }
    l->log_ = l->manager_->get(metadata_tp());
    if (!l->log_) {
        const storage::uuid id = metadata_topic_id();
        auto created = l->manager_->create_log(metadata_tp(), cfg.defaults, &id);
        if (!created) {
            detail = fmt::format("creating the metadata log in {}: {}", opts.dir, storage::describe(created.error()));
            return fail(errc::io_error);
        }
        l->log_ = *created;
        // The new directory and its first segment are durable before anything counts on them.
        if (auto r = l->log_->sync(); !r) {
            detail = fmt::format("syncing the new metadata log in {}: {}", opts.dir, storage::describe(r.error()));
            return fail(errc::io_error);
        }
    }
    storage::durability_config dc;
    dc.mode = storage::durability_mode::group_commit;
    l->durability_ = std::make_unique<storage::durability>(*l->log_, engine, l->post_, dc, now);
    return l;
}

local_metadata_log::~local_metadata_log() {
    FJORD_ASSERT(idle(), "metadata log destroyed with {} appends in flight", in_flight_);
    durability_.reset();  // before the log it drives
}

errc local_metadata_log::go_offline(std::string detail) {
    if (!offline_) {
        offline_ = true;
        offline_detail_ = std::move(detail);
    }
    return errc::metadata_offline;
}

result<std::pair<int64_t, int64_t>, errc> local_metadata_log::write_batch(const std::vector<metadata_record>& records) {
    FJORD_ASSERT(!records.empty(), "empty metadata append");
    FJORD_ASSERT(!closed_, "append to a closed metadata log");
    if (offline_) return fail(errc::metadata_offline);
    const int64_t now = now_ms();
    protocol::batch_builder b;
    std::vector<uint8_t> value;
    for (const auto& r : records) {
        protocol::writer w(64);
        encode(r, w);
        value = w.take();
        b.add(now, std::nullopt, std::span<const uint8_t>(value));
    }
    auto built = b.build();
    FJORD_ASSERT(built.ok(), "an uncompressed batch failed to build");
    std::vector<uint8_t> batch = std::move(built).value();
    storage::append_options ao;
    ao.now_ms = now;
    ao.leader_epoch = 0;
    auto a = log_->append(std::span<uint8_t>(batch), ao);
    if (!a) {
        if (log_->offline()) {
            return fail(go_offline(
                fmt::format("metadata log append: {} ({})", storage::describe(a.error()), log_->offline_detail())));
        }
        return fail(errc::io_error);  // ENOSPC/EIO: nothing written, the log stays usable
    }
    FJORD_ASSERT(a->last_offset - a->first_offset + 1 == static_cast<int64_t>(records.size()),
                 "batch of {} records got offsets [{}, {}]", records.size(), a->first_offset, a->last_offset);
    return std::pair{a->first_offset, a->last_offset};
}

void local_metadata_log::append(std::vector<metadata_record> records, append_done done) {
    auto w = write_batch(records);
    if (!w) {
        post_([done = std::move(done), e = w.error()] { done(fail(e)); });
        return;
    }
    const auto [first, last] = *w;
    ++in_flight_;
    const auto count = static_cast<int64_t>(records.size());
    durability_->appended(last, count, now_ms(),
                          [this, first = first, records = std::move(records), done = std::move(done)](int err) {
                              --in_flight_;
                              if (err != 0) {
                                  go_offline(fmt::format("metadata log fsync failed: {}", std::strerror(-err)));
                                  done(fail(errc::metadata_offline));
                                  return;
                              }
                              if (apply_) apply_(first, records);
                              done(first);
                          });
}

result<void, errc> local_metadata_log::replay(const replay_fn& fn) {
    if (offline_) return fail(errc::metadata_offline);
    const std::string where = log_->dir();
    int64_t offset = log_->start_offset();
    const int64_t end = log_->end_offset();
    std::vector<uint8_t> scratch;
    while (offset < end) {
        auto rr = log_->read(offset, replay_read_bytes, end);
        if (!rr) {
            return fail(
                go_offline(fmt::format("{}: read at offset {}: {}{}{}", where, offset, storage::describe(rr.error()),
                                       log_->offline() ? ": " : "", log_->offline_detail())));
        }
        if (rr->next_offset <= offset) {
            return fail(go_offline(fmt::format("{}: read at offset {} made no progress", where, offset)));
        }
        for (const auto& chunk : rr->chunks) {
            protocol::batch_splitter split(chunk);
            while (auto b = split.next()) {
                const int64_t base = b->base_offset();
                // Control batches (Raft leader changes, later) carry no metadata.
                if (b->is_control()) continue;
                auto payload = b->payload(scratch);
                if (!payload) {
                    return fail(go_offline(
                        fmt::format("{}: batch at offset {}: {}", where, base, protocol::describe(payload.error()))));
                }
                auto records = b->records(*payload);
                protocol::record_view v;
                while (records.next(v)) {
                    const int64_t at = b->offset_of(v);
                    if (!v.value) {
                        return fail(go_offline(
                            fmt::format("{}: record at offset {} (batch {}) has a null value", where, at, base)));
                    }
                    std::string why;
                    auto rec = decode(*v.value, &why);
                    if (!rec) {
                        return fail(go_offline(fmt::format("{}: record at offset {} (batch {}): {}: {}", where, at,
                                                           base, describe(rec.error()), why)));
                    }
                    if (auto r = fn(at, *rec); !r) {
                        return fail(go_offline(fmt::format("{}: {} record at offset {} refused: {}", where,
                                                           name_of(type_of(*rec)), at, describe(r.error()))));
                    }
                }
                if (!records.ok()) {
                    return fail(go_offline(
                        fmt::format("{}: batch at offset {}: {}", where, base, protocol::describe(records.error()))));
                }
            }
            if (!split.clean_end()) {
                return fail(go_offline(
                    fmt::format("{}: a read at offset {} returned a partial or corrupt batch", where, offset)));
            }
        }
        offset = rr->next_offset;
    }
    return {};
}

result<void, errc> local_metadata_log::close() {
    FJORD_ASSERT(idle(), "metadata log closed with {} appends in flight", in_flight_);
    closed_ = true;
    if (auto r = manager_->shutdown(); !r) return fail(errc::io_error);
    return {};
}

}  // namespace fjord::cluster
