#include "cluster/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <set>

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
    if (c->table_.image()->cluster_id().empty()) {
        // A new cluster: Kafka's cluster ids are base64url random uuids (22 characters).
        std::vector<metadata_record> records{register_cluster{storage::uuid_to_base64url(random_uuid(c->rng_).bytes)}};
        auto first = c->log_->bootstrap(records);
        if (!first) {
            detail = fmt::format("writing the cluster id: {} {}", describe(first.error()), c->log_->offline_detail());
            return fail(first.error());
        }
        if (auto r = c->stage(*first, records, why); !r) {
            detail = fmt::format("applying the cluster id: {}", why);
            return fail(r.error());
        }
        c->table_.publish();
    }
    return c;
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
        if (p.records.empty() || offline_) {
            result<void, errc> outcome = {};
            if (!p.records.empty()) outcome = fail(errc::metadata_offline);
            post_([finish = std::move(p.finish), outcome, img = image()] { finish(outcome, img); });
            continue;
        }
        // Apply to the table's pending state before writing: anything the
        // table would refuse is refused before it reaches the log.
        const int64_t expected_first = log_->end_offset();
        std::string why;
        if (auto staged = stage(expected_first, p.records, why); !staged) {
            post_([finish = std::move(p.finish), img = image()] { finish(fail(errc::invalid_record), img); });
            continue;
        }
        busy_ = true;
        std::vector<metadata_record> copy = p.records;
        log_->append(std::move(copy), [this, expected_first, records = std::move(p.records),
                                       finish = std::move(p.finish)](result<int64_t, errc> r) mutable {
            on_appended(expected_first, std::move(records), std::move(finish), r);
        });
    }
}

void controller::on_appended(int64_t expected_first, std::vector<metadata_record> records,
                             std::function<void(result<void, errc>, image_ptr)> finish, result<int64_t, errc> r) {
    FJORD_ASSERT(busy_, "append completion without an operation in flight");
    busy_ = false;
    if (!r) {
        table_.discard();
        if (log_->offline()) go_offline(log_->offline_detail());
        finish(fail(r.error()), image());
        run_ops();
        return;
    }
    if (*r != expected_first) {
        // The log put the records elsewhere (with Raft: another leader wrote
        // in between): apply them where they are.
        table_.discard();
        std::string why;
        if (auto staged = stage(*r, records, why); !staged) {
            go_offline(fmt::format("records durable at offset {} do not apply: {}", *r, why));
            finish(fail(errc::metadata_offline), image());
            run_ops();
            return;
        }
    }
    metadata_delta delta = table_.publish();
    if (listener_) listener_(image(), delta);
    finish({}, image());
    run_ops();
}

protocol::uuid controller::new_topic_id(const std::vector<protocol::uuid>& taken) {
    for (;;) {
        protocol::uuid id = random_uuid(rng_);
        if (image()->find_topic(id)) continue;
        if (std::find(taken.begin(), taken.end(), id) != taken.end()) continue;
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
            } else if (rf < 1 || rf > 1) {  // one broker today
                o.error = errc::invalid_replication_factor;
            }
            if (o.error) continue;
            // Later topics of this request collide with this one too.
            existing_keys.emplace(collision_key(s.name), s.name);
            o.topic_id = new_topic_id(ids);
            ids.push_back(o.topic_id);
            if (validate_only) continue;
            records.push_back(topic_record{s.name, o.topic_id});
            for (int32_t p = 0; p < partitions; ++p) {
                partition_record pr;
                pr.topic_id = o.topic_id;
                pr.partition = p;
                pr.replicas = {cfg_.node_id};
                pr.isr = {cfg_.node_id};
                pr.leader = cfg_.node_id;
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

void controller::create_partitions(std::string name, int32_t new_total, done_fn done, bool validate_only) {
    submit([this, name = std::move(name), new_total, done = std::move(done), validate_only]() -> prepared {
        const topic_info* t = image()->find_topic(name);
        std::optional<errc> error;
        std::vector<metadata_record> records;
        if (!t) {
            error = errc::unknown_topic;
        } else if (new_total <= static_cast<int32_t>(t->partitions.size()) ||
                   new_total > cfg_.max_partitions_per_topic) {
            error = errc::invalid_partitions;
        } else if (!validate_only) {
            for (int32_t p = static_cast<int32_t>(t->partitions.size()); p < new_total; ++p) {
                partition_record pr;
                pr.topic_id = t->id;
                pr.partition = p;
                pr.replicas = {cfg_.node_id};
                pr.isr = {cfg_.node_id};
                pr.leader = cfg_.node_id;
                records.push_back(std::move(pr));
            }
        }
        return prepared{std::move(records), [error, done](result<void, errc> r, image_ptr img) {
                            if (error) r = fail(*error);
                            done(r, std::move(img));
                        }};
    });
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
