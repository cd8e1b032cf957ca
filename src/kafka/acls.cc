// DescribeAcls (29), CreateAcls (30), DeleteAcls (31): Fjord has no
// authorizer yet, so these answer SECURITY_DISABLED exactly as Kafka 4.4
// does without one (and Kafka advertises them all the same).
#include "kafka/dispatcher.h"
#include "kafka/errors.h"
#include "protocol/gen/create_acls.h"
#include "protocol/gen/delete_acls.h"
#include "protocol/gen/describe_acls.h"

namespace fjord::kafka {
namespace gen = protocol::gen;

net::awaitable<net::response> handle_describe_acls(shard_ctx&, request_context& ctx, shared_bytes body,
                                                   net::request_order&) {
    auto req = decode_request<gen::describe_acls_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::describe_acls_response resp;
    resp.error_code = error::security_disabled;
    resp.error_message = "No Authorizer is configured on the broker";
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_create_acls(shard_ctx&, request_context& ctx, shared_bytes body,
                                                 net::request_order&) {
    auto req = decode_request<gen::create_acls_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::create_acls_response resp;
    for (size_t i = 0; i < req->creations.size(); ++i) {
        gen::create_acls_response::acl_creation_result r;
        r.error_code = error::security_disabled;
        r.error_message = "No Authorizer is configured.";
        resp.results.push_back(std::move(r));
    }
    co_return encode_response(ctx, resp);
}

net::awaitable<net::response> handle_delete_acls(shard_ctx&, request_context& ctx, shared_bytes body,
                                                 net::request_order&) {
    auto req = decode_request<gen::delete_acls_request>(body, ctx.version);
    if (!req) co_return undecodable(ctx, req.error());
    gen::delete_acls_response resp;
    for (size_t i = 0; i < req->filters.size(); ++i) {
        gen::delete_acls_response::delete_acls_filter_result r;
        r.error_code = error::security_disabled;
        r.error_message = "No Authorizer is configured.";
        resp.filter_results.push_back(std::move(r));
    }
    co_return encode_response(ctx, resp);
}

}  // namespace fjord::kafka
