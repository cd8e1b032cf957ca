// FindCoordinator (API 10). There is no group or transaction coordinator
// yet, so every key gets COORDINATOR_NOT_AVAILABLE, the answer Kafka gives
// while a coordinator is loading (clients retry). It is served, and
// advertised from v0, because librdkafka enables LZ4 only when the broker
// lists FindCoordinator v0 (its feature table ties the two to Kafka 0.8.2):
// without it every librdkafka producer silently sends LZ4 batches
// uncompressed.
#include "protocol/gen/find_coordinator.h"
#include "base/logger.h"
#include "kafka/broker.h"
#include "kafka/dispatcher.h"
#include "kafka/errors.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

net::awaitable<net::response> handle_find_coordinator(shard_ctx&, request_context& ctx, shared_bytes body,
                                                      net::request_order&) {
    auto req = decode_request<gen::find_coordinator_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::find_coordinator_response resp;
    const std::string message = "The coordinator is not available.";
    if (ctx.version >= 4) {
        for (const auto& key : req->coordinator_keys) {
            gen::find_coordinator_response::coordinator c;
            c.key = key;
            c.node_id = -1;
            c.host = "";
            c.port = -1;
            c.error_code = error::coordinator_not_available;
            c.error_message = message;
            resp.coordinators.push_back(std::move(c));
        }
    } else {
        resp.error_code = error::coordinator_not_available;
        resp.error_message = message;
        resp.node_id = -1;
        resp.host = "";
        resp.port = -1;
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
