// hard_state_file: a Raft replica's term and vote on disk (`quorum-state`
// beside its log), written before any message made with them goes out.
//
// Two 64-byte slots at offsets 0 and 64, written in turn; the valid one with
// the higher sequence number wins, so a torn write leaves the previous state.
// Slot: magic u32 "FJQS", version u32 (0), seq u64, term i32, vote i32 (-1:
// none), zero u32, crc32c u32 of the 28 bytes before it, zero padding.
// A write is a pwrite into the page cache plus an fdatasync on the io_engine,
// never a blocking sync on the calling thread.
//
// Threading: the thread that owns the replica. Lifecycle: open() (reads, may
// block: start-up or replica creation), write() any number of times, one at a
// time; keep the object alive until the last write's callback ran.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "raft/types.h"
#include "storage/io_engine.h"

namespace fjord::replica {

class hard_state_file {
public:
    // Opens (creating when missing) `path`. `state` is what it holds: nullopt
    // for a new or empty file. A file with bytes but no valid slot fails
    // (the vote of this replica cannot be trusted); `detail` says why.
    static result<std::unique_ptr<hard_state_file>, int> open(const std::string& path,
                                                              std::optional<raft::hard_state>& state,
                                                              std::string& detail);
    ~hard_state_file();
    hard_state_file(const hard_state_file&) = delete;
    hard_state_file& operator=(const hard_state_file&) = delete;

    // Writes `hs` and starts its fdatasync: done(0) once durable, done(-errno)
    // on failure. Returns false when the engine's queue is full (try again
    // later; nothing was changed and `done` is not called).
    [[nodiscard]] bool write(const raft::hard_state& hs, storage::io_engine& engine, std::function<void(int)> done);
    const std::string& path() const { return path_; }

private:
    hard_state_file(std::string path, int fd, uint64_t seq) : path_(std::move(path)), fd_(fd), seq_(seq) {}
    std::string path_;
    int fd_ = -1;
    uint64_t seq_ = 0;
};

}  // namespace fjord::replica
