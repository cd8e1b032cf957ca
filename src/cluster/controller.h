// controller: the single writer of the cluster metadata. It validates admin
// requests (CreateTopics, DeleteTopics, CreatePartitions,
// IncrementalAlterConfigs) against the current image, turns them into
// metadata records, appends them to the metadata log, and once the log says
// they are durable applies them to its metadata_table and publishes the new
// image.
//
// Operations run one at a time, in submission order: each validates against
// the image its predecessor produced, so two requests racing for the same
// topic name cannot both succeed. (Metadata changes are rare; one append in
// flight is enough.) The records of one operation form one append: all of
// them become visible together, or none.
//
// Threading: single-threaded, shard 0. Every callback (the operation's and
// the listener's) runs on that thread through `post`, never inline from the
// call that started the operation. Lifecycle: open() (replays the log; on a
// new cluster persists its id), operations..., wait for idle(), then destroy
// (the metadata log is the caller's to close). Destroying it while not idle,
// or from inside one of its callbacks, is a bug.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cluster/errc.h"
#include "cluster/metadata_log.h"
#include "cluster/metadata_table.h"

namespace fjord::cluster {

struct controller_config {
    int32_t node_id = 1;
    int32_t default_partitions = 1;          // num.partitions (a request's -1)
    int16_t default_replication_factor = 1;  // default.replication.factor (a request's -1)
    // A sanity bound on one topic's partitions (one request must not make
    // the controller write millions of records).
    int32_t max_partitions_per_topic = 100'000;
    // Topic and cluster ids come from this seed; 0: from std::random_device.
    uint64_t random_seed = 0;
    int64_t broker_session_timeout_ms = 9000;  // broker.session.timeout.ms
};

struct topic_spec {
    std::string name;
    int32_t partitions = -1;          // -1: default_partitions
    int16_t replication_factor = -1;  // -1: default_replication_factor
    std::map<std::string, std::string> configs;
    // A manual assignment (CreateTopics' assignments): partition p's
    // replicas, the first the preferred leader; empty: the controller places
    // them. The caller checked it (registered brokers, no repeats, one size).
    std::vector<std::vector<int32_t>> assignment = {};
};

// One topic's outcome: its id on success, else the error.
struct topic_outcome {
    std::string name;
    protocol::uuid topic_id;
    std::optional<errc> error;
};

// One config key to set (value) or delete (nullopt), as IncrementalAlterConfigs
// SET and DELETE (APPEND and SUBTRACT are resolved by the handler from the image).
struct config_change {
    std::string key;
    std::optional<std::string> value;
};

// Whether `key` is a topic config Kafka (4.x) or Fjord knows.
bool is_known_topic_config(std::string_view key);

// A random topic or cluster id as Kafka's Uuid.randomUuid() makes it: version
// 4, never zero nor Uuid.METADATA_TOPIC_ID, never printing with a leading '-'.
protocol::uuid random_uuid(std::mt19937_64& rng);

class controller {
public:
    using image_ptr = std::shared_ptr<const metadata_image>;
    using post_fn = std::function<void(std::function<void()>)>;
    using topics_done = std::function<void(std::vector<topic_outcome>, image_ptr)>;
    using done_fn = std::function<void(result<void, errc>, image_ptr)>;
    // Told about every image published after open(), before the callback of
    // the operation that produced it.
    using listener_fn = std::function<void(const image_ptr&, const metadata_delta&)>;

    // Replays `log` into a new table; on a new cluster, generates the cluster
    // id and makes it durable before returning. On failure `detail` says
    // where and why (metadata_offline: the log holds a record that does not
    // decode or does not apply).
    static result<std::unique_ptr<controller>, errc> open(std::unique_ptr<metadata_log> log, controller_config cfg,
                                                          post_fn post, std::string& detail);
    ~controller();
    controller(const controller&) = delete;
    controller& operator=(const controller&) = delete;

    // The last published image (never null).
    const image_ptr& image() const { return table_.image(); }
    void set_listener(listener_fn l) { listener_ = std::move(l); }

    // CreateTopics: one outcome per spec, in order. With validate_only
    // nothing is written (Kafka's validateOnly).
    void create_topics(std::vector<topic_spec> specs, topics_done done, bool validate_only = false);
    // DeleteTopics by id (the handler resolves names through the image).
    void delete_topics(std::vector<protocol::uuid> ids, topics_done done);
    // CreatePartitions: grows `name` to `new_total` partitions.
    // `assignment`: the new partitions' replicas (checked by the caller), or
    // empty to place them.
    void create_partitions(std::string name, int32_t new_total, done_fn done, bool validate_only = false,
                           std::vector<std::vector<int32_t>> assignment = {});
    // IncrementalAlterConfigs of one topic (SET/DELETE).
    void alter_topic_configs(std::string name, std::vector<config_change> changes, done_fn done,
                             bool validate_only = false);

