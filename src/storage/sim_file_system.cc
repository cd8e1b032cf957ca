#include "storage/sim_file_system.h"

#include <algorithm>
#include <optional>

namespace fjord::storage {

struct sim_file_system::pending {
    bool is_write = true;
    uint64_t pos = 0;  // write position, or new size for a truncate
    std::vector<uint8_t> bytes;
};

struct sim_file_system::node {
    std::vector<uint8_t> data;     // what reads see
    std::vector<uint8_t> durable;  // as of the last sync
    std::vector<pending> ops;      // since the last sync, in order
};

namespace {
void apply_write(std::vector<uint8_t>& d, uint64_t pos, std::span<const uint8_t> b) {
    if (d.size() < pos + b.size()) d.resize(pos + b.size(), 0);
    std::copy(b.begin(), b.end(), d.begin() + static_cast<ptrdiff_t>(pos));
}
}  // namespace

class sim_file final : public file {
public:
    sim_file(sim_file_system* fs, std::shared_ptr<sim_file_system::node> n, bool writable)
        : fs_(fs), node_(std::move(n)), generation_(fs->generation_), writable_(writable) {
        ++fs_->open_handles_;
    }
    ~sim_file() override { --fs_->open_handles_; }

    result<size_t, errc> read_at(uint64_t pos, std::span<uint8_t> out) override {
        if (auto e = check(sim_file_system::op::read); e) return fail(*e);
        const auto& d = node_->data;
        if (pos >= d.size()) return size_t{0};
        size_t n = std::min<uint64_t>(out.size(), d.size() - pos);
        std::copy_n(d.begin() + static_cast<ptrdiff_t>(pos), n, out.begin());
        return n;
    }
    result<void, errc> write_at(uint64_t pos, std::span<const uint8_t> data) override {
        if (!writable_) return fail(errc::io_error);
        if (auto e = check(sim_file_system::op::write); e) return fail(*e);
        auto& d = node_->data;
        uint64_t grow = pos + data.size() > d.size() ? pos + data.size() - d.size() : 0;
        uint64_t used = fs_->used_;
        if (grow > 0 && used + grow > fs_->capacity_) {
            // A short write: what fits lands, then ENOSPC.
            uint64_t room = fs_->capacity_ > used ? fs_->capacity_ - used : 0;
            uint64_t fits =
                pos >= d.size() ? (pos - d.size() < room ? room - (pos - d.size()) : 0) : (d.size() - pos) + room;
            fits = std::min<uint64_t>(fits, data.size());
            if (fits > 0) record_write(pos, data.first(fits));
            return fail(errc::no_space);
        }
        record_write(pos, data);
        return {};
    }
    result<void, errc> truncate(uint64_t size) override {
        if (!writable_) return fail(errc::io_error);
        if (auto e = check(sim_file_system::op::truncate); e) return fail(*e);
        fs_->used_ = fs_->used_ - node_->data.size() + size;
        node_->data.resize(size, 0);
        node_->ops.push_back({false, size, {}});
        return {};
    }
    result<uint64_t, errc> size() override {
        if (auto e = check(sim_file_system::op::read); e) return fail(*e);
        return static_cast<uint64_t>(node_->data.size());
    }
    result<void, errc> sync() override {
        if (auto e = check(sim_file_system::op::sync); e) return fail(*e);
        node_->durable = node_->data;
        node_->ops.clear();
        ++fs_->syncs_;
        return {};
    }

private:
    void record_write(uint64_t pos, std::span<const uint8_t> b) {
        if (pos + b.size() > node_->data.size()) fs_->used_ += pos + b.size() - node_->data.size();
        apply_write(node_->data, pos, b);
        node_->ops.push_back({true, pos, std::vector<uint8_t>(b.begin(), b.end())});
    }
    std::optional<errc> check(sim_file_system::op which) {
        if (generation_ != fs_->generation_) return errc::io_error;
        errc e;
        if (fs_->take_fault(which, e)) return e;
        return std::nullopt;
    }

    sim_file_system* fs_;
    std::shared_ptr<sim_file_system::node> node_;
    uint64_t generation_;
    bool writable_;
};

sim_file_system::~sim_file_system() = default;

bool sim_file_system::take_fault(op which, errc& e) {
    if (fault_count_ <= 0) return false;
    if (fault_op_ != op::any && fault_op_ != which) return false;
    --fault_count_;
    e = fault_errc_;
    return true;
}

sim_file_system::key sim_file_system::key_of(const std::string& path) {
    auto i = path.find_last_of('/');
    if (i == std::string::npos) return {".", path};
    return {i == 0 ? "/" : path.substr(0, i), path.substr(i + 1)};
}

std::string sim_file_system::parent_of(const std::string& path) {
    auto i = path.find_last_of('/');
    if (i == std::string::npos) return ".";
    if (i == 0) return "/";
    return path.substr(0, i);
}

result<std::shared_ptr<file>, errc> sim_file_system::open(const std::string& path, open_mode mode) {
    errc e;
    if (take_fault(op::open, e)) return fail(e);
    auto k = key_of(path);
    auto it = names_.find(k);
    if (it == names_.end()) {
        if (mode != open_mode::create) return fail(errc::not_found);
        if (!dirs_.count(k.first)) return fail(errc::not_found);
        it = names_.emplace(std::move(k), std::make_shared<node>()).first;
    }
    return std::shared_ptr<file>(std::make_shared<sim_file>(this, it->second, mode != open_mode::read_only));
}

result<void, errc> sim_file_system::remove(const std::string& path) {
    auto it = names_.find(key_of(path));
    if (it == names_.end()) return fail(errc::not_found);
    used_ -= it->second->data.size();
    names_.erase(it);
    return {};
}

result<void, errc> sim_file_system::rename(const std::string& from, const std::string& to) {
    auto it = names_.find(key_of(from));
    if (it == names_.end()) return fail(errc::not_found);
    auto n = it->second;
    names_.erase(it);
    auto& slot = names_[key_of(to)];
    if (slot) used_ -= slot->data.size();
    slot = std::move(n);
    return {};
}

result<void, errc> sim_file_system::make_dir(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') dirs_.insert(path.substr(0, i));
    }
    return {};
}

