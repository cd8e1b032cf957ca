#include "cluster/raft_metadata_log.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstring>
#include <random>

#include "base/logger.h"
#include "protocol/record_batch.h"
#include "replica/hard_state_file.h"

namespace fjord::cluster {

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Kafka's Uuid.METADATA_TOPIC_ID (0, 1): the topic id of __cluster_metadata.
storage::uuid metadata_topic_id() {
    storage::uuid id{};
    id[15] = 1;
    return id;
}

const storage::topic_partition& metadata_tp() {
    static const storage::topic_partition tp{"__cluster_metadata", 0};
    return tp;
}

uint64_t seed_from(uint64_t configured) {
    if (configured != 0) return configured;
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace

raft_metadata_log::raft_metadata_log(const raft_metadata_log_options& opts, storage::io_engine& engine, post_fn post,
                                     send_fn send)
    : opts_(opts), engine_(engine), post_(std::move(post)), send_(std::move(send)) {}

result<std::unique_ptr<raft_metadata_log>, errc> raft_metadata_log::open(const raft_metadata_log_options& opts,
                                                                         storage::io_engine& engine, post_fn post,
                                                                         send_fn send, std::string& detail) {
    if (std::find(opts.voters.begin(), opts.voters.end(), opts.node_id) == opts.voters.end()) {
        detail = fmt::format("node {} is not one of the metadata quorum's voters", opts.node_id);
        return fail(errc::invalid_config);
    }
    std::unique_ptr<raft_metadata_log> l(new raft_metadata_log(opts, engine, std::move(post), std::move(send)));
    storage::log_manager_config cfg;
    cfg.dir = opts.dir;
    cfg.max_open_files = 16;
    cfg.node_id = opts.node_id;
    cfg.defaults.segment_bytes = opts.segment_bytes;
    // Never cut by retention (no metadata snapshots yet).
    cfg.defaults.retention_ms = -1;
    cfg.defaults.retention_bytes = -1;
    storage::file_system& fs = opts.fs ? *opts.fs : storage::posix_file_system();
    const int64_t now = now_ms();
    auto m = storage::log_manager::open(fs, cfg, now);
    if (!m) {
        detail = fmt::format("metadata directory {}: {}", opts.dir, storage::describe(m.error()));
        return fail(errc::io_error);
    }
    l->manager_ = std::move(m).value();
    if (auto it = l->manager_->offline().find(metadata_tp()); it != l->manager_->offline().end()) {
        detail = fmt::format("metadata log {}/{}: {}", opts.dir, metadata_tp().dir_name(), it->second);
        return fail(errc::metadata_offline);
    }
    l->log_ = l->manager_->get(metadata_tp());
    if (!l->log_) {
        const storage::uuid id = metadata_topic_id();
        auto created = l->manager_->create_log(metadata_tp(), cfg.defaults, &id);
        if (!created) {
            detail = fmt::format("creating the metadata log in {}: {}", opts.dir, storage::describe(created.error()));
            return fail(errc::io_error);
        }
        l->log_ = *created;
        if (auto r = l->log_->sync(); !r) {
            detail = fmt::format("syncing the new metadata log in {}: {}", opts.dir, storage::describe(r.error()));
            return fail(errc::io_error);
        }
    }
    if (l->log_->start_offset() != 0) {
        detail = fmt::format("metadata log {}: starts at offset {} but there are no metadata snapshots", opts.dir,
                             l->log_->start_offset());
        return fail(errc::metadata_offline);
    }

    // The quorum state (start-up: reading it here may block, as opening the log does).
    const std::string state_path = opts.dir + "/quorum-state";
    std::optional<raft::hard_state> stored;
    auto state = replica::hard_state_file::open(state_path, stored, detail);
    if (!state) return fail(state.error() == EIO ? errc::metadata_offline : errc::io_error);
    l->state_ = std::move(state).value();
    raft::persisted p;
    if (stored) {
        p.hs = *stored;
    } else if (l->log_->end_offset() > 0 && l->log_->epochs().latest_epoch() > 0) {
        // A Raft log without the state that must have been written before it.
        detail = fmt::format("{}: missing, but the metadata log holds {} records of term {}", state_path,
                             l->log_->end_offset(), l->log_->epochs().latest_epoch());
        return fail(errc::metadata_offline);
    } else if (l->log_->end_offset() > 0 && opts.voters.size() > 1) {
        detail = fmt::format("{}: a single node's metadata log (from before Raft) cannot join a quorum of {}", opts.dir,
                             opts.voters.size());
        return fail(errc::metadata_offline);
    } else if (l->log_->end_offset() > 0) {
        // A single node's metadata from before Raft (every batch of epoch 0):
        // this node elects itself and commits it.
        log_warn("{}: metadata log from before Raft ({} records); taking it over as a quorum of one", opts.dir,
                 l->log_->end_offset());
    }
    std::vector<raft::node_id> voters;
    for (int32_t v : opts.voters) voters.emplace_back(v);
    p.snapshot.config = raft::make_configuration(std::move(voters));

    l->rlog_ = std::make_unique<raft::storage_log>(*l->log_, raft::no_term);
    storage::durability_config dc;
    dc.mode = storage::durability_mode::group_commit;
    l->durability_ = std::make_unique<storage::durability>(*l->log_, engine, l->post_, dc, now);
    raft::manager_options mo;
    mo.self = raft::node_id(opts.node_id);
    mo.heartbeat_ticks = opts.heartbeat_ticks;
    l->mgr_ = std::make_unique<raft::group_manager>(mo);
    raft::options ro;
    ro.self = raft::node_id(opts.node_id);
    ro.group = metadata_group;
    ro.election_ticks = opts.election_ticks;
    ro.heartbeat_ticks = opts.heartbeat_ticks;
    ro.seed = seed_from(opts.seed);
    l->mgr_->add_group(ro, *l->rlog_, std::move(p));
    l->core_ = l->mgr_->group(metadata_group);
    log_info("metadata quorum: node {} of voters [{}], term {}, log [0, {})", opts.node_id, fmt::join(opts.voters, ","),
             l->core_->term().get(), l->log_->end_offset());
    return l;
}

raft_metadata_log::~raft_metadata_log() {
    durability_.reset();  // before the log it drives
}

raft::raft& raft_metadata_log::core() {
    return *core_;
}

int32_t raft_metadata_log::term() const {
    return core_->term().get();
}

int64_t raft_metadata_log::commit_offset() const {
    return commit_;
}

bool raft_metadata_log::writable() const {
    return !offline_ && !abandoned_ && core_->is_leader() && core_->term_start() != raft::no_offset &&
           applied_next_ > core_->term_start().get();
}

std::optional<int32_t> raft_metadata_log::leader() const {
    auto l = core_->leader();
    if (!l) return std::nullopt;
    return l->get();
}

bool raft_metadata_log::idle() const {
    return pending_.empty() && !persisting_ && flushes_ == 0 && durability_->idle();
}

void raft_metadata_log::go_offline(std::string detail) {
    if (offline_) return;
    offline_ = true;
    offline_detail_ = std::move(detail);
    log_error("metadata log offline: {}", offline_detail_);
    fail_pending(errc::metadata_offline);
    notice_state();
}

bool raft_metadata_log::transfer_leadership_away() {
    if (!core_->is_leader() || opts_.voters.size() < 2) return false;
    std::optional<std::pair<raft::offset, int32_t>> best;
    for (int32_t v : opts_.voters) {
        if (v == opts_.node_id) continue;
        auto m = core_->follower_match(raft::node_id(v));
        if (m && (!best || *m > best->first)) best = std::pair{*m, v};
    }
    if (!best) return false;
    if (!core_->transfer_leadership(raft::node_id(best->second)).ok()) return false;
    mgr_->group(metadata_group);
    pump();
    return true;
}

void raft_metadata_log::abandon() {
    abandoned_ = true;
    fail_pending(errc::not_controller);
}

void raft_metadata_log::tick() {
    if (offline_ || closed_ || abandoned_) return;
    mgr_->tick();
    pump();
}

void raft_metadata_log::step(const raft::envelope& e) {
    if (offline_ || closed_ || abandoned_) return;
    const auto* m = std::get_if<raft::message>(&e.body);
    if (!raft::plausible_envelope(e, raft::node_id(opts_.node_id), false) || (m && m->group != metadata_group)) {
        ++dropped_;
        return;
    }
    mgr_->step(e);
    pump();
}

void raft_metadata_log::append(std::vector<metadata_record> records, append_done done) {
    FJORD_ASSERT(!records.empty(), "empty metadata append");
    FJORD_ASSERT(!closed_, "append to a closed metadata log");
    if (offline_) {
        post_([done = std::move(done)] { done(fail(errc::metadata_offline)); });
        return;
    }
    if (!writable() || abandoned_) {
        post_([done = std::move(done)] { done(fail(errc::not_controller)); });
        return;
    }
    protocol::batch_builder b;
    const int64_t now = now_ms();
    for (const auto& r : records) {
        protocol::writer w(64);
        encode(r, w);
        auto value = w.take();
        b.add(now, std::nullopt, std::span<const uint8_t>(value));
    }
    auto built = b.build();
    FJORD_ASSERT(built.ok(), "an uncompressed batch failed to build");
    auto proposed = core_->propose(shared_bytes::adopt(std::move(built).value()), static_cast<int32_t>(records.size()));
    if (!proposed) {
        const errc e = proposed.error() == raft::errc::not_leader ? errc::not_controller : errc::io_error;
        post_([done = std::move(done), e] { done(fail(e)); });
        return;
    }
    pending_.push_back(pending_append{proposed->get(), core_->term().get(), std::move(done)});
    pump();
}

void raft_metadata_log::pump() {
    // handle() may re-enter through a completion; one loop at a time.
    if (pumping_) return;
    pumping_ = true;
    while (!persisting_ && !offline_) {
        auto out = mgr_->take_ready();
        if (out.empty()) break;
        handle(std::move(out));
    }
    pumping_ = false;
    notice_state();
}

void raft_metadata_log::handle(raft::group_manager::output out) {
    // 1. the hard state, durably, before any message made with it.
    for (auto& [g, rd] : out.groups) {
        FJORD_ASSERT(g == metadata_group, "output for group {}", g.get());
        FJORD_ASSERT(!rd.snapshot, "a metadata snapshot without snapshots");
        if (rd.hard_state) {
            auto hs = *rd.hard_state;
            rd.hard_state.reset();
            held_ = std::move(out);
            persist(hs, [this] {
                auto rest = std::move(*held_);
                held_.reset();
                handle(std::move(rest));
                pump();
            });
            return;
        }
    }
    // 2. messages; 3. flushes; 4. commits.
    for (auto& e : out.messages) send_(std::move(e));
    for (auto& [g, rd] : out.groups) {
        if (rd.flush_through) flush_through(*rd.flush_through);
        if (rd.commit && rd.commit->get() > commit_) {
            commit_ = rd.commit->get();
            apply_committed();
        }
    }
}

void raft_metadata_log::persist(const raft::hard_state& hs, std::function<void()> then) {
    persisting_ = true;
    auto done = [this, then](int r) mutable {
        post_([this, r, then = std::move(then)] {
            persisting_ = false;
            if (r < 0) {
                go_offline(fmt::format("{}: write failed: {}", state_->path(), std::strerror(-r)));
                return;
            }
            then();
        });
    };
    if (!state_->write(hs, engine_, std::move(done))) {
        // Saturated engine: try again from the loop.
        post_([this, hs, then = std::move(then)]() mutable {
            persisting_ = false;
            persist(hs, std::move(then));
        });
    }
}

void raft_metadata_log::flush_through(raft::offset o) {
    if (o.get() >= log_->end_offset()) o = raft::offset(log_->end_offset() - 1);
    if (o.get() < 0) return;
    const raft::term_id t = rlog_->term_at(o);
    ++flushes_;
    durability_->flush([this, o, t](int err) {
        --flushes_;
        if (err != 0) {
            if (err == -ECANCELED) return;  // a truncation removed it; the core asks again
            go_offline(fmt::format("metadata log fsync failed: {}", std::strerror(-err)));
            return;
        }
        if (offline_ || closed_ || abandoned_) return;
        core_->on_flushed(o, t);
        mgr_->group(metadata_group);  // let the manager look at the group again
        pump();
    });
}

void raft_metadata_log::apply_committed() {
    std::vector<raft::entry> entries;
    std::vector<uint8_t> scratch;
    while (applied_next_ <= commit_ && !offline_) {
        entries.clear();
        rlog_->read(raft::offset(applied_next_), size_t{1} << 20, entries);
        if (entries.empty()) break;
        for (const auto& e : entries) {
            if (e.base.get() > commit_) break;
            FJORD_ASSERT(e.base.get() == applied_next_, "applying batch {} where {} was expected", e.base.get(),
                         applied_next_);
            applied_next_ = e.next().get();
            if (e.kind != raft::entry_kind::data) continue;
            std::vector<metadata_record> records;
            auto b = protocol::record_batch::parse(e.payload);
            std::string why;
            if (b) {
                auto payload = b->payload(scratch);
                if (!payload) {
                    why = protocol::describe(payload.error());
                } else {
                    auto rr = b->records(*payload);
                    protocol::record_view v;
                    while (why.empty() && rr.next(v)) {
                        if (!v.value) {
                            why = "a record with a null value";
                            break;
                        }
                        auto rec = decode(*v.value, &why);
                        if (!rec) break;
                        records.push_back(std::move(*rec));
                    }
                    if (why.empty() && !rr.ok()) why = protocol::describe(rr.error());
                }
            } else {
                why = "not a record batch";
            }
            if (!why.empty()) {
                go_offline(fmt::format("{}: committed batch at offset {}: {}", log_->dir(), e.base.get(), why));
                return;
            }
            const int64_t first = e.base.get();
            std::optional<pending_append> mine;
            if (!pending_.empty() && pending_.front().first == first && pending_.front().term == e.term.get()) {
                mine = std::move(pending_.front());
                pending_.pop_front();
            }
            post_([this, first, records = std::move(records), done = mine ? std::move(mine->done) : append_done{}] {
                if (apply_) apply_(first, records);
                if (done) done(first);
            });
        }
    }
    // Appends of ours at or below the commit that were not committed as
    // ours: another leader overwrote them.
    while (!pending_.empty() && pending_.front().first < applied_next_) {
        auto p = std::move(pending_.front());
        pending_.pop_front();
        post_([done = std::move(p.done)] { done(fail(errc::not_controller)); });
    }
}

void raft_metadata_log::fail_pending(errc why) {
    while (!pending_.empty()) {
        auto p = std::move(pending_.front());
        pending_.pop_front();
        post_([done = std::move(p.done), why] { done(fail(why)); });
    }
}

void raft_metadata_log::notice_state() {
    // A leader that lost its term cannot finish what it proposed: its
    // entries may still commit under the next leader (then every node
    // applies them), but its callers get not_controller.
    if (!pending_.empty() && (!core_->is_leader() || core_->term().get() != pending_.back().term)) {
        fail_pending(errc::not_controller);
    }
    const bool w = writable();
    const auto l = leader();
    const int32_t t = term();
    if (w == was_writable_ && l == last_leader_ && t == last_term_) return;
    if (l != last_leader_ || t != last_term_) {
        log_info("metadata quorum: term {}, leader {}{}", t, l ? fmt::to_string(*l) : "none",
                 l && *l == opts_.node_id ? " (this node)" : "");
    }
    was_writable_ = w;
    last_leader_ = l;
    last_term_ = t;
    if (state_listener_) post_([this] { state_listener_(); });
}

result<void, errc> raft_metadata_log::close() {
    FJORD_ASSERT(idle(), "metadata log closed while busy");
    closed_ = true;
    if (auto r = manager_->shutdown(); !r) return fail(errc::io_error);
    return {};
}

}  // namespace fjord::cluster