    // AlterConfigs / IncrementalAlterConfigs of a topic or a broker ("" is
    // the cluster-wide broker default). With `replace`, every key of the
    // resource not in `changes` is deleted (AlterConfigs' whole-set
    // semantics). Keys are not checked here (the handler knows the catalog);
    // a topic must exist.
    void alter_configs(config_resource_type type, std::string name, std::vector<config_change> changes, bool replace,
                       done_fn done, bool validate_only = false);

    // A node registers as a broker (BrokerRegistration): its epoch (the
    // registration record's offset). A registered broker starts fenced.
    using epoch_done = std::function<void(result<int64_t, errc>)>;
    void register_broker(register_broker_record reg, epoch_done done);
    // A broker's heartbeat: unfences it once its metadata has reached its
    // own registration; `fenced` says whether it still is.
    struct heartbeat_reply {
        bool fenced = true;
        bool unknown = false;  // not registered with this epoch: register again
    };
    using heartbeat_done = std::function<void(result<heartbeat_reply, errc>)>;
    void broker_heartbeat(int32_t node_id, int64_t epoch, int64_t metadata_offset, int64_t now_ms, heartbeat_done done);
    // Fences the brokers whose last heartbeat is older than the session
    // timeout (active controller only; call it every few hundred ms).
    void check_sessions(int64_t now_ms);
    // Leaders of replicated partitions report their Raft term and in-sync
    // replicas (Kafka's AlterPartition). Reports that are stale (an epoch
    // below the partition's), already true, or invalid are skipped; the rest
    // are written in one append. done: how many were written.
    using reports_done = std::function<void(result<size_t, errc>)>;
    void report_leaders(std::vector<partition_leader_record> reports, reports_done done);
    // Told (posted) when the metadata log's leadership may have changed.
    void set_state_listener(std::function<void()> fn) { state_listener_ = std::move(fn); }

    // Hands out `count` producer ids: the first of them, durably taken.
    using ids_done = std::function<void(result<int64_t, errc>)>;
    void allocate_producer_ids(int64_t count, ids_done done);

    // No operation queued or in flight.
    bool idle() const { return !busy_ && ops_.empty(); }
    bool offline() const { return offline_; }
    const std::string& offline_detail() const { return offline_detail_; }
    const metadata_log& log() const { return *log_; }
    metadata_log& log() { return *log_; }
    int32_t node_id() const { return cfg_.node_id; }

private:
    // What an operation wants written, and what to tell its caller after
    // (with the outcome of the append: ok, or why it failed).
    struct prepared {
        std::vector<metadata_record> records;
        std::function<void(result<void, errc>, image_ptr)> finish;
    };
    using op = std::function<prepared()>;

    controller(std::unique_ptr<metadata_log> log, controller_config cfg, post_fn post);
    void submit(op o);
    void run_ops();
    void on_appended(std::function<void(result<void, errc>, image_ptr)> finish, result<int64_t, errc> r);
    void on_committed(int64_t first, const std::vector<metadata_record>& records);
    void on_log_state();
    // Applies `records` at offsets from `first` to the table's pending
    // state; on a refusal discards them and returns why.
    result<void, errc> stage(int64_t first, const std::vector<metadata_record>& records, std::string& detail);
    protocol::uuid new_topic_id(const std::vector<protocol::uuid>& taken);
    // Replica lists for `count` new partitions from `first` over the live
    // brokers (round robin from a random start, as Kafka's default), or
    // nullopt when there are fewer than `rf` live brokers.
    std::optional<std::vector<std::vector<int32_t>>> place(int32_t count, int32_t rf);
    void go_offline(std::string detail);

    std::unique_ptr<metadata_log> log_;
    controller_config cfg_;
    post_fn post_;
    metadata_table table_;
    listener_fn listener_;
    std::mt19937_64 rng_;
    std::deque<op> ops_;
    std::function<void()> state_listener_;
    // Active controller: when each broker was last heard from (ms), reset
    // when this node becomes the active controller.
    std::map<int32_t, int64_t> last_heartbeat_ms_;
    bool sessions_fresh_ = false;
    bool busy_ = false;
    bool cluster_id_pending_ = false;
    bool offline_ = false;
    std::string offline_detail_;
};

}  // namespace fjord::cluster
