// Incremental fetch sessions (KIP-227): the session cache and the per-request
// fetch context the Fetch handler drives.
//
// What it is for: a Fetch request names a session (id, epoch). This component
// decides what kind of fetch that is (sessionless, full, incremental or a
// session error), merges an incremental request into the cached partition set,
// and, once the handler has read the partitions, decides which partitions go
// into the response and updates what the session remembers having sent. It
// does no I/O and owns no records: plain structs in, plain structs out. Time is
// always passed in (now_ms) and session ids come from a seeded generator, so
// behaviour is deterministic under test.
//
// Flow, per Fetch request:
//
//   auto ctx = cache.begin(request, version, now_ms, resolver);
//   if (!ctx) -> respond with kafka_error_code(ctx.error()), session_id 0, no partitions.
//   for (auto& p : ctx->partitions())     // request order (full) or session order (incremental)
//       if (p.error_code != 0) result = that error, no read   (UNKNOWN_TOPIC_ID)
//       else read ctx->topic(p) / p.partition at p.fetch_offset ... (may suspend)
//   auto plan = cache.finish(*ctx, results, now_ms);   // results index-aligned with partitions()
//   respond with plan.error_code, plan.session_id and the partitions with include == true,
//   in partitions() order (consecutive partitions of one topic share a topic entry; a
//   topic may appear more than once in an incremental response, as in Kafka).
//
// If the response is throttled, call finish_throttled() instead of finish(): it
// answers with no partitions and leaves the cached state unchanged, so nothing
// is lost for the next fetch. select() gives the partitions finish() would
// include without changing anything (for sizing a response before deciding).
//
// Sessions follow Apache Kafka's broker (FetchManager, FetchSessionCache):
// - Fetch below v7 is always sessionless.
// - (0, -1): sessionless full fetch. (id, -1): close id, sessionless full fetch.
// - (0, 0) / (id, 0): close id if given, full fetch; finish() creates a session
//   when the cache admits one (else the response carries session id 0).
// - (id, epoch) otherwise: incremental. Unknown id -> FETCH_SESSION_ID_NOT_FOUND;
//   epoch mismatch -> INVALID_FETCH_SESSION_EPOCH; a session created at v13+ used
//   below v13 or the reverse -> FETCH_SESSION_TOPIC_ID_ERROR. An incremental
//   request that leaves the session empty closes it and is served sessionless.
// - v13+ keys partitions by topic id, older versions by topic name.
// - Eviction when full: the least recently used session if unused for longer
//   than eviction_ms; else the smallest session that was older than eviction_ms
//   when last used, if the new session has strictly more partitions.
//
// Threading: single-threaded; one cache per shard, called only on that shard.
// A fetch_context may outlive its session (another request may close or evict
// it while the handler reads); finish() detects that. The cache must outlive
// every context it returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "kafka/errors.h"
#include "protocol/gen/fetch.h"
#include "protocol/wire.h"

namespace fjord::kafka {

// Session errors; the values are the Kafka error codes.
enum class fetch_session_errc : int16_t {
    session_id_not_found = 70,   // FETCH_SESSION_ID_NOT_FOUND
    invalid_session_epoch = 71,  // INVALID_FETCH_SESSION_EPOCH
    topic_id_error = 106,        // FETCH_SESSION_TOPIC_ID_ERROR
};

constexpr int16_t kafka_error_code(fetch_session_errc e) {
    return static_cast<int16_t>(e);
}

// The epoch that follows `epoch` (Kafka's FetchMetadata.nextEpoch): the final
// epoch stays final, INT32_MAX wraps to 1.
constexpr int32_t next_session_epoch(int32_t epoch) {
    if (epoch < 0) return -1;
    if (epoch == std::numeric_limits<int32_t>::max()) return 1;
    return epoch + 1;
}

// Maps a topic id to its name. Supplied by the caller (the metadata table);
// used for v13+ requests only. The returned view need only stay valid until
// the call returns.
class topic_name_resolver {
public:
    virtual ~topic_name_resolver() = default;
    virtual std::optional<std::string_view> topic_name(const protocol::uuid& id) const = 0;
};

struct fetch_session_cache_config {
    size_t max_sessions = 1000;     // max.incremental.fetch.session.cache.slots
    int64_t eviction_ms = 120'000;  // min.incremental.fetch.session.eviction.ms
    // Session ids are drawn uniformly from [session_id_min, session_id_max];
    // give shards disjoint ranges if sessions must be routable by id.
    int32_t session_id_min = 1;
    int32_t session_id_max = std::numeric_limits<int32_t>::max() - 1;
    uint64_t seed = 0x6a09e667f3bcc908;  // session id generator
};

// Monotonic counters for metrics; the gauges are methods on the cache.
struct fetch_session_counters {
    uint64_t sessionless_requests = 0;  // incl. < v7, epoch -1, incremental that emptied its session
    uint64_t full_requests = 0;         // epoch 0: may create a session
    uint64_t incremental_requests = 0;  // served from a session (begin succeeded)
    uint64_t sessions_created = 0;
    uint64_t sessions_not_created = 0;  // full fetch found the cache full and nothing evictable
    uint64_t sessions_closed = 0;       // by the client (epoch -1/0 with an id, or emptied)
    uint64_t sessions_evicted_stale = 0;
    uint64_t sessions_evicted_smaller = 0;
    uint64_t errors_session_id_not_found = 0;   // 70 (begin, or session gone at finish)
    uint64_t errors_invalid_session_epoch = 0;  // 71 (begin, or a concurrent request at finish)
    uint64_t errors_topic_id = 0;               // 106
    uint64_t sessions_evicted() const { return sessions_evicted_stale + sessions_evicted_smaller; }
};

enum class fetch_kind : uint8_t { sessionless, full, incremental };

// A topic of a fetch context. For v13+ `id` is the key and `name` is set only
// if the resolver knew the id (name_known); below v13 `name` is the key and
// `id` is zero.
struct fetch_topic_ref {
    protocol::uuid id{};
    std::string name;
    bool name_known = false;
};

// One partition to read, with the fetcher's parameters.
struct fetch_partition_ref {
    uint32_t topic = 0;  // index into fetch_context::topics()
    int32_t partition = 0;
    int64_t fetch_offset = 0;
    int64_t log_start_offset = -1;  // the fetcher's (followers); -1 for consumers
    int32_t max_bytes = 0;
    int32_t current_leader_epoch = -1;
    int32_t last_fetched_epoch = -1;
    // Non-zero: do not read; answer this error (UNKNOWN_TOPIC_ID).
    int16_t error_code = 0;
    // Set by finish()/select(): whether the response carries this partition.
    bool include = false;
};

// What the handler learned reading one partition; only what the session needs.
struct fetch_partition_result {
    int16_t error_code = 0;
    int64_t high_watermark = -1;
    int64_t last_stable_offset = -1;
    int64_t log_start_offset = -1;
    int32_t preferred_read_replica = -1;
    bool has_records = false;      // a non-empty records field
    bool diverging_epoch = false;  // diverging_epoch is set
};

// Top-level response fields decided by finish().
struct fetch_response_plan {
    int16_t error_code = 0;  // non-zero: send no partitions
    int32_t session_id = 0;
};

class fetch_session_cache;

class fetch_context {
public:
    fetch_kind kind() const { return kind_; }
    bool uses_topic_ids() const { return uses_topic_ids_; }
    std::span<const fetch_topic_ref> topics() const { return topics_; }
    std::span<const fetch_partition_ref> partitions() const { return partitions_; }
    const fetch_topic_ref& topic(const fetch_partition_ref& p) const { return topics_[p.topic]; }
    // The session this fetch belongs to (0 for sessionless and full fetches).
    int32_t session_id() const { return session_id_; }

private:
    friend class fetch_session_cache;
    fetch_context() = default;

