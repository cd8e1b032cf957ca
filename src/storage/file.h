// The file layer under the storage engine: every byte the engine reads or
// writes, and every fsync, goes through `file_system` and `file`.
//
// Two implementations: posix_file_system() (the real one, pread/pwrite/
// fdatasync on file descriptors) and sim_file_system (sim_file_system.h, tests
// only), which keeps what was written apart from what was synced so a test can
// cut the power and lose or tear every write not yet synced, and which injects
// ENOSPC and EIO.
//
// Durability contract (POSIX, and what the simulator enforces):
//   - file::sync() makes the file's bytes and size durable (fdatasync).
//   - Creating, renaming or removing a name is durable only after
//     sync_dir() of its directory.
// Threading: a file may be used by one thread at a time, except that sync()
// may run on another thread (the I/O engine) concurrently with reads and
// writes of other ranges: POSIX allows that, and sim_file_system serialises.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "storage/errc.h"

namespace fjord::storage {

enum class open_mode : uint8_t {
    read_only,
    read_write,  // must exist
    create,      // read-write, created if missing
};

class file {
public:
    virtual ~file() = default;
    // Reads up to out.size() bytes at `pos`; returns fewer only at end of file.
    virtual result<size_t, errc> read_at(uint64_t pos, std::span<uint8_t> out) = 0;
    // Writes all of `data` at `pos` or fails (possibly after writing part).
    virtual result<void, errc> write_at(uint64_t pos, std::span<const uint8_t> data) = 0;
    virtual result<void, errc> truncate(uint64_t size) = 0;
    virtual result<uint64_t, errc> size() = 0;
    // fdatasync: the bytes written so far and the size are durable.
    virtual result<void, errc> sync() = 0;
    // The OS descriptor, for an io_uring engine; -1 if this is not an OS file.
    virtual int fd() const { return -1; }
};

class file_system {
public:
    virtual ~file_system() = default;
    virtual result<std::shared_ptr<file>, errc> open(const std::string& path, open_mode mode) = 0;
    virtual result<void, errc> remove(const std::string& path) = 0;
    virtual result<void, errc> rename(const std::string& from, const std::string& to) = 0;
    // Creates a directory (and its parents); succeeds if it exists.
    virtual result<void, errc> make_dir(const std::string& path) = 0;
    // Removes an empty directory.
    virtual result<void, errc> remove_dir(const std::string& path) = 0;
    virtual result<void, errc> sync_dir(const std::string& path) = 0;
    // Names (not paths) in a directory, without "." and "..", unsorted.
    virtual result<std::vector<std::string>, errc> list_dir(const std::string& path) = 0;
    // not_found if the path does not exist.
    virtual result<uint64_t, errc> file_size(const std::string& path) = 0;
    virtual bool is_dir(const std::string& path) = 0;
};

// The process-wide POSIX file system.
file_system& posix_file_system();

// Maps an errno value to errc.
errc errc_from_errno(int e);

// Reads exactly out.size() bytes at pos (errc::io_error on a short read).
result<void, errc> read_exact(file& f, uint64_t pos, std::span<uint8_t> out);
// The whole content of a small file (checkpoints, metadata).
result<std::string, errc> read_small_file(file_system& fs, const std::string& path);
// Kafka's atomic replace: write `path`.tmp, sync it, rename over `path`,
// sync the directory.
result<void, errc> write_file_atomically(file_system& fs, const std::string& dir, const std::string& name,
                                         std::string_view content);

}  // namespace fjord::storage
