#include "raft/sim.h"

#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <memory>
#include <queue>
#include <tuple>
#include <vector>

#include "raft/group_manager.h"
#include "raft/memory_log.h"

namespace fjord::raft::sim {

void stats::add(const stats& o) {
    steps += o.steps;
    elections += o.elections;
    truncations += o.truncations;
    snapshots_taken += o.snapshots_taken;
    snapshots_installed += o.snapshots_installed;
    partitions += o.partitions;
    crashes += o.crashes;
    disk_failures += o.disk_failures;
    transfers += o.transfers;
    config_changes += o.config_changes;
    reads += o.reads;
    committed_batches += o.committed_batches;
    messages += o.messages;
    dropped += o.dropped;
    duplicated += o.duplicated;
    groups_max = std::max(groups_max, o.groups_max);
    group_heartbeats += o.group_heartbeats;
    heartbeat_batches += o.heartbeat_batches;
    heartbeat_items += o.heartbeat_items;
    lease_reads += o.lease_reads;
    quiet_pair_batches += o.quiet_pair_batches;
    quiet_pair_rounds += o.quiet_pair_rounds;
    worst_pair_batches_per_round = std::max(worst_pair_batches_per_round, o.worst_pair_batches_per_round);
}

std::string stats::summary() const {
    return fmt::format(
        "steps={} elections={} truncations={} snapshots_taken={} snapshots_installed={} partitions={} crashes={} "
        "disk_failures={} transfers={} config_changes={} reads={} committed_batches={} messages={} dropped={} "
        "duplicated={} lease_reads={} groups_max={} group_heartbeats={} heartbeat_batches={} heartbeat_items={} "
        "quiet_heartbeat_batches_per_pair_per_round={:.2f} (worst seed {:.2f})",
        steps, elections, truncations, snapshots_taken, snapshots_installed, partitions, crashes, disk_failures,
        transfers, config_changes, reads, committed_batches, messages, dropped, duplicated, lease_reads, groups_max,
        group_heartbeats, heartbeat_batches, heartbeat_items,
        quiet_pair_rounds == 0 ? 0.0 : static_cast<double>(quiet_pair_batches) / static_cast<double>(quiet_pair_rounds),
        worst_pair_batches_per_round);
}

namespace {

constexpr int64_t tick_ms = 10;
constexpr size_t max_network_queue = 100000;
constexpr size_t max_pending_reads = 256;

class rng {
public:
    explicit rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    int64_t between(int64_t lo, int64_t hi) {  // inclusive
        return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
    }
    bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }

private:
    uint64_t s_;
};

uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

uint64_t hash_entry(const entry& e) {
    uint64_t h = mix(static_cast<uint64_t>(e.kind), static_cast<uint64_t>(e.records));
    h = mix(h, static_cast<uint64_t>(e.term.get()));
    for (uint8_t b : e.payload.span()) h = mix(h, b);
    return h;
}

// What the checker knows about a group across all nodes.
struct group_record {
    struct committed {
        term_id term;
        uint64_t hash;
        offset base;
        uint64_t digest;       // state machine digest after applying this batch
        term_id committed_in;  // term of the leader that first committed it
    };
    std::vector<committed> by_offset;  // index: offset; every offset of a batch
    std::map<std::pair<int64_t, int32_t>, std::pair<uint64_t, int32_t>> appended;  // (base, term) -> (hash, prev term)
    std::map<int32_t, int32_t> leader_of_term;
    offset recorded_through() const { return offset(static_cast<int64_t>(by_offset.size()) - 1); }
};

class world;

// The log a replica's Raft sees (volatile: the page cache) plus what has
// reached the disk. A crash keeps only the durable part.
class sim_log final : public log {
public:
    sim_log(world& w, group_record& rec) : w_(w), rec_(rec) {}

    offset start() const override { return v_.start(); }
    offset next() const override { return v_.next(); }
    term_id term_at(offset o) const override { return v_.term_at(o); }
    offset last_offset_for_term(term_id t) const override { return v_.last_offset_for_term(t); }
    offset batch_base(offset o) const override { return v_.batch_base(o); }
    void read(offset from, size_t max_bytes, std::vector<entry>& out) const override { v_.read(from, max_bytes, out); }
    void append(entry e) override;
    void truncate_suffix(offset from) override {
        if (from >= v_.next()) return;
        v_.truncate_suffix(from);
        dirty_from_ = std::min(dirty_from_, from);
    }
    void truncate_prefix(offset new_start, term_id prev_term) override {
        v_.truncate_prefix(new_start, prev_term);
        // Log start moves are durable at once (the storage engine records
        // them before deleting segments).
        bool safe = new_start < dirty_from_ || d_.next() <= new_start;
        if (!safe) d_.truncate_suffix(d_.start());
        d_.truncate_prefix(new_start, prev_term);
        dirty_from_ = std::max(dirty_from_, new_start);
        FJORD_ASSERT(d_.start() == v_.start(), "durable start {} volatile start {}", d_.start().get(),
                     v_.start().get());
    }

