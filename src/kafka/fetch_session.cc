#include "kafka/fetch_session.h"

#include <cstring>
#include <functional>

#include "base/assert.h"

namespace fjord::kafka {

namespace {

constexpr int32_t final_epoch = -1;
constexpr int32_t initial_epoch = 0;
constexpr int16_t first_session_version = 7;
constexpr int16_t first_topic_id_version = 13;

uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t hash_uuid(const protocol::uuid& id) {
    uint64_t hi = 0;
    uint64_t lo = 0;
    std::memcpy(&hi, id.bytes.data(), 8);
    std::memcpy(&lo, id.bytes.data() + 8, 8);
    return mix64(hi ^ mix64(lo));
}

uint64_t hash_name(std::string_view name) {
    return mix64(std::hash<std::string_view>{}(name));
}

uint64_t hash_partition(int32_t topic, int32_t partition) {
    return mix64((static_cast<uint64_t>(static_cast<uint32_t>(topic)) << 32) | static_cast<uint32_t>(partition));
}

// An open-addressed index from a 64-bit hash to small non-negative integers
// (slots in a vector the caller owns; the caller's predicate decides
// equality). Linear probing, backward-shift deletion, at most half full: no
// allocation per entry.
class index_table {
public:
    void reserve(size_t n) {
        if (n * 2 > slots_.size()) rehash(n);
    }

    template <typename Eq>
    int32_t find(uint64_t hash, Eq&& eq) const {
        if (slots_.empty()) return -1;
        const size_t mask = slots_.size() - 1;
        for (size_t i = hash & mask;; i = (i + 1) & mask) {
            const slot& s = slots_[i];
            if (s.value < 0) return -1;
            if (s.hash == hash && eq(s.value)) return s.value;
        }
    }

    void insert(uint64_t hash, int32_t value) {
        FJORD_ASSERT(value >= 0, "index_table value {}", value);
        if ((count_ + 1) * 2 > slots_.size()) rehash(count_ + 1);
        place(hash, value);
        ++count_;
    }

    void erase(uint64_t hash, int32_t value) {
        FJORD_ASSERT(!slots_.empty(), "erase from an empty index_table");
        const size_t mask = slots_.size() - 1;
        size_t i = hash & mask;
        while (slots_[i].value != value) {
            FJORD_ASSERT(slots_[i].value >= 0, "index_table: value {} not found", value);
            i = (i + 1) & mask;
        }
        // Shift later members of the probe run back into the hole.
        for (size_t j = (i + 1) & mask; slots_[j].value >= 0; j = (j + 1) & mask) {
            const size_t home = slots_[j].hash & mask;
            const bool home_in_hole_to_j = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!home_in_hole_to_j) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i] = slot{};
        --count_;
    }

private:
    struct slot {
        uint64_t hash = 0;
        int32_t value = -1;
    };

    void rehash(size_t n) {
        size_t capacity = 8;
        while (capacity < n * 2) capacity *= 2;
        std::vector<slot> old = std::move(slots_);
        slots_.assign(capacity, slot{});
        for (const slot& s : old) {
            if (s.value >= 0) place(s.hash, s.value);
        }
    }

    void place(uint64_t hash, int32_t value) {
        const size_t mask = slots_.size() - 1;
        size_t i = hash & mask;
        while (slots_[i].value >= 0) i = (i + 1) & mask;
        slots_[i] = slot{hash, value};
    }