result<void, errc> sim_file_system::remove_dir(const std::string& path) {
    auto it = names_.lower_bound(key{path, ""});
    if (it != names_.end() && it->first.first == path) return fail(errc::io_error);
    dirs_.erase(path);
    return {};
}

result<void, errc> sim_file_system::sync_dir(const std::string& path) {
    errc e;
    if (take_fault(op::sync, e)) return fail(e);
    durable_.erase(durable_.lower_bound(key{path, ""}), durable_.lower_bound(key{path + '\x01', ""}));
    for (auto it = names_.lower_bound(key{path, ""}); it != names_.end() && it->first.first == path; ++it) {
        durable_.emplace(it->first, it->second);
    }
    ++syncs_;
    return {};
}

result<std::vector<std::string>, errc> sim_file_system::list_dir(const std::string& path) {
    if (!dirs_.count(path)) return fail(errc::not_found);
    std::vector<std::string> out;
    for (auto it = names_.lower_bound(key{path, ""}); it != names_.end() && it->first.first == path; ++it) {
        out.push_back(it->first.second);
    }
    for (const auto& d : dirs_) {
        if (d != path && parent_of(d) == path) out.push_back(d.substr(path.size() + 1));
    }
    return out;
}

result<uint64_t, errc> sim_file_system::file_size(const std::string& path) {
    auto it = names_.find(key_of(path));
    if (it == names_.end()) return fail(errc::not_found);
    return static_cast<uint64_t>(it->second->data.size());
}

bool sim_file_system::is_dir(const std::string& path) {
    return dirs_.count(path) > 0;
}

void sim_file_system::power_cut() {
    ++generation_;
    std::uniform_int_distribution<int> coin(0, 1);
    // The namespace: durable entries, and each un-synced change kept or not.
    // A rename of a durable file is one journaled metadata operation (ext4,
    // XFS; Kafka's segment swap relies on it): after the cut the file has its
    // old name or its new one, never neither nor both.
    std::map<key, std::shared_ptr<node>> names = durable_;
    std::map<const node*, key> durable_name;
    for (const auto& [p, n] : durable_) durable_name.emplace(n.get(), p);
    std::set<key> renamed_from;
    for (const auto& [p, n] : names_) {
        auto d = durable_.find(p);
        if (d != durable_.end() && d->second == n) continue;
        auto src = durable_name.find(n.get());
        if (src != durable_name.end() && src->second != p && !names_.count(src->second)) {
            renamed_from.insert(src->second);
            if (coin(rng_)) {
                names[p] = n;
                names.erase(src->second);
            }
            continue;
        }
        if (coin(rng_)) names[p] = n;
    }
    for (const auto& [p, n] : durable_) {
        if (!names_.count(p) && !renamed_from.count(p) && coin(rng_)) names.erase(p);
    }
    // The contents: durable bytes plus a random subset of the later operations.
    std::set<node*> done;
    for (auto& [p, n] : names) {
        if (!done.insert(n.get()).second) continue;
        std::vector<uint8_t> d = n->durable;
        for (const auto& o : n->ops) {
            int choice = std::uniform_int_distribution<int>(0, 2)(rng_);  // 0 lost, 1 kept, 2 torn
            if (!o.is_write) {
                if (choice != 0) d.resize(o.pos, 0);
                continue;
            }
            if (choice == 0) continue;
            size_t keep = o.bytes.size();
            if (choice == 2 && keep > 0) {
                keep = std::uniform_int_distribution<size_t>(0, keep)(rng_);
                // Pages reach the disk whole: cut at a granularity boundary of the file.
                uint64_t end = o.pos + keep;
                end -= end % tear_granularity;
                keep = end > o.pos ? end - o.pos : 0;
            }
            apply_write(d, o.pos, std::span<const uint8_t>(o.bytes).first(keep));
        }
        n->data = d;
        n->durable = std::move(d);
        n->ops.clear();
    }
    used_ = 0;
    for (const auto& [p, n] : names) used_ += n->data.size();
    names_ = names;
    durable_ = std::move(names);
}

std::vector<uint8_t> sim_file_system::contents(const std::string& path) const {
    auto it = names_.find(key_of(path));
    return it == names_.end() ? std::vector<uint8_t>{} : it->second->data;
}

void sim_file_system::corrupt(const std::string& path, uint64_t pos, uint8_t xor_mask) {
    auto it = names_.find(key_of(path));
    FJORD_ASSERT(it != names_.end() && pos < it->second->data.size(), "corrupt {} at {}", path, pos);
    it->second->data[pos] ^= xor_mask;
    if (pos < it->second->durable.size()) it->second->durable[pos] ^= xor_mask;
}

}  // namespace fjord::storage
