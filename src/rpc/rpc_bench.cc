// RPC benchmarks (Google Benchmark; run by hand, not by ctest):
//
//   build/release/src/rpc/rpc_bench
//
// - encode_append / decode_append: raft_codec on an append of `entries`
//   record batches of `payload` bytes (encoding with the batches spliced, as
//   the transport sends them; decoding keeps them as views of the frame).
// - encode_batch / decode_batch: a coalesced heartbeat batch of `groups`
//   beats and as many acks.
// - one_way: two transports over loopback TCP, on one shard or on two (then
//   a frame may reach the receiver's server on the other shard and hop); node
//   0 sends appends of one `payload`-byte batch to node 1 as fast as the
//   queue takes them, and the clock stops when node 1 has received them all.
//   Reports envelopes/s and bytes/s (encoding, the socket, decoding).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "rpc/raft_codec.h"
#include "rpc/transport.h"

namespace fjord::rpc {
namespace {
namespace asio = net::asio;

raft::envelope append_of(int entries, size_t payload) {
    raft::append_request a{raft::term_id(5), raft::offset(999), raft::term_id(5), raft::offset(900), {}};
    int64_t base = 1000;
    for (int i = 0; i < entries; ++i) {
        a.entries.push_back(raft::entry{raft::offset(base), 10, raft::term_id(5), raft::entry_kind::data,
                                        shared_bytes::adopt(std::vector<uint8_t>(payload, 7))});
        base += 10;
    }
    return raft::envelope{raft::node_id(0), raft::node_id(1),
                          raft::message{raft::group_id(3), raft::node_id(0), raft::node_id(1), std::move(a)}};
}

raft::envelope batch_of(int groups) {
    raft::heartbeat_batch b;
    for (int g = 0; g < groups; ++g) {
        b.beats.push_back({raft::group_id(g), raft::term_id(3), raft::offset(100000 + g), uint64_t(g) * 7});
        b.acks.push_back({raft::group_id(g), raft::term_id(3), uint64_t(g) * 5, g % 7 == 0});
    }
    return raft::envelope{raft::node_id(0), raft::node_id(1), std::move(b)};
}

void encode_append(benchmark::State& state) {
    auto e = append_of(static_cast<int>(state.range(0)), static_cast<size_t>(state.range(1)));
    for (auto _ : state) {
        protocol::writer w;
        w.enable_splices(4096);
        encode_raft(e, w);
        benchmark::DoNotOptimize(w.buffer().data());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0) * state.range(1));
}
BENCHMARK(encode_append)->Args({16, 16384})->Args({64, 1024})->Args({1, 1 << 20});

void decode_append(benchmark::State& state) {
    auto e = append_of(static_cast<int>(state.range(0)), static_cast<size_t>(state.range(1)));
    auto api = raft_api(e);
    auto body = shared_bytes::adopt(encode_raft(e));
    for (auto _ : state) {
        auto back = decode_raft(api, raft::node_id(0), raft::node_id(1), body);
        benchmark::DoNotOptimize(back.ok());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(decode_append)->Args({16, 16384})->Args({64, 1024})->Args({1, 1 << 20});

void encode_batch(benchmark::State& state) {
    auto e = batch_of(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        auto bytes = encode_raft(e);
        benchmark::DoNotOptimize(bytes.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(encode_batch)->Arg(100)->Arg(10000);

void decode_batch(benchmark::State& state) {
    auto e = batch_of(static_cast<int>(state.range(0)));
    auto body = shared_bytes::adopt(encode_raft(e));
    for (auto _ : state) {
        auto back = decode_raft(api_version{8, 0}, raft::node_id(0), raft::node_id(1), body);
        benchmark::DoNotOptimize(back.ok());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(decode_batch)->Arg(100)->Arg(10000);

template <typename F>
auto on(asio::io_context& ctx, F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(ctx, [&task] { task(); });
    return done.get();
}

void one_way(benchmark::State& state) {
    const size_t payload = static_cast<size_t>(state.range(0));
    constexpr int per_round = 20000;
    const unsigned n_shards = static_cast<unsigned>(state.range(1));
    net::shard_set shards(n_shards);
    transport_config cfg;
    cfg.max_queue_bytes = 1u << 30;
    std::vector<std::unique_ptr<transport>> t;
    std::vector<std::unique_ptr<net::server>> srv;
    std::atomic<int64_t> received{0};
    for (int32_t i = 0; i < 2; ++i) {
        cfg.self = i;
        t.push_back(std::make_unique<transport>(shards.context(unsigned(i) % n_shards), cfg));
        net::server_config sc;
        sc.host = "127.0.0.1";
        sc.port = 0;
        sc.max_inflight_requests = 4096;
        auto* self = t.back().get();
        srv.push_back(std::make_unique<net::server>(
            shards, sc, [self](unsigned s) -> net::frame_handler& { return self->inbound(s); }));
        (void)srv.back()->listen();
        srv.back()->start();
    }
    t[0]->set_peers({peer_address{1, "127.0.0.1", srv[1]->port()}});
    t[1]->on_raft([&received](raft::envelope) { received.fetch_add(1, std::memory_order_relaxed); });
    shards.run();
    auto e = append_of(1, payload);
    int64_t want = 0;
    for (auto _ : state) {
        want += per_round;
        on(shards.context(0), [&] {
            for (int i = 0; i < per_round; ++i) t[0]->send(e);
        });
        while (received.load(std::memory_order_relaxed) < want)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    state.SetItemsProcessed(state.iterations() * per_round);
    state.SetBytesProcessed(state.iterations() * per_round * static_cast<int64_t>(payload));
    for (auto& s : srv) s->stop();
    while (!srv[0]->stopped() || !srv[1]->stopped()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 2; ++i) on(shards.context(unsigned(i) % n_shards), [&t, i] { t[size_t(i)].reset(); });
    shards.stop();
    shards.join();
}
BENCHMARK(one_way)
    ->ArgsProduct({{64, 1024, 16384}, {1, 2}})
    ->ArgNames({"payload", "shards"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace fjord::rpc

BENCHMARK_MAIN();
