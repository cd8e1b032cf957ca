#include "kafka/group_coordinator.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <re2/re2.h>

#include "base/logger.h"
#include "base/metrics.h"
#include "groups/assignors.h"
#include "groups/group_records.h"
#include "kafka/broker.h"
#include "kafka/errors.h"
#include "protocol/record_batch.h"
#include "storage/async_read.h"

namespace fjord::kafka {
namespace gen = protocol::gen;
namespace asio = net::asio;
using groups::decode_group_value;
using groups::decode_key;
using groups::decode_offset_value;
using groups::encode_key;
using groups::encode_value;
using groups::group_key;
using groups::group_member_value;
using groups::group_partition;
using groups::group_value;
using groups::offset_key;
using groups::offset_value;
using groups::record_key;

namespace {
counter rebalances("fjord_group_rebalances_total", "Classic group generations completed (join phases)");
counter offset_commits("fjord_group_offset_commits_total", "Partitions committed by OffsetCommit");
counter groups_gauge("fjord_groups", "Groups held by the coordinators of this node", true);

int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

enum class gstate : uint8_t { empty, preparing, completing, stable, dead };

std::string_view state_name(gstate s) {
    switch (s) {
        case gstate::empty: return "Empty";
        case gstate::preparing: return "PreparingRebalance";
        case gstate::completing: return "CompletingRebalance";
        case gstate::stable: return "Stable";
        case gstate::dead: return "Dead";
    }
    return "Dead";
}

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

struct join_wait {
    explicit join_wait(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    int16_t version = 0;
    gen::join_group_response resp;
};

struct sync_wait {
    explicit sync_wait(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    int16_t error = 0;
    shared_bytes assignment;
};

using protocol_list = std::vector<std::pair<std::string, shared_bytes>>;

struct group_member {
    std::string id;
    std::optional<std::string> instance_id;
    std::string client_id;
    std::string client_host;
    int32_t rebalance_timeout = 0;
    int32_t session_timeout = 0;
    std::string protocol_type;
    protocol_list protocols;
    shared_bytes assignment;
    std::shared_ptr<join_wait> join;
    std::shared_ptr<sync_wait> sync;
    int64_t deadline = 0;  // steady ms: the session expires (unless joining or syncing)
    uint64_t seq = 0;      // join order

    const shared_bytes* metadata(const std::string& protocol) const {
        for (const auto& [name, md] : protocols) {
            if (name == protocol) return &md;
        }
        return nullptr;
    }
};

bool same_protocols(const protocol_list& a, const protocol_list& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].first != b[i].first || a[i].second.span().size() != b[i].second.span().size() ||
            !std::equal(a[i].second.span().begin(), a[i].second.span().end(), b[i].second.span().begin())) {
            return false;
        }
    }
    return true;
}
}  // namespace

// A member of a consumer-protocol group (KIP-848).
struct consumer_member {
    std::string id;
    std::optional<std::string> instance_id;
    std::optional<std::string> rack_id;
    std::string client_id;
    std::string client_host;
    int32_t rebalance_timeout = 300000;
    std::vector<std::string> topic_names;
    std::optional<std::string> regex;
    std::optional<std::string> assignor;
    int32_t epoch = 0;
    int32_t previous_epoch = -1;
    // stable: has its target; unrevoked: must give up `revoking` first;
    // unreleased: has its target epoch, waits for partitions others still own.
    enum class mstate : uint8_t { stable, unrevoked, unreleased } state = mstate::stable;
    groups::assignment assigned;
    groups::assignment revoking;
    bool assignment_changed = true;  // not yet sent in a heartbeat answer
    int64_t deadline = 0;            // steady ms: the session expires
    int64_t revoke_deadline = 0;     // steady ms: must have revoked by then
};

struct committed_offset {
    int64_t offset = 0;
    int32_t leader_epoch = -1;
    std::string metadata;
    int64_t commit_ts = 0;
    int64_t expire_ts = -1;
};

struct group_state {
    std::string id;
    int32_t partition = 0;
    gstate state = gstate::empty;
    std::optional<std::string> protocol_type;
    std::optional<std::string> protocol;
    int32_t generation = 0;
    std::optional<std::string> leader;
    std::map<std::string, group_member> members;
    std::map<std::string, std::string> statics;  // group.instance.id -> member id
    std::map<std::string, int64_t> pending;      // member ids handed out (KIP-394) -> expiry
    std::map<std::pair<std::string, int32_t>, committed_offset> offsets;
    int64_t state_ts = -1;  // wall ms of the last state change
    int64_t join_deadline = 0;
    bool initial_delay = false;
    bool joined_in_delay = false;
    int64_t delay_remaining = 0;
    bool has_metadata = false;  // a group record exists (loading)
    // The consumer protocol (KIP-848): a group is one or the other.
    bool consumer = false;
    int32_t group_epoch = 0;
    int32_t assignment_epoch = 0;
    std::map<std::string, consumer_member> cmembers;
    std::map<std::string, groups::assignment> target;
    groups::topic_partitions subscribed;  // what the target was computed for
    std::string assignor_used;
    // What the log holds for this consumer group, so only changes are
    // written: the epochs and each member's records 5, 7 and 8 as encoded.
    int32_t persisted_epoch = -1;
    int32_t persisted_assignment_epoch = -1;
    std::map<std::string, std::array<std::vector<uint8_t>, 3>> persisted;

    bool all_joined() const {
        if (!pending.empty()) return false;
        for (const auto& [id, m] : members) {
            if (!m.join) return false;
        }
        return true;
    }
    int32_t max_rebalance_timeout() const {
        int32_t t = 0;
        for (const auto& [id, m] : members) t = std::max(t, m.rebalance_timeout);
        return t;
    }
    // Protocols every member supports, in the order of the first member's preference.
    std::vector<std::string> candidates() const {
        std::vector<std::string> out;
        if (members.empty()) return out;
        for (const auto& [name, md] : members.begin()->second.protocols) {
            bool all = std::all_of(members.begin(), members.end(),
                                   [&](const auto& kv) { return kv.second.metadata(name) != nullptr; });
            if (all) out.push_back(name);
        }
        return out;
    }
    bool supports(const std::string& type, const protocol_list& protocols) const {
        if (members.empty()) return !type.empty() && !protocols.empty();
        if (!protocol_type || *protocol_type != type) return false;
        auto c = candidates();
        return std::any_of(protocols.begin(), protocols.end(),
                           [&](const auto& p) { return std::find(c.begin(), c.end(), p.first) != c.end(); });
    }
    std::string select_protocol() const {
        auto c = candidates();
        std::map<std::string, int> votes;
        for (const auto& [id, m] : members) {
            for (const auto& [name, md] : m.protocols) {
                if (std::find(c.begin(), c.end(), name) != c.end()) {
                    ++votes[name];
                    break;
                }
            }
        }
        std::string best;
        int most = -1;
        for (const auto& name : c) {
            if (votes[name] > most) most = votes[name], best = name;
        }
        return best;
    }
    // Topics the members subscribe to (consumer protocol), for OffsetDelete
    // and offset expiry.
    std::set<std::string> subscribed_topics() const {
        std::set<std::string> out;
        if (protocol_type != "consumer" || !protocol) return out;
        for (const auto& [id, m] : members) {
            const shared_bytes* md = m.metadata(*protocol);
            if (!md) continue;
            protocol::reader r(*md);
            r.i16();
            int32_t n = r.array_length(false);
            for (int32_t i = 0; i < n && r.ok(); ++i) {
                int32_t len = r.string_length(false);
                if (len < 0) break;
                out.insert(r.str(static_cast<size_t>(len)));
            }
        }
        return out;
    }
};

// The consumer protocol's operations (KIP-848).
struct consumer_ops {
    using mstate = consumer_member::mstate;

    static bool internal_topic(const std::string& name) {
        return name == offsets_topic || name == "__transaction_state";
    }

    // A compiled subscription regex (RE2: linear time, the syntax Kafka's
    // RE2/J accepts); null when it does not compile.
    static const re2::RE2* compiled(const std::string& pattern) {
        static thread_local std::map<std::string, std::unique_ptr<re2::RE2>> cache;
        auto it = cache.find(pattern);
        if (it != cache.end()) return it->second->ok() ? it->second.get() : nullptr;
        if (cache.size() > 1000) cache.clear();
        re2::RE2::Options o;
        o.set_log_errors(false);
        auto re = std::make_unique<re2::RE2>(pattern, o);
        const re2::RE2* out = re->ok() ? re.get() : nullptr;
        cache[pattern] = std::move(re);
        return out;
    }

    // The topics a member subscribes to that exist now.
    static std::set<std::string> member_topics(const cluster::metadata_image& img, const consumer_member& m) {
        std::set<std::string> out;
        for (const auto& t : m.topic_names) {
            if (img.find_topic(t)) out.insert(t);
        }
        if (m.regex) {
            if (const auto* re = compiled(*m.regex)) {
                for (const auto& [name, info] : img.topics()) {
                    if (!internal_topic(name) && re2::RE2::FullMatch(name, *re)) out.insert(name);
                }
            }
        }
        return out;
    }

    static groups::topic_partitions subscription(const cluster::metadata_image& img, const group_state& g) {
        groups::topic_partitions out;
        for (const auto& [id, m] : g.cmembers) {
            for (const auto& t : member_topics(img, m)) {
                out[t] = static_cast<int32_t>(img.find_topic(t)->partitions.size());
            }
        }
        return out;
    }

    static std::string choose_assignor(const group_coordinator& gc, const group_state& g) {
        std::map<std::string, int> votes;
        for (const auto& [id, m] : g.cmembers) {
            if (m.assignor) ++votes[*m.assignor];
        }
        std::string best = gc.sh_.owner.config().consumer_assignors.front();
        int most = 0;
        for (const auto& [name, n] : votes) {
            if (n > most) most = n, best = name;
        }
        return best;
    }

    // A new group epoch when membership or what it subscribes to changed;
    // then a new target assignment.
    static void bump(group_coordinator& gc, group_state& g, bool membership_changed) {
        const auto& img = *gc.sh_.image;
        auto sub = subscription(img, g);
        if (membership_changed || sub != g.subscribed) {
            ++g.group_epoch;
            g.subscribed = std::move(sub);
        }
        if (g.group_epoch <= g.assignment_epoch) return;
        groups::assignor_input in;
        for (const auto& [id, m] : g.cmembers) {
            auto& am = in[id];
            am.topics = member_topics(img, m);
            auto t = g.target.find(id);
            if (t != g.target.end()) am.current = t->second;
        }
        g.assignor_used = choose_assignor(gc, g);
        g.target = g.assignor_used == "range" ? groups::assign_range(in, g.subscribed)
                                              : groups::assign_uniform(in, g.subscribed);
        g.assignment_epoch = g.group_epoch;
    }

    static bool owned_by_other(const group_state& g, const std::string& self, const std::string& topic, int32_t p) {
        for (const auto& [id, m] : g.cmembers) {
            if (id == self) continue;
            auto a = m.assigned.find(topic);
            if (a != m.assigned.end() && a->second.count(p)) return true;
            auto r = m.revoking.find(topic);
            if (r != m.revoking.end() && r->second.count(p)) return true;
        }
        return false;
    }

