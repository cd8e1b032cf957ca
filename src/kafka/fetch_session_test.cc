#include "kafka/fetch_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fjord::kafka {
namespace {

using protocol::uuid;
using protocol::gen::fetch_request;

constexpr int16_t v_sessionless = 6;
constexpr int16_t v_names = 12;
constexpr int16_t v_ids = 13;
constexpr int32_t max_i32 = std::numeric_limits<int32_t>::max();

uuid make_id(uint8_t n) {
    uuid u;
    u.bytes[0] = n;
    u.bytes[7] = 0x5a;
    u.bytes[15] = static_cast<uint8_t>(n * 3 + 1);
    return u;
}

struct topic_key {
    std::string name;
    uuid id;
};

const topic_key foo{"foo", make_id(1)};
const topic_key bar{"bar", make_id(2)};
const topic_key baz{"baz", make_id(3)};

class map_resolver : public topic_name_resolver {
public:
    std::map<std::array<uint8_t, 16>, std::string> names;
    mutable int calls = 0;

    void add(const topic_key& t) { names[t.id.bytes] = t.name; }
    void erase(const topic_key& t) { names.erase(t.id.bytes); }
    std::optional<std::string_view> topic_name(const uuid& id) const override {
        ++calls;
        auto it = names.find(id.bytes);
        if (it == names.end()) return std::nullopt;
        return it->second;
    }
};

struct req {
    fetch_request r;
    req(int32_t session_id, int32_t epoch) {
        r.session_id = session_id;
        r.session_epoch = epoch;
    }
    // Sets both the name and the id; the version decides which one counts.
    req& add(const topic_key& t, int32_t partition, int64_t fetch_offset = 0, int32_t max_bytes = 1024,
             int32_t leader_epoch = -1) {
        auto it = std::find_if(r.topics.begin(), r.topics.end(),
                               [&](const auto& ft) { return ft.topic == t.name && ft.topic_id == t.id; });
        if (it == r.topics.end()) {
            it = r.topics.insert(r.topics.end(), fetch_request::fetch_topic{});
            it->topic = t.name;
            it->topic_id = t.id;
        }
        fetch_request::fetch_partition p;
        p.partition = partition;
        p.fetch_offset = fetch_offset;
        p.partition_max_bytes = max_bytes;
        p.current_leader_epoch = leader_epoch;
        p.log_start_offset = -1;
        it->partitions.push_back(p);
        return *this;
    }
    req& forget(const topic_key& t, std::vector<int32_t> partitions) {
        fetch_request::forgotten_topic f;
        f.topic = t.name;
        f.topic_id = t.id;
        f.partitions = std::move(partitions);
        r.forgotten_topics_data.push_back(std::move(f));
        return *this;
    }
};

fetch_partition_result ok(int64_t hw, bool records = false) {
    fetch_partition_result r;
    r.high_watermark = hw;
    r.last_stable_offset = hw;
    r.log_start_offset = 0;
    r.has_records = records;
    return r;
}

fetch_partition_result err(int16_t code) {
    fetch_partition_result r;
    r.error_code = code;
    return r;
}

std::string key(const fetch_context& ctx, const fetch_partition_ref& p) {
    const auto& t = ctx.topic(p);
    std::string name = t.name_known ? t.name : std::string("?") + std::to_string(t.id.bytes[0]);
    return name + "-" + std::to_string(p.partition);
}

std::vector<std::string> listed(const fetch_context& ctx) {
    std::vector<std::string> out;
    for (const auto& p : ctx.partitions()) out.push_back(key(ctx, p));
    return out;
}

std::vector<std::string> included(const fetch_context& ctx) {
    std::vector<std::string> out;
    for (const auto& p : ctx.partitions()) {
        if (p.include) out.push_back(key(ctx, p));
    }
    return out;
}

using strings = std::vector<std::string>;

class fetch_session_test : public ::testing::Test {
protected:
    void make_cache(fetch_session_cache_config c) { cache = std::make_unique<fetch_session_cache>(c); }

    fetch_context begin_ok(const req& rq, int16_t version, int64_t now_ms) {
        auto ctx = cache->begin(rq.r, version, now_ms, resolver);
        EXPECT_TRUE(ctx.ok());
        return std::move(ctx).value();
    }

    fetch_session_errc begin_err(const req& rq, int16_t version, int64_t now_ms) {
        auto ctx = cache->begin(rq.r, version, now_ms, resolver);
        EXPECT_FALSE(ctx.ok());
        return ctx.ok() ? fetch_session_errc{} : ctx.error();
    }

    // A full fetch (0, 0) of `rq`'s partitions, each answered with high watermark `hw`.
    int32_t create_session(req rq, int16_t version, int64_t now_ms, int64_t hw = 10) {
        rq.r.session_id = 0;
        rq.r.session_epoch = 0;
        auto ctx = begin_ok(rq, version, now_ms);
        EXPECT_EQ(ctx.kind(), fetch_kind::full);
        std::vector<fetch_partition_result> results(ctx.partitions().size(), ok(hw));
        return cache->finish(ctx, results, now_ms).session_id;
    }

    // An incremental fetch in which nothing changed.
    fetch_response_plan idle_incremental(int32_t id, int32_t epoch, int16_t version, int64_t now_ms, int64_t hw = 10) {
        auto ctx = begin_ok(req(id, epoch), version, now_ms);
        std::vector<fetch_partition_result> results(ctx.partitions().size(), ok(hw));
        return cache->finish(ctx, results, now_ms);
    }

    std::unique_ptr<fetch_session_cache> cache = std::make_unique<fetch_session_cache>();
    map_resolver resolver;
};

// --- classification -------------------------------------------------------

TEST_F(fetch_session_test, below_v7_everything_is_sessionless) {
    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0);
    ASSERT_NE(id, 0);

