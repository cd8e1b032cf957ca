// The in-memory cluster metadata: immutable images, and the table that
// applies metadata records to produce them.
//
// metadata_image is a snapshot that never changes once published. Shards
// share one through std::shared_ptr<const metadata_image>: a shard reads it
// without locks for as long as it holds the pointer, and picks up a newer
// one when the owner publishes it.
//
// metadata_table (the controller's, and later every node's group-0 state
// machine) applies records in log order. Each publish() freezes the pending
// changes into a new image. Copy-on-write per topic: a new image shares every
// topic it did not change with the previous one (shared_ptr<const topic_info>),
// so a change copies only the changed topics plus the two topic indexes
// (pointers, not topics).
//
// Threading: a metadata_table belongs to one thread (shard 0). Images may be
// read from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "cluster/errc.h"
#include "cluster/metadata_records.h"

namespace fjord::cluster {

struct uuid_less {
    bool operator()(const protocol::uuid& a, const protocol::uuid& b) const { return a.bytes < b.bytes; }
};

struct partition_info {
    int32_t partition = 0;
    int32_t leader = -1;
    int32_t leader_epoch = 0;
    int32_t partition_epoch = 0;
    std::vector<int32_t> replicas;
    std::vector<int32_t> isr;
    friend bool operator==(const partition_info&, const partition_info&) = default;
};

struct topic_info {
    std::string name;
    protocol::uuid id;
    std::vector<partition_info> partitions;  // index == partition id
    // Explicitly set topic configs (IncrementalAlterConfigs, CreateTopics);
    // defaults are not stored.
    std::map<std::string, std::string, std::less<>> configs;
    friend bool operator==(const topic_info&, const topic_info&) = default;
};

using config_map = std::map<std::string, std::string, std::less<>>;

// The Raft group id of partition `partition` (below 2^23) of a topic: the
// first 40 bits of the topic id, then the partition. The controller gives
// every live topic distinct, non-zero leading bits; group 0 is the metadata
// quorum.
inline int64_t partition_group(const protocol::uuid& topic, int32_t partition) {
    uint64_t prefix = 0;
    for (int i = 0; i < 5; ++i) prefix = (prefix << 8) | topic.bytes[static_cast<size_t>(i)];
    return static_cast<int64_t>((prefix << 23) | static_cast<uint32_t>(partition));
}
inline constexpr int32_t max_group_partitions = 1 << 23;

// A registered broker (register_broker_record, broker_fence_record).
struct broker_info {
    int32_t node_id = 0;
    int64_t epoch = -1;  // the offset of its latest registration
    protocol::uuid incarnation_id;
    std::vector<broker_endpoint> endpoints;
    std::optional<std::string> rack;
    bool fenced = true;
    // The endpoint of `listener`, or null.
    const broker_endpoint* endpoint(std::string_view listener) const {
        for (const auto& e : endpoints) {
            if (e.name == listener) return &e;
        }
        return nullptr;
    }
    friend bool operator==(const broker_info&, const broker_info&) = default;
};
using topics_by_name = std::map<std::string, std::shared_ptr<const topic_info>, std::less<>>;
using topics_by_id = std::map<protocol::uuid, std::shared_ptr<const topic_info>, uuid_less>;

class metadata_image {
public:
    // Empty: no cluster id, nothing applied.
    metadata_image() = default;

    const std::string& cluster_id() const { return cluster_id_; }
    // Producer ids below this one have been handed out.
    int64_t next_producer_id() const { return next_producer_id_; }
    // Offset of the last record applied; -1 before any.
    int64_t last_offset() const { return last_offset_; }

    // Null if absent. Valid as long as this image is.
    const topic_info* find_topic(std::string_view name) const;
    const topic_info* find_topic(const protocol::uuid& id) const;
    // The shared topic itself (to keep one topic alive beyond this image).
    std::shared_ptr<const topic_info> topic_ptr(const protocol::uuid& id) const;
    size_t topic_count() const { return by_name_.size(); }
    // Iteration in name order.
    const topics_by_name& topics() const { return by_name_; }

    // Broker configs by broker name ("" is the cluster-wide default); null if none set.
    const config_map* broker_configs(std::string_view broker) const;
    const std::map<std::string, config_map, std::less<>>& all_broker_configs() const { return broker_configs_; }
    // Registered brokers by node id (fenced ones included).
    const std::map<int32_t, broker_info>& brokers() const { return brokers_; }
    const broker_info* find_broker(int32_t node_id) const {
        auto it = brokers_.find(node_id);
        return it == brokers_.end() ? nullptr : &it->second;
    }
    // Unfenced brokers: the ones that may lead partitions and that clients see.
    std::vector<int32_t> live_brokers() const;

private:
    friend class metadata_table;

    std::string cluster_id_;
    int64_t last_offset_ = -1;
    int64_t next_producer_id_ = 0;
    topics_by_name by_name_;
    topics_by_id by_id_;
    std::map<std::string, config_map, std::less<>> broker_configs_;
    std::map<int32_t, broker_info> brokers_;
};

// What a publish() changed, so that the owner can act on it (create or delete
// local partition logs, reload configs) without diffing whole images.
struct metadata_delta {
    std::vector<std::shared_ptr<const topic_info>> created;  // new topics (as in the new image)
    std::vector<std::shared_ptr<const topic_info>> changed;  // partitions or configs changed
    std::vector<std::shared_ptr<const topic_info>> deleted;  // as they were in the previous image
    bool cluster_id_changed = false;
    bool broker_configs_changed = false;
    bool brokers_changed = false;  // a registration, fencing or unfencing
    bool empty() const {
        return created.empty() && changed.empty() && deleted.empty() && !cluster_id_changed &&
               !broker_configs_changed && !brokers_changed;
    }
};

class metadata_table {
public:
    metadata_table();
    metadata_table(const metadata_table&) = delete;
    metadata_table& operator=(const metadata_table&) = delete;

    // The last published image (never null).
    const std::shared_ptr<const metadata_image>& image() const { return image_; }

    // Applies one record (at log offset `offset`, above every offset applied
    // before) to the pending state. A record that does not fit the state (a
    // partition of an unknown topic, a topic id already in use...) changes
    // nothing and fails with errc::invalid_record; `detail` says why.
    result<void, errc> apply(int64_t offset, const metadata_record& r, std::string* detail = nullptr);
    // Freezes the pending state into a new image (a no-op without pending changes).
    metadata_delta publish();
    // Drops the pending state: back to image().
    void discard();
    bool has_pending() const { return pending_ != nullptr; }
    // The state including pending records: apply() validates against it.
    const metadata_image& current() const { return pending_ ? *pending_ : *image_; }

private:
    metadata_image& pending();
    // The pending, mutable copy of a topic (cloned once per publish).
    topic_info& mutable_topic(const protocol::uuid& id);

    std::shared_ptr<const metadata_image> image_;
    std::shared_ptr<metadata_image> pending_;
    // Topics cloned (or created) since the last publish, by id: mutable here,
    // shared as const in pending_.
    std::map<protocol::uuid, std::shared_ptr<topic_info>, uuid_less> owned_;
    std::map<protocol::uuid, std::shared_ptr<const topic_info>, uuid_less> deleted_;  // as in image_
    bool cluster_id_changed_ = false;
    bool broker_configs_changed_ = false;
    bool brokers_changed_ = false;
};

}  // namespace fjord::cluster
