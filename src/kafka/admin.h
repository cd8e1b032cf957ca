// Helpers shared by the admin handlers (admin_topics.cc, admin_configs.cc,
// admin_records.cc): running a controller operation from any shard, and the
// Kafka error code of a cluster error.
//
// Threading: called on the request's shard; the controller part runs on shard 0.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "cluster/controller.h"
#include "kafka/broker.h"

namespace fjord::kafka {

using controller_done = std::function<void(result<void, cluster::errc>, cluster::controller::image_ptr)>;
using controller_op = std::function<void(cluster::controller&, controller_done)>;

// Starts `op` on shard 0 and resolves with its outcome once the image it
// produced has been applied on the calling shard (prompt visibility).
net::awaitable<std::optional<cluster::errc>> run_controller_op(shard_ctx& sh, controller_op op);

int16_t kafka_error_of(cluster::errc e);

// Kafka's text for an invalid topic name ("" when the name is valid).
std::string invalid_topic_name_message(const std::string& name);

}  // namespace fjord::kafka