    // v6 has no session fields on the wire; whatever the struct holds is ignored.
    for (int32_t epoch : {0, -1, 1}) {
        auto ctx = begin_ok(req(id, epoch).add(foo, 0, 5), v_sessionless, 1);
        EXPECT_EQ(ctx.kind(), fetch_kind::sessionless);
        EXPECT_EQ(listed(ctx), strings{"foo-0"});
        std::vector<fetch_partition_result> results{ok(10)};
        auto plan = cache->finish(ctx, results, 1);
        EXPECT_EQ(plan.session_id, 0);
        EXPECT_EQ(plan.error_code, 0);
        EXPECT_EQ(included(ctx), strings{"foo-0"});
    }
    EXPECT_EQ(cache->size(), 1u);  // not closed by the v6 requests
    EXPECT_EQ(cache->counters().sessionless_requests, 3u);
    EXPECT_EQ(cache->counters().sessions_created, 1u);
}

TEST_F(fetch_session_test, final_epoch_without_id_is_sessionless_full_fetch) {
    auto ctx = begin_ok(req(0, -1).add(foo, 0, 7, 100, 3).add(foo, 1, 8).add(bar, 2, 9), v_names, 0);
    EXPECT_EQ(ctx.kind(), fetch_kind::sessionless);
    EXPECT_EQ(ctx.session_id(), 0);
    ASSERT_EQ(listed(ctx), (strings{"foo-0", "foo-1", "bar-2"}));
    const auto& p = ctx.partitions()[0];
    EXPECT_EQ(p.fetch_offset, 7);
    EXPECT_EQ(p.max_bytes, 100);
    EXPECT_EQ(p.current_leader_epoch, 3);
    EXPECT_EQ(p.error_code, 0);
    std::vector<fetch_partition_result> results(3, ok(10));
    auto plan = cache->finish(ctx, results, 0);
    EXPECT_EQ(plan.session_id, 0);
    EXPECT_EQ(included(ctx).size(), 3u);
    EXPECT_EQ(cache->size(), 0u);
    EXPECT_EQ(cache->counters().sessionless_requests, 1u);
    EXPECT_EQ(cache->counters().full_requests, 0u);
}

TEST_F(fetch_session_test, initial_epoch_creates_session_starting_at_epoch_1) {
    auto ctx = begin_ok(req(0, 0).add(foo, 0).add(foo, 1), v_names, 0);
    EXPECT_EQ(ctx.kind(), fetch_kind::full);
    std::vector<fetch_partition_result> results{ok(10), err(6)};
    auto plan = cache->finish(ctx, results, 0);
    EXPECT_EQ(plan.error_code, 0);
    EXPECT_GT(plan.session_id, 0);
    EXPECT_EQ(included(ctx), (strings{"foo-0", "foo-1"}));  // full responses carry everything
    EXPECT_EQ(cache->size(), 1u);
    EXPECT_EQ(cache->cached_partitions(), 2u);
    EXPECT_EQ(cache->session_epoch_for_testing(plan.session_id), 1);
    EXPECT_EQ(cache->counters().full_requests, 1u);
    EXPECT_EQ(cache->counters().sessions_created, 1u);
}

TEST_F(fetch_session_test, full_fetch_with_no_partitions_creates_an_empty_session) {
    // As Kafka: the session exists; the next incremental fetch that leaves it
    // empty closes it and is served sessionless.
    const int32_t id = create_session(req(0, 0), v_names, 0);
    ASSERT_NE(id, 0);
    EXPECT_EQ(cache->size(), 1u);
    auto ctx = begin_ok(req(id, 1), v_names, 1);
    EXPECT_EQ(ctx.kind(), fetch_kind::sessionless);
    EXPECT_EQ(cache->size(), 0u);
    EXPECT_EQ(cache->finish(ctx, {}, 1).session_id, 0);
}

TEST_F(fetch_session_test, final_epoch_with_id_closes_session) {
    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0);
    auto ctx = begin_ok(req(id, -1).add(foo, 0), v_names, 1);
    EXPECT_EQ(ctx.kind(), fetch_kind::sessionless);
    EXPECT_EQ(cache->size(), 0u);
    EXPECT_EQ(cache->cached_partitions(), 0u);
    std::vector<fetch_partition_result> results{ok(10)};
    EXPECT_EQ(cache->finish(ctx, results, 1).session_id, 0);
    EXPECT_EQ(cache->counters().sessions_closed, 1u);
    EXPECT_EQ(begin_err(req(id, 1), v_names, 2), fetch_session_errc::session_id_not_found);
}

TEST_F(fetch_session_test, final_epoch_with_unknown_id_is_just_sessionless) {
    auto ctx = begin_ok(req(12345, -1).add(foo, 0), v_names, 0);
    EXPECT_EQ(ctx.kind(), fetch_kind::sessionless);
    EXPECT_EQ(cache->counters().sessions_closed, 0u);
}

TEST_F(fetch_session_test, initial_epoch_with_id_replaces_session) {
    const int32_t old_id = create_session(req(0, 0).add(foo, 0), v_names, 0);
    auto ctx = begin_ok(req(old_id, 0).add(bar, 0), v_names, 1);
    EXPECT_EQ(ctx.kind(), fetch_kind::full);
    EXPECT_EQ(cache->size(), 0u);  // closed at begin
    std::vector<fetch_partition_result> results{ok(3)};
    const int32_t new_id = cache->finish(ctx, results, 1).session_id;
    EXPECT_NE(new_id, 0);
    EXPECT_NE(new_id, old_id);
    EXPECT_EQ(cache->size(), 1u);
    EXPECT_EQ(cache->counters().sessions_closed, 1u);
    auto inc = begin_ok(req(new_id, 1), v_names, 2);
    EXPECT_EQ(listed(inc), strings{"bar-0"});
}