    static bool has_any(const groups::assignment& a, const groups::assignment& owned) {
        for (const auto& [t, ps] : owned) {
            auto it = a.find(t);
            if (it == a.end()) continue;
            for (int32_t p : ps) {
                if (it->second.count(p)) return true;
            }
        }
        return false;
    }

    static bool subset(const groups::assignment& small, const groups::assignment& big) {
        for (const auto& [t, ps] : small) {
            auto it = big.find(t);
            for (int32_t p : ps) {
                if (it == big.end() || !it->second.count(p)) return false;
            }
        }
        return true;
    }

    // Moves the member towards the target (Kafka's reconciliation): revoke
    // what it must give up first, then take the new epoch and every target
    // partition no other member still holds.
    static void reconcile(group_state& g, consumer_member& m, const std::optional<groups::assignment>& owned,
                          int64_t now) {
        if (m.state == mstate::unrevoked) {
            // Revoked once what it reports owning holds none of them.
            if (!owned || has_any(m.revoking, *owned)) return;
            m.revoking.clear();
            m.state = mstate::stable;
        }
        const auto& target = g.target[m.id];
        if (m.epoch == g.assignment_epoch && m.state == mstate::stable) return;
        groups::assignment keep, revoke;
        for (const auto& [t, ps] : m.assigned) {
            auto it = target.find(t);
            for (int32_t p : ps) {
                if (it != target.end() && it->second.count(p)) {
                    keep[t].insert(p);
                } else {
                    revoke[t].insert(p);
                }
            }
        }
        if (!revoke.empty()) {
            m.assigned = std::move(keep);
            m.revoking = std::move(revoke);
            m.state = mstate::unrevoked;
            m.revoke_deadline = now + m.rebalance_timeout;
            m.assignment_changed = true;
            return;
        }
        bool waiting = false;
        groups::assignment next = keep;
        for (const auto& [t, ps] : target) {
            for (int32_t p : ps) {
                if (next.count(t) && next[t].count(p)) continue;
                if (owned_by_other(g, m.id, t, p)) {
                    waiting = true;
                } else {
                    next[t].insert(p);
                }
            }
        }
        if (next != m.assigned) m.assignment_changed = true;
        m.assigned = std::move(next);
        if (m.epoch != g.assignment_epoch) {
            m.previous_epoch = m.epoch;
            m.epoch = g.assignment_epoch;
        }
        m.state = waiting ? mstate::unreleased : mstate::stable;
    }

    static void remove(group_coordinator& gc, group_state& g, const std::string& id) {
        auto it = g.cmembers.find(id);
        if (it == g.cmembers.end()) return;
        if (it->second.instance_id) g.statics.erase(*it->second.instance_id);
        g.cmembers.erase(it);
        g.target.erase(id);
        bump(gc, g, true);
        g.state_ts = wall_ms();
    }

    static std::string_view state(const group_state& g) {
        if (g.cmembers.empty()) return "Empty";
        if (g.group_epoch != g.assignment_epoch) return "Assigning";
        for (const auto& [id, m] : g.cmembers) {
            if (m.epoch != g.assignment_epoch || m.state != mstate::stable) return "Reconciling";
        }
        return "Stable";
    }

    static std::optional<groups::assignment> by_name(
        const cluster::metadata_image& img,
        const std::optional<std::vector<gen::consumer_group_heartbeat_request::topic_partitions_data>>& tps) {
        if (!tps) return std::nullopt;
        groups::assignment out;
        for (const auto& tp : *tps) {
            const auto* info = img.find_topic(tp.topic_id);
            if (!info) continue;
            for (int32_t p : tp.partitions) out[info->name].insert(p);
        }
        return out;
    }

    template <typename TopicPartitions>
    static std::vector<TopicPartitions> by_id(const cluster::metadata_image& img, const groups::assignment& a,
                                              bool with_names) {
        std::vector<TopicPartitions> out;
        for (const auto& [t, ps] : a) {
            const auto* info = img.find_topic(t);
            if (!info || ps.empty()) continue;
            TopicPartitions tp;
            tp.topic_id = info->id;
            if constexpr (requires { tp.topic_name; }) {
                if (with_names) tp.topic_name = t;
            }
            tp.partitions.assign(ps.begin(), ps.end());
            out.push_back(std::move(tp));
        }
        return out;
    }

    using record = std::pair<std::vector<uint8_t>, std::optional<std::vector<uint8_t>>>;

    static groups::id_partitions ids(const cluster::metadata_image& img, const groups::assignment& a) {
        groups::id_partitions out;
        for (const auto& [t, ps] : a) {
            const auto* info = img.find_topic(t);
            if (!info || ps.empty()) continue;
            out.emplace_back(info->id, std::vector<int32_t>(ps.begin(), ps.end()));
        }
        return out;
    }

    static groups::assignment names(const cluster::metadata_image& img, const groups::id_partitions& a) {
        groups::assignment out;
        for (const auto& [id, ps] : a) {
            if (const auto* info = img.find_topic(id)) out[info->name].insert(ps.begin(), ps.end());
        }
        return out;
    }

    static std::array<std::vector<uint8_t>, 3> encode_member(const cluster::metadata_image& img, const group_state& g,
                                                             const consumer_member& m) {
        groups::consumer_member_value mv{m.instance_id, m.rack_id, m.client_id,         m.client_host,
                                         m.topic_names, m.regex,   m.rebalance_timeout, m.assignor};
        auto t = g.target.find(m.id);
        groups::consumer_current_value cv{m.epoch, m.previous_epoch, static_cast<int8_t>(m.state), ids(img, m.assigned),
                                          ids(img, m.revoking)};
        return {groups::encode_value(mv),
                groups::encode_value(t == g.target.end() ? groups::id_partitions{} : ids(img, t->second)),
                groups::encode_value(cv)};
    }

    // The records that bring the log up to this group's state, in Kafka's
    // order (members, group epoch, targets, assignment epoch, current
    // assignments); the group then counts as persisted.
    static std::vector<record> changes(const cluster::metadata_image& img, group_state& g) {
        using groups::consumer_key;
        using groups::consumer_record;
        std::vector<record> members, epoch, targets, target_epoch, current, gone;
        std::map<std::string, std::array<std::vector<uint8_t>, 3>> now;
        for (const auto& [id, m] : g.cmembers) {
            auto enc = encode_member(img, g, m);
            auto old = g.persisted.find(id);
            const bool known = old != g.persisted.end();
            if (!known || old->second[0] != enc[0]) {
                members.emplace_back(encode_key(consumer_key{consumer_record::member_metadata, g.id, id}), enc[0]);
            }
            if (!known || old->second[1] != enc[1]) {
                targets.emplace_back(encode_key(consumer_key{consumer_record::target_member, g.id, id}), enc[1]);
            }
            if (!known || old->second[2] != enc[2]) {
                current.emplace_back(encode_key(consumer_key{consumer_record::current_assignment, g.id, id}), enc[2]);
            }
            now[id] = std::move(enc);
        }
        for (const auto& [id, enc] : g.persisted) {
            if (now.count(id)) continue;
            for (auto type : {consumer_record::current_assignment, consumer_record::target_member,
                              consumer_record::member_metadata}) {
                gone.emplace_back(encode_key(consumer_key{type, g.id, id}), std::nullopt);
            }
        }
        if (g.group_epoch != g.persisted_epoch) {
            epoch.emplace_back(encode_key(consumer_key{consumer_record::group_metadata, g.id, {}}),
                               groups::encode_epoch_value(g.group_epoch));
        }
        if (g.assignment_epoch != g.persisted_assignment_epoch) {
            target_epoch.emplace_back(encode_key(consumer_key{consumer_record::target_metadata, g.id, {}}),
                                      groups::encode_epoch_value(g.assignment_epoch));
        }
        g.persisted = std::move(now);
        g.persisted_epoch = g.group_epoch;
        g.persisted_assignment_epoch = g.assignment_epoch;
        std::vector<record> out = std::move(gone);
        for (auto* part : {&members, &epoch, &targets, &target_epoch, &current}) {
            for (auto& r : *part) out.push_back(std::move(r));
        }
        return out;
    }

    // Tombstones for a consumer group's own records (it is deleted).
    static std::vector<record> tombstones(const group_state& g) {
        using groups::consumer_key;
        using groups::consumer_record;
        std::vector<record> out;
        if (g.persisted_assignment_epoch >= 0) {
            out.emplace_back(encode_key(consumer_key{consumer_record::target_metadata, g.id, {}}), std::nullopt);
        }
        if (g.persisted_epoch >= 0) {
            out.emplace_back(encode_key(consumer_key{consumer_record::group_metadata, g.id, {}}), std::nullopt);
        }
        return out;
    }

    // Replays one consumer-group record (loading).
    static void apply(const cluster::metadata_image& img, group_state& g, const groups::consumer_key& k,
                      const std::optional<shared_bytes>& value) {
        using groups::consumer_record;
        g.has_metadata = true;
        switch (k.type) {
            case consumer_record::group_metadata:
                if (!value) {
                    g.consumer = false;
                    g.cmembers.clear();
                    g.target.clear();
                    g.group_epoch = g.assignment_epoch = 0;
                    g.persisted_epoch = g.persisted_assignment_epoch = -1;
                    g.persisted.clear();
                    return;
                }
                if (auto e = groups::decode_epoch_value(*value)) {
                    g.consumer = true;
                    g.protocol_type = "consumer";
                    g.group_epoch = g.persisted_epoch = *e;
                }
                return;
            case consumer_record::target_metadata:
                if (value) {
                    if (auto e = groups::decode_epoch_value(*value)) {
                        g.assignment_epoch = g.persisted_assignment_epoch = *e;
                    }
                }
                return;
            case consumer_record::member_metadata: {
                if (!value) {
                    g.cmembers.erase(k.member);
                    g.target.erase(k.member);
                    return;
                }
                auto v = groups::decode_member_value(*value);
                if (!v) return;
                auto& m = g.cmembers[k.member];
                m.id = k.member;
                m.instance_id = v->instance_id;
                m.rack_id = v->rack_id;
                m.client_id = v->client_id;
                m.client_host = v->client_host;
                m.topic_names = v->topic_names;
                m.regex = v->regex;
                m.rebalance_timeout = v->rebalance_timeout;
                m.assignor = v->server_assignor;
                return;
            }
            case consumer_record::target_member:
                if (!value) {
                    g.target.erase(k.member);
                } else if (auto t = groups::decode_target_value(*value)) {
                    g.target[k.member] = names(img, *t);
                }
                return;
            case consumer_record::current_assignment:
                if (value && g.cmembers.count(k.member)) {
                    if (auto c = groups::decode_current_value(*value)) {
                        auto& m = g.cmembers[k.member];
                        m.epoch = c->epoch;
                        m.previous_epoch = c->previous_epoch;
                        m.state = c->state == 1   ? mstate::unrevoked
                                  : c->state == 2 ? mstate::unreleased
                                                  : mstate::stable;
                        m.assigned = names(img, c->assigned);
                        m.revoking = names(img, c->revoking);
                    }
                }
                return;
        }
    }

