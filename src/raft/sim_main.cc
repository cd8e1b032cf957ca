// raft_sim: runs the deterministic Raft simulator over a range of seeds.
//
//   raft_sim [--seeds N] [--seed S] [--minutes M] [--duration-ms D]
//            [--broken VARIANT --expect-failure] [--trace]
//
// Prints how many seeds passed. On a failure: the seed, the broken invariant,
// the last events before it, and the command that replays it exactly.
// --minutes M runs consecutive seeds until M minutes have passed (long mode).
// --expect-failure (with --broken) succeeds when some seed fails: a negative
// control proving that the checker catches the bug.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "raft/sim.h"

namespace {

using fjord::raft::broken;

int usage() {
    std::fprintf(stderr,
                 "usage: raft_sim [--seeds N] [--seed S] [--minutes M] [--duration-ms D] [--broken VARIANT "
                 "--expect-failure] [--trace]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t seeds = 100;
    uint64_t first = 1;
    double minutes = 0;
    bool expect_failure = false;
    fjord::raft::sim::config base;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        const char* v = nullptr;
        if (a == "--seeds" && (v = value())) {
            seeds = std::strtoull(v, nullptr, 10);
        } else if (a == "--seed" && (v = value())) {
            first = std::strtoull(v, nullptr, 10);
        } else if (a == "--minutes" && (v = value())) {
            minutes = std::strtod(v, nullptr);
        } else if (a == "--duration-ms" && (v = value())) {
            base.duration_ms = std::strtoll(v, nullptr, 10);
        } else if (a == "--broken" && (v = value())) {
            {
                auto b = fjord::raft::parse_broken(v);
                if (!b) return usage();
                base.broken_variant = *b;
            }
        } else if (a == "--expect-failure") {
            expect_failure = true;
        } else if (a == "--trace") {
            base.trace = true;
        } else {
            return usage();
        }
    }
    if (base.duration_ms <= base.quiet_ms) return usage();
    const auto start = std::chrono::steady_clock::now();
    auto elapsed_s = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    fjord::raft::sim::stats total;
    uint64_t passed = 0;
    uint64_t ran = 0;
    for (uint64_t seed = first;; ++seed) {
        if (minutes > 0 ? elapsed_s() >= minutes * 60 : ran >= seeds) break;
        fjord::raft::sim::config cfg = base;
        cfg.seed = seed;
        auto out = fjord::raft::sim::run(cfg);
        ++ran;
        total.add(out.counters);
        if (out.ok) {
            ++passed;
            continue;
        }
        const char* variant = fjord::raft::broken_name(base.broken_variant);
        std::printf("FAIL seed=%llu broken=%s: %s\n", static_cast<unsigned long long>(seed), variant,
                    out.failure.c_str());
        std::printf("  exercised: %s\n", out.counters.summary().c_str());
        if (expect_failure) {
            // A broken variant must trip a safety invariant; a liveness timeout
            // would pass for the wrong reason.
            if (out.failure.find("liveness:") != std::string::npos) {
                std::printf("negative control %s failed liveness, not safety: not caught\n", variant);
                return 1;
            }
            std::printf("negative control %s caught after %llu seeds (%.1f s)\n", variant,
                        static_cast<unsigned long long>(ran), elapsed_s());
            return 0;
        }
        // Replay the seed (deterministic) keeping the last events.
        cfg.trace_tail = 60;
        auto again = fjord::raft::sim::run(cfg);
        std::printf("  last events (simulated ms, node, group):\n");
        for (const auto& line : again.trace) std::printf("    %s\n", line.c_str());
        std::printf("  replay: %s --seed %llu --seeds 1 --duration-ms %lld%s%s --trace\n", argv[0],
                    static_cast<unsigned long long>(seed), static_cast<long long>(base.duration_ms),
                    base.broken_variant == broken::none ? "" : " --broken ",
                    base.broken_variant == broken::none ? "" : variant);
        std::printf("seeds passed: %llu/%llu\n", static_cast<unsigned long long>(passed),
                    static_cast<unsigned long long>(ran));
        return 1;
    }
    std::printf("seeds passed: %llu/%llu (from seed %llu) in %.1f s\n", static_cast<unsigned long long>(passed),
                static_cast<unsigned long long>(ran), static_cast<unsigned long long>(first), elapsed_s());
    std::printf("exercised: %s\n", total.summary().c_str());
    if (expect_failure) {
        std::printf("negative control %s NOT caught in %llu seeds\n", fjord::raft::broken_name(base.broken_variant),
                    static_cast<unsigned long long>(ran));
        return 1;
    }
    return 0;
}