// --- incremental fetches ----------------------------------------------------

TEST_F(fetch_session_test, incremental_omits_unchanged_partitions) {
    const int32_t id = create_session(req(0, 0).add(foo, 0, 5).add(foo, 1, 6).add(bar, 0, 7), v_names, 0, 10);

    auto ctx = begin_ok(req(id, 1), v_names, 1);
    EXPECT_EQ(ctx.kind(), fetch_kind::incremental);
    EXPECT_EQ(ctx.session_id(), id);
    ASSERT_EQ(listed(ctx), (strings{"foo-0", "foo-1", "bar-0"}));
    EXPECT_EQ(ctx.partitions()[1].fetch_offset, 6);  // cached parameters
    std::vector<fetch_partition_result> results{ok(10), ok(10), ok(10)};
    auto plan = cache->finish(ctx, results, 1);
    EXPECT_EQ(plan.error_code, 0);
    EXPECT_EQ(plan.session_id, id);
    EXPECT_TRUE(included(ctx).empty());
    EXPECT_EQ(cache->session_epoch_for_testing(id), 2);

    auto ctx2 = begin_ok(req(id, 2), v_names, 2);
    std::vector<fetch_partition_result> results2{ok(10), ok(11), ok(10, /*records=*/true)};
    cache->finish(ctx2, results2, 2);
    EXPECT_EQ(included(ctx2), (strings{"foo-1", "bar-0"}));

    // What was sent is remembered: the same answer again is omitted.
    auto ctx3 = begin_ok(req(id, 3), v_names, 3);
    std::vector<fetch_partition_result> results3{ok(10), ok(11), ok(10)};
    cache->finish(ctx3, results3, 3);
    EXPECT_TRUE(included(ctx3).empty());
    EXPECT_EQ(cache->counters().incremental_requests, 3u);
}

TEST_F(fetch_session_test, each_kind_of_change_includes_a_partition) {
    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0, 10);
    int32_t epoch = 1;
    auto run = [&](fetch_partition_result r) {
        const int32_t e = epoch++;
        auto ctx = begin_ok(req(id, e), v_names, e);
        std::vector<fetch_partition_result> results{r};
        cache->finish(ctx, results, e);
        return ctx.partitions()[0].include;
    };
    fetch_partition_result base = ok(10);
    EXPECT_FALSE(run(base));

    auto lso = base;
    lso.last_stable_offset = 8;
    EXPECT_TRUE(run(lso));
    EXPECT_FALSE(run(lso));

    auto log_start = lso;
    log_start.log_start_offset = 4;
    EXPECT_TRUE(run(log_start));
    EXPECT_FALSE(run(log_start));

    auto replica = log_start;
    replica.preferred_read_replica = 2;
    EXPECT_TRUE(run(replica));
    EXPECT_TRUE(run(replica));  // always sent while there is one (as Kafka)

    auto diverging = log_start;
    diverging.diverging_epoch = true;
    EXPECT_TRUE(run(diverging));
    EXPECT_FALSE(run(log_start));

    // An error is always sent, and invalidates the cached high watermark so
    // the recovered partition is sent once even though nothing else changed.
    auto error = log_start;
    error.error_code = 6;
    EXPECT_TRUE(run(error));
    EXPECT_TRUE(run(error));
    EXPECT_TRUE(run(log_start));
    EXPECT_FALSE(run(log_start));
}

TEST_F(fetch_session_test, error_in_full_fetch_resends_partition_after_recovery) {
    auto ctx = begin_ok(req(0, 0).add(foo, 0), v_names, 0);
    fetch_partition_result e = err(6);
    e.high_watermark = 10;  // even if the handler reported one
    std::vector<fetch_partition_result> results{e};
    const int32_t id = cache->finish(ctx, results, 0).session_id;
    auto plan = idle_incremental(id, 1, v_names, 1, 10);
    EXPECT_EQ(plan.error_code, 0);
    auto ctx2 = begin_ok(req(id, 2), v_names, 2);
    std::vector<fetch_partition_result> results2{ok(10)};
    cache->finish(ctx2, results2, 2);
    EXPECT_TRUE(included(ctx2).empty());
}

TEST_F(fetch_session_test, incremental_adds_updates_and_forgets) {
    const int32_t id = create_session(req(0, 0).add(foo, 0, 5).add(foo, 1, 6), v_names, 0, 10);
    EXPECT_EQ(cache->cached_partitions(), 2u);

    auto ctx = begin_ok(req(id, 1).add(foo, 0, 50, 2048, 7).add(bar, 3, 1).forget(foo, {1}), v_names, 1);
    ASSERT_EQ(listed(ctx), (strings{"foo-0", "bar-3"}));
    const auto& updated = ctx.partitions()[0];
    EXPECT_EQ(updated.fetch_offset, 50);
    EXPECT_EQ(updated.max_bytes, 2048);
    EXPECT_EQ(updated.current_leader_epoch, 7);
    EXPECT_EQ(ctx.partitions()[1].fetch_offset, 1);
    EXPECT_EQ(cache->cached_partitions(), 2u);

    // A new partition is sent the first time (nothing was sent for it yet);
    // the updated one only if its state changed.
    std::vector<fetch_partition_result> results{ok(10), ok(3)};
    cache->finish(ctx, results, 1);
    EXPECT_EQ(included(ctx), strings{"bar-3"});

    // Forgetting an unknown partition or topic is harmless; re-adding works.
    auto ctx2 = begin_ok(req(id, 2).forget(baz, {0}).forget(bar, {9}).forget(bar, {3}).add(foo, 1, 60), v_names, 2);
    EXPECT_EQ(listed(ctx2), (strings{"foo-0", "foo-1"}));
    EXPECT_EQ(ctx2.partitions()[1].fetch_offset, 60);
}

