// The Raft groups of one node, with heartbeats coalesced per pair of nodes
// (ARCHITECTURE §5, Scale): every heartbeat interval the node sends each peer
// ONE message listing, for every group it leads with that peer, the group, the
// term, the commit offset the follower may apply and the read-barrier round;
// the peer answers with ONE message of acknowledgements (each saying whether
// that follower is behind and needs a real append). So 10,000 idle groups cost
// one heartbeat and one reply per node pair per interval, not 10,000.
//
// Like the core it is pure: inputs are step(envelope), tick() and the client
// calls made on the groups' cores (group()); outputs come from take_ready().
// Heartbeats and their replies are fed to each core as ordinary
// heartbeat_request / heartbeat_reply messages, so check-quorum, read barriers
// and leases count the coalesced acknowledgements exactly like per-group ones.
//
// Threading: one shard owns the manager and every group in it.
// Lifecycle: construct, add_group() at start-up or when a replica is placed
// here, remove_group() when it moves away; destroy on shutdown or crash.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <variant>
#include <vector>

#include "raft/raft.h"

namespace fjord::raft {

// What a follower needs from an idle leader: reset its election timer, learn
// the commit offset, acknowledge the read-barrier round.
struct heartbeat_item {
    group_id group;
    term_id term;
    offset commit = no_offset;  // min(leader commit, this follower's match)
    uint64_t seq = 0;
};

struct heartbeat_ack {
    group_id group;
    term_id term;
    uint64_t seq = 0;
    bool need_append = false;  // behind the leader: send a real append
};

// Heartbeats and acknowledgements between one pair of nodes, all groups.
struct heartbeat_batch {
    std::vector<heartbeat_item> beats;
    std::vector<heartbeat_ack> acks;
};

// A message between two nodes: one group's message, or a coalesced batch.
struct envelope {
    node_id from;
    node_id to;
    std::variant<message, heartbeat_batch> body;
};

size_t envelope_bytes(const envelope& e);
bool is_heartbeat_batch(const envelope& e);

struct manager_options {
    node_id self;
    int heartbeat_ticks = 2;  // one coalesced round every this many ticks
    // false: every group sends its own heartbeats (the core's own timer), for
    // comparison; the manager then only multiplexes.
    bool coalesce = true;
    size_t max_groups = 100000;
};

struct manager_counters {
    uint64_t rounds = 0;        // coalesced heartbeat rounds started
    uint64_t batches_sent = 0;  // heartbeat_batch envelopes
    uint64_t beats_sent = 0;    // items in them
    uint64_t acks_sent = 0;     // acknowledgements in them
    uint64_t group_messages_sent = 0;
    uint64_t unknown_group = 0;  // received for a group not hosted here: dropped
};

class group_manager {
public:
    explicit group_manager(const manager_options& o);

    // Hosts a replica of group `o.group` (o.self must be this node). `lg`
    // outlives the group.
    void add_group(options o, log& lg, persisted p);
    void remove_group(group_id g);
    // The group's core (nullptr if not hosted here), for the client calls and
    // on_flushed(): take_ready() looks at the groups reached through here or
    // stepped since the last one, and at all of them after a tick(). (So a
    // driver that kept a pointer and called the core directly would see that
    // output one tick late, never lose it.)
    raft* group(group_id g);
    size_t size() const { return groups_.size(); }

    // ---- inputs ----
    void step(const envelope& e);
    void tick();

    struct output {
        // Handle step 1 of raft.h (persist hard state and snapshot) for every
        // group here before sending `messages`; then steps 3 and 4 per group.
        // A group's own ready never holds messages: they are all below.
        std::vector<std::pair<group_id, ready>> groups;
        std::vector<envelope> messages;
        bool empty() const { return groups.empty() && messages.empty(); }
    };
    output take_ready();

    const manager_counters& counters() const { return counters_; }
    const manager_options& opts() const { return opts_; }

private:
    manager_options opts_;
    // Sorted by group id: lookups by binary search, and every take_ready()
    // scans them all (has_ready() reads two fields), so contiguous.
    std::vector<std::unique_ptr<raft>> groups_;
    std::vector<group_id> ids_;    // groups_[i]->group(), for the binary search
    std::vector<uint8_t> dirty_;   // per group: has had an input since take_ready()
    std::vector<size_t> touched_;  // the indices with dirty_ set
    bool scan_all_ = true;         // after tick(), add_group(), remove_group()

    size_t index_of(group_id g) const;  // groups_.size() if not hosted
    void touch(size_t i);
    int heartbeat_elapsed_ = 0;
    manager_counters counters_;
};

}  // namespace fjord::raft
