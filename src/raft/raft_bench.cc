// Raft benchmarks (Google Benchmark; run by hand, not by ctest):
//
//   build/release/src/raft/raft_bench                      # everything
//   build/release/src/raft/raft_bench --benchmark_filter=commit
//
// Three nodes in one process, each a group_manager hosting every group; the
// groups' leaders are spread over the nodes. The network and the disk are
// simulated, in one thread:
//
// - commit: a closed loop over real time. Every group keeps `window`
//   proposals of 1 KiB in flight; a message arrives `one_way_us` after it is
//   sent and a flush completes `fsync_us` after it is asked for (defaults:
//   100 us and 50 us, a LAN and an NVMe group commit). Reports commits/s and
//   the p50/p99 latency from propose() to the leader's commit. What it
//   measures is the core's CPU cost per commit with those latencies in the
//   loop; the three nodes share one thread, so commits/s is a lower bound.
// - idle_heartbeats: simulated time (one tick = 10 ms, a round every 2
//   ticks), no proposals. Reports heartbeat messages per second per node pair
//   (coalesced batches, or per-group heartbeats and replies without
//   coalescing), the items in them, and the CPU cost of one tick.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "raft/group_manager.h"
#include "raft/memory_log.h"

namespace fjord::raft {
namespace {

using clock_type = std::chrono::steady_clock;
constexpr int n_nodes = 3;

// Keeps memory flat without making followers that are a little behind
// install snapshots: the log keeps about the last 4,096 records.
void trim(raft& r, offset commit) {
    const log& lg = r.get_log();
    if (commit - lg.start() < 8192) return;
    offset keep_from = lg.batch_base(commit - 4096);
    r.compact(keep_from - 1, shared_bytes{});
}

struct bench_cluster {
    struct node {
        std::unique_ptr<group_manager> mgr;
        std::vector<std::unique_ptr<memory_log>> logs;
    };
    struct timed {
        int64_t at_ns;
        uint64_t seq;
        int32_t node;        // flush completion: node and group
        int64_t group = -1;  // -1: a message
        offset through;      // flush
        term_id term;        // flush
        envelope env;        // message
        bool operator>(const timed& o) const { return at_ns != o.at_ns ? at_ns > o.at_ns : seq > o.seq; }
    };

    std::vector<node> nodes;
    std::priority_queue<timed, std::vector<timed>, std::greater<>> pending;
    uint64_t seq = 0;
    int64_t one_way_ns = 0;
    int64_t fsync_ns = 0;
    // Heartbeat messages between nodes (batches, or per-group heartbeats and
    // replies when not coalescing), and the items they carry.
    uint64_t heartbeat_messages = 0;
    uint64_t heartbeat_items = 0;
    uint64_t messages = 0;
    // Leaders' commit advances since the last take: (group, commit).
    std::vector<std::pair<int64_t, offset>> commits;

    bench_cluster(int n_groups, bool coalesce) {
        auto cfg = make_configuration({node_id(0), node_id(1), node_id(2)});
        for (int32_t n = 0; n < n_nodes; ++n) {
            node nd;
            nd.mgr = std::make_unique<group_manager>(manager_options{node_id(n), 2, coalesce});
            for (int g = 0; g < n_groups; ++g) {
                nd.logs.push_back(std::make_unique<memory_log>());
                options o;
                o.self = node_id(n);
                o.group = group_id(g);
                o.seed = 17;
                o.max_uncommitted_bytes = 64 * 1024 * 1024;
                persisted p;
                p.snapshot.config = cfg;
                nd.mgr->add_group(o, *nd.logs.back(), p);
            }
            nodes.push_back(std::move(nd));
        }
        // Group g is led by node g % 3: its timer fires first.
        for (int g = 0; g < n_groups; ++g) {
            raft& r = core(g % n_nodes, g);
            for (int i = 0; i < 40 && r.current_role() == role::follower; ++i) r.tick();
        }
        run_until_quiet(0);
    }
    raft& core(int32_t n, int64_t g) { return *nodes[static_cast<size_t>(n)].mgr->group(group_id(g)); }
    int32_t leader_of(int64_t g) { return static_cast<int32_t>(g % n_nodes); }

