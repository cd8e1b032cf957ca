#include "cluster/metadata_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "cluster/topic_name.h"
#include "storage/checkpoint.h"

namespace fjord::cluster {

namespace {

std::string id_string(const protocol::uuid& id) {
    return storage::uuid_to_base64url(id.bytes);
}

result<void, errc> refuse(std::string* detail, std::string why) {
    if (detail) *detail = std::move(why);
    return fail(errc::invalid_record);
}

bool valid_replica_list(const std::vector<int32_t>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] < 0) return false;
        for (size_t j = 0; j < i; ++j) {
            if (v[j] == v[i]) return false;
        }
    }
    return true;
}

}  // namespace

const topic_info* metadata_image::find_topic(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second.get();
}

const topic_info* metadata_image::find_topic(const protocol::uuid& id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second.get();
}

std::shared_ptr<const topic_info> metadata_image::topic_ptr(const protocol::uuid& id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
}

const config_map* metadata_image::broker_configs(std::string_view broker) const {
    auto it = broker_configs_.find(broker);
    return it == broker_configs_.end() ? nullptr : &it->second;
}

std::vector<int32_t> metadata_image::live_brokers() const {
    std::vector<int32_t> out;
    for (const auto& [id, b] : brokers_) {
        if (!b.fenced) out.push_back(id);
    }
    return out;
}

metadata_table::metadata_table() : image_(std::make_shared<const metadata_image>()) {}

metadata_image& metadata_table::pending() {
    // The one copy per publish: the indexes hold pointers, the topics are shared.
    if (!pending_) pending_ = std::make_shared<metadata_image>(*image_);
    return *pending_;
}

topic_info& metadata_table::mutable_topic(const protocol::uuid& id) {
    if (auto it = owned_.find(id); it != owned_.end()) return *it->second;
    metadata_image& p = pending();
    auto it = p.by_id_.find(id);
    FJORD_ASSERT(it != p.by_id_.end(), "mutable_topic of an absent topic {}", id_string(id));
    auto copy = std::make_shared<topic_info>(*it->second);
    it->second = copy;
    p.by_name_.find(copy->name)->second = copy;
    owned_[id] = copy;
    return *copy;
}

