// sim_file_system: an in-memory file_system for tests that models what a power
// cut does to un-synced data, and injects disk errors.
//
// Every file keeps its synced ("durable") content apart from the operations
// since its last sync. power_cut() rebuilds the world from durable state:
// each un-synced write is independently kept, torn (a prefix of it, rounded
// to `tear_granularity`, kept) or lost, each un-synced truncate kept or lost,
// and each name created, renamed or removed since its directory's last
// sync_dir() is kept or reverted (a rename as a whole: the file keeps its old
// or its new name, as journaling file systems guarantee). Handles opened
// before the cut fail with io_error afterwards (the process that held them
// is gone).
//
// Faults: set_capacity() makes writes beyond a total size fail with no_space
// (after writing what fits, as a short write does); fail_next() fails the
// next n calls of an operation with a given error.
//
// Directories are durable when created. Single-threaded (tests only).
#pragma once

#include <map>
#include <memory>
#include <random>
#include <set>

#include "storage/file.h"

namespace fjord::storage {

class sim_file_system final : public file_system {
public:
    enum class op : uint8_t { write, sync, open, truncate, read, any };

    explicit sim_file_system(uint64_t seed) : rng_(seed) {}
    ~sim_file_system() override;

    result<std::shared_ptr<file>, errc> open(const std::string& path, open_mode mode) override;
    result<void, errc> remove(const std::string& path) override;
    result<void, errc> rename(const std::string& from, const std::string& to) override;
    result<void, errc> make_dir(const std::string& path) override;
    result<void, errc> remove_dir(const std::string& path) override;
    result<void, errc> sync_dir(const std::string& path) override;
    result<std::vector<std::string>, errc> list_dir(const std::string& path) override;
    result<uint64_t, errc> file_size(const std::string& path) override;
    bool is_dir(const std::string& path) override;

    // Drops or tears everything not synced; invalidates open handles.
    void power_cut();
    // Total bytes of all files; writes beyond it fail with no_space.
    void set_capacity(uint64_t bytes) { capacity_ = bytes; }
    // Fails the next `count` calls of `which` with `e`.
    void fail_next(op which, errc e, int count = 1) {
        fault_op_ = which;
        fault_errc_ = e;
        fault_count_ = count;
    }
    void clear_faults() {
        fault_count_ = 0;
        capacity_ = UINT64_MAX;
    }
    uint64_t tear_granularity = 512;

    // Test access: the current bytes of a file (empty if missing), and a way to
    // corrupt them as a failing disk would (durably).
    std::vector<uint8_t> contents(const std::string& path) const;
    void corrupt(const std::string& path, uint64_t pos, uint8_t xor_mask);
    uint64_t syncs() const { return syncs_; }
    uint64_t open_files() const { return open_handles_; }

    struct node;
    struct pending;

private:
    friend class sim_file;
    bool take_fault(op which, errc& e);
    static std::string parent_of(const std::string& path);

    std::mt19937_64 rng_;
    uint64_t generation_ = 0;
    // Names are keyed (directory, name) so a directory's entries are one range.
    using key = std::pair<std::string, std::string>;
    static key key_of(const std::string& path);
    std::map<key, std::shared_ptr<node>> names_;    // current namespace
    std::map<key, std::shared_ptr<node>> durable_;  // as of the last sync_dir per directory
    uint64_t used_ = 0;                             // bytes of all files (capacity checks)
    std::set<std::string> dirs_{"/"};
    uint64_t capacity_ = UINT64_MAX;
    op fault_op_ = op::any;
    errc fault_errc_ = errc::io_error;
    int fault_count_ = 0;
    uint64_t syncs_ = 0;
    uint64_t open_handles_ = 0;
};

}  // namespace fjord::storage
