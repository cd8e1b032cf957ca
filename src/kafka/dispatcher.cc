#include "kafka/dispatcher.h"

#include <chrono>
#include <regex>

#include "base/logger.h"
#include "base/metrics.h"
#include "kafka/broker.h"
#include "kafka/errors.h"
#include "protocol/gen/api_versions.h"
#include "protocol/gen/describe_cluster.h"
#include "protocol/gen/request_header.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

namespace {
counter requests_closed("fjord_requests_rejected_total{reason=\"closed\"}",
                        "Requests answered by closing the connection, as Kafka does (bad header, unknown API or "
                        "version, undecodable body)");

struct request_counters {
    std::vector<std::unique_ptr<counter>> by_key;
    request_counters() {
        for (const auto& a : gen::all_apis()) {
            if (a.key >= static_cast<int16_t>(by_key.size())) by_key.resize(static_cast<size_t>(a.key) + 1);
            by_key[static_cast<size_t>(a.key)] = std::make_unique<counter>(
                fmt::format("fjord_requests_total{{api=\"{}\"}}", a.name), "Requests received, by API");
        }
    }
};
request_counters& counters() {
    static request_counters c;
    return c;
}
[[maybe_unused]] const bool counters_registered = (counters(), true);

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The lowest metadata.version Kafka 4 accepts (3.3-IV3).
constexpr int16_t metadata_version_level = 7;

bool valid_software_field(const std::string& s) {
    static const std::regex re("[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?");
    return std::regex_match(s, re);
}
}  // namespace

api_handler find_handler(int16_t api_key) {
    switch (api_key) {
        case 0: return handle_produce;
        case 1: return handle_fetch;
        case 2: return handle_list_offsets;
        case 3: return handle_metadata;
        case 8: return handle_offset_commit;
        case 9: return handle_offset_fetch;
        case 10: return handle_find_coordinator;
        case 11: return handle_join_group;
        case 12: return handle_heartbeat;
        case 13: return handle_leave_group;
        case 14: return handle_sync_group;
        case 15: return handle_describe_groups;
        case 16: return handle_list_groups;
        case 18: return handle_api_versions;
        case 22: return handle_init_producer_id;
        case 23: return handle_offset_for_leader_epoch;
        case 42: return handle_delete_groups;
        case 47: return handle_offset_delete;
        case 55: return handle_describe_quorum;
        case 60: return handle_describe_cluster;
        case 68: return handle_consumer_group_heartbeat;
        case 69: return handle_consumer_group_describe;
        // Admin.
        case 19: return handle_create_topics;
        case 20: return handle_delete_topics;
        case 21: return handle_delete_records;
        case 29: return handle_describe_acls;
        case 30: return handle_create_acls;
        case 31: return handle_delete_acls;
        case 32: return handle_describe_configs;
        case 33: return handle_alter_configs;
        case 35: return handle_describe_log_dirs;
        case 37: return handle_create_partitions;
        case 43: return handle_elect_leaders;
        case 44: return handle_incremental_alter_configs;
        case 61: return handle_describe_producers;
        case 74: return handle_list_config_resources;
        case 75: return handle_describe_topic_partitions;
        default: return nullptr;
    }
}

net::awaitable<net::response> dispatcher::handle(const net::connection_info& conn, shared_bytes frame,
                                                 net::request_order& order) {
    if (frame.size() < 8) {
        requests_closed.inc();
        log_warn("{}: request of {} bytes is too short for a request header; closing the connection", conn.peer,
                 frame.size());
        co_return close_connection();
    }
    int16_t key = static_cast<int16_t>(load_be<uint16_t>(frame.data()));
    int16_t version = static_cast<int16_t>(load_be<uint16_t>(frame.data() + 2));
    const gen::api_info* api = gen::find_api(key);
    if (!api) {
        requests_closed.inc();
        log_warn("{}: unknown API key {}; closing the connection", conn.peer, key);
        co_return close_connection();
    }
    if (static_cast<size_t>(key) < counters().by_key.size() && counters().by_key[static_cast<size_t>(key)]) {
        counters().by_key[static_cast<size_t>(key)]->inc();
    }
    const bool too_new_api_versions =
        key == gen::api_versions_request::api_key && (version > api->max_version || version < api->min_version);
    // The header version follows the request version, known or not (v127 of
    // ApiVersions has header v2, v-1 header v1), as in Kafka.
    int16_t header_version = gen::request_header_version(*api, version);
    protocol::reader r(frame);
    gen::request_header h;
    h.decode(r, header_version);
    if (!r.ok()) {
        requests_closed.inc();
        log_warn("{}: {} v{} request header does not decode ({}); closing the connection", conn.peer, api->name,
                 version, protocol::describe(r.error()));
        co_return close_connection();
    }
    request_context ctx{conn, *api, version, h.correlation_id, h.client_id, wall_ms()};

    if (too_new_api_versions) {
        // Kafka's answer: v0 body, error UNSUPPORTED_VERSION, only ApiVersions' own range.
        gen::api_versions_response resp;
        resp.error_code = error::unsupported_version;
        resp.api_keys.push_back({.api_key = api->key,
                                 .min_version = api->advertised_min,
                                 .max_version = api->advertised_max,
                                 .unknown_tagged_fields = {}});
        co_return encode_response(ctx, resp, 0);
    }
    api_handler handler = find_handler(key);
    // Produce v0-2 are advertised (librdkafka keeps its features) but, as in
    // Kafka 4, a request at those versions closes the connection.
    const bool removed = key == 0 && version < 3;
    if (!handler || removed || version < api->advertised_min || version > api->advertised_max) {
        requests_closed.inc();
        log_warn("{}: {} v{} is not served by this broker (client {}); closing the connection", conn.peer, api->name,
                 version, h.client_id.value_or("null"));
        co_return close_connection();
    }
    // Metadata changes are the active controller's: elsewhere they go to it.
    if (is_controller_api(key) && !sh_.owner.active_controller()) {
        auto forwarding = sh_.owner.forward(conn, frame);
        auto forwarded = co_await std::move(forwarding);
        if (forwarded) co_return std::move(*forwarded);
    }
    auto body = frame.slice(r.offset(), r.remaining());
    auto answer = handler(sh_, ctx, std::move(body), order);
    co_return co_await std::move(answer);
}

