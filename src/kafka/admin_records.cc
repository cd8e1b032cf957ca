// Partition admin: DeleteRecords (21), DescribeLogDirs (35),
// DescribeProducers (61). Each partition is handled on the shard that owns
// it (shard_set::invoke_on); file work (checkpoint writes, segment removal,
// statvfs) runs on the blocking pool, never on a shard thread.
#include <sys/statvfs.h>

#include <filesystem>
#include <map>

#include "base/logger.h"
#include "kafka/admin.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "kafka/fan_out.h"
#include "net/blocking_pool.h"
#include "net/when_all.h"
#include "protocol/gen/delete_records.h"
#include "protocol/gen/describe_log_dirs.h"
#include "protocol/gen/describe_producers.h"
#include "storage/file.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

namespace {

struct delete_item {
    storage::topic_partition tp;
    unsigned shard = 0;
    int64_t offset = 0;
    int16_t error = error::none;
    int64_t low_watermark = -1;
};

// On the owning shard: moves the log starts, makes them durable (the
// shard's checkpoint files, on the pool), then removes the segments below.
net::awaitable<void> delete_records_on_shard(shard_ctx* sh, std::vector<delete_item*> items) {
    std::vector<delete_item*> moved;
    for (auto* it : items) {
        partition* p = sh->find(it->tp);
        if (!p || !p->leads()) {
            // The topic exists (the handler checked): another node leads it.
            it->error = error::not_leader_or_follower;
            continue;
        }
        if (p->offline()) {
            it->error = error::kafka_storage_error;
            continue;
        }
        if (!p->config().log.delete_) {
            it->error = error::policy_violation;
            continue;
        }
        const int64_t hw = p->high_watermark();
        const int64_t target = it->offset == -1 ? hw : it->offset;
        if (target < 0 || target > hw) {
            it->error = error::offset_out_of_range;
            continue;
        }
        if (target > p->log_start_offset()) {
            // A replicated partition moves it through its Raft group (the
            // snapshot followers that are behind then install).
            if (auto* rep = p->replica(); rep && !rep->advance_log_start(target)) {
                it->error = error::kafka_storage_error;
                continue;
            }
            if (auto r = p->log().advance_start_offset(target); !r) {
                it->error = error::kafka_storage_error;
                continue;
            }
            moved.push_back(it);
        }
        it->low_watermark = p->log_start_offset();
    }
    if (moved.empty()) co_return;
    auto files = std::make_shared<storage::checkpoint_files>(sh->logs->prepare_checkpoint());
    auto dir = sh->logs->dir();
    auto ok = std::make_shared<bool>(false);
    auto write = net::run_blocking(sh->owner.pool(), [files, dir, ok] {
        *ok = storage::log_manager::write_checkpoint(storage::posix_file_system(), dir, *files).ok();
    });
    co_await std::move(write);
    if (!*ok) {
        log_error("log.dirs {}: DeleteRecords could not make the new log start offsets durable", dir);
        for (auto* it : moved) {
            it->error = error::kafka_storage_error;
            it->low_watermark = -1;
        }
        co_return;
    }
    auto paths = std::make_shared<std::vector<std::string>>();
    for (auto* it : moved) {
        partition* p = sh->find(it->tp);  // may have been deleted meanwhile
        if (!p) continue;
        auto detached = p->log().detach_segments_below_start();
        paths->insert(paths->end(), detached.begin(), detached.end());
        log_info("partition {}-{}: DeleteRecords: log start offset {}", it->tp.topic, it->tp.partition,
                 p->log_start_offset());
    }
    if (!paths->empty()) {
        auto remove = net::run_blocking(sh->owner.pool(), [paths] {
            for (const auto& path : *paths) {
                std::error_code ec;
                std::filesystem::remove(path, ec);
            }
        });
        co_await std::move(remove);
    }
}

struct log_dir_item {
    storage::topic_partition tp;
    unsigned shard = 0;
    int16_t error = error::none;
    int64_t size = -1;
};

net::awaitable<void> sizes_on_shard(shard_ctx* sh, std::vector<log_dir_item*> items) {
    for (auto* it : items) {
        partition* p = sh->find(it->tp);
        if (p && !p->offline()) it->size = p->log().size_bytes();
    }
    co_return;
}

struct producers_item {
    storage::topic_partition tp;
    unsigned shard = 0;
    int16_t error = error::none;
    std::vector<gen::describe_producers_response::producer_state> producers;
};

net::awaitable<void> producers_on_shard(shard_ctx* sh, std::vector<producers_item*> items) {
    for (auto* it : items) {
        partition* p = sh->find(it->tp);
        if (!p) {
            it->error = error::unknown_topic_or_partition;
            continue;
        }
        if (p->offline()) {
            it->error = error::kafka_storage_error;
            continue;
        }
        for (const auto& [id, e] : p->log().producers().entries()) {
            gen::describe_producers_response::producer_state ps;
            ps.producer_id = id;
            ps.producer_epoch = e.epoch;
            const auto* last = e.last();
            ps.last_sequence = last ? last->last_seq : -1;
            ps.last_timestamp = e.last_timestamp;
            ps.coordinator_epoch = e.coordinator_epoch;
            ps.current_txn_start_offset = e.current_txn_first_offset;
            it->producers.push_back(ps);
        }
        std::sort(it->producers.begin(), it->producers.end(),
                  [](const auto& a, const auto& b) { return a.producer_id < b.producer_id; });
    }
    co_return;
}
}  // namespace

