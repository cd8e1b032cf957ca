// Raft core microbenchmarks: 3-node groups in one process, a perfect
// in-memory network and an instant disk. Measures the core's own cost.
//   raft_bench --benchmark_filter=commit
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "raft/memory_log.h"
#include "raft/raft.h"

namespace fjord::raft {
namespace {

using clock_type = std::chrono::steady_clock;

struct bench_cluster {
    struct member {
        memory_log lg;
        std::unique_ptr<raft> core;
    };
    // members[group][node]
    std::vector<std::vector<std::unique_ptr<member>>> groups;
    std::vector<message> wire;
    uint64_t messages = 0;
    uint64_t heartbeats = 0;

    explicit bench_cluster(int n_groups) {
        auto cfg = make_configuration({node_id(0), node_id(1), node_id(2)});
        for (int g = 0; g < n_groups; ++g) {
            groups.emplace_back();
            for (int n = 0; n < 3; ++n) {
                auto m = std::make_unique<member>();
                options o;
                o.self = node_id(n);
                o.group = group_id(g);
                o.seed = 17;
                persisted p;
                p.snapshot.config = cfg;
                m->core = std::make_unique<raft>(o, m->lg, p);
                groups.back().push_back(std::move(m));
            }
        }
        // Elect node 0 everywhere.
        for (auto& g : groups) {
            g[0]->core->tick();
            for (int i = 0; i < 40 && !g[0]->core->is_leader(); ++i) g[0]->core->tick();
        }
        pump();
    }
    raft& at(size_t g, size_t n) { return *groups[g][n]->core; }

    // Deliver until quiet; returns the leaders' commit advances as (group, commit).
    void pump(std::vector<std::pair<size_t, offset>>* commits = nullptr) {
        for (int round = 0; round < 10000; ++round) {
            bool any = false;
            for (size_t g = 0; g < groups.size(); ++g) {
                for (auto& m : groups[g]) {
                    ready rd = m->core->take_ready();
                    if (rd.empty()) continue;
                    any = true;
                    for (auto& msg : rd.messages) {
                        if (std::holds_alternative<heartbeat_request>(msg.body)) ++heartbeats;
                        wire.push_back(std::move(msg));
                    }
                    if (rd.flush_through) m->core->on_flushed(*rd.flush_through, m->lg.term_at(*rd.flush_through));
                    if (rd.commit && commits && m->core->is_leader()) commits->emplace_back(g, *rd.commit);
                    if (rd.commit) m->core->compact(*rd.commit, shared_bytes{});  // keep memory flat
                }
            }
            std::vector<message> now;
            now.swap(wire);
            messages += now.size();
            for (auto& msg : now) {
                groups[static_cast<size_t>(msg.group.get())][static_cast<size_t>(msg.to.get())]->core->step(msg);
                any = true;
            }
            if (!any) return;
        }
    }
};

// Proposals of 1 KiB, `batch` per group between pumps; commits/s and p99
// latency from propose to the leader's commit.
void commit_throughput(benchmark::State& state) {
    const int n_groups = static_cast<int>(state.range(0));
    const int batch = 8;
    bench_cluster c(n_groups);
    for (int g = 0; g < n_groups; ++g) {
        if (!c.at(static_cast<size_t>(g), 0).is_leader()) {
            state.SkipWithError("no leader");
            return;
        }
    }
    shared_bytes payload = shared_bytes::adopt(std::vector<uint8_t>(1024, 7));
    std::vector<std::vector<std::pair<offset, clock_type::time_point>>> inflight(static_cast<size_t>(n_groups));
    std::vector<double> latencies_us;
    std::vector<std::pair<size_t, offset>> commits;
    uint64_t committed = 0;
    for (auto _ : state) {
        for (size_t g = 0; g < static_cast<size_t>(n_groups); ++g) {
            for (int i = 0; i < batch; ++i) {
                auto r = c.at(g, 0).propose(payload, 1);
                if (r.ok()) inflight[g].emplace_back(*r, clock_type::now());
            }
        }
        commits.clear();
        c.pump(&commits);
        auto now = clock_type::now();
        for (auto& [g, off] : commits) {
            auto& q = inflight[g];
            size_t k = 0;
            while (k < q.size() && q[k].first <= off) {
                latencies_us.push_back(std::chrono::duration<double, std::micro>(now - q[k].second).count());
                ++k;
            }
            committed += k;
            q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(k));
        }
    }
    std::sort(latencies_us.begin(), latencies_us.end());
    state.counters["commits_per_s"] = benchmark::Counter(static_cast<double>(committed), benchmark::Counter::kIsRate);
    if (!latencies_us.empty()) {
        state.counters["p99_commit_us"] = latencies_us[latencies_us.size() * 99 / 100];
    }
}
BENCHMARK(commit_throughput)->Arg(1)->Arg(1000)->Unit(benchmark::kMicrosecond);

// Idle groups: heartbeat messages per node pair per simulated second (one
// tick = 10 ms). Without coalescing this grows with the group count.
void idle_heartbeats(benchmark::State& state) {
    const int n_groups = static_cast<int>(state.range(0));
    bench_cluster c(n_groups);
    uint64_t ticks = 0;
    uint64_t before = c.heartbeats;
    for (auto _ : state) {
        for (auto& g : c.groups) {
            for (auto& m : g) m->core->tick();
        }
        c.pump();
        ++ticks;
    }
    double sim_seconds = static_cast<double>(ticks) * 0.010;
    // Leader node 0 sends to nodes 1 and 2: two pairs.
    state.counters["heartbeats_per_pair_per_s"] = static_cast<double>(c.heartbeats - before) / sim_seconds / 2.0;
}
BENCHMARK(idle_heartbeats)->Arg(1)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(100);

}  // namespace
}  // namespace fjord::raft

BENCHMARK_MAIN();
