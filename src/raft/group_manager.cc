#include "raft/group_manager.h"

#include <algorithm>

namespace fjord::raft {

size_t envelope_bytes(const envelope& e) {
    if (const auto* m = std::get_if<message>(&e.body)) return message_bytes(*m);
    const auto& b = std::get<heartbeat_batch>(e.body);
    // Header, then per item: group 8, term 4, commit 8, seq 8 (acks: 8+4+8+1).
    return 16 + 28 * b.beats.size() + 21 * b.acks.size();
}

bool is_heartbeat_batch(const envelope& e) {
    return std::holds_alternative<heartbeat_batch>(e.body);
}

group_manager::group_manager(const manager_options& o) : opts_(o) {
    FJORD_ASSERT(opts_.heartbeat_ticks > 0, "heartbeat every {} ticks", opts_.heartbeat_ticks);
    FJORD_ASSERT(opts_.max_groups > 0, "no room for groups");
}

void group_manager::add_group(options o, log& lg, persisted p) {
    FJORD_ASSERT(o.self == opts_.self, "group {} for node {} added to node {}", o.group.get(), o.self.get(),
                 opts_.self.get());
    FJORD_ASSERT(index_of(o.group) == groups_.size(), "group {} added twice", o.group.get());
    FJORD_ASSERT(groups_.size() < opts_.max_groups, "more than {} groups", opts_.max_groups);
    // The manager's round must come often enough for check-quorum and for the
    // followers' election timers.
    FJORD_ASSERT(opts_.heartbeat_ticks < o.election_ticks, "heartbeat every {} ticks, election after {}",
                 opts_.heartbeat_ticks, o.election_ticks);
    o.external_heartbeats = opts_.coalesce;
    const auto at = static_cast<size_t>(std::lower_bound(ids_.begin(), ids_.end(), o.group) - ids_.begin());
    groups_.insert(groups_.begin() + static_cast<std::ptrdiff_t>(at), std::make_unique<raft>(o, lg, std::move(p)));
    ids_.insert(ids_.begin() + static_cast<std::ptrdiff_t>(at), o.group);
    dirty_.assign(groups_.size(), 0);
    touched_.clear();
    scan_all_ = true;
}

void group_manager::remove_group(group_id g) {
    const size_t i = index_of(g);
    FJORD_ASSERT(i < groups_.size(), "removing group {} not hosted here", g.get());
    groups_.erase(groups_.begin() + static_cast<std::ptrdiff_t>(i));
    ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(i));
    dirty_.assign(groups_.size(), 0);
    touched_.clear();
    scan_all_ = true;
}

size_t group_manager::index_of(group_id g) const {
    auto at = std::lower_bound(ids_.begin(), ids_.end(), g);
    return at != ids_.end() && *at == g ? static_cast<size_t>(at - ids_.begin()) : groups_.size();
}

void group_manager::touch(size_t i) {
    FJORD_ASSERT(i < groups_.size() && groups_.size() == dirty_.size(), "group index {} of {}", i, groups_.size());
    if (dirty_[i] != 0 || scan_all_) return;
    dirty_[i] = 1;
    touched_.push_back(i);
}

raft* group_manager::group(group_id g) {
    const size_t i = index_of(g);
    if (i == groups_.size()) return nullptr;
    touch(i);
    return groups_[i].get();
}

void group_manager::step(const envelope& e) {
    FJORD_ASSERT(e.to == opts_.self, "envelope for node {} delivered to {}", e.to.get(), opts_.self.get());
    FJORD_ASSERT(e.from != opts_.self, "envelope from self");
    if (const auto* m = std::get_if<message>(&e.body)) {
        FJORD_ASSERT(m->from == e.from && m->to == e.to, "message {}->{} in envelope {}->{}", m->from.get(),
                     m->to.get(), e.from.get(), e.to.get());
        raft* r = group(m->group);
        if (r == nullptr) {
            ++counters_.unknown_group;
            return;
        }
        r->step(*m);
        return;
    }
    const auto& b = std::get<heartbeat_batch>(e.body);
    for (const auto& h : b.beats) {
        raft* r = group(h.group);
        if (r == nullptr) {
            ++counters_.unknown_group;
            continue;
        }
        r->step(message{h.group, e.from, e.to, heartbeat_request{h.term, h.commit, h.seq}});
    }
    for (const auto& a : b.acks) {
        raft* r = group(a.group);
        if (r == nullptr) {
            ++counters_.unknown_group;
            continue;
        }
        r->step(message{a.group, e.from, e.to, heartbeat_reply{a.term, a.seq, a.need_append}});
    }
}

void group_manager::tick() {
    scan_all_ = true;
    for (auto& r : groups_) r->tick();
    if (!opts_.coalesce || ++heartbeat_elapsed_ < opts_.heartbeat_ticks) return;
    heartbeat_elapsed_ = 0;
    ++counters_.rounds;
    // One round for every group this node leads; take_ready() folds the
    // heartbeats into one batch per peer.
    for (auto& r : groups_) r->heartbeat();
}

group_manager::output group_manager::take_ready() {
    output out;
    std::map<node_id, heartbeat_batch> batches;  // by peer, in a fixed order
    // The groups that had an input, in group order (deterministic output).
    std::vector<size_t> scan;
    if (scan_all_) {
        scan.resize(groups_.size());
        for (size_t i = 0; i < scan.size(); ++i) scan[i] = i;
    } else {
        scan.swap(touched_);
        std::sort(scan.begin(), scan.end());
    }
    for (size_t i : scan) dirty_[i] = 0;
    touched_.clear();
    scan_all_ = false;
    for (size_t i : scan) {
        raft* r = groups_[i].get();
        if (!r->has_ready()) continue;
        const group_id id = ids_[i];
        ready rd = r->take_ready();
        for (auto& m : rd.messages) {
            FJORD_ASSERT(m.from == opts_.self && m.group == id, "group {} sent a message as {}/{}", id.get(),
                         m.from.get(), m.group.get());
            if (opts_.coalesce) {
                if (const auto* h = std::get_if<heartbeat_request>(&m.body)) {
                    batches[m.to].beats.push_back(heartbeat_item{id, h->term, h->commit, h->seq});
                    continue;
                }
                if (const auto* h = std::get_if<heartbeat_reply>(&m.body)) {
                    batches[m.to].acks.push_back(heartbeat_ack{id, h->term, h->seq, h->need_append});
                    continue;
                }
            }
            ++counters_.group_messages_sent;
            node_id to = m.to;
            out.messages.push_back(envelope{opts_.self, to, std::move(m)});
        }
        rd.messages.clear();
        if (!rd.empty()) out.groups.emplace_back(id, std::move(rd));
    }
    for (auto& [peer, b] : batches) {
        FJORD_ASSERT(!b.beats.empty() || !b.acks.empty(), "empty heartbeat batch to {}", peer.get());
        FJORD_ASSERT(b.beats.size() + b.acks.size() <= 2 * groups_.size() * 64, "heartbeat batch of {} items",
                     b.beats.size() + b.acks.size());
        ++counters_.batches_sent;
        counters_.beats_sent += b.beats.size();
        counters_.acks_sent += b.acks.size();
        out.messages.push_back(envelope{opts_.self, peer, std::move(b)});
    }
    return out;
}

}  // namespace fjord::raft