    // Takes every node's output; messages and flushes complete after their
    // delays (now_ns + delay).
    void collect(int64_t now_ns) {
        for (int32_t n = 0; n < n_nodes; ++n) {
            node& nd = nodes[static_cast<size_t>(n)];
            for (int guard = 0; guard < 16; ++guard) {
                auto out = nd.mgr->take_ready();
                if (out.empty()) break;
                for (auto& [g, rd] : out.groups) {
                    if (rd.flush_through) {
                        auto& lg = *nd.logs[static_cast<size_t>(g.get())];
                        timed t{
                            now_ns + fsync_ns, seq++, n, g.get(), *rd.flush_through, lg.term_at(*rd.flush_through), {}};
                        pending.push(std::move(t));
                    }
                    if (rd.commit) {
                        raft& r = *nd.mgr->group(g);
                        if (r.is_leader()) commits.emplace_back(g.get(), *rd.commit);
                        trim(r, *rd.commit);
                    }
                }
                for (auto& e : out.messages) {
                    ++messages;
                    if (const auto* b = std::get_if<heartbeat_batch>(&e.body)) {
                        ++heartbeat_messages;
                        heartbeat_items += b->beats.size() + b->acks.size();
                    } else {
                        const auto& m = std::get<message>(e.body);
                        if (std::holds_alternative<heartbeat_request>(m.body) ||
                            std::holds_alternative<heartbeat_reply>(m.body)) {
                            ++heartbeat_messages;
                            ++heartbeat_items;
                        }
                    }
                    pending.push(timed{now_ns + one_way_ns, seq++, e.to.get(), -1, no_offset, no_term, std::move(e)});
                }
            }
        }
    }
    // Completes everything due at or before now_ns.
    bool deliver(int64_t now_ns) {
        bool any = false;
        while (!pending.empty() && pending.top().at_ns <= now_ns) {
            timed t = pending.top();
            pending.pop();
            any = true;
            node& nd = nodes[static_cast<size_t>(t.node)];
            if (t.group < 0) {
                nd.mgr->step(t.env);
            } else {
                nd.mgr->group(group_id(t.group))->on_flushed(t.through, t.term);
            }
        }
        return any;
    }
    void run_until_quiet(int64_t now_ns) {
        for (int i = 0; i < 100000; ++i) {
            collect(now_ns);
            if (pending.empty()) return;
            now_ns = std::max(now_ns, pending.top().at_ns);
            deliver(now_ns);
        }
    }
    void tick_all(int64_t now_ns) {
        for (auto& nd : nodes) nd.mgr->tick();
        collect(now_ns);
    }
};

int64_t ns_since(clock_type::time_point start) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start).count();
}

// Args: groups, in-flight proposals per group.
void commit(benchmark::State& state) {
    const int n_groups = static_cast<int>(state.range(0));
    const size_t window = static_cast<size_t>(state.range(1));
    bench_cluster c(n_groups, true);
    c.one_way_ns = 100'000;
    c.fsync_ns = 50'000;
    for (int g = 0; g < n_groups; ++g) {
        if (!c.core(c.leader_of(g), g).is_leader()) {
            state.SkipWithError("leaders not placed");
            return;
        }
    }
    shared_bytes payload = shared_bytes::adopt(std::vector<uint8_t>(1024, 7));
    std::vector<std::deque<std::pair<offset, int64_t>>> inflight(static_cast<size_t>(n_groups));
    std::vector<int64_t> latencies_ns;
    latencies_ns.reserve(1 << 22);
    uint64_t committed = 0;
    const auto start = clock_type::now();
    int64_t next_tick_ns = 10'000'000;
    for (auto _ : state) {
        // One turn of every node's event loop.
        int64_t now = ns_since(start);
        for (int g = 0; g < n_groups; ++g) {
            auto& q = inflight[static_cast<size_t>(g)];
            raft& r = c.core(c.leader_of(g), g);
            while (q.size() < window) {
                auto off = r.propose(payload, 1);
                if (!off.ok()) break;
                q.emplace_back(*off, now);
            }
        }
        c.collect(now);
        now = ns_since(start);
        if (now >= next_tick_ns) {
            next_tick_ns += 10'000'000;
            c.tick_all(now);
        }
        c.deliver(now);
        c.collect(now);
        now = ns_since(start);
        for (auto& [g, off] : c.commits) {
            auto& q = inflight[static_cast<size_t>(g)];
            while (!q.empty() && q.front().first <= off) {
                if (latencies_ns.size() < latencies_ns.capacity()) latencies_ns.push_back(now - q.front().second);
                q.pop_front();
                ++committed;
            }
        }
        c.commits.clear();
    }
    std::sort(latencies_ns.begin(), latencies_ns.end());
    state.counters["commits_per_s"] = benchmark::Counter(static_cast<double>(committed), benchmark::Counter::kIsRate);
    if (!latencies_ns.empty()) {
        state.counters["p50_commit_us"] = static_cast<double>(latencies_ns[latencies_ns.size() / 2]) / 1000.0;
        state.counters["p99_commit_us"] = static_cast<double>(latencies_ns[latencies_ns.size() * 99 / 100]) / 1000.0;
    }
}
BENCHMARK(commit)
    ->ArgNames({"groups", "window"})
    ->Args({1, 1})
    ->Args({1, 64})
    ->Args({1000, 1})
    ->Args({1000, 8})
    ->UseRealTime()
    ->MinTime(3.0)
    ->Unit(benchmark::kMicrosecond);