TEST_F(fetch_session_test, forgetting_everything_closes_session_and_serves_sessionless) {
    const int32_t id = create_session(req(0, 0).add(foo, 0).add(foo, 1), v_names, 0);
    // Kafka adds before it forgets: a partition both fetched and forgotten is
    // gone from the session, but the (sessionless) request still reads it.
    auto ctx = begin_ok(req(id, 1).add(bar, 0).forget(foo, {0, 1}).forget(bar, {0}), v_names, 1);
    EXPECT_EQ(ctx.kind(), fetch_kind::sessionless);
    EXPECT_EQ(listed(ctx), strings{"bar-0"});
    EXPECT_EQ(cache->size(), 0u);
    EXPECT_EQ(cache->cached_partitions(), 0u);
    std::vector<fetch_partition_result> results{ok(1)};
    auto plan = cache->finish(ctx, results, 1);
    EXPECT_EQ(plan.session_id, 0);
    EXPECT_EQ(included(ctx), strings{"bar-0"});
    EXPECT_EQ(cache->counters().sessions_closed, 1u);
    EXPECT_EQ(cache->counters().sessionless_requests, 1u);
}

TEST_F(fetch_session_test, partitions_that_returned_records_move_to_the_back) {
    const int32_t id = create_session(req(0, 0).add(foo, 0).add(foo, 1).add(foo, 2).add(bar, 0), v_names, 0, 10);
    auto ctx = begin_ok(req(id, 1), v_names, 1);
    ASSERT_EQ(listed(ctx), (strings{"foo-0", "foo-1", "foo-2", "bar-0"}));
    std::vector<fetch_partition_result> results{ok(12, true), ok(10), ok(11), ok(13, true)};
    cache->finish(ctx, results, 1);
    EXPECT_EQ(included(ctx), (strings{"foo-0", "foo-2", "bar-0"}));
    auto ctx2 = begin_ok(req(id, 2), v_names, 2);
    // foo-2 changed without records: it keeps its place.
    EXPECT_EQ(listed(ctx2), (strings{"foo-1", "foo-2", "foo-0", "bar-0"}));
}

TEST_F(fetch_session_test, unknown_session_id) {
    EXPECT_EQ(begin_err(req(424242, 1), v_names, 0), fetch_session_errc::session_id_not_found);
    // Session id 0 with an incremental epoch names no session either.
    EXPECT_EQ(begin_err(req(0, 5), v_names, 0), fetch_session_errc::session_id_not_found);
    EXPECT_EQ(cache->counters().errors_session_id_not_found, 2u);
    EXPECT_EQ(kafka_error_code(fetch_session_errc::session_id_not_found), 70);
}

TEST_F(fetch_session_test, epoch_mismatch) {
    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0);
    EXPECT_EQ(begin_err(req(id, 2), v_names, 1), fetch_session_errc::invalid_session_epoch);
    EXPECT_EQ(begin_err(req(id, -5), v_names, 1), fetch_session_errc::invalid_session_epoch);
    EXPECT_EQ(cache->counters().errors_invalid_session_epoch, 2u);
    EXPECT_EQ(kafka_error_code(fetch_session_errc::invalid_session_epoch), 71);
    // The session is untouched: the right epoch still works, and a replay fails.
    EXPECT_EQ(idle_incremental(id, 1, v_names, 2).error_code, 0);
    EXPECT_EQ(begin_err(req(id, 1), v_names, 3), fetch_session_errc::invalid_session_epoch);
    EXPECT_EQ(idle_incremental(id, 2, v_names, 3).error_code, 0);
}

TEST_F(fetch_session_test, epoch_wraps_from_int32_max_to_1) {
    EXPECT_EQ(next_session_epoch(0), 1);
    EXPECT_EQ(next_session_epoch(1), 2);
    EXPECT_EQ(next_session_epoch(max_i32 - 1), max_i32);
    EXPECT_EQ(next_session_epoch(max_i32), 1);
    EXPECT_EQ(next_session_epoch(-1), -1);

    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0);
    cache->set_session_epoch_for_testing(id, max_i32 - 1);
    EXPECT_EQ(idle_incremental(id, max_i32 - 1, v_names, 1).error_code, 0);
    EXPECT_EQ(cache->session_epoch_for_testing(id), max_i32);
    EXPECT_EQ(idle_incremental(id, max_i32, v_names, 2).error_code, 0);
    EXPECT_EQ(cache->session_epoch_for_testing(id), 1);
    auto plan = idle_incremental(id, 1, v_names, 3);
    EXPECT_EQ(plan.error_code, 0);
    EXPECT_EQ(plan.session_id, id);
    EXPECT_EQ(cache->session_epoch_for_testing(id), 2);
}

TEST_F(fetch_session_test, duplicate_request_between_begin_and_finish) {
    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0, 10);
    auto first = begin_ok(req(id, 1), v_names, 1);
    // A second request with the next epoch arrives before the first finishes.
    auto second = begin_ok(req(id, 2), v_names, 1);
    std::vector<fetch_partition_result> results{ok(20)};
    auto plan = cache->finish(first, results, 1);
    EXPECT_EQ(plan.error_code, 71);
    EXPECT_EQ(plan.session_id, id);  // as Kafka
    EXPECT_TRUE(included(first).empty());
    // The first response recorded nothing: the second still sends the change.
    auto plan2 = cache->finish(second, results, 1);
    EXPECT_EQ(plan2.error_code, 0);
    EXPECT_EQ(included(second), strings{"foo-0"});
}

