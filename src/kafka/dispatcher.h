// dispatcher: the Kafka request handler of one shard. Reads the request
// header, checks the API key and version the way Apache Kafka does, decodes
// the body with the generated codec and hands it to the API's handler (one
// file per API family: produce.cc, fetch.cc, metadata.cc, ...).
//
// What Kafka closes the connection for (an unknown API key, a version the
// broker does not serve, a header or body that does not decode), this closes
// too, logging the client's address and why. A too-new ApiVersions request
// gets the v0-shaped UNSUPPORTED_VERSION answer instead.
//
// Threading: one per shard; called on that shard.
#pragma once

#include "kafka/request.h"
#include "net/server.h"

namespace fjord::kafka {

struct shard_ctx;

// Handlers: decode `body` at ctx.version and answer. Each may call
// order.release() once nothing later on the connection depends on it.
using api_handler = net::awaitable<net::response> (*)(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                      net::request_order& order);

net::awaitable<net::response> handle_api_versions(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_metadata(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_produce(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_fetch(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_list_offsets(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_offset_for_leader_epoch(shard_ctx&, request_context&, shared_bytes,
                                                             net::request_order&);
net::awaitable<net::response> handle_init_producer_id(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_find_coordinator(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_join_group(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_sync_group(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_heartbeat(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_leave_group(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_offset_commit(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_offset_fetch(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_offset_delete(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_list_groups(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_describe_groups(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_delete_groups(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_consumer_group_heartbeat(shard_ctx&, request_context&, shared_bytes,
                                                              net::request_order&);
net::awaitable<net::response> handle_consumer_group_describe(shard_ctx&, request_context&, shared_bytes,
                                                             net::request_order&);
net::awaitable<net::response> handle_describe_cluster(shard_ctx&, request_context&, shared_bytes, net::request_order&);
net::awaitable<net::response> handle_describe_quorum(shard_ctx&, request_context&, shared_bytes, net::request_order&);
// Admin (admin_topics.cc, admin_configs.cc, admin_records.cc, acls.cc).
#define FJORD_HANDLER(name) \
    net::awaitable<net::response> name(shard_ctx&, request_context&, shared_bytes, net::request_order&);
FJORD_HANDLER(handle_create_topics)
FJORD_HANDLER(handle_delete_topics)
FJORD_HANDLER(handle_create_partitions)
FJORD_HANDLER(handle_elect_leaders)
FJORD_HANDLER(handle_describe_topic_partitions)
FJORD_HANDLER(handle_delete_records)
FJORD_HANDLER(handle_describe_log_dirs)
FJORD_HANDLER(handle_describe_producers)
FJORD_HANDLER(handle_describe_configs)
FJORD_HANDLER(handle_alter_configs)
FJORD_HANDLER(handle_incremental_alter_configs)
FJORD_HANDLER(handle_list_config_resources)
FJORD_HANDLER(handle_describe_acls)
FJORD_HANDLER(handle_create_acls)
FJORD_HANDLER(handle_delete_acls)
#undef FJORD_HANDLER

// The handler of an API key, or null when Fjord does not serve it (yet):
// such keys are not advertised.
api_handler find_handler(int16_t api_key);

class dispatcher final : public net::frame_handler {
public:
    explicit dispatcher(shard_ctx& sh) : sh_(sh) {}
    net::awaitable<net::response> handle(const net::connection_info& conn, shared_bytes frame,
                                         net::request_order& order) override;

private:
    shard_ctx& sh_;
};

// Logs and closes for a body that does not decode (Kafka closes too).
net::response undecodable(const request_context& ctx, protocol::errc e);

// Closes the connection without answering (logged by the caller).
inline net::response close_connection() {
    net::response r;
    r.close = true;
    return r;
}

}  // namespace fjord::kafka