    // A flush through `through` completed: make that much durable.
    void sync(offset through) {
        through = std::min(through, v_.last_offset());
        if (through < dirty_from_) return;
        if (d_.next() > dirty_from_) d_.truncate_suffix(dirty_from_);
        FJORD_ASSERT(d_.next() == dirty_from_, "durable log ends at {}, dirty from {}", d_.next().get(),
                     dirty_from_.get());
        std::vector<entry> batch;
        offset o = dirty_from_;
        while (o <= through) {
            batch.clear();
            v_.read(o, 1, batch);
            FJORD_ASSERT(!batch.empty(), "nothing to sync at {}", o.get());
            if (batch[0].last() > through) break;
            o = batch[0].next();
            d_.append(std::move(batch[0]));
        }
        dirty_from_ = o;
    }
    void crash() {
        v_.assign(d_);
        dirty_from_ = v_.next();
    }
    const memory_log& durable() const { return d_; }

private:
    world& w_;
    group_record& rec_;
    memory_log v_;
    memory_log d_;
    offset dirty_from_{0};
};

struct replica {
    std::unique_ptr<sim_log> lg;
    raft* core = nullptr;  // owned by the node's group_manager; inputs go through core()
    // Durable besides the log.
    hard_state hs;
    snapshot_meta snap;
    shared_bytes snap_data;
    // State machine (volatile; rebuilt from the snapshot on restart).
    offset applied = no_offset;
    uint64_t digest = 0;
    offset last_commit = no_offset;
    offset last_recorded_check = no_offset;
    bool was_leader = false;
    term_id leader_term = no_term;
    uint64_t truncations_seen = 0;
};

struct node {
    bool up = true;
    uint64_t incarnation = 0;
    int64_t restart_at = 0;
    int64_t kill_at = -1;  // nemesis: a freshly elected leader dies soon
    int side = 0;
    std::unique_ptr<group_manager> mgr;  // the process: gone while down
    std::vector<replica> groups;
};

struct event {
    int64_t at;
    uint64_t seq;
    enum class kind { deliver, flushed } k;
    envelope msg;                // deliver
    int32_t node = 0;            // flushed
    int32_t group = 0;           // flushed
    uint64_t incarnation = 0;    // flushed
    offset through = no_offset;  // flushed
    term_id term = no_term;      // flushed
    bool fail = false;           // flushed: the write failed (EIO)
    bool operator>(const event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

struct pending_read {
    int32_t group;
    offset must_see;  // every commit acknowledged before the read began
};

class world {
public:
    explicit world(const config& cfg) : cfg_(cfg), rng_(cfg.seed) {}

    outcome run();
    void fail(std::string what) {
        if (!out_.ok) return;
        out_.ok = false;
        out_.failure = fmt::format("t={}ms: {}", now_, what);
        trace("FAILURE {}", out_.failure);
    }
    template <typename... A>
    void trace(fmt::format_string<A...> f, A&&... a) {
        if (!cfg_.trace && cfg_.trace_tail == 0) return;
        std::string line = fmt::format("{:>7} ", now_) + fmt::format(f, std::forward<A>(a)...);
        if (cfg_.trace) std::printf("%s\n", line.c_str());
        if (cfg_.trace_tail > 0) {
            out_.trace.push_back(std::move(line));
            if (out_.trace.size() > cfg_.trace_tail) out_.trace.pop_front();
        }
    }
    bool failed() const { return !out_.ok; }

private:
    void setup();
    void start_replica(int32_t n, int32_t g);
    void crash(int32_t n, const char* why);
    void restart(int32_t n);
    void drain(int32_t n);
    void persist(int32_t n, int32_t g, ready& rd);
    void handle_ready(int32_t n, int32_t g, ready& rd);
    void on_commit(int32_t n, int32_t g, offset c);
    void apply(int32_t n, int32_t g);
    void check_new_leader(int32_t n, int32_t g);
    void check_commit_safe(int32_t g, offset c, term_id t);
    void send(const envelope& m);
    void process(const event& e);
    void faults();
    void clients();
    void check_liveness();
    void check_heartbeat_rate();
    // Through the manager, so that its next take_ready() looks at the group.
    raft& core(int32_t n, int32_t g) { return *nodes_[n].mgr->group(group_id(g)); }

    config cfg_;
    rng rng_;
    outcome out_;
    int64_t now_ = 0;
    uint64_t seq_ = 0;
    bool quiet_ = false;
    std::priority_queue<event, std::vector<event>, std::greater<>> events_;
    std::vector<node> nodes_;
    std::vector<std::unique_ptr<group_record>> records_;
    std::vector<configuration> initial_;
    std::map<uint64_t, pending_read> reads_;
    uint64_t next_read_ = 1;
    int64_t heal_at_ = -1;
    // Fault rates of this seed.
    double drop_ = 0;
    double dup_ = 0;
    double crash_rate_ = 0;
    double partition_rate_ = 0;
    double disk_fail_ = 0;
    double leader_kill_ = 0;
    int64_t delay_max_ = 0;
    size_t append_bytes_ = 1024;
    size_t inflight_messages_ = 4;
    bool coalesce_ = true;
    bool lease_ = false;
    // Heartbeat batches per ordered node pair in the quiet period.
    std::map<std::pair<int32_t, int32_t>, uint64_t> quiet_batches_;
    int64_t quiet_ticks_ = 0;
    // (group, term, voter) -> the candidate it voted for
    std::map<std::tuple<int32_t, int32_t, int32_t>, int32_t> votes_;
    std::vector<offset> quiet_recorded_;
};

void sim_log::append(entry e) {
    // Log matching: an (offset, term) pair names one batch everywhere, and the
    // batches before it agree.
    term_id prev = e.base - 1 >= v_.start() - 1 ? v_.term_at(e.base - 1) : no_term;
    auto key = std::make_pair(e.base.get(), e.term.get());
    uint64_t h = hash_entry(e);
    auto [it, inserted] = rec_.appended.try_emplace(key, h, prev.get());
    if (!inserted && it->second.first != h) {
        w_.fail(fmt::format("log matching: two different batches at offset {} term {}", e.base.get(), e.term.get()));
    } else if (!inserted && it->second.second != prev.get()) {
        w_.fail(fmt::format("log matching: batch at {} term {} follows term {} here but term {} elsewhere",
                            e.base.get(), e.term.get(), prev.get(), it->second.second));
    }
    v_.append(std::move(e));
}

void world::setup() {
    int32_t n_nodes = rng_.chance(0.5) ? 3 : 5;
    // A few groups, or many per node (through the group manager either way).
    int32_t n_groups = static_cast<int32_t>(rng_.chance(0.8) ? rng_.between(1, 3) : rng_.between(4, 50));
    coalesce_ = cfg_.broken_variant == broken::lease_too_long || rng_.chance(0.75);
    lease_ = cfg_.broken_variant == broken::lease_too_long || rng_.chance(0.5);
    drop_ = static_cast<double>(rng_.between(0, 10)) / 100.0;
    dup_ = static_cast<double>(rng_.between(0, 5)) / 100.0;
    delay_max_ = rng_.between(2, 30);
    crash_rate_ = static_cast<double>(rng_.between(1, 8)) / 2000.0;
    partition_rate_ = static_cast<double>(rng_.between(1, 8)) / 2000.0;
    disk_fail_ = static_cast<double>(rng_.between(0, 4)) / 1000.0;
    leader_kill_ = static_cast<double>(rng_.between(0, 30)) / 100.0;
    append_bytes_ = static_cast<size_t>(rng_.between(64, 2048));
    inflight_messages_ = static_cast<size_t>(rng_.between(1, 8));
    trace(
        "setup seed={} nodes={} groups={} coalesce={} lease={} drop={} dup={} delay_max={} crash={} partition={} "
        "disk_fail={}",
        cfg_.seed, n_nodes, n_groups, coalesce_, lease_, drop_, dup_, delay_max_, crash_rate_, partition_rate_,
        disk_fail_);
    out_.counters.groups_max = static_cast<uint64_t>(n_groups);
    nodes_.resize(static_cast<size_t>(n_nodes));
    for (int32_t g = 0; g < n_groups; ++g) {
        records_.push_back(std::make_unique<group_record>());
        std::vector<node_id> voters;
        int32_t size = n_nodes == 5 && rng_.chance(0.5) ? 3 : n_nodes;
        for (int32_t i = 0; i < size; ++i) voters.push_back(node_id((g + i) % n_nodes));
        initial_.push_back(make_configuration(voters));
    }
    for (int32_t n = 0; n < n_nodes; ++n) {
        nodes_[n].groups.resize(static_cast<size_t>(n_groups));
        nodes_[n].mgr = std::make_unique<group_manager>(manager_options{node_id(n), 2, coalesce_});
        for (int32_t g = 0; g < n_groups; ++g) {
            replica& r = nodes_[n].groups[g];
            r.lg = std::make_unique<sim_log>(*this, *records_[g]);
            r.snap.config = initial_[g];
            start_replica(n, g);
        }
    }
}

void world::start_replica(int32_t n, int32_t g) {
    replica& r = nodes_[n].groups[g];
    options o;
    o.self = node_id(n);
    o.group = group_id(g);
    o.seed = cfg_.seed * 7919 + nodes_[n].incarnation;
    o.broken_variant = cfg_.broken_variant;
    o.max_append_bytes = append_bytes_;
    o.max_inflight_messages = inflight_messages_;
    o.max_inflight_bytes = 4096;
    o.lease_reads = lease_;
    nodes_[n].mgr->add_group(o, *r.lg, persisted{r.hs, r.snap, r.snap_data});
    r.core = nodes_[n].mgr->group(o.group);
    r.truncations_seen = 0;
    r.applied = r.snap.last;
    r.digest = 0;
    if (r.snap_data.size() == 8) {
        for (size_t i = 0; i < 8; ++i) r.digest |= static_cast<uint64_t>(r.snap_data[i]) << (8 * i);
    }
    r.last_commit = r.core->commit();
    r.was_leader = false;
}

void world::crash(int32_t n, const char* why) {
    node& nd = nodes_[n];
    if (!nd.up) return;
    nd.up = false;
    nd.kill_at = -1;
    ++nd.incarnation;
    nd.restart_at = now_ + (rng_.chance(0.3) ? rng_.between(10, 60) : rng_.between(60, 1500));
    ++out_.counters.crashes;
    trace("n{} crash ({}), restart at {}", n, why, nd.restart_at);
    for (auto& r : nd.groups) {
        r.core = nullptr;
        r.lg->crash();
    }
    nd.mgr.reset();
}

void world::restart(int32_t n) {
    node& nd = nodes_[n];
    nd.up = true;
    trace("n{} restart", n);
    nd.mgr = std::make_unique<group_manager>(manager_options{node_id(n), 2, coalesce_});
    for (int32_t g = 0; g < static_cast<int32_t>(nd.groups.size()); ++g) {
        start_replica(n, g);
        replica& r = nd.groups[g];
        trace("n{} g{} recovered term={} vote={} log=[{},{}) snap={}", n, g, r.hs.term.get(),
              r.hs.vote ? r.hs.vote->get() : -1, r.lg->start().get(), r.lg->next().get(), r.snap.last.get());
    }
}

void world::send(const envelope& m) {
    ++out_.counters.messages;
    if (const auto* gm = std::get_if<message>(&m.body)) {
        if (cfg_.trace || cfg_.trace_tail) {
            trace("n{} g{} -> n{} {} term={}", m.from.get(), gm->group.get(), m.to.get(), message_name(gm->body),
                  std::visit([](const auto& v) { return v.term.get(); }, gm->body));
        }
        bool heartbeat =
            std::holds_alternative<heartbeat_request>(gm->body) || std::holds_alternative<heartbeat_reply>(gm->body);
        if (coalesce_ && heartbeat) {
            fail(fmt::format("n{} sent a per-group {} for g{} although heartbeats are coalesced", m.from.get(),
                             message_name(gm->body), gm->group.get()));
            return;
        }
        if (heartbeat) ++out_.counters.group_heartbeats;
    } else {
        const auto& b = std::get<heartbeat_batch>(m.body);
        trace("n{} -> n{} heartbeat batch: {} beats, {} acks", m.from.get(), m.to.get(), b.beats.size(), b.acks.size());
        ++out_.counters.heartbeat_batches;
        out_.counters.heartbeat_items += b.beats.size() + b.acks.size();
        if (quiet_) ++quiet_batches_[{m.from.get(), m.to.get()}];
    }
    int copies = rng_.chance(dup_) ? 2 : 1;
    if (copies == 2) ++out_.counters.duplicated;
    for (int i = 0; i < copies; ++i) {
        if (rng_.chance(drop_) || events_.size() >= max_network_queue) {
            ++out_.counters.dropped;
            continue;
        }
        int64_t delay = rng_.chance(0.03) ? rng_.between(50, 300) : rng_.between(1, delay_max_);
        event e{now_ + delay, seq_++, event::kind::deliver, m};
        events_.push(std::move(e));
    }
}

// Handles a node's output until it has none: every group's hard state and
// snapshot (step 1), then the messages, then flushes, commits and reads.
void world::drain(int32_t n) {
    for (int guard = 0; guard < 64 && nodes_[n].mgr && !failed(); ++guard) {
        group_manager::output out = nodes_[n].mgr->take_ready();
        if (out.empty()) return;
        for (auto& [g, rd] : out.groups) persist(n, static_cast<int32_t>(g.get()), rd);
        if (failed()) return;
        for (const auto& m : out.messages) send(m);
        for (auto& [g, rd] : out.groups) {
            handle_ready(n, static_cast<int32_t>(g.get()), rd);
            if (failed()) return;
            check_new_leader(n, static_cast<int32_t>(g.get()));
        }
    }
}

void world::persist(int32_t n, int32_t g, ready& rd) {
    replica& r = nodes_[n].groups[g];
    FJORD_ASSERT(rd.messages.empty(), "group messages outside the manager's output");
    out_.counters.truncations += r.core->truncations() - r.truncations_seen;
    r.truncations_seen = r.core->truncations();
    {
        if (rd.hard_state) {
            FJORD_ASSERT(rd.hard_state->term >= r.hs.term, "hard state term going back");
            r.hs = *rd.hard_state;
        }
        if (rd.snapshot) {
            const auto& [meta, data] = *rd.snapshot;
            ++out_.counters.snapshots_installed;
            trace("n{} g{} install snapshot through {} term {}", n, g, meta.last.get(), meta.last_term.get());
            group_record& rec = *records_[g];
            uint64_t d = 0;
            for (size_t i = 0; i < 8 && data.size() == 8; ++i) d |= static_cast<uint64_t>(data[i]) << (8 * i);
            if (meta.last > rec.recorded_through()) {
                fail(fmt::format("n{} g{} snapshot through {} beyond what was committed ({})", n, g, meta.last.get(),
                                 rec.recorded_through().get()));
            } else if (meta.last >= offset(0) && (rec.by_offset[meta.last.get()].term != meta.last_term ||
                                                  rec.by_offset[meta.last.get()].digest != d)) {
                fail(fmt::format("n{} g{} snapshot through {} disagrees with the committed state", n, g,
                                 meta.last.get()));
            }
            r.snap = meta;
            r.snap_data = data;
            r.applied = meta.last;
            r.digest = d;
        }
    }
}

void world::handle_ready(int32_t n, int32_t g, ready& rd) {
    replica& r = nodes_[n].groups[g];
    {
        if (rd.flush_through) {
            event e{now_ + rng_.between(1, 8), seq_++, event::kind::flushed, {}};
            e.node = n;
            e.group = g;
            e.incarnation = nodes_[n].incarnation;
            e.through = *rd.flush_through;
            e.term = r.lg->term_at(e.through);
            e.fail = !quiet_ && rng_.chance(disk_fail_);
            events_.push(std::move(e));
        }
        if (rd.commit) on_commit(n, g, *rd.commit);
        for (const auto& rs : rd.reads) {
            auto it = reads_.find(rs.id);
            if (it == reads_.end()) continue;
            if (rs.index < it->second.must_see) {
                fail(fmt::format("n{} g{} read {} at index {} misses commit {} acknowledged before it began", n, g,
                                 rs.id, rs.index.get(), it->second.must_see.get()));
            }
            ++out_.counters.reads;
            reads_.erase(it);
        }
    }
}

void world::on_commit(int32_t n, int32_t g, offset c) {
    replica& r = nodes_[n].groups[g];
    group_record& rec = *records_[g];
    if (c <= r.last_commit) {
        fail(fmt::format("n{} g{} commit went from {} to {}", n, g, r.last_commit.get(), c.get()));
        return;
    }
    trace("n{} g{} commit {} ({})", n, g, c.get(), role_name(r.core->current_role()));
    // Every batch this replica now calls committed must match the record of
    // commits acknowledged so far; a leader extends the record.
    offset from = std::max(r.last_commit + 1, r.lg->start());
    r.last_commit = c;
    std::vector<entry> batch;
    for (offset o = from; o <= c;) {
        batch.clear();
        r.lg->read(r.lg->batch_base(o), 1, batch);
        const entry& e = batch.at(0);
        uint64_t h = hash_entry(e);
        if (e.last() <= rec.recorded_through()) {
            const auto& want = rec.by_offset[e.last().get()];
            if (want.term != e.term || want.hash != h || want.base != e.base) {
                fail(
                    fmt::format("n{} g{} committed batch [{}, {}] term {} but the acknowledged commit there is "
                                "[{}, ..] term {}",
                                n, g, e.base.get(), e.last().get(), e.term.get(), want.base.get(), want.term.get()));
                return;
            }
        } else if (r.core->is_leader() || (r.was_leader && r.leader_term == r.core->term())) {
            // (A leader removed by the configuration it just committed has
            // already stepped down when its ready is taken.)
            if (e.base != rec.recorded_through() + 1) {
                fail(fmt::format("n{} g{} committed batch at {} but the record ends at {}", n, g, e.base.get(),
                                 rec.recorded_through().get()));
                return;
            }
            uint64_t prev = rec.by_offset.empty() ? 0 : rec.by_offset.back().digest;
            uint64_t d = mix(prev, h);
            for (offset x = e.base; x <= e.last(); x = x + 1) {
                rec.by_offset.push_back({e.term, h, e.base, d, r.core->term()});
            }
            ++out_.counters.committed_batches;
        } else {
            fail(fmt::format("n{} g{} follower committed [{}, {}] that no leader committed", n, g, e.base.get(),
                             e.last().get()));
            return;
        }
        o = e.next();
    }
    if (c > r.last_recorded_check) {
        r.last_recorded_check = c;
        if (r.core->is_leader()) check_commit_safe(g, c, r.lg->term_at(c));
    }
    apply(n, g);
}

// A committed entry must already be out of reach of loss: no node lacking it
// could win an election with the durable logs as they are now (the inductive
// invariant behind Leader Completeness). This sees an unsafe commit at once,
// without waiting for the rare schedule that loses it (Raft Figure 8).
void world::check_commit_safe(int32_t g, offset c, term_id t) {
    for (int32_t x = 0; x < static_cast<int32_t>(nodes_.size()); ++x) {
        if (!nodes_[x].up) continue;
        raft& cx = core(x, g);
        if (!cx.config().contains(node_id(x))) continue;
        const sim_log& lx = *nodes_[x].groups[g].lg;
        if (c < lx.start() || (c < lx.next() && lx.term_at(c) == t)) continue;
        const term_id xt = lx.last_term();
        const offset xo = lx.last_offset();
        size_t votes = 0;
        for (node_id v : cx.config().voters) {
            const memory_log& d = nodes_[v.get()].groups[g].lg->durable();
            if (d.last_term() < xt || (d.last_term() == xt && d.last_offset() <= xo)) ++votes;
        }
        if (votes >= cx.config().quorum()) {
            fail(
                fmt::format("g{} offset {} (term {}) committed but n{} (log ends {} term {}) could be elected "
                            "without it",
                            g, c.get(), t.get(), x, xo.get(), xt.get()));
            return;
        }
    }
}

void world::apply(int32_t n, int32_t g) {
    replica& r = nodes_[n].groups[g];
    group_record& rec = *records_[g];
    std::vector<entry> batch;
    while (r.applied < r.core->commit()) {
        offset o = r.applied + 1;
        if (o < r.lg->start()) {
            fail(fmt::format("n{} g{} must apply {} but its log starts at {}", n, g, o.get(), r.lg->start().get()));
            return;
        }
        batch.clear();
        r.lg->read(o, 1, batch);
        const entry& e = batch.at(0);
        r.digest = mix(r.digest, hash_entry(e));
        r.applied = e.last();
        if (e.last() > rec.recorded_through() || rec.by_offset[e.last().get()].digest != r.digest) {
            fail(fmt::format("state machine safety: n{} g{} applied through {} with a state no leader committed", n, g,
                             e.last().get()));
            return;
        }
    }
    // Snapshot now and then, so followers need install-snapshot.
    if (r.applied - r.snap.last >= 16 && rng_.chance(0.05)) {
        std::vector<uint8_t> d(8);
        for (size_t i = 0; i < 8; ++i) d[i] = static_cast<uint8_t>(r.digest >> (8 * i));
        shared_bytes data = shared_bytes::adopt(std::move(d));
        core(n, g).compact(r.applied, data);
        r.snap = r.core->snapshot();
        r.snap_data = data;
        ++out_.counters.snapshots_taken;
        trace("n{} g{} snapshot through {}", n, g, r.applied.get());
    }
}

void world::check_new_leader(int32_t n, int32_t g) {
    replica& r = nodes_[n].groups[g];
    if (!r.core) return;
    // One vote per term per node, across crashes.
    if (auto v = r.core->voted_for()) {
        auto [it, inserted] = votes_.try_emplace({g, r.core->term().get(), n}, v->get());
        if (!inserted && it->second != v->get()) {
            fail(fmt::format("n{} g{} voted for n{} and for n{} in term {}", n, g, it->second, v->get(),
                             r.core->term().get()));
            return;
        }
    }
    bool leader = r.core->is_leader();
    if (!leader || (r.was_leader && r.leader_term == r.core->term())) {
        r.was_leader = leader;
        return;
    }
    r.was_leader = true;
    r.leader_term = r.core->term();
    ++out_.counters.elections;
    group_record& rec = *records_[g];
    trace("n{} g{} LEADER term {} log=[{},{})", n, g, r.core->term().get(), r.lg->start().get(), r.lg->next().get());
    if (!quiet_ && nodes_[n].kill_at < 0 && rng_.chance(leader_kill_)) nodes_[n].kill_at = now_ + rng_.between(0, 40);
    auto [it, inserted] = rec.leader_of_term.try_emplace(r.core->term().get(), n);
    if (!inserted && it->second != n) {
        fail(fmt::format("two leaders in g{} term {}: n{} and n{}", g, r.core->term().get(), it->second, n));
        return;
    }
    // Leader completeness: every commit acknowledged in an earlier term is in
    // the new leader's log. (A delayed election can still finish for an older
    // term after a newer term committed more: that leader can commit nothing.)
    const term_id t = r.core->term();
    for (offset o = std::max(r.lg->start(), offset(0)); o <= rec.recorded_through(); o = o + 1) {
        const auto& want = rec.by_offset[o.get()];
        if (want.committed_in >= t) continue;
        if (o > r.lg->last_offset()) {
            fail(fmt::format(
                "committed offset {} (term {}, committed in term {}) lost: n{} leader of g{} term {} "
                "ends at {}",
                o.get(), want.term.get(), want.committed_in.get(), n, g, t.get(), r.lg->last_offset().get()));
            return;
        }
        if (r.lg->term_at(o) != want.term) {
            fail(fmt::format("committed offset {} (term {}) lost: n{} leader of g{} term {} has term {} there", o.get(),
                             want.term.get(), n, g, t.get(), r.lg->term_at(o).get()));
            return;
        }
    }
}

void world::process(const event& e) {
    ++out_.counters.steps;
    if (e.k == event::kind::deliver) {
        const envelope& m = e.msg;
        int32_t to = m.to.get();
        int32_t from = m.from.get();
        if (!nodes_[to].up || nodes_[to].side != nodes_[from].side) {
            ++out_.counters.dropped;
            return;
        }
        nodes_[to].mgr->step(m);
        drain(to);
        return;
    }
    node& nd = nodes_[e.node];
    if (!nd.up || nd.incarnation != e.incarnation) return;  // the flush died with the process
    if (e.fail) {
        ++out_.counters.disk_failures;
        crash(e.node, "flush failed: EIO");
        return;
    }
    replica& r = nd.groups[e.group];
    r.lg->sync(e.through);
    nd.mgr->group(group_id(e.group))->on_flushed(e.through, e.term);
    drain(e.node);
}

void world::faults() {
    int32_t n_nodes = static_cast<int32_t>(nodes_.size());
    for (int32_t n = 0; n < n_nodes; ++n) {
        if (!nodes_[n].up && now_ >= nodes_[n].restart_at) restart(n);
        if (failed()) return;
    }
    if (quiet_) return;
    for (int32_t n = 0; n < n_nodes; ++n) {
        if (nodes_[n].up && nodes_[n].kill_at >= 0 && now_ >= nodes_[n].kill_at) {
            crash(n, "new leader killed");
        } else if (nodes_[n].up && rng_.chance(crash_rate_)) {
            crash(n, "kill -9");
        }
    }
    if (heal_at_ >= 0 && now_ >= heal_at_) {
        for (auto& nd : nodes_) nd.side = 0;
        heal_at_ = -1;
        trace("partition healed");
    } else if (heal_at_ < 0 && rng_.chance(partition_rate_)) {
        std::string sides;
        if (rng_.chance(0.4)) {
            int32_t alone = static_cast<int32_t>(rng_.between(0, n_nodes - 1));
            // Often a leader: the case that leases and check-quorum are for.
            if (rng_.chance(0.7)) {
                int32_t g = static_cast<int32_t>(rng_.between(0, static_cast<int64_t>(records_.size()) - 1));
                for (int32_t n = 0; n < n_nodes; ++n) {
                    if (nodes_[n].up && core(n, g).is_leader()) alone = n;
                }
            }
            for (int32_t n = 0; n < n_nodes; ++n) nodes_[n].side = n == alone ? 1 : 0;
        } else {
            for (auto& nd : nodes_) nd.side = static_cast<int>(rng_.between(0, 1));
        }
        for (auto& nd : nodes_) sides += static_cast<char>('0' + nd.side);
        heal_at_ = now_ + rng_.between(100, 3000);
        ++out_.counters.partitions;
        trace("partition {} until {}", sides, heal_at_);
    }
    // Leadership transfers and membership changes, now and then.
    for (int32_t g = 0; g < static_cast<int32_t>(records_.size()); ++g) {
        for (int32_t n = 0; n < n_nodes; ++n) {
            if (!nodes_[n].up || !core(n, g).is_leader()) continue;
            raft& c = core(n, g);
            if (rng_.chance(0.002)) {
                const auto& voters = c.config().voters;
                node_id target = voters[rng_.between(0, static_cast<int64_t>(voters.size()) - 1)];
                if (target != node_id(n) && c.transfer_leadership(target).ok()) {
                    ++out_.counters.transfers;
                    trace("n{} g{} transfer leadership to n{}", n, g, target.get());
                    drain(n);
                }
            }
            if (n_nodes == 5 && rng_.chance(0.003)) {
                std::vector<node_id> v = c.config().voters;
                node_id pick(static_cast<int32_t>(rng_.between(0, n_nodes - 1)));
                bool present = std::find(v.begin(), v.end(), pick) != v.end();
                if (present && v.size() > 3) {
                    v.erase(std::find(v.begin(), v.end(), pick));
                } else if (!present) {
                    v.push_back(pick);
                } else {
                    continue;
                }
                auto r = c.change_configuration(make_configuration(v));
                if (r.ok()) {
                    ++out_.counters.config_changes;
                    trace("n{} g{} configuration change at {}: {} n{}", n, g, r.value().get(),
                          present ? "remove" : "add", pick.get());
                    drain(n);
                }
            }
        }
    }
}

void world::clients() {
    int32_t n_nodes = static_cast<int32_t>(nodes_.size());
    const int32_t n_groups = static_cast<int32_t>(records_.size());
    // Liveness probe: in the quiet period every group gets writes at its
    // leader until it commits (with many groups most are otherwise idle).
    if (quiet_) {
        for (int32_t g = 0; g < n_groups; ++g) {
            if (records_[g]->recorded_through() > quiet_recorded_[g] || !rng_.chance(0.05)) continue;
            for (int32_t n = 0; n < n_nodes; ++n) {
                if (!nodes_[n].up || !core(n, g).is_leader()) continue;
                if (core(n, g).propose(shared_bytes::copy_of("probe"), 1).ok()) drain(n);
                break;
            }
        }
    }
    // At most three client operations per tick, however many groups: with
    // many groups, most of them are idle.
    for (int32_t slot = 0; slot < std::min(n_groups, 3); ++slot) {
        if (!rng_.chance(0.3)) continue;
        int32_t g = n_groups <= 3 ? slot : static_cast<int32_t>(rng_.between(0, n_groups - 1));
        int32_t n = static_cast<int32_t>(rng_.between(0, n_nodes - 1));
        if (!nodes_[n].up) continue;
        if (rng_.chance(lease_ ? 0.3 : 0.15)) {
            if (reads_.size() >= max_pending_reads) continue;
            // Half the reads go to a node that believes it leads (with two,
            // a client with stale metadata reaches the deposed one).
            if (rng_.chance(0.5)) {
                std::vector<int32_t> leaders;
                for (int32_t x = 0; x < n_nodes; ++x) {
                    if (nodes_[x].up && core(x, g).is_leader()) leaders.push_back(x);
                }
                if (!leaders.empty()) n = leaders[rng_.between(0, static_cast<int64_t>(leaders.size()) - 1)];
            }
            raft& c = core(n, g);
            uint64_t id = next_read_++;
            if (c.lease_valid()) ++out_.counters.lease_reads;
            if (c.read_index(id).ok()) {
                reads_.emplace(id, pending_read{g, records_[g]->recorded_through()});
                drain(n);
            }
            continue;
        }
        raft& c = core(n, g);
        std::vector<uint8_t> payload(static_cast<size_t>(rng_.between(1, 40)));
        for (auto& b : payload) b = static_cast<uint8_t>(rng_.next());
        int32_t records = static_cast<int32_t>(rng_.between(1, 3));
        auto r = c.propose(shared_bytes::adopt(std::move(payload)), records);
        if (r.ok()) {
            trace("n{} g{} propose at {} x{}", n, g, r.value().get(), records);
            drain(n);
        }
    }
}

// Coalescing: in the quiet period (every node up, no partition) each ordered
// node pair carries about one heartbeat batch and one batch of acks per round,
// whatever the number of groups. Fails past 3 per round.
void world::check_heartbeat_rate() {
    const int32_t n_nodes = static_cast<int32_t>(nodes_.size());
    const uint64_t rounds = static_cast<uint64_t>(quiet_ticks_) / 2;  // manager_options::heartbeat_ticks
    if (rounds == 0) return;
    for (int32_t a = 0; a < n_nodes; ++a) {
        for (int32_t b = 0; b < n_nodes; ++b) {
            if (a == b) continue;
            auto it = quiet_batches_.find({a, b});
            uint64_t batches = it == quiet_batches_.end() ? 0 : it->second;
            double per_round = static_cast<double>(batches) / static_cast<double>(rounds);
            out_.counters.quiet_pair_batches += batches;
            out_.counters.quiet_pair_rounds += rounds;
            out_.counters.worst_pair_batches_per_round =
                std::max(out_.counters.worst_pair_batches_per_round, per_round);
            if (per_round > 3.0) {
                fail(fmt::format("n{} -> n{}: {} heartbeat batches in {} rounds with {} groups", a, b, batches, rounds,
                                 records_.size()));
                return;
            }
        }
    }
}

void world::check_liveness() {
    for (int32_t g = 0; g < static_cast<int32_t>(records_.size()); ++g) {
        bool leader = false;
        for (int32_t n = 0; n < static_cast<int32_t>(nodes_.size()); ++n) {
            if (nodes_[n].up && core(n, g).is_leader()) leader = true;
        }
        if (!leader) {
            fail(fmt::format("liveness: g{} has no leader {} ms after the faults healed", g, cfg_.quiet_ms));
        } else if (records_[g]->recorded_through() <= quiet_recorded_[g]) {
            fail(fmt::format("liveness: g{} committed nothing in the {} ms after the faults healed (commit {})", g,
                             cfg_.quiet_ms, records_[g]->recorded_through().get()));
        }
    }
}

outcome world::run() {
    setup();
    const int64_t quiet_at = cfg_.duration_ms - cfg_.quiet_ms;
    for (now_ = 0; now_ < cfg_.duration_ms && !failed(); now_ += tick_ms) {
        if (!quiet_ && now_ >= quiet_at) {
            quiet_ = true;
            for (auto& nd : nodes_) nd.side = 0;
            for (auto& nd : nodes_) {
                nd.restart_at = std::min(nd.restart_at, now_);
                nd.kill_at = -1;
            }
            heal_at_ = -1;
            drop_ = std::min(drop_, 0.02);
            for (auto& rec : records_) quiet_recorded_.push_back(rec->recorded_through());
            trace("quiet: faults healed");
        }
        while (!events_.empty() && events_.top().at <= now_ && !failed()) {
            event e = events_.top();
            events_.pop();
            process(e);
        }
        if (failed()) break;
        faults();
        if (quiet_) ++quiet_ticks_;
        for (int32_t n = 0; n < static_cast<int32_t>(nodes_.size()) && !failed(); ++n) {
            if (!nodes_[n].up) continue;
            nodes_[n].mgr->tick();
            drain(n);
        }
        if (!failed()) clients();
    }
    if (!failed()) check_liveness();
    if (!failed() && coalesce_) check_heartbeat_rate();
    return std::move(out_);
}

}  // namespace

outcome run(const config& cfg) {
    world w(cfg);
    return w.run();
}

}  // namespace fjord::raft::sim
