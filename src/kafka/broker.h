// broker: one Fjord node. Wires the shards, their partitions and logs, the
// cluster metadata (on shard 0), the Kafka listener and the HTTP endpoint.
//
// Partition ownership: partition p of topic t lives on shard
// owner_shard(t, p) (a stable hash, so a restart with the same --smp puts
// every partition back where its files were checkpointed). A request that
// reaches shard A for a partition of shard B is forwarded to B
// (shard_set::invoke_on) and answered from A.
//
// Metadata: the controller (shard 0) appends changes to the metadata log;
// each new image is published to every shard in order, and each shard
// creates (or drops) the partitions it owns. A shard only ever reads its own
// copy of the image pointer.
//
// Threading: shard_ctx is touched only by its own shard. Lifecycle: create()
// (config checked), start() (opens everything, binds, serves), stop() (from
// any thread: stops accepting, finishes requests, flushes logs, writes the
// clean-shutdown markers), wait().
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "cluster/controller.h"
#include "kafka/config.h"
#include "kafka/fetch_session.h"
#include "kafka/group_coordinator.h"
#include "kafka/partition.h"
#include "net/blocking_pool.h"
#include "net/server.h"
#include "net/shard.h"
#include "replica/replicas.h"
#include "storage/io_engine.h"
#include "storage/log_manager.h"

#include <future>

namespace fjord::cluster {
class raft_metadata_log;
}
namespace fjord::rpc {
class transport;
namespace gen {
struct broker_registration_request;
struct broker_registration_response;
struct broker_heartbeat_request;
struct broker_heartbeat_response;
}  // namespace gen
}  // namespace fjord::rpc

namespace fjord::kafka {

class broker;
class dispatcher;

unsigned owner_shard(std::string_view topic, int32_t partition, unsigned shards);

// This node keeps a replica of `p`.
bool hosts(const cluster::partition_info& p, int32_t node);

// Producer ids are handed out in blocks of this many per node.
inline constexpr int64_t producer_id_block = 1000;

// Kafka requests only the active controller serves (forwarded to it).
bool is_controller_api(int16_t api_key);

// Runs `fn` on `ctx`'s thread and waits for it (start-up and shutdown only).
template <typename F>
auto run_on(net::asio::io_context& ctx, F fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto fut = task.get_future();
    net::asio::post(ctx, [&task] { task(); });
    return fut.get();
}

// What one shard owns.
struct shard_ctx {
    shard_ctx(broker& b, unsigned id);
    ~shard_ctx();
    broker& owner;
    unsigned id;
    std::unique_ptr<storage::log_manager> logs;
    std::map<storage::topic_partition, std::unique_ptr<partition>> partitions;
    std::shared_ptr<const cluster::metadata_image> image;
    std::unique_ptr<net::event> image_advanced;  // a newer image was applied here
    std::unique_ptr<fetch_session_cache> sessions;
    std::unique_ptr<dispatcher> handler;
    std::unique_ptr<group_coordinator> groups;  // the groups of this shard's __consumer_offsets partitions
    bool stopping = false;
    // Background work on this shard (housekeeping, a cleaning, a checkpoint).
    int background = 0;
    bool cleaning = false;
    bool checkpointing = false;
    std::unique_ptr<storage::compactor> cleaner;  // used by one blocking-pool task at a time
    // The Raft groups of this shard's replicated partitions (null in a
    // quorum of one: nothing is replicated there).
    std::unique_ptr<replica::shard_replicas> replicas;
    bool leader_report_in_flight = false;
    std::vector<uint8_t> scratch;  // decompression buffer of produce validation

    partition* find(const storage::topic_partition& tp) {
        auto it = partitions.find(tp);
        return it == partitions.end() ? nullptr : it->second.get();
    }
    // Applies a newer image: creates and drops this shard's partitions.
    void apply_image(std::shared_ptr<const cluster::metadata_image> img);
    // Gives a new replicated partition its Raft group (replication.cc).
    void attach_replica(const storage::topic_partition& tp, partition& p, const protocol::uuid& topic_id,
                        const cluster::partition_info& info);
    // Retires the partitions (and leftover logs) of topics `img` no longer has.
    void drop_deleted(const cluster::metadata_image& img);
};

class broker {
public:
    static result<std::unique_ptr<broker>, std::string> create(broker_config cfg);
    ~broker();

