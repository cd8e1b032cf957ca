// group_coordinator: the classic consumer group protocol and committed
// offsets, for the groups whose `__consumer_offsets` partition this shard
// owns (group_partition() picks the partition as Kafka does; owner_shard()
// the shard).
//
// State lives in memory and every change that must survive is a record in
// the group's partition (group_records.h, Kafka's layout): offset commits,
// and the group's metadata when a generation's assignment is stored, when a
// group empties, and when a static member is replaced. A partition this shard
// starts to own is replayed from its log start before its groups are served
// (COORDINATOR_LOAD_IN_PROGRESS meanwhile), so a restart keeps every
// committed offset and the members of every stable group.
//
// Consumer-protocol groups (KIP-848, ConsumerGroupHeartbeat) share the
// offsets and the placement: member epochs, a target assignment computed
// by a server-side assignor (uniform or range) whenever the group epoch
// moves (members, subscriptions, regex matches, partition counts), and each
// member reconciled towards it (revoke first; take a partition only once
// its previous owner gave it up). Their state is written as Kafka 4.4's
// records (member metadata, group epoch, target assignment, current
// assignment) and replayed with the partition, so after a restart or a
// failover of the partition's leadership members keep their epochs and
// partitions (tests/cluster/failover_state_test.py).
//
// The classic state machine is Kafka's: Empty -> PreparingRebalance ->
// CompletingRebalance -> Stable (and Dead once deleted), with the KIP-394
// member id handshake, static membership (KIP-345), the initial rebalance
// delay and session, rebalance and pending-member timeouts, and the error
// codes Kafka returns in each state. As in Kafka, a join phase ends as soon
// as every member (and every pending id) has joined, whatever the state it
// started from; the initial rebalance ends when its delay does (0 included),
// pending ids or not.
//
// Threading: one per shard; every call on that shard. JoinGroup and
// SyncGroup calls wait (a coroutine suspended on an event) until their
// generation completes; shutdown() answers every waiter.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "net/asio.h"
#include "net/shard.h"
#include "protocol/gen/consumer_group_describe.h"
#include "protocol/gen/consumer_group_heartbeat.h"
#include "protocol/gen/delete_groups.h"
#include "protocol/gen/describe_groups.h"
#include "protocol/gen/heartbeat.h"
#include "protocol/gen/join_group.h"
#include "protocol/gen/leave_group.h"
#include "protocol/gen/list_groups.h"
#include "protocol/gen/offset_commit.h"
#include "protocol/gen/offset_delete.h"
#include "protocol/gen/offset_fetch.h"
#include "protocol/gen/sync_group.h"

namespace fjord::kafka {

struct shard_ctx;
struct group_state;
struct committed_offset;

inline constexpr std::string_view offsets_topic = "__consumer_offsets";

// The coordinator's answer for one group of an OffsetFetch: the group's
// error, or every requested (or, for a null topic list, every committed)
// partition by topic name.
struct fetched_offsets {
    int16_t error = 0;
    struct partition {
        int32_t index = 0;
        int64_t offset = -1;
        int32_t leader_epoch = -1;
        std::string metadata;
        int16_t error = 0;
    };
    std::vector<std::pair<std::string, std::vector<partition>>> topics;
};

// One partition of an OffsetCommit, resolved to its topic name (errors
// found by the handler, such as an unknown topic, are set already).
struct commit_item {
    std::string topic;
    int32_t partition = 0;
    int64_t offset = 0;
    int32_t leader_epoch = -1;
    std::optional<std::string> metadata;
    int16_t error = 0;
};

// Who is calling: the request's version and the client's id and address.
struct group_call {
    int16_t version = 0;
    std::string client_id;
    std::string client_host;  // as Kafka shows it: "/127.0.0.1"
};

class group_coordinator {
public:
    explicit group_coordinator(shard_ctx& sh);
    ~group_coordinator();

    // After every metadata image: starts loading the offsets partitions this
    // shard now owns.
    void image_applied();
    // Before the shard stops: answers every waiting call and refuses new ones.
    void shutdown();

    net::awaitable<protocol::gen::join_group_response> join(protocol::gen::join_group_request req, group_call call);
    net::awaitable<protocol::gen::sync_group_response> sync(protocol::gen::sync_group_request req, group_call call);
    net::awaitable<protocol::gen::heartbeat_response> heartbeat(protocol::gen::heartbeat_request req, group_call call);
    net::awaitable<protocol::gen::leave_group_response> leave(protocol::gen::leave_group_request req, group_call call);
    // Commits `items` (their error fields set on return).
    net::awaitable<int16_t> commit(std::string group_id, int32_t generation, std::string member_id,
                                   std::optional<std::string> instance_id, int64_t retention_ms, int16_t version,
                                   std::vector<commit_item>* items);
    // `topics` null: every committed offset of the group.
    fetched_offsets fetch(const std::string& group_id,
                          const std::optional<std::vector<std::pair<std::string, std::vector<int32_t>>>>& topics);
    std::vector<protocol::gen::list_groups_response::listed_group> list(const std::vector<std::string>& states,
                                                                        const std::vector<std::string>& types,
                                                                        int16_t* error);
    protocol::gen::describe_groups_response::described_group describe(const std::string& group_id, int16_t version);
    net::awaitable<int16_t> delete_group(std::string group_id);
    net::awaitable<protocol::gen::offset_delete_response> delete_offsets(protocol::gen::offset_delete_request req,
                                                                         group_call call);

    // The consumer group protocol (KIP-848).
    net::awaitable<protocol::gen::consumer_group_heartbeat_response> consumer_heartbeat(
        protocol::gen::consumer_group_heartbeat_request req, group_call call);
    protocol::gen::consumer_group_describe_response::described_group consumer_describe(const std::string& group_id);

    // Whether this shard serves `group_id` now (NOT_COORDINATOR or
    // COORDINATOR_LOAD_IN_PROGRESS otherwise); 0 when it does.
    int16_t serves(const std::string& group_id) const;

private:
    friend struct group_ops;
    friend struct consumer_ops;
    int16_t heartbeat_error(const protocol::gen::heartbeat_request& req);
    shard_ctx& sh_;
    std::map<std::string, std::unique_ptr<group_state>> groups_;
    std::set<int32_t> loaded_;   // offsets partitions served
    std::set<int32_t> loading_;  // being replayed
    bool stopped_ = false;
    std::unique_ptr<net::asio::steady_timer> timer_;  // the next deadline
    bool ticking_ = false;
    int64_t next_retention_check_ = 0;
    uint64_t member_seq_ = 0;
};

}  // namespace fjord::kafka
