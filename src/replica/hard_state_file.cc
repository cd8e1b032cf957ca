#include "replica/hard_state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <span>

#include "base/endian.h"
#include "protocol/crc32c.h"

namespace fjord::replica {

namespace {

constexpr size_t slot_bytes = 64;
constexpr uint32_t slot_magic = 0x464a5153;  // "FJQS"
constexpr size_t slot_crc_at = 28;

std::array<uint8_t, slot_bytes> encode_slot(uint64_t seq, const raft::hard_state& hs) {
    std::array<uint8_t, slot_bytes> b{};
    store_be<uint32_t>(b.data(), slot_magic);
    store_be<uint32_t>(b.data() + 4, 0);
    store_be<uint64_t>(b.data() + 8, seq);
    store_be<uint32_t>(b.data() + 16, static_cast<uint32_t>(hs.term.get()));
    store_be<uint32_t>(b.data() + 20, static_cast<uint32_t>(hs.vote ? hs.vote->get() : -1));
    store_be<uint32_t>(b.data() + 24, 0);
    store_be<uint32_t>(b.data() + slot_crc_at, protocol::crc32c(std::span<const uint8_t>(b.data(), slot_crc_at)));
    return b;
}

struct slot {
    uint64_t seq = 0;
    raft::hard_state hs;
};

std::optional<slot> decode_slot(const uint8_t* b) {
    if (load_be<uint32_t>(b) != slot_magic || load_be<uint32_t>(b + 4) != 0) return std::nullopt;
    if (load_be<uint32_t>(b + slot_crc_at) != protocol::crc32c(std::span<const uint8_t>(b, slot_crc_at)))
        return std::nullopt;
    slot s;
    s.seq = load_be<uint64_t>(b + 8);
    const auto term = static_cast<int32_t>(load_be<uint32_t>(b + 16));
    const auto vote = static_cast<int32_t>(load_be<uint32_t>(b + 20));
    if (term < 0 || vote < -1) return std::nullopt;
    s.hs.term = raft::term_id(term);
    if (vote >= 0) s.hs.vote = raft::node_id(vote);
    return s;
}

}  // namespace

result<std::unique_ptr<hard_state_file>, int> hard_state_file::open(const std::string& path,
                                                                    std::optional<raft::hard_state>& state,
                                                                    std::string& detail) {
    state.reset();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int e = errno;
        detail = fmt::format("{}: {}", path, std::strerror(e));
        return fail(e);
    }
    std::array<uint8_t, 2 * slot_bytes> buf{};
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
        const int e = errno;
        detail = fmt::format("{}: {}", path, std::strerror(e));
        ::close(fd);
        return fail(e);
    }
    std::optional<slot> best;
    for (size_t i = 0; i < 2; ++i) {
        if (static_cast<size_t>(n) < (i + 1) * slot_bytes) break;
        auto s = decode_slot(buf.data() + i * slot_bytes);
        if (s && (!best || s->seq > best->seq)) best = s;
    }
    if (n > 0 && !best) {
        detail = fmt::format("{}: no valid slot ({} bytes): the vote of this replica cannot be trusted", path, n);
        ::close(fd);
        return fail(EIO);
    }
    if (best) state = best->hs;
    return std::unique_ptr<hard_state_file>(new hard_state_file(path, fd, best ? best->seq : 0));
}

hard_state_file::~hard_state_file() {
    if (fd_ >= 0) ::close(fd_);
}

bool hard_state_file::write(const raft::hard_state& hs, storage::io_engine& engine, std::function<void(int)> done) {
    const uint64_t seq = seq_ + 1;
    auto bytes = encode_slot(seq, hs);
    const off_t at = static_cast<off_t>((seq % 2) * slot_bytes);
    // A 64-byte pwrite into the page cache; the fdatasync goes to the engine.
    if (::pwrite(fd_, bytes.data(), bytes.size(), at) != static_cast<ssize_t>(bytes.size())) {
        const int e = errno != 0 ? errno : EIO;
        done(-e);
        return true;
    }
    if (!engine.fdatasync(fd_, [done = std::move(done)](int64_t r) { done(r < 0 ? static_cast<int>(r) : 0); })) {
        return false;
    }
    seq_ = seq;
    return true;
}

}  // namespace fjord::replica
