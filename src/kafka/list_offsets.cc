// ListOffsets (API 2) and OffsetForLeaderEpoch (API 23): offsets from the
// owning shard's log (its indexes and its leader epoch history).
#include "protocol/gen/list_offsets.h"
#include "base/logger.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "kafka/fan_out.h"
#include "net/when_all.h"
#include "protocol/gen/offset_for_leader_epoch.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

namespace {
inline constexpr int64_t latest_timestamp = -1;
inline constexpr int64_t earliest_timestamp = -2;
inline constexpr int64_t max_timestamp = -3;
inline constexpr int64_t earliest_local_timestamp = -4;
inline constexpr int64_t latest_tiered_timestamp = -5;
inline constexpr int64_t earliest_pending_upload_timestamp = -6;

int16_t fence(int32_t requested, int32_t current) {
    if (requested < 0 || requested == current) return error::none;
    return requested < current ? error::fenced_leader_epoch : error::unknown_leader_epoch;
}

struct offsets_item {
    storage::topic_partition tp;
    unsigned shard = 0;
    int32_t current_leader_epoch = -1;
    int64_t timestamp = 0;
    // Outcome.
    int16_t error = error::none;
    int64_t out_timestamp = -1;
    int64_t out_offset = -1;
    int32_t out_epoch = -1;
};

void list_one(shard_ctx& sh, offsets_item& it, int8_t isolation) {
    partition* p = sh.find(it.tp);
    if (!p) {
        it.error = missing_partition_error(sh.logs.get(), it.tp);
        return;
    }
    if (p->offline()) {
        it.error = error::kafka_storage_error;
        return;
    }
    if ((it.error = fence(it.current_leader_epoch, p->leader_epoch())) != error::none) return;
    if (!p->leads()) {
        it.error = error::not_leader_or_follower;
        return;
    }
    auto& lg = p->log();
    auto epoch_at = [&](int64_t offset) -> int32_t {
        int32_t e = lg.epochs().epoch_at(offset);
        return e < 0 ? -1 : e;
    };
    switch (it.timestamp) {
        case latest_timestamp:
            it.out_offset = isolation == 1 ? p->last_stable_offset() : p->high_watermark();
            it.out_epoch = lg.epochs().latest_epoch() < 0 ? -1 : lg.epochs().latest_epoch();
            return;
        case earliest_timestamp:
        case earliest_local_timestamp:
            it.out_offset = p->log_start_offset();
            it.out_epoch = epoch_at(it.out_offset);
            return;
        case latest_tiered_timestamp:
        case earliest_pending_upload_timestamp:
            // No tiered storage: nothing is tiered.
            it.out_offset = -1;
            return;
        case max_timestamp: {
            auto r = lg.max_timestamp_offset();
            if (!r) {
                it.error = error::kafka_storage_error;
                return;
            }
            if (*r && (*r)->offset < p->high_watermark()) {
                it.out_offset = (*r)->offset;
                it.out_timestamp = (*r)->timestamp;
                it.out_epoch = epoch_at(it.out_offset);
            }
            return;
        }
        default: break;
    }
    if (it.timestamp < 0) {
        it.error = error::invalid_request;
        return;
    }
    auto r = lg.offset_for_timestamp(it.timestamp);
    if (!r) {
        it.error = error::kafka_storage_error;
        return;
    }
    const int64_t upper = isolation == 1 ? p->last_stable_offset() : p->high_watermark();
    if (*r && (*r)->offset < upper) {
        it.out_offset = std::max((*r)->offset, p->log_start_offset());
        it.out_timestamp = (*r)->timestamp;
        it.out_epoch = epoch_at(it.out_offset);
    }
}

net::awaitable<void> list_on_shard(shard_ctx* sh, std::vector<offsets_item*> items, int8_t isolation) {
    for (auto* it : items) list_one(*sh, *it, isolation);
    co_return;
}

struct epoch_item {
    storage::topic_partition tp;
    unsigned shard = 0;
    int32_t current_leader_epoch = -1;
    int32_t leader_epoch = 0;
    int16_t error = error::none;
    int32_t out_epoch = -1;
    int64_t out_offset = -1;
};

net::awaitable<void> epochs_on_shard(shard_ctx* sh, std::vector<epoch_item*> items) {
    for (auto* it : items) {
        partition* p = sh->find(it->tp);
        if (!p) {
            it->error = missing_partition_error(sh->logs.get(), it->tp);
            continue;
        }
        if (p->offline()) {
            it->error = error::kafka_storage_error;
            continue;
        }
        if ((it->error = fence(it->current_leader_epoch, p->leader_epoch())) != error::none) continue;
        if (!p->leads()) {
            it->error = error::not_leader_or_follower;
            continue;
        }
        auto [epoch, end] = p->log().end_offset_for_epoch(it->leader_epoch);
        it->out_epoch = epoch;
        it->out_offset = end;
    }
    co_return;
}

}  // namespace