TEST_F(fetch_session_test, session_closed_between_begin_and_finish) {
    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0, 10);
    auto ctx = begin_ok(req(id, 1), v_names, 1);
    auto close = begin_ok(req(id, -1), v_names, 1);
    EXPECT_EQ(cache->size(), 0u);
    // The context owns what the handler reads from.
    EXPECT_EQ(listed(ctx), strings{"foo-0"});
    std::vector<fetch_partition_result> results{ok(20)};
    auto plan = cache->finish(ctx, results, 1);
    EXPECT_EQ(plan.error_code, 70);
    EXPECT_EQ(plan.session_id, 0);
    EXPECT_TRUE(included(ctx).empty());
}

TEST_F(fetch_session_test, reused_session_id_is_not_mistaken_for_the_old_session) {
    // With a two-id range, find a seed for which the replacement session gets
    // the id of the session it replaced.
    bool reused = false;
    for (uint64_t seed = 1; seed < 64 && !reused; ++seed) {
        make_cache({.max_sessions = 1, .session_id_min = 7, .session_id_max = 8, .seed = seed});
        const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0);
        auto ctx = begin_ok(req(id, 1), v_names, 1);
        auto replace = begin_ok(req(id, 0).add(bar, 0), v_names, 1);
        std::vector<fetch_partition_result> r1{ok(1)};
        const int32_t new_id = cache->finish(replace, r1, 1).session_id;
        if (new_id != id) continue;
        reused = true;
        cache->set_session_epoch_for_testing(new_id, 2);  // the epochs line up too
        std::vector<fetch_partition_result> results{ok(20)};
        auto plan = cache->finish(ctx, results, 1);
        EXPECT_EQ(plan.error_code, 70);
        EXPECT_EQ(plan.session_id, 0);
        EXPECT_TRUE(included(ctx).empty());
    }
    EXPECT_TRUE(reused);
}

TEST_F(fetch_session_test, throttled_response_changes_nothing) {
    auto full = begin_ok(req(0, 0).add(foo, 0), v_names, 0);
    auto plan = cache->finish_throttled(full);
    EXPECT_EQ(plan.session_id, 0);
    EXPECT_EQ(cache->size(), 0u);  // Kafka creates no session for a throttled full fetch

    const int32_t id = create_session(req(0, 0).add(foo, 0), v_names, 0, 10);
    auto ctx = begin_ok(req(id, 1), v_names, 1);
    auto tplan = cache->finish_throttled(ctx);
    EXPECT_EQ(tplan.error_code, 0);
    EXPECT_EQ(tplan.session_id, id);
    EXPECT_TRUE(included(ctx).empty());
    auto ctx2 = begin_ok(req(id, 2), v_names, 2);
    std::vector<fetch_partition_result> results{ok(20)};
    cache->finish(ctx2, results, 2);
    EXPECT_EQ(included(ctx2), strings{"foo-0"});
}

TEST_F(fetch_session_test, select_previews_without_updating) {
    const int32_t id = create_session(req(0, 0).add(foo, 0).add(foo, 1), v_names, 0, 10);
    auto ctx = begin_ok(req(id, 1), v_names, 1);
    std::vector<fetch_partition_result> results{ok(10), ok(11)};
    cache->select(ctx, results);
    EXPECT_EQ(included(ctx), strings{"foo-1"});
    cache->select(ctx, results);
    EXPECT_EQ(included(ctx), strings{"foo-1"});
    cache->finish(ctx, results, 1);
    EXPECT_EQ(included(ctx), strings{"foo-1"});
}

TEST_F(fetch_session_test, duplicate_partitions_in_a_request_keep_first_position_and_last_parameters) {
    req rq(0, 0);
    rq.add(foo, 0, 1).add(bar, 0, 2);
    rq.r.topics.push_back(rq.r.topics[0]);  // foo again
    rq.r.topics.back().partitions[0].fetch_offset = 99;
    auto ctx = begin_ok(rq, v_names, 0);
    ASSERT_EQ(listed(ctx), (strings{"foo-0", "bar-0"}));
    EXPECT_EQ(ctx.partitions()[0].fetch_offset, 99);
    std::vector<fetch_partition_result> results(2, ok(1));
    const int32_t id = cache->finish(ctx, results, 0).session_id;
    EXPECT_EQ(cache->cached_partitions(), 2u);
    auto inc = begin_ok(req(id, 1), v_names, 1);
    EXPECT_EQ(inc.partitions()[0].fetch_offset, 99);
}

// --- topic ids ----------------------------------------------------------------