    std::vector<slot> slots_;
    size_t count_ = 0;
};

struct cached_partition {
    int32_t topic = -1;  // index into session::topics; -1: a free slot
    int32_t partition = 0;
    int32_t prev = -1;  // session order; a free slot links the free list through next
    int32_t next = -1;
    // The fetcher's parameters, as last sent.
    int64_t fetch_offset = 0;
    int64_t log_start_offset = -1;
    int32_t max_bytes = 0;
    int32_t current_leader_epoch = -1;
    int32_t last_fetched_epoch = -1;
    // What the last response carrying this partition said.
    int64_t sent_high_watermark = -1;
    int64_t sent_last_stable_offset = -1;
    int64_t sent_log_start_offset = -1;
};

struct session_topic {
    protocol::uuid id{};
    std::string name;
    bool name_known = false;
    int32_t partitions = 0;  // 0: a free slot
    int32_t next_free = -1;
};

void set_params(cached_partition& cp, const protocol::gen::fetch_request::fetch_partition& p) {
    cp.fetch_offset = p.fetch_offset;
    cp.log_start_offset = p.log_start_offset;
    cp.max_bytes = p.partition_max_bytes;
    cp.current_leader_epoch = p.current_leader_epoch;
    cp.last_fetched_epoch = p.last_fetched_epoch;
}

void set_params(fetch_partition_ref& ref, const protocol::gen::fetch_request::fetch_partition& p) {
    ref.partition = p.partition;
    ref.fetch_offset = p.fetch_offset;
    ref.log_start_offset = p.log_start_offset;
    ref.max_bytes = p.partition_max_bytes;
    ref.current_leader_epoch = p.current_leader_epoch;
    ref.last_fetched_epoch = p.last_fetched_epoch;
}

// Whether an incremental response must carry a partition whose session entry
// is `cp`. Kafka's rule (records, high watermark, log start offset, preferred
// replica, error, diverging epoch), plus the last stable offset, so that
// read_committed consumers see it move without waiting for new records.
bool must_respond(const cached_partition& cp, const fetch_partition_result& r) {
    return r.has_records || cp.sent_high_watermark != r.high_watermark ||
           cp.sent_log_start_offset != r.log_start_offset || cp.sent_last_stable_offset != r.last_stable_offset ||
           r.preferred_read_replica >= 0 || r.error_code != 0 || r.diverging_epoch;
}

void record_sent(cached_partition& cp, const fetch_partition_result& r) {
    // After an error the cached high watermark is invalid, so the partition is
    // sent again once the error clears even if nothing else changed.
    cp.sent_high_watermark = r.error_code != 0 ? -1 : r.high_watermark;
    cp.sent_last_stable_offset = r.last_stable_offset;
    cp.sent_log_start_offset = r.log_start_offset;
}

}  // namespace

struct fetch_session_cache::session {
    int32_t id = 0;
    uint64_t serial = 0;
    bool uses_topic_ids = false;
    int64_t created_ms = 0;
    int64_t last_used_ms = 0;
    int32_t epoch = 1;         // the epoch the next incremental request must carry
    int64_t cached_size = -1;  // size at the last touch; -1 before the first
    bool evictable = false;    // in evictable_ (older than eviction_ms at the last touch)

    std::vector<session_topic> topics;
    int32_t free_topic = -1;
    index_table topic_index;

    std::vector<cached_partition> parts;
    int32_t free_part = -1;
    int32_t head = -1;
    int32_t tail = -1;
    size_t count = 0;
    index_table part_index;

    uint64_t topic_hash(const protocol::uuid& id, std::string_view name) const {
        return uses_topic_ids ? hash_uuid(id) : hash_name(name);
    }

    int32_t find_topic(const protocol::uuid& id, std::string_view name) const {
        return topic_index.find(topic_hash(id, name), [&](int32_t t) {
            return uses_topic_ids ? topics[t].id == id : topics[t].name == name;
        });
    }

    int32_t add_topic(const protocol::uuid& id, std::string_view name, bool name_known) {
        int32_t t = free_topic;
        if (t >= 0) {
            free_topic = topics[t].next_free;
        } else {
            t = static_cast<int32_t>(topics.size());
            topics.emplace_back();
        }
        session_topic& st = topics[t];
        st.id = uses_topic_ids ? id : protocol::uuid{};
        st.name.assign(name);
        st.name_known = name_known;
        st.partitions = 0;
        st.next_free = -1;
        topic_index.insert(topic_hash(st.id, st.name), t);
        return t;
    }

    void release_topic(int32_t t) {
        session_topic& st = topics[t];
        FJORD_ASSERT(st.partitions == 0, "releasing topic {} with {} partitions", t, st.partitions);
        topic_index.erase(topic_hash(st.id, st.name), t);
        st.name.clear();
        st.name_known = false;
        st.next_free = free_topic;
        free_topic = t;
    }

    int32_t find_partition(int32_t topic, int32_t partition) const {
        return part_index.find(hash_partition(topic, partition), [&](int32_t slot) {
            return parts[slot].topic == topic && parts[slot].partition == partition;
        });
    }

    // Appends a new partition at the end of the session order.
    int32_t add_partition(int32_t topic, int32_t partition) {
        int32_t slot = free_part;
        if (slot >= 0) {
            free_part = parts[slot].next;
        } else {
            slot = static_cast<int32_t>(parts.size());
            parts.emplace_back();
        }
        parts[slot] = cached_partition{};
        parts[slot].topic = topic;
        parts[slot].partition = partition;
        link_tail(slot);
        part_index.insert(hash_partition(topic, partition), slot);
        ++topics[topic].partitions;
        ++count;
        return slot;
    }