net::awaitable<net::response> handle_list_offsets(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                  net::request_order&) {
    auto req = decode_request<gen::list_offsets_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const int16_t v = ctx.version;
    auto image = sh.image;
    const unsigned n = sh.owner.shards().count();
    const int8_t isolation = v >= 2 ? req->isolation_level : 0;
    gen::list_offsets_response resp;
    std::vector<offsets_item> items;
    std::vector<std::pair<size_t, size_t>> where;
    for (const auto& t : req->topics) {
        gen::list_offsets_response::list_offsets_topic_response tr;
        tr.name = t.name;
        const auto* info = image->find_topic(t.name);
        for (const auto& p : t.partitions) {
            offsets_item it;
            it.current_leader_epoch = v >= 4 ? p.current_leader_epoch : -1;
            it.timestamp = p.timestamp;
            // Each special timestamp only from the version that introduced it.
            if ((p.timestamp == max_timestamp && v < 7) || (p.timestamp == earliest_local_timestamp && v < 8) ||
                (p.timestamp == latest_tiered_timestamp && v < 9) ||
                (p.timestamp == earliest_pending_upload_timestamp && v < 11)) {
                it.error = error::unsupported_version;
            } else if (!info || p.partition_index < 0 ||
                       static_cast<size_t>(p.partition_index) >= info->partitions.size()) {
                it.error = error::unknown_topic_or_partition;
            } else if (info->partitions[static_cast<size_t>(p.partition_index)].leader != sh.owner.config().node_id) {
                it.error = error::not_leader_or_follower;
            } else {
                it.tp = storage::topic_partition{info->name, p.partition_index};
                it.shard = owner_shard(info->name, p.partition_index, n);
            }
            where.emplace_back(resp.topics.size(), tr.partitions.size());
            gen::list_offsets_response::list_offsets_partition_response pr;
            pr.partition_index = p.partition_index;
            tr.partitions.push_back(std::move(pr));
            items.push_back(std::move(it));
        }
        resp.topics.push_back(std::move(tr));
    }
    auto task = fan_out(sh, items, [isolation](shard_ctx* s, std::vector<offsets_item*> g) {
        return list_on_shard(s, std::move(g), isolation);
    });
    co_await std::move(task);
    for (size_t i = 0; i < items.size(); ++i) {
        auto& pr = resp.topics[where[i].first].partitions[where[i].second];
        const auto& it = items[i];
        pr.error_code = it.error;
        if (it.error != error::none) continue;
        if (v == 0) {
            if (it.out_offset >= 0) pr.old_style_offsets.push_back(it.out_offset);
            continue;
        }
        pr.timestamp = it.out_timestamp;
        pr.offset = it.out_offset;
        if (v >= 4) pr.leader_epoch = it.out_epoch;
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_offset_for_leader_epoch(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                             net::request_order&) {
    auto req = decode_request<gen::offset_for_leader_epoch_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const int16_t v = ctx.version;
    auto image = sh.image;
    const unsigned n = sh.owner.shards().count();
    gen::offset_for_leader_epoch_response resp;
    std::vector<epoch_item> items;
    std::vector<std::pair<size_t, size_t>> where;
    for (const auto& t : req->topics) {
        gen::offset_for_leader_epoch_response::offset_for_leader_topic_result tr;
        tr.topic = t.topic;
        const auto* info = image->find_topic(t.topic);
        for (const auto& p : t.partitions) {
            epoch_item it;
            it.current_leader_epoch = v >= 2 ? p.current_leader_epoch : -1;
            it.leader_epoch = p.leader_epoch;
            if (!info || p.partition < 0 || static_cast<size_t>(p.partition) >= info->partitions.size()) {
                it.error = error::unknown_topic_or_partition;
            } else if (info->partitions[static_cast<size_t>(p.partition)].leader != sh.owner.config().node_id) {
                it.error = error::not_leader_or_follower;
            } else {
                it.tp = storage::topic_partition{info->name, p.partition};
                it.shard = owner_shard(info->name, p.partition, n);
            }
            where.emplace_back(resp.topics.size(), tr.partitions.size());
            gen::offset_for_leader_epoch_response::epoch_end_offset r;
            r.partition = p.partition;
            tr.partitions.push_back(std::move(r));
            items.push_back(std::move(it));
        }
        resp.topics.push_back(std::move(tr));
    }
    auto task =
        fan_out(sh, items, [](shard_ctx* s, std::vector<epoch_item*> g) { return epochs_on_shard(s, std::move(g)); });
    co_await std::move(task);
    for (size_t i = 0; i < items.size(); ++i) {
        auto& r = resp.topics[where[i].first].partitions[where[i].second];
        const auto& it = items[i];
        r.error_code = it.error;
        if (it.error != error::none) continue;
        r.leader_epoch = it.out_epoch;
        r.end_offset = it.out_offset;
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