TEST_F(fetch_session_test, v13_resolves_topic_ids_and_flags_unknown_ones) {
    resolver.add(foo);
    auto ctx = begin_ok(req(0, 0).add(foo, 0).add(bar, 1), v_ids, 0);
    EXPECT_TRUE(ctx.uses_topic_ids());
    ASSERT_EQ(ctx.partitions().size(), 2u);
    const auto& known = ctx.partitions()[0];
    const auto& unknown = ctx.partitions()[1];
    EXPECT_EQ(ctx.topic(known).name, "foo");
    EXPECT_TRUE(ctx.topic(known).name_known);
    EXPECT_EQ(ctx.topic(known).id, foo.id);
    EXPECT_EQ(known.error_code, 0);
    EXPECT_FALSE(ctx.topic(unknown).name_known);
    EXPECT_EQ(ctx.topic(unknown).id, bar.id);
    EXPECT_EQ(unknown.error_code, error::unknown_topic_id);
    EXPECT_EQ(unknown.error_code, 100);

    // The handler answers UNKNOWN_TOPIC_ID; the session keeps the partition
    // (as Kafka) and keeps answering it until forgotten or resolvable.
    std::vector<fetch_partition_result> results{ok(10), err(100)};
    const int32_t id = cache->finish(ctx, results, 0).session_id;
    ASSERT_NE(id, 0);
    auto inc = begin_ok(req(id, 1), v_ids, 1);
    ASSERT_EQ(inc.partitions().size(), 2u);
    EXPECT_EQ(inc.partitions()[1].error_code, 100);
    std::vector<fetch_partition_result> r1{ok(10), err(100)};
    cache->finish(inc, r1, 1);
    EXPECT_EQ(included(inc), strings{"?2-1"});

    // Once the broker learns the id, the cached partition resolves.
    resolver.add(bar);
    auto inc2 = begin_ok(req(id, 2), v_ids, 2);
    EXPECT_EQ(inc2.partitions()[1].error_code, 0);
    EXPECT_EQ(listed(inc2), (strings{"foo-0", "bar-1"}));
    std::vector<fetch_partition_result> r2{ok(10), ok(5)};
    cache->finish(inc2, r2, 2);
    EXPECT_EQ(included(inc2), strings{"bar-1"});
}

TEST_F(fetch_session_test, v13_keys_partitions_by_topic_id) {
    resolver.add(foo);
    const int32_t id = create_session(req(0, 0).add(foo, 0, 5), v_ids, 0);
    // The topic is deleted and recreated under the same name with a new id:
    // a different partition as far as the session is concerned.
    const topic_key foo2{"foo", make_id(9)};
    resolver.erase(foo);
    resolver.add(foo2);
    auto ctx = begin_ok(req(id, 1).add(foo2, 0, 0), v_ids, 1);
    ASSERT_EQ(ctx.partitions().size(), 2u);
    EXPECT_EQ(ctx.topic(ctx.partitions()[0]).id, foo.id);
    EXPECT_EQ(ctx.partitions()[0].fetch_offset, 5);
    EXPECT_EQ(ctx.partitions()[0].error_code, 0);  // the name stays cached, as in Kafka
    EXPECT_EQ(ctx.topic(ctx.partitions()[1]).id, foo2.id);
    EXPECT_EQ(ctx.partitions()[1].fetch_offset, 0);
    std::vector<fetch_partition_result> results{err(100), ok(0)};
    cache->finish(ctx, results, 1);

    // Forgetting is by id too (the name field is ignored at v13+).
    topic_key wrong_name{"nope", foo.id};
    auto ctx2 = begin_ok(req(id, 2).forget(wrong_name, {0}), v_ids, 2);
    ASSERT_EQ(ctx2.partitions().size(), 1u);
    EXPECT_EQ(ctx2.topic(ctx2.partitions()[0]).id, foo2.id);
}

TEST_F(fetch_session_test, below_v13_keys_partitions_by_name_and_ignores_ids) {
    const int32_t id = create_session(req(0, 0).add(foo, 0, 5), v_names, 0);
    const topic_key foo_other_id{"foo", make_id(9)};
    auto ctx = begin_ok(req(id, 1).add(foo_other_id, 0, 6), v_names, 1);
    ASSERT_EQ(ctx.partitions().size(), 1u);
    EXPECT_EQ(ctx.partitions()[0].fetch_offset, 6);
    EXPECT_TRUE(ctx.topic(ctx.partitions()[0]).id.is_zero());
    EXPECT_EQ(ctx.topic(ctx.partitions()[0]).name, "foo");
    EXPECT_EQ(resolver.calls, 0);  // names are on the wire; no lookups
}

TEST_F(fetch_session_test, topic_id_usage_must_match_the_session) {
    resolver.add(foo);
    const int32_t by_name = create_session(req(0, 0).add(foo, 0), v_names, 0);
    const int32_t by_id = create_session(req(0, 0).add(foo, 0), v_ids, 0);
    EXPECT_EQ(begin_err(req(by_name, 1), v_ids, 1), fetch_session_errc::topic_id_error);
    EXPECT_EQ(begin_err(req(by_id, 1), v_names, 1), fetch_session_errc::topic_id_error);
    EXPECT_EQ(cache->counters().errors_topic_id, 2u);
    EXPECT_EQ(kafka_error_code(fetch_session_errc::topic_id_error), 106);
    // Epoch is checked first, as in Kafka.
    EXPECT_EQ(begin_err(req(by_name, 5), v_ids, 1), fetch_session_errc::invalid_session_epoch);
    // The sessions survive and work at their own version.
    EXPECT_EQ(idle_incremental(by_name, 1, v_names, 2).error_code, 0);
    EXPECT_EQ(idle_incremental(by_id, 1, v_ids, 2).error_code, 0);
}

// --- cache size and eviction ----------------------------------------------------

TEST_F(fetch_session_test, full_cache_without_evictable_session_answers_sessionless) {
    make_cache({.max_sessions = 1, .eviction_ms = 100});
    const int32_t a = create_session(req(0, 0).add(foo, 0), v_names, 0);
    ASSERT_NE(a, 0);
    // A is neither stale nor old enough to be displaced by a bigger session.
    EXPECT_EQ(create_session(req(0, 0).add(foo, 0).add(foo, 1).add(foo, 2), v_names, 50), 0);
    EXPECT_EQ(cache->size(), 1u);
    EXPECT_EQ(cache->counters().sessions_not_created, 1u);
    EXPECT_EQ(cache->counters().sessions_evicted(), 0u);
    EXPECT_EQ(idle_incremental(a, 1, v_names, 60).error_code, 0);
}