    fetch_kind kind_ = fetch_kind::sessionless;
    bool uses_topic_ids_ = false;
    bool finished_ = false;
    int32_t session_id_ = 0;
    int32_t session_epoch_ = 0;  // the session's epoch after begin()
    uint64_t session_serial_ = 0;
    std::vector<fetch_topic_ref> topics_;
    std::vector<fetch_partition_ref> partitions_;
    std::vector<int32_t> slots_;  // incremental: the session slot of each partition
};

class fetch_session_cache {
public:
    explicit fetch_session_cache(fetch_session_cache_config config = {});
    ~fetch_session_cache();
    fetch_session_cache(const fetch_session_cache&) = delete;
    fetch_session_cache& operator=(const fetch_session_cache&) = delete;

    // Classifies the request, applies an incremental request to its session
    // and returns the partitions to read. An error is the response's top-level
    // error; the response then has session id 0 and no partitions.
    [[nodiscard]] result<fetch_context, fetch_session_errc> begin(const protocol::gen::fetch_request& request,
                                                                  int16_t version, int64_t now_ms,
                                                                  const topic_name_resolver& resolver);

    // Decides the response: sets partitions()[i].include, creates the session
    // of a full fetch, records what an incremental response sent. `results` is
    // index-aligned with ctx.partitions(). Call once per context.
    fetch_response_plan finish(fetch_context& ctx, std::span<const fetch_partition_result> results, int64_t now_ms);

    // An empty (throttled) response: no session is created and the cached
    // state is left as it was. Call instead of finish().
    fetch_response_plan finish_throttled(fetch_context& ctx);

    // Sets partitions()[i].include as finish() would, changing nothing else.
    void select(fetch_context& ctx, std::span<const fetch_partition_result> results) const;

    const fetch_session_counters& counters() const { return counters_; }
    size_t size() const { return sessions_.size(); }
    uint64_t cached_partitions() const { return cached_partitions_; }
    const fetch_session_cache_config& config() const { return config_; }

    // Tests: the epoch the session expects next, and forcing it.
    std::optional<int32_t> session_epoch_for_testing(int32_t session_id) const;
    void set_session_epoch_for_testing(int32_t session_id, int32_t epoch);

private:
    struct session;                                     // defined in fetch_session.cc
    using lru_key = std::pair<int64_t, int32_t>;        // (last used ms, id)
    using evictable_key = std::pair<int64_t, int32_t>;  // (cached size, id)

    session* find(int32_t id) const;
    void remove(session& s);
    void touch(session& s, int64_t now_ms);
    bool try_evict(size_t new_size, int64_t now_ms);
    int32_t new_session_id();

    fetch_session_cache_config config_;
    uint64_t rng_state_;
    uint64_t next_serial_ = 1;
    uint64_t cached_partitions_ = 0;
    std::unordered_map<int32_t, std::unique_ptr<session>> sessions_;
    std::set<lru_key> lru_;
    std::set<evictable_key> evictable_;  // sessions older than eviction_ms when last touched
    fetch_session_counters counters_;
};

}  // namespace fjord::kafka
