#include "kafka/broker.h"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <random>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "base/logger.h"
#include "base/metrics.h"
#include "cluster/raft_metadata_log.h"
#include "kafka/config_catalog.h"
#include "kafka/dispatcher.h"
#include "net/blocking_pool.h"
#include "rpc/transport.h"

namespace fjord::kafka {
namespace {
namespace asio = net::asio;
using tcp = asio::ip::tcp;

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

counter partitions_gauge("fjord_partitions", "Partition replicas on this node", true);
counter compactions_run("fjord_log_compactions_total", "Compaction runs installed");
counter retention_deleted("fjord_log_segments_deleted_total{reason=\"retention\"}",
                          "Segments deleted by retention.ms / retention.bytes");

template <typename T>
net::awaitable<void> await_flag(net::event& ev, const T& done) {
    while (!done()) co_await ev.wait();
}
}  // namespace

bool hosts(const cluster::partition_info& p, int32_t node) {
    return std::find(p.replicas.begin(), p.replicas.end(), node) != p.replicas.end();
}

unsigned owner_shard(std::string_view topic, int32_t partition, unsigned shards) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a, stable across runs and builds
    for (char c : topic) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    for (int i = 0; i < 4; ++i) h = (h ^ ((static_cast<uint32_t>(partition) >> (8 * i)) & 0xff)) * 1099511628211ull;
    return static_cast<unsigned>(h % shards);
}

shard_ctx::shard_ctx(broker& b, unsigned i) : owner(b), id(i) {}
shard_ctx::~shard_ctx() = default;