    void remove_partition(int32_t slot) {
        cached_partition& cp = parts[slot];
        const int32_t topic = cp.topic;
        part_index.erase(hash_partition(topic, cp.partition), slot);
        unlink(slot);
        cp.topic = -1;
        cp.next = free_part;
        free_part = slot;
        --count;
        if (--topics[topic].partitions == 0) release_topic(topic);
    }

    void move_to_tail(int32_t slot) {
        if (tail == slot) return;
        unlink(slot);
        link_tail(slot);
    }

    void link_tail(int32_t slot) {
        parts[slot].prev = tail;
        parts[slot].next = -1;
        if (tail >= 0) {
            parts[tail].next = slot;
        } else {
            head = slot;
        }
        tail = slot;
    }

    void unlink(int32_t slot) {
        cached_partition& cp = parts[slot];
        if (cp.prev >= 0) {
            parts[cp.prev].next = cp.next;
        } else {
            head = cp.next;
        }
        if (cp.next >= 0) {
            parts[cp.next].prev = cp.prev;
        } else {
            tail = cp.prev;
        }
        cp.prev = -1;
        cp.next = -1;
    }
};

namespace {

// The context of a sessionless or full fetch: the request's partitions in
// request order, a partition named twice keeping its first position and its
// last parameters (Kafka builds a LinkedHashMap from the request).
void list_request_partitions(const protocol::gen::fetch_request& request, const topic_name_resolver& resolver,
                             bool uses_topic_ids, std::vector<fetch_topic_ref>& topics,
                             std::vector<fetch_partition_ref>& partitions) {
    size_t partition_count = 0;
    for (const auto& t : request.topics) partition_count += t.partitions.size();
    topics.reserve(request.topics.size());
    partitions.reserve(partition_count);
    index_table topic_index;
    index_table partition_index;
    topic_index.reserve(request.topics.size());
    partition_index.reserve(partition_count);

    for (const auto& t : request.topics) {
        const uint64_t th = uses_topic_ids ? hash_uuid(t.topic_id) : hash_name(t.topic);
        int32_t ti = topic_index.find(
            th, [&](int32_t i) { return uses_topic_ids ? topics[i].id == t.topic_id : topics[i].name == t.topic; });
        if (ti < 0) {
            ti = static_cast<int32_t>(topics.size());
            fetch_topic_ref& ref = topics.emplace_back();
            if (uses_topic_ids) {
                ref.id = t.topic_id;
                if (!t.topic_id.is_zero()) {
                    if (auto name = resolver.topic_name(t.topic_id)) {
                        ref.name.assign(*name);
                        ref.name_known = true;
                    }
                }
            } else {
                ref.name = t.topic;
                ref.name_known = true;
            }
            topic_index.insert(th, ti);
        }
        const int16_t error = topics[ti].name_known ? int16_t{0} : error::unknown_topic_id;
        for (const auto& p : t.partitions) {
            const uint64_t ph = hash_partition(ti, p.partition);
            int32_t pi = partition_index.find(ph, [&](int32_t i) {
                return partitions[i].topic == static_cast<uint32_t>(ti) && partitions[i].partition == p.partition;
            });
            if (pi < 0) {
                pi = static_cast<int32_t>(partitions.size());
                partitions.emplace_back();
                partition_index.insert(ph, pi);
            }
            fetch_partition_ref& ref = partitions[pi];
            ref.topic = static_cast<uint32_t>(ti);
            set_params(ref, p);
            ref.error_code = error;
        }
    }
}

}  // namespace

fetch_session_cache::fetch_session_cache(fetch_session_cache_config config) : config_(config), rng_state_(config.seed) {
    FJORD_ASSERT(config_.session_id_min >= 1 && config_.session_id_min <= config_.session_id_max,
                 "session id range [{}, {}]", config_.session_id_min, config_.session_id_max);
    const uint64_t range = static_cast<uint64_t>(config_.session_id_max) - config_.session_id_min + 1;
    FJORD_ASSERT(range > config_.max_sessions, "session id range {} must exceed max_sessions {}", range,
                 config_.max_sessions);
    FJORD_ASSERT(config_.eviction_ms >= 0, "eviction_ms {}", config_.eviction_ms);
}

fetch_session_cache::~fetch_session_cache() = default;

fetch_session_cache::session* fetch_session_cache::find(int32_t id) const {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
}

