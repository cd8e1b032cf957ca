#include "raft/raft.h"

#include <algorithm>

namespace fjord::raft {

const char* errc_name(errc e) {
    switch (e) {
        case errc::not_leader: return "not_leader";
        case errc::transfer_in_progress: return "transfer_in_progress";
        case errc::backlog_full: return "backlog_full";
        case errc::no_commit_in_term: return "no_commit_in_term";
        case errc::config_change_in_progress: return "config_change_in_progress";
        case errc::invalid_config_change: return "invalid_config_change";
        case errc::unknown_node: return "unknown_node";
    }
    return "?";
}

const char* role_name(role r) {
    switch (r) {
        case role::follower: return "follower";
        case role::pre_candidate: return "pre_candidate";
        case role::candidate: return "candidate";
        case role::leader: return "leader";
    }
    return "?";
}

const char* broken_name(broken b) {
    switch (b) {
        case broken::none: return "none";
        case broken::vote_not_persisted: return "vote_not_persisted";
        case broken::commit_old_term: return "commit_old_term";
        case broken::no_suffix_truncation: return "no_suffix_truncation";
        case broken::ack_before_majority: return "ack_before_majority";
        case broken::lease_too_long: return "lease_too_long";
    }
    return "?";
}

std::optional<broken> parse_broken(std::string_view name) {
    for (broken b : {broken::none, broken::vote_not_persisted, broken::commit_old_term, broken::no_suffix_truncation,
                     broken::ack_before_majority, broken::lease_too_long}) {
        if (name == broken_name(b)) return b;
    }
    return std::nullopt;
}

namespace {
uint64_t splitmix(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

term_id term_of(const message_body& b) {
    return std::visit([](const auto& v) { return v.term; }, b);
}
}  // namespace

raft::raft(const options& opts, log& lg, persisted p)
    : opts_(opts),
      log_(lg),
      rng_(opts.seed ^ (static_cast<uint64_t>(opts.self.get()) << 32) ^ static_cast<uint64_t>(opts.group.get())) {
    FJORD_ASSERT(opts_.election_ticks > opts_.heartbeat_ticks && opts_.heartbeat_ticks > 0,
                 "election {} ticks, heartbeat {} ticks", opts_.election_ticks, opts_.heartbeat_ticks);
    FJORD_ASSERT(opts_.max_inflight_messages > 0 && opts_.max_append_bytes > 0, "bad limits");
    FJORD_ASSERT(!opts_.lease_reads || (opts_.lease_drift_ticks >= 1 && opts_.lease_drift_ticks < opts_.election_ticks),
                 "lease drift margin {} ticks must be in [1, {})", opts_.lease_drift_ticks, opts_.election_ticks);
    term_ = p.hs.term;
    vote_ = p.hs.vote;
    persisted_hs_ = p.hs;
    snapshot_ = std::move(p.snapshot);
    snapshot_data_ = std::move(p.snapshot_data);
    FJORD_ASSERT(snapshot_.last >= log_.start() - 1, "snapshot through {} but log starts at {}", snapshot_.last.get(),
                 log_.start().get());
    FJORD_ASSERT(!snapshot_.config.voters.empty(), "no configuration");
    // A crash between persisting a snapshot and truncating the log prefix
    // leaves entries the snapshot covers: drop them now.
    if (snapshot_.last >= log_.start()) {
        offset s = snapshot_.last + 1;
        bool keep = snapshot_.last < log_.next() && log_.term_at(snapshot_.last) == snapshot_.last_term &&
                    (s == log_.next() || log_.batch_base(s) == s);
        if (!keep) log_.truncate_suffix(log_.start());
        log_.truncate_prefix(s, snapshot_.last_term);
    }
    FJORD_ASSERT(log_.term_at(log_.start() - 1) == snapshot_.last_term || log_.start() - 1 > snapshot_.last,
                 "log says term {} before its start, snapshot says {}", log_.term_at(log_.start() - 1).get(),
                 snapshot_.last_term.get());
    commit_ = snapshot_.last;
    leader_match_ = commit_;
    flushed_ = log_.last_offset();
    flush_asked_ = flushed_;
    // Configuration entries above the snapshot, bounded reads.
    for (offset o = log_.start(); o < log_.next();) {
        std::vector<entry> batch;
        log_.read(o, opts_.max_append_bytes, batch);
        FJORD_ASSERT(!batch.empty(), "empty read at {}", o.get());
        for (const auto& e : batch) {
            if (e.kind == entry_kind::configuration) on_config_appended(e);
            o = e.next();
        }
    }
    reset_timeouts();
    check_invariants();
}

// ---- helpers ----

const configuration& raft::config() const {
    return configs_.empty() ? snapshot_.config : configs_.back().second;
}

bool raft::has_pending_config() const {
    return !configs_.empty() && configs_.back().first > commit_;
}

size_t raft::quorum() const {
    return config().quorum();
}

bool raft::recently_heard_leader() const {
    return role_ == role::leader || (leader_.has_value() && leader_ticks_ < opts_.election_ticks);
}

bool raft::log_up_to_date(offset last, term_id t) const {
    term_id mine = log_.last_term();
    return t > mine || (t == mine && last >= log_.last_offset());
}

void raft::reset_timeouts() {
    election_elapsed_ = 0;
    heartbeat_elapsed_ = 0;
    election_timeout_ = opts_.election_ticks + static_cast<int>(splitmix(rng_) % opts_.election_ticks);
}

void raft::persist_hard_state() {
    hard_state hs{term_, vote_};
    if (opts_.broken_variant == broken::vote_not_persisted) hs.vote = std::nullopt;
    if (hs == persisted_hs_) return;
    FJORD_ASSERT(hs.term >= persisted_hs_.term, "persisted term going back from {} to {}", persisted_hs_.term.get(),
                 hs.term.get());
    persisted_hs_ = hs;
    ready_.hard_state = hs;
}

void raft::send(node_id to, message_body body) {
    FJORD_ASSERT(to != opts_.self, "message to self: {}", message_name(body));
    FJORD_ASSERT(ready_.messages.size() < 65536, "outbox unbounded: take_ready() is not being called");
    ready_.messages.push_back(message{opts_.group, opts_.self, to, std::move(body)});
}

void raft::request_flush() {
    if (log_.last_offset() > flush_asked_) {
        flush_asked_ = log_.last_offset();
        ready_.flush_through = flush_asked_;
    }
}

void raft::append_local(entry e) {
    FJORD_ASSERT(e.base == log_.next(), "append at {} with log end {}", e.base.get(), log_.next().get());
    FJORD_ASSERT(e.term <= term_, "entry of term {} in term {}", e.term.get(), term_.get());
    bool is_config = e.kind == entry_kind::configuration;
    entry copy = is_config ? e : entry{};
    log_.append(std::move(e));
    if (is_config) on_config_appended(copy);
    request_flush();
}

void raft::truncate_suffix(offset from) {
    FJORD_ASSERT(from > commit_, "truncating committed offset {} (commit {})", from.get(), commit_.get());
    FJORD_ASSERT(from > leader_match_, "truncating {} which matches the leader through {}", from.get(),
                 leader_match_.get());
    FJORD_ASSERT(role_ != role::leader, "a leader never truncates its log");
    log_.truncate_suffix(from);
    flushed_ = std::min(flushed_, from - 1);
    flush_asked_ = std::min(flush_asked_, from - 1);
    on_configs_truncated(from);
    ++truncations_;
}

void raft::on_config_appended(const entry& e) {
    auto c = decode_configuration(e.payload);
    FJORD_ASSERT(c.has_value(), "undecodable configuration entry at {}", e.base.get());
    FJORD_ASSERT(configs_.empty() || configs_.back().first < e.base, "configuration entries out of order");
    configs_.emplace_back(e.base, std::move(*c));
    if (role_ == role::leader) reset_progress();
}

void raft::on_configs_truncated(offset from) {
    while (!configs_.empty() && configs_.back().first >= from) configs_.pop_back();
}

// Progress for every other voter; keeps what is known about existing ones.
void raft::reset_progress() {
    std::map<node_id, progress> next;
    for (node_id v : config().voters) {
        if (v == opts_.self) continue;
        auto it = progress_.find(v);
        if (it != progress_.end()) {
            next.emplace(v, std::move(it->second));
        } else {
            progress pr;
            pr.next = log_.next();
            next.emplace(v, std::move(pr));
        }
    }
    progress_ = std::move(next);
    if (transfer_target_ && !progress_.contains(*transfer_target_)) transfer_target_.reset();
}

// ---- role changes ----

void raft::become_follower(term_id t, std::optional<node_id> leader) {
    FJORD_ASSERT(t >= term_, "follower of term {} in term {}", t.get(), term_.get());
    const term_id old_term = term_;
    if (t > term_) {
        term_ = t;
        vote_.reset();
        persist_hard_state();
    }
    FJORD_ASSERT(!(leader && *leader == opts_.self), "following itself");
    if (leader_ != leader || t != old_term) leader_match_ = commit_;
    role_ = role::follower;
    leader_ = leader;
    leader_ticks_ = 0;
    progress_.clear();
    votes_.clear();
    transfer_target_.reset();
    reads_.clear();
    uncommitted_.clear();
    uncommitted_bytes_ = 0;
    term_start_ = no_offset;
    broadcast_pending_ = false;
    reset_timeouts();
}

void raft::become_pre_candidate() {
    FJORD_ASSERT(role_ != role::leader, "leader starting a pre-vote");
    FJORD_ASSERT(!vote_guarded(), "campaigning {} ticks after a leader was heard", lease_guard_ticks_);
    FJORD_ASSERT(self_is_voter(), "non-voter campaigning");
    role_ = role::pre_candidate;
    leader_.reset();
    leader_match_ = commit_;
    votes_.clear();
    votes_[opts_.self] = true;
    reset_timeouts();
    if (quorum() <= 1) {
        become_candidate(false);
        return;
    }
    for (node_id v : config().voters) {
        if (v == opts_.self) continue;
        send(v, vote_request{true, false, next_term(term_), log_.last_offset(), log_.last_term()});
    }
}

void raft::become_candidate(bool transfer) {
    FJORD_ASSERT(role_ != role::leader, "leader starting an election");
    FJORD_ASSERT(transfer || !vote_guarded(), "campaigning {} ticks after a leader was heard", lease_guard_ticks_);
    FJORD_ASSERT(self_is_voter(), "non-voter campaigning");
    term_ = next_term(term_);
    vote_ = opts_.self;
    persist_hard_state();
    role_ = role::candidate;
    leader_.reset();
    leader_match_ = commit_;
    votes_.clear();
    votes_[opts_.self] = true;
    reset_timeouts();
    if (quorum() <= 1) {
        become_leader();
        return;
    }
    for (node_id v : config().voters) {
        if (v == opts_.self) continue;
        send(v, vote_request{false, transfer, term_, log_.last_offset(), log_.last_term()});
    }
}

void raft::become_leader() {
    FJORD_ASSERT(role_ == role::candidate, "leader from {}", role_name(role_));
    FJORD_ASSERT(vote_ == opts_.self, "leader that did not vote for itself");
    role_ = role::leader;
    leader_ = opts_.self;
    progress_.clear();
    reset_progress();
    votes_.clear();
    check_elapsed_ = 0;
    heartbeat_elapsed_ = 0;
    leader_clock_ = 0;
    rounds_.clear();
    transfer_started_ = false;
    // Commit an entry of our own term before anything older counts as
    // committed (a Kafka leader-change control batch in a partition log).
    term_start_ = log_.next();
    append_local(entry{log_.next(), 1, term_, entry_kind::leader_change, shared_bytes{}});
    for (auto& [id, pr] : progress_) send_append(id, pr);
    maybe_commit();
}

// ---- inputs ----

void raft::step(const message& m) {
    FJORD_ASSERT(m.to == opts_.self && m.group == opts_.group, "message for {}/{} delivered to {}/{}", m.to.get(),
                 m.group.get(), opts_.self.get(), opts_.group.get());
    FJORD_ASSERT(m.from != opts_.self, "message from self");
    const term_id mt = term_of(m.body);
    if (auto* r = std::get_if<vote_request>(&m.body)) {
        on_vote_request(m, *r);
    } else if (auto* r = std::get_if<vote_reply>(&m.body); r && r->pre_vote) {
        on_vote_reply(m, *r);
    } else {
        bool from_leader =
            std::holds_alternative<append_request>(m.body) || std::holds_alternative<heartbeat_request>(m.body) ||
            std::holds_alternative<snapshot_request>(m.body) || std::holds_alternative<timeout_now>(m.body);
        if (mt > term_) {
            become_follower(mt, from_leader ? std::optional<node_id>(m.from) : std::nullopt);
        } else if (mt < term_) {
            // A stale leader learns our term from the reply and steps down.
            if (from_leader) send(m.from, heartbeat_reply{term_, 0, false});
            return;
        }
        std::visit(
            [&](const auto& b) {
                using T = std::decay_t<decltype(b)>;
                if constexpr (std::is_same_v<T, vote_reply>) on_vote_reply(m, b);
                if constexpr (std::is_same_v<T, append_request>) on_append(m, b);
                if constexpr (std::is_same_v<T, append_reply>) on_append_reply(m, b);
                if constexpr (std::is_same_v<T, heartbeat_request>) on_heartbeat(m, b);
                if constexpr (std::is_same_v<T, heartbeat_reply>) on_heartbeat_reply(m, b);
                if constexpr (std::is_same_v<T, snapshot_request>) on_snapshot(m, b);
                if constexpr (std::is_same_v<T, timeout_now>) on_timeout_now(m, b);
            },
            m.body);
    }
    check_invariants();
}

void raft::tick() {
    if (role_ == role::leader) {
        ++leader_clock_;
        ++check_elapsed_;
        if (!opts_.external_heartbeats && ++heartbeat_elapsed_ >= opts_.heartbeat_ticks) {
            heartbeat_elapsed_ = 0;
            heartbeat();
        }
        if (check_elapsed_ >= opts_.election_ticks) {
            check_elapsed_ = 0;
            size_t active = self_is_voter() ? 1 : 0;
            for (auto& [id, pr] : progress_) {
                if (pr.active) ++active;
                pr.active = false;
            }
            if (active < config().quorum()) {
                become_follower(term_, std::nullopt);  // check quorum: we may be partitioned away
                return;
            }
        }
        if (transfer_target_ && ++transfer_elapsed_ >= opts_.election_ticks) transfer_target_.reset();
        return;
    }
    ++leader_ticks_;
    lease_guard_ticks_ = std::min(lease_guard_ticks_ + 1, opts_.election_ticks);
    if (++election_elapsed_ >= election_timeout_) {
        if (self_is_voter() && !passive_) {
            become_pre_candidate();
        } else {
            reset_timeouts();
        }
    }
}

void raft::heartbeat() {
    if (role_ != role::leader) return;
    start_round();
    // A follower whose match has not moved while messages are out lost one
    // of them: go back to probing.
    for (auto& [id, pr] : progress_) {
        bool waiting = !pr.inflights.empty() || pr.probe_sent || pr.state == peer_state::snapshot;
        if (waiting && pr.match == pr.match_at_check) {
            if (++pr.stall_ticks >= 3) {
                pr.state = peer_state::probe;
                pr.probe_sent = false;
                pr.inflights.clear();
                pr.inflight_bytes = 0;
                pr.next = std::max(pr.match + 1, log_.start());
                if (pr.next < log_.next()) pr.next = log_.batch_base(pr.next);
                pr.stall_ticks = 0;
                send_append(id, pr);
            }
        } else {
            pr.match_at_check = pr.match;
            pr.stall_ticks = 0;
        }
    }
    check_invariants();
}

// A new heartbeat round: every follower that acknowledges it confirms our
// leadership as of now (read barriers) and holds back its vote for
// election_ticks from when it received it (lease).
void raft::start_round() {
    FJORD_ASSERT(role_ == role::leader, "heartbeat round as {}", role_name(role_));
    ++hb_seq_;
    FJORD_ASSERT(rounds_.empty() || (rounds_.back().seq < hb_seq_ && rounds_.back().sent_at <= leader_clock_),
                 "heartbeat rounds out of order");
    rounds_.push_back(round{hb_seq_, leader_clock_});
    // Rounds older than a lease can give none: forget them.
    while (!rounds_.empty() && (rounds_.size() > 1024 || rounds_.front().sent_at + lease_ticks() <= leader_clock_)) {
        rounds_.pop_front();
    }
    send_heartbeats(hb_seq_);
}

bool raft::vote_guarded() const {
    return opts_.lease_reads && lease_guard_ticks_ < opts_.election_ticks;
}

bool raft::lease_valid() const {
    if (!opts_.lease_reads || role_ != role::leader || transfer_started_ || commit_ < term_start_) return false;
    // For each voter, when the latest round it acknowledged was sent.
    std::vector<int64_t> sent;
    if (self_is_voter()) sent.push_back(leader_clock_);
    for (const auto& [id, pr] : progress_) {
        auto it = std::lower_bound(rounds_.begin(), rounds_.end(), pr.hb_seq,
                                   [](const round& r, uint64_t seq) { return r.seq < seq; });
        if (it != rounds_.end() && it->seq == pr.hb_seq) sent.push_back(it->sent_at);
    }
    const size_t q = quorum();
    if (sent.size() < q) return false;
    std::sort(sent.begin(), sent.end(), std::greater<>());
    FJORD_ASSERT(sent[q - 1] <= leader_clock_, "round sent at {} in the future ({})", sent[q - 1], leader_clock_);
    return leader_clock_ < sent[q - 1] + lease_ticks();
}

// How long after sending a round its acknowledgements keep the lease: a voter
// that acknowledged it holds back its vote for election_ticks from receiving
// it, which is no earlier than sending it.
int64_t raft::lease_ticks() const {
    if (opts_.broken_variant == broken::lease_too_long) return 4 * opts_.election_ticks;  // the bug
    return opts_.election_ticks - opts_.lease_drift_ticks;
}

void raft::on_flushed(offset o, term_id t) {
    if (o < log_.start() - 1 || o >= log_.next() || log_.term_at(o) != t) return;  // overtaken by a truncation
    if (o <= flushed_) return;
    flushed_ = o;
    if (role_ == role::leader) {
        maybe_commit();
    } else if (leader_) {
        reply_append(*leader_);
    }
    check_invariants();
}

// ---- votes ----

void raft::on_vote_request(const message& m, const vote_request& r) {
    if (r.pre_vote) {
        // Grant without changing any state: the candidate would win a real
        // election only if it is up to date and no leader is alive.
        bool grant = r.term > term_ && log_up_to_date(r.last_offset, r.last_term) &&
                     (r.transfer || (!recently_heard_leader() && !vote_guarded()));
        send(m.from, vote_reply{true, grant, grant ? r.term : term_});
        return;
    }
    if (r.term < term_) {
        send(m.from, vote_reply{false, false, term_});
        return;
    }
    if (r.term > term_) {
        if (!r.transfer && (recently_heard_leader() || vote_guarded())) return;  // leader stickiness, lease
        become_follower(r.term, std::nullopt);
    }
    bool can_vote = (vote_ == m.from || (!vote_ && !leader_)) && (r.transfer || !vote_guarded());
    bool grant = can_vote && log_up_to_date(r.last_offset, r.last_term);
    if (grant) {
        FJORD_ASSERT(role_ == role::follower || role_ == role::pre_candidate, "{} granting a vote in its own term",
                     role_name(role_));
        if (role_ == role::pre_candidate) become_follower(term_, std::nullopt);
        vote_ = m.from;
        persist_hard_state();
        election_elapsed_ = 0;
    }
    send(m.from, vote_reply{false, grant, term_});
}

void raft::on_vote_reply(const message& m, const vote_reply& r) {
    if (r.pre_vote) {
        if (role_ != role::pre_candidate) return;
        if (!r.granted && r.term > term_) {
            become_follower(r.term, std::nullopt);
            return;
        }
        if (r.term != next_term(term_)) return;  // stale
    } else if (role_ != role::candidate) {
        return;
    }
    if (!config().contains(m.from)) return;
    votes_[m.from] = r.granted;
    size_t yes = 0;
    size_t no = 0;
    for (auto& [id, g] : votes_) {
        if (!config().contains(id)) continue;
        (g ? yes : no) += 1;
    }
    if (yes >= quorum()) {
        if (role_ == role::pre_candidate) {
            become_candidate(false);
        } else {
            become_leader();
        }
    } else if (no >= config().quorum()) {
        become_follower(term_, std::nullopt);
    }
}

// ---- replication: follower side ----

void raft::on_append(const message& m, const append_request& r) {
    FJORD_ASSERT(role_ != role::leader, "two leaders in term {}: {} and {}", term_.get(), opts_.self.get(),
                 m.from.get());
    if (role_ != role::follower || leader_ != m.from) become_follower(term_, m.from);
    leader_ticks_ = 0;
    election_elapsed_ = 0;
    lease_guard_ticks_ = 0;

    size_t i = 0;
    offset prev = r.prev_offset;
    if (prev < log_.start()) {
        // The prefix is in our snapshot: committed, so it matches (the term
        // a log keeps for the offset below its start may be an estimate).
        while (i < r.entries.size() && r.entries[i].last() < log_.start()) ++i;
        if (i < r.entries.size()) {
            FJORD_ASSERT(r.entries[i].base == log_.start(), "batch [{}, {}] straddles our log start {}",
                         r.entries[i].base.get(), r.entries[i].last().get(), log_.start().get());
        }
        prev = log_.start() - 1;
    } else {
        if (prev >= log_.next()) {
            send(m.from, append_reply{term_, false, no_offset, prev, log_.last_offset(), no_term});
            return;
        }
        if (log_.term_at(prev) != r.prev_term) {
            send(m.from, append_reply{term_, false, no_offset, prev, log_.last_offset(), log_.term_at(prev)});
            return;
        }
        FJORD_ASSERT(prev + 1 == log_.next() || log_.batch_base(prev + 1) == prev + 1,
                     "matching prev {} is not a batch end", prev.get());
    }
    offset matched = prev;
    for (; i < r.entries.size(); ++i) {
        const entry& e = r.entries[i];
        FJORD_ASSERT(e.base == matched + 1, "append_request batches not contiguous at {}", e.base.get());
        if (e.base < log_.next()) {
            if (log_.term_at(e.base) == e.term) {
                matched = e.last();
                continue;
            }
            if (opts_.broken_variant == broken::no_suffix_truncation && log_.batch_base(e.base) == e.base &&
                e.last() < log_.next() && log_.batch_base(e.last()) == e.base &&
                (e.next() == log_.next() || log_.batch_base(e.next()) == e.next())) {
                matched = e.last();  // the bug: keep our divergent batch and claim it matches
                continue;
            }
            truncate_suffix(e.base);
        }
        append_local(e);
        matched = e.last();
    }
    leader_match_ = std::max(leader_match_, matched);
    set_commit(std::min(r.commit, leader_match_));
    reply_append(m.from);
}

void raft::reply_append(node_id to) {
    offset match = std::min(flushed_, leader_match_);
    send(to, append_reply{term_, true, match, no_offset, log_.last_offset(), no_term});
}

void raft::on_heartbeat(const message& m, const heartbeat_request& r) {
    FJORD_ASSERT(role_ != role::leader, "two leaders in term {}: {} and {}", term_.get(), opts_.self.get(),
                 m.from.get());
    if (role_ != role::follower || leader_ != m.from) become_follower(term_, m.from);
    leader_ticks_ = 0;
    election_elapsed_ = 0;
    lease_guard_ticks_ = 0;
    set_commit(std::min(r.commit, leader_match_));
    send(m.from, heartbeat_reply{term_, r.seq, r.commit > leader_match_ || flushed_ < leader_match_});
}

void raft::on_snapshot(const message& m, const snapshot_request& r) {
    FJORD_ASSERT(role_ != role::leader, "two leaders in term {}", term_.get());
    if (role_ != role::follower || leader_ != m.from) become_follower(term_, m.from);
    leader_ticks_ = 0;
    election_elapsed_ = 0;
    lease_guard_ticks_ = 0;
    const snapshot_meta& s = r.meta;
    if (s.last <= commit_) {
        leader_match_ = std::max(leader_match_, commit_);
        reply_append(m.from);
        return;
    }
    bool keep = s.last < log_.next() && s.last >= log_.start() && log_.term_at(s.last) == s.last_term;
    if (keep) {
        log_.truncate_prefix(s.last + 1, s.last_term);
        while (!configs_.empty() && configs_.front().first <= s.last) configs_.erase(configs_.begin());
    } else {
        if (log_.next() > log_.start()) {
            // Everything we hold at or below commit_ is inside the snapshot.
            log_.truncate_suffix(log_.start());
            ++truncations_;
        }
        log_.truncate_prefix(s.last + 1, s.last_term);
        configs_.clear();
        flushed_ = s.last;
        flush_asked_ = s.last;
    }
    flushed_ = std::max(flushed_, s.last);
    flush_asked_ = std::max(flush_asked_, s.last);
    // A flush asked for before, of entries the snapshot now covers: the
    // snapshot is persisted first (ready step 1), so it is moot, and its
    // offset may no longer be in the log.
    if (ready_.flush_through && *ready_.flush_through <= s.last) ready_.flush_through.reset();
    snapshot_ = s;
    snapshot_data_ = r.data;
    leader_match_ = std::max(leader_match_, s.last);
    set_commit(s.last);
    ready_.snapshot = std::make_pair(s, r.data);
    reply_append(m.from);
}

void raft::on_timeout_now(const message& m, const timeout_now& r) {
    if (role_ == role::leader || !self_is_voter() || passive_) return;
    become_candidate(true);
}

// ---- replication: leader side ----

void raft::send_append(node_id to, progress& pr) {
    FJORD_ASSERT(role_ == role::leader, "send_append as {}", role_name(role_));
    if (pr.state == peer_state::snapshot) return;
    if (pr.state == peer_state::probe && pr.probe_sent) return;
    if (pr.next < log_.start()) {
        pr.state = peer_state::snapshot;
        pr.inflights.clear();
        pr.inflight_bytes = 0;
        send(to, snapshot_request{term_, snapshot_, snapshot_data_});
        return;
    }
    FJORD_ASSERT(pr.next <= log_.next(), "next {} beyond log end {}", pr.next.get(), log_.next().get());
    do {
        if (pr.state == peer_state::replicate &&
            (pr.inflights.size() >= opts_.max_inflight_messages || pr.inflight_bytes >= opts_.max_inflight_bytes)) {
            return;  // back-pressure
        }
        append_request req{term_, pr.next - 1, log_.term_at(pr.next - 1), commit_, {}};
        log_.read(pr.next, opts_.max_append_bytes, req.entries);
        size_t bytes = 0;
        for (const auto& e : req.entries) bytes += e.size_bytes();
        if (pr.state == peer_state::probe) {
            pr.probe_sent = true;
            send(to, std::move(req));
            return;
        }
        if (req.entries.empty()) return;
        offset last = req.entries.back().last();
        pr.next = last + 1;
        pr.inflights.push_back(inflight{last, bytes});
        pr.inflight_bytes += bytes;
        send(to, std::move(req));
    } while (pr.next < log_.next());
}

void raft::release_inflights(progress& pr) {
    while (!pr.inflights.empty() && pr.inflights.front().last <= pr.match) {
        FJORD_ASSERT(pr.inflight_bytes >= pr.inflights.front().bytes, "in-flight byte count underflow");
        pr.inflight_bytes -= pr.inflights.front().bytes;
        pr.inflights.pop_front();
    }
}

void raft::on_append_reply(const message& m, const append_reply& r) {
    if (role_ != role::leader) return;
    auto it = progress_.find(m.from);
    if (it == progress_.end()) return;
    progress& pr = it->second;
    pr.active = true;
    if (r.success) {
        FJORD_ASSERT(r.match <= log_.last_offset(), "follower {} matches through {} beyond our log end {}",
                     m.from.get(), r.match.get(), log_.last_offset().get());
        if (r.match > pr.match) pr.match = r.match;
        if (pr.state != peer_state::replicate) {
            if (pr.state == peer_state::snapshot && pr.match < snapshot_.last) return;  // still installing
            pr.state = peer_state::replicate;
            pr.probe_sent = false;
            pr.inflights.clear();
            pr.inflight_bytes = 0;
            pr.next = pr.match + 1;
        }
        if (pr.next <= pr.match) pr.next = pr.match + 1;
        if (pr.next < log_.next() && pr.next >= log_.start()) pr.next = log_.batch_base(pr.next);
        release_inflights(pr);
        maybe_commit();
        if (role_ != role::leader) return;  // a committed configuration removed us
        if (transfer_target_ == m.from && pr.match == log_.last_offset()) send(m.from, timeout_now{term_});
        send_append(m.from, pr);
        return;
    }
    // Rejected: stale unless it answers the append we are waiting on.
    if (r.rejected <= pr.match) return;
    if (pr.state == peer_state::probe && r.rejected != pr.next - 1) return;
    if (pr.state == peer_state::snapshot) return;
    if (pr.state == peer_state::replicate && r.rejected >= pr.next) return;
    offset hint;
    if (r.last_offset < r.rejected) {
        hint = r.last_offset + 1;
    } else {
        hint = std::min(r.rejected, log_.last_offset_for_term(r.conflict_term) + 1);
    }
    offset next = std::max(hint, pr.match + 1);
    FJORD_ASSERT(next <= r.rejected, "backtracking does not progress: next {} after rejection at {}", next.get(),
                 r.rejected.get());
    if (next < log_.next() && next >= log_.start()) next = log_.batch_base(next);
    FJORD_ASSERT(next > pr.match, "next {} at or below match {}", next.get(), pr.match.get());
    pr.next = next;
    pr.state = peer_state::probe;
    pr.probe_sent = false;
    pr.inflights.clear();
    pr.inflight_bytes = 0;
    send_append(m.from, pr);
}

void raft::send_heartbeats(uint64_t seq) {
    for (auto& [id, pr] : progress_) {
        send(id, heartbeat_request{term_, std::min(pr.match, commit_), seq});
    }
}

void raft::on_heartbeat_reply(const message& m, const heartbeat_reply& r) {
    if (role_ != role::leader) return;
    auto it = progress_.find(m.from);
    if (it == progress_.end()) return;
    progress& pr = it->second;
    pr.active = true;
    pr.hb_seq = std::max(pr.hb_seq, r.seq);
    if (r.need_append || pr.match < log_.last_offset()) {
        if (pr.state == peer_state::probe) pr.probe_sent = false;
        send_append(m.from, pr);
    }
    check_reads();
}

void raft::maybe_commit() {
    if (role_ != role::leader) return;
    std::vector<offset> matches;
    if (self_is_voter()) matches.push_back(flushed_);
    for (auto& [id, pr] : progress_) matches.push_back(pr.match);
    size_t q = quorum();
    if (opts_.broken_variant == broken::ack_before_majority && q > 1) --q;  // the bug
    if (matches.size() < q) return;
    std::sort(matches.begin(), matches.end(), std::greater<>());
    offset candidate = matches[q - 1];
    if (candidate <= commit_) return;
    FJORD_ASSERT(candidate <= log_.last_offset(), "quorum match {} beyond log end", candidate.get());
    // Raft §5.4.2: only an entry of the current term commits by counting.
    if (log_.term_at(candidate) != term_ && opts_.broken_variant != broken::commit_old_term) return;
    set_commit(candidate);
}

void raft::set_commit(offset c) {
    if (c <= commit_) return;
    FJORD_ASSERT(c <= log_.last_offset(), "commit {} beyond log end {}", c.get(), log_.last_offset().get());
    commit_ = c;
    ready_.commit = c;
    while (!uncommitted_.empty() && uncommitted_.front().last <= commit_) {
        uncommitted_bytes_ -= uncommitted_.front().bytes;
        uncommitted_.pop_front();
    }
    if (role_ == role::leader) {
        // A leader removed by a committed configuration steps down.
        if (!self_is_voter() && !has_pending_config()) {
            become_follower(term_, std::nullopt);
            return;
        }
        check_reads();
        // Followers learn the new commit offset promptly.
        broadcast_pending_ = true;
    }
}

void raft::check_reads() {
    if (role_ != role::leader) return;
    while (!reads_.empty()) {
        const pending_read& r = reads_.front();
        size_t acks = self_is_voter() ? 1 : 0;
        for (auto& [id, pr] : progress_) {
            if (pr.hb_seq >= r.seq) ++acks;
        }
        if (acks < config().quorum()) return;
        FJORD_ASSERT(r.index <= commit_, "read index {} above commit {}", r.index.get(), commit_.get());
        ready_.reads.push_back(read_state{r.id, r.index});
        reads_.pop_front();
    }
}

// ---- client calls ----

result<offset, errc> raft::propose(shared_bytes payload, int32_t records) {
    FJORD_ASSERT(records >= 1, "batch of {} records", records);
    if (role_ != role::leader) return fail(errc::not_leader);
    if (transfer_target_) return fail(errc::transfer_in_progress);
    if (uncommitted_bytes_ >= opts_.max_uncommitted_bytes) return fail(errc::backlog_full);
    offset base = log_.next();
    entry e{base, records, term_, entry_kind::data, std::move(payload)};
    size_t bytes = e.size_bytes();
    append_local(std::move(e));
    uncommitted_.push_back(inflight{log_.last_offset(), bytes});
    uncommitted_bytes_ += bytes;
    broadcast_pending_ = true;
    return base;
}

result<void, errc> raft::read_index(uint64_t id) {
    if (role_ != role::leader) return fail(errc::not_leader);
    if (commit_ < term_start_) return fail(errc::no_commit_in_term);
    if (lease_valid()) {
        // No other leader can have been elected since the quorum's
        // acknowledgements, so nothing newer than our commit offset exists.
        FJORD_ASSERT(ready_.reads.size() < 65536, "reads unbounded: take_ready() is not being called");
        ready_.reads.push_back(read_state{id, commit_});
        return {};
    }
    if (reads_.size() >= opts_.max_pending_reads) return fail(errc::backlog_full);
    // Confirmed by the next round (started now, or by the group manager).
    reads_.push_back(pending_read{id, commit_, hb_seq_ + 1});
    if (!opts_.external_heartbeats) start_round();
    check_reads();
    return {};
}

result<void, errc> raft::transfer_leadership(node_id target) {
    if (role_ != role::leader) return fail(errc::not_leader);
    if (transfer_target_) return fail(errc::transfer_in_progress);
    auto it = progress_.find(target);
    if (it == progress_.end()) return fail(errc::unknown_node);
    transfer_target_ = target;
    transfer_elapsed_ = 0;
    transfer_started_ = true;  // the target's election bypasses the voters' lease guard
    progress& pr = it->second;
    if (pr.match == log_.last_offset()) {
        send(target, timeout_now{term_});
    } else {
        send_append(target, pr);
    }
    return {};
}

result<offset, errc> raft::change_configuration(const configuration& next) {
    if (role_ != role::leader) return fail(errc::not_leader);
    if (commit_ < term_start_) return fail(errc::no_commit_in_term);
    if (has_pending_config()) return fail(errc::config_change_in_progress);
    if (transfer_target_) return fail(errc::transfer_in_progress);
    const configuration& cur = config();
    std::vector<node_id> diff;
    std::set_symmetric_difference(cur.voters.begin(), cur.voters.end(), next.voters.begin(), next.voters.end(),
                                  std::back_inserter(diff));
    if (diff.size() != 1 || next.voters.empty() || !std::is_sorted(next.voters.begin(), next.voters.end())) {
        return fail(errc::invalid_config_change);
    }
    offset base = log_.next();
    append_local(entry{base, 1, term_, entry_kind::configuration, encode_configuration(next)});
    broadcast_pending_ = true;
    return base;
}

void raft::compact(offset last, shared_bytes data) {
    FJORD_ASSERT(last <= commit_, "snapshot through {} beyond commit {}", last.get(), commit_.get());
    if (last < snapshot_.last) return;
    if (last == snapshot_.last) {
        snapshot_data_ = std::move(data);  // the state machine moved on within the same prefix
        return;
    }
    FJORD_ASSERT(last >= log_.start(), "snapshot through {} below log start {}", last.get(), log_.start().get());
    FJORD_ASSERT(last + 1 == log_.next() || log_.batch_base(last + 1) == last + 1, "snapshot through {} splits a batch",
                 last.get());
    snapshot_meta s{last, log_.term_at(last), snapshot_.config};
    while (!configs_.empty() && configs_.front().first <= last) {
        s.config = configs_.front().second;
        configs_.erase(configs_.begin());
    }
    snapshot_ = std::move(s);
    snapshot_data_ = std::move(data);
    log_.truncate_prefix(last + 1, snapshot_.last_term);
    check_invariants();
}

ready raft::take_ready() {
    if (role_ == role::leader && broadcast_pending_) {
        broadcast_pending_ = false;
        for (auto& [id, pr] : progress_) {
            if (pr.next < log_.next() || pr.state == peer_state::probe) {
                send_append(id, pr);
            } else if (!opts_.external_heartbeats) {
                send(id, heartbeat_request{term_, std::min(pr.match, commit_), hb_seq_});
            }
        }
    }
    ready out = std::move(ready_);
    ready_ = ready{};
    return out;
}

void raft::check_invariants() const {
    FJORD_ASSERT(commit_ <= log_.last_offset(), "commit {} beyond log end {}", commit_.get(), log_.last_offset().get());
    FJORD_ASSERT(commit_ >= snapshot_.last, "commit {} below snapshot {}", commit_.get(), snapshot_.last.get());
    FJORD_ASSERT(flushed_ <= log_.last_offset(), "flushed {} beyond log end {}", flushed_.get(),
                 log_.last_offset().get());
    FJORD_ASSERT(log_.start() - 1 <= snapshot_.last, "log start {} beyond snapshot {}", log_.start().get(),
                 snapshot_.last.get());
    FJORD_ASSERT(leader_match_ <= log_.last_offset() || opts_.broken_variant == broken::no_suffix_truncation,
                 "leader match {} beyond log end {}", leader_match_.get(), log_.last_offset().get());
    switch (role_) {
        case role::leader:
            FJORD_ASSERT(leader_ == opts_.self && vote_ == opts_.self, "leader state");
            FJORD_ASSERT(term_start_ <= log_.last_offset(), "term start {}", term_start_.get());
            FJORD_ASSERT(!progress_.contains(opts_.self), "progress for self");
            FJORD_ASSERT(log_.last_term() == term_, "leader's last term {} in term {}", log_.last_term().get(),
                         term_.get());
            break;
        case role::candidate:
            FJORD_ASSERT(vote_ == opts_.self && !leader_, "candidate state");
            FJORD_ASSERT(progress_.empty(), "candidate with progress");
            break;
        case role::pre_candidate:
        case role::follower:
            FJORD_ASSERT(progress_.empty() && reads_.empty(), "{} with leader state", role_name(role_));
            FJORD_ASSERT(leader_ != opts_.self, "follower thinks it leads");
            break;
    }
}

}  // namespace fjord::raft
