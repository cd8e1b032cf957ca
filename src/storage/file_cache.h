// file_cache: a bounded LRU of open segment files, shared by every log of a
// shard, so 10,000 partitions do not hold 30,000 descriptors.
//
// Each file that may be open has a `slot` (owned by its segment). get() returns
// the slot's open file, opening it (and closing the least recently used one
// beyond the bound) if needed. A returned shared_ptr keeps the file open while
// in use, e.g. by an fsync in flight on the I/O engine, even if the cache
// evicts it meanwhile. Single-threaded: the owning shard.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "storage/file.h"

namespace fjord::storage {

class file_cache {
public:
    struct slot {
        std::shared_ptr<file> f;
        slot* prev = nullptr;
        slot* next = nullptr;
    };

    file_cache(file_system& fs, size_t max_open) : fs_(fs), max_open_(max_open < 3 ? 3 : max_open) {}
    file_cache(const file_cache&) = delete;
    file_cache& operator=(const file_cache&) = delete;
    ~file_cache();

    // The open file of `s`, opening `path` in `mode` if it is closed.
    result<std::shared_ptr<file>, errc> get(slot& s, const std::string& path, open_mode mode);
    // Closes the slot's file (the segment goes away, or its file is deleted).
    void forget(slot& s);
    size_t open_count() const { return open_; }
    size_t max_open() const { return max_open_; }
    file_system& fs() { return fs_; }

private:
    void unlink(slot& s);
    void push_front(slot& s);

    file_system& fs_;
    size_t max_open_;
    size_t open_ = 0;
    slot* head_ = nullptr;  // most recently used
    slot* tail_ = nullptr;
};

}  // namespace fjord::storage
