// Deterministic simulator for the Raft core: many nodes and groups in one
// thread, a simulated clock, a faulty network (drop, delay, duplicate,
// reorder, partition) and a faulty disk (un-fsynced writes lost on crash,
// failed flushes), crashes and restarts, all driven by one seed. A checker
// runs after every step; see README.md for the invariants.
//
// Threading: single-threaded; each run owns all its state.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "raft/raft.h"

namespace fjord::raft::sim {

struct config {
    uint64_t seed = 1;
    int64_t duration_ms = 12000;  // the last `quiet_ms` of it without faults
    int64_t quiet_ms = 3000;      // liveness: a leader commits within this
    broken broken_variant = broken::none;
    bool trace = false;     // print every event as it happens
    size_t trace_tail = 0;  // else keep the last N events for the report
};

struct stats {
    uint64_t steps = 0;
    uint64_t elections = 0;
    uint64_t truncations = 0;
    uint64_t snapshots_taken = 0;
    uint64_t snapshots_installed = 0;
    uint64_t partitions = 0;
    uint64_t crashes = 0;
    uint64_t disk_failures = 0;
    uint64_t transfers = 0;
    uint64_t config_changes = 0;
    uint64_t reads = 0;
    uint64_t committed_batches = 0;
    uint64_t messages = 0;
    uint64_t dropped = 0;
    uint64_t duplicated = 0;
    uint64_t groups_max = 0;         // most groups per node in one seed
    uint64_t group_heartbeats = 0;   // per-group heartbeats sent (coalescing off)
    uint64_t heartbeat_batches = 0;  // coalesced heartbeat messages sent
    uint64_t heartbeat_items = 0;    // beats and acks in them
    uint64_t lease_reads = 0;        // reads answered under a lease, at once
    // Quiet period, coalescing on: heartbeat batches per ordered node pair per
    // round (summed over seeds, with the number of pair-rounds).
    uint64_t quiet_pair_batches = 0;
    uint64_t quiet_pair_rounds = 0;
    double worst_pair_batches_per_round = 0;  // the highest of any one seed

    void add(const stats& o);
    std::string summary() const;
};

struct outcome {
    bool ok = true;
    std::string failure;  // the first invariant broken, with the simulated time
    stats counters;
    std::deque<std::string> trace;  // the last config::trace_tail events
};

outcome run(const config& cfg);

}  // namespace fjord::raft::sim