net::awaitable<net::response> handle_delete_records(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                    net::request_order&) {
    auto req = decode_request<gen::delete_records_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const unsigned n = sh.owner.shards().count();
    std::vector<delete_item> items;
    for (const auto& t : req->topics) {
        const auto* info = sh.image->find_topic(t.name);
        for (const auto& p : t.partitions) {
            delete_item it;
            it.tp = {t.name, p.partition_index};
            it.offset = p.offset;
            if (!info || p.partition_index < 0 || p.partition_index >= static_cast<int32_t>(info->partitions.size())) {
                it.error = error::unknown_topic_or_partition;
            } else {
                it.shard = owner_shard(t.name, p.partition_index, n);
            }
            items.push_back(std::move(it));
        }
    }
    auto work = fan_out(
        sh, items, [](shard_ctx* s, std::vector<delete_item*> g) { return delete_records_on_shard(s, std::move(g)); });
    co_await std::move(work);
    gen::delete_records_response resp;
    size_t k = 0;
    for (const auto& t : req->topics) {
        gen::delete_records_response::delete_records_topic_result tr;
        tr.name = t.name;
        for (size_t i = 0; i < t.partitions.size(); ++i, ++k) {
            const auto& it = items[k];
            tr.partitions.push_back({.partition_index = it.tp.partition,
                                     .low_watermark = it.error == error::none ? it.low_watermark : -1,
                                     .error_code = it.error,
                                     .unknown_tagged_fields = {}});
        }
        resp.topics.push_back(std::move(tr));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_describe_log_dirs(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                       net::request_order&) {
    auto req = decode_request<gen::describe_log_dirs_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const unsigned n = sh.owner.shards().count();
    auto image = sh.image;
    std::vector<log_dir_item> items;
    auto add = [&](const cluster::topic_info& t, int32_t p) {
        if (p < 0 || p >= static_cast<int32_t>(t.partitions.size())) return;
        log_dir_item it;
        it.tp = {t.name, p};
        it.shard = owner_shard(t.name, p, n);
        items.push_back(std::move(it));
    };
    if (!req->topics) {
        for (const auto& [name, t] : image->topics()) {
            for (const auto& p : t->partitions) add(*t, p.partition);
        }
    } else {
        for (const auto& t : *req->topics) {
            if (const auto* info = image->find_topic(t.topic)) {
                for (int32_t p : t.partitions) add(*info, p);
            }
        }
    }
    auto work =
        fan_out(sh, items, [](shard_ctx* s, std::vector<log_dir_item*> g) { return sizes_on_shard(s, std::move(g)); });
    co_await std::move(work);
    std::error_code ec;
    std::string dir = std::filesystem::absolute(sh.owner.config().log_dir, ec).lexically_normal().string();
    if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    auto space = std::make_shared<std::pair<int64_t, int64_t>>(-1, -1);
    auto stat = net::run_blocking(sh.owner.pool(), [dir, space] {
        struct statvfs st {};
        if (::statvfs(dir.c_str(), &st) == 0) {
            space->first = static_cast<int64_t>(st.f_blocks) * static_cast<int64_t>(st.f_frsize);
            space->second = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
        }
    });
    co_await std::move(stat);
    gen::describe_log_dirs_response resp;
    gen::describe_log_dirs_response::describe_log_dirs_result r;
    r.log_dir = dir;
    r.total_bytes = space->first;
    r.usable_bytes = space->second;
    std::map<std::string, std::vector<gen::describe_log_dirs_response::describe_log_dirs_partition>> by_topic;
    for (const auto& it : items) {
        if (it.size < 0) continue;
        by_topic[it.tp.topic].push_back({.partition_index = it.tp.partition,
                                         .partition_size = it.size,
                                         .offset_lag = 0,
                                         .is_future_key = false,
                                         .unknown_tagged_fields = {}});
    }
    for (auto& [name, parts] : by_topic) {
        r.topics.push_back({.name = name, .partitions = std::move(parts), .unknown_tagged_fields = {}});
    }
    resp.results.push_back(std::move(r));
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_describe_producers(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                        net::request_order&) {
    auto req = decode_request<gen::describe_producers_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const unsigned n = sh.owner.shards().count();
    std::vector<producers_item> items;
    for (const auto& t : req->topics) {
        const auto* info = sh.image->find_topic(t.name);
        for (int32_t p : t.partition_indexes) {
            producers_item it;
            it.tp = {t.name, p};
            if (!info || p < 0 || p >= static_cast<int32_t>(info->partitions.size())) {
                it.error = error::unknown_topic_or_partition;
            } else {
                it.shard = owner_shard(t.name, p, n);
            }
            items.push_back(std::move(it));
        }
    }
    auto work = fan_out(
        sh, items, [](shard_ctx* s, std::vector<producers_item*> g) { return producers_on_shard(s, std::move(g)); });
    co_await std::move(work);
    gen::describe_producers_response resp;
    size_t k = 0;
    for (const auto& t : req->topics) {
        gen::describe_producers_response::topic_response tr;
        tr.name = t.name;
        const bool topic_known = sh.image->find_topic(t.name) != nullptr;
        for (size_t i = 0; i < t.partition_indexes.size(); ++i, ++k) {
            auto& it = items[k];
            gen::describe_producers_response::partition_response pr;
            pr.partition_index = it.tp.partition;
            pr.error_code = it.error;
            if (it.error == error::unknown_topic_or_partition && !topic_known) {
                pr.error_message = "This server does not host this topic-partition.";
            }
            pr.active_producers = std::move(it.producers);
            tr.partitions.push_back(std::move(pr));
        }
        resp.topics.push_back(std::move(tr));
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
