// metrics: counters and gauges that shards update without sharing a cache
// line, summed when scraped (Prometheus text format).
//
// A metric is declared once (a static `counter` object, registered by name
// at construction); each shard increments its own slot with a relaxed atomic
// add on its own cache line. Scraping reads every slot (relaxed) from any
// thread. Labels are part of the registered name ("x_total{kind=\"a\"}").
//
// Threading: inc()/set() from the shard that owns the slot (the calling
// thread's shard, set_metrics_shard); render() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace fjord {

inline constexpr unsigned max_metric_shards = 64;

void set_metrics_shard(unsigned shard);
unsigned metrics_shard();

class counter {
public:
    // `name` may carry labels: `fjord_x_total{kind="a"}`. `help` is shared by
    // every metric of the same base name (the first one registered wins).
    counter(std::string_view name, std::string_view help, bool gauge = false);
    counter(const counter&) = delete;
    counter& operator=(const counter&) = delete;

    void inc(uint64_t n = 1) { slots_[metrics_shard()].v.fetch_add(n, std::memory_order_relaxed); }
    // Gauges: a shard's own value (summed over shards when scraped).
    void add(int64_t n) { slots_[metrics_shard()].v.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed); }
    uint64_t value() const;
    std::string_view name() const { return name_; }

private:
    friend std::string render_metrics();
    struct alignas(64) slot {
        std::atomic<uint64_t> v{0};
    };
    std::string name_;
    std::string help_;
    bool gauge_;
    std::array<slot, max_metric_shards> slots_;
};

// Every registered metric in Prometheus text exposition format.
std::string render_metrics();

}  // namespace fjord