TEST_F(fetch_session_test, zero_slots_never_create_sessions) {
    make_cache({.max_sessions = 0});
    EXPECT_EQ(create_session(req(0, 0).add(foo, 0), v_names, 0), 0);
    EXPECT_EQ(cache->size(), 0u);
}

TEST_F(fetch_session_test, stale_session_is_evicted) {
    make_cache({.max_sessions = 1, .eviction_ms = 100});
    const int32_t a = create_session(req(0, 0).add(foo, 0).add(foo, 1), v_names, 0);
    // Exactly eviction_ms idle is not yet stale.
    EXPECT_EQ(create_session(req(0, 0).add(bar, 0), v_names, 100), 0);
    const int32_t b = create_session(req(0, 0).add(bar, 0), v_names, 101);  // smaller, but A is stale
    ASSERT_NE(b, 0);
    EXPECT_EQ(cache->size(), 1u);
    EXPECT_EQ(cache->cached_partitions(), 1u);
    EXPECT_EQ(cache->counters().sessions_evicted_stale, 1u);
    EXPECT_EQ(begin_err(req(a, 1), v_names, 102), fetch_session_errc::session_id_not_found);
}

TEST_F(fetch_session_test, least_recently_used_stale_session_goes_first) {
    make_cache({.max_sessions = 2, .eviction_ms = 100});
    const int32_t a = create_session(req(0, 0).add(foo, 0), v_names, 0);
    const int32_t b = create_session(req(0, 0).add(foo, 0), v_names, 10);
    EXPECT_EQ(idle_incremental(a, 1, v_names, 20).error_code, 0);  // A used after B
    ASSERT_NE(create_session(req(0, 0).add(bar, 0), v_names, 200), 0);
    EXPECT_EQ(begin_err(req(b, 1), v_names, 201), fetch_session_errc::session_id_not_found);
    EXPECT_EQ(idle_incremental(a, 2, v_names, 201).error_code, 0);
}

TEST_F(fetch_session_test, older_smaller_session_is_displaced_by_a_larger_one) {
    make_cache({.max_sessions = 1, .eviction_ms = 100});
    const int32_t a = create_session(req(0, 0).add(foo, 0).add(foo, 1), v_names, 0);
    // Used at 150: older than eviction_ms when last touched, but not stale.
    EXPECT_EQ(idle_incremental(a, 1, v_names, 150).error_code, 0);
    // Same size: not displaced.
    EXPECT_EQ(create_session(req(0, 0).add(bar, 0).add(bar, 1), v_names, 200), 0);
    // Strictly larger: displaced.
    const int32_t b = create_session(req(0, 0).add(bar, 0).add(bar, 1).add(bar, 2), v_names, 200);
    ASSERT_NE(b, 0);
    EXPECT_EQ(cache->counters().sessions_evicted_smaller, 1u);
    EXPECT_EQ(cache->cached_partitions(), 3u);
    EXPECT_EQ(begin_err(req(a, 2), v_names, 201), fetch_session_errc::session_id_not_found);
}

TEST_F(fetch_session_test, session_not_used_since_creation_is_only_evicted_when_stale) {
    // Membership of the displaceable set is decided when a session is used,
    // as in Kafka: a session created at 0 and not used since is not
    // displaceable by size at 150, only once stale.
    make_cache({.max_sessions = 1, .eviction_ms = 200});
    ASSERT_NE(create_session(req(0, 0).add(foo, 0), v_names, 0), 0);
    EXPECT_EQ(create_session(req(0, 0).add(bar, 0).add(bar, 1), v_names, 150), 0);
    EXPECT_NE(create_session(req(0, 0).add(bar, 0).add(bar, 1), v_names, 201), 0);
    EXPECT_EQ(cache->counters().sessions_evicted_stale, 1u);
}

TEST_F(fetch_session_test, smallest_displaceable_session_is_evicted) {
    make_cache({.max_sessions = 3, .eviction_ms = 100});
    const int32_t big = create_session(req(0, 0).add(foo, 0).add(foo, 1).add(foo, 2), v_names, 0);
    const int32_t small = create_session(req(0, 0).add(foo, 0), v_names, 0);
    const int32_t young = create_session(req(0, 0).add(foo, 0), v_names, 90);
    EXPECT_EQ(idle_incremental(big, 1, v_names, 150).error_code, 0);
    EXPECT_EQ(idle_incremental(small, 1, v_names, 150).error_code, 0);
    EXPECT_EQ(idle_incremental(young, 1, v_names, 150).error_code, 0);  // only 60 ms old: protected
    ASSERT_NE(create_session(req(0, 0).add(bar, 0).add(bar, 1), v_names, 160), 0);
    EXPECT_EQ(begin_err(req(small, 2), v_names, 161), fetch_session_errc::session_id_not_found);
    EXPECT_EQ(idle_incremental(big, 2, v_names, 161).error_code, 0);
    EXPECT_EQ(idle_incremental(young, 2, v_names, 161).error_code, 0);
    EXPECT_EQ(cache->size(), 3u);
}

