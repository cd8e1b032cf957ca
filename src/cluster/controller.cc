#include "cluster/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <set>

#include "base/logger.h"
#include "cluster/topic_name.h"
#include "storage/checkpoint.h"

namespace fjord::cluster {

namespace {

// Kafka 4.x topic configs (TopicConfig / LogConfig), plus Fjord's own.
constexpr std::array<std::string_view, 39> known_topic_configs = {
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
    "errors.deadletterqueue.group.enable",  // new in Kafka 4.x
    "max.decompressed.message.bytes",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "message.downconversion.enable",  // removed in Kafka 4.0; older tools still send it
    "fjord.write.caching",
};

uint64_t seed_from(uint64_t configured) {
    if (configured != 0) return configured;
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace

bool is_known_topic_config(std::string_view key) {
    return std::find(known_topic_configs.begin(), known_topic_configs.end(), key) != known_topic_configs.end();
}

protocol::uuid random_uuid(std::mt19937_64& rng) {
    for (;;) {
        protocol::uuid id;
        const uint64_t hi = rng(), lo = rng();
        for (int i = 0; i < 8; ++i) {
            id.bytes[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
            id.bytes[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
        }
        id.bytes[6] = static_cast<uint8_t>((id.bytes[6] & 0x0f) | 0x40);  // version 4
        id.bytes[8] = static_cast<uint8_t>((id.bytes[8] & 0x3f) | 0x80);  // IETF variant
        protocol::uuid metadata_topic_id;
        metadata_topic_id.bytes[15] = 1;
        // '-' is base64url character 62: the first six bits.
        if (id.is_zero() || id == metadata_topic_id || (id.bytes[0] >> 2) == 62) continue;
        return id;
    }
}

controller::controller(std::unique_ptr<metadata_log> log, controller_config cfg, post_fn post)
    : log_(std::move(log)), cfg_(cfg), post_(std::move(post)), rng_(seed_from(cfg.random_seed)) {}

controller::~controller() {
    FJORD_ASSERT(idle(), "controller destroyed with {} operations queued", ops_.size());
}

result<std::unique_ptr<controller>, errc> controller::open(std::unique_ptr<metadata_log> log, controller_config cfg,
                                                           post_fn post, std::string& detail) {
    FJORD_ASSERT(log != nullptr && log->idle(), "controller::open needs an idle metadata log");
    std::unique_ptr<controller> c(new controller(std::move(log), cfg, std::move(post)));
    std::string why;
    auto replayed = c->log_->replay([&c, &why](int64_t offset, const metadata_record& rec) -> result<void, errc> {
        return c->table_.apply(offset, rec, &why);
    });
    if (!replayed) {
        c->table_.discard();
        detail = c->log_->offline_detail();
        if (!why.empty()) detail += ": " + why;
        return fail(replayed.error());
    }
    c->table_.publish();
    controller* self = c.get();
    c->log_->set_apply(
        [self](int64_t first, const std::vector<metadata_record>& records) { self->on_committed(first, records); });
    c->log_->set_state_listener([self] { self->on_log_state(); });
    self->on_log_state();
    return c;
}

// The first writable controller of a new cluster gives it its id (Kafka's
// cluster ids are base64url random uuids, 22 characters).
void controller::on_log_state() {
    if (!log_->writable()) sessions_fresh_ = false;
    if (state_listener_) state_listener_();
    if (!log_->writable() || !image()->cluster_id().empty() || cluster_id_pending_) return;
    cluster_id_pending_ = true;
    submit([this]() -> prepared {
        std::vector<metadata_record> records;
        if (image()->cluster_id().empty()) {
            records.push_back(register_cluster{storage::uuid_to_base64url(random_uuid(rng_).bytes)});
        }
        // On failure no retry here (that could spin): the next state change
        // (a new controller, possibly this node again) asks again.
        return prepared{std::move(records), [this](result<void, errc>, image_ptr) { cluster_id_pending_ = false; }};
    });
}

void controller::go_offline(std::string detail) {
    if (offline_) return;
    offline_ = true;
    offline_detail_ = std::move(detail);
}

result<void, errc> controller::stage(int64_t first, const std::vector<metadata_record>& records, std::string& detail) {
    for (size_t i = 0; i < records.size(); ++i) {
        if (auto r = table_.apply(first + static_cast<int64_t>(i), records[i], &detail); !r) {
            table_.discard();
            return r;
        }
    }
    return {};
}

void controller::submit(op o) {
    ops_.push_back(std::move(o));
    run_ops();
}

void controller::run_ops() {
    while (!busy_ && !ops_.empty()) {
        op o = std::move(ops_.front());
        ops_.pop_front();
        prepared p = o();
        if (p.records.empty() || offline_ || !log_->writable()) {
            result<void, errc> outcome = {};
            if (!p.records.empty()) outcome = fail(offline_ ? errc::metadata_offline : errc::not_controller);
            post_([finish = std::move(p.finish), outcome, img = image()] { finish(outcome, img); });
            continue;
        }
        // Validate against the tables before writing: anything they would
        // refuse is refused before it reaches the log. The records are
        // applied for real when the log says they are committed.
        std::string why;
        if (auto staged = stage(log_->end_offset(), p.records, why); !staged) {
            post_([finish = std::move(p.finish), img = image()] { finish(fail(errc::invalid_record), img); });
            continue;
        }
        table_.discard();
        busy_ = true;
        log_->append(std::move(p.records), [this, finish = std::move(p.finish)](result<int64_t, errc> r) mutable {
            on_appended(std::move(finish), r);
        });
    }
}

void controller::on_appended(std::function<void(result<void, errc>, image_ptr)> finish, result<int64_t, errc> r) {
    FJORD_ASSERT(busy_, "append completion without an operation in flight");
    busy_ = false;
    if (!r) {
        if (log_->offline()) go_offline(log_->offline_detail());
        finish(fail(r.error()), image());
    } else {
        // on_committed() applied the records just before.
        FJORD_ASSERT(image()->last_offset() >= *r, "append at {} completed before it was applied (image at {})", *r,
                     image()->last_offset());
        finish({}, image());
    }
    run_ops();
}

void controller::on_committed(int64_t first, const std::vector<metadata_record>& records) {
    if (offline_) return;
    std::string why;
    if (auto r = stage(first, records, why); !r) {
        // Every writer validated its records against everything committed
        // before them: a committed record that does not apply is corruption
        // or a bug, and nothing after it can be trusted.
        go_offline(fmt::format("committed metadata records at offset {} do not apply: {}", first, why));
        return;
    }
    metadata_delta delta = table_.publish();
    if (listener_) listener_(image(), delta);
}

protocol::uuid controller::new_topic_id(const std::vector<protocol::uuid>& taken) {
    for (;;) {
        protocol::uuid id = random_uuid(rng_);
        // Distinct Raft group ids (partition_group): the leading 40 bits
        // differ from every other topic's and are not all zero.
        const int64_t group = partition_group(id, 0);
        if (group == 0) continue;
        const auto same_group = [group](const protocol::uuid& other) { return partition_group(other, 0) == group; };
        if (std::any_of(image()->topics().begin(), image()->topics().end(),
                        [&](const auto& t) { return same_group(t.second->id); }))
            continue;
        if (std::any_of(taken.begin(), taken.end(), same_group)) continue;
        return id;
    }
}

void controller::create_topics(std::vector<topic_spec> specs, topics_done done, bool validate_only) {
    submit([this, specs = std::move(specs), done = std::move(done), validate_only]() -> prepared {
        const image_ptr img = image();
        std::vector<topic_outcome> outcomes(specs.size());
        std::map<std::string, int, std::less<>> names;  // how often each name is in the request
        for (const auto& s : specs) ++names[s.name];
        // Existing names by collision key ('.' and '_' equal).
        std::map<std::string, std::string> existing_keys;
        for (const auto& [name, t] : img->topics()) existing_keys.emplace(collision_key(name), name);

        std::vector<metadata_record> records;
        std::vector<protocol::uuid> ids;
        for (size_t i = 0; i < specs.size(); ++i) {
            const topic_spec& s = specs[i];
            topic_outcome& o = outcomes[i];
            o.name = s.name;
            const int32_t partitions = s.partitions == -1 ? cfg_.default_partitions : s.partitions;
            const int32_t rf = s.replication_factor == -1 ? cfg_.default_replication_factor : s.replication_factor;
            if (names[s.name] > 1) {
                o.error = errc::duplicate_topic;
            } else if (!is_valid_topic_name(s.name)) {
                o.error = errc::invalid_topic_name;
            } else if (img->find_topic(s.name)) {
                o.error = errc::topic_already_exists;
            } else if (existing_keys.count(collision_key(s.name))) {
                o.error = errc::topic_name_collision;
            } else if (std::any_of(s.configs.begin(), s.configs.end(),
                                   [](const auto& kv) { return !is_known_topic_config(kv.first); })) {
                o.error = errc::invalid_config;
            } else if (partitions < 1 || partitions > cfg_.max_partitions_per_topic) {
                o.error = errc::invalid_partitions;
            } else if (!s.assignment.empty()) {
                if (static_cast<int32_t>(s.assignment.size()) != partitions ||
                    std::any_of(s.assignment.begin(), s.assignment.end(),
                                [rf](const auto& a) { return static_cast<int32_t>(a.size()) != rf; })) {
                    o.error = errc::invalid_replica_assignment;
                }
            } else if (rf < 1 || static_cast<size_t>(rf) > img->live_brokers().size()) {
                o.error = errc::invalid_replication_factor;
            }
            if (o.error) continue;
            // Later topics of this request collide with this one too.
            existing_keys.emplace(collision_key(s.name), s.name);
            o.topic_id = new_topic_id(ids);
            ids.push_back(o.topic_id);
            if (validate_only) continue;
            records.push_back(topic_record{s.name, o.topic_id});
            auto placed = s.assignment.empty() ? place(partitions, rf) : std::optional(s.assignment);
            for (int32_t p = 0; p < partitions; ++p) {
                partition_record pr;
                pr.topic_id = o.topic_id;
                pr.partition = p;
                pr.replicas = (*placed)[static_cast<size_t>(p)];
                pr.isr = pr.replicas;
                pr.leader = pr.replicas.front();
                records.push_back(std::move(pr));
            }
            for (const auto& [key, value] : s.configs) {
                records.push_back(config_record{config_resource_type::topic, s.name, key, value});
            }
        }
        return prepared{std::move(records),
                        [outcomes = std::move(outcomes), done](result<void, errc> r, image_ptr img) mutable {
                            if (!r) {
                                for (auto& o : outcomes) {
                                    if (!o.error) o.error = r.error();
                                }
                            }
                            done(std::move(outcomes), std::move(img));
                        }};
    });
}

void controller::delete_topics(std::vector<protocol::uuid> ids, topics_done done) {
    submit([this, ids = std::move(ids), done = std::move(done)]() -> prepared {
        const image_ptr img = image();
        std::vector<topic_outcome> outcomes(ids.size());
        std::vector<metadata_record> records;
        for (size_t i = 0; i < ids.size(); ++i) {
            topic_outcome& o = outcomes[i];
            o.topic_id = ids[i];
            const topic_info* t = img->find_topic(ids[i]);
            if (t) o.name = t->name;
            if (std::count(ids.begin(), ids.end(), ids[i]) > 1) {
                o.error = errc::duplicate_topic;
            } else if (!t) {
                o.error = errc::unknown_topic_id;
            } else {
                records.emplace_back(std::in_place_type<remove_topic_record>, remove_topic_record{ids[i]});
            }
        }
        return prepared{std::move(records),
                        [outcomes = std::move(outcomes), done](result<void, errc> r, image_ptr img) mutable {
                            if (!r) {
                                for (auto& o : outcomes) {
                                    if (!o.error) o.error = r.error();
                                }
                            }
                            done(std::move(outcomes), std::move(img));
                        }};
    });
}

void controller::create_partitions(std::string name, int32_t new_total, done_fn done, bool validate_only,
                                   std::vector<std::vector<int32_t>> assignment) {
    submit([this, name = std::move(name), new_total, done = std::move(done), validate_only,
            assignment = std::move(assignment)]() -> prepared {
        const topic_info* t = image()->find_topic(name);
        std::optional<errc> error;
        std::vector<metadata_record> records;
        if (!t) {
            error = errc::unknown_topic;
        } else if (new_total <= static_cast<int32_t>(t->partitions.size()) ||
                   new_total > cfg_.max_partitions_per_topic) {
            error = errc::invalid_partitions;
        } else {
            const auto rf = static_cast<int32_t>(t->partitions.front().replicas.size());
            const int32_t have = static_cast<int32_t>(t->partitions.size());
            auto placed = assignment.empty() ? place(new_total - have, rf) : std::optional(assignment);
            if (placed && static_cast<int32_t>(placed->size()) != new_total - have) {
                error = errc::invalid_replica_assignment;
            } else if (!placed) {
                error = errc::invalid_replication_factor;
            } else if (!validate_only) {
                for (int32_t p = have; p < new_total; ++p) {
                    partition_record pr;
                    pr.topic_id = t->id;
                    pr.partition = p;
                    pr.replicas = (*placed)[static_cast<size_t>(p - have)];
                    pr.isr = pr.replicas;
                    pr.leader = pr.replicas.front();
                    records.push_back(std::move(pr));
                }
            }
        }
        return prepared{std::move(records), [error, done](result<void, errc> r, image_ptr img) {
                            if (error) r = fail(*error);
                            done(r, std::move(img));
                        }};
    });
}

std::optional<std::vector<std::vector<int32_t>>> controller::place(int32_t count, int32_t rf) {
    const std::vector<int32_t> live = image()->live_brokers();
    if (rf < 1 || live.size() < static_cast<size_t>(rf)) return std::nullopt;
    const size_t n = live.size();
    const size_t start = static_cast<size_t>(rng_() % n);
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(std::max(count, 0)));
    for (size_t p = 0; p < out.size(); ++p) {
        // Replica j of partition p: the leaders rotate over the brokers, and
        // the followers of one leader are spread by a shift that grows with
        // each full round.
        // Followers sit 1 .. n-1 places after the leader, never on it.
        const size_t shift = (p / n) % std::max<size_t>(n - 1, 1);
        for (int32_t j = 0; j < rf; ++j) {
            const size_t after = j == 0 ? 0 : 1 + (shift + static_cast<size_t>(j - 1)) % std::max<size_t>(n - 1, 1);
            out[p].push_back(live[(start + p + after) % n]);
        }
    }
    return out;
}

void controller::register_broker(register_broker_record reg, epoch_done done) {
    submit([this, reg = std::move(reg), done = std::move(done)]() -> prepared {
        std::vector<metadata_record> records{reg};
        return prepared{std::move(records), [this, done, node = reg.node_id](result<void, errc> r, image_ptr img) {
                            if (!r) {
                                done(fail(r.error()));
                                return;
                            }
                            const broker_info* b = img->find_broker(node);
                            FJORD_ASSERT(b != nullptr, "broker {} registered but absent", node);
                            last_heartbeat_ms_.erase(node);  // its session starts with its first heartbeat
                            done(b->epoch);
                        }};
    });
}

void controller::broker_heartbeat(int32_t node_id, int64_t epoch, int64_t metadata_offset, int64_t now_ms,
                                  heartbeat_done done) {
    if (!log_->writable()) {
        post_([done = std::move(done)] { done(fail(errc::not_controller)); });
        return;
    }
    const broker_info* b = image()->find_broker(node_id);
    if (!b || b->epoch != epoch) {
        post_([done = std::move(done)] { done(heartbeat_reply{true, true}); });
        return;
    }
    last_heartbeat_ms_[node_id] = now_ms;
    if (!b->fenced || metadata_offset < b->epoch) {
        post_([done = std::move(done), fenced = b->fenced] { done(heartbeat_reply{fenced, false}); });
        return;
    }
    // Caught up with its own registration: unfenced, and its leaderless
    // partitions (Kafka's offline ones) are led by it again.
    submit([this, node_id, epoch, done = std::move(done)]() -> prepared {
        std::vector<metadata_record> records;
        const broker_info* now = image()->find_broker(node_id);
        if (now && now->epoch == epoch && now->fenced) {
            records.push_back(broker_fence_record{node_id, epoch, false});
            for (const auto& [name, t] : image()->topics()) {
                for (const auto& p : t->partitions) {
                    // Replicated partitions elect their leaders by Raft.
                    if (p.leader == -1 && p.replicas.size() == 1 && p.replicas.front() == node_id) {
                        partition_change_record c;
                        c.topic_id = t->id;
                        c.partition = p.partition;
                        c.leader = node_id;
                        c.bump_leader_epoch = true;
                        records.push_back(std::move(c));
                    }
                }
            }
        }
        return prepared{std::move(records), [done, node_id](result<void, errc> r, image_ptr img) {
                            if (!r) {
                                done(fail(r.error()));
                                return;
                            }
                            const broker_info* b = img->find_broker(node_id);
                            done(heartbeat_reply{!b || b->fenced, b == nullptr});
                        }};
    });
}

void controller::report_leaders(std::vector<partition_leader_record> reports, reports_done done) {
    submit([this, reports = std::move(reports), done = std::move(done)]() -> prepared {
        std::vector<metadata_record> records;
        for (auto& r : reports) {
            const topic_info* t = image()->find_topic(r.topic_id);
            if (!t || r.partition < 0 || static_cast<size_t>(r.partition) >= t->partitions.size()) continue;
            const partition_info& p = t->partitions[static_cast<size_t>(r.partition)];
            if (r.leader_epoch < p.leader_epoch) continue;
            if (r.leader_epoch == p.leader_epoch && r.leader == p.leader && r.isr == p.isr) continue;
            const auto is_replica = [&p](int32_t n) {
                return std::find(p.replicas.begin(), p.replicas.end(), n) != p.replicas.end();
            };
            if (!is_replica(r.leader) || !std::all_of(r.isr.begin(), r.isr.end(), is_replica)) continue;
            records.push_back(std::move(r));
        }
        const size_t n = records.size();
        return prepared{std::move(records), [done, n](result<void, errc> r, image_ptr) {
                            if (!r) {
                                done(fail(r.error()));
                            } else {
                                done(n);
                            }
                        }};
    });
}

void controller::check_sessions(int64_t now_ms) {
    if (!log_->writable() || offline_) return;
    if (!sessions_fresh_) {
        // A new active controller gives every broker a full session.
        sessions_fresh_ = true;
        last_heartbeat_ms_.clear();
        for (const auto& [id, b] : image()->brokers()) last_heartbeat_ms_[id] = now_ms;
        return;
    }
    for (const auto& [id, b] : image()->brokers()) {
        auto it = last_heartbeat_ms_.find(id);
        if (it == last_heartbeat_ms_.end()) {
            last_heartbeat_ms_[id] = now_ms;
            continue;
        }
        if (b.fenced || now_ms - it->second < cfg_.broker_session_timeout_ms) continue;
        // Fence it: it leads nothing (with one replica its partitions go offline).
        const int32_t node = id;
        const int64_t epoch = b.epoch;
        it->second = now_ms;  // one attempt per session timeout
        log_warn("broker {} fenced: no heartbeat for {} ms", node, cfg_.broker_session_timeout_ms);
        submit([this, node, epoch]() -> prepared {
            std::vector<metadata_record> records;
            const broker_info* cur = image()->find_broker(node);
            if (cur && cur->epoch == epoch && !cur->fenced) {
                records.push_back(broker_fence_record{node, epoch, true});
                for (const auto& [name, t] : image()->topics()) {
                    for (const auto& p : t->partitions) {
                        // Replicated partitions elect a new leader by Raft;
                        // Metadata lists no fenced leader meanwhile.
                        if (p.leader != node || p.replicas.size() > 1) continue;
                        partition_change_record c;
                        c.topic_id = t->id;
                        c.partition = p.partition;
                        c.leader = -1;
                        c.bump_leader_epoch = true;
                        records.push_back(std::move(c));
                    }
                }
            }
            return prepared{std::move(records), [](result<void, errc>, image_ptr) {}};
        });
    }
}

void controller::allocate_producer_ids(int64_t count, ids_done done) {
    submit([this, count, done = std::move(done)]() -> prepared {
        const int64_t first = image()->next_producer_id();
        std::vector<metadata_record> records;
        records.push_back(producer_ids_record{first + std::max<int64_t>(count, 1)});
        return prepared{std::move(records), [first, done](result<void, errc> r, image_ptr) {
                            if (!r) {
                                done(fail(r.error()));
                            } else {
                                done(first);
                            }
                        }};
    });
}

void controller::alter_configs(config_resource_type type, std::string name, std::vector<config_change> changes,
                               bool replace, done_fn done, bool validate_only) {
    submit([this, type, name = std::move(name), changes = std::move(changes), replace, done = std::move(done),
            validate_only]() -> prepared {
        const image_ptr img = image();
        const config_map* current = nullptr;
        std::optional<errc> error;
        if (type == config_resource_type::topic) {
            const topic_info* t = img->find_topic(name);
            if (!t) {
                error = errc::unknown_topic;
            } else {
                current = &t->configs;
            }
        } else {
            current = img->broker_configs(name);
        }
        std::vector<metadata_record> records;
        if (!error && !validate_only) {
            if (replace && current) {
                for (const auto& entry : *current) {
                    // (clang 14 cannot capture a structured binding in a lambda.)
                    const std::string& key = entry.first;
                    const bool kept = std::any_of(changes.begin(), changes.end(),
                                                  [&](const config_change& c) { return c.key == key && c.value; });
                    if (!kept) records.push_back(config_record{type, name, key, std::nullopt});
                }
            }
            for (const auto& c : changes) {
                const std::string* now = nullptr;
                if (current) {
                    auto it = current->find(c.key);
                    if (it != current->end()) now = &it->second;
                }
                const bool unchanged = c.value ? (now && *now == *c.value) : now == nullptr;
                if (unchanged) continue;
                records.push_back(config_record{type, name, c.key, c.value});
            }
        }
        return prepared{std::move(records), [error, done](result<void, errc> r, image_ptr img) {
                            if (error) r = fail(*error);
                            done(r, std::move(img));
                        }};
    });
}

void controller::alter_topic_configs(std::string name, std::vector<config_change> changes, done_fn done,
                                     bool validate_only) {
    submit([this, name = std::move(name), changes = std::move(changes), done = std::move(done),
            validate_only]() -> prepared {
        const topic_info* t = image()->find_topic(name);
        std::optional<errc> error;
        std::vector<metadata_record> records;
        if (!t) {
            error = errc::unknown_topic;
        } else {
            for (const auto& c : changes) {
                if (!is_known_topic_config(c.key)) error = errc::invalid_config;
            }
        }
        if (!error && !validate_only) {
            for (const auto& c : changes) {
                auto it = t->configs.find(c.key);
                const bool unchanged =
                    c.value ? (it != t->configs.end() && it->second == *c.value) : it == t->configs.end();
                if (unchanged) continue;
                records.push_back(config_record{config_resource_type::topic, name, c.key, c.value});
            }
        }
        return prepared{std::move(records), [error, done](result<void, errc> r, image_ptr img) {
                            if (error) r = fail(*error);
                            done(r, std::move(img));
                        }};
    });
}

}  // namespace fjord::cluster
