// read_async: a log read that never blocks the shard on the disk. The shard
// plans it (index lookups: where the bytes are), the io_engine runs the pread
// (which may miss the page cache), and the shard validates the bytes
// (log::finish_read). Planning reads no file on the shard either: the index
// files of a segment loaded the first time and the batch headers from an
// index entry to the offset are fetched through the io_engine first
// (log::plan_read_async, plan_fetches). A truncation in between makes the plan stale: it is
// planned again, a bounded number of times.
//
// Threading: call on the log's shard; `done` runs there too (through `post`).
// Lifecycle: the log outlives every read in flight (the partition's gate).
#pragma once

#include <cstdint>
#include <functional>

#include "storage/io_engine.h"
#include "storage/log.h"

namespace fjord::storage {

using post_fn = std::function<void(std::function<void()>)>;
using read_done_fn = std::function<void(result<read_result, errc>)>;

void read_async(log& lg, io_engine& engine, post_fn post, int64_t offset, size_t max_bytes, int64_t max_offset,
                read_done_fn done);

}  // namespace fjord::storage
