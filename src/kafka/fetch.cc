// Fetch (API 1) for consumers: fetch sessions (KIP-227, fetch_session.h),
// reads fanned out to the owning shards (storage::read_async: the pread runs
// on the io_engine), min.bytes / max.wait.ms long-poll woken by appends,
// leader epoch fencing, OFFSET_OUT_OF_RANGE only outside [log start, log end],
// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH with the current leader
// (KIP-951, v16+).
//
// Size limits as Kafka's ReplicaManager.readFromLog (KIP-74): every partition
// reads at most min(its partition_max_bytes, what the response may still
// carry), the response's max_bytes being min(request, fetch.max.bytes); only
// the first batch of the first partition that returns data may exceed them.
// Fjord returns whole batches only (Kafka may end a partition's records with
// a partial batch, which clients drop).
//
// Waiting (Kafka's DelayedFetch): min_bytes is capped at the response's
// max_bytes. The first read answers at once when it returned min_bytes; else
// the fetch waits, and completes as soon as the bytes available (per
// partition up to its partition_max_bytes, whatever the response limit) reach
// min_bytes, on an error or at max_wait_ms; it then answers what a read
// returns, even if that is less than min_bytes.
#include <algorithm>
#include <chrono>

#include "base/logger.h"
#include "base/metrics.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "net/when_all.h"
#include "protocol/gen/fetch.h"

