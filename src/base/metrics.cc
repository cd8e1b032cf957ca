#include "base/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace fjord {
namespace {
thread_local unsigned this_shard = 0;

// Registration happens at static initialization or start-up; scraping reads
// the list under the same lock (never on a hot path).
std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
}
std::vector<counter*>& registry() {
    static std::vector<counter*> r;
    return r;
}
std::string_view base_name(std::string_view n) {
    return n.substr(0, n.find('{'));
}
}  // namespace

void set_metrics_shard(unsigned shard) {
    this_shard = shard < max_metric_shards ? shard : max_metric_shards - 1;
}
unsigned metrics_shard() {
    return this_shard;
}

counter::counter(std::string_view name, std::string_view help, bool gauge) : name_(name), help_(help), gauge_(gauge) {
    std::lock_guard g(registry_mutex());
    registry().push_back(this);
}

uint64_t counter::value() const {
    uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.v.load(std::memory_order_relaxed);
    return sum;
}

std::string render_metrics() {
    std::vector<counter*> all;
    {
        std::lock_guard g(registry_mutex());
        all = registry();
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const counter* a, const counter* b) { return base_name(a->name_) < base_name(b->name_); });
    std::string out;
    std::string_view last;
    for (const counter* c : all) {
        auto base = base_name(c->name_);
        if (base != last) {
            out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", base, c->help_, base, c->gauge_ ? "gauge" : "counter");
            last = base;
        }
        if (c->gauge_) {
            out += fmt::format("{} {}\n", c->name_, static_cast<int64_t>(c->value()));
        } else {
            out += fmt::format("{} {}\n", c->name_, c->value());
        }
    }
    return out;
}

}  // namespace fjord