    result<void, std::string> start();
    // Any thread (not a signal handler).
    void stop();
    // Blocks until stop() has finished.
    void wait();

    const broker_config& config() const { return cfg_; }
    net::shard_set& shards() { return *shards_; }
    shard_ctx& shard(unsigned i) { return *ctx_[i]; }
    storage::io_engine& io() { return *io_; }
    // The blocking-work pool (one thread: tasks run in submission order, so
    // checkpoint writes prepared in order land in order).
    net::blocking_pool& pool() { return *pool_; }
    // Shard 0 only.
    cluster::controller& controller() { return *controller_; }
    // The first listener's bound port (0 before start).
    uint16_t port() const { return servers_.empty() ? 0 : servers_.front()->port(); }
    // Every listener's bound port, in `listeners` order.
    std::vector<uint16_t> ports() const {
        std::vector<uint16_t> out;
        for (const auto& s : servers_) out.push_back(s->port());
        return out;
    }
    // What Metadata tells a client connected through `listener`: the
    // advertised listener of the same name (else the first), with the bound
    // port when the advertised one is 0.
    std::pair<std::string, int32_t> advertised_for(std::string_view listener) const;
    // Where clients reach `node` through `listener`: this node's advertised
    // listener, another broker's registered endpoint of the same name (else
    // its first); nullopt for a node the image does not know.
    std::optional<std::pair<std::string, int32_t>> endpoint_of(const cluster::metadata_image& img, int32_t node,
                                                               std::string_view listener) const;
    // The brokers clients may use (unfenced), in node order.
    std::vector<int32_t> client_brokers(const cluster::metadata_image& img) const;
    uint16_t http_port() const { return http_port_; }
    int64_t started_ms() const { return started_ms_; }

    // The cluster id (fixed at start).
    const std::string& cluster_id() const { return cluster_id_; }

    // ElectLeaders (PREFERRED): asks node `leader`, here or elsewhere, to hand
    // each partition to its preferred replica (any shard). One Kafka error
    // code per partition, in order (elect_leaders.cc).
    using partition_ref = std::pair<protocol::uuid, int32_t>;
    net::awaitable<std::vector<int16_t>> elect_preferred(int32_t leader, std::vector<partition_ref> parts);

    // Creates topics through the active controller, here or elsewhere (any
    // shard); resolves once the new topics are in the calling shard's image.
    net::awaitable<std::vector<cluster::topic_outcome>> create_topics(std::vector<cluster::topic_spec> specs);
    // Shard 0 only: a producer id never handed out before, or -1 when the
    // controller cannot give a new block (init_producer_id.cc).
    static net::awaitable<int64_t> next_producer_id(broker* self);

    // ---- the metadata quorum (quorum.cc) ----
    // This node is the active controller (any shard; may change at once).
    bool active_controller() const { return active_controller_.load(); }
    // The quorum's leader, -1 when none is known.
    int32_t quorum_leader() const { return quorum_leader_.load(); }
    // Any shard: a controller-bound request sent to the active controller
    // elsewhere; nullopt when this node should serve it itself (it is the
    // controller, or none answered: the handler then says NOT_CONTROLLER).
    net::awaitable<std::optional<net::response>> forward(const net::connection_info& conn, shared_bytes frame);
    // Shard 0 only.
    cluster::raft_metadata_log* metadata_log() { return metadata_log_; }