int32_t fetch_session_cache::new_session_id() {
    const uint64_t range = static_cast<uint64_t>(config_.session_id_max) - config_.session_id_min + 1;
    for (;;) {
        // splitmix64
        rng_state_ += 0x9e3779b97f4a7c15ULL;
        const uint64_t r = mix64(rng_state_);
        const auto id = static_cast<int32_t>(config_.session_id_min + static_cast<int64_t>(r % range));
        if (!sessions_.contains(id)) return id;
    }
}

void fetch_session_cache::touch(session& s, int64_t now_ms) {
    lru_.erase({s.last_used_ms, s.id});
    s.last_used_ms = now_ms;
    lru_.insert({s.last_used_ms, s.id});
    if (s.cached_size >= 0) {
        if (s.evictable) evictable_.erase({s.cached_size, s.id});
        cached_partitions_ -= static_cast<uint64_t>(s.cached_size);
    }
    s.cached_size = static_cast<int64_t>(s.count);
    cached_partitions_ += s.count;
    // Only sessions that were already older than eviction_ms when last used
    // may be displaced by a larger one (Kafka's evictableByAll).
    s.evictable = now_ms - s.created_ms > config_.eviction_ms;
    if (s.evictable) evictable_.insert({s.cached_size, s.id});
}

void fetch_session_cache::remove(session& s) {
    lru_.erase({s.last_used_ms, s.id});
    if (s.evictable) evictable_.erase({s.cached_size, s.id});
    if (s.cached_size >= 0) cached_partitions_ -= static_cast<uint64_t>(s.cached_size);
    const size_t erased = sessions_.erase(s.id);  // destroys s
    FJORD_ASSERT(erased == 1, "removing a session not in the cache");
}

bool fetch_session_cache::try_evict(size_t new_size, int64_t now_ms) {
    if (lru_.empty()) return false;
    const auto [last_used_ms, lru_id] = *lru_.begin();
    if (now_ms - last_used_ms > config_.eviction_ms) {
        remove(*find(lru_id));
        ++counters_.sessions_evicted_stale;
        return true;
    }
    if (evictable_.empty()) return false;
    const auto [size, id] = *evictable_.begin();
    if (static_cast<int64_t>(new_size) <= size) return false;
    remove(*find(id));
    ++counters_.sessions_evicted_smaller;
    return true;
}