// ---- Over loopback TCP: three node threads, a minimal framing of our own ----
//
// Frame: u32 length, then u8 kind (0: one group's message, 1: a heartbeat
// batch) and the fields in little-endian order; sender and receiver are the
// connection's ends. The disk is memory (a flush completes at once), so this
// measures the core, the framing and the kernel's loopback path.

class frame_writer {
public:
    explicit frame_writer(std::vector<uint8_t>& out) : out_(out), start_(out.size()) { put<uint32_t>(0); }
    ~frame_writer() {
        const auto n = static_cast<uint32_t>(out_.size() - start_ - 4);
        for (size_t i = 0; i < 4; ++i) out_[start_ + i] = static_cast<uint8_t>(n >> (8 * i));
    }
    frame_writer(const frame_writer&) = delete;
    frame_writer& operator=(const frame_writer&) = delete;
    template <typename T>
    void put(T v) {
        auto u = static_cast<uint64_t>(v);
        for (size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<uint8_t>(u >> (8 * i)));
    }
    void bytes(const shared_bytes& b) {
        put<uint32_t>(static_cast<uint32_t>(b.size()));
        out_.insert(out_.end(), b.data(), b.data() + b.size());
    }

private:
    std::vector<uint8_t>& out_;
    size_t start_;
};

class frame_reader {
public:
    frame_reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
    template <typename T>
    T get() {
        if (n_ < sizeof(T)) {
            good_ = false;
            return T{};
        }
        uint64_t u = 0;
        for (size_t i = 0; i < sizeof(T); ++i) u |= static_cast<uint64_t>(p_[i]) << (8 * i);
        p_ += sizeof(T);
        n_ -= sizeof(T);
        return static_cast<T>(u);
    }
    bool flag() { return get<uint8_t>() != 0; }
    offset off() { return offset(get<int64_t>()); }
    term_id term() { return term_id(get<int32_t>()); }
    shared_bytes bytes() {
        const auto len = get<uint32_t>();
        if (!good_ || n_ < len) {
            good_ = false;
            return {};
        }
        auto b = shared_bytes::copy_of(std::span<const uint8_t>(p_, len));
        p_ += len;
        n_ -= len;
        return b;
    }
    bool good() const { return good_; }
    bool done() const { return good_ && n_ == 0; }

private:
    const uint8_t* p_;
    size_t n_;
    bool good_ = true;
};