result<void, errc> metadata_table::apply(int64_t offset, const metadata_record& rec, std::string* detail) {
    const metadata_image& cur = current();
    if (offset <= cur.last_offset_) {
        return refuse(detail, fmt::format("offset {} is not above the last applied {}", offset, cur.last_offset_));
    }
    if (auto* r = std::get_if<register_cluster>(&rec)) {
        if (r->cluster_id.empty()) return refuse(detail, "empty cluster id");
        if (!cur.cluster_id_.empty() && cur.cluster_id_ != r->cluster_id) {
            return refuse(detail, fmt::format("cluster id {} after {}", r->cluster_id, cur.cluster_id_));
        }
        if (cur.cluster_id_ != r->cluster_id) {
            pending().cluster_id_ = r->cluster_id;
            cluster_id_changed_ = true;
        }
    } else if (auto* r = std::get_if<topic_record>(&rec)) {
        if (!is_valid_topic_name(r->name)) return refuse(detail, fmt::format("invalid topic name '{}'", r->name));
        if (r->topic_id.is_zero()) return refuse(detail, fmt::format("topic '{}' with the zero id", r->name));
        if (cur.find_topic(r->name)) return refuse(detail, fmt::format("topic '{}' exists", r->name));
        if (cur.find_topic(r->topic_id)) {
            return refuse(detail, fmt::format("topic id {} of '{}' is in use", id_string(r->topic_id), r->name));
        }
        auto t = std::make_shared<topic_info>();
        t->name = r->name;
        t->id = r->topic_id;
        metadata_image& p = pending();
        p.by_name_.emplace(t->name, t);
        p.by_id_.emplace(t->id, t);
        owned_[t->id] = t;
    } else if (auto* r = std::get_if<partition_record>(&rec)) {
        const topic_info* t = cur.find_topic(r->topic_id);
        if (!t)
            return refuse(detail,
                          fmt::format("partition {} of unknown topic {}", r->partition, id_string(r->topic_id)));
        if (r->partition < 0 || static_cast<size_t>(r->partition) > t->partitions.size()) {
            return refuse(
                detail, fmt::format("partition {} of '{}' which has {}", r->partition, t->name, t->partitions.size()));
        }
        if (r->replicas.empty() || !valid_replica_list(r->replicas) || !valid_replica_list(r->isr) || r->leader < -1 ||
            r->leader_epoch < 0 || r->partition_epoch < 0) {
            return refuse(detail, fmt::format("partition {} of '{}': invalid replicas, isr, leader or epochs",
                                              r->partition, t->name));
        }
        topic_info& m = mutable_topic(r->topic_id);
        partition_info pi{r->partition, r->leader, r->leader_epoch, r->partition_epoch, r->replicas, r->isr};
        if (static_cast<size_t>(r->partition) == m.partitions.size()) {
            m.partitions.push_back(std::move(pi));
        } else {
            m.partitions[r->partition] = std::move(pi);
        }
    } else if (auto* r = std::get_if<config_record>(&rec)) {
        if (r->key.empty()) return refuse(detail, "config record with an empty key");
        if (r->resource_type == config_resource_type::topic) {
            const topic_info* t = cur.find_topic(r->resource_name);
            if (!t) return refuse(detail, fmt::format("config {} of unknown topic '{}'", r->key, r->resource_name));
            topic_info& m = mutable_topic(t->id);
            if (r->value) {
                m.configs.insert_or_assign(r->key, *r->value);
            } else {
                m.configs.erase(r->key);
            }
        } else if (r->resource_type == config_resource_type::broker) {
            metadata_image& p = pending();
            if (r->value) {
                p.broker_configs_[r->resource_name].insert_or_assign(r->key, *r->value);
            } else if (auto it = p.broker_configs_.find(r->resource_name); it != p.broker_configs_.end()) {
                it->second.erase(r->key);
                if (it->second.empty()) p.broker_configs_.erase(it);
            }
            broker_configs_changed_ = true;
        } else {
            return refuse(detail, fmt::format("config resource type {}", static_cast<int>(r->resource_type)));
        }
    } else if (auto* r = std::get_if<remove_topic_record>(&rec)) {
        const topic_info* t = cur.find_topic(r->topic_id);
        if (!t) return refuse(detail, fmt::format("removal of unknown topic {}", id_string(r->topic_id)));
        metadata_image& p = pending();
        const std::string name = t->name;  // t dies below
        if (auto it = image_->by_id_.find(r->topic_id); it != image_->by_id_.end()) deleted_[r->topic_id] = it->second;
        owned_.erase(r->topic_id);
        p.by_id_.erase(r->topic_id);
        p.by_name_.erase(name);
    } else if (auto* r = std::get_if<partition_change_record>(&rec)) {
        const topic_info* t = cur.find_topic(r->topic_id);
        if (!t) {
            return refuse(detail, fmt::format("change of partition {} of unknown topic {}", r->partition,
                                              id_string(r->topic_id)));
        }
        if (r->partition < 0 || static_cast<size_t>(r->partition) >= t->partitions.size()) {
            return refuse(detail, fmt::format("change of partition {} of '{}' which has {}", r->partition, t->name,
                                              t->partitions.size()));
        }
        const partition_info& old = t->partitions[r->partition];
        if (r->leader && (*r->leader < -1 || (*r->leader != old.leader && !r->bump_leader_epoch))) {
            return refuse(detail, fmt::format("partition {}-{}: leader {} -> {} without a leader epoch bump", t->name,
                                              r->partition, old.leader, *r->leader));
        }
        if (r->isr && !valid_replica_list(*r->isr)) {
            return refuse(detail, fmt::format("partition {}-{}: invalid isr", t->name, r->partition));
        }
        constexpr int32_t max_epoch = std::numeric_limits<int32_t>::max();
        if (old.partition_epoch == max_epoch || (r->bump_leader_epoch && old.leader_epoch == max_epoch)) {
            return refuse(detail, fmt::format("partition {}-{}: epoch overflow", t->name, r->partition));
        }
        partition_info& m = mutable_topic(r->topic_id).partitions[r->partition];
        if (r->leader) m.leader = *r->leader;
        if (r->isr) m.isr = *r->isr;
        if (r->bump_leader_epoch) ++m.leader_epoch;
        ++m.partition_epoch;
    } else if (auto* r = std::get_if<producer_ids_record>(&rec)) {
        // Blocks only move forward: an id is never handed out twice.
        if (r->next_producer_id <= cur.next_producer_id()) {
            return refuse(detail, fmt::format("producer id block to {} below the next id {}", r->next_producer_id,
                                              cur.next_producer_id()));
        }
        pending().next_producer_id_ = r->next_producer_id;
    } else if (auto* r = std::get_if<register_broker_record>(&rec)) {
        if (r->node_id < 0) return refuse(detail, fmt::format("broker registration of node {}", r->node_id));
        broker_info b;
        b.node_id = r->node_id;
        b.epoch = offset;
        b.incarnation_id = r->incarnation_id;
        b.endpoints = r->endpoints;
        b.rack = r->rack;
        b.fenced = true;
        pending().brokers_.insert_or_assign(r->node_id, std::move(b));
        brokers_changed_ = true;
    } else if (auto* r = std::get_if<broker_fence_record>(&rec)) {
        const broker_info* b = cur.find_broker(r->node_id);
        if (!b || b->epoch != r->broker_epoch) {
            return refuse(detail, fmt::format("fencing of broker {} epoch {}: {}", r->node_id, r->broker_epoch,
                                              b ? fmt::format("its epoch is {}", b->epoch) : "not registered"));
        }
        pending().brokers_[r->node_id].fenced = r->fenced;
        brokers_changed_ = true;
    } else if (auto* r = std::get_if<partition_leader_record>(&rec)) {
        const topic_info* t = cur.find_topic(r->topic_id);
        if (!t || r->partition < 0 || static_cast<size_t>(r->partition) >= t->partitions.size()) {
            return refuse(detail, fmt::format("leader of partition {} of unknown topic or partition {}", r->partition,
                                              id_string(r->topic_id)));
        }
        const partition_info& old = t->partitions[r->partition];
        const auto is_replica = [&old](int32_t n) {
            return std::find(old.replicas.begin(), old.replicas.end(), n) != old.replicas.end();
        };
        if (!is_replica(r->leader) || !valid_replica_list(r->isr) ||
            !std::all_of(r->isr.begin(), r->isr.end(), is_replica) ||
            std::find(r->isr.begin(), r->isr.end(), r->leader) == r->isr.end()) {
            return refuse(detail, fmt::format("partition {}-{}: leader {} with isr outside the replicas", t->name,
                                              r->partition, r->leader));
        }
        if (r->leader_epoch < old.leader_epoch || old.partition_epoch == std::numeric_limits<int32_t>::max()) {
            return refuse(detail, fmt::format("partition {}-{}: leader epoch {} below the current {}", t->name,
                                              r->partition, r->leader_epoch, old.leader_epoch));
        }
        partition_info& m = mutable_topic(r->topic_id).partitions[r->partition];
        m.leader = r->leader;
        m.leader_epoch = r->leader_epoch;
        m.isr = r->isr;
        ++m.partition_epoch;
    } else {
        FJORD_UNREACHABLE("record type {} not applied", static_cast<int>(type_of(rec)));
    }
    pending().last_offset_ = offset;
    return {};
}

metadata_delta metadata_table::publish() {
    metadata_delta d;
    if (!pending_) return d;
    for (auto& [id, t] : owned_) {
        const bool existed = image_->by_id_.count(id) && !deleted_.count(id);
        (existed ? d.changed : d.created).push_back(t);
    }
    for (auto& [id, t] : deleted_) d.deleted.push_back(t);
    d.cluster_id_changed = cluster_id_changed_;
    d.broker_configs_changed = broker_configs_changed_;
    d.brokers_changed = brokers_changed_;
    image_ = std::move(pending_);  // from here on const: shared with readers
    pending_.reset();
    owned_.clear();
    deleted_.clear();
    cluster_id_changed_ = broker_configs_changed_ = brokers_changed_ = false;
    return d;
}

void metadata_table::discard() {
    pending_.reset();
    owned_.clear();
    deleted_.clear();
    cluster_id_changed_ = broker_configs_changed_ = brokers_changed_ = false;
}

}  // namespace fjord::cluster
