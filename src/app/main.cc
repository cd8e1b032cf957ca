// The fjord binary: `fjord start` runs the broker; `fjord version`.
//
//   fjord start [--config server.properties] [--smp N] [--log-dirs DIR]
//               [--override key=value]...
//
// Configuration sources, later ones winning: the properties file, FJORD_*
// environment variables (FJORD_LOG_DIRS=... is log.dirs), the flags.
// SIGTERM or SIGINT stops the broker cleanly.
#include <signal.h>

#include <atomic>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "base/logger.h"
#include "kafka/broker.h"
#include "protocol/gen/registry.h"

extern char** environ;

namespace {
using namespace fjord;

int usage() {
    std::fprintf(stderr,
                 "usage: fjord start [--config FILE] [--smp N] [--log-dirs DIR] [--override key=value]...\n"
                 "       fjord version\n");
    return 2;
}

int start(int argc, char** argv) {
    kafka::properties file_props, overrides;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* flag) -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "fjord: %s needs a value\n", flag);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--config") {
            const char* path = value("--config");
            std::ifstream in(path);
            if (!in) {
                std::fprintf(stderr, "fjord: cannot read %s\n", path);
                return 1;
            }
            std::stringstream ss;
            ss << in.rdbuf();
            auto parsed = kafka::parse_properties_text(ss.str());
            if (!parsed) {
                std::fprintf(stderr, "fjord: %s: %s\n", path, parsed.error().c_str());
                return 1;
            }
            file_props = std::move(parsed).value();
        } else if (a == "--smp") {
            overrides["fjord.smp"] = value("--smp");
        } else if (a == "--log-dirs") {
            overrides["log.dirs"] = value("--log-dirs");
        } else if (a == "--override") {
            std::string kv = value("--override");
            auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                std::fprintf(stderr, "fjord: --override expects key=value, got '%s'\n", kv.c_str());
                return 2;
            }
            overrides[kv.substr(0, eq)] = kv.substr(eq + 1);
        } else {
            return usage();
        }
    }
    auto cfg = kafka::make_broker_config(kafka::merge_sources(file_props, environ, overrides));
    if (!cfg) {
        std::fprintf(stderr, "fjord: configuration: %s\n", cfg.error().c_str());
        return 1;
    }
    // Signals go to this thread only (sigwait below), never to a shard.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto b = kafka::broker::create(std::move(cfg).value());
    if (!b) {
        log_error("fjord: {}", b.error());
        return 1;
    }
    auto& brk = **b;
    // Signals are taken from the start: a node waiting for its quorum stops
    // on SIGTERM too.
    std::atomic<bool> signalled{false};
    std::thread stopper([&brk, &signalled, sigs] {
        int sig = 0;
        sigwait(&sigs, &sig);
        log_info("fjord: signal {} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        signalled.store(true);
        brk.stop();
    });
    if (auto r = brk.start(); !r) {
        pthread_kill(stopper.native_handle(), SIGTERM);
        stopper.join();
        if (signalled.load()) {
            log_info("fjord: stopped before it was ready ({})", r.error());
            return 0;
        }
        log_error("fjord: cannot start: {}", r.error());
        return 1;
    }
    brk.wait();
    // The stopper waits for a signal that may never come once stopped by other means.
    pthread_kill(stopper.native_handle(), SIGTERM);
    stopper.join();
    return 0;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "version") == 0) {
        std::printf("fjord 0.1.0 (%zu Kafka APIs decodable)\n", fjord::protocol::gen::all_apis().size());
        return 0;
    }
    if (argc > 1 && std::strcmp(argv[1], "start") == 0) return start(argc, argv);
    return usage();
}
