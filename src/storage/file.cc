#include "storage/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fjord::storage {

const char* describe(errc e) {
    switch (e) {
        case errc::io_error: return "I/O error";
        case errc::no_space: return "no space left on device";
        case errc::not_found: return "not found";
        case errc::already_exists: return "already exists";
        case errc::too_many_open_files: return "too many open files";
        case errc::invalid_batch: return "invalid record batch";
        case errc::offset_out_of_range: return "offset out of range";
        case errc::offset_regression: return "batch offsets go backwards";
        case errc::epoch_regression: return "leader epoch below the latest";
        case errc::corrupt_log: return "corrupt log";
        case errc::bad_checkpoint: return "malformed checkpoint file";
        case errc::log_offline: return "log offline";
        case errc::identity_mismatch: return "meta.properties belongs to another node or cluster";
    }
    return "unknown storage error";
}

errc errc_from_errno(int e) {
    switch (e) {
        case ENOSPC:
        case EDQUOT: return errc::no_space;
        case ENOENT: return errc::not_found;
        case EEXIST: return errc::already_exists;
        case EMFILE:
        case ENFILE: return errc::too_many_open_files;
        default: return errc::io_error;
    }
}

namespace {

class posix_file final : public file {
public:
    explicit posix_file(int fd) : fd_(fd) {}
    ~posix_file() override { ::close(fd_); }

    result<size_t, errc> read_at(uint64_t pos, std::span<uint8_t> out) override {
        size_t done = 0;
        while (done < out.size()) {
            ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(pos + done));
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail(errc_from_errno(errno));
            }
            if (n == 0) break;
            done += static_cast<size_t>(n);
        }
        return done;
    }

    result<void, errc> write_at(uint64_t pos, std::span<const uint8_t> data) override {
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(pos + done));
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail(errc_from_errno(errno));
            }
            done += static_cast<size_t>(n);
        }
        return {};
    }

    result<void, errc> truncate(uint64_t size) override {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return fail(errc_from_errno(errno));
        return {};
    }

    result<uint64_t, errc> size() override {
        struct stat st;
        if (::fstat(fd_, &st) != 0) return fail(errc_from_errno(errno));
        return static_cast<uint64_t>(st.st_size);
    }

    result<void, errc> sync() override {
        if (::fdatasync(fd_) != 0) return fail(errc_from_errno(errno));
        return {};
    }

    int fd() const override { return fd_; }

private:
    int fd_;
};

class posix_fs final : public file_system {
public:
    result<std::shared_ptr<file>, errc> open(const std::string& path, open_mode mode) override {
        int flags = O_CLOEXEC;
        switch (mode) {
            case open_mode::read_only: flags |= O_RDONLY; break;
            case open_mode::read_write: flags |= O_RDWR; break;
            case open_mode::create: flags |= O_RDWR | O_CREAT; break;
        }
        int fd = ::open(path.c_str(), flags, 0644);
        if (fd < 0) return fail(errc_from_errno(errno));
        return std::shared_ptr<file>(std::make_shared<posix_file>(fd));
    }
    result<void, errc> remove(const std::string& path) override {
        if (::unlink(path.c_str()) != 0) return fail(errc_from_errno(errno));
        return {};
    }
    result<void, errc> rename(const std::string& from, const std::string& to) override {
        if (::rename(from.c_str(), to.c_str()) != 0) return fail(errc_from_errno(errno));
        return {};
    }
    result<void, errc> make_dir(const std::string& path) override {
        for (size_t i = 1; i <= path.size(); ++i) {
            if (i != path.size() && path[i] != '/') continue;
            std::string prefix = path.substr(0, i);
            if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return fail(errc_from_errno(errno));
        }
        return {};
    }
    result<void, errc> remove_dir(const std::string& path) override {
        if (::rmdir(path.c_str()) != 0) return fail(errc_from_errno(errno));
        return {};
    }
    result<void, errc> sync_dir(const std::string& path) override {
        int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return fail(errc_from_errno(errno));
        int rc = ::fsync(fd);
        int e = errno;
        ::close(fd);
        if (rc != 0) return fail(errc_from_errno(e));
        return {};
    }
    result<std::vector<std::string>, errc> list_dir(const std::string& path) override {
        DIR* d = ::opendir(path.c_str());
        if (!d) return fail(errc_from_errno(errno));
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d)) {
            if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
            names.emplace_back(e->d_name);
        }
        ::closedir(d);
        return names;
    }
    result<uint64_t, errc> file_size(const std::string& path) override {
        struct stat st;
        if (::stat(path.c_str(), &st) != 0) return fail(errc_from_errno(errno));
        return static_cast<uint64_t>(st.st_size);
    }
    bool is_dir(const std::string& path) override {
        struct stat st;
        return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
};

}  // namespace

file_system& posix_file_system() {
    static posix_fs fs;
    return fs;
}

result<void, errc> read_exact(file& f, uint64_t pos, std::span<uint8_t> out) {
    auto n = f.read_at(pos, out);
    if (!n) return fail(n.error());
    if (*n != out.size()) return fail(errc::io_error);
    return {};
}

result<std::string, errc> read_small_file(file_system& fs, const std::string& path) {
    auto f = fs.open(path, open_mode::read_only);
    if (!f) return fail(f.error());
    auto size = (*f)->size();
    if (!size) return fail(size.error());
    // Checkpoints and metadata are small; a huge one is not ours.
    if (*size > (64u << 20)) return fail(errc::bad_checkpoint);
    std::string s(*size, '\0');
    auto n = (*f)->read_at(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(s.data()), s.size()));
    if (!n) return fail(n.error());
    s.resize(*n);
    return s;
}

result<void, errc> write_file_atomically(file_system& fs, const std::string& dir, const std::string& name,
                                         std::string_view content) {
    const std::string path = dir + "/" + name;
    const std::string tmp = path + ".tmp";
    {
        auto f = fs.open(tmp, open_mode::create);
        if (!f) return fail(f.error());
        if (auto r = (*f)->truncate(0); !r) return r;
        auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()), content.size());
        if (auto r = (*f)->write_at(0, bytes); !r) return r;
        if (auto r = (*f)->sync(); !r) return r;
    }
    if (auto r = fs.rename(tmp, path); !r) return r;
    return fs.sync_dir(dir);
}

}  // namespace fjord::storage