namespace fjord::kafka {
namespace gen = protocol::gen;
namespace asio = net::asio;

namespace {
counter fetch_full("fjord_fetch_requests_total{session=\"full\"}", "Fetch requests, by fetch session kind");
counter fetch_incremental("fjord_fetch_requests_total{session=\"incremental\"}",
                          "Fetch requests, by fetch session kind");
counter fetch_sessionless("fjord_fetch_requests_total{session=\"sessionless\"}",
                          "Fetch requests, by fetch session kind");
counter fetch_session_errors("fjord_fetch_session_errors_total", "Fetch requests answered with a session error");
counter fetched_bytes("fjord_fetch_bytes_total", "Record bytes returned by Fetch");
counter fetch_waits("fjord_fetch_long_polls_total", "Fetches that waited for data (min.bytes not yet available)");

struct fetch_item {
    // What to read.
    storage::topic_partition tp;
    unsigned shard = 0;
    int16_t pre_error = 0;  // resolved before reading (unknown topic)
    int64_t fetch_offset = 0;
    int32_t max_bytes = 0;
    int32_t current_leader_epoch = -1;
    int32_t last_fetched_epoch = -1;
    // What one round read.
    int16_t error = 0;
    int64_t hw = -1;
    int64_t lso = -1;
    int64_t log_start = -1;
    int32_t diverging_epoch = -1;
    int64_t diverging_end = -1;
    std::vector<shared_bytes> chunks;
    size_t bytes = 0;
    std::vector<storage::aborted_txn> aborted;  // read_committed: overlapping the records returned
    // Kafka's DelayedFetch estimate of the bytes this partition has to give:
    // min(bytes from the fetch offset to the high watermark (or LSO), its
    // partition_max_bytes). Exact when the read reached that bound; a lower
    // bound past the read's limit when it stopped short.
    size_t available = 0;
    // KIP-951: the leader this replica knows of, for NOT_LEADER_OR_FOLLOWER
    // and FENCED_LEADER_EPOCH (Kafka's getCurrentLeader: the local replica's
    // view, else the metadata's).
    int32_t leader_id = -1;
    int32_t leader_epoch = -1;
    // The bound (high watermark or LSO) the read saw: a waiting fetch waits
    // for it to move.
    int64_t upper = -1;
};

struct read_round {
    size_t budget = 0;         // what the response may still carry
    bool first_given = false;  // a batch has been returned (KIP-74: only the first may exceed limits)
    size_t total = 0;          // bytes returned
    size_t available = 0;      // sum of fetch_item::available
    bool any_error = false;
    bool any_diverging = false;  // Kafka answers a diverging epoch at once
};

struct read_wait {
    explicit read_wait(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    result<storage::read_result, storage::errc> res = fail(storage::errc::not_found);
};

net::awaitable<void> read_one(shard_ctx& sh, fetch_item& it, read_round& round, int8_t isolation) {
    it.error = 0;
    it.chunks.clear();
    it.aborted.clear();
    it.bytes = 0;
    it.available = 0;
    it.upper = -1;
    it.diverging_epoch = -1;
    partition* p = sh.find(it.tp);
    if (!p) {
        it.error = missing_partition_error(sh.logs.get(), it.tp);
        co_return;
    }
    if (p->offline()) {
        it.error = error::kafka_storage_error;
        co_return;
    }
    if (it.current_leader_epoch >= 0 && it.current_leader_epoch != p->leader_epoch()) {
        it.error =
            it.current_leader_epoch < p->leader_epoch() ? error::fenced_leader_epoch : error::unknown_leader_epoch;
        it.leader_id = p->replica() ? p->replica()->leader().value_or(-1) : sh.owner.config().node_id;
        it.leader_epoch = p->leader_epoch();
        co_return;
    }
    if (!p->leads()) {
        // A replicated partition's follower (or a leader that just lost its term).
        it.error = error::not_leader_or_follower;
        it.leader_id = p->replica()->leader().value_or(-1);
        it.leader_epoch = p->leader_epoch();
        co_return;
    }
    it.hw = p->high_watermark();
    it.lso = p->last_stable_offset();
    it.log_start = p->log_start_offset();
    if (it.fetch_offset < it.log_start || it.fetch_offset > p->log_end_offset()) {
        it.error = error::offset_out_of_range;
        co_return;
    }
    if (it.last_fetched_epoch >= 0) {
        auto [epoch, end] = p->log().end_offset_for_epoch(it.last_fetched_epoch);
        if (epoch < it.last_fetched_epoch || end < it.fetch_offset) {
            it.diverging_epoch = epoch;
            it.diverging_end = end;
            co_return;
        }
    }
    const int64_t upper = isolation == 1 ? it.lso : it.hw;
    it.upper = upper;
    if (it.fetch_offset >= upper) co_return;
    // Kafka: min(partition_max_bytes, what the response may still carry);
    // the first batch of the response goes out whatever its size.
    const size_t partition_max = static_cast<size_t>(std::max(it.max_bytes, 0));
    const size_t limit = std::min(partition_max, round.budget);
    // What this partition adds to the DelayedFetch estimate when it holds
    // more than `limit` bytes below `upper`.
    const size_t beyond_limit = std::min(partition_max, limit + 1);
    if (round.first_given && limit == 0) {
        it.available = beyond_limit;
        co_return;
    }
    auto ex = co_await asio::this_coro::executor;
    auto w = std::make_shared<read_wait>(ex);
    auto& ctx = sh.owner.shards().context(sh.id);
    storage::read_async(
        p->log(), sh.owner.io(), [&ctx](std::function<void()> fn) { asio::post(ctx, std::move(fn)); }, it.fetch_offset,
        std::max<size_t>(limit, 1), upper,
        [w](result<storage::read_result, storage::errc> r) {
            w->res = std::move(r);
            w->done = true;
            w->ev.notify();
        });
    while (!w->done) co_await w->ev.wait();
    if (!w->res) {
        if (w->res.error() == storage::errc::offset_out_of_range) {
            it.error = error::offset_out_of_range;
        } else {
            it.error = error::kafka_storage_error;
            log_warn("partition {}-{}: read at {} failed: {}", it.tp.topic, it.tp.partition, it.fetch_offset,
                     storage::describe(w->res.error()));
        }
        co_return;
    }
    auto& rr = *w->res;
    if (rr.bytes == 0) co_return;
    // Stopped before `upper`: more than `limit` bytes wait there (or the
    // read met the end of a segment).
    it.available = rr.next_offset >= upper ? std::min(rr.bytes, partition_max)
                                           : std::max(std::min(rr.bytes, partition_max), beyond_limit);
    if (round.first_given && rr.bytes > limit) {
        // Only the first batch may exceed the limits.
        it.available = beyond_limit;
        co_return;
    }
    if (isolation == 1) {
        auto ab = p->log().aborted_transactions(it.fetch_offset, rr.next_offset);
        if (!ab) {
            it.error = error::kafka_storage_error;
            co_return;
        }
        it.aborted = std::move(ab).value();
    }
    it.chunks = std::move(rr.chunks);
    it.bytes = rr.bytes;
    round.first_given = true;
    round.budget = rr.bytes >= round.budget ? 0 : round.budget - rr.bytes;
    round.total += rr.bytes;
}

net::awaitable<void> read_on_shard(shard_ctx* sh, std::vector<fetch_item*> items, read_round* round, int8_t isolation) {
    for (auto* it : items) {
        co_await read_one(*sh, *it, *round, isolation);
        if (it->error != 0) round->any_error = true;
        if (it->diverging_epoch >= 0) round->any_diverging = true;
        round->available += it->available;
    }
}

// Waits on one shard until one of `parts` may have data past its fetch
// offset, or the deadline. Copies what it needs: the fetch may be answered
// (and its state gone) before this returns.
struct wait_target {
    storage::topic_partition tp;
    int64_t fetch_offset;
    int64_t upper;  // what the last read saw; data past it is what we wait for
    int32_t current_leader_epoch;
};

net::awaitable<void> wait_on_shard(shard_ctx* sh, std::vector<wait_target> parts,
                                   asio::steady_timer::time_point deadline, int8_t isolation) {
    auto ex = co_await asio::this_coro::executor;
    data_waiter w(ex, deadline);
    std::vector<partition*> registered;
    bool ready = false;
    for (const auto& t : parts) {
        partition* p = sh->find(t.tp);
        // Kafka's DelayedFetch completes at once when a partition is gone or
        // offline, no longer led here, or its leader epoch moved.
        if (!p || p->offline() || !p->leads() ||
            (t.current_leader_epoch >= 0 && t.current_leader_epoch != p->leader_epoch())) {
            ready = true;
            break;
        }
        int64_t upper = isolation == 1 ? p->last_stable_offset() : p->high_watermark();
        if (upper > std::max(t.fetch_offset, t.upper) || t.fetch_offset > p->log_end_offset()) {
            ready = true;
            break;
        }
    }
    if (!ready) {
        for (const auto& t : parts) {
            if (partition* p = sh->find(t.tp)) p->add_waiter(&w);
        }
        co_await w.ev.wait();
        for (const auto& t : parts) {
            if (partition* p = sh->find(t.tp)) p->remove_waiter(&w);
        }
    }
}

struct any_state {
    any_state(const asio::any_io_executor& ex, asio::steady_timer::time_point deadline) : ev(ex, deadline) {}
    net::event ev;
    bool any = false;
};

net::awaitable<void> wait_then_signal(net::awaitable<void> wait, std::shared_ptr<any_state> st) {
    co_await std::move(wait);
    st->any = true;
    st->ev.notify();
}

class image_resolver final : public topic_name_resolver {
public:
    explicit image_resolver(const cluster::metadata_image& img) : img_(img) {}
    std::optional<std::string_view> topic_name(const protocol::uuid& id) const override {
        const auto* t = img_.find_topic(id);
        if (!t) return std::nullopt;
        return std::string_view(t->name);
    }

private:
    const cluster::metadata_image& img_;
};
}  // namespace

net::awaitable<net::response> handle_fetch(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                           net::request_order& order) {
    auto req = decode_request<gen::fetch_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const int16_t v = ctx.version;
    auto image = sh.image;
    const unsigned n = sh.owner.shards().count();
    gen::fetch_response resp;

    if (req->replica_id >= 0 || req->replica_state.replica_id >= 0) {
        // Replication between Fjord nodes does not use Fetch.
        resp.error_code = error::not_leader_or_follower;
        co_return encode_response(ctx, resp);
    }

    image_resolver resolver(*image);
    auto begun = sh.sessions->begin(*req, v, ctx.now_ms, resolver);
    if (!begun) {
        fetch_session_errors.inc();
        resp.error_code = kafka_error_code(begun.error());
        resp.session_id = 0;
        co_return encode_response(ctx, resp);
    }
    // Session epochs are checked in request order; the rest may overlap.
    order.release();
    fetch_context& fctx = *begun;
    switch (fctx.kind()) {
        case fetch_kind::full: fetch_full.inc(); break;
        case fetch_kind::incremental: fetch_incremental.inc(); break;
        case fetch_kind::sessionless: fetch_sessionless.inc(); break;
    }

    const auto parts = fctx.partitions();
    std::vector<fetch_item> items(parts.size());
    for (size_t i = 0; i < parts.size(); ++i) {
        const auto& pr = parts[i];
        auto& it = items[i];
        it.fetch_offset = pr.fetch_offset;
        it.max_bytes = pr.max_bytes;
        it.current_leader_epoch = pr.current_leader_epoch;
        it.last_fetched_epoch = pr.last_fetched_epoch;
        if (pr.error_code != 0) {
            it.pre_error = pr.error_code;
            continue;
        }
        const auto& topic = fctx.topic(pr);
        const cluster::topic_info* info =
            fctx.uses_topic_ids() ? image->find_topic(topic.id) : image->find_topic(topic.name);
        if (!info) {
            it.pre_error = fctx.uses_topic_ids() ? error::unknown_topic_id : error::unknown_topic_or_partition;
            continue;
        }
        if (pr.partition < 0 || static_cast<size_t>(pr.partition) >= info->partitions.size()) {
            it.pre_error = error::unknown_topic_or_partition;
            continue;
        }
        const auto& pinfo = info->partitions[static_cast<size_t>(pr.partition)];
        if (pinfo.leader != sh.owner.config().node_id) {
            it.pre_error = error::not_leader_or_follower;
            it.leader_id = pinfo.leader;
            it.leader_epoch = pinfo.leader_epoch;
            continue;
        }
        it.tp = storage::topic_partition{info->name, pr.partition};
        it.shard = owner_shard(info->name, pr.partition, n);
    }

    const int8_t isolation = v >= 4 ? req->isolation_level : 0;
    const int64_t max_bytes = std::min<int64_t>(v >= 3 ? req->max_bytes : INT32_MAX, sh.owner.config().fetch_max_bytes);
    // Kafka: fetchMinBytes = min(min_bytes, fetchMaxBytes).
    const size_t min_bytes = static_cast<size_t>(std::max<int64_t>(std::min<int64_t>(req->min_bytes, max_bytes), 0));
    const auto deadline =
        asio::steady_timer::clock_type::now() + std::chrono::milliseconds(std::max(req->max_wait_ms, 0));
    bool waited = false;
    while (true) {
        read_round round;
        round.budget = static_cast<size_t>(std::max<int64_t>(max_bytes, 0));
        // Shards in turn (the response budget is shared), each reading its
        // partitions in request order.
        std::vector<std::vector<fetch_item*>> by_shard(n);
        std::vector<unsigned> shard_order;
        for (auto& it : items) {
            if (it.pre_error != 0) {
                it.error = it.pre_error;
                round.any_error = true;
                continue;
            }
            if (by_shard[it.shard].empty()) shard_order.push_back(it.shard);
            by_shard[it.shard].push_back(&it);
        }
        for (unsigned s : shard_order) {
            auto* owner = &sh.owner.shard(s);
            auto task = sh.owner.shards().invoke_on(s, [owner, group = by_shard[s], r = &round, isolation] {
                return read_on_shard(owner, group, r, isolation);
            });
            co_await std::move(task);
        }
        // The first read answers when it returned min_bytes; after that, as
        // Kafka's DelayedFetch (also tried once right after that first read),
        // when the bytes available reach it.
        const bool enough = (!waited && round.total >= min_bytes) || round.available >= min_bytes;
        if (enough || round.any_error || round.any_diverging || req->max_wait_ms <= 0 ||
            asio::steady_timer::clock_type::now() >= deadline || shard_order.empty() || sh.stopping) {
            break;
        }
        // Long-poll: wait until an append may have brought data, or the deadline.
        if (!waited) fetch_waits.inc();
        waited = true;
        auto ex = co_await asio::this_coro::executor;
        auto st = std::make_shared<any_state>(ex, deadline);
        for (unsigned s : shard_order) {
            std::vector<wait_target> targets;
            for (auto* it : by_shard[s]) {
                // Past what this round saw: data beyond it is what we wait for
                // (data below it is not enough yet).
                targets.push_back({it->tp, it->fetch_offset, it->upper, it->current_leader_epoch});
            }
            auto* owner = &sh.owner.shard(s);
            auto wait = sh.owner.shards().invoke_on(s, [owner, t = std::move(targets), deadline, isolation] {
                return wait_on_shard(owner, t, deadline, isolation);
            });
            auto signalled = wait_then_signal(std::move(wait), st);
            asio::co_spawn(ex, std::move(signalled), asio::detached);
        }
        while (!st->any && asio::steady_timer::clock_type::now() < deadline) co_await st->ev.wait();
    }

    // What the session needs to decide what to include.
    std::vector<fetch_partition_result> results(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
        const auto& it = items[i];
        auto& r = results[i];
        r.error_code = it.error;
        r.high_watermark = it.hw;
        r.last_stable_offset = it.lso;
        r.log_start_offset = it.log_start;
        r.has_records = it.bytes > 0;
        r.diverging_epoch = it.diverging_epoch >= 0;
    }
    auto plan = sh.sessions->finish(fctx, results, ctx.now_ms);
    resp.error_code = plan.error_code;
    resp.session_id = v >= 7 ? plan.session_id : 0;
    if (plan.error_code != 0) {
        fetch_session_errors.inc();
        co_return encode_response(ctx, resp);
    }
    const auto final_parts = fctx.partitions();
    std::vector<int32_t> leaders_named;
    for (size_t i = 0; i < items.size(); ++i) {
        if (!final_parts[i].include) continue;
        const auto& pr = final_parts[i];
        const auto& topic = fctx.topic(pr);
        auto& it = items[i];
        if (resp.responses.empty() || (fctx.uses_topic_ids() ? resp.responses.back().topic_id != topic.id
                                                             : resp.responses.back().topic != topic.name)) {
            gen::fetch_response::fetchable_topic_response tr;
            if (fctx.uses_topic_ids()) {
                tr.topic_id = topic.id;
            } else {
                tr.topic = topic.name;
            }
            resp.responses.push_back(std::move(tr));
        }
        gen::fetch_response::partition_data pd;
        pd.partition_index = pr.partition;
        // Kafka (maybeDownConvertStorageError): Fetch v5 and older clients may
        // not know KAFKA_STORAGE_ERROR; NOT_LEADER_OR_FOLLOWER makes them
        // refresh their metadata and retry.
        pd.error_code = it.error == error::kafka_storage_error && v <= 5 ? error::not_leader_or_follower : it.error;
        if (v >= 16 && (it.error == error::not_leader_or_follower || it.error == error::fenced_leader_epoch)) {
            // KIP-951: where to retry, without a Metadata round trip.
            pd.current_leader.leader_id = it.leader_id;
            pd.current_leader.leader_epoch = it.leader_epoch;
            if (it.leader_id >= 0 &&
                std::find(leaders_named.begin(), leaders_named.end(), it.leader_id) == leaders_named.end()) {
                leaders_named.push_back(it.leader_id);
            }
        }
        pd.high_watermark = it.error == error::none || it.error == error::offset_out_of_range ? it.hw : -1;
        pd.last_stable_offset = it.error == error::none || it.error == error::offset_out_of_range ? it.lso : -1;
        pd.log_start_offset = it.error == error::none || it.error == error::offset_out_of_range ? it.log_start : -1;
        if (it.diverging_epoch >= 0) {
            pd.diverging_epoch.epoch = it.diverging_epoch;
            pd.diverging_epoch.end_offset = it.diverging_end;
        }
        if (isolation == 1) {
            pd.aborted_transactions.emplace();
            for (const auto& a : it.aborted) {
                pd.aborted_transactions->push_back(
                    {.producer_id = a.producer_id, .first_offset = a.first_offset, .unknown_tagged_fields = {}});
            }
        } else {
            pd.aborted_transactions.reset();
        }
        if (it.chunks.size() == 1) {
            pd.records = std::move(it.chunks.front());
        } else if (it.chunks.empty()) {
            pd.records = shared_bytes();  // empty, never null
        } else {
            std::vector<uint8_t> joined;
            joined.reserve(it.bytes);
            for (const auto& c : it.chunks) joined.insert(joined.end(), c.data(), c.data() + c.size());
            pd.records = shared_bytes::adopt(std::move(joined));
        }
        fetched_bytes.inc(it.bytes);
        resp.responses.back().partitions.push_back(std::move(pd));
    }
    // KIP-951: the endpoints of the leaders named above, on this listener
    // (Kafka's getAliveBrokerNode: a fenced or unknown leader is named, not listed).
    const auto live = leaders_named.empty() ? std::vector<int32_t>{} : sh.owner.client_brokers(*image);
    for (int32_t node : leaders_named) {
        if (std::find(live.begin(), live.end(), node) == live.end()) continue;
        auto ep = sh.owner.endpoint_of(*image, node, ctx.conn.listener);
        if (!ep) continue;
        const cluster::broker_info* b = image->find_broker(node);
        resp.node_endpoints.push_back({.node_id = node,
                                       .host = ep->first,
                                       .port = ep->second,
                                       .rack = b ? b->rack : std::nullopt,
                                       .unknown_tagged_fields = {}});
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
