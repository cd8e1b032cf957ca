// Produce (API 0). The connection's shard resolves topics, then each owning
// shard validates and appends its partitions' batches (in request order per
// connection: the next request starts only once these appends are done),
// and the response waits until the appends are acknowledged under each
// topic's durability mode. acks=0 gets no response (and a closed connection
// on error, as Kafka does).
#include "protocol/gen/produce.h"
#include "base/logger.h"
#include "base/metrics.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "kafka/produce_validation.h"
#include "net/when_all.h"
#include "protocol/record_batch.h"

namespace fjord::kafka {
namespace gen = protocol::gen;
namespace asio = net::asio;

namespace {
counter produced_bytes("fjord_produce_bytes_total", "Record batch bytes appended by Produce");
counter produced_records("fjord_produce_records_total", "Records appended by Produce");
counter produce_errors("fjord_produce_partition_errors_total", "Produce partitions answered with an error");

// When an append may be acknowledged; lives on the owning shard.
struct ack_state {
    explicit ack_state(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    int err = 0;
};

struct produce_item {
    size_t topic = 0;  // index in the response
    size_t slot = 0;   // index in that topic's partition_responses
    storage::topic_partition tp;
    const shared_bytes* records = nullptr;  // null: the request had none
    unsigned shard = 0;
    // Outcome.
    int16_t error = error::none;
    std::optional<std::string> message;
    std::vector<record_error> record_errors;
    int64_t base_offset = -1;
    int64_t append_time = -1;
    int64_t log_start = -1;
    std::shared_ptr<ack_state> ack;
    // The partition in the request's image (null for an unknown one): its
    // leader goes into a NOT_LEADER_OR_FOLLOWER answer (KIP-951).
    const cluster::partition_info* info = nullptr;
};

int16_t storage_error_code(storage::errc e) {
    switch (e) {
        case storage::errc::no_space:
        case storage::errc::io_error:
        case storage::errc::log_offline:
        case storage::errc::corrupt_log:
        case storage::errc::too_many_open_files: return error::kafka_storage_error;
        case storage::errc::invalid_batch: return error::corrupt_message;
        default: return error::unknown_server_error;
    }
}

enum class sequence_verdict : uint8_t { ok, duplicate, failed };

bool in_sequence(int32_t last, int32_t next) {
    return next == (last == INT32_MAX ? 0 : last + 1);
}

sequence_verdict check_sequence(partition& p, const produce_check& c, produce_item& it) {
    const storage::producer_entry* e = p.log().producers().find(c.producer_id);
    if (!e || e->epoch < 0) return sequence_verdict::ok;  // unknown producer: any sequence starts it
    if (c.producer_epoch < e->epoch) {
        it.error = error::invalid_producer_epoch;
        return sequence_verdict::failed;
    }
    if (c.producer_epoch > e->epoch) {
        if (c.base_sequence != 0) {
            it.error = error::out_of_order_sequence_number;
            return sequence_verdict::failed;
        }
        return sequence_verdict::ok;
    }
    const int64_t last_seq64 = static_cast<int64_t>(c.base_sequence) + c.last_offset_delta;
    const int32_t last_seq = static_cast<int32_t>(last_seq64 > INT32_MAX ? last_seq64 - INT32_MAX - 1 : last_seq64);
    for (int i = 0; i < e->count; ++i) {
        const auto& b = e->batches[static_cast<size_t>(i)];
        if (b.first_seq == c.base_sequence && b.last_seq == last_seq) {
            it.base_offset = b.first_offset;
            it.append_time = -1;
            return sequence_verdict::duplicate;
        }
    }
    const auto* last = e->last();
    if (last && !in_sequence(last->last_seq, c.base_sequence)) {
        it.error = error::out_of_order_sequence_number;
        return sequence_verdict::failed;
    }
    return sequence_verdict::ok;
}

void append_one(shard_ctx& sh, produce_item& it, int16_t acks, int64_t now) {
    partition* p = sh.find(it.tp);
    if (!p) {
        it.error = missing_partition_error(sh.logs.get(), it.tp);
        return;
    }
    it.log_start = p->log_start_offset();
    if (p->offline() || p->durability().error() != 0) {
        it.error = error::kafka_storage_error;
        return;
    }
    replica::replica* rep = p->replica();
    if (rep) {
        // Only the Raft leader appends; a full backlog (followers far
        // behind) pushes back with a retriable error.
        if (auto why = rep->refuse_append()) {
            it.error = *why == raft::errc::backlog_full ? error::not_enough_replicas : error::not_leader_or_follower;
            return;
        }
    }
    // acks=all needs min.insync.replicas in sync (an unreplicated
    // partition has one replica).
    const size_t in_sync = rep ? rep->isr().size() : 1;
    if (acks == -1 && static_cast<size_t>(std::max(p->config().min_insync_replicas, 1)) > in_sync) {
        it.error = error::not_enough_replicas;
        return;
    }
    if (!it.records || it.records->empty()) {
        it.error = error::invalid_record;
        it.log_start = -1;
        return;
    }
    auto name = fmt::format("{}-{}", it.tp.topic, it.tp.partition);
    auto check = validate_produce_records(*it.records, p->config(), now, name, sh.scratch);
    if (check.error != error::none) {
        it.error = check.error;
        if (!check.message.empty()) it.message = std::move(check.message);
        it.record_errors = std::move(check.record_errors);
        if (!check.reports_log_start) it.log_start = -1;
        return;
    }
    // Idempotence (Kafka's producer append checks): a retried batch is
    // acknowledged with the offsets it got the first time; a stale epoch or
    // a sequence gap fails.
    if (check.producer_id >= 0) {
        switch (check_sequence(*p, check, it)) {
            case sequence_verdict::ok: break;
            case sequence_verdict::failed: return;
            case sequence_verdict::duplicate: {
                if (acks != 0) it.ack = std::make_shared<ack_state>(sh.owner.shards().context(sh.id).get_executor());
                if (rep) {
                    // Acknowledged once the log through its end is, as a new append would be.
                    rep->wait(p->log_end_offset() - 1, acks == -1, [ack = it.ack](int err) {
                        if (!ack) return;
                        ack->err = err;
                        ack->done = true;
                        ack->ev.notify();
                    });
                    return;
                }
                p->durability().flush([ack = it.ack](int err) {
                    if (!ack) return;
                    ack->err = err;
                    ack->done = true;
                    ack->ev.notify();
                });
                return;
            }
        }
    }
    // The request frame belongs to this request alone: the broker-owned
    // fields are rewritten in place, and the bytes go to the page cache
    // without another copy.
    std::span<uint8_t> bytes = check.rebuilt
                                   ? std::span<uint8_t>(*check.rebuilt)
                                   : std::span<uint8_t>(const_cast<uint8_t*>(it.records->data()), it.records->size());
    storage::append_options o;
    o.now_ms = now;
    o.leader_epoch = p->leader_epoch();  // the Raft term when replicated
    auto appended = p->log().append(bytes, o);
    if (!appended) {
        it.error = storage_error_code(appended.error());
        log_warn("partition {}: append failed: {}", name, storage::describe(appended.error()));
        return;
    }
    it.base_offset = appended->first_offset;
    it.append_time = appended->append_time_ms;
    produced_bytes.inc(bytes.size());
    produced_records.inc(static_cast<uint64_t>(check.records));
    if (acks != 0) it.ack = std::make_shared<ack_state>(sh.owner.shards().context(sh.id).get_executor());
    if (rep) {
        // Raft replicates it and makes it durable: acks=all waits for a
        // majority, acks=1 for this replica's own flush.
        const auto* payload = check.rebuilt ? nullptr : it.records;
        rep->appended(appended->first_offset, static_cast<int32_t>(appended->last_offset - appended->first_offset + 1),
                      payload ? *payload : shared_bytes::copy_of(bytes));
        rep->wait(appended->last_offset, acks == -1, [p, ack = it.ack](int err) {
            if (ack) {
                ack->err = err;
                ack->done = true;
                ack->ev.notify();
            }
            p->wake_waiters();
        });
        return;
    }
    p->durability().appended(appended->last_offset, check.records, now, [p, ack = it.ack](int err) {
        if (ack) {
            ack->err = err;
            ack->done = true;
            ack->ev.notify();
        }
        p->wake_waiters();
    });
    p->wake_waiters();  // write caching: the high watermark is the log end
}

net::awaitable<void> append_on_shard(shard_ctx* sh, std::vector<produce_item*> items, int16_t acks, int64_t now) {
    for (auto* it : items) append_one(*sh, *it, acks, now);
    co_return;
}

net::awaitable<void> await_acks(std::vector<produce_item*> items) {
    for (auto* it : items) {
        if (!it->ack) continue;
        while (!it->ack->done) co_await it->ack->ev.wait();
        if (it->ack->err != 0) {
            it->error = it->ack->err == -ECANCELED ? error::not_leader_or_follower : error::kafka_storage_error;
            it->base_offset = -1;
        }
        it->ack.reset();  // released on its own shard
    }
}
}  // namespace

net::awaitable<net::response> handle_produce(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                             net::request_order& order) {
    auto req = decode_request<gen::produce_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const int16_t v = ctx.version;
    const int16_t acks = req->acks;
    auto image = sh.image;
    const unsigned n = sh.owner.shards().count();

    gen::produce_response resp;
    std::vector<produce_item> items;
    size_t total = 0;
    for (const auto& t : req->topic_data) total += t.partition_data.size();
    items.reserve(total);
    const bool bad_acks = acks != 0 && acks != 1 && acks != -1;
    // Transactional batches need a transactional id (Kafka's authorization
    // of it fails for a null id): the whole request fails.
    bool unauthorized_txn = false;
    if (!req->transactional_id) {
        for (const auto& t : req->topic_data) {
            for (const auto& pd : t.partition_data) {
                if (pd.records && pd.records->size() > protocol::batch_attributes_offset + 1 &&
                    (*pd.records)[16] == 2 &&
                    (load_be<uint16_t>(pd.records->data() + protocol::batch_attributes_offset) &
                     protocol::attr::transactional)) {
                    unauthorized_txn = true;
                }
            }
        }
    }
    for (const auto& t : req->topic_data) {
        gen::produce_response::topic_produce_response tr;
        const cluster::topic_info* info = nullptr;
        if (v >= 13) {
            tr.topic_id = t.topic_id;
            info = image->find_topic(t.topic_id);
        } else {
            tr.name = t.name;
            info = image->find_topic(t.name);
        }
        const size_t topic_index = resp.responses.size();
        for (const auto& pd : t.partition_data) {
            gen::produce_response::partition_produce_response pr;
            pr.index = pd.index;
            produce_item it;
            it.topic = topic_index;
            it.slot = tr.partition_responses.size();
            if (bad_acks) {
                it.error = error::invalid_required_acks;
            } else if (unauthorized_txn) {
                it.error = error::transactional_id_authorization_failed;
            } else if (!info) {
                it.error = v >= 13 ? error::unknown_topic_id : error::unknown_topic_or_partition;
            } else if (pd.index < 0 || static_cast<size_t>(pd.index) >= info->partitions.size()) {
                it.error = error::unknown_topic_or_partition;
            } else if (info->partitions[static_cast<size_t>(pd.index)].leader != sh.owner.config().node_id) {
                it.error = error::not_leader_or_follower;
                it.info = &info->partitions[static_cast<size_t>(pd.index)];
            } else if (info->name == offsets_topic) {
                // Only the coordinator writes its internal topic (Kafka: "Cannot append to internal topic").
                it.error = error::invalid_topic_exception;
            } else {
                it.tp = storage::topic_partition{info->name, pd.index};
                it.info = &info->partitions[static_cast<size_t>(pd.index)];
                it.records = pd.records ? &*pd.records : nullptr;
                it.shard = owner_shard(info->name, pd.index, n);
            }
            items.push_back(std::move(it));
            tr.partition_responses.push_back(std::move(pr));
        }
        resp.responses.push_back(std::move(tr));
    }

    // Appends, grouped by owning shard, concurrently across shards.
    std::vector<std::vector<produce_item*>> by_shard(n);
    for (auto& it : items) {
        if (it.error == error::none) by_shard[it.shard].push_back(&it);
    }
    {
        std::vector<net::awaitable<void>> tasks;
        for (unsigned s = 0; s < n; ++s) {
            if (by_shard[s].empty()) continue;
            auto* owner = &sh.owner.shard(s);
            tasks.push_back(sh.owner.shards().invoke_on(s, [owner, group = by_shard[s], acks, now = ctx.now_ms] {
                return append_on_shard(owner, group, acks, now);
            }));
        }
        if (!tasks.empty()) {
            auto all = net::when_all(std::move(tasks));
            co_await std::move(all);
        }
    }
    // Nothing later on this connection depends on the acknowledgements.
    order.release();

    if (acks != 0) {
        std::vector<net::awaitable<void>> tasks;
        for (unsigned s = 0; s < n; ++s) {
            std::vector<produce_item*> waiting;
            for (auto* it : by_shard[s]) {
                if (it->ack) waiting.push_back(it);
            }
            if (waiting.empty()) continue;
            tasks.push_back(sh.owner.shards().invoke_on(s, [w = std::move(waiting)] { return await_acks(w); }));
        }
        if (!tasks.empty()) {
            auto all = net::when_all(std::move(tasks));
            co_await std::move(all);
        }
    }

    bool any_error = false;
    std::vector<int32_t> leaders_named;
    for (auto& it : items) {
        auto& pr = resp.responses[it.topic].partition_responses[it.slot];
        pr.error_code = it.error;
        if (it.error == error::not_leader_or_follower && v >= 10 && it.info && it.info->leader >= 0 &&
            it.info->leader != sh.owner.config().node_id) {
            // KIP-951: the leader the metadata names, so that the client
            // need not ask Metadata before retrying.
            pr.current_leader.leader_id = it.info->leader;
            pr.current_leader.leader_epoch = it.info->leader_epoch;
            if (std::find(leaders_named.begin(), leaders_named.end(), it.info->leader) == leaders_named.end())
                leaders_named.push_back(it.info->leader);
        }
        if (it.error != error::none) {
            any_error = true;
            produce_errors.inc();
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = it.log_start;
            if (v >= 8) {
                pr.error_message = it.message;
                for (auto& re : it.record_errors) {
                    pr.record_errors.push_back({.batch_index = re.batch_index,
                                                .batch_index_error_message = std::move(re.message),
                                                .unknown_tagged_fields = {}});
                }
            }
            continue;
        }
        pr.base_offset = it.base_offset;
        pr.log_append_time_ms = it.append_time;
        pr.log_start_offset = it.log_start;
    }
    for (int32_t node : leaders_named) {
        auto ep = sh.owner.endpoint_of(*image, node, ctx.conn.listener);
        if (!ep) continue;
        const cluster::broker_info* b = image->find_broker(node);
        resp.node_endpoints.push_back({.node_id = node,
                                       .host = ep->first,
                                       .port = ep->second,
                                       .rack = b ? b->rack : std::nullopt,
                                       .unknown_tagged_fields = {}});
    }
    if (acks == 0) {
        if (any_error) {
            log_info("{}: acks=0 produce failed for some partitions; closing the connection so the client notices",
                     ctx.conn.peer);
            co_return close_connection();
        }
        co_return net::response{};
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