void encode(const envelope& e, std::vector<uint8_t>& out) {
    frame_writer w(out);
    if (const auto* b = std::get_if<heartbeat_batch>(&e.body)) {
        w.put<uint8_t>(1);
        w.put<uint32_t>(static_cast<uint32_t>(b->beats.size()));
        for (const auto& h : b->beats) {
            w.put(h.group.get());
            w.put(h.term.get());
            w.put(h.commit.get());
            w.put(h.seq);
        }
        w.put<uint32_t>(static_cast<uint32_t>(b->acks.size()));
        for (const auto& a : b->acks) {
            w.put(a.group.get());
            w.put(a.term.get());
            w.put(a.seq);
            w.put<uint8_t>(a.need_append);
        }
        return;
    }
    const message& m = std::get<message>(e.body);
    w.put<uint8_t>(0);
    w.put(m.group.get());
    w.put<uint8_t>(static_cast<uint8_t>(m.body.index()));
    std::visit(
        [&w](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            w.put(v.term.get());
            if constexpr (std::is_same_v<T, vote_request>) {
                w.put<uint8_t>(v.pre_vote);
                w.put<uint8_t>(v.transfer);
                w.put(v.last_offset.get());
                w.put(v.last_term.get());
            } else if constexpr (std::is_same_v<T, vote_reply>) {
                w.put<uint8_t>(v.pre_vote);
                w.put<uint8_t>(v.granted);
            } else if constexpr (std::is_same_v<T, append_request>) {
                w.put(v.prev_offset.get());
                w.put(v.prev_term.get());
                w.put(v.commit.get());
                w.put<uint32_t>(static_cast<uint32_t>(v.entries.size()));
                for (const auto& x : v.entries) {
                    w.put(x.base.get());
                    w.put(x.records);
                    w.put(x.term.get());
                    w.put<uint8_t>(static_cast<uint8_t>(x.kind));
                    w.bytes(x.payload);
                }
            } else if constexpr (std::is_same_v<T, append_reply>) {
                w.put<uint8_t>(v.success);
                w.put(v.match.get());
                w.put(v.rejected.get());
                w.put(v.last_offset.get());
                w.put(v.conflict_term.get());
            } else if constexpr (std::is_same_v<T, heartbeat_request>) {
                w.put(v.commit.get());
                w.put(v.seq);
            } else if constexpr (std::is_same_v<T, heartbeat_reply>) {
                w.put(v.seq);
                w.put<uint8_t>(v.need_append);
            } else if constexpr (std::is_same_v<T, snapshot_request>) {
                w.put(v.meta.last.get());
                w.put(v.meta.last_term.get());
                w.bytes(encode_configuration(v.meta.config));
                w.bytes(v.data);
            }
        },
        m.body);
}

// Our own bytes, but checked anyway (network input is never asserted).
std::optional<envelope> decode(node_id from, node_id to, const uint8_t* p, size_t n) {
    frame_reader r(p, n);
    if (r.get<uint8_t>() == 1) {
        heartbeat_batch b;
        const auto beats = r.get<uint32_t>();
        for (uint32_t i = 0; i < beats && r.good(); ++i) {
            heartbeat_item h;
            h.group = group_id(r.get<int64_t>());
            h.term = r.term();
            h.commit = r.off();
            h.seq = r.get<uint64_t>();
            b.beats.push_back(h);
        }
        const auto acks = r.get<uint32_t>();
        for (uint32_t i = 0; i < acks && r.good(); ++i) {
            heartbeat_ack a;
            a.group = group_id(r.get<int64_t>());
            a.term = r.term();
            a.seq = r.get<uint64_t>();
            a.need_append = r.flag();
            b.acks.push_back(a);
        }
        if (!r.done()) return std::nullopt;
        return envelope{from, to, std::move(b)};
    }
    const group_id g(r.get<int64_t>());
    const auto kind = r.get<uint8_t>();
    const term_id t = r.term();
    message_body body;
    switch (kind) {
        case 0: {
            vote_request v;
            v.term = t;
            v.pre_vote = r.flag();
            v.transfer = r.flag();
            v.last_offset = r.off();
            v.last_term = r.term();
            body = v;
            break;
        }
        case 1: {
            vote_reply v;
            v.term = t;
            v.pre_vote = r.flag();
            v.granted = r.flag();
            body = v;
            break;
        }
        case 2: {
            append_request a;
            a.term = t;
            a.prev_offset = r.off();
            a.prev_term = r.term();
            a.commit = r.off();
            const auto count = r.get<uint32_t>();
            for (uint32_t i = 0; i < count && r.good(); ++i) {
                entry x;
                x.base = r.off();
                x.records = r.get<int32_t>();
                x.term = r.term();
                x.kind = static_cast<entry_kind>(r.get<uint8_t>());
                x.payload = r.bytes();
                a.entries.push_back(std::move(x));
            }
            body = std::move(a);
            break;
        }
        case 3: {
            append_reply a;
            a.term = t;
            a.success = r.flag();
            a.match = r.off();
            a.rejected = r.off();
            a.last_offset = r.off();
            a.conflict_term = r.term();
            body = a;
            break;
        }
        case 4: {
            heartbeat_request h;
            h.term = t;
            h.commit = r.off();
            h.seq = r.get<uint64_t>();
            body = h;
            break;
        }
        case 5: {
            heartbeat_reply h;
            h.term = t;
            h.seq = r.get<uint64_t>();
            h.need_append = r.flag();
            body = h;
            break;
        }
        case 6: {
            snapshot_request sr;
            sr.term = t;
            sr.meta.last = r.off();
            sr.meta.last_term = r.term();
            auto c = decode_configuration(r.bytes());
            if (!c) return std::nullopt;
            sr.meta.config = std::move(*c);
            sr.data = r.bytes();
            body = std::move(sr);
            break;
        }
        case 7: body = timeout_now{t}; break;
        default: return std::nullopt;
    }
    if (!r.done()) return std::nullopt;
    return envelope{from, to, message{g, from, to, std::move(body)}};
}