    // After loading: timers start now; what was read counts as persisted.
    static void loaded(const cluster::metadata_image& img, group_state& g, int64_t now, int32_t session_ms) {
        g.statics.clear();
        for (auto& [id, m] : g.cmembers) {
            m.deadline = now + session_ms;
            m.revoke_deadline = now + m.rebalance_timeout;
            m.assignment_changed = true;
            if (m.instance_id) g.statics[*m.instance_id] = id;
        }
        g.subscribed = subscription(img, g);
        for (const auto& [id, m] : g.cmembers) g.persisted[id] = encode_member(img, g, m);
    }

    static std::string new_member_id() {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        std::array<uint8_t, 16> b{};
        for (size_t i = 0; i < 16; i += 8) {
            uint64_t v = rng();
            std::memcpy(b.data() + i, &v, 8);
        }
        static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        std::string out;
        uint32_t acc = 0;
        int bits = 0;
        for (uint8_t c : b) {
            acc = (acc << 8) | c;
            bits += 8;
            while (bits >= 6) {
                out.push_back(alphabet[(acc >> (bits - 6)) & 63]);
                bits -= 6;
            }
        }
        if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 63]);
        return out;
    }
};

// The coordinator's operations, with access to its state.
struct group_ops {
    static group_state* find(group_coordinator& gc, const std::string& id) {
        auto it = gc.groups_.find(id);
        return it == gc.groups_.end() ? nullptr : it->second.get();
    }

    static int32_t partitions(const group_coordinator& gc) {
        if (const auto* t = gc.sh_.image->find_topic(std::string(offsets_topic))) {
            return static_cast<int32_t>(t->partitions.size());
        }
        return gc.sh_.owner.config().offsets_topic_num_partitions;
    }

    static group_state& create(group_coordinator& gc, const std::string& id) {
        auto g = std::make_unique<group_state>();
        g->id = id;
        g->partition = group_partition(id, partitions(gc));
        g->state_ts = wall_ms();
        auto& ref = *g;
        gc.groups_[id] = std::move(g);
        groups_gauge.add(1);
        return ref;
    }

    static void erase(group_coordinator& gc, const std::string& id) {
        if (gc.groups_.erase(id)) groups_gauge.add(-1);
    }

    static std::string new_member_id(group_coordinator& gc, const std::string& prefix) {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        uint64_t a = rng(), b = rng();
        a = (a & 0xffffffffffff0fffull) | 0x4000ull;
        b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
        ++gc.member_seq_;
        return fmt::format("{}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", prefix, a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                           b >> 48, b & 0xffffffffffffull);
    }

    // Wakes the timer loop if `deadline` is earlier than its next wake-up.
    static void schedule(group_coordinator& gc, int64_t deadline) {
        if (!gc.timer_) return;
        auto at = asio::steady_timer::time_point(std::chrono::milliseconds(deadline));
        if (at < gc.timer_->expiry()) gc.timer_->expires_at(at);
    }

    static void answer_join(group_member& m, int16_t error) {
        if (!m.join) return;
        auto w = std::move(m.join);
        w->resp = gen::join_group_response{};
        w->resp.member_id = m.id;
        w->resp.error_code = error;
        w->done = true;
        w->ev.notify();
    }

    static void answer_sync(group_member& m, int16_t error, shared_bytes assignment = {}) {
        if (!m.sync) return;
        auto w = std::move(m.sync);
        w->error = error;
        w->assignment = std::move(assignment);
        w->done = true;
        w->ev.notify();
    }

    static gen::join_group_response current_join(const group_state& g, const group_member& m, int16_t version,
                                                 bool static_rejoin = false) {
        gen::join_group_response r;
        r.generation_id = g.generation;
        r.protocol_type = g.protocol_type;
        r.protocol_name = g.protocol;
        r.leader = g.leader.value_or("");
        r.member_id = m.id;
        const bool leader = g.leader == m.id;
        if (leader && (!static_rejoin || version >= 9)) {
            for (const auto& [id, other] : g.members) {
                gen::join_group_response::join_group_response_member jm;
                jm.member_id = id;
                jm.group_instance_id = other.instance_id;
                if (const auto* md = other.metadata(g.protocol.value_or(""))) jm.metadata = *md;
                r.members.push_back(std::move(jm));
            }
        }
        if (static_rejoin && leader && version >= 9) r.skip_assignment = true;
        return r;
    }

    static void transition(group_state& g, gstate s) {
        g.state = s;
        g.state_ts = wall_ms();
    }

    static void prepare_rebalance(group_coordinator& gc, group_state& g) {
        if (g.state == gstate::completing) {
            for (auto& [id, m] : g.members) {
                m.assignment = {};
                answer_sync(m, error::rebalance_in_progress);
            }
        }
        const bool was_empty = g.state == gstate::empty;
        transition(g, gstate::preparing);
        const int64_t now = steady_ms();
        const int32_t timeout = g.max_rebalance_timeout();
        const int32_t delay = gc.sh_.owner.config().group_initial_rebalance_delay_ms;
        if (was_empty) {
            // The initial rebalance ends when its delay does (a delay of 0
            // included: at the next turn of the loop), whoever has joined by
            // then; ids handed out with MEMBER_ID_REQUIRED do not hold it.
            g.initial_delay = true;
            g.joined_in_delay = false;
            g.delay_remaining = std::max<int64_t>(static_cast<int64_t>(timeout) - delay, 0);
            g.join_deadline = now + delay;
            schedule(gc, g.join_deadline);
            return;
        }
        g.initial_delay = false;
        g.join_deadline = now + timeout;
        schedule(gc, g.join_deadline);
        // Every member may have joined already (a lone member rejoining, the
        // last member leaving): the join phase ends now, as in Kafka, not at
        // the deadline.
        if (g.all_joined()) complete_join(gc, g);
    }

    static void maybe_prepare_rebalance(group_coordinator& gc, group_state& g) {
        if (g.state == gstate::stable || g.state == gstate::completing || g.state == gstate::empty) {
            prepare_rebalance(gc, g);
        }
    }

    static void maybe_complete_join(group_coordinator& gc, group_state& g) {
        if (g.state == gstate::preparing && !g.initial_delay && g.all_joined()) complete_join(gc, g);
    }

    static void remove_member(group_state& g, const std::string& id, int16_t error) {
        auto it = g.members.find(id);
        if (it == g.members.end()) return;
        answer_join(it->second, error);
        answer_sync(it->second, error);
        if (it->second.instance_id) {
            auto s = g.statics.find(*it->second.instance_id);
            if (s != g.statics.end() && s->second == id) g.statics.erase(s);
        }
        g.members.erase(it);
        if (g.leader == id) {
            g.leader.reset();
            for (const auto& [mid, m] : g.members) {
                if (m.join) {
                    g.leader = mid;
                    break;
                }
            }
            if (!g.leader && !g.members.empty()) g.leader = g.members.begin()->first;
        }
    }

    static void remove_and_update(group_coordinator& gc, group_state& g, const std::string& id) {
        remove_member(g, id, error::unknown_member_id);
        switch (g.state) {
            case gstate::stable:
            case gstate::completing: prepare_rebalance(gc, g); break;
            case gstate::preparing: maybe_complete_join(gc, g); break;
            default: break;
        }
    }

    static void complete_join(group_coordinator& gc, group_state& g) {
        if (g.state != gstate::preparing) return;
        g.initial_delay = false;
        std::vector<std::string> gone;
        for (const auto& [id, m] : g.members) {
            if (!m.join && !m.instance_id) gone.push_back(id);
        }
        for (const auto& id : gone) remove_member(g, id, error::unknown_member_id);
        const bool none_joined =
            std::none_of(g.members.begin(), g.members.end(), [](const auto& kv) { return kv.second.join != nullptr; });
        if (!g.members.empty() && none_joined) {
            // Only static members are left and none rejoined: no generation
            // without a leader; wait another rebalance timeout for them
            // (their sessions expire meanwhile), as Kafka does.
            g.join_deadline = steady_ms() + g.max_rebalance_timeout();
            schedule(gc, g.join_deadline);
            return;
        }
        ++g.generation;
        rebalances.inc();
        if (g.members.empty()) {
            g.protocol.reset();
            transition(g, gstate::empty);
            spawn_store(gc, g.id);
            return;
        }
        g.protocol = g.select_protocol();
        transition(g, gstate::completing);
        if (!g.leader || !g.members.count(*g.leader) || !g.members.at(*g.leader).join) {
            for (const auto& [id, m] : g.members) {
                if (m.join) {
                    g.leader = id;
                    break;
                }
            }
        }
        const int64_t now = steady_ms();
        for (auto& [id, m] : g.members) {
            if (!m.join) continue;
            auto w = std::move(m.join);
            w->resp = current_join(g, m, w->version);
            w->done = true;
            w->ev.notify();
            m.deadline = now + m.session_timeout;
            schedule(gc, m.deadline);
        }
    }

    // The group's metadata record as it stands (assignments included).
    static group_value snapshot(const group_state& g) {
        group_value v;
        v.protocol_type = g.protocol_type.value_or("");
        v.generation = g.generation;
        v.protocol = g.protocol;
        v.leader = g.leader;
        v.current_state_timestamp = g.state_ts;
        for (const auto& [id, m] : g.members) {
            group_member_value mv;
            mv.member_id = id;
            mv.group_instance_id = m.instance_id;
            mv.client_id = m.client_id;
            mv.client_host = m.client_host;
            mv.rebalance_timeout = m.rebalance_timeout;
            mv.session_timeout = m.session_timeout;
            if (const auto* md = m.metadata(g.protocol.value_or(""))) mv.subscription = *md;
            mv.assignment = m.assignment;
            v.members.push_back(std::move(mv));
        }
        return v;
    }

    using record = std::pair<std::vector<uint8_t>, std::optional<std::vector<uint8_t>>>;

    struct write_wait {
        explicit write_wait(const asio::any_io_executor& ex) : ev(ex) {}
        net::event ev;
        bool done = false;
        int err = 0;
    };

