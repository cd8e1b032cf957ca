#include "replica/replicas.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "base/logger.h"

namespace fjord::replica {

namespace {

uint64_t seed_from(uint64_t configured) {
    if (configured != 0) return configured;
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
}

uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A partition snapshot's data: the log start offset, 8 bytes big-endian.
shared_bytes encode_log_start(int64_t lso) {
    std::vector<uint8_t> b(8);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(static_cast<uint64_t>(lso) >> (56 - 8 * i));
    return shared_bytes::adopt(std::move(b));
}

std::optional<int64_t> decode_log_start(const shared_bytes& data) {
    if (data.size() != 8) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v = (v << 8) | data.data()[i];
    const auto lso = static_cast<int64_t>(v);
    if (lso < 0) return std::nullopt;
    return lso;
}

}  // namespace

// ---- replica ----------------------------------------------------------------

replica::replica(shard_replicas& owner, raft::group_id g, storage::log& lg, storage::durability& dur,
                 std::vector<int32_t> replicas, bool write_caching)
    : owner_(owner), group_(g), log_(lg), dur_(dur), replicas_(std::move(replicas)), write_caching_(write_caching) {}

bool replica::is_leader() const {
    return !failed_ && core_->is_leader();
}

bool replica::writable() const {
    return is_leader() && core_->term_start() != raft::no_offset && commit_ >= core_->term_start().get();
}

int32_t replica::term() const {
    return failed_ ? last_term_ : core_->term().get();
}

std::optional<int32_t> replica::leader() const {
    if (failed_) return std::nullopt;
    auto l = core_->leader();
    if (!l) return std::nullopt;
    return l->get();
}

int64_t replica::high_watermark() const {
    return std::min(commit_ + 1, log_.end_offset());
}

std::optional<raft::errc> replica::refuse_append() const {
    if (!is_leader()) return raft::errc::not_leader;
    if (core_->transferring()) return raft::errc::transfer_in_progress;
    if (core_->backlog_full()) return raft::errc::backlog_full;
    return std::nullopt;
}

void replica::appended(int64_t base, int32_t records, shared_bytes payload) {
    rlog_->stage(raft::offset(base), records);
    auto r = core_->propose(std::move(payload), records);
    FJORD_ASSERT(r.ok() && r->get() == base, "proposal of [{}, +{}) after refuse_append() said yes: {}", base, records,
                 r.ok() ? fmt::to_string(r->get()) : raft::errc_name(r.error()));
    owner_.mgr_.group(group_);  // the manager looks at this group again
    // Every append of this turn of the event loop goes out in one message.
    if (!owner_.pump_posted_) {
        owner_.pump_posted_ = true;
        owner_.post_([&o = owner_, alive = std::weak_ptr<bool>(owner_.alive_)] {
            if (alive.expired()) return;
            o.pump_posted_ = false;
            o.pump();
        });
    }
}

void replica::wait(int64_t last, bool need_commit, std::function<void(int)> done) {
    auto& q = need_commit ? commit_waiters_ : flush_waiters_;
    FJORD_ASSERT(q.empty() || q.back().last <= last, "waiters out of order: {} after {}", last, q.back().last);
    q.push_back(waiter{last, term(), std::move(done)});
    owner_.advance(*this);
}

bool replica::transfer_leadership_away() {
    if (!is_leader() || replicas_.size() < 2) return false;
    if (core_->transferring()) return true;  // the last one is still under way
    std::optional<std::pair<raft::offset, int32_t>> best;
    for (int pass = 0; pass < 2 && !best; ++pass) {
        for (int32_t n : isr_) {
            if (n == owner_.opts_.self || (pass == 0 && n == last_away_target_)) continue;
            auto m = core_->follower_match(raft::node_id(n));
            if (m && (!best || *m > best->first)) best = std::pair{*m, n};
        }
    }
    if (!best || !core_->transfer_leadership(raft::node_id(best->second)).ok()) return false;
    last_away_target_ = best->second;
    owner_.mgr_.group(group_);
    owner_.pump();
    return true;
}

bool replica::transfer_to(int32_t node) {
    if (!is_leader() || node == owner_.opts_.self ||
        std::find(replicas_.begin(), replicas_.end(), node) == replicas_.end())
        return false;
    if (!core_->transfer_leadership(raft::node_id(node)).ok()) return false;
    owner_.mgr_.group(group_);
    owner_.pump();
    return true;
}

bool replica::advance_log_start(int64_t offset) {
    if (failed_) return false;
    if (offset <= log_.start_offset()) return true;
    if (offset > high_watermark() || offset > core_->commit().get() + 1) return false;
    // Raft's snapshot ends where the batch holding `offset` begins.
    const raft::offset at(offset);
    const raft::offset first = at >= rlog_->next() ? at : rlog_->batch_base(at);
    core_->compact(first - 1, encode_log_start(offset));
    if (offset > log_.start_offset()) {
        auto r = log_.advance_start_offset(offset);
        if (!r) return false;
    }
    return true;
}

// ---- shard_replicas -----------------------------------------------------------

shard_replicas::shard_replicas(replicas_options opts, storage::io_engine& engine, post_fn post, send_fn send)
    : opts_(opts),
      engine_(engine),
      post_(std::move(post)),
      send_(std::move(send)),
      mgr_(raft::manager_options{.self = raft::node_id(opts.self), .heartbeat_ticks = opts.heartbeat_ticks}),
      rng_(seed_from(opts.seed)),
      alive_(std::make_shared<bool>(true)) {}

shard_replicas::~shard_replicas() {
    alive_.reset();
}

result<replica*, std::string> shard_replicas::add(raft::group_id g, storage::log& lg, storage::durability& dur,
                                                  std::vector<int32_t> replicas, bool write_caching) {
    FJORD_ASSERT(!replicas_.count(g), "group {} added twice", g.get());
    if (std::find(replicas.begin(), replicas.end(), opts_.self) == replicas.end()) {
        return fail(fmt::format("node {} is not one of the replicas", opts_.self));
    }
    std::unique_ptr<replica> r(new replica(*this, g, lg, dur, std::move(replicas), write_caching));
    std::optional<raft::hard_state> stored;
    std::string detail;
    auto state = hard_state_file::open(lg.dir() + "/quorum-state", stored, detail);
    if (!state) return fail(std::move(detail));
    r->state_ = std::move(state).value();

    raft::persisted p;
    if (stored) p.hs = *stored;
    // A log that no longer starts at 0 (retention, DeleteRecords) starts
    // after a snapshot of what went: its last offset and term, and the log
    // start offset as the data a follower behind gets.
    r->rlog_ = std::make_unique<raft::storage_log>(lg);
    if (r->rlog_->failed()) return fail(fmt::format("{}: {}", lg.dir(), r->rlog_->failure()));
    r->rlog_->on_failure([this, g] { log_failures_.push_back(g); });
    if (r->rlog_->start() > raft::offset(0)) {
        p.snapshot.last = r->rlog_->start() - 1;
        p.snapshot.last_term = r->rlog_->term_at(p.snapshot.last);
        p.snapshot_data = encode_log_start(lg.start_offset());
    }
    std::vector<raft::node_id> voters;
    for (int32_t v : r->replicas_) voters.emplace_back(v);
    p.snapshot.config = raft::make_configuration(std::move(voters));

    raft::options ro;
    ro.self = raft::node_id(opts_.self);
    ro.group = g;
    ro.election_ticks = opts_.election_ticks;
    ro.heartbeat_ticks = opts_.heartbeat_ticks;
    ro.max_uncommitted_bytes = size_t{32} << 20;
    ro.broken_variant = opts_.broken_variant;
    ro.seed = mix(rng_ ^ static_cast<uint64_t>(g.get()));
    mgr_.add_group(ro, *r->rlog_, std::move(p));
    r->core_ = mgr_.group(g);
    r->core_->set_passive(passive_);
    r->generation_ = next_generation_++;
    replica* out = r.get();
    replicas_.emplace(g, std::move(r));
    return out;
}

void shard_replicas::set_passive() {
    passive_ = true;
    for (auto& [g, r] : replicas_) {
        if (!r->failed_) r->core_->set_passive(true);
    }
}

replica* shard_replicas::find(raft::group_id g) {
    auto it = replicas_.find(g);
    return it == replicas_.end() ? nullptr : it->second.get();
}

void shard_replicas::remove(raft::group_id g) {
    auto it = replicas_.find(g);
    if (it == replicas_.end()) return;
    cancel_waiters(*it->second, -ECANCELED);
    if (!it->second->failed_) mgr_.remove_group(g);
    replicas_.erase(it);
}

void shard_replicas::tick(int64_t now_ms) {
    now_ms_ = now_ms;
    mgr_.tick();
    pump();
    // Changes of role, term and high watermark are noticed with the outputs
    // that carry them (handle()); what only time changes (a follower falling
    // out of the ISR, or back in on an idle partition) is looked at every
    // notice_interval_ms: walking every replica every tick cost an idle node
    // with 10,000 replicas a tenth of a core.
    if (now_ms < next_notice_ms_) return;
    next_notice_ms_ = now_ms + notice_interval_ms;
    for (auto& [g, r] : replicas_) {
        if (!r->failed_) notice(*r);
    }
}

void shard_replicas::step(const raft::envelope& e) {
    if (!raft::plausible_envelope(e, raft::node_id(opts_.self), true)) {
        ++dropped_;
        return;
    }
    // Followers' answers, for the ISR.
    if (const auto* m = std::get_if<raft::message>(&e.body)) {
        if (replica* r = find(m->group)) r->heard_ms_[e.from.get()] = now_ms_;
    } else {
        for (const auto& a : std::get<raft::heartbeat_batch>(e.body).acks) {
            if (replica* r = find(a.group)) r->heard_ms_[e.from.get()] = now_ms_;
        }
    }
    mgr_.step(e);
    pump();
}

void shard_replicas::pump() {
    // handle() may re-enter through a completion; one loop at a time.
    if (pumping_) return;
    pumping_ = true;
    while (!persisting_) {
        auto out = mgr_.take_ready();
        if (out.empty() && log_failures_.empty()) break;
        handle(std::move(out));
    }
    pumping_ = false;
}

void shard_replicas::handle(raft::group_manager::output out) {
    // 0. a replica whose storage log failed inside the core stops, and none
    // of its messages leave: they may claim what the log does not hold.
    if (!log_failures_.empty()) {
        auto failed = std::move(log_failures_);
        log_failures_.clear();
        for (raft::group_id g : failed) {
            if (replica* r = find(g); r && !r->failed_)
                fail_replica(*r, fmt::format("{}: {}", r->log_.dir(), r->rlog_->failure()));
        }
        const auto gone = [&failed](raft::group_id g) {
            return std::find(failed.begin(), failed.end(), g) != failed.end();
        };
        std::erase_if(out.messages, [&](raft::envelope& e) {
            if (const auto* m = std::get_if<raft::message>(&e.body)) return gone(m->group);
            auto& hb = std::get<raft::heartbeat_batch>(e.body);
            std::erase_if(hb.beats, [&](const raft::heartbeat_item& b) { return gone(b.group); });
            std::erase_if(hb.acks, [&](const raft::heartbeat_ack& a) { return gone(a.group); });
            return hb.beats.empty() && hb.acks.empty();
        });
        std::erase_if(out.groups, [&](const auto& gr) { return gone(gr.first); });
    }
    // 1. every hard state, durably, before any message made with them.
    std::vector<std::pair<replica*, raft::hard_state>> writes;
    for (auto& [g, rd] : out.groups) {
        if (rd.snapshot) {
            // Installed: the core moved the log start past what the snapshot
            // covers; the leader's log start offset may be further inside the
            // next batch. Durable with the next checkpoint: until then a
            // restart keeps more of the log, which is harmless.
            replica* r = find(g);
            auto lso = decode_log_start(rd.snapshot->second);
            if (r && lso) r->snapshot_start_ = *lso;  // once the log reaches it (an empty log restarts below it)
            rd.snapshot.reset();
        }
        if (!rd.hard_state) continue;
        replica* r = find(g);
        if (r && !r->failed_) writes.emplace_back(r, *rd.hard_state);
        rd.hard_state.reset();
    }
    if (!writes.empty()) {
        persisting_ = true;
        auto left = std::make_shared<size_t>(writes.size());
        auto held = std::make_shared<raft::group_manager::output>(std::move(out));
        for (auto& [r, hs] : writes) {
            persist(*r, hs, [this, left, held] {
                if (--*left != 0) return;
                persisting_ = false;
                handle(std::move(*held));
                pump();
            });
        }
        return;
    }
    // 2. messages; 3. flushes; 4. commits.
    for (auto& e : out.messages) send_(std::move(e));
    for (auto& [g, rd] : out.groups) {
        replica* r = find(g);
        if (!r || r->failed_) continue;
        if (rd.flush_through) flush(*r, *rd.flush_through);
        if (r->failed_) continue;  // the flush failed at once
        if (rd.commit && rd.commit->get() > r->commit_) r->commit_ = rd.commit->get();
        if (r->snapshot_start_ >= 0 && r->snapshot_start_ <= r->log_.end_offset()) {
            if (r->snapshot_start_ > r->log_.start_offset()) (void)r->log_.advance_start_offset(r->snapshot_start_);
            r->snapshot_start_ = -1;
        }
        advance(*r);
        notice(*r);
    }
}

void shard_replicas::persist(replica& r, const raft::hard_state& hs, std::function<void()> then) {
    const raft::group_id g = r.group_;
    const uint64_t gen = r.generation_;
    auto done = [this, g, gen, then, alive = std::weak_ptr<bool>(alive_)](int err) {
        post_([this, g, gen, err, then, alive] {
            if (alive.expired()) return;
            replica* r = find(g);
            if (err < 0 && r && r->generation_ == gen) {
                fail_replica(*r, fmt::format("{}: write failed: {}", r->state_->path(), std::strerror(-err)));
            }
            then();
        });
    };
    if (!r.state_->write(hs, engine_, done)) {
        // Saturated engine: try again from the loop.
        post_([this, g, gen, hs, then = std::move(then), alive = std::weak_ptr<bool>(alive_)]() mutable {
            if (alive.expired()) return;
            replica* r = find(g);
            if (!r || r->generation_ != gen || r->failed_) {
                then();
                return;
            }
            persist(*r, hs, std::move(then));
        });
    }
}

void shard_replicas::flush(replica& r, raft::offset o) {
    if (o.get() >= r.log_.end_offset()) o = raft::offset(r.log_.end_offset() - 1);
    if (o.get() < r.log_.start_offset()) return;
    const raft::term_id t = r.rlog_->term_at(o);
    const raft::group_id g = r.group_;
    const uint64_t gen = r.generation_;
    auto flushed = [this, g, gen, o, t, alive = std::weak_ptr<bool>(alive_)](int err) {
        if (alive.expired()) return;
        replica* r = find(g);
        if (!r || r->generation_ != gen || r->failed_) return;
        if (err != 0) {
            if (err == -ECANCELED) return;  // a truncation removed it; the core asks again
            fail_replica(*r, fmt::format("{}: fsync failed: {}", r->log_.dir(), std::strerror(-err)));
            return;
        }
        r->core_->on_flushed(o, t);
        mgr_.group(g);
        pump();
        advance(*r);
    };
    if (r.write_caching_) {
        // Kafka's semantics: a replica counts once the batch is in its page
        // cache; flush.ms / flush.messages make it durable later.
        post_([flushed] { flushed(0); });
        return;
    }
    ++flushes_;
    r.dur_.flush([this, flushed, alive = std::weak_ptr<bool>(alive_)](int err) {
        if (alive.expired()) return;
        --flushes_;
        flushed(err);
    });
}

void shard_replicas::advance(replica& r) {
    if (r.failed_) {
        cancel_waiters(r, -EIO);
        return;
    }
    // A waiter's batch is the entry of its term at its offset: anything else
    // there now means another leader replaced it.
    const auto ours = [&r](const replica::waiter& w) {
        return w.last < r.log_.end_offset() && w.last >= r.log_.start_offset() &&
               r.rlog_->term_at(raft::offset(w.last)).get() == w.term;
    };
    const auto release = [&](std::deque<replica::waiter>& q, int64_t through) {
        while (!q.empty() && q.front().last <= through) {
            auto w = std::move(q.front());
            q.pop_front();
            const int err = ours(w) ? 0 : -ECANCELED;
            post_([done = std::move(w.done), err] { done(err); });
        }
    };
    release(r.commit_waiters_, r.commit_);
    release(r.flush_waiters_, r.core_->flushed().get());
    // A waiter from an earlier term, or of a leader that stepped down, waits
    // for nothing this replica will do.
    const auto stale = [&r](const std::deque<replica::waiter>& q) {
        return !q.empty() && (!r.core_->is_leader() || q.front().term != r.term());
    };
    if (stale(r.commit_waiters_) || stale(r.flush_waiters_)) {
        for (auto* q : {&r.commit_waiters_, &r.flush_waiters_}) {
            while (!q->empty() && (!r.core_->is_leader() || q->front().term != r.term())) {
                auto w = std::move(q->front());
                q->pop_front();
                post_([done = std::move(w.done)] { done(-ECANCELED); });
            }
        }
    }
}

void shard_replicas::cancel_waiters(replica& r, int err) {
    for (auto* q : {&r.commit_waiters_, &r.flush_waiters_}) {
        while (!q->empty()) {
            auto w = std::move(q->front());
            q->pop_front();
            post_([done = std::move(w.done), err] { done(err); });
        }
    }
}

void shard_replicas::fail_replica(replica& r, std::string why) {
    if (r.failed_) return;
    log_error("partition replica (group {}) stopped: {}", r.group_.get(), why);
    r.failed_ = true;
    cancel_waiters(r, -EIO);
    mgr_.remove_group(r.group_);
    r.core_ = nullptr;
    if (r.listener_) post_([fn = r.listener_] { fn(); });
}

void shard_replicas::notice(replica& r) {
    if (r.failed_) return;
    const bool leader = r.core_->is_leader();
    const int32_t term = r.core_->term().get();
    // In-sync replicas: the leader's view of its followers.
    std::vector<int32_t> isr;
    if (leader) {
        if (!r.was_leader_ || term != r.last_term_) {
            // A new leader gives every follower a full lag window.
            r.caught_up_ms_.clear();
            for (int32_t n : r.replicas_) r.caught_up_ms_[n] = r.heard_ms_[n] = now_ms_;
        }
        const raft::offset last = r.core_->get_log().next() - 1;
        for (int32_t n : r.replicas_) {
            if (n == opts_.self) {
                isr.push_back(n);
                continue;
            }
            auto m = r.core_->follower_match(raft::node_id(n));
            const int64_t heard = r.heard_ms_[n];
            if (m && *m >= last) r.caught_up_ms_[n] = heard;
            if (now_ms_ - r.caught_up_ms_[n] <= opts_.replica_lag_time_max_ms) isr.push_back(n);
        }
        std::sort(isr.begin(), isr.end());
    }
    const int64_t hw = r.high_watermark();
    if (leader == r.was_leader_ && term == r.last_term_ && hw == r.last_hw_ && isr == r.isr_) return;
    if (leader != r.was_leader_ || term != r.last_term_) advance(r);
    if (leader && (!r.was_leader_ || term != r.last_term_)) r.leader_since_ms_ = now_ms_;
    r.was_leader_ = leader;
    r.last_term_ = term;
    r.last_hw_ = hw;
    r.isr_ = std::move(isr);
    if (r.listener_) post_([fn = r.listener_] { fn(); });
}

}  // namespace fjord::replica