result<fetch_context, fetch_session_errc> fetch_session_cache::begin(const protocol::gen::fetch_request& request,
                                                                     int16_t version, int64_t now_ms,
                                                                     const topic_name_resolver& resolver) {
    const bool uses_topic_ids = version >= first_topic_id_version;
    fetch_context ctx;
    ctx.uses_topic_ids_ = uses_topic_ids;

    const int32_t id = version >= first_session_version ? request.session_id : 0;
    const int32_t epoch = version >= first_session_version ? request.session_epoch : final_epoch;

    if (epoch == final_epoch || epoch == initial_epoch) {
        // A full fetch closes the session it names.
        if (id != 0) {
            if (session* s = find(id)) {
                remove(*s);
                ++counters_.sessions_closed;
            }
        }
        if (epoch == final_epoch) {
            ctx.kind_ = fetch_kind::sessionless;
            ++counters_.sessionless_requests;
        } else {
            ctx.kind_ = fetch_kind::full;
            ++counters_.full_requests;
        }
        list_request_partitions(request, resolver, uses_topic_ids, ctx.topics_, ctx.partitions_);
        return ctx;
    }

    session* s = find(id);
    if (s == nullptr) {
        ++counters_.errors_session_id_not_found;
        return fail(fetch_session_errc::session_id_not_found);
    }
    if (s->epoch != epoch) {
        ++counters_.errors_invalid_session_epoch;
        return fail(fetch_session_errc::invalid_session_epoch);
    }
    if (s->uses_topic_ids != uses_topic_ids) {
        ++counters_.errors_topic_id;
        return fail(fetch_session_errc::topic_id_error);
    }

    // Add or update the request's partitions, then forget.
    for (const auto& t : request.topics) {
        const std::string_view name = uses_topic_ids ? std::string_view{} : std::string_view{t.topic};
        int32_t ti = s->find_topic(t.topic_id, name);
        for (const auto& p : t.partitions) {
            if (ti < 0) {
                std::optional<std::string_view> resolved;
                if (!uses_topic_ids) {
                    resolved = name;
                } else if (!t.topic_id.is_zero()) {
                    resolved = resolver.topic_name(t.topic_id);
                }
                ti = s->add_topic(t.topic_id, resolved.value_or(std::string_view{}), resolved.has_value());
            }
            int32_t slot = s->find_partition(ti, p.partition);
            if (slot < 0) slot = s->add_partition(ti, p.partition);
            set_params(s->parts[slot], p);
        }
    }
    for (const auto& f : request.forgotten_topics_data) {
        const std::string_view name = uses_topic_ids ? std::string_view{} : std::string_view{f.topic};
        for (int32_t partition : f.partitions) {
            // Looked up per partition: removing the last one frees the topic.
            const int32_t ti = s->find_topic(f.topic_id, name);
            if (ti < 0) break;
            const int32_t slot = s->find_partition(ti, partition);
            if (slot >= 0) s->remove_partition(slot);
        }
    }

    if (s->count == 0) {
        // Nothing left to fetch: close the session, serve the request sessionless.
        remove(*s);
        ++counters_.sessions_closed;
        ++counters_.sessionless_requests;
        ctx.kind_ = fetch_kind::sessionless;
        list_request_partitions(request, resolver, uses_topic_ids, ctx.topics_, ctx.partitions_);
        return ctx;
    }

    touch(*s, now_ms);
    s->epoch = next_session_epoch(s->epoch);
    ++counters_.incremental_requests;

    ctx.kind_ = fetch_kind::incremental;
    ctx.session_id_ = s->id;
    ctx.session_epoch_ = s->epoch;
    ctx.session_serial_ = s->serial;

    // Snapshot the session's topics (names resolved late where the id was
    // unknown before) and its partitions in session order.
    std::vector<int32_t> topic_map(s->topics.size(), -1);
    for (size_t t = 0; t < s->topics.size(); ++t) {
        session_topic& st = s->topics[t];
        if (st.partitions == 0) continue;
        if (uses_topic_ids && !st.name_known && !st.id.is_zero()) {
            if (auto resolved = resolver.topic_name(st.id)) {
                st.name.assign(*resolved);
                st.name_known = true;
            }
        }
        topic_map[t] = static_cast<int32_t>(ctx.topics_.size());
        ctx.topics_.push_back(fetch_topic_ref{st.id, st.name, st.name_known});
    }
    ctx.partitions_.reserve(s->count);
    ctx.slots_.reserve(s->count);
    for (int32_t slot = s->head; slot >= 0; slot = s->parts[slot].next) {
        const cached_partition& cp = s->parts[slot];
        const int32_t ti = topic_map[cp.topic];
        FJORD_ASSERT(ti >= 0, "session {} partition in a free topic slot {}", s->id, cp.topic);
        fetch_partition_ref& ref = ctx.partitions_.emplace_back();
        ref.topic = static_cast<uint32_t>(ti);
        ref.partition = cp.partition;
        ref.fetch_offset = cp.fetch_offset;
        ref.log_start_offset = cp.log_start_offset;
        ref.max_bytes = cp.max_bytes;
        ref.current_leader_epoch = cp.current_leader_epoch;
        ref.last_fetched_epoch = cp.last_fetched_epoch;
        ref.error_code = ctx.topics_[ti].name_known ? int16_t{0} : error::unknown_topic_id;
        ctx.slots_.push_back(slot);
    }
    FJORD_ASSERT(ctx.partitions_.size() == s->count, "session {}: {} partitions listed, {} cached", s->id,
                 ctx.partitions_.size(), s->count);
    return ctx;
}

void fetch_session_cache::select(fetch_context& ctx, std::span<const fetch_partition_result> results) const {
    FJORD_ASSERT(results.size() == ctx.partitions_.size(), "{} results for {} partitions", results.size(),
                 ctx.partitions_.size());
    if (ctx.kind_ != fetch_kind::incremental) {
        for (auto& p : ctx.partitions_) p.include = true;
        return;
    }
    const session* s = find(ctx.session_id_);
    const bool valid = s != nullptr && s->serial == ctx.session_serial_ && s->epoch == ctx.session_epoch_;
    for (size_t i = 0; i < results.size(); ++i) {
        ctx.partitions_[i].include = valid && must_respond(s->parts[ctx.slots_[i]], results[i]);
    }
}