    // Appends records to the group's partition and waits until they may be
    // acknowledged (the partition's durability mode). Returns a Kafka error
    // code as the coordinator reports write failures.
    static net::awaitable<int16_t> write(group_coordinator& gc, int32_t part, std::vector<record> records) {
        if (records.empty()) co_return error::none;
        partition* p = gc.sh_.find(storage::topic_partition{std::string(offsets_topic), part});
        if (!p || gc.stopped_) co_return error::not_coordinator;
        if (p->offline() || p->durability().error() != 0) co_return error::coordinator_not_available;
        const int64_t now = wall_ms();
        protocol::batch_builder b;
        for (const auto& [k, v] : records) {
            protocol::nullable_bytes value;
            if (v) value = std::span<const uint8_t>(*v);
            b.add(now, std::span<const uint8_t>(k), value);
        }
        auto built = b.build();
        if (!built) co_return error::unknown_server_error;
        std::vector<uint8_t> bytes = std::move(built).value();
        if (bytes.size() > static_cast<size_t>(p->config().max_message_bytes)) {
            co_return error::invalid_commit_offset_size;
        }
        replica::replica* rep = p->replica();
        if (rep && rep->refuse_append()) co_return error::not_coordinator;
        storage::append_options o;
        o.now_ms = now;
        o.leader_epoch = p->leader_epoch();  // the Raft term when replicated
        auto appended = p->log().append(std::span<uint8_t>(bytes), o);
        if (!appended) {
            log_warn("{}-{}: group coordinator append failed: {}", offsets_topic, part,
                     storage::describe(appended.error()));
            co_return error::coordinator_not_available;
        }
        auto w = std::make_shared<write_wait>(co_await asio::this_coro::executor);
        auto done = [p, w](int err) {
            w->err = err;
            w->done = true;
            w->ev.notify();
            p->wake_waiters();
        };
        if (rep) {
            // Acknowledged once a majority of the replicas has it.
            rep->appended(appended->first_offset,
                          static_cast<int32_t>(appended->last_offset - appended->first_offset + 1),
                          shared_bytes::adopt(std::move(bytes)));
            rep->wait(appended->last_offset, true, std::move(done));
        } else {
            p->durability().appended(appended->last_offset, static_cast<int64_t>(records.size()), now, std::move(done));
        }
        p->wake_waiters();
        while (!w->done) co_await w->ev.wait();
        if (w->err == -ECANCELED) co_return error::not_coordinator;  // leadership moved before a majority had it
        co_return w->err == 0 ? error::none : error::coordinator_not_available;
    }

    static net::awaitable<void> store_detached(group_coordinator* gc, std::string id) {
        auto* g = find(*gc, id);
        if (!g) co_return;
        std::vector<record> recs;
        recs.emplace_back(encode_key(group_key{id}), encode_value(snapshot(*g)));
        auto w = write(*gc, g->partition, std::move(recs));
        int16_t e = co_await std::move(w);
        if (e != error::none) log_warn("group {}: storing its metadata failed (error {})", id, e);
    }

    // Writes a consumer group's changes made outside a heartbeat (a member
    // fenced by a timer, new topics or partitions).
    static net::awaitable<void> persist_detached(group_coordinator* gc, std::string id) {
        auto* g = find(*gc, id);
        if (!g || !g->consumer) co_return;
        auto recs = consumer_ops::changes(*gc->sh_.image, *g);
        auto w = write(*gc, g->partition, std::move(recs));
        int16_t e = co_await std::move(w);
        if (e != error::none) log_warn("group {}: storing its state failed (error {})", id, e);
    }

    static void spawn_persist(group_coordinator& gc, const std::string& id) {
        asio::co_spawn(gc.sh_.owner.shards().context(gc.sh_.id), persist_detached(&gc, id), asio::detached);
    }

    static void spawn_store(group_coordinator& gc, const std::string& id) {
        asio::co_spawn(gc.sh_.owner.shards().context(gc.sh_.id), store_detached(&gc, id), asio::detached);
    }

    // Replaces a static member's id (a restart with the same
    // group.instance.id): the old id is fenced.
    static std::string replace_static(group_state& g, const std::string& old_id, const std::string& new_id) {
        auto node = g.members.extract(old_id);
        auto& m = node.mapped();
        answer_join(m, error::fenced_instance_id);
        answer_sync(m, error::fenced_instance_id);
        m.id = new_id;
        node.key() = new_id;
        g.members.insert(std::move(node));
        g.statics[*g.members.at(new_id).instance_id] = new_id;
        if (g.leader == old_id) g.leader = new_id;
        return new_id;
    }

    static int16_t validate_member(const group_state& g, const std::string& member_id,
                                   const std::optional<std::string>& instance_id) {
        if (instance_id) {
            auto s = g.statics.find(*instance_id);
            if (s != g.statics.end() && s->second != member_id) return error::fenced_instance_id;
            if (s == g.statics.end() && !g.members.count(member_id)) return error::unknown_member_id;
        }
        if (!g.members.count(member_id)) return error::unknown_member_id;
        return error::none;
    }

    static net::awaitable<void> tick_loop(group_coordinator* gc) {
        while (!gc->stopped_) {
            gc->timer_->expires_at(asio::steady_timer::time_point(std::chrono::milliseconds(next_deadline(*gc))));
            auto [ec] = co_await gc->timer_->async_wait(asio::as_tuple(asio::use_awaitable));
            (void)ec;
            if (gc->stopped_) break;
            expire(*gc);
        }
        gc->ticking_ = false;
    }

    static int64_t next_deadline(const group_coordinator& gc) {
        int64_t next = gc.next_retention_check_;
        for (const auto& [id, gp] : gc.groups_) {
            const auto& g = *gp;
            if (g.state == gstate::preparing) next = std::min(next, g.join_deadline);
            for (const auto& [mid, at] : g.pending) next = std::min(next, at);
            for (const auto& [mid, m] : g.members) {
                if (!m.join && !m.sync) next = std::min(next, m.deadline);
            }
            for (const auto& [mid, m] : g.cmembers) {
                next = std::min(next, m.deadline);
                if (m.state == consumer_member::mstate::unrevoked) next = std::min(next, m.revoke_deadline);
            }
        }
        return next;
    }

    static void expire(group_coordinator& gc) {
        const int64_t now = steady_ms();
        std::vector<std::string> ids;
        for (const auto& [id, g] : gc.groups_) ids.push_back(id);
        for (const auto& id : ids) {
            auto* g = find(gc, id);
            if (!g) continue;
            for (auto it = g->pending.begin(); it != g->pending.end();) {
                if (it->second <= now) {
                    it = g->pending.erase(it);
                } else {
                    ++it;
                }
            }
            std::vector<std::string> expired;
            for (const auto& [mid, m] : g->members) {
                if (!m.join && !m.sync && m.deadline <= now) expired.push_back(mid);
            }
            for (const auto& mid : expired) {
                log_info("group {}: member {} session expired", id, mid);
                remove_and_update(gc, *g, mid);
            }
            std::vector<std::string> fenced;
            for (const auto& [mid, m] : g->cmembers) {
                if (m.deadline <= now || (m.state == consumer_member::mstate::unrevoked && m.revoke_deadline <= now)) {
                    fenced.push_back(mid);
                }
            }
            for (const auto& mid : fenced) {
                log_info("group {}: member {} fenced (session or revocation timeout)", id, mid);
                consumer_ops::remove(gc, *g, mid);
            }
            if (!fenced.empty()) spawn_persist(gc, id);
            if (g->state == gstate::preparing && g->join_deadline <= now) {
                const int64_t step =
                    std::min<int64_t>(gc.sh_.owner.config().group_initial_rebalance_delay_ms, g->delay_remaining);
                if (g->initial_delay && g->joined_in_delay && step > 0) {
                    g->delay_remaining -= step;
                    g->joined_in_delay = false;
                    g->join_deadline = now + step;
                } else {
                    g->initial_delay = false;
                    complete_join(gc, *g);
                }
            } else {
                maybe_complete_join(gc, *g);
            }
        }
        if (now >= gc.next_retention_check_) {
            gc.next_retention_check_ = now + gc.sh_.owner.config().offsets_retention_check_interval_ms;
            asio::co_spawn(gc.sh_.owner.shards().context(gc.sh_.id), expire_offsets(&gc), asio::detached);
        }
    }

    // offsets.retention.minutes: an empty group's offsets expire that long
    // after it emptied (or after their commit); a stable consumer group's
    // offsets of topics nobody subscribes to, that long after their commit.
    static net::awaitable<void> expire_offsets(group_coordinator* gc) {
        const int64_t now = wall_ms();
        const int64_t retention = gc->sh_.owner.config().offsets_retention_minutes * 60'000;
        std::vector<std::string> ids;
        for (const auto& [id, g] : gc->groups_) ids.push_back(id);
        for (const auto& id : ids) {
            auto* g = find(*gc, id);
            if (!g || !gc->loaded_.count(g->partition)) continue;
            if (g->consumer && !g->cmembers.empty()) continue;  // offsets of live consumer groups stay
            const bool empty = g->state == gstate::empty;
            if (!empty && !(g->state == gstate::stable && g->protocol_type == "consumer")) continue;
            const auto subscribed = g->subscribed_topics();
            std::vector<std::pair<std::string, int32_t>> gone;
            for (const auto& [tp, c] : g->offsets) {
                if (!empty && subscribed.count(tp.first)) continue;
                const bool expired =
                    c.expire_ts >= 0
                        ? now >= c.expire_ts
                        : now - (empty && g->state_ts > 0 ? std::max(g->state_ts, c.commit_ts) : c.commit_ts) >=
                              retention;
                if (expired) gone.push_back(tp);
            }
            const bool drop_group = empty && g->members.empty() && gone.size() == g->offsets.size() &&
                                    (!g->offsets.empty() || now - g->state_ts >= retention);
            if (gone.empty() && !drop_group) continue;
            std::vector<record> recs;
            for (const auto& tp : gone) {
                recs.emplace_back(encode_key(offset_key{id, tp.first, tp.second}), std::nullopt);
            }
            if (drop_group) recs.emplace_back(encode_key(group_key{id}), std::nullopt);
            const int32_t part = g->partition;
            auto w = write(*gc, part, std::move(recs));
            int16_t e = co_await std::move(w);
            if (e != error::none) continue;
            g = find(*gc, id);
            if (!g) continue;
            for (const auto& tp : gone) g->offsets.erase(tp);
            log_info("group {}: {} committed offsets expired", id, gone.size());
            if (drop_group && g->offsets.empty() && g->members.empty() && g->state == gstate::empty) {
                transition(*g, gstate::dead);
                erase(*gc, id);
            }
        }
    }

    struct load_wait {
        explicit load_wait(const asio::any_io_executor& ex) : ev(ex) {}
        net::event ev;
        bool done = false;
        result<storage::read_result, storage::errc> res = fail(storage::errc::io_error);
    };