// One node: its thread, its groups, its two connections.
struct tcp_node {
    int32_t id = 0;
    std::unique_ptr<group_manager> mgr;
    std::vector<std::unique_ptr<memory_log>> logs;
    int fds[n_nodes] = {-1, -1, -1};
    std::vector<uint8_t> in[n_nodes];
    std::vector<uint8_t> out[n_nodes];
    size_t out_sent[n_nodes] = {0, 0, 0};
    // Client: the groups it leads, each with its proposals in flight.
    std::vector<int64_t> led;
    std::vector<std::deque<std::pair<offset, int64_t>>> inflight;
    std::vector<int64_t> latencies_ns;
    uint64_t committed = 0;
    uint64_t heartbeat_frames = 0;
    uint64_t frames = 0;
    uint64_t dropped = 0;
    uint64_t bytes_out = 0;
    std::string error;
};

void set_nonblocking(int fd) {
    int fl = ::fcntl(fd, F_GETFL, 0);
    FJORD_ASSERT(fl >= 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "fcntl: {}", std::strerror(errno));
    int one = 1;
    FJORD_ASSERT(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, "TCP_NODELAY: {}",
                 std::strerror(errno));
}

// A connected loopback pair: {client end, server end}.
std::pair<int, int> tcp_pair() {
    int lst = ::socket(AF_INET, SOCK_STREAM, 0);
    FJORD_ASSERT(lst >= 0, "socket: {}", std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    FJORD_ASSERT(::bind(lst, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "bind: {}", std::strerror(errno));
    FJORD_ASSERT(::listen(lst, 1) == 0, "listen: {}", std::strerror(errno));
    socklen_t len = sizeof(a);
    FJORD_ASSERT(::getsockname(lst, reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    FJORD_ASSERT(c >= 0 && ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "connect: {}",
                 std::strerror(errno));
    int s = ::accept(lst, nullptr, nullptr);
    FJORD_ASSERT(s >= 0, "accept: {}", std::strerror(errno));
    ::close(lst);
    set_nonblocking(c);
    set_nonblocking(s);
    return {c, s};
}

// The node's event loop until `stop`; counts commits between measure_from
// and measure_to (ns since start).
void run_tcp_node(tcp_node& nd, size_t window, const std::atomic<bool>& stop, clock_type::time_point start,
                  int64_t measure_from, int64_t measure_to) {
    shared_bytes payload = shared_bytes::adopt(std::vector<uint8_t>(1024, 7));
    int64_t next_tick = 10'000'000;
    constexpr size_t max_queued_bytes = 16u << 20;
    std::vector<uint8_t> buf(1 << 16);
    while (!stop.load(std::memory_order_relaxed) && nd.error.empty()) {
        int64_t now = ns_since(start);
        if (now >= next_tick) {
            next_tick += 10'000'000;
            nd.mgr->tick();
        }
        for (size_t i = 0; i < nd.led.size(); ++i) {
            raft& r = *nd.mgr->group(group_id(nd.led[i]));
            auto& q = nd.inflight[i];
            while (q.size() < window && r.is_leader()) {
                auto off = r.propose(payload, 1);
                if (!off.ok()) break;
                q.emplace_back(*off, now);
            }
        }
        for (int guard = 0; guard < 16; ++guard) {
            auto out = nd.mgr->take_ready();
            if (out.empty()) break;
            // (hard state: memory, so durable at once; then the messages)
            for (auto& e : out.messages) {
                // A bounded send queue: past it, drop (Raft retransmits).
                if (nd.out[e.to.get()].size() - nd.out_sent[e.to.get()] > max_queued_bytes) {
                    ++nd.dropped;
                    continue;
                }
                if (is_heartbeat_batch(e)) ++nd.heartbeat_frames;
                ++nd.frames;
                encode(e, nd.out[e.to.get()]);
            }
            now = ns_since(start);
            for (auto& [g, rd] : out.groups) {
                raft& r = *nd.mgr->group(g);
                auto& lg = *nd.logs[static_cast<size_t>(g.get())];
                if (rd.flush_through) r.on_flushed(*rd.flush_through, lg.term_at(*rd.flush_through));
                if (!rd.commit) continue;
                if (r.is_leader()) {
                    auto it = std::find(nd.led.begin(), nd.led.end(), g.get());
                    if (it != nd.led.end()) {
                        auto& q = nd.inflight[static_cast<size_t>(it - nd.led.begin())];
                        while (!q.empty() && q.front().first <= *rd.commit) {
                            if (q.front().second >= measure_from && now < measure_to) {
                                nd.latencies_ns.push_back(now - q.front().second);
                                ++nd.committed;
                            }
                            q.pop_front();
                        }
                    }
                }
                trim(r, *rd.commit);
            }
        }
        // Write what we can; read what has come.
        pollfd pfds[n_nodes];
        nfds_t npfd = 0;
        bool pending_out = false;
        for (int32_t p = 0; p < n_nodes; ++p) {
            if (p == nd.id) continue;
            auto& o = nd.out[p];
            while (nd.out_sent[p] < o.size()) {
                ssize_t k = ::send(nd.fds[p], o.data() + nd.out_sent[p], o.size() - nd.out_sent[p], MSG_NOSIGNAL);
                if (k <= 0) break;
                nd.out_sent[p] += static_cast<size_t>(k);
                nd.bytes_out += static_cast<uint64_t>(k);
            }
            if (nd.out_sent[p] == o.size()) {
                o.clear();
                nd.out_sent[p] = 0;
            } else {
                pending_out = true;
            }
            pfds[npfd++] = pollfd{nd.fds[p], static_cast<short>(POLLIN | (nd.out_sent[p] < o.size() ? POLLOUT : 0)), 0};
        }
        // Block only when there is nothing to write and no room to propose.
        bool room = false;
        for (size_t i = 0; i < nd.led.size() && !room; ++i) room = nd.inflight[i].size() < window;
        const int64_t until_tick_ms = std::max<int64_t>(0, (next_tick - ns_since(start)) / 1'000'000);
        ::poll(pfds, npfd, pending_out || room ? 0 : static_cast<int>(std::min<int64_t>(1, until_tick_ms)));
        for (int32_t p = 0; p < n_nodes; ++p) {
            if (p == nd.id) continue;
            for (;;) {
                ssize_t k = ::recv(nd.fds[p], buf.data(), buf.size(), 0);
                if (k <= 0) break;
                nd.in[p].insert(nd.in[p].end(), buf.data(), buf.data() + k);
            }
            auto& in = nd.in[p];
            size_t at = 0;
            while (in.size() - at >= 4) {
                uint32_t len = 0;
                for (size_t i = 0; i < 4; ++i) len |= static_cast<uint32_t>(in[at + i]) << (8 * i);
                if (in.size() - at - 4 < len) break;
                auto e = decode(node_id(p), node_id(nd.id), in.data() + at + 4, len);
                if (!e) {
                    nd.error = "undecodable frame";
                    break;
                }
                nd.mgr->step(*e);
                at += 4 + len;
            }
            in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(at));
        }
    }
}

// Args: groups, in-flight proposals per group. One iteration: 0.5 s of warm
// up, then `measure_s` seconds measured.
void commit_tcp(benchmark::State& state) {
    const int n_groups = static_cast<int>(state.range(0));
    const size_t window = static_cast<size_t>(state.range(1));
    constexpr double measure_s = 3.0;
    for (auto _ : state) {
        std::vector<std::unique_ptr<tcp_node>> nodes;
        auto cfg = make_configuration({node_id(0), node_id(1), node_id(2)});
        for (int32_t n = 0; n < n_nodes; ++n) {
            auto nd = std::make_unique<tcp_node>();
            nd->id = n;
            nd->mgr = std::make_unique<group_manager>(manager_options{node_id(n), 2, true});
            for (int g = 0; g < n_groups; ++g) {
                nd->logs.push_back(std::make_unique<memory_log>());
                options o;
                o.self = node_id(n);
                o.group = group_id(g);
                o.seed = 17;
                o.max_uncommitted_bytes = 64 * 1024 * 1024;
                persisted p;
                p.snapshot.config = cfg;
                nd->mgr->add_group(o, *nd->logs.back(), p);
                if (g % n_nodes == n) {
                    nd->led.push_back(g);
                    nd->inflight.emplace_back();
                    // Its timer fires first: it leads.
                    raft& r = *nd->mgr->group(group_id(g));
                    for (int i = 0; i < 40 && r.current_role() == role::follower; ++i) r.tick();
                }
            }
            nodes.push_back(std::move(nd));
        }
        for (int32_t a = 0; a < n_nodes; ++a) {
            for (int32_t b = a + 1; b < n_nodes; ++b) {
                auto [ca, cb] = tcp_pair();
                nodes[static_cast<size_t>(a)]->fds[b] = ca;
                nodes[static_cast<size_t>(b)]->fds[a] = cb;
            }
        }
        std::atomic<bool> stop{false};
        const auto start = clock_type::now();
        const int64_t from = 500'000'000;
        const auto to = from + static_cast<int64_t>(measure_s * 1e9);
        std::vector<std::thread> threads;
        for (auto& nd : nodes) {
            threads.emplace_back(run_tcp_node, std::ref(*nd), window, std::cref(stop), start, from, to);
        }
        std::this_thread::sleep_for(std::chrono::nanoseconds(to));
        stop = true;
        for (auto& t : threads) t.join();
        std::vector<int64_t> lat;
        uint64_t committed = 0;
        uint64_t heartbeat_frames = 0;
        uint64_t frames = 0;
        uint64_t dropped = 0;
        for (auto& nd : nodes) {
            if (!nd->error.empty()) {
                state.SkipWithError(nd->error.c_str());
                return;
            }
            lat.insert(lat.end(), nd->latencies_ns.begin(), nd->latencies_ns.end());
            committed += nd->committed;
            heartbeat_frames += nd->heartbeat_frames;
            frames += nd->frames;
            dropped += nd->dropped;
            for (int fd : nd->fds) {
                if (fd >= 0) ::close(fd);
            }
        }
        std::sort(lat.begin(), lat.end());
        state.counters["commits_per_s"] = static_cast<double>(committed) / measure_s;
        state.counters["frames"] = static_cast<double>(frames);
        state.counters["hb_frames"] = static_cast<double>(heartbeat_frames);
        state.counters["dropped"] = static_cast<double>(dropped);
        if (!lat.empty()) {
            state.counters["p50_commit_us"] = static_cast<double>(lat[lat.size() / 2]) / 1000.0;
            state.counters["p99_commit_us"] = static_cast<double>(lat[lat.size() * 99 / 100]) / 1000.0;
        }
    }
}
BENCHMARK(commit_tcp)
    ->ArgNames({"groups", "window"})
    ->Args({1, 1})
    ->Args({1, 64})
    ->Args({1000, 1})
    ->Args({1000, 8})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

// Args: groups, coalesce (1) or one heartbeat per group (0).
void idle_heartbeats(benchmark::State& state) {
    const int n_groups = static_cast<int>(state.range(0));
    const bool coalesce = state.range(1) != 0;
    bench_cluster c(n_groups, coalesce);
    for (int i = 0; i < 20; ++i) {  // settle
        c.tick_all(0);
        c.run_until_quiet(0);
    }
    uint64_t ticks = 0;
    const uint64_t hb_before = c.heartbeat_messages;
    const uint64_t items_before = c.heartbeat_items;
    const uint64_t messages_before = c.messages;
    for (auto _ : state) {
        c.tick_all(0);
        c.run_until_quiet(0);
        ++ticks;
    }
    const double sim_seconds = static_cast<double>(ticks) * 0.010;
    const double pairs = 3.0;  // unordered node pairs
    state.counters["hb_msgs_per_pair_per_s"] =
        static_cast<double>(c.heartbeat_messages - hb_before) / sim_seconds / pairs;
    state.counters["hb_items_per_pair_per_s"] =
        static_cast<double>(c.heartbeat_items - items_before) / sim_seconds / pairs;
    state.counters["other_msgs"] =
        static_cast<double>(c.messages - messages_before - (c.heartbeat_messages - hb_before));
}
BENCHMARK(idle_heartbeats)
    ->ArgNames({"groups", "coalesce"})
    ->Args({1, 1})
    ->Args({100, 1})
    ->Args({10000, 1})
    ->Args({1, 0})
    ->Args({100, 0})
    ->Args({10000, 0})
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(200);

}  // namespace
}  // namespace fjord::raft

BENCHMARK_MAIN();
