// metadata_log: where metadata records are made durable and replayed from.
//
// One interface, two homes: today local_metadata_log (one node, a storage
// partition log `__cluster_metadata-0`); later Raft group 0, where append()
// completes once a majority has the records. The tables (metadata_table.h)
// never see which one it is: the controller appends through this interface
// and applies what it was told is durable.
//
// Threading: one thread (shard 0) calls every method. Completions (`done`)
// run on that thread, posted through the function given at construction,
// never inline from append(). Lifecycle: open, replay(), then append()s;
// keep the log alive until idle().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cluster/errc.h"
#include "cluster/metadata_records.h"

namespace fjord::cluster {

class metadata_log {
public:
    using post_fn = std::function<void(std::function<void()>)>;
    // The offset of the first appended record (record i is at offset + i),
    // or why the records are not durable.
    using append_done = std::function<void(result<int64_t, errc>)>;
    using replay_fn = std::function<result<void, errc>(int64_t offset, const metadata_record&)>;

    virtual ~metadata_log() = default;

    // Appends `records` (at least one) atomically: all become durable at
    // consecutive offsets, or none is acknowledged. Appends complete in order.
    virtual void append(std::vector<metadata_record> records, append_done done) = 0;

    // Start-up only (before any append, on an idle log): appends `records`
    // and blocks until they are durable. For the records a new cluster starts
    // with (its id); with Raft these become the bootstrap checkpoint.
    virtual result<int64_t, errc> bootstrap(std::vector<metadata_record> records) = 0;

    // Calls `fn` for every record in the log, in order. A record that does
    // not decode, or an error from `fn`, stops the replay and takes the log
    // offline with offline_detail() saying where and why.
    virtual result<void, errc> replay(const replay_fn& fn) = 0;

    // The offset the next appended record will get.
    virtual int64_t end_offset() const = 0;
    // No append waiting for its completion.
    virtual bool idle() const = 0;
    virtual bool offline() const = 0;
    virtual const std::string& offline_detail() const = 0;
};

}  // namespace fjord::cluster