    static void apply_record(group_coordinator& gc, int32_t part, const record_key& key,
                             const std::optional<shared_bytes>& value, int64_t ts) {
        if (const auto* ok = std::get_if<offset_key>(&key)) {
            auto* g = find(gc, ok->group);
            if (!value) {
                if (g) g->offsets.erase({ok->topic, ok->partition});
                return;
            }
            auto v = decode_offset_value(*value);
            if (!v) {
                log_warn("{}-{}: skipping an offset record of group {}: {}", offsets_topic, part, ok->group,
                         describe(v.error()));
                return;
            }
            if (!g) g = &create(gc, ok->group);
            g->partition = part;
            g->offsets[{ok->topic, ok->partition}] =
                committed_offset{v->offset, v->leader_epoch, v->metadata, v->commit_timestamp, v->expire_timestamp};
            return;
        }
        if (const auto* ck = std::get_if<groups::consumer_key>(&key)) {
            auto* g = find(gc, ck->group);
            if (!g) {
                if (!value) return;
                g = &create(gc, ck->group);
            }
            g->partition = part;
            consumer_ops::apply(*gc.sh_.image, *g, *ck, value);
            return;
        }
        if (const auto* gk = std::get_if<group_key>(&key)) {
            auto* g = find(gc, gk->group);
            if (!value) {
                if (g) erase(gc, gk->group);
                return;
            }
            auto v = decode_group_value(*value);
            if (!v) {
                log_warn("{}-{}: skipping the metadata record of group {}: {}", offsets_topic, part, gk->group,
                         describe(v.error()));
                return;
            }
            if (!g) g = &create(gc, gk->group);
            g->partition = part;
            g->has_metadata = true;
            g->protocol_type = v->protocol_type.empty() ? std::nullopt : std::optional<std::string>(v->protocol_type);
            g->generation = v->generation;
            g->protocol = v->protocol;
            g->leader = v->leader;
            g->state_ts = v->current_state_timestamp >= 0 ? v->current_state_timestamp : ts;
            g->members.clear();
            g->statics.clear();
            for (auto& mv : v->members) {
                group_member m;
                m.id = mv.member_id;
                m.instance_id = mv.group_instance_id;
                m.client_id = mv.client_id;
                m.client_host = mv.client_host;
                m.rebalance_timeout = mv.rebalance_timeout;
                m.session_timeout = mv.session_timeout;
                m.protocol_type = v->protocol_type;
                if (v->protocol) m.protocols.emplace_back(*v->protocol, mv.subscription);
                m.assignment = mv.assignment;
                if (m.instance_id) g->statics[*m.instance_id] = m.id;
                g->members[m.id] = std::move(m);
            }
        }
    }

    static net::awaitable<void> load(group_coordinator* gc, int32_t part) {
        const storage::topic_partition tp{std::string(offsets_topic), part};
        auto ex = co_await asio::this_coro::executor;
        auto& ctx = gc->sh_.owner.shards().context(gc->sh_.id);
        partition* p = gc->sh_.find(tp);
        if (!p) {
            gc->loading_.erase(part);
            co_return;
        }
        const int64_t started = steady_ms();
        int64_t offset = p->log_start_offset();
        const int64_t end = p->log_end_offset();
        std::vector<uint8_t> scratch;
        size_t records = 0;
        while (offset < end && !gc->stopped_) {
            p = gc->sh_.find(tp);
            if (!p) break;
            auto w = std::make_shared<load_wait>(ex);
            storage::read_async(
                p->log(), gc->sh_.owner.io(), [&ctx](std::function<void()> fn) { asio::post(ctx, std::move(fn)); },
                offset, 1 << 20, end,
                [w](result<storage::read_result, storage::errc> r) {
                    w->res = std::move(r);
                    w->done = true;
                    w->ev.notify();
                });
            while (!w->done) co_await w->ev.wait();
            if (!w->res) {
                log_error("{}: loading groups failed at offset {}: {}; the partition's groups are not served",
                          tp.topic + "-" + std::to_string(part), offset, storage::describe(w->res.error()));
                co_return;  // stays loading: COORDINATOR_LOAD_IN_PROGRESS
            }
            auto& rr = *w->res;
            for (auto& chunk : rr.chunks) {
                protocol::batch_splitter split(chunk);
                while (auto batch = split.next()) {
                    if (batch->is_control() || batch->is_transactional()) continue;
                    auto payload = batch->payload(scratch);
                    if (!payload) continue;
                    auto rd = batch->records(*payload);
                    protocol::record_view rv;
                    while (rd.next(rv)) {
                        if (batch->offset_of(rv) < offset) continue;
                        if (!rv.key) continue;
                        auto key = decode_key(shared_bytes::copy_of(*rv.key));
                        if (!key) continue;
                        std::optional<shared_bytes> value;
                        if (rv.value) value = shared_bytes::copy_of(*rv.value);
                        apply_record(*gc, part, *key, value, batch->timestamp_of(rv));
                        ++records;
                    }
                }
            }
            if (rr.next_offset <= offset) break;
            offset = rr.next_offset;
        }
        // Loaded groups: with members they resume Stable (members that are
        // gone time out); without, Empty.
        const int64_t now = steady_ms();
        size_t groups = 0;
        std::vector<std::string> drop;
        for (auto& [id, g] : gc->groups_) {
            if (g->partition != part) continue;
            if (!g->has_metadata && g->offsets.empty()) {
                drop.push_back(id);
                continue;
            }
            ++groups;
            if (g->consumer) {
                consumer_ops::loaded(*gc->sh_.image, *g, now, gc->sh_.owner.config().consumer_session_timeout_ms);
            } else if (!g->members.empty()) {
                g->state = gstate::stable;
                for (auto& [mid, m] : g->members) m.deadline = now + m.session_timeout;
            }
        }
        for (const auto& id : drop) erase(*gc, id);
        gc->loading_.erase(part);
        gc->loaded_.insert(part);
        log_info("{}-{}: loaded {} groups from {} records in {} ms", offsets_topic, part, groups, records,
                 steady_ms() - started);
        schedule(*gc, now);
    }
};

group_coordinator::group_coordinator(shard_ctx& sh) : sh_(sh) {
    next_retention_check_ = steady_ms() + sh.owner.config().offsets_retention_check_interval_ms;
}

group_coordinator::~group_coordinator() {
    groups_gauge.add(-static_cast<int64_t>(groups_.size()));
}

void group_coordinator::image_applied() {
    if (stopped_) return;
    if (!timer_) {
        timer_ = std::make_unique<asio::steady_timer>(sh_.owner.shards().context(sh_.id));
    }
    if (!ticking_) {
        ticking_ = true;
        asio::co_spawn(sh_.owner.shards().context(sh_.id), group_ops::tick_loop(this), asio::detached);
    }
    // The groups of the __consumer_offsets partitions this node leads (a
    // replicated partition's leader is the one the metadata names: the new
    // leader replays the partition, the old one answers NOT_COORDINATOR).
    std::set<int32_t> owned;
    const cluster::topic_info* offsets = sh_.image ? sh_.image->find_topic(offsets_topic) : nullptr;
    for (const auto& [tp, p] : sh_.partitions) {
        if (tp.topic != offsets_topic) continue;
        if (p->replica()) {
            if (!offsets || tp.partition >= static_cast<int32_t>(offsets->partitions.size()) ||
                offsets->partitions[static_cast<size_t>(tp.partition)].leader != sh_.owner.config().node_id ||
                !p->replica()->writable())
                continue;
        }
        owned.insert(tp.partition);
    }
    // Partitions no longer here (the topic was deleted): their groups go.
    for (auto it = loaded_.begin(); it != loaded_.end();) {
        if (owned.count(*it)) {
            ++it;
            continue;
        }
        const int32_t part = *it;
        std::vector<std::string> ids;
        for (const auto& [id, g] : groups_) {
            if (g->partition == part) ids.push_back(id);
        }
        for (const auto& id : ids) {
            for (auto& [mid, m] : groups_.at(id)->members) {
                group_ops::answer_join(m, error::not_coordinator);
                group_ops::answer_sync(m, error::not_coordinator);
            }
            group_ops::erase(*this, id);
        }
        it = loaded_.erase(it);
    }
    // New topics (regex subscriptions) and partitions move consumer groups.
    for (auto& [id, g] : groups_) {
        if (!g->consumer || g->cmembers.empty() || !loaded_.count(g->partition)) continue;
        const int32_t before = g->group_epoch;
        consumer_ops::bump(*this, *g, false);
        if (g->group_epoch != before) group_ops::spawn_persist(*this, id);
    }
    for (int32_t part : owned) {
        if (loaded_.count(part) || loading_.count(part)) continue;
        loading_.insert(part);
        asio::co_spawn(sh_.owner.shards().context(sh_.id), group_ops::load(this, part), asio::detached);
    }
}

void group_coordinator::shutdown() {
    stopped_ = true;
    for (auto& [id, g] : groups_) {
        for (auto& [mid, m] : g->members) {
            group_ops::answer_join(m, error::not_coordinator);
            group_ops::answer_sync(m, error::not_coordinator);
        }
    }
    if (timer_) timer_->cancel();
}

int16_t group_coordinator::serves(const std::string& group_id) const {
    if (stopped_) return error::not_coordinator;
    const int32_t part = group_partition(group_id, group_ops::partitions(*this));
    if (loaded_.count(part)) return error::none;
    if (loading_.count(part)) return error::coordinator_load_in_progress;
    return error::not_coordinator;
}