TEST_F(fetch_session_test, session_ids_are_nonzero_unique_and_in_range) {
    make_cache({.max_sessions = 10, .session_id_min = 1, .session_id_max = 12, .seed = 42});
    std::set<int32_t> ids;
    for (int i = 0; i < 10; ++i) {
        const int32_t id = create_session(req(0, 0).add(foo, i), v_names, i);
        ASSERT_GE(id, 1);
        ASSERT_LE(id, 12);
        ids.insert(id);
    }
    EXPECT_EQ(ids.size(), 10u);
    EXPECT_EQ(cache->size(), 10u);
    EXPECT_EQ(cache->counters().sessions_created, 10u);

    // Deterministic for a seed.
    std::vector<int32_t> first_ids;
    for (int i = 0; i < 2; ++i) {
        fetch_session_cache c({.seed = 7});
        auto ctx = c.begin(req(0, 0).add(foo, 0).r, v_names, 0, resolver);
        std::vector<fetch_partition_result> results{ok(1)};
        first_ids.push_back(c.finish(*ctx, results, 0).session_id);
    }
    EXPECT_EQ(first_ids[0], first_ids[1]);
}

TEST_F(fetch_session_test, counters_and_gauges) {
    const int32_t id = create_session(req(0, 0).add(foo, 0).add(foo, 1), v_names, 0);
    (void)begin_ok(req(0, -1).add(foo, 0), v_names, 0);
    EXPECT_EQ(idle_incremental(id, 1, v_names, 1).error_code, 0);
    auto ctx = begin_ok(req(id, 2).add(bar, 0).add(bar, 1).forget(foo, {0}), v_names, 2);
    EXPECT_EQ(cache->cached_partitions(), 3u);
    (void)begin_err(req(id, 9), v_names, 3);
    const auto& c = cache->counters();
    EXPECT_EQ(c.full_requests, 1u);
    EXPECT_EQ(c.sessionless_requests, 1u);
    EXPECT_EQ(c.incremental_requests, 2u);
    EXPECT_EQ(c.sessions_created, 1u);
    EXPECT_EQ(c.errors_invalid_session_epoch, 1u);
    EXPECT_EQ(cache->size(), 1u);
}

// Random incremental traffic against a simple model of the session: the
// listed partitions, their order and parameters, and the cached-partition
// gauge must match after every request.
TEST_F(fetch_session_test, random_incremental_traffic_matches_model) {
    // 40 partitions a topic grows the indexes; 4 empties and reuses topics often.
    for (auto [version, per_topic] :
         {std::pair{v_names, 40u}, std::pair{v_ids, 40u}, std::pair{v_names, 4u}, std::pair{v_ids, 4u}}) {
        cache = std::make_unique<fetch_session_cache>();
        const std::vector<topic_key> topics{foo, bar, baz};
        for (const auto& t : topics) resolver.add(t);
        std::mt19937 rng(version * 100 + per_topic);
        using pkey = std::pair<int, int32_t>;         // (topic index, partition)
        std::vector<std::pair<pkey, int64_t>> model;  // session order, fetch offset

        auto find = [&](pkey k) {
            return std::find_if(model.begin(), model.end(), [&](const auto& e) { return e.first == k; });
        };

        req first(0, 0);
        first.add(foo, 0, 0);
        model.push_back({{0, 0}, 0});
        const int32_t id = create_session(first, version, 0);
        ASSERT_NE(id, 0);
        int32_t epoch = 1;
        for (int step = 0; step < 3000; ++step) {
            req rq(id, epoch);
            const int adds = static_cast<int>(rng() % 4);
            for (int i = 0; i < adds; ++i) {
                const pkey k{static_cast<int>(rng() % 3), static_cast<int32_t>(rng() % per_topic)};
                const auto offset = static_cast<int64_t>(rng() % 1000);
                rq.add(topics[k.first], k.second, offset);
            }
            // The session applies adds in request order: grouped by topic.
            for (const auto& t : rq.r.topics) {
                const int ti = t.topic == foo.name ? 0 : t.topic == bar.name ? 1 : 2;
                for (const auto& p : t.partitions) {
                    auto it = find({ti, p.partition});
                    if (it == model.end()) {
                        model.push_back({{ti, p.partition}, p.fetch_offset});
                    } else {
                        it->second = p.fetch_offset;
                    }
                }
            }
            const int forgets = static_cast<int>(rng() % 4);
            for (int i = 0; i < forgets; ++i) {
                const pkey k{static_cast<int>(rng() % 3), static_cast<int32_t>(rng() % per_topic)};
                rq.forget(topics[k.first], {k.second});
                auto it = find(k);
                if (it != model.end()) model.erase(it);
            }
            if (model.empty()) {
                // Would close the session; put one back instead.
                rq.add(foo, 1000, 1);  // never forgotten (forgets pick partitions < per_topic)
                model.push_back({{0, 1000}, 1});
            }
            auto ctx = begin_ok(rq, version, step);
            ASSERT_EQ(ctx.kind(), fetch_kind::incremental);
            ASSERT_EQ(ctx.partitions().size(), model.size()) << "step " << step;
            ASSERT_EQ(cache->cached_partitions(), model.size());
            for (size_t i = 0; i < model.size(); ++i) {
                const auto& p = ctx.partitions()[i];
                ASSERT_EQ(ctx.topic(p).name, topics[model[i].first.first].name) << "step " << step;
                ASSERT_EQ(p.partition, model[i].first.second);
                ASSERT_EQ(p.fetch_offset, model[i].second);
            }
            // Some partitions return records and rotate to the back.
            std::vector<fetch_partition_result> results;
            std::vector<std::pair<pkey, int64_t>> rotated;
            std::vector<std::pair<pkey, int64_t>> kept;
            for (size_t i = 0; i < model.size(); ++i) {
                const bool records = rng() % 5 == 0;
                results.push_back(ok(step, records));
                (records ? rotated : kept).push_back(model[i]);
            }
            cache->finish(ctx, results, step);
            model = kept;
            model.insert(model.end(), rotated.begin(), rotated.end());
            epoch = next_session_epoch(epoch);
        }
    }
}

}  // namespace
}  // namespace fjord::kafka
