// Raft vocabulary: strong ids, log entries, configurations, snapshots and the
// messages that replicas exchange. Plain values; any thread may use them.
//
// Offsets are Kafka offsets (int64) and terms are Kafka leader epochs (int32),
// so a partition's log is its Raft log with no translation (ARCHITECTURE §5).
#pragma once

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "base/assert.h"
#include "base/bytes.h"

namespace fjord::raft {

// A number that must never mix with numbers of another kind.
template <typename T, typename Tag>
class strong {
public:
    using value_type = T;
    constexpr strong() = default;
    constexpr explicit strong(T v) : v_(v) {}
    constexpr T get() const { return v_; }
    friend constexpr auto operator<=>(strong, strong) = default;
    friend constexpr bool operator==(strong, strong) = default;

private:
    T v_{};
};

struct term_tag;
struct offset_tag;
struct node_tag;
struct group_tag;

// Raft term == Kafka leader epoch.
using term_id = strong<int32_t, term_tag>;
using node_id = strong<int32_t, node_tag>;
using group_id = strong<int64_t, group_tag>;

// Raft index == Kafka offset. Offsets are the one id with arithmetic.
class offset {
public:
    constexpr offset() = default;
    constexpr explicit offset(int64_t v) : v_(v) {}
    constexpr int64_t get() const { return v_; }
    friend constexpr auto operator<=>(offset, offset) = default;
    friend constexpr bool operator==(offset, offset) = default;
    friend constexpr offset operator+(offset a, int64_t n) { return offset(a.v_ + n); }
    friend constexpr offset operator-(offset a, int64_t n) { return offset(a.v_ - n); }
    friend constexpr int64_t operator-(offset a, offset b) { return a.v_ - b.v_; }

private:
    int64_t v_ = 0;
};

inline constexpr term_id next_term(term_id t) {
    return term_id(t.get() + 1);
}

inline constexpr offset no_offset{-1};
inline constexpr term_id no_term{0};

enum class entry_kind : uint8_t {
    data = 0,
    // Written by every new leader so that it commits an entry of its own term
    // before advancing the commit offset. In a partition log this is a Kafka
    // control batch (leader change) that consumers skip.
    leader_change = 1,
    // Payload: an encoded configuration (encode_configuration()).
    configuration = 2,
};

// One log entry: a Kafka record batch covering offsets [base, base+records).
// `term` is the batch's partition leader epoch.
struct entry {
    offset base;
    int32_t records = 1;
    term_id term;
    entry_kind kind = entry_kind::data;
    shared_bytes payload;

    offset last() const { return base + (records - 1); }
    offset next() const { return base + records; }
    // Bytes this entry counts for in batching and back-pressure.
    size_t size_bytes() const { return payload.size() + 61; }  // 61: a Kafka batch header
};

// The voters of a group. One server is added or removed at a time.
struct configuration {
    std::vector<node_id> voters;  // sorted, no duplicates

    bool contains(node_id n) const { return std::binary_search(voters.begin(), voters.end(), n); }
    size_t quorum() const { return voters.size() / 2 + 1; }
    friend bool operator==(const configuration&, const configuration&) = default;
};

shared_bytes encode_configuration(const configuration& c);
// The payload comes from disk or the network: checked, not asserted.
std::optional<configuration> decode_configuration(const shared_bytes& b);
configuration make_configuration(std::vector<node_id> voters);

struct snapshot_meta {
    offset last = no_offset;  // last offset the snapshot covers
    term_id last_term = no_term;
    configuration config;  // the configuration as of `last`
};

// State that must be durable before any message produced with it is sent.
struct hard_state {
    term_id term = no_term;
    std::optional<node_id> vote;
    friend bool operator==(const hard_state&, const hard_state&) = default;
};

// ---- messages ----

struct vote_request {
    bool pre_vote = false;
    bool transfer = false;  // leadership transfer: ignore leader stickiness
    term_id term;           // for a pre-vote: the term the candidate would use
    offset last_offset = no_offset;
    term_id last_term = no_term;
};

struct vote_reply {
    bool pre_vote = false;
    bool granted = false;
    term_id term;
};

struct append_request {
    term_id term;
    offset prev_offset = no_offset;
    term_id prev_term = no_term;
    offset commit = no_offset;
    std::vector<entry> entries;
};

struct append_reply {
    term_id term;
    bool success = false;
    // On success: the follower's log matches the leader's through `match` and
    // is durable through it. On rejection: the rejected prev_offset.
    offset match = no_offset;
    offset rejected = no_offset;
    offset last_offset = no_offset;   // the follower's last offset (hint)
    term_id conflict_term = no_term;  // the follower's term at `rejected` (hint)
};

struct heartbeat_request {
    term_id term;
    offset commit = no_offset;  // min(leader commit, follower's match)
    uint64_t seq = 0;           // read barrier round
};

struct heartbeat_reply {
    term_id term;
    uint64_t seq = 0;
    bool need_append = false;  // the follower cannot yet apply the leader's commit
};

struct snapshot_request {
    term_id term;
    snapshot_meta meta;
    shared_bytes data;
};

struct timeout_now {
    term_id term;
};

using message_body = std::variant<vote_request, vote_reply, append_request, append_reply, heartbeat_request,
                                  heartbeat_reply, snapshot_request, timeout_now>;

struct message {
    group_id group;
    node_id from;
    node_id to;
    message_body body;
};

// Bytes a message counts for on the network (approximate).
size_t message_bytes(const message& m);
const char* message_name(const message_body& b);

}  // namespace fjord::raft