net::awaitable<gen::join_group_response> group_coordinator::join(gen::join_group_request req, group_call call) {
    const int16_t version = call.version;
    const std::string& client_id = call.client_id;
    const std::string& client_host = call.client_host;
    gen::join_group_response resp;
    resp.member_id = req.member_id;
    auto fail_with = [&](int16_t e) {
        resp.error_code = e;
        return resp;
    };
    if (req.group_id.empty()) co_return fail_with(error::invalid_group_id);
    if (int16_t e = serves(req.group_id)) co_return fail_with(e);
    const auto& cfg = sh_.owner.config();
    if (req.session_timeout_ms < cfg.group_min_session_timeout_ms ||
        req.session_timeout_ms > cfg.group_max_session_timeout_ms) {
        co_return fail_with(error::invalid_session_timeout);
    }
    const int32_t rebalance_timeout = version == 0 ? req.session_timeout_ms : req.rebalance_timeout_ms;
    const bool unknown = req.member_id.empty();
    group_state* g = group_ops::find(*this, req.group_id);
    if (!g) {
        if (!unknown) co_return fail_with(error::unknown_member_id);
        g = &group_ops::create(*this, req.group_id);
    }
    if (g->state == gstate::dead) co_return fail_with(error::coordinator_not_available);
    if (g->consumer) {
        if (!g->cmembers.empty()) co_return fail_with(error::inconsistent_group_protocol);
        // An empty consumer group becomes a classic group again.
        g->consumer = false;
        g->target.clear();
        g->subscribed.clear();
        g->statics.clear();
    }
    protocol_list protocols;
    for (auto& p : req.protocols) protocols.emplace_back(std::move(p.name), std::move(p.metadata));

    auto ex = co_await asio::this_coro::executor;
    auto w = std::make_shared<join_wait>(ex);
    w->version = version;
    auto fill = [&](group_member& m) {
        m.client_id = client_id;
        m.client_host = client_host;
        m.rebalance_timeout = rebalance_timeout;
        m.session_timeout = req.session_timeout_ms;
        m.protocol_type = req.protocol_type;
        m.protocols = protocols;
    };
    auto add_and_rebalance = [&](const std::string& id) {
        group_member m;
        m.id = id;
        m.instance_id = req.group_instance_id;
        m.seq = ++member_seq_;
        fill(m);
        m.join = w;
        if (g->members.empty()) g->protocol_type = req.protocol_type;
        if (!g->leader) g->leader = id;
        if (m.instance_id) g->statics[*m.instance_id] = id;
        g->pending.erase(id);
        g->members[id] = std::move(m);
        if (g->state == gstate::preparing && g->initial_delay) g->joined_in_delay = true;
        group_ops::maybe_prepare_rebalance(*this, *g);
        group_ops::maybe_complete_join(*this, *g);
    };

    if (unknown) {
        const size_t max = static_cast<size_t>(cfg.group_max_size);
        // Members count, ids handed out (KIP-394) do not (they are checked
        // when they come back).
        if (g->members.size() >= max) co_return fail_with(error::group_max_size_reached);
        if (!g->supports(req.protocol_type, protocols)) co_return fail_with(error::inconsistent_group_protocol);
        const std::string new_id = group_ops::new_member_id(*this, req.group_instance_id.value_or(client_id));
        if (req.group_instance_id && g->statics.count(*req.group_instance_id)) {
            // A static member restarted: it takes over its old identity.
            const std::string old_id = g->statics.at(*req.group_instance_id);
            auto& m = g->members.at(old_id);
            const protocol_list old_protocols = m.protocols;
            group_ops::replace_static(*g, old_id, new_id);
            auto& nm = g->members.at(new_id);
            fill(nm);
            switch (g->state) {
                case gstate::stable: {
                    const bool unchanged = g->protocol && same_protocols(old_protocols, nm.protocols);
                    if (!unchanged) {
                        nm.join = w;
                        group_ops::prepare_rebalance(*this, *g);
                        break;
                    }
                    // Nothing changed: no rebalance; the new id is stored first.
                    std::vector<group_ops::record> recs;
                    recs.emplace_back(encode_key(group_key{g->id}), encode_value(group_ops::snapshot(*g)));
                    const std::string gid = g->id;
                    auto wr = group_ops::write(*this, g->partition, std::move(recs));
                    int16_t e = co_await std::move(wr);
                    g = group_ops::find(*this, gid);
                    if (!g || !g->members.count(new_id)) co_return fail_with(error::unknown_member_id);
                    if (e != error::none) co_return fail_with(e);
                    auto& m2 = g->members.at(new_id);
                    m2.deadline = steady_ms() + m2.session_timeout;
                    group_ops::schedule(*this, m2.deadline);
                    co_return group_ops::current_join(*g, m2, version, true);
                }
                case gstate::completing:
                    nm.join = w;
                    group_ops::prepare_rebalance(*this, *g);
                    break;
                case gstate::preparing:
                    nm.join = w;
                    group_ops::maybe_complete_join(*this, *g);
                    break;
                default: nm.join = w; break;
            }
        } else if (!req.group_instance_id && version >= 4) {
            // KIP-394: the member must come back with the id it is given.
            g->pending[new_id] = steady_ms() + req.session_timeout_ms;
            group_ops::schedule(*this, g->pending[new_id]);
            resp.member_id = new_id;
            co_return fail_with(error::member_id_required);
        } else {
            add_and_rebalance(new_id);
        }
    } else if (g->pending.count(req.member_id)) {
        if (g->members.size() >= static_cast<size_t>(cfg.group_max_size)) {
            g->pending.erase(req.member_id);
            group_ops::maybe_complete_join(*this, *g);
            co_return fail_with(error::group_max_size_reached);
        }
        if (!g->supports(req.protocol_type, protocols)) co_return fail_with(error::inconsistent_group_protocol);
        add_and_rebalance(req.member_id);
    } else {
        if (int16_t e = group_ops::validate_member(*g, req.member_id, req.group_instance_id)) co_return fail_with(e);
        if (!g->supports(req.protocol_type, protocols)) co_return fail_with(error::inconsistent_group_protocol);
        auto& m = g->members.at(req.member_id);
        switch (g->state) {
            case gstate::preparing:
                group_ops::answer_join(m, error::rebalance_in_progress);
                fill(m);
                m.join = w;
                group_ops::maybe_complete_join(*this, *g);
                break;
            case gstate::completing:
                if (same_protocols(m.protocols, protocols)) co_return group_ops::current_join(*g, m, version);
                fill(m);
                m.join = w;
                group_ops::prepare_rebalance(*this, *g);
                break;
            case gstate::stable:
                if (g->leader == m.id || !same_protocols(m.protocols, protocols)) {
                    fill(m);
                    m.join = w;
                    group_ops::prepare_rebalance(*this, *g);
                } else {
                    m.deadline = steady_ms() + m.session_timeout;
                    co_return group_ops::current_join(*g, m, version);
                }
                break;
            default: co_return fail_with(error::unknown_member_id);
        }
    }
    while (!w->done) co_await w->ev.wait();
    co_return std::move(w->resp);
}

net::awaitable<gen::sync_group_response> group_coordinator::sync(gen::sync_group_request req, group_call call) {
    const int16_t version = call.version;
    gen::sync_group_response resp;
    auto fail_with = [&](int16_t e) {
        resp.error_code = e;
        return resp;
    };
    if (int16_t e = serves(req.group_id)) co_return fail_with(e);
    group_state* g = group_ops::find(*this, req.group_id);
    if (!g || g->consumer) co_return fail_with(error::unknown_member_id);
    if (g->state == gstate::dead) co_return fail_with(error::coordinator_not_available);
    if (int16_t e = group_ops::validate_member(*g, req.member_id, req.group_instance_id)) co_return fail_with(e);
    if (req.generation_id != g->generation) co_return fail_with(error::illegal_generation);
    if (version >= 5 && ((req.protocol_type && req.protocol_type != g->protocol_type) ||
                         (req.protocol_name && req.protocol_name != g->protocol))) {
        co_return fail_with(error::inconsistent_group_protocol);
    }
    resp.protocol_type = g->protocol_type;
    resp.protocol_name = g->protocol;
    auto& m = g->members.at(req.member_id);
    switch (g->state) {
        case gstate::empty: co_return fail_with(error::unknown_member_id);
        case gstate::preparing: co_return fail_with(error::rebalance_in_progress);
        case gstate::stable:
            m.deadline = steady_ms() + m.session_timeout;
            group_ops::schedule(*this, m.deadline);
            resp.assignment = m.assignment;
            co_return resp;
        default: break;
    }
    // CompletingRebalance: wait for the leader's assignment.
    auto w = std::make_shared<sync_wait>(co_await asio::this_coro::executor);
    group_ops::answer_sync(m, error::rebalance_in_progress);
    m.sync = w;
    if (g->leader == m.id) {
        std::map<std::string, shared_bytes> assigned;
        for (auto& a : req.assignments) assigned[a.member_id] = std::move(a.assignment);
        const std::string gid = g->id;
        const int32_t generation = g->generation;
        auto v = group_ops::snapshot(*g);
        for (auto& mv : v.members) {
            auto it = assigned.find(mv.member_id);
            mv.assignment = it == assigned.end() ? shared_bytes{} : it->second;
        }
        std::vector<group_ops::record> recs;
        recs.emplace_back(encode_key(group_key{gid}), encode_value(v));
        auto wr = group_ops::write(*this, g->partition, std::move(recs));
        int16_t e = co_await std::move(wr);
        g = group_ops::find(*this, gid);
        if (g && g->generation == generation && g->state == gstate::completing) {
            if (e != error::none) {
                for (auto& [id, member] : g->members) {
                    member.assignment = {};
                    group_ops::answer_sync(member, e);
                }
                group_ops::prepare_rebalance(*this, *g);
            } else {
                const int64_t now = steady_ms();
                for (auto& [id, member] : g->members) {
                    auto it = assigned.find(id);
                    member.assignment = it == assigned.end() ? shared_bytes{} : it->second;
                    member.deadline = now + member.session_timeout;
                    group_ops::answer_sync(member, error::none, member.assignment);
                    group_ops::schedule(*this, member.deadline);
                }
                group_ops::transition(*g, gstate::stable);
            }
        }
    }
    while (!w->done) co_await w->ev.wait();
    if (w->error != error::none) {
        resp.protocol_type.reset();
        resp.protocol_name.reset();
        co_return fail_with(w->error);
    }
    resp.assignment = std::move(w->assignment);
    co_return resp;
}

net::awaitable<gen::heartbeat_response> group_coordinator::heartbeat(gen::heartbeat_request req, group_call) {
    gen::heartbeat_response resp;
    resp.error_code = heartbeat_error(req);
    co_return resp;
}

int16_t group_coordinator::heartbeat_error(const gen::heartbeat_request& req) {
    if (int16_t e = serves(req.group_id)) return e;
    group_state* g = group_ops::find(*this, req.group_id);
    if (!g || g->consumer) return error::unknown_member_id;
    if (g->state == gstate::dead) return error::coordinator_not_available;
    if (g->state == gstate::empty) return error::unknown_member_id;
    if (int16_t e = group_ops::validate_member(*g, req.member_id, req.group_instance_id)) return e;
    if (req.generation_id != g->generation) return error::illegal_generation;
    auto& m = g->members.at(req.member_id);
    m.deadline = steady_ms() + m.session_timeout;
    group_ops::schedule(*this, m.deadline);
    return g->state == gstate::preparing ? error::rebalance_in_progress : error::none;
}

net::awaitable<gen::leave_group_response> group_coordinator::leave(gen::leave_group_request req, group_call call) {
    const int16_t version = call.version;
    gen::leave_group_response resp;
    if (version < 3) {
        req.members.clear();
        req.members.push_back(
            {.member_id = req.member_id, .group_instance_id = {}, .reason = {}, .unknown_tagged_fields = {}});
    }
    if (int16_t e = serves(req.group_id)) {
        resp.error_code = e;
        co_return resp;
    }
    group_state* g = group_ops::find(*this, req.group_id);
    if (g && g->state == gstate::dead) {
        resp.error_code = error::coordinator_not_available;
        co_return resp;
    }
    if (g && g->consumer) g = nullptr;  // no classic members there
    for (const auto& mi : req.members) {
        gen::leave_group_response::member_response mr;
        mr.member_id = mi.member_id;
        mr.group_instance_id = mi.group_instance_id;
        int16_t e = error::none;
        if (!g) {
            e = error::unknown_member_id;
        } else if (mi.group_instance_id) {
            auto s = g->statics.find(*mi.group_instance_id);
            if (s == g->statics.end()) {
                e = error::unknown_member_id;
            } else if (!mi.member_id.empty() && mi.member_id != s->second) {
                e = error::fenced_instance_id;
            } else {
                group_ops::remove_and_update(*this, *g, s->second);
            }
        } else if (g->pending.count(mi.member_id)) {
            g->pending.erase(mi.member_id);
            group_ops::maybe_complete_join(*this, *g);
        } else if (!g->members.count(mi.member_id)) {
            e = error::unknown_member_id;
        } else {
            group_ops::remove_and_update(*this, *g, mi.member_id);
        }
        mr.error_code = e;
        resp.members.push_back(std::move(mr));
    }
    if (version < 3) {
        resp.error_code = resp.members.front().error_code;
        resp.members.clear();
    }
    co_return resp;
}