fetch_response_plan fetch_session_cache::finish(fetch_context& ctx, std::span<const fetch_partition_result> results,
                                                int64_t now_ms) {
    FJORD_ASSERT(!ctx.finished_, "fetch_context finished twice");
    FJORD_ASSERT(results.size() == ctx.partitions_.size(), "{} results for {} partitions", results.size(),
                 ctx.partitions_.size());
    ctx.finished_ = true;

    switch (ctx.kind_) {
        case fetch_kind::sessionless:
            for (auto& p : ctx.partitions_) p.include = true;
            return {};

        case fetch_kind::full: {
            for (auto& p : ctx.partitions_) p.include = true;
            const size_t n = ctx.partitions_.size();
            if (sessions_.size() >= config_.max_sessions && !try_evict(n, now_ms)) {
                ++counters_.sessions_not_created;
                return {};
            }
            auto owned = std::make_unique<session>();
            session& s = *owned;
            s.id = new_session_id();
            s.serial = next_serial_++;
            s.uses_topic_ids = ctx.uses_topic_ids_;
            s.created_ms = now_ms;
            s.last_used_ms = now_ms;
            s.epoch = next_session_epoch(initial_epoch);
            s.parts.reserve(n);
            s.part_index.reserve(n);
            std::vector<int32_t> topic_map(ctx.topics_.size(), -1);
            for (size_t i = 0; i < n; ++i) {
                const fetch_partition_ref& p = ctx.partitions_[i];
                int32_t& ti = topic_map[p.topic];
                if (ti < 0) {
                    const fetch_topic_ref& t = ctx.topics_[p.topic];
                    ti = s.add_topic(t.id, t.name, t.name_known);
                }
                cached_partition& cp = s.parts[s.add_partition(ti, p.partition)];
                cp.fetch_offset = p.fetch_offset;
                cp.log_start_offset = p.log_start_offset;
                cp.max_bytes = p.max_bytes;
                cp.current_leader_epoch = p.current_leader_epoch;
                cp.last_fetched_epoch = p.last_fetched_epoch;
                record_sent(cp, results[i]);
            }
            lru_.insert({s.last_used_ms, s.id});
            sessions_.emplace(s.id, std::move(owned));
            touch(s, now_ms);
            ++counters_.sessions_created;
            return {0, s.id};
        }

        case fetch_kind::incremental: {
            session* s = find(ctx.session_id_);
            if (s == nullptr || s->serial != ctx.session_serial_) {
                // Closed or evicted while the partitions were read.
                ++counters_.errors_session_id_not_found;
                return {kafka_error_code(fetch_session_errc::session_id_not_found), 0};
            }
            if (s->epoch != ctx.session_epoch_) {
                // Another request for this session got in between (a duplicate).
                ++counters_.errors_invalid_session_epoch;
                return {kafka_error_code(fetch_session_errc::invalid_session_epoch), s->id};
            }
            for (size_t i = 0; i < results.size(); ++i) {
                const int32_t slot = ctx.slots_[i];
                cached_partition& cp = s->parts[slot];
                const bool include = must_respond(cp, results[i]);
                ctx.partitions_[i].include = include;
                if (!include) continue;
                record_sent(cp, results[i]);
                // Partitions that returned records go to the back of the
                // session order, so the next fetch serves the others first.
                if (results[i].has_records) s->move_to_tail(slot);
            }
            return {0, s->id};
        }
    }
    FJORD_UNREACHABLE("fetch_kind {}", static_cast<int>(ctx.kind_));
}

fetch_response_plan fetch_session_cache::finish_throttled(fetch_context& ctx) {
    FJORD_ASSERT(!ctx.finished_, "fetch_context finished twice");
    ctx.finished_ = true;
    for (auto& p : ctx.partitions_) p.include = false;
    if (ctx.kind_ != fetch_kind::incremental) return {};
    const session* s = find(ctx.session_id_);
    if (s == nullptr || s->serial != ctx.session_serial_) {
        ++counters_.errors_session_id_not_found;
        return {kafka_error_code(fetch_session_errc::session_id_not_found), 0};
    }
    if (s->epoch != ctx.session_epoch_) {
        ++counters_.errors_invalid_session_epoch;
        return {kafka_error_code(fetch_session_errc::invalid_session_epoch), s->id};
    }
    return {0, s->id};
}

std::optional<int32_t> fetch_session_cache::session_epoch_for_testing(int32_t session_id) const {
    const session* s = find(session_id);
    if (s == nullptr) return std::nullopt;
    return s->epoch;
}

void fetch_session_cache::set_session_epoch_for_testing(int32_t session_id, int32_t epoch) {
    session* s = find(session_id);
    FJORD_ASSERT(s != nullptr, "no session {}", session_id);
    s->epoch = epoch;
}

}  // namespace fjord::kafka
