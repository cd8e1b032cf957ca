// InitProducerId (API 22) for idempotent producers: a new producer id, epoch
// 0. Ids come from blocks the controller makes durable in the metadata log
// (never handed out twice, across restarts); shard 0 keeps the current block.
// Transactional ids need the transaction coordinator, which this broker
// does not have yet: they get COORDINATOR_NOT_AVAILABLE.
#include "protocol/gen/init_producer_id.h"
#include "base/logger.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

// Shard 0: the next id of the current block, taking a new block when empty.
net::awaitable<int64_t> broker::next_producer_id(broker* self) {
    while (self->producer_ids_next_ >= self->producer_ids_end_) {
        if (self->producer_ids_waiting_) {
            // Another request is taking a block: wait for it.
            co_await self->producer_ids_ready_->wait();
            continue;
        }
        self->producer_ids_waiting_ = true;
        auto taking = allocate_producer_ids(self);
        auto first = co_await std::move(taking);
        self->producer_ids_waiting_ = false;
        self->producer_ids_ready_->notify();
        if (!first) {
            log_error("producer ids: the controller did not give a new block: {}", cluster::describe(first.error()));
            co_return -1;
        }
        self->producer_ids_next_ = *first;
        self->producer_ids_end_ = *first + producer_id_block;
    }
    co_return self->producer_ids_next_++;
}

net::awaitable<net::response> handle_init_producer_id(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                      net::request_order&) {
    auto req = decode_request<gen::init_producer_id_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::init_producer_id_response resp;
    if (req->transactional_id) {
        log_warn("{}: InitProducerId for transactional id '{}': transactions are not supported yet", ctx.conn.peer,
                 *req->transactional_id);
        resp.error_code = error::coordinator_not_available;
        co_return encode_response(ctx, resp);
    }
    auto* b = &sh.owner;
    auto task = b->shards().invoke_on(0, [b] { return broker::next_producer_id(b); });
    auto id = co_await std::move(task);
    if (id < 0) {
        resp.error_code = error::coordinator_not_available;
        co_return encode_response(ctx, resp);
    }
    resp.producer_id = id;
    resp.producer_epoch = 0;
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