net::awaitable<int16_t> group_coordinator::commit(std::string group_id, int32_t generation, std::string member_id,
                                                  std::optional<std::string> instance_id, int64_t retention_ms,
                                                  int16_t version, std::vector<commit_item>* items) {
    auto fail_all = [&](int16_t e) {
        for (auto& it : *items) {
            if (it.error == error::none) it.error = e;
        }
        return e;
    };
    if (group_id.empty()) co_return fail_all(error::invalid_group_id);
    if (int16_t e = serves(group_id)) co_return fail_all(e);
    group_state* g = group_ops::find(*this, group_id);
    if (!g) {
        if (generation >= 0) co_return fail_all(version >= 9 ? error::group_id_not_found : error::illegal_generation);
        g = &group_ops::create(*this, group_id);
    }
    if (g->state == gstate::dead) co_return fail_all(error::coordinator_not_available);
    if (g->consumer) {
        // Kafka's checks for a consumer-protocol group: a commit from outside
        // only while it has no members; else the member's epoch.
        if (!(generation < 0 && g->cmembers.empty())) {
            auto it = g->cmembers.find(member_id);
            if (it == g->cmembers.end()) co_return fail_all(error::unknown_member_id);
            if (version < 9) co_return fail_all(error::unsupported_version);
            if (generation > it->second.epoch) co_return fail_all(error::fenced_member_epoch);
            if (generation < it->second.epoch) co_return fail_all(error::stale_member_epoch);
        }
    } else if (!(generation < 0 && g->state == gstate::empty)) {
        if (generation >= 0 || !member_id.empty() || instance_id) {
            if (int16_t e = group_ops::validate_member(*g, member_id, instance_id)) co_return fail_all(e);
            if (generation != g->generation) co_return fail_all(error::illegal_generation);
        } else if (g->state != gstate::empty) {
            co_return fail_all(error::unknown_member_id);
        }
        if (g->state == gstate::completing) co_return fail_all(error::rebalance_in_progress);
        auto& m = g->members.at(member_id);
        m.deadline = steady_ms() + m.session_timeout;
    }
    const int64_t now = wall_ms();
    const int32_t max_metadata = sh_.owner.config().offset_metadata_max_bytes;
    std::vector<group_ops::record> recs;
    for (auto& it : *items) {
        if (it.error != error::none) continue;
        if (it.metadata && it.metadata->size() > static_cast<size_t>(max_metadata)) {
            it.error = error::offset_metadata_too_large;
            continue;
        }
        offset_value v;
        v.offset = it.offset;
        v.leader_epoch = it.leader_epoch;
        v.metadata = it.metadata.value_or("");
        v.commit_timestamp = now;
        if (retention_ms >= 0) v.expire_timestamp = now + retention_ms;
        std::vector<uint8_t> value;
        if (v.expire_timestamp >= 0) {
            // Version 1, the one that carries an expiry (as Kafka writes it).
            protocol::writer w;
            w.i16(1);
            w.i64(v.offset);
            w.string_length(static_cast<int32_t>(v.metadata.size()), false);
            w.raw(v.metadata);
            w.i64(v.commit_timestamp);
            w.i64(v.expire_timestamp);
            value = w.take();
        } else {
            value = encode_value(v);
        }
        recs.emplace_back(encode_key(offset_key{group_id, it.topic, it.partition}), std::move(value));
    }
    const int32_t part = g->partition;
    auto wr = group_ops::write(*this, part, std::move(recs));
    int16_t e = co_await std::move(wr);
    if (e != error::none) co_return fail_all(e);
    g = group_ops::find(*this, group_id);
    for (auto& it : *items) {
        if (it.error != error::none) continue;
        offset_commits.inc();
        if (g) {
            g->offsets[{it.topic, it.partition}] = committed_offset{
                it.offset, it.leader_epoch, it.metadata.value_or(""), now, retention_ms >= 0 ? now + retention_ms : -1};
        }
    }
    co_return error::none;
}

fetched_offsets group_coordinator::fetch(
    const std::string& group_id,
    const std::optional<std::vector<std::pair<std::string, std::vector<int32_t>>>>& topics) {
    fetched_offsets out;
    if (int16_t e = serves(group_id)) {
        out.error = e;
        return out;
    }
    const group_state* g = group_ops::find(*this, group_id);
    if (!topics) {
        if (!g) return out;
        for (const auto& [tp, c] : g->offsets) {
            if (out.topics.empty() || out.topics.back().first != tp.first) out.topics.push_back({tp.first, {}});
            out.topics.back().second.push_back({tp.second, c.offset, c.leader_epoch, c.metadata, error::none});
        }
        return out;
    }
    for (const auto& [name, parts] : *topics) {
        std::vector<fetched_offsets::partition> ps;
        for (int32_t p : parts) {
            fetched_offsets::partition fp;
            fp.index = p;
            if (g) {
                auto it = g->offsets.find({name, p});
                if (it != g->offsets.end()) {
                    fp.offset = it->second.offset;
                    fp.leader_epoch = it->second.leader_epoch;
                    fp.metadata = it->second.metadata;
                }
            }
            ps.push_back(std::move(fp));
        }
        out.topics.emplace_back(name, std::move(ps));
    }
    return out;
}

std::vector<gen::list_groups_response::listed_group> group_coordinator::list(const std::vector<std::string>& states,
                                                                             const std::vector<std::string>& types,
                                                                             int16_t* error) {
    std::vector<gen::list_groups_response::listed_group> out;
    if (stopped_) {
        *error = error::coordinator_not_available;
        return out;
    }
    if (!loading_.empty()) *error = error::coordinator_load_in_progress;
    for (const auto& [id, g] : groups_) {
        if (!loaded_.count(g->partition) || g->state == gstate::dead) continue;
        const std::string_view type = g->consumer ? "consumer" : "classic";
        if (!types.empty() &&
            std::none_of(types.begin(), types.end(), [&](const std::string& t) { return iequal(t, type); })) {
            continue;
        }
        const auto name = g->consumer ? consumer_ops::state(*g) : state_name(g->state);
        if (!states.empty() &&
            std::none_of(states.begin(), states.end(), [&](const std::string& s) { return iequal(s, name); })) {
            continue;
        }
        gen::list_groups_response::listed_group lg;
        lg.group_id = id;
        lg.protocol_type = g->protocol_type.value_or("");
        lg.group_state = std::string(name);
        lg.group_type = std::string(type);
        out.push_back(std::move(lg));
    }
    return out;
}

gen::describe_groups_response::described_group group_coordinator::describe(const std::string& group_id,
                                                                           int16_t version) {
    gen::describe_groups_response::described_group d;
    d.group_id = group_id;
    if (int16_t e = serves(group_id)) {
        d.error_code = e;
        return d;
    }
    const group_state* g = group_ops::find(*this, group_id);
    if (!g || g->state == gstate::dead || g->consumer) {
        d.group_state = "Dead";
        if (version >= 6) {
            d.error_code = error::group_id_not_found;
            d.error_message = g && g->consumer ? fmt::format("Group {} is not a classic group.", group_id)
                                               : fmt::format("Group {} not found.", group_id);
        }
        return d;
    }
    d.group_state = std::string(state_name(g->state));
    d.protocol_type = g->protocol_type.value_or("");
    const bool stable = g->state == gstate::stable;
    if (stable) d.protocol_data = g->protocol.value_or("");
    for (const auto& [id, m] : g->members) {
        gen::describe_groups_response::described_group_member dm;
        dm.member_id = id;
        dm.group_instance_id = m.instance_id;
        dm.client_id = m.client_id;
        dm.client_host = m.client_host;
        if (stable) {
            if (const auto* md = m.metadata(g->protocol.value_or(""))) dm.member_metadata = *md;
            dm.member_assignment = m.assignment;
        }
        d.members.push_back(std::move(dm));
    }
    return d;
}

net::awaitable<int16_t> group_coordinator::delete_group(std::string group_id) {
    if (int16_t e = serves(group_id)) co_return e;
    group_state* g = group_ops::find(*this, group_id);
    if (!g || g->state == gstate::dead) co_return error::group_id_not_found;
    if (g->state != gstate::empty || !g->cmembers.empty()) co_return error::non_empty_group;
    std::vector<group_ops::record> recs;
    for (const auto& [tp, c] : g->offsets) {
        recs.emplace_back(encode_key(offset_key{group_id, tp.first, tp.second}), std::nullopt);
    }
    for (auto& r : consumer_ops::tombstones(*g)) recs.push_back(std::move(r));
    recs.emplace_back(encode_key(group_key{group_id}), std::nullopt);
    const int32_t part = g->partition;
    auto wr = group_ops::write(*this, part, std::move(recs));
    int16_t e = co_await std::move(wr);
    if (e != error::none) co_return e;
    g = group_ops::find(*this, group_id);
    if (g && g->state == gstate::empty) group_ops::erase(*this, group_id);
    co_return error::none;
}

net::awaitable<gen::offset_delete_response> group_coordinator::delete_offsets(gen::offset_delete_request req,
                                                                              group_call) {
    gen::offset_delete_response resp;
    if (int16_t e = serves(req.group_id)) {
        resp.error_code = e;
        co_return resp;
    }
    group_state* g = group_ops::find(*this, req.group_id);
    if (!g || g->state == gstate::dead) {
        resp.error_code = error::group_id_not_found;
        co_return resp;
    }
    if (g->state != gstate::empty && g->protocol_type != "consumer") {
        resp.error_code = error::non_empty_group;
        co_return resp;
    }
    std::set<std::string> subscribed;
    if (g->consumer) {
        for (const auto& [id, m] : g->cmembers) {
            auto ts = consumer_ops::member_topics(*sh_.image, m);
            subscribed.insert(ts.begin(), ts.end());
        }
    } else if (g->state != gstate::empty) {
        subscribed = g->subscribed_topics();
    }
    std::vector<group_ops::record> recs;
    std::vector<std::pair<std::string, int32_t>> gone;
    for (const auto& t : req.topics) {
        gen::offset_delete_response::offset_delete_response_topic rt;
        rt.name = t.name;
        for (const auto& p : t.partitions) {
            gen::offset_delete_response::offset_delete_response_partition rp;
            rp.partition_index = p.partition_index;
            if (subscribed.count(t.name)) {
                rp.error_code = error::group_subscribed_to_topic;
            } else if (g->offsets.count({t.name, p.partition_index})) {
                recs.emplace_back(encode_key(offset_key{req.group_id, t.name, p.partition_index}), std::nullopt);
                gone.emplace_back(t.name, p.partition_index);
            }
            rt.partitions.push_back(rp);
        }
        resp.topics.push_back(std::move(rt));
    }
    const int32_t part = g->partition;
    auto wr = group_ops::write(*this, part, std::move(recs));
    int16_t e = co_await std::move(wr);
    if (e != error::none) {
        resp.topics.clear();
        resp.error_code = e;
        co_return resp;
    }
    g = group_ops::find(*this, req.group_id);
    if (g) {
        for (const auto& tp : gone) g->offsets.erase(tp);
    }
    co_return resp;
}

// ---------------------------------------------------------------------------
// The consumer group protocol (KIP-848).