// Logs and closes for a body that does not decode (Kafka closes too).
net::response undecodable(const request_context& ctx, protocol::errc e) {
    requests_closed.inc();
    log_warn("{}: {} v{} request body does not decode ({}); closing the connection", ctx.conn.peer, ctx.api.name,
             ctx.version, protocol::describe(e));
    return close_connection();
}

net::awaitable<net::response> handle_api_versions(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                  net::request_order&) {
    auto req = decode_request<gen::api_versions_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::api_versions_response resp;
    if (ctx.version >= 3 &&
        (!valid_software_field(req->client_software_name) || !valid_software_field(req->client_software_version))) {
        resp.error_code = error::invalid_request;
        co_return encode_response(ctx, resp);
    }
    // v5 (KIP-1102): a client that knows another cluster must bootstrap again.
    if (ctx.version >= 5 && req->cluster_id && *req->cluster_id != sh.owner.cluster_id()) {
        resp.error_code = error::rebootstrap_required;
        co_return encode_response(ctx, resp);
    }
    // Features (KIP-584): metadata.version and group.version (KIP-848);
    // transaction.version stays unfinalized until transactions are built. Below
    // v4, a feature whose minimum is 0 would break older Java clients.
    resp.supported_features.push_back({.name = "metadata.version",
                                       .min_version = metadata_version_level,
                                       .max_version = metadata_version_level,
                                       .unknown_tagged_fields = {}});
    // group.version 1: the consumer group protocol (KIP-848) is served.
    resp.supported_features.push_back(
        {.name = "group.version", .min_version = 1, .max_version = 1, .unknown_tagged_fields = {}});
    resp.finalized_features_epoch = std::max<int64_t>(sh.image->last_offset(), 0);
    resp.finalized_features.push_back({.name = "metadata.version",
                                       .max_version_level = metadata_version_level,
                                       .min_version_level = metadata_version_level,
                                       .unknown_tagged_fields = {}});
    resp.finalized_features.push_back(
        {.name = "group.version", .max_version_level = 1, .min_version_level = 1, .unknown_tagged_fields = {}});
    for (const auto& a : gen::all_apis()) {
        if (a.advertised_min < 0 || !find_handler(a.key)) continue;
        resp.api_keys.push_back({.api_key = a.key,
                                 .min_version = a.advertised_min,
                                 .max_version = a.advertised_max,
                                 .unknown_tagged_fields = {}});
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_describe_cluster(shard_ctx& sh, request_context& ctx, shared_bytes body,
                                                      net::request_order&) {
    auto req = decode_request<gen::describe_cluster_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    const auto& cfg = sh.owner.config();
    gen::describe_cluster_response resp;
    resp.endpoint_type = req->endpoint_type;
    if (req->endpoint_type != 1) {
        resp.error_code = error::unsupported_endpoint_type;
        resp.error_message = "The broker does not support endpoint type " + std::to_string(req->endpoint_type);
        co_return encode_response(ctx, resp);
    }
    resp.cluster_id = sh.owner.cluster_id();
    const auto img = sh.image;
    const int32_t leader = sh.owner.quorum_leader();
    resp.controller_id = img->find_broker(leader) ? leader : cfg.node_id;
    for (int32_t node : sh.owner.client_brokers(*img)) {
        auto ep = sh.owner.endpoint_of(*img, node, ctx.conn.listener);
        if (!ep) continue;
        gen::describe_cluster_response::describe_cluster_broker b;
        b.broker_id = node;
        b.host = ep->first;
        b.port = ep->second;
        if (const auto* info = img->find_broker(node)) b.rack = info->rack;
        resp.brokers.push_back(std::move(b));
    }
    if (req->include_cluster_authorized_operations) resp.cluster_authorized_operations = cluster_operations_all;
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