// A partition whose topic was deleted: once its in-flight fsyncs are done
// the replica and its log go, then its (renamed) directory is removed on
// the blocking pool.
static net::awaitable<void> retire_partition(shard_ctx* sh, std::unique_ptr<partition> p,
                                             std::unique_ptr<storage::log> lg, std::string dir) {
    ++sh->background;
    auto ex = co_await asio::this_coro::executor;
    while (p && !p->durability().idle()) {
        asio::steady_timer t(ex, std::chrono::milliseconds(1));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    p.reset();
    lg.reset();
    if (!dir.empty()) {
        auto work = net::run_blocking(sh->owner.pool(), [dir] {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
            if (ec) log_warn("{}: could not remove a deleted partition's directory: {}", dir, ec.message());
        });
        co_await std::move(work);
    }
    --sh->background;
}

void shard_ctx::drop_deleted(const cluster::metadata_image& img) {
    const int32_t self = owner.config().node_id;
    auto wanted = [&img, self](const storage::topic_partition& tp, const protocol::uuid* id) {
        const auto* t = img.find_topic(tp.topic);
        return t && tp.partition >= 0 && tp.partition < static_cast<int32_t>(t->partitions.size()) &&
               (!id || t->id == *id) && hosts(t->partitions[static_cast<size_t>(tp.partition)], self);
    };
    std::vector<storage::topic_partition> gone;
    for (const auto& [tp, p] : partitions) {
        if (!wanted(tp, &p->topic_id())) gone.push_back(tp);
    }
    // Logs without a replica and without a topic: a deletion that a crash cut short.
    for (const auto& [tp, lg] : logs->logs()) {
        if (!partitions.count(tp) && !wanted(tp, nullptr)) gone.push_back(tp);
    }
    for (const auto& tp : gone) {
        std::unique_ptr<partition> p;
        if (auto it = partitions.find(tp); it != partitions.end()) {
            p = std::move(it->second);
            partitions.erase(it);
            partitions_gauge.add(-1);
            if (auto* r = p->replica()) {
                replicas->remove(r->group());
                p->set_replica(nullptr);
            }
        }
        auto lg = logs->release_log(tp);
        // Renamed at once (one metadata operation, as Kafka does) so that a
        // topic created again under the same name gets a fresh directory.
        const std::string dir = logs->dir() + "/" + tp.dir_name();
        const std::string trash = fmt::format("{}.{:x}-delete", dir, static_cast<uint64_t>(wall_ms()));
        std::error_code ec;
        std::filesystem::rename(dir, trash, ec);
        if (ec)
            log_warn("partition {}-{}: could not rename its directory for deletion: {}", tp.topic, tp.partition,
                     ec.message());
        log_info("partition {}-{}: deleted", tp.topic, tp.partition);
        asio::co_spawn(owner.shards().context(id),
                       retire_partition(this, std::move(p), std::move(lg), ec ? std::string() : trash), asio::detached);
    }
}

void shard_ctx::apply_image(std::shared_ptr<const cluster::metadata_image> img) {
    const auto& base_cfg = owner.config();
    const unsigned n = owner.shards().count();
    int64_t now = wall_ms();
    drop_deleted(*img);
    // Dynamic broker configs (kafka-configs --entity-type brokers) are topic defaults too.
    const broker_config cfg = with_dynamic_topic_defaults(base_cfg, dynamic_configs_of(*img, base_cfg.node_id));
    for (const auto& [name, topic] : img->topics()) {
        std::optional<topic_config> tc;
        for (const auto& p : topic->partitions) {
            if (owner_shard(name, p.partition, n) != id || !hosts(p, base_cfg.node_id)) continue;
            storage::topic_partition tp{name, p.partition};
            if (!tc) {
                properties props(topic->configs.begin(), topic->configs.end());
                auto r = resolve_topic_config(cfg, props);
                if (!r) {
                    log_error("topic {}: invalid config ({}); using the broker defaults", name, r.error());
                    r = resolve_topic_config(cfg, {});
                }
                tc = std::move(r).value();
            }
            if (auto* existing = find(tp)) {
                if (existing->topic_id() == topic->id) {
                    existing->set_leader_epoch(p.leader_epoch);
                    existing->set_config(*tc);
                    continue;
                }
                log_warn("partition {}-{}: topic id changed; the old replica is left on disk", name, p.partition);
                partitions.erase(tp);
            }
            storage::log* lg = logs->get(tp);
            if (!lg) {
                if (logs->offline().count(tp)) {
                    log_error("partition {}-{} is offline: {}", name, p.partition, logs->offline().at(tp));
                    continue;
                }
                storage::uuid id_bytes = topic->id.bytes;
                auto created = logs->create_log(tp, tc->log, &id_bytes);
                if (!created) {
                    log_error("partition {}-{}: cannot create its log: {}", name, p.partition,
                              storage::describe(created.error()));
                    continue;
                }
                lg = *created;
            }
            auto& ctx = owner.shards().context(id);
            auto post = [&ctx](std::function<void()> fn) { asio::post(ctx, std::move(fn)); };
            auto& made = partitions[tp];
            made = std::make_unique<partition>(*lg, owner.io(), post, topic->id, p.leader_epoch, *tc, now);
            partitions_gauge.add(1);
            if (p.replicas.size() > 1) attach_replica(tp, *made, topic->id, p);
        }
    }
    image = std::move(img);
    image_advanced->notify();
    if (groups) groups->image_applied();
}

broker::broker(broker_config cfg) : cfg_(std::move(cfg)) {}

broker::~broker() {
    if (stopper_.joinable()) stopper_.join();
}

result<std::unique_ptr<broker>, std::string> broker::create(broker_config cfg) {
    if (cfg.listeners.empty()) return fail(std::string("no listeners"));
    return std::unique_ptr<broker>(new broker(std::move(cfg)));
}

result<void, std::string> broker::start() {
    started_ms_ = wall_ms();
    {
        std::random_device rd;
        for (auto& byte : incarnation_.bytes) byte = static_cast<uint8_t>(rd());
    }
    unsigned n = cfg_.smp ? cfg_.smp : std::max(1u, std::thread::hardware_concurrency());
    n = std::min(n, max_metric_shards);
    std::error_code ec;
    std::filesystem::create_directories(cfg_.log_dir, ec);
    if (ec) return fail(fmt::format("log.dirs {}: {}", cfg_.log_dir, ec.message()));

    io_ = storage::io_engine::create();
    pool_ = std::make_unique<net::blocking_pool>(1);
    log_info("fjord starting: node.id={} log.dirs={} shards={} io={}", cfg_.node_id, cfg_.log_dir, n,
             storage::to_string(io_->backend()));
    for (const auto& w : cfg_.warnings) log_warn("config: {}", w);

    shards_ = std::make_unique<net::shard_set>(n);
    producer_ids_ready_ = std::make_unique<net::event>(shards_->context(0).get_executor());
    for (unsigned i = 0; i < n; ++i) {
        auto c = std::make_unique<shard_ctx>(*this, i);
        c->image_advanced = std::make_unique<net::event>(shards_->context(i).get_executor());
        fetch_session_cache_config fc;
        fc.max_sessions = static_cast<size_t>(
            std::max<int32_t>(1, cfg_.max_incremental_fetch_session_cache_slots / static_cast<int32_t>(n)));
        // Disjoint id ranges per shard.
        int32_t span = (INT32_MAX - 1) / static_cast<int32_t>(n);
        fc.session_id_min = 1 + static_cast<int32_t>(i) * span;
        fc.session_id_max = fc.session_id_min + span - 1;
        fc.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) + i;
        c->sessions = std::make_unique<fetch_session_cache>(fc);
        c->handler = std::make_unique<dispatcher>(*c);
        c->groups = std::make_unique<group_coordinator>(*c);
        ctx_.push_back(std::move(c));
    }
    shards_->run();
    if (auto r = open_on_shards(); !r) {
        // What started must stop for the shards to end.
        if (controller_server_) controller_server_->stop();
        for (int i = 0; controller_server_ && i < 300 && !controller_server_->stopped(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        run_on(shards_->context(0), [&] {
            for (auto& c : ctx_) c->stopping = true;
            if (metadata_log_) metadata_log_->abandon();
            if (transport_) transport_->stop();
        });
        shards_->stop();
        shards_->join();
        return r;
    }

    // The Kafka listeners: one server per listener, every shard accepting.
    // The request budget is per node, split over shards and listeners.
    int64_t total = cfg_.queued_max_request_bytes > 0 ? cfg_.queued_max_request_bytes : int64_t{512} << 20;
    total /= static_cast<int64_t>(cfg_.listeners.size());
    std::string bound;
    for (const auto& l : cfg_.listeners) {
        net::server_config sc;
        sc.listener_name = l.name;
        sc.host = l.host.empty() ? "0.0.0.0" : l.host;
        sc.port = l.port;
        sc.max_request_bytes = cfg_.socket_request_max_bytes;
        sc.idle_timeout_ms = cfg_.connections_max_idle_ms;
        sc.shard_max_inflight_bytes = static_cast<size_t>(std::max<int64_t>(total / n, 1 << 20));
        auto srv = std::make_unique<net::server>(
            *shards_, sc, [this](unsigned s) -> net::frame_handler& { return *ctx_[s]->handler; });
        auto port = srv->listen();
        if (!port) {
            stop();
            wait();
            return fail(port.error());
        }
        bound += fmt::format("{}{}://{}:{}", bound.empty() ? "" : ",", l.name, sc.host, *port);
        servers_.push_back(std::move(srv));
    }
    // Registered with the controller and unfenced before serving clients
    // (as a Kafka broker waits to be unfenced).
    endpoints_ready_.store(true);
    for (int64_t waited = 0; broker_fenced_.load(); waited += 20) {
        {
            std::unique_lock g(mu_);
            if (cv_.wait_for(g, std::chrono::milliseconds(20), [&] { return stop_requested_; })) break;
        }
        if (waited > 0 && waited % 5000 == 0) {
            log_info("waiting to be registered and unfenced by the controller (leader {})", quorum_leader_.load());
        }
    }
    for (auto& srv : servers_) srv->start();

    if (!cfg_.http_listener.empty()) {
        auto colon = cfg_.http_listener.rfind(':');
        boost::system::error_code bec;
        auto addr = asio::ip::make_address(cfg_.http_listener.substr(0, colon), bec);
        if (colon == std::string::npos || bec) {
            stop();
            wait();
            return fail("fjord.http.listener: expected host:port, got " + cfg_.http_listener);
        }
        auto hport = static_cast<uint16_t>(std::stoi(cfg_.http_listener.substr(colon + 1)));
        http_acceptor_ = std::make_unique<tcp::acceptor>(shards_->context(0));
        tcp::endpoint ep(addr, hport);
        http_acceptor_->open(ep.protocol(), bec);
        if (!bec) http_acceptor_->set_option(asio::socket_base::reuse_address(true), bec);
        if (!bec) http_acceptor_->bind(ep, bec);
        if (!bec) http_acceptor_->listen(16, bec);
        if (bec) {
            stop();
            wait();
            return fail("fjord.http.listener " + cfg_.http_listener + ": " + bec.message());
        }
        http_port_ = http_acceptor_->local_endpoint().port();
        asio::co_spawn(shards_->context(0), http_loop(this), asio::detached);
    }
    for (unsigned i = 0; i < n; ++i) asio::co_spawn(shards_->context(i), housekeeping(this, i), asio::detached);
    log_info("fjord ready: listeners {} cluster.id={} ({} ms)", bound, cluster_id_, wall_ms() - started_ms_);
    return {};
}

result<void, std::string> broker::open_on_shards() {
    const unsigned n = shards_->count();
    // The metadata quorum and the controller on shard 0; the controller
    // listener so that the other voters reach this one.
    if (auto r = open_metadata(); !r) return r;
    if (auto r = start_controller_listener(); !r) return r;
    auto& ctx0 = shards_->context(0);
    asio::co_spawn(ctx0, quorum_loop(this), asio::detached);
    // The Raft groups of replicated partitions, one set per shard (none in a
    // quorum of one: nothing is replicated there).
    if (transport_) {
        for (unsigned i = 0; i < n; ++i) {
            auto& ctx = shards_->context(i);
            run_on(ctx, [&, i] {
                replica::replicas_options ro;
                ro.self = cfg_.node_id;
                ro.election_ticks = std::max(3, cfg_.election_timeout_ms / 10);
                ro.heartbeat_ticks = std::max(1, std::min(ro.election_ticks / 4, 10));
                ro.replica_lag_time_max_ms = cfg_.replica_lag_time_max_ms;
                ro.broken_variant = *raft::parse_broken(cfg_.raft_broken);
                auto post = [&ctx](std::function<void()> fn) { asio::post(ctx, std::move(fn)); };
                ctx_[i]->replicas = std::make_unique<replica::shard_replicas>(
                    ro, *io_, post, [this](raft::envelope e) { send_raft(std::move(e)); });
            });
            asio::co_spawn(ctx, replication_loop(this, i), asio::detached);
        }
    }
    // The cluster id comes from the first elected controller of a new
    // cluster, or with the committed metadata from the quorum's leader.
    for (int64_t waited = 0;; waited += 20) {
        cluster_id_ = run_on(ctx0, [&] { return controller_->image()->cluster_id(); });
        if (!cluster_id_.empty()) break;
        {
            std::unique_lock g(mu_);
            if (cv_.wait_for(g, std::chrono::milliseconds(20), [&] { return stop_requested_; })) {
                return fail(std::string("stopped while waiting for the metadata quorum"));
            }
        }
        if (waited > 0 && waited % 5000 == 0) {
            log_info("waiting for the metadata quorum (voters {}): leader {}", cfg_.voters.size(),
                     quorum_leader_.load());
        }
    }
    // Each shard's logs: shard 0 first (it writes meta.properties), then the rest.
    auto open_logs = [&](unsigned i) -> result<void, std::string> {
        return run_on(shards_->context(i), [&, i]() -> result<void, std::string> {
            storage::log_manager_config lc;
            lc.dir = cfg_.log_dir;
            lc.node_id = cfg_.node_id;
            lc.cluster_id = cluster_id_;
            lc.shard = i;
            lc.shard_count = n;
            lc.owns = [i, n](const storage::topic_partition& tp) {
                return tp.topic != cluster::metadata_topic && owner_shard(tp.topic, tp.partition, n) == i;
            };
            auto default_cfg = resolve_topic_config(cfg_, {});
            lc.defaults = default_cfg.value().log;
            auto m = storage::log_manager::open(storage::posix_file_system(), lc, wall_ms());
            if (!m) return fail(fmt::format("log.dirs {}: {}", cfg_.log_dir, storage::describe(m.error())));
            for (const auto& [tp, why] : (*m)->offline())
                log_error("partition {}-{} is offline: {}", tp.topic, tp.partition, why);
            for (const auto& [tp, rep] : (*m)->recovery_reports()) {
                log_info("partition {}-{} recovered: {} segments scanned; {}", tp.topic, tp.partition,
                         rep.segments_scanned, rep.detail.empty() ? "nothing cut" : rep.detail);
            }
            ctx_[i]->logs = std::move(m).value();
            return {};
        });
    };
    if (auto r = open_logs(0); !r) return r;
    if ((*ctx_[0]->logs).cluster_id() != cluster_id_) {
        return fail(fmt::format("log.dirs {}: meta.properties has cluster.id {} but the metadata log has {}",
                                cfg_.log_dir, ctx_[0]->logs->cluster_id(), cluster_id_));
    }
    for (unsigned i = 1; i < n; ++i) {
        if (auto r = open_logs(i); !r) return r;
    }
    if (auto r = storage::log_manager::remove_stale_shard_files(storage::posix_file_system(), cfg_.log_dir, n); !r) {
        log_warn("log.dirs {}: could not remove files of a previous shard count: {}", cfg_.log_dir,
                 storage::describe(r.error()));
    }

    // Every shard applies the current image, then follows the controller.
    auto img = run_on(ctx0, [&] {
        on_quorum_state();
        return controller_->image();
    });
    for (unsigned i = 0; i < n; ++i) run_on(shards_->context(i), [&, i] { ctx_[i]->apply_image(img); });
    run_on(ctx0, [&] {
        controller_->set_listener([this](const cluster::controller::image_ptr& next, const cluster::metadata_delta& d) {
            if (d.cluster_id_changed) on_quorum_state();
            publish(next);
        });
    });
    return {};
}

std::pair<std::string, int32_t> broker::advertised_for(std::string_view listener) const {
    size_t i = 0;
    for (size_t k = 0; k < cfg_.advertised_listeners.size(); ++k) {
        if (cfg_.advertised_listeners[k].name == listener) i = k;
    }
    const auto& adv = cfg_.advertised_listeners[i];
    int32_t port = adv.port;
    if (port == 0) {
        // Port 0 (tests): the port the listener of that name was bound to.
        for (size_t k = 0; k < cfg_.listeners.size() && k < servers_.size(); ++k) {
            if (cfg_.listeners[k].name == adv.name) port = servers_[k]->port();
        }
        if (port == 0 && !servers_.empty()) port = servers_.front()->port();
    }
    return {adv.host, port};
}

std::optional<std::pair<std::string, int32_t>> broker::endpoint_of(const cluster::metadata_image& img, int32_t node,
                                                                   std::string_view listener) const {
    if (node == cfg_.node_id) return advertised_for(listener);
    const cluster::broker_info* b = img.find_broker(node);
    if (!b || b->endpoints.empty()) return std::nullopt;
    const cluster::broker_endpoint* e = b->endpoint(listener);
    if (!e) e = &b->endpoints.front();
    return std::pair{e->host, e->port};
}

std::vector<int32_t> broker::client_brokers(const cluster::metadata_image& img) const {
    auto live = img.live_brokers();
    // Until this node's own registration is in the image (it serves only
    // once unfenced, so briefly at most), it lists itself.
    if (std::find(live.begin(), live.end(), cfg_.node_id) == live.end()) {
        live.push_back(cfg_.node_id);
        std::sort(live.begin(), live.end());
    }
    return live;
}

void broker::publish(const std::shared_ptr<const cluster::metadata_image>& img) {
    // Posts from one thread run in order on each target: images never go back.
    for (unsigned i = 0; i < shards_->count(); ++i) {
        asio::post(shards_->context(i), [this, i, img] { ctx_[i]->apply_image(img); });
    }
}

namespace {
struct create_state {
    explicit create_state(const asio::any_io_executor& ex) : ev(ex) {}
    net::event ev;
    bool done = false;
    std::vector<cluster::topic_outcome> outcomes;
    int64_t offset = -1;
};

net::awaitable<std::pair<std::vector<cluster::topic_outcome>, int64_t>> create_on_controller(
    cluster::controller* ctl, std::vector<cluster::topic_spec> specs) {
    auto st = std::make_shared<create_state>(co_await asio::this_coro::executor);
    ctl->create_topics(std::move(specs),
                       [st](std::vector<cluster::topic_outcome> out, cluster::controller::image_ptr img) {
                           st->outcomes = std::move(out);
                           st->offset = img ? img->last_offset() : -1;
                           st->done = true;
                           st->ev.notify();
                       });
    while (!st->done) co_await st->ev.wait();
    co_return std::pair{std::move(st->outcomes), st->offset};
}
}  // namespace

net::awaitable<std::vector<cluster::topic_outcome>> broker::create_topics(std::vector<cluster::topic_spec> specs) {
    auto& here = *ctx_[net::shard_set::current()];
    if (!active_controller()) {
        auto remote = create_topics_remote(std::move(specs));
        auto outcomes = co_await std::move(remote);
        // Visible here before the caller answers, as far as the metadata
        // reaches this node within a few seconds.
        auto ex = co_await asio::this_coro::executor;
        for (int i = 0; i < 500; ++i) {
            bool all = true;
            for (const auto& o : outcomes) all = all && (o.error || here.image->find_topic(o.name));
            if (all) break;
            asio::steady_timer t(ex, std::chrono::milliseconds(10));
            co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        co_return outcomes;
    }
    auto* ctl = controller_.get();
    auto task = shards_->invoke_on(
        0, [ctl, s = std::move(specs)]() mutable { return create_on_controller(ctl, std::move(s)); });
    auto [outcomes, offset] = co_await std::move(task);
    // Visible here before the caller answers (prompt visibility).
    while (here.image->last_offset() < offset) co_await here.image_advanced->wait();
    co_return outcomes;
}

void broker::stop() {
    std::lock_guard g(mu_);
    if (stop_requested_) return;
    stop_requested_ = true;
    cv_.notify_all();
}

void broker::wait() {
    {
        std::unique_lock g(mu_);
        cv_.wait(g, [&] { return stop_requested_; });
    }
    log_info("fjord stopping: no new connections; finishing in-flight requests");
    // Controlled shutdown: the metadata quorum's leadership moves to another
    // voter first, so that the cluster does not wait for an election timeout.
    if (cfg_.voters.size() > 1) {
        const bool moving =
            run_on(shards_->context(0), [&] { return metadata_log_ && metadata_log_->transfer_leadership_away(); });
        for (int i = 0; moving && i < 200 && quorum_leader_.load() == cfg_.node_id; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (moving) log_info("metadata quorum: leadership handed to node {}", quorum_leader_.load());
    }
    // Controlled shutdown: partition leaderships move to in-sync followers
    // while this node still answers (clients are redirected, not cut off).
    move_leaderships_away(std::max(3000, 3 * cfg_.election_timeout_ms));
    // Group calls waiting for a rebalance are answered now (NOT_COORDINATOR),
    // not when their rebalance timeout ends.
    for (unsigned i = 0; i < shards_->count(); ++i) {
        run_on(shards_->context(i), [&, i] { ctx_[i]->groups->shutdown(); });
    }
    for (auto& srv : servers_) srv->stop();
    for (auto& srv : servers_) {
        for (int i = 0; i < 3000 && !srv->stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (controller_server_) {
        controller_server_->stop();
        for (int i = 0; i < 300 && !controller_server_->stopped(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    if (http_acceptor_) {
        run_on(shards_->context(0), [&] {
            boost::system::error_code ec;
            http_acceptor_->close(ec);
        });
    }
    shutdown_shards();
    shards_->stop();
    shards_->join();
    pool_->stop();
    log_info("fjord stopped");
}

void broker::shutdown_shards() {
    const unsigned n = shards_->count();
    for (unsigned i = 0; i < n; ++i) {
        run_on(shards_->context(i), [&, i] { ctx_[i]->stopping = true; });
    }
    // Background work (compaction, checkpoints) finishes first.
    for (unsigned i = 0; i < n; ++i) {
        for (int t = 0; t < 60000; ++t) {
            if (run_on(shards_->context(i), [&, i] { return ctx_[i]->background == 0; })) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    // Flush every partition and wait for its fsyncs, then write the
    // clean-shutdown files: all shards at once, all partitions of a shard at
    // once (one fsync round each, overlapping).
    std::vector<std::promise<void>> done(n);
    for (unsigned i = 0; i < n; ++i) {
        asio::co_spawn(
            shards_->context(i),
            [](shard_ctx* c, std::promise<void>* finished) -> net::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                net::event ev(ex);
                size_t pending = c->partitions.size();
                for (auto& [tp, p] : c->partitions) {
                    p->durability().flush([&pending, &ev](int) {
                        --pending;
                        ev.notify();
                    });
                }
                while (pending > 0) co_await ev.wait();
                // A round may still be winding down after its callbacks.
                for (auto& [tp, p] : c->partitions) {
                    while (!p->durability().idle()) {
                        asio::steady_timer t(ex, std::chrono::milliseconds(1));
                        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                    }
                }
                // The Raft groups go before the partitions whose logs they
                // drive (inbound envelopes are dropped once stopping).
                for (auto& [tp, p] : c->partitions) p->set_replica(nullptr);
                c->replicas.reset();
                c->partitions.clear();
                if (c->logs) {
                    if (auto r = c->logs->shutdown(); !r) {
                        log_error("log.dirs: clean shutdown failed: {}", storage::describe(r.error()));
                    }
                }
                finished->set_value();
            }(ctx_[i].get(), &done[i]),
            asio::detached);
    }
    for (auto& d : done) d.get_future().wait();
    // The metadata log last: what it cannot finish now fails (a quorum whose
    // other voters are gone would never commit it).
    run_on(shards_->context(0), [&] {
        if (metadata_log_) metadata_log_->abandon();
    });
    for (int i = 0; i < 3000; ++i) {
        bool idle =
            run_on(shards_->context(0), [&] { return !controller_ || (controller_->idle() && metadata_log_->idle()); });
        if (idle) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    run_on(shards_->context(0), [&] {
        if (transport_) transport_->stop();
        if (metadata_log_ && metadata_log_->idle()) {
            if (auto r = metadata_log_->close(); !r) log_error("metadata log: clean shutdown failed");
        }
        controller_.reset();
        metadata_log_ = nullptr;
    });
}

// Compaction of this shard's compacted partitions, one at a time: planned
// on the shard, cleaned on the blocking pool, swapped in on the shard.
net::awaitable<void> broker::clean_shard(broker* self, unsigned shard) {
    auto& c = *self->ctx_[shard];
    if (!c.cleaner) {
        size_t bytes = static_cast<size_t>(self->cfg_.log_cleaner_dedupe_buffer_size) / self->shards_->count();
        c.cleaner =
            std::make_unique<storage::compactor>(storage::posix_file_system(), std::max<size_t>(bytes, 1 << 20));
    }
    std::vector<storage::topic_partition> compacted;
    for (auto& [tp, p] : c.partitions) {
        if (p->config().log.compact && !p->offline()) compacted.push_back(tp);
    }
    for (const auto& tp : compacted) {
        if (c.stopping) break;
        partition* p = c.find(tp);
        if (!p || p->offline()) continue;
        auto plan = p->log().plan_compaction(wall_ms(), p->high_watermark());
        if (!plan) continue;
        plan->keep_every_batch = p->replica() != nullptr;  // ADR 0005: no holes in a Raft log
        auto outcome = std::make_shared<std::optional<fjord::result<storage::compaction_result, storage::errc>>>();
        auto detail = std::make_shared<std::string>();
        storage::compactor* cleaner = c.cleaner.get();
        auto shared_plan = std::make_shared<storage::compaction_plan>(std::move(*plan));
        auto work = net::run_blocking(
            *self->pool_, [cleaner, shared_plan, outcome, detail] { *outcome = cleaner->run(*shared_plan, *detail); });
        co_await std::move(work);
        p = c.find(tp);  // the partition may have gone meanwhile
        if (!p) continue;
        if (!*outcome || !**outcome) {
            log_error("partition {}-{}: compaction failed: {} {}", tp.topic, tp.partition,
                      *outcome ? storage::describe((*outcome)->error()) : "?", *detail);
            continue;
        }
        auto installed = p->log().install_compaction(*shared_plan, (*outcome)->value());
        if (!installed) {
            log_error("partition {}-{}: installing the compacted segments failed: {}", tp.topic, tp.partition,
                      storage::describe(installed.error()));
            continue;
        }
        compactions_run.inc();
        log_info("partition {}-{}: compacted {} segments: {} records read, {} dropped, {} -> {} bytes", tp.topic,
                 tp.partition, installed->segments_replaced, installed->records_read, installed->records_dropped,
                 installed->bytes_read, installed->bytes_written);
    }
}

// Writes this shard's checkpoint files (recovery points, log starts, cleaner
// positions) on the blocking pool.
net::awaitable<void> broker::checkpoint_shard(broker* self, unsigned shard) {
    auto& c = *self->ctx_[shard];
    auto files = std::make_shared<storage::checkpoint_files>(c.logs->prepare_checkpoint());
    auto dir = c.logs->dir();
    auto ok = std::make_shared<bool>(true);
    auto work = net::run_blocking(*self->pool_, [files, dir, ok] {
        *ok = storage::log_manager::write_checkpoint(storage::posix_file_system(), dir, *files).ok();
    });
    co_await std::move(work);
    if (!*ok) {
        log_warn("log.dirs {}: writing the offset checkpoints failed; will retry", dir);
        co_return;
    }
    // Log starts moved in memory (replicated partitions: retention, snapshots)
    // are durable now: the segments below them go, off the shard.
    auto paths = std::make_shared<std::vector<std::string>>();
    for (auto& [tp, p] : c.partitions) {
        if (!p->replica() || p->offline()) continue;
        auto detached = p->log().detach_segments_below_start();
        paths->insert(paths->end(), detached.begin(), detached.end());
    }
    if (paths->empty()) co_return;
    auto remove = net::run_blocking(*self->pool_, [paths] {
        for (const auto& path : *paths) {
            std::error_code ec;
            std::filesystem::remove(path, ec);
        }
    });
    co_await std::move(remove);
}

net::awaitable<void> broker::housekeeping(broker* self, unsigned shard) {
    auto& c = *self->ctx_[shard];
    const auto& cfg = self->cfg_;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    int64_t now = wall_ms();
    int64_t next_retention = now + cfg.log_retention_check_interval_ms;
    int64_t next_clean = now + cfg.log_cleaner_backoff_ms;
    int64_t next_checkpoint = now + cfg.log_flush_offset_checkpoint_interval_ms;
    ++c.background;
    while (!c.stopping) {
        t.expires_after(std::chrono::milliseconds(100));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        if (c.stopping) break;
        now = wall_ms();
        for (auto& [tp, p] : c.partitions) p->durability().on_timer(now);
        if (now >= next_retention) {
            next_retention = now + cfg.log_retention_check_interval_ms;
            for (auto& [tp, p] : c.partitions) {
                if (!p->config().log.delete_ || p->offline()) continue;
                if (auto* rep = p->replica()) {
                    // Through the Raft group, no further than the high
                    // watermark (as Kafka); the next checkpoint removes the segments.
                    auto start = p->log().retention_start(now, rep->high_watermark());
                    if (start && *start > p->log_start_offset() && rep->advance_log_start(*start)) {
                        log_info("partition {}-{}: retention moved the log start offset to {}", tp.topic, tp.partition,
                                 *start);
                        next_checkpoint = now;
                    }
                    continue;
                }
                auto r = p->log().apply_retention(now);
                if (r && *r > 0) {
                    retention_deleted.inc(static_cast<uint64_t>(*r));
                    log_info("partition {}-{}: retention deleted {} segments; log start offset {}", tp.topic,
                             tp.partition, *r, p->log_start_offset());
                }
            }
        }
        if (cfg.log_cleaner_enable && now >= next_clean && !c.cleaning) {
            next_clean = now + cfg.log_cleaner_backoff_ms;
            c.cleaning = true;
            ++c.background;
            asio::co_spawn(
                ex,
                [](broker* b, unsigned s) -> net::awaitable<void> {
                    auto work = clean_shard(b, s);
                    co_await std::move(work);
                    auto& cc = *b->ctx_[s];
                    cc.cleaning = false;
                    --cc.background;
                }(self, shard),
                asio::detached);
        }
        if (now >= next_checkpoint && !c.checkpointing) {
            next_checkpoint = now + cfg.log_flush_offset_checkpoint_interval_ms;
            c.checkpointing = true;
            ++c.background;
            asio::co_spawn(
                ex,
                [](broker* b, unsigned s) -> net::awaitable<void> {
                    auto work = checkpoint_shard(b, s);
                    co_await std::move(work);
                    auto& cc = *b->ctx_[s];
                    cc.checkpointing = false;
                    --cc.background;
                }(self, shard),
                asio::detached);
        }
    }
    --c.background;
}

net::awaitable<void> broker::http_loop(broker* self) {
    namespace http = boost::beast::http;
    auto& acc = *self->http_acceptor_;
    while (true) {
        auto [ec, sock] = co_await acc.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) break;
        asio::co_spawn(
            acc.get_executor(),
            [](tcp::socket s) -> net::awaitable<void> {
                boost::beast::flat_buffer buf(8192);
                http::request_parser<http::empty_body> parser;
                parser.header_limit(8192);
                auto [rec, n] = co_await http::async_read(s, buf, parser, asio::as_tuple(asio::use_awaitable));
                if (rec) co_return;
                const auto& req = parser.get();
                http::response<http::string_body> res;
                res.version(req.version());
                res.keep_alive(false);
                if (req.method() == http::verb::get && req.target() == "/metrics") {
                    res.result(http::status::ok);
                    res.set(http::field::content_type, "text/plain; version=0.0.4");
                    res.body() = render_metrics();
                } else {
                    res.result(http::status::not_found);
                    res.body() = "not found\n";
                }
                res.prepare_payload();
                co_await http::async_write(s, res, asio::as_tuple(asio::use_awaitable));
                boost::system::error_code sec;
                s.shutdown(tcp::socket::shutdown_both, sec);
            }(std::move(sock)),
            asio::detached);
    }
}

}  // namespace fjord::kafka