    // ---- partition replication (replication.cc) ----
    // Any shard: sends a partition group's Raft envelope to its node.
    void send_raft(raft::envelope e);
    // Controlled shutdown: every partition leader here hands its leadership
    // to an in-sync follower; waits (at most `max_ms`) until none leads.
    void move_leaderships_away(int64_t max_ms);

private:
    explicit broker(broker_config cfg);
    result<void, std::string> open_on_shards();
    result<void, std::string> open_metadata();
    result<void, std::string> start_controller_listener();
    void on_quorum_state();
    net::awaitable<std::vector<cluster::topic_outcome>> create_topics_remote(std::vector<cluster::topic_spec> specs);
    static net::awaitable<void> quorum_loop(broker* self);
    static net::awaitable<void> lifecycle_step(broker* self);
    static net::awaitable<rpc::gen::broker_registration_response> serve_registration(
        broker* self, rpc::gen::broker_registration_request req);
    static net::awaitable<rpc::gen::broker_heartbeat_response> serve_heartbeat(broker* self,
                                                                               rpc::gen::broker_heartbeat_request req);
    static net::awaitable<std::vector<uint8_t>> serve_rpc_registration(broker* self, int32_t from, shared_bytes body);
    static net::awaitable<std::vector<uint8_t>> serve_rpc_heartbeat(broker* self, int32_t from, shared_bytes body);
    static net::awaitable<std::vector<uint8_t>> serve_forward(broker* self, int32_t from, int16_t version,
                                                              shared_bytes body);
    static net::awaitable<std::optional<shared_bytes>> forward_on_0(broker* self, std::string peer,
                                                                    std::string listener, shared_bytes frame);
    // Shard 0: an inbound Raft envelope, to the metadata log or to the shards
    // whose partitions' groups it is for.
    void route_raft(raft::envelope e);
    std::optional<unsigned> shard_of_group(int64_t group);
    static net::awaitable<void> replication_loop(broker* self, unsigned shard);
    void report_partition_leaders(unsigned shard);
    static net::awaitable<void> report_leaders(broker* self, std::vector<cluster::partition_leader_record> reports);
    static net::awaitable<result<size_t, cluster::errc>> write_reports(
        broker* self, std::vector<cluster::partition_leader_record> reports);
    static net::awaitable<std::vector<uint8_t>> serve_partition_leaders(broker* self, int32_t from, shared_bytes body);
    static net::awaitable<std::vector<int16_t>> elect_preferred_here(broker* self, std::vector<partition_ref> parts);
    static net::awaitable<std::vector<uint8_t>> serve_elect_preferred(broker* self, int32_t from, shared_bytes body);
    static net::awaitable<result<int64_t, cluster::errc>> allocate_producer_ids_here(broker* self, int32_t node);
    static net::awaitable<result<int64_t, cluster::errc>> allocate_producer_ids(broker* self);
    void publish(const std::shared_ptr<const cluster::metadata_image>& img);
    void shutdown_shards();
    static net::awaitable<void> housekeeping(broker* self, unsigned shard);
    static net::awaitable<void> clean_shard(broker* self, unsigned shard);
    static net::awaitable<void> checkpoint_shard(broker* self, unsigned shard);
    static net::awaitable<void> http_loop(broker* self);

    broker_config cfg_;
    std::unique_ptr<storage::io_engine> io_;
    std::unique_ptr<net::blocking_pool> pool_;  // checkpoint writes, compaction
    std::unique_ptr<net::shard_set> shards_;
    std::vector<std::unique_ptr<shard_ctx>> ctx_;
    std::unique_ptr<cluster::controller> controller_;
    cluster::raft_metadata_log* metadata_log_ = nullptr;  // owned by controller_
    std::unique_ptr<rpc::transport> transport_;           // shard 0; null for a quorum of one
    std::unique_ptr<net::server> controller_server_;      // the controller listener
    std::atomic<int32_t> quorum_leader_{-1};
    std::atomic<bool> active_controller_{false};
    // This node as a broker (shard 0): its registration, and whether the
    // controller lets it serve.
    protocol::uuid incarnation_;
    int64_t broker_epoch_ = -1;
    std::atomic<bool> broker_fenced_{true};
    std::atomic<bool> endpoints_ready_{false};
    bool heartbeat_in_flight_ = false;
    std::vector<std::unique_ptr<net::server>> servers_;  // one per listener
    std::unique_ptr<net::asio::ip::tcp::acceptor> http_acceptor_;
    uint16_t http_port_ = 0;
    std::string cluster_id_;
    int64_t started_ms_ = 0;
    // Shard 0: the current block of producer ids [next, end).
    int64_t producer_ids_next_ = 0;
    int64_t producer_ids_end_ = 0;
    bool producer_ids_waiting_ = false;
    std::unique_ptr<net::event> producer_ids_ready_;
    // Shard 0: which topic each partition group id prefix belongs to
    // (partition_group()), for the image it was built from.
    std::shared_ptr<const cluster::metadata_image> route_image_;
    std::unordered_map<int64_t, std::string> route_topics_;

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_requested_ = false;
    bool stopped_ = false;
    std::thread stopper_;
};

}  // namespace fjord::kafka