net::awaitable<gen::consumer_group_heartbeat_response> group_coordinator::consumer_heartbeat(
    gen::consumer_group_heartbeat_request req, group_call call) {
    gen::consumer_group_heartbeat_response resp;
    auto fail_with = [&](int16_t e, std::optional<std::string> message = std::nullopt) {
        resp.error_code = e;
        resp.error_message = std::move(message);
        return resp;
    };
    const auto& cfg = sh_.owner.config();
    const int32_t epoch = req.member_epoch;
    // Kafka's request checks, with its messages.
    if (req.group_id.empty()) co_return fail_with(error::invalid_request, "GroupId can't be empty.");
    if (req.instance_id && req.instance_id->empty()) {
        co_return fail_with(error::invalid_request, "InstanceId can't be empty.");
    }
    if (req.rack_id && req.rack_id->empty()) co_return fail_with(error::invalid_request, "RackId can't be empty.");
    if (call.version >= 1 && req.member_id.empty()) {
        co_return fail_with(error::invalid_request, "MemberId can't be empty.");
    }
    if (epoch == 0) {
        if (req.rebalance_timeout_ms == -1) {
            co_return fail_with(error::invalid_request, "RebalanceTimeoutMs must be provided in first request.");
        }
        if (!req.topic_partitions || !req.topic_partitions->empty()) {
            co_return fail_with(error::invalid_request, "TopicPartitions must be empty when (re-)joining.");
        }
        if (!req.subscribed_topic_names && !req.subscribed_topic_regex) {
            co_return fail_with(error::invalid_request,
                                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
        }
    } else if (epoch == -2) {
        if (!req.instance_id) co_return fail_with(error::invalid_request, "InstanceId can't be null.");
    } else if (epoch < -2) {
        co_return fail_with(error::invalid_request, "MemberEpoch is invalid.");
    }
    if (epoch != 0 && req.member_id.empty()) co_return fail_with(error::invalid_request, "MemberId can't be empty.");
    if (req.server_assignor && std::find(cfg.consumer_assignors.begin(), cfg.consumer_assignors.end(),
                                         *req.server_assignor) == cfg.consumer_assignors.end()) {
        co_return fail_with(error::unsupported_assignor,
                            "ServerAssignor " + *req.server_assignor + " is not supported. Supported assignors: " +
                                fmt::format("{}.", fmt::join(cfg.consumer_assignors, ", ")));
    }
    if (req.subscribed_topic_regex && !consumer_ops::compiled(*req.subscribed_topic_regex)) {
        co_return fail_with(error::invalid_regular_expression, "SubscribedTopicRegex `" + *req.subscribed_topic_regex +
                                                                   "` is not a valid regular expression.");
    }
    if (int16_t e = serves(req.group_id)) co_return fail_with(e);
    const auto& img = *sh_.image;
    const int64_t now = steady_ms();
    group_state* g = group_ops::find(*this, req.group_id);

    // Leaving (-1), or a static member leaving for a restart (-2).
    if (epoch < 0) {
        resp.member_id = req.member_id;
        resp.member_epoch = epoch;
        if (!g || !g->consumer) {
            co_return fail_with(error::group_id_not_found, fmt::format("Group {} not found.", req.group_id));
        }
        if (!g->cmembers.count(req.member_id)) co_return fail_with(error::unknown_member_id);
        auto& m = g->cmembers.at(req.member_id);
        if (epoch == -2) {
            m.previous_epoch = m.epoch;
            m.epoch = -2;
            m.deadline = now + cfg.consumer_session_timeout_ms;
            group_ops::schedule(*this, m.deadline);
        } else {
            consumer_ops::remove(*this, *g, req.member_id);
        }
        auto wr = group_ops::write(*this, g->partition, consumer_ops::changes(img, *g));
        if (int16_t e = co_await std::move(wr)) co_return fail_with(e);
        co_return resp;
    }
    if (!g) {
        if (epoch != 0)
            co_return fail_with(error::group_id_not_found, fmt::format("Group {} not found.", req.group_id));
        g = &group_ops::create(*this, req.group_id);
    }
    if (!g->consumer) {
        if (epoch != 0 || g->state != gstate::empty || !g->members.empty()) {
            co_return fail_with(error::group_id_not_found,
                                fmt::format("Group {} is not a consumer group.", req.group_id));
        }
        // An empty classic group (or offsets alone) becomes a consumer group.
        g->consumer = true;
        g->protocol_type = "consumer";
        g->protocol.reset();
        g->leader.reset();
        g->statics.clear();
        g->pending.clear();
    }
    bool joined = false;
    std::string member_id = req.member_id;
    if (epoch == 0) {
        if (member_id.empty()) member_id = consumer_ops::new_member_id();  // v0: the coordinator names it
        if (req.instance_id) {
            auto s = g->statics.find(*req.instance_id);
            if (s != g->statics.end() && s->second != member_id) {
                auto& old = g->cmembers.at(s->second);
                if (old.epoch != -2) {
                    co_return fail_with(error::unreleased_instance_id,
                                        fmt::format("Static member {} with instance id {} is not released yet.",
                                                    s->second, *req.instance_id));
                }
                // The restarted static member takes over its predecessor.
                auto node = g->cmembers.extract(s->second);
                node.key() = member_id;
                node.mapped().id = member_id;
                node.mapped().epoch = node.mapped().previous_epoch >= 0 ? node.mapped().previous_epoch : 0;
                auto t = g->target.extract(s->second);
                if (!t.empty()) {
                    t.key() = member_id;
                    g->target.insert(std::move(t));
                }
                g->cmembers.insert(std::move(node));
                s->second = member_id;
            }
        }
        auto it = g->cmembers.find(member_id);
        if (it == g->cmembers.end()) {
            if (g->cmembers.size() >= static_cast<size_t>(cfg.consumer_max_size)) {
                co_return fail_with(error::group_max_size_reached,
                                    fmt::format("The consumer group has reached its maximum capacity of {} members.",
                                                cfg.consumer_max_size));
            }
            consumer_member m;
            m.id = member_id;
            g->cmembers[member_id] = std::move(m);
            joined = true;
        } else if (!req.instance_id) {
            // A known member (re)joining owns nothing now.
            it->second.assigned.clear();
            it->second.revoking.clear();
            it->second.state = consumer_member::mstate::stable;
            it->second.epoch = 0;
            it->second.assignment_changed = true;
        }
    } else {
        auto it = g->cmembers.find(member_id);
        if (it == g->cmembers.end()) {
            co_return fail_with(error::unknown_member_id,
                                fmt::format("Member {} is not a member of group {}.", member_id, req.group_id));
        }
        auto& m = it->second;
        auto owned = consumer_ops::by_name(img, req.topic_partitions);
        // A lost answer: the previous epoch is accepted when what it owns is
        // part of what it was given.
        if (epoch > m.epoch ||
            (epoch < m.epoch && (epoch != m.previous_epoch || (owned && !consumer_ops::subset(*owned, m.assigned))))) {
            co_return fail_with(error::fenced_member_epoch,
                                fmt::format("The consumer group member has a {} member epoch ({}) than the one known "
                                            "by the group coordinator ({}). The member must abandon all its "
                                            "partitions and rejoin.",
                                            epoch > m.epoch ? "greater" : "smaller", epoch, m.epoch));
        }
    }
    auto& m = g->cmembers.at(member_id);
    bool changed = joined;
    if (req.instance_id && m.instance_id != req.instance_id) {
        m.instance_id = req.instance_id;
        g->statics[*req.instance_id] = member_id;
    }
    if (req.rack_id) m.rack_id = req.rack_id;
    if (req.rebalance_timeout_ms != -1) m.rebalance_timeout = req.rebalance_timeout_ms;
    m.client_id = call.client_id;
    m.client_host = call.client_host;
    if (req.subscribed_topic_names) {
        std::vector<std::string> names = *req.subscribed_topic_names;
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        if (names != m.topic_names) {
            m.topic_names = std::move(names);
            changed = true;
        }
    }
    if (req.subscribed_topic_regex) {
        std::optional<std::string> re;
        if (!req.subscribed_topic_regex->empty()) re = *req.subscribed_topic_regex;
        if (re != m.regex) {
            m.regex = std::move(re);
            changed = true;
        }
    }
    if (req.server_assignor && m.assignor != req.server_assignor) {
        m.assignor = req.server_assignor;
        changed = true;
    }
    m.deadline = now + cfg.consumer_session_timeout_ms;
    group_ops::schedule(*this, m.deadline);
    consumer_ops::bump(*this, *g, changed);
    auto owned = consumer_ops::by_name(img, req.topic_partitions);
    auto& me = g->cmembers.at(member_id);
    consumer_ops::reconcile(*g, me, epoch == 0 ? std::optional<groups::assignment>(groups::assignment{}) : owned, now);
    if (me.state == consumer_member::mstate::unrevoked) group_ops::schedule(*this, me.revoke_deadline);
    resp.member_id = member_id;
    resp.member_epoch = me.epoch;
    resp.heartbeat_interval_ms = cfg.consumer_heartbeat_interval_ms;
    if (me.assignment_changed || epoch == 0 || owned) {
        gen::consumer_group_heartbeat_response::assignment_data a;
        a.topic_partitions =
            consumer_ops::by_id<gen::consumer_group_heartbeat_response::topic_partitions>(img, me.assigned, false);
        resp.assignment = std::move(a);
        me.assignment_changed = false;
    }
    // Answered once the change is durable in the group's partition.
    auto recs = consumer_ops::changes(img, *g);
    if (!recs.empty()) {
        auto wr = group_ops::write(*this, g->partition, std::move(recs));
        if (int16_t e = co_await std::move(wr)) {
            resp.assignment.reset();
            co_return fail_with(e);
        }
    }
    co_return resp;
}

gen::consumer_group_describe_response::described_group group_coordinator::consumer_describe(
    const std::string& group_id) {
    gen::consumer_group_describe_response::described_group d;
    d.group_id = group_id;
    if (int16_t e = serves(group_id)) {
        d.error_code = e;
        return d;
    }
    const group_state* g = group_ops::find(*this, group_id);
    if (!g || (!g->consumer && g->state == gstate::dead)) {
        d.error_code = error::group_id_not_found;
        d.error_message = fmt::format("Group {} not found.", group_id);
        return d;
    }
    if (!g->consumer) {
        d.error_code = error::group_id_not_found;
        d.error_message = fmt::format("Group {} is not a consumer group.", group_id);
        return d;
    }
    const auto& img = *sh_.image;
    d.group_state = std::string(consumer_ops::state(*g));
    d.group_epoch = g->group_epoch;
    d.assignment_epoch = g->assignment_epoch;
    d.assignor_name = g->assignor_used.empty() ? sh_.owner.config().consumer_assignors.front() : g->assignor_used;
    using tps = gen::consumer_group_describe_response::topic_partitions;
    for (const auto& [id, m] : g->cmembers) {
        gen::consumer_group_describe_response::member dm;
        dm.member_id = id;
        dm.instance_id = m.instance_id;
        dm.rack_id = m.rack_id;
        dm.member_epoch = m.epoch;
        dm.client_id = m.client_id;
        dm.client_host = m.client_host;
        dm.subscribed_topic_names = m.topic_names;
        dm.subscribed_topic_regex = m.regex;
        dm.assignment.topic_partitions = consumer_ops::by_id<tps>(img, m.assigned, true);
        auto t = g->target.find(id);
        if (t != g->target.end())
            dm.target_assignment.topic_partitions = consumer_ops::by_id<tps>(img, t->second, true);
        dm.member_type = 1;  // the consumer protocol
        d.members.push_back(std::move(dm));
    }
    return d;
}

}  // namespace fjord::kafka
