#include "storage/log.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/assert.h"
#include "base/endian.h"
#include "protocol/crc32c.h"
#include "protocol/record_batch.h"

namespace fjord::storage {

namespace proto = fjord::protocol;

namespace {

constexpr size_t scan_chunk_bytes = 1 << 20;
// The smallest batch_length: a header without records.
constexpr int32_t min_batch_length = static_cast<int32_t>(proto::batch_header_size - proto::batch_log_overhead);
constexpr uint64_t max_segment_position = uint64_t{INT32_MAX};

}  // namespace

struct log::scan_outcome {
    uint64_t end = 0;         // position after the last valid batch
    int64_t next_offset = 0;  // offset after the last valid batch
    bool clean = true;        // every batch up to the segment's end was valid
    bool io_failed = false;
    errc io_error = errc::io_error;
    std::string problem;  // why not clean
};

log::log(file_cache& files, std::string dir, topic_partition tp, log_config cfg)
    : files_(files), fs_(files.fs()), dir_(std::move(dir)), tp_(std::move(tp)), cfg_(cfg) {}

log::~log() {
    for (auto& s : segments_) {
        files_.forget(s->log_file);
        files_.forget(s->offset_index_file);
        files_.forget(s->time_index_file);
    }
}

std::string log::path_of(const segment& s, std::string_view ext) const {
    return dir_ + "/" + segment_file_name(s.base_offset, ext);
}

result<std::shared_ptr<file>, errc> log::log_file(segment& s) {
    return files_.get(s.log_file, path_of(s, ".log"), open_mode::read_write);
}

size_t log::segment_index_for(int64_t offset) const {
    FJORD_ASSERT(!segments_.empty(), "log {} without segments", dir_);
    auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                               [](int64_t o, const std::unique_ptr<segment>& s) { return o < s->base_offset; });
    return it == segments_.begin() ? 0 : static_cast<size_t>(it - segments_.begin()) - 1;
}

errc log::go_offline(errc e, std::string detail) {
    if (!offline_) {
        offline_ = true;
        offline_detail_ = fmt::format("{}: {}", describe(e), detail);
    }
    return e;
}

int64_t log::size_bytes() const {
    int64_t n = 0;
    for (const auto& s : segments_) n += static_cast<int64_t>(s->size_bytes);
    return n;
}

size_t log::memory_bytes() const {
    size_t n = sizeof(log) + dir_.capacity() + tp_.topic.capacity() + offline_detail_.capacity();
    n += segments_.capacity() * sizeof(segments_[0]);
    for (const auto& s : segments_) n += sizeof(segment) + s->index_memory_bytes();
    n += epochs_.entries().capacity() * sizeof(epoch_entry);
    return n;
}

// ---------------------------------------------------------------------------
// Scanning and indexes

// Planning reads (index files, batch headers, index tails): inline, or, for
// plan_read_async, from bytes fetched beforehand. A read that is not there
// records what to fetch (at least `window` bytes, up to `end`) and fails;
// callers check missed() before acting on an error.
struct log::plan_io {
    plan_fetches* async = nullptr;
    size_t walk_extra = 0;  // a header walk's window also covers this many bytes of data

    enum kind : uint8_t { log_bytes, index_bytes, time_bytes };

    bool missed() const { return async != nullptr && async->missed_; }

    result<void, errc> read(uint64_t serial, kind k, const std::shared_ptr<file>& f, uint64_t pos,
                            std::span<uint8_t> out, uint64_t end, size_t window = 0) {
        if (async == nullptr) return read_exact(*f, pos, out);
        if (out.empty()) return {};  // an empty index file: nothing to fetch
        for (const auto& w : async->windows_) {
            if (w.serial == serial && w.kind == k && w.position <= pos && pos - w.position <= w.bytes.size() &&
                out.size() <= w.bytes.size() - (pos - w.position)) {
                std::memcpy(out.data(), w.bytes.data() + (pos - w.position), out.size());
                return {};
            }
        }
        size_t len = out.size();
        window = std::min(window, async->fetch_limit_);
        if (window > len && end > pos) len = std::max(len, static_cast<size_t>(std::min<uint64_t>(window, end - pos)));
        async->missed_ = true;
        async->fetch_ = plan_fetches::request{f, pos, len};
        async->fetch_serial_ = serial;
        async->fetch_kind_ = k;
        return fail(errc::io_error);
    }
};

// Where a scan stopped for want of bytes (plan_read_async), to resume there.
struct log::scan_state {
    bool active = false;
    uint64_t pos = 0;
    size_t chunk = 0;
    bool first = true;
    scan_outcome out;
};

struct log::scan_io {
    plan_io& io;
    uint64_t serial;  // of the segment whose file is read
    std::shared_ptr<file> f;
    scan_state* st;
};

// An index load in progress across planning rounds (plan_read_async): built
// in a scratch segment, installed when complete.
struct plan_fetches::index_load {
    uint64_t serial = 0;
    uint64_t generation = 0;
    uint64_t size_bytes = 0;
    bool rebuild = false;
    bool decoded = false;  // index files read and checked; `ok`: usable
    bool ok = false;
    bool reset = false;  // the scratch indexes were emptied for a full scan
    std::unique_ptr<segment> seg;
    log::scan_state sc;
};

plan_fetches::plan_fetches() = default;
plan_fetches::~plan_fetches() = default;

void plan_fetches::supply(std::vector<uint8_t> bytes) {
    FJORD_ASSERT(missed_, "bytes supplied without a fetch");
    if (bytes.size() < fetch_.length) short_read_ = true;
    // The latest few: a resumed load or walk needs only the newest; the
    // index files are read once each, just before the log window.
    constexpr size_t max_windows = 3;
    if (windows_.size() >= max_windows) windows_.erase(windows_.begin());
    windows_.push_back(window{fetch_serial_, fetch_kind_, fetch_.position, std::move(bytes)});
    fetch_.f.reset();
    missed_ = false;
    ++rounds_;
}

log::scan_outcome log::scan(segment& s, uint64_t from, int64_t expected_next, bool index, bool first_indexed,
                            bool assign_epochs, scan_io* sio) {
    scan_outcome out;
    out.end = from;
    out.next_offset = expected_next;
    std::shared_ptr<file> file_ptr;
    if (sio != nullptr) {
        file_ptr = sio->f;
    } else {
        auto f = log_file(s);
        if (!f) {
            out.clean = false;
            out.io_failed = true;
            out.io_error = f.error();
            out.problem = fmt::format("{}: open failed: {}", path_of(s, ".log"), describe(f.error()));
            return out;
        }
        file_ptr = std::move(f).value();
    }
    plan_io inline_io;
    plan_io& io = sio != nullptr ? sio->io : inline_io;
    const uint64_t serial = sio != nullptr ? sio->serial : s.serial;
    scan_state* st = sio != nullptr ? sio->st : nullptr;
    const std::string where = path_of(s, ".log");
    auto problem = [&](uint64_t pos, std::string why) {
        out.clean = false;
        out.problem = fmt::format("{}: position {} (offset {}): {}", where, pos, out.next_offset, why);
    };
    size_t chunk = scan_chunk_bytes;
    uint64_t pos = from;
    bool first = true;
    if (st != nullptr && st->active) {
        out = st->out;
        pos = st->pos;
        chunk = st->chunk;
        first = st->first;
    }
    // Stops for want of bytes: resumed from here once they are fetched.
    auto suspend = [&](uint64_t at) {
        if (st != nullptr) *st = scan_state{true, at, chunk, first, out};
        out.clean = false;
        out.io_failed = true;
        return out;
    };
    while (pos < s.size_bytes) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk, s.size_bytes - pos));
        std::vector<uint8_t> buf(want);
        if (auto r = io.read(serial, plan_io::log_bytes, file_ptr, pos, buf, s.size_bytes, want); !r) {
            if (io.missed()) return suspend(pos);
            out.clean = false;
            out.io_failed = true;
            out.io_error = r.error();
            out.problem = fmt::format("{}: read at {} failed: {}", where, pos, describe(r.error()));
            return out;
        }
        proto::batch_splitter split(shared_bytes::adopt(std::move(buf)));
        while (auto b = split.next()) {
            const uint64_t at = pos + split.consumed() - b->size();
            if (auto v = b->validate(proto::validate_options{.dense_offsets = false}); !v) {
                problem(at, fmt::format("invalid batch: {}", proto::describe(v.error())));
                return out;
            }
            const int64_t base = b->base_offset(), last = b->last_offset();
            if (base < out.next_offset || last < base || last - s.base_offset > INT32_MAX) {
                problem(at, fmt::format("batch offsets [{}, {}] do not follow {} in segment {}", base, last,
                                        out.next_offset, s.base_offset));
                return out;
            }
            if (at + b->size() > max_segment_position) {
                problem(at, "segment larger than 2 GiB");
                return out;
            }
            if (index) {
                s.index_batch({at, static_cast<uint32_t>(b->size()), base, last, b->max_timestamp()},
                              cfg_.index_interval_bytes, !(first && first_indexed));
            }
            first = false;
            const int32_t epoch = b->partition_leader_epoch();
            if (assign_epochs && epoch >= 0 && epoch > epochs_.latest_epoch()) epochs_.assign(epoch, base);
            out.next_offset = last + 1;
            out.end = at + b->size();
        }
        if (split.error()) {
            problem(pos + split.consumed(), fmt::format("invalid batch header: {}", proto::describe(*split.error())));
            return out;
        }
        const uint64_t left_at = pos + split.consumed();
        if (left_at == pos + want) {
            pos = left_at;
            continue;
        }
        // A batch straddles the chunk: read it whole, unless the segment ends first.
        if (pos + want == s.size_bytes) {
            problem(left_at, fmt::format("partial batch ({} bytes at the end)", s.size_bytes - left_at));
            return out;
        }
        uint8_t head[proto::batch_log_overhead];
        if (auto r = io.read(serial, plan_io::log_bytes, file_ptr, left_at, head, s.size_bytes, chunk); !r) {
            if (io.missed()) return suspend(left_at);
            out.clean = false;
            out.io_failed = true;
            out.io_error = r.error();
            out.problem = fmt::format("{}: read at {} failed", where, left_at);
            return out;
        }
        const int32_t length = load_be<int32_t>(head + proto::batch_length_offset);
        if (length < min_batch_length) {
            problem(left_at, fmt::format("batch length {}", length));
            return out;
        }
        const uint64_t need = proto::batch_log_overhead + static_cast<uint64_t>(length);
        if (need > s.size_bytes - left_at) {
            problem(left_at, fmt::format("partial batch ({} of {} bytes)", s.size_bytes - left_at, need));
            return out;
        }
        chunk = std::max<size_t>(chunk, static_cast<size_t>(need));
        pos = left_at;
    }
    return out;
}

namespace {
// An index file's bytes, empty if it does not exist. One larger than
// `max_size` is not read at all (an attacker or a corrupt size must not pick
// the allocation): it counts as missing, and the index is rebuilt from the log.
template <typename Read>
result<std::vector<uint8_t>, errc> read_index_file(file_system& fs, const std::string& path, uint64_t max_size,
                                                   bool& exists, Read&& read) {
    exists = false;
    auto f = fs.open(path, open_mode::read_only);
    if (!f) {
        if (f.error() == errc::not_found) return std::vector<uint8_t>{};
        return fail(f.error());
    }
    exists = true;
    auto size = (*f)->size();
    if (!size) return fail(size.error());
    if (*size > max_size) {
        exists = false;
        return std::vector<uint8_t>{};
    }
    std::vector<uint8_t> bytes(*size);
    if (auto r = read(*f, bytes); !r) return fail(r.error());
    return bytes;
}
}  // namespace

result<void, errc> log::load_indexes(segment& s) {
    plan_io io;
    return load_indexes(s, io, false);
}

// Reads and checks the index files (unless `rebuild`), then scans the log
// from the last entry (or, if they are unusable or `rebuild`, from the
// start) into a scratch segment; installs the result into `s` once complete.
// With an asynchronous plan_io every step can stop for bytes and resume.
result<void, errc> log::load_indexes(segment& s, plan_io& io, bool rebuild) {
    if (s.indexes_loaded && !rebuild) return {};
    plan_fetches::index_load local;
    plan_fetches::index_load* ld = &local;
    if (io.async != nullptr) {
        auto& kept = io.async->load_;
        if (!kept || kept->serial != s.serial || kept->generation != generation_ || kept->size_bytes != s.size_bytes ||
            kept->rebuild != rebuild) {
            kept = std::make_unique<plan_fetches::index_load>();
        }
        ld = kept.get();
    }
    if (!ld->seg) {
        ld->serial = s.serial;
        ld->generation = generation_;
        ld->size_bytes = s.size_bytes;
        ld->rebuild = rebuild;
        ld->seg = std::make_unique<segment>(s.base_offset);
        ld->seg->size_bytes = s.size_bytes;
        ld->seg->indexes_loaded = true;
    }
    segment& t = *ld->seg;
    auto done = [&] {
        if (io.async != nullptr) io.async->load_.reset();
    };
    auto lf = log_file(s);
    if (!lf) {
        done();
        return fail(lf.error());
    }
    if (!rebuild && !ld->decoded) {
        bool index_exists = false, time_exists = false;
        // Kafka preallocates active indexes to segment.index.bytes (10 MiB).
        const uint64_t max_index = std::max<uint64_t>(cfg_.segment_index_bytes, uint64_t{10} << 20);
        auto read_as = [&](plan_io::kind k) {
            return [&io, &s, k](const std::shared_ptr<file>& f, std::span<uint8_t> out) {
                return io.read(s.serial, k, f, 0, out, out.size());
            };
        };
        auto ib = read_index_file(fs_, path_of(s, ".index"), max_index, index_exists, read_as(plan_io::index_bytes));
        if (!ib) {
            if (!io.missed()) done();
            return fail(ib.error());
        }
        auto tb = read_index_file(fs_, path_of(s, ".timeindex"), max_index, time_exists, read_as(plan_io::time_bytes));
        if (!tb) {
            if (!io.missed()) done();
            return fail(tb.error());
        }
        bool ok = (s.size_bytes == 0 || (index_exists && time_exists)) &&
                  decode_offset_index(*ib, s.size_bytes, t.offsets) && decode_time_index(*tb, t.times);
        if (ok && !t.offsets.empty()) {
            // The last entry must name the batch at its position (an index that
            // outlived a truncation of its log does not).
            const auto& e = t.offsets.back();
            uint8_t head[proto::batch_header_size];
            if (static_cast<uint64_t>(e.position) + sizeof head > s.size_bytes) {
                ok = false;
            } else if (auto r = io.read(s.serial, plan_io::log_bytes, *lf, static_cast<uint64_t>(e.position), head,
                                        s.size_bytes, scan_chunk_bytes);
                       !r) {
                if (!io.missed()) done();
                return fail(r.error());
            } else {
                ok = load_be<int64_t>(head) + load_be<int32_t>(head + 23) == s.base_offset + e.relative_offset &&
                     head[16] == 2;
            }
        }
        if (ok && !t.times.empty() && t.times.back().relative_offset > INT32_MAX - 1) ok = false;
        ld->decoded = true;
        ld->ok = ok;
        if (ok) {
            t.offsets_on_disk = t.offsets.size();
            t.times_on_disk = t.times.size();
            if (!t.times.empty()) {
                t.max_timestamp = t.times.back().timestamp;
                t.offset_of_max_timestamp = t.base_offset + t.times.back().relative_offset;
            }
        }
    }
    const bool full = rebuild || !ld->ok;
    if (full && !ld->reset) {
        ld->reset = true;
        t.offsets.clear();
        t.times.clear();
        t.offsets_on_disk = t.times_on_disk = 0;
        t.max_timestamp = no_timestamp;
        t.offset_of_max_timestamp = -1;
        t.bytes_since_index_entry = 0;
        t.next_offset = t.base_offset;
    }
    const bool has_entry = !full && !t.offsets.empty();
    const uint64_t resume = has_entry ? static_cast<uint64_t>(t.offsets.back().position) : 0;
    scan_io sio{io, s.serial, *lf, &ld->sc};
    auto out = scan(t, resume, t.base_offset, true, has_entry, false, &sio);
    if (io.missed()) return fail(errc::io_error);
    if (out.io_failed) {
        done();
        return fail(out.io_error);
    }
    if (!out.clean) {
        offline_detail_scratch_ = out.problem;
        done();
        return fail(errc::corrupt_log);
    }
    // Complete: install.
    s.indexes_loaded = true;
    s.offsets = std::move(t.offsets);
    s.times = std::move(t.times);
    s.offsets_on_disk = t.offsets_on_disk;
    s.times_on_disk = t.times_on_disk;
    s.max_timestamp = t.max_timestamp;
    s.offset_of_max_timestamp = t.offset_of_max_timestamp;
    s.bytes_since_index_entry = t.bytes_since_index_entry;
    s.next_offset = t.next_offset;
    done();
    if (full) {
        (void)rewrite_index_files(s);
    } else {
        write_index_entries(s);
    }
    return {};
}

result<void, errc> log::rebuild_indexes(segment& s) {
    plan_io io;
    return load_indexes(s, io, true);
}

void log::write_index_entries(segment& s) {
    // Best effort: index files are rebuilt from the log if they fall behind.
    std::vector<uint8_t> bytes;
    if (s.offsets_on_disk < s.offsets.size()) {
        encode_offset_index(std::span(s.offsets).subspan(s.offsets_on_disk), bytes);
        auto f = files_.get(s.offset_index_file, path_of(s, ".index"), open_mode::create);
        if (f && (*f)->write_at(s.offsets_on_disk * offset_index_entry_size, bytes))
            s.offsets_on_disk = s.offsets.size();
    }
    if (s.times_on_disk < s.times.size()) {
        encode_time_index(std::span(s.times).subspan(s.times_on_disk), bytes);
        auto f = files_.get(s.time_index_file, path_of(s, ".timeindex"), open_mode::create);
        if (f && (*f)->write_at(s.times_on_disk * time_index_entry_size, bytes)) s.times_on_disk = s.times.size();
    }
}

result<void, errc> log::rewrite_index_files(segment& s) {
    std::vector<uint8_t> bytes;
    encode_offset_index(s.offsets, bytes);
    auto f = files_.get(s.offset_index_file, path_of(s, ".index"), open_mode::create);
    if (!f) return fail(f.error());
    if (auto r = (*f)->truncate(0); !r) return r;
    if (auto r = (*f)->write_at(0, bytes); !r) return r;
    s.offsets_on_disk = s.offsets.size();
    encode_time_index(s.times, bytes);
    auto t = files_.get(s.time_index_file, path_of(s, ".timeindex"), open_mode::create);
    if (!t) return fail(t.error());
    if (auto r = (*t)->truncate(0); !r) return r;
    if (auto r = (*t)->write_at(0, bytes); !r) return r;
    s.times_on_disk = s.times.size();
    return {};
}

result<void, errc> log::ensure_indexes(segment& s) {
    plan_io io;
    return ensure_indexes(s, io);
}

result<void, errc> log::ensure_indexes(segment& s, plan_io& io) {
    auto r = load_indexes(s, io, false);
    if (!r && r.error() == errc::corrupt_log) return fail(go_offline(errc::corrupt_log, offline_detail_scratch_));
    return r;
}

// Position of the first batch of `s` whose last offset is >= `offset`
// (s.size_bytes if none); its base offset in *batch_base, its size in *batch_size.
result<uint64_t, errc> log::find_batch(segment& s, int64_t offset, int64_t* batch_base, uint32_t* batch_size,
                                       plan_io& io) {
    // The headers of one walk are read in windows this large (async plans).
    constexpr size_t walk_window_bytes = size_t{64} << 10;
    plan_fetches::walk* w = nullptr;
    if (io.async != nullptr) {
        for (const auto& d : io.async->found_) {
            if (d.serial == s.serial && d.generation == generation_ && d.offset == offset && s.indexes_loaded) {
                *batch_base = d.batch_base;
                *batch_size = d.batch_size;
                return d.pos;
            }
        }
        w = &io.async->walk_;
        if (!w->valid || w->serial != s.serial || w->generation != generation_ || w->offset != offset) {
            *w = plan_fetches::walk{true, s.serial, generation_, offset};
        }
    }
    if (auto r = ensure_indexes(s, io); !r) return fail(r.error());
    auto f = log_file(s);
    if (!f) return fail(f.error());
    for (int attempt = w != nullptr ? w->attempt : 0; attempt < 2; ++attempt) {
        uint64_t pos = s.lookup_position(offset);
        bool from_entry = pos > 0;
        if (w != nullptr && w->rebuild_pending) {
            // Resuming the rebuild below.
        } else if (w != nullptr && w->resume) {
            pos = w->pos;
            from_entry = w->from_entry;
        }
        bool stale_index = false;
        uint8_t head[proto::batch_header_size];
        while (w == nullptr || !w->rebuild_pending) {
            if (pos >= s.size_bytes) break;
            if (s.size_bytes - pos < sizeof head) {
                stale_index = true;
                break;
            }
            if (auto r = io.read(s.serial, plan_io::log_bytes, *f, pos, head, s.size_bytes,
                                 walk_window_bytes + std::min(io.walk_extra, max_read_bytes));
                !r) {
                if (io.missed()) {
                    w->resume = true;
                    w->pos = pos;
                    w->from_entry = from_entry;
                }
                return fail(r.error());
            }
            const int32_t length = load_be<int32_t>(head + proto::batch_length_offset);
            if (head[16] != 2 || length < min_batch_length ||
                static_cast<uint64_t>(length) + proto::batch_log_overhead > s.size_bytes - pos) {
                stale_index = true;
                break;
            }
            const int64_t base = load_be<int64_t>(head);
            const int64_t last = base + load_be<int32_t>(head + 23);
            if (from_entry) {
                // The entry must name this batch.
                auto it =
                    std::upper_bound(s.offsets.begin(), s.offsets.end(), offset - s.base_offset,
                                     [](int64_t r, const offset_index_entry& e) { return r < e.relative_offset; });
                if (it == s.offsets.begin() || s.base_offset + std::prev(it)->relative_offset != last) {
                    stale_index = true;
                    break;
                }
                from_entry = false;
            }
            if (last >= offset) {
                *batch_base = base;
                *batch_size = static_cast<uint32_t>(length) + proto::batch_log_overhead;
                if (w != nullptr) {
                    w->valid = false;
                    io.async->found_.push_back({s.serial, generation_, offset, pos, base, *batch_size});
                }
                return pos;
            }
            pos += static_cast<uint64_t>(length) + proto::batch_log_overhead;
        }
        if (!stale_index && (w == nullptr || !w->rebuild_pending)) {
            *batch_base = s.next_offset;
            *batch_size = 0;
            if (w != nullptr) {
                w->valid = false;
                io.async->found_.push_back({s.serial, generation_, offset, s.size_bytes, s.next_offset, 0});
            }
            return s.size_bytes;
        }
        // The index disagrees with the log: rebuild it (validating the segment) once.
        if (attempt == 0) {
            if (w != nullptr) {
                w->attempt = 0;
                w->rebuild_pending = true;
                w->resume = false;
            }
            if (auto r = load_indexes(s, io, true); !r) {
                if (io.missed()) return fail(r.error());
                if (w != nullptr) w->valid = false;
                if (r.error() == errc::corrupt_log) return fail(go_offline(errc::corrupt_log, offline_detail_scratch_));
                return fail(r.error());
            }
            if (w != nullptr) {
                w->attempt = 1;
                w->rebuild_pending = false;
            }
        }
    }
    if (w != nullptr) w->valid = false;
    return fail(go_offline(errc::corrupt_log,
                           fmt::format("{}: no batch boundary at the indexed positions", path_of(s, ".log"))));
}

// ---------------------------------------------------------------------------
// Creating, opening, recovering

result<void, errc> log::new_segment(int64_t base) {
    FJORD_ASSERT(segments_.empty() || base >= segments_.back()->next_offset, "new segment at {} before the end {}",
                 base, segments_.back()->next_offset);
    auto s = std::make_unique<segment>(base);
    s->indexes_loaded = true;
    auto f = files_.get(s->log_file, path_of(*s, ".log"), open_mode::create);
    if (!f) return fail(f.error());
    // A file left over from an earlier life of this offset range is stale.
    if (auto r = (*f)->truncate(0); !r) {
        files_.forget(s->log_file);
        return r;
    }
    // So is a transaction index (its name can outlive a power cut that lost the log's).
    if (auto r = fs_.remove(path_of(*s, ".txnindex")); !r && r.error() != errc::not_found) {
        files_.forget(s->log_file);
        return r;
    }
    s->txn_loaded = true;
    segments_.push_back(std::move(s));
    ++dir_generation_;
    return {};
}

void log::delete_segment_files(segment& s) {
    files_.forget(s.log_file);
    files_.forget(s.offset_index_file);
    files_.forget(s.time_index_file);
    // Best effort: a file that cannot be removed is only wasted space; a
    // segment below the log start is never read.
    for (const char* ext : {".log", ".index", ".timeindex", ".txnindex", ".snapshot"}) {
        (void)fs_.remove(path_of(s, ext));
    }
    ++dir_generation_;
}

result<void, errc> log::write_epoch_checkpoint() {
    return write_file_atomically(fs_, dir_, "leader-epoch-checkpoint", format_epoch_checkpoint(epochs_.entries()));
}

result<std::unique_ptr<log>, errc> log::create(file_cache& files, std::string dir, topic_partition tp, log_config cfg,
                                               const uuid* topic_id, int64_t start_offset) {
    FJORD_ASSERT(start_offset >= 0, "log start {}", start_offset);
    std::unique_ptr<log> l(new log(files, std::move(dir), std::move(tp), cfg));
    file_system& fs = files.fs();
    if (auto r = fs.make_dir(l->dir_); !r) return fail(r.error());
    if (topic_id) {
        if (auto r = write_file_atomically(fs, l->dir_, "partition.metadata", format_partition_metadata(*topic_id)); !r)
            return fail(r.error());
    }
    if (auto r = l->new_segment(start_offset); !r) return fail(r.error());
    l->start_offset_ = l->next_offset_ = l->durable_offset_ = start_offset;
    if (auto r = fs.sync_dir(l->dir_); !r) return fail(r.error());
    l->dir_synced_generation_ = l->dir_generation_;
    auto parent = l->dir_.substr(0, l->dir_.find_last_of('/'));
    if (!parent.empty() && parent != l->dir_) {
        if (auto r = fs.sync_dir(parent); !r) return fail(r.error());
    }
    return l;
}

result<std::unique_ptr<log>, errc> log::open(file_cache& files, std::string dir, topic_partition tp, log_config cfg,
                                             const open_options& opts, std::string& detail,
                                             recovery_report* report_out) {
    recovery_report report_local;
    recovery_report& report = report_out ? *report_out : report_local;
    std::unique_ptr<log> l(new log(files, std::move(dir), std::move(tp), cfg));
    file_system& fs = files.fs();
    if (auto r = recover_compaction_files(fs, l->dir_, detail); !r) return fail(r.error());
    auto names = fs.list_dir(l->dir_);
    if (!names) return fail(names.error());
    std::vector<int64_t> bases;
    for (const auto& name : *names) {
        auto ends_with = [&](std::string_view suffix) {
            return name.size() >= suffix.size() &&
                   name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
        };
        if (ends_with(".tmp") || ends_with(".deleted") || ends_with(".cleaned")) {
            (void)fs.remove(l->dir_ + "/" + name);
            continue;
        }
        int64_t base = 0;
        std::string_view ext;
        if (parse_segment_file_name(name, base, ext) && ext == ".log") bases.push_back(base);
    }
    // A .txnindex without its segment (a power cut kept one name, not the
    // other) would describe markers that are gone.
    std::sort(bases.begin(), bases.end());
    for (const auto& name : *names) {
        int64_t base = 0;
        std::string_view ext;
        if (parse_segment_file_name(name, base, ext) && ext == ".txnindex" &&
            !std::binary_search(bases.begin(), bases.end(), base)) {
            (void)fs.remove(l->dir_ + "/" + name);
            ++l->dir_generation_;
        }
    }
    std::sort(bases.begin(), bases.end());
    for (int64_t base : bases) {
        auto s = std::make_unique<segment>(base);
        auto size = fs.file_size(l->path_of(*s, ".log"));
        if (!size) return fail(size.error());
        s->size_bytes = *size;
        l->segments_.push_back(std::move(s));
    }
    const int64_t wanted_start = std::max<int64_t>(opts.log_start_offset, 0);
    if (l->segments_.empty()) {
        if (auto r = l->new_segment(wanted_start); !r) return fail(r.error());
    }
    // A segment beyond 2 GiB cannot be indexed (positions are int32): not ours.
    for (const auto& s : l->segments_) {
        if (s->size_bytes > max_segment_position) {
            detail =
                fmt::format("{}: {} bytes, beyond the 2 GiB a segment may hold", l->path_of(*s, ".log"), s->size_bytes);
            return fail(errc::corrupt_log);
        }
    }

    // Leader epochs as checkpointed; recovery re-derives those it scans.
    auto text = read_small_file(fs, l->dir_ + "/leader-epoch-checkpoint");
    if (text) {
        auto entries = parse_epoch_checkpoint(*text);
        if (entries) {
            l->epochs_ = epoch_history(std::move(entries).value());
        } else {
            report.detail += "leader-epoch-checkpoint malformed, ignored; ";
            report.epoch_checkpoint_rewritten = true;
        }
    } else if (text.error() != errc::not_found) {
        return fail(text.error());
    }

    const int64_t first_base = l->segments_.front()->base_offset;
    const int64_t recovery_point = std::max(opts.recovery_point, first_base);
    bool need_recovery = !opts.clean_shutdown;
    size_t recover_from = l->segment_index_for(recovery_point);
    int64_t txn_index_from = INT64_MAX;  // where the scan rebuilds .txnindex files
    if (!need_recovery) {
        // Clean: only the last segment's tail is read (and checked).
        auto r = l->load_indexes(l->active());
        if (!r) {
            if (r.error() != errc::corrupt_log) return fail(r.error());
            report.detail += "clean shutdown marker but the last segment's tail is invalid; ";
            need_recovery = true;
            recover_from = l->segments_.size() - 1;
        }
    }
    if (need_recovery) {
        if (l->epochs_.truncate_from_end(l->segments_[recover_from]->base_offset))
            report.epoch_checkpoint_rewritten = true;
        l->start_offset_ = wanted_start;  // recover() tells a restart at the log start from a hole
        txn_index_from = l->segments_[recover_from]->base_offset;
        auto r = l->recover(recover_from, recovery_point, report, detail);
        if (!r) return fail(r.error());
    }
    // Segments whose successor starts at or below the log start are gone
    // (a crash between the log start checkpoint and their deletion).
    while (l->segments_.size() > 1 && l->segments_[1]->base_offset <= wanted_start) {
        l->delete_segment_files(*l->segments_.front());
        l->segments_.erase(l->segments_.begin());
    }
    l->next_offset_ = l->active().next_offset;
    l->start_offset_ = std::min(std::max(wanted_start, l->segments_.front()->base_offset), l->next_offset_);
    if (l->epochs_.truncate_from_end(l->next_offset_)) report.epoch_checkpoint_rewritten = true;
    if (l->epochs_.truncate_from_start(l->start_offset_)) report.epoch_checkpoint_rewritten = true;
    if (report.epoch_checkpoint_rewritten) {
        if (auto r = l->write_epoch_checkpoint(); !r) return fail(r.error());
    }
    for (auto& s : l->segments_) s->synced_bytes = s->size_bytes;
    // After an unclean stop (a process crash, not a power cut) names created
    // since the last directory fsync still show but are not durable: sync
    // them before anything counts on them.
    if (l->dir_generation_ != 0 || need_recovery) {
        if (auto r = fs.sync_dir(l->dir_); !r) return fail(r.error());
    }
    l->dir_synced_generation_ = l->dir_generation_;
    l->durable_offset_ = l->next_offset_;
    if (auto r = l->rebuild_producer_state(detail, txn_index_from); !r) return fail(r.error());
    if (l->offline_) {
        detail = l->offline_detail_;
        return fail(errc::corrupt_log);
    }
    // The .txnindex files the replay rebuilt are durable before anyone counts on them.
    if (auto r = l->sync_txn_indexes(); !r) return fail(r.error());
    if (l->dir_generation_ != l->dir_synced_generation_) {
        if (auto r = fs.sync_dir(l->dir_); !r) return fail(r.error());
        l->dir_synced_generation_ = l->dir_generation_;
    }
    if (opts.cleaner_offset >= 0) l->set_first_dirty_offset(opts.cleaner_offset);
    return l;
}

// Scans segments from `from` on, batch by batch. Bytes that fail validation
// past the recovery point are a torn tail: cut there, with every later
// segment. Below the recovery point they were promised durable: corrupt.
result<void, errc> log::recover(size_t from, int64_t recovery_point, recovery_report& report, std::string& detail) {
    report.scanned = true;
    int64_t expected = segments_[from]->base_offset;
    for (size_t i = from; i < segments_.size(); ++i) {
        segment& s = *segments_[i];
        s.unload_indexes();
        s.indexes_loaded = true;
        clear_txn_index(s);  // re-derived by the producer state replay (open)
        s.next_offset = s.base_offset;
        s.max_timestamp = no_timestamp;
        s.offset_of_max_timestamp = -1;
        s.bytes_since_index_entry = 0;
        ++report.segments_scanned;
        scan_outcome out;
        if (i > from && s.base_offset > expected && expected >= recovery_point && s.base_offset > start_offset_) {
            // A hole past the recovery point: the previous segment's tail was
            // lost while this segment's name survived (its roll was not yet
            // durable). Nothing from here on may be kept, or the log end would
            // jump over the lost offsets. (Holes below the recovery point are
            // compaction's: it checkpoints before it swaps.)
            report.detail += fmt::format("{}: starts at {} after a hole from {}: deleted with later segments; ",
                                         path_of(s, ".log"), s.base_offset, expected);
            while (segments_.size() > i) {
                segment& later = *segments_.back();
                report.bytes_truncated += later.size_bytes;
                ++report.segments_deleted;
                delete_segment_files(later);
                segments_.pop_back();
            }
            break;
        }
        if (s.base_offset < expected) {
            out.clean = false;
            out.end = 0;
            out.next_offset = s.base_offset;
            out.problem = fmt::format("{}: segment starts at {} below the previous segment's end {}",
                                      path_of(s, ".log"), s.base_offset, expected);
        } else {
            out = scan(s, 0, s.base_offset, true, false, true);
            if (out.io_failed) {
                detail = out.problem;
                return fail(out.io_error);
            }
        }
        if (!out.clean) {
            const int64_t lost_from = out.next_offset;
            if (lost_from < recovery_point) {
                detail = fmt::format("{} (below the recovery point {}: data promised durable is corrupt)", out.problem,
                                     recovery_point);
                return fail(errc::corrupt_log);
            }
            report.bytes_truncated += s.size_bytes - out.end;
            report.detail += fmt::format("truncated at {}; ", out.problem);
            auto f = log_file(s);
            if (!f) return fail(f.error());
            if (auto r = (*f)->truncate(out.end); !r) return r;
            s.size_bytes = out.end;
            while (segments_.size() > i + 1) {
                segment& later = *segments_.back();
                report.bytes_truncated += later.size_bytes;
                ++report.segments_deleted;
                delete_segment_files(later);
                segments_.pop_back();
            }
        }
        (void)rewrite_index_files(s);
        // What recovery keeps must be durable before anyone counts on it.
        auto f = log_file(s);
        if (!f) return fail(f.error());
        if (auto r = (*f)->sync(); !r) return r;
        expected = s.next_offset;
        if (!out.clean) break;
    }
    return {};
}

// ---------------------------------------------------------------------------
// Append

bool log::should_roll(const segment& s, uint64_t bytes, int64_t last_offset, int64_t now_ms) const {
    if (s.size_bytes == 0) return false;
    return s.size_bytes + bytes > cfg_.segment_bytes || s.size_bytes + bytes > max_segment_position ||
           (s.first_append_ms >= 0 && now_ms - s.first_append_ms > cfg_.segment_ms) ||
           s.index_full(cfg_.segment_index_bytes) || last_offset - s.base_offset > INT32_MAX;
}

result<void, errc> log::roll(int64_t now_ms) {
    if (offline_) return fail(errc::log_offline);
    if (active().size_bytes == 0) return {};
    segment& old = active();
    old.seal_time_index();
    write_index_entries(old);
    write_producer_snapshot(false);
    return new_segment(next_offset_);
}

result<append_result, errc> log::append(std::span<uint8_t> batches, const append_options& opts) {
    if (offline_) return fail(errc::log_offline);
    // Pass 1: check every batch before touching anything.
    int64_t next = next_offset_;
    int64_t first_offset = -1;
    int32_t latest = epochs_.latest_epoch();
    // Every epoch that starts in this append (a follower may receive several
    // at once); empty, and so no allocation, in the common case.
    std::vector<epoch_entry> new_epochs;
    size_t pos = 0;
    int batches_count = 0;
    while (pos < batches.size()) {
        const uint8_t* p = batches.data() + pos;
        const size_t left = batches.size() - pos;
        if (left < proto::batch_header_size) return fail(errc::invalid_batch);
        const int32_t length = load_be<int32_t>(p + proto::batch_length_offset);
        if (length < min_batch_length || static_cast<size_t>(length) > left - proto::batch_log_overhead || p[16] != 2)
            return fail(errc::invalid_batch);
        const size_t n = proto::batch_log_overhead + static_cast<size_t>(length);
        const uint32_t crc = proto::crc32c(
            std::span<const uint8_t>(p + proto::batch_attributes_offset, n - proto::batch_attributes_offset));
        if (crc != load_be<uint32_t>(p + proto::batch_crc_offset)) return fail(errc::invalid_batch);
        const int32_t last_delta = load_be<int32_t>(p + 23);
        const int32_t count = load_be<int32_t>(p + 57);
        if (last_delta < 0 || count < 0) return fail(errc::invalid_batch);
        const int64_t base = opts.assign_offsets ? next : load_be<int64_t>(p);
        if (!opts.assign_offsets) {
            if (base < next) return fail(errc::offset_regression);
            const int32_t epoch = load_be<int32_t>(p + 12);
            if (epoch >= 0) {
                if (epoch < latest) return fail(errc::epoch_regression);
                if (epoch > latest) {
                    new_epochs.push_back(epoch_entry{epoch, base});
                    latest = epoch;
                }
            }
        }
        if (base > INT64_MAX - last_delta - 1) return fail(errc::invalid_batch);
        if (first_offset < 0) first_offset = base;
        next = base + last_delta + 1;
        pos += n;
        ++batches_count;
    }
    if (batches_count == 0) return fail(errc::invalid_batch);
    if (opts.assign_offsets && opts.leader_epoch >= 0) {
        if (opts.leader_epoch < latest) return fail(errc::epoch_regression);
        if (opts.leader_epoch > latest) new_epochs.push_back(epoch_entry{opts.leader_epoch, first_offset});
    }
    const uint64_t total = batches.size();
    if (total > max_segment_position) return fail(errc::invalid_batch);

    if (should_roll(active(), total, next - 1, opts.now_ms)) {
        if (auto r = roll(opts.now_ms); !r) return fail(r.error());
    }
    segment& s = active();
    // The epoch history is written before the data (as Kafka does when a
    // leader is elected): an epoch entry without batches is harmless.
    if (!new_epochs.empty()) {
        epoch_history before = epochs_;
        for (const auto& e : new_epochs) epochs_.assign(e.epoch, e.start_offset);
        if (auto r = write_epoch_checkpoint(); !r) {
            epochs_ = std::move(before);
            return fail(r.error());
        }
    }

    // Pass 2: the broker-owned fields.
    int64_t append_time = -1;
    if (opts.assign_offsets) {
        int64_t o = next_offset_;
        for (pos = 0; pos < batches.size();) {
            const size_t n =
                proto::batch_log_overhead + load_be<uint32_t>(batches.data() + pos + proto::batch_length_offset);
            auto one = batches.subspan(pos, n);
            proto::set_base_offset(one, o);
            if (opts.leader_epoch >= 0) proto::set_partition_leader_epoch(one, opts.leader_epoch);
            if (cfg_.log_append_time) {
                proto::set_log_append_time(one, opts.now_ms);
                append_time = opts.now_ms;
            }
            o += load_be<int32_t>(one.data() + 23) + 1;
            pos += n;
        }
    }

    auto f = log_file(s);
    if (!f) return fail(f.error());
    if (auto r = (*f)->write_at(s.size_bytes, batches); !r) {
        // Whatever part landed is beyond size_bytes: never read, overwritten
        // by the next append, and cut by recovery. Trim it if we can.
        (void)(*f)->truncate(s.size_bytes);
        return fail(r.error());
    }
    if (s.first_append_ms < 0) s.first_append_ms = opts.now_ms;
    for (pos = 0; pos < batches.size();) {
        const uint8_t* p = batches.data() + pos;
        const uint32_t n = proto::batch_log_overhead + load_be<uint32_t>(p + proto::batch_length_offset);
        const int64_t base = load_be<int64_t>(p);
        s.index_batch({s.size_bytes + pos, n, base, base + load_be<int32_t>(p + 23),
                       load_be<int64_t>(p + proto::batch_max_timestamp_offset)},
                      cfg_.index_interval_bytes);
        track_producer(batches.subspan(pos, n), INT64_MIN);
        pos += n;
    }
    s.size_bytes += total;
    FJORD_ASSERT(s.next_offset == next, "segment end {} after append, expected {}", s.next_offset, next);
    next_offset_ = next;
    write_index_entries(s);
    return append_result{first_offset, next - 1, append_time};
}

// ---------------------------------------------------------------------------
// Read

result<read_plan, errc> log::plan_segment(size_t i, int64_t want, size_t budget, bool first, int64_t max_offset,
                                          plan_io& io) {
    segment& s = *segments_[i];
    read_plan p;
    p.max_offset = max_offset;
    p.generation = generation_;
    p.segment_base = s.base_offset;
    if (s.size_bytes == 0) return p;
    int64_t batch_base = 0;
    uint32_t batch_size = 0;
    io.walk_extra = budget;
    auto pos = find_batch(s, want, &batch_base, &batch_size, io);
    if (!pos) return fail(pos.error());
    if (*pos >= s.size_bytes) return p;
    const size_t len = static_cast<size_t>(
        std::min<uint64_t>(first ? std::max<size_t>(budget, batch_size) : budget, s.size_bytes - *pos));
    if (len < proto::batch_header_size) return p;
    auto f = log_file(s);
    if (!f) return fail(f.error());
    p.f = std::move(f).value();
    p.position = *pos;
    p.length = len;
    p.expect = first ? batch_base : want;
    // The walk's window may already hold the bytes (async plans): no second read.
    if (io.async != nullptr) {
        for (const auto& w : io.async->windows_) {
            if (w.serial == s.serial && w.kind == plan_io::log_bytes && w.position <= p.position &&
                p.position - w.position <= w.bytes.size() && len <= w.bytes.size() - (p.position - w.position)) {
                const size_t at = static_cast<size_t>(p.position - w.position);
                p.prefetched = shared_bytes::copy_of(std::span<const uint8_t>(w.bytes.data() + at, len));
                break;
            }
        }
    }
    return p;
}

result<size_t, errc> log::accept_chunk(const read_plan& p, shared_bytes bytes, read_result& r, bool& stop) {
    proto::batch_splitter split(bytes);
    size_t accepted = 0;
    int64_t expect = p.expect;
    const std::string where = fmt::format("{:020d}.log", p.segment_base);
    while (auto b = split.next()) {
        if (!b->crc_ok() || b->base_offset() < expect || b->last_offset() < b->base_offset()) {
            return fail(go_offline(errc::corrupt_log,
                                   fmt::format("{}/{}: position {}: batch [{}, {}] {} (expected "
                                               "offset {})",
                                               dir_, where, p.position + accepted, b->base_offset(), b->last_offset(),
                                               b->crc_ok() ? "out of order" : "fails its CRC", expect)));
        }
        if (b->last_offset() >= p.max_offset) {
            stop = true;
            break;
        }
        accepted += b->size();
        expect = b->last_offset() + 1;
        r.next_offset = expect;
    }
    if (split.error()) {
        return fail(go_offline(errc::corrupt_log, fmt::format("{}/{}: position {}: {}", dir_, where,
                                                              p.position + accepted, proto::describe(*split.error()))));
    }
    if (accepted > 0) {
        r.chunks.push_back(bytes.slice(0, accepted));
        r.bytes += accepted;
    }
    return accepted;
}

result<bool, errc> log::start_read(int64_t offset, size_t& max_bytes, int64_t max_offset) const {
    if (offline_) return fail(errc::log_offline);
    // The buffer is sized by max_bytes: never by more than max_read_bytes,
    // whatever a fetch asks for (a first batch larger than that still goes).
    max_bytes = std::min(max_bytes, max_read_bytes);
    if (offset < start_offset_ || offset > next_offset_) return fail(errc::offset_out_of_range);
    return offset < next_offset_ && offset < max_offset;
}

result<read_result, errc> log::read(int64_t offset, size_t max_bytes, int64_t max_offset) {
    auto any = start_read(offset, max_bytes, max_offset);
    if (!any) return fail(any.error());
    read_result r;
    r.next_offset = offset;
    if (!*any) return r;
    bool first = true;
    int64_t want = offset;
    for (size_t i = segment_index_for(offset); i < segments_.size(); ++i) {
        const size_t budget = max_bytes > r.bytes ? max_bytes - r.bytes : 0;
        if (!first && budget < proto::batch_header_size) break;
        plan_io io;
        auto p = plan_segment(i, want, budget, first, max_offset, io);
        if (!p) return fail(p.error());
        if (p->length == 0) continue;
        std::vector<uint8_t> buf(p->length);
        if (auto rr = read_exact(*p->f, p->position, buf); !rr) return fail(rr.error());
        bool stop = false;
        auto accepted = accept_chunk(*p, shared_bytes::adopt(std::move(buf)), r, stop);
        if (!accepted) return fail(accepted.error());
        if (*accepted > 0) first = false;
        if (stop || r.bytes >= max_bytes || p->position + *accepted < segments_[i]->size_bytes) break;
        want = r.next_offset;
    }
    return r;
}

result<read_plan, errc> log::plan_read(int64_t offset, size_t max_bytes, int64_t max_offset) {
    plan_io io;
    return plan_read(offset, max_bytes, max_offset, io);
}

result<std::optional<read_plan>, errc> log::plan_read_async(int64_t offset, size_t max_bytes, int64_t max_offset,
                                                            plan_fetches& st) {
    FJORD_ASSERT(!st.missed_, "planning again before the fetch of {} bytes was supplied", st.fetch_.length);
    if (st.short_read_) return fail(errc::io_error);  // as read_exact: the file is shorter than the log says
    plan_io io{&st};
    auto p = plan_read(offset, max_bytes, max_offset, io);
    if (st.missed_) return std::optional<read_plan>();
    if (!p) return fail(p.error());
    return std::optional<read_plan>(std::move(p).value());
}

result<read_plan, errc> log::plan_read(int64_t offset, size_t max_bytes, int64_t max_offset, plan_io& io) {
    auto any = start_read(offset, max_bytes, max_offset);
    if (!any) return fail(any.error());
    read_plan p;
    p.expect = p.next_offset = offset;
    p.max_offset = max_offset;
    p.generation = generation_;
    if (!*any) return p;
    // Kafka serves a fetch from one segment: the first that has the offset.
    for (size_t i = segment_index_for(offset); i < segments_.size(); ++i) {
        auto one = plan_segment(i, offset, max_bytes, true, max_offset, io);
        if (!one) return fail(one.error());
        if (one->length > 0) {
            one->next_offset = offset;
            return one;
        }
    }
    return p;
}

result<read_result, errc> log::finish_read(const read_plan& p, shared_bytes bytes) {
    if (offline_) return fail(errc::log_offline);
    read_result r;
    r.next_offset = p.next_offset;
    if (p.length == 0) return r;
    // A truncation since the plan may have cut what was read: read again.
    if (p.generation != generation_ || p.next_offset < start_offset_ || p.next_offset > next_offset_) {
        return fail(errc::offset_out_of_range);
    }
    FJORD_ASSERT(bytes.size() == p.length, "read {} bytes of a planned {}", bytes.size(), p.length);
    bool stop = false;
    auto accepted = accept_chunk(p, std::move(bytes), r, stop);
    if (!accepted) return fail(accepted.error());
    return r;
}

result<std::optional<timestamp_offset>, errc> log::offset_for_timestamp(int64_t ts) {
    if (offline_) return fail(errc::log_offline);
    std::vector<uint8_t> scratch;
    for (size_t i = segment_index_for(start_offset_); i < segments_.size(); ++i) {
        segment& s = *segments_[i];
        if (auto r = ensure_indexes(s); !r) return fail(r.error());
        if (s.size_bytes == 0 || s.max_timestamp < ts) continue;
        // From the last indexed point below ts, in bounded reads, to the first match.
        int64_t cur = std::max(s.lookup_timestamp(ts), start_offset_);
        while (cur < next_offset_) {
            auto rr = read(cur, 1 << 20, next_offset_);
            if (!rr) return fail(rr.error());
            if (rr->chunks.empty()) break;
            for (const auto& chunk : rr->chunks) {
                proto::batch_splitter split(chunk);
                while (auto b = split.next()) {
                    if (b->max_timestamp() < ts) continue;
                    auto payload = b->payload(scratch);
                    if (!payload) {
                        return fail(go_offline(errc::corrupt_log,
                                               fmt::format("{}: batch at offset {}: {}", dir_, b->base_offset(),
                                                           proto::describe(payload.error()))));
                    }
                    auto records = b->records(*payload);
                    proto::record_view rec;
                    while (records.next(rec)) {
                        const int64_t o = b->offset_of(rec), t = b->timestamp_of(rec);
                        if (t >= ts && o >= start_offset_) {
                            return std::optional<timestamp_offset>(timestamp_offset{o, t});
                        }
                    }
                }
            }
            cur = rr->next_offset;
        }
        return std::optional<timestamp_offset>();
    }
    return std::optional<timestamp_offset>();
}

result<std::optional<timestamp_offset>, errc> log::max_timestamp_offset() {
    if (offline_) return fail(errc::log_offline);
    int64_t max_ts = no_timestamp;
    for (size_t i = segment_index_for(start_offset_); i < segments_.size(); ++i) {
        segment& s = *segments_[i];
        if (auto r = ensure_indexes(s); !r) return fail(r.error());
        if (s.size_bytes > 0) max_ts = std::max(max_ts, s.max_timestamp);
    }
    if (max_ts == no_timestamp) return std::optional<timestamp_offset>();
    // The first record carrying the largest timestamp.
    return offset_for_timestamp(max_ts);
}

// ---------------------------------------------------------------------------
// Truncation and retention

result<void, errc> log::truncate_suffix(int64_t offset) {
    if (offline_) return fail(errc::log_offline);
    if (offset >= next_offset_) return {};
    if (offset < start_offset_) return fail(errc::offset_out_of_range);
    const size_t i = segment_index_for(offset);
    int64_t batch_base = 0;
    uint32_t batch_size = 0;
    plan_io io;
    auto pos = find_batch(*segments_[i], offset, &batch_base, &batch_size, io);
    if (!pos) return fail(pos.error());
    if (batch_base < start_offset_) {
        // The batch to remove straddles the log start: nothing visible stays.
        // Restart empty at the log start (Kafka's truncateFullyAndStartAt).
        while (!segments_.empty()) {
            delete_segment_files(*segments_.back());
            segments_.pop_back();
        }
        if (auto r = new_segment(start_offset_); !r) return fail(go_offline(r.error(), "new segment failed"));
        active().synced_bytes = 0;
        active().truncate_unsynced = true;
    } else {
        while (segments_.size() > i + 1) {
            delete_segment_files(*segments_.back());
            segments_.pop_back();
        }
    }
    segment& s = active();
    auto f = log_file(s);
    if (!f) return fail(f.error());
    if (*pos < s.size_bytes) {
        if (auto r = (*f)->truncate(*pos); !r) return fail(go_offline(r.error(), "truncate failed"));
        s.size_bytes = *pos;
        const uint64_t resume = s.truncate_indexes(*pos, batch_base);
        s.next_offset = s.base_offset;
        // Re-derive the segment's end, max timestamp and index cadence.
        auto out = scan(s, resume, s.base_offset, true, resume > 0, false);
        if (!out.clean) return fail(go_offline(out.io_failed ? out.io_error : errc::corrupt_log, out.problem));
        (void)rewrite_index_files(s);
    }
    s.synced_bytes = std::min(s.synced_bytes, s.size_bytes);
    s.truncate_unsynced = true;
    next_offset_ = s.next_offset;
    if (auto r = truncate_txn_index(s, next_offset_); !r)
        return fail(go_offline(r.error(), fmt::format("{}: truncating the transaction index failed", dir_)));
    FJORD_ASSERT(next_offset_ <= offset, "truncate to {} left the end at {}", offset, next_offset_);
    start_offset_ = std::min(start_offset_, next_offset_);
    durable_offset_ = std::min(durable_offset_, next_offset_);
    cleaner_checkpoint_ = std::min(cleaner_checkpoint_, next_offset_);  // Kafka's maybeTruncateCheckpoint
    ++generation_;
    if (epochs_.truncate_from_end(next_offset_)) {
        if (auto r = write_epoch_checkpoint(); !r) return fail(go_offline(r.error(), "epoch checkpoint write failed"));
    }
    // Producer state: from the latest snapshot at or below the new end.
    if (delete_snapshots_outside(0, next_offset_)) ++dir_generation_;
    if (std::string detail; !rebuild_producer_state(detail)) return fail(go_offline(errc::corrupt_log, detail));
    // Durable now: a truncated suffix must not come back after a power cut.
    if (auto r = sync(); !r) return r;
    if (listener_) return listener_->checkpoint_offsets();
    return {};
}

result<void, errc> log::truncate_prefix(int64_t new_start) {
    if (offline_) return fail(errc::log_offline);
    if (new_start <= start_offset_) return {};
    start_offset_ = new_start;
    if (new_start > next_offset_) {
        // Beyond the end (a Raft snapshot): restart the log there.
        if (auto r = new_segment(new_start); !r) return r;
        next_offset_ = durable_offset_ = new_start;
        producers_.clear();  // Kafka's truncateFullyAndStartAt: no history, no open transactions
        active().synced_bytes = 0;
        ++generation_;
    }
    if (epochs_.truncate_from_start(std::min(start_offset_, next_offset_))) {
        if (auto r = write_epoch_checkpoint(); !r) return r;
    }
    // The new log start is checkpointed before any segment goes.
    if (listener_) {
        if (auto r = listener_->checkpoint_offsets(); !r) return r;
    }
    bool deleted = false;
    while (segments_.size() > 1 && segments_[1]->base_offset <= start_offset_) {
        delete_segment_files(*segments_.front());
        segments_.erase(segments_.begin());
        deleted = true;
    }
    // Snapshots older than the first segment go with the segments.
    if (deleted) (void)delete_snapshots_outside(segments_.front()->base_offset, INT64_MAX);
    return {};
}

result<void, errc> log::advance_start_offset(int64_t new_start) {
    if (offline_) return fail(errc::log_offline);
    FJORD_ASSERT(new_start <= next_offset_, "log start {} beyond the log end {}", new_start, next_offset_);
    if (new_start <= start_offset_) return {};
    start_offset_ = new_start;
    // The epoch checkpoint file is trimmed the same way when the log is next opened.
    (void)epochs_.truncate_from_start(start_offset_);
    return {};
}

std::vector<std::string> log::detach_segments_below_start() {
    std::vector<std::string> paths;
    if (offline_) return paths;
    bool detached = false;
    while (segments_.size() > 1 && segments_[1]->base_offset <= start_offset_) {
        segment& s = *segments_.front();
        files_.forget(s.log_file);
        files_.forget(s.offset_index_file);
        files_.forget(s.time_index_file);
        for (const char* ext : {".log", ".index", ".timeindex", ".txnindex", ".snapshot"}) {
            paths.push_back(path_of(s, ext));
        }
        ++dir_generation_;
        segments_.erase(segments_.begin());
        detached = true;
    }
    if (detached) (void)delete_snapshots_outside(segments_.front()->base_offset, INT64_MAX);
    return paths;
}

result<int64_t, errc> log::retention_start(int64_t now_ms, int64_t max_offset) {
    if (offline_) return fail(errc::log_offline);
    int64_t start = start_offset_;
    if (!cfg_.delete_) return start;  // cleanup.policy=compact only
    int64_t total = size_bytes();
    for (size_t i = 0; i + 1 < segments_.size(); ++i) {
        segment& s = *segments_[i];
        if (segments_[i + 1]->base_offset > max_offset) break;
        bool expire = cfg_.retention_bytes >= 0 && total - static_cast<int64_t>(s.size_bytes) >= cfg_.retention_bytes;
        if (!expire && cfg_.retention_ms >= 0) {
            if (auto r = ensure_indexes(s); !r) return fail(r.error());
            expire = s.max_timestamp != no_timestamp && now_ms - s.max_timestamp > cfg_.retention_ms;
        }
        if (!expire) break;
        total -= static_cast<int64_t>(s.size_bytes);
        start = std::max(start, segments_[i + 1]->base_offset);
    }
    return start;
}

result<int, errc> log::apply_retention(int64_t now_ms) {
    auto start = retention_start(now_ms);
    if (!start) return fail(start.error());
    const size_t before = segments_.size();
    if (*start > start_offset_) {
        if (auto r = truncate_prefix(*start); !r) return fail(r.error());
    }
    return static_cast<int>(before - segments_.size());
}

// ---------------------------------------------------------------------------
// Durability

bool log::needs_sync() const {
    if (dir_generation_ != dir_synced_generation_) return true;
    for (const auto& s : segments_) {
        if (s->synced_bytes < s->size_bytes || s->truncate_unsynced) return true;
        if (s->txn_changes != s->txn_synced_changes) return true;
    }
    return false;
}

sync_work log::pending_sync() {
    sync_work w;
    w.durable_offset = next_offset_;
    w.generation = generation_;
    w.dir_generation = dir_generation_;
    w.dir_sync = dir_generation_ != dir_synced_generation_;
    if (w.dir_sync) w.dir = dir_;
    if (offline_) return sync_work{};
    for (auto& s : segments_) {
        if (s->synced_bytes >= s->size_bytes && !s->truncate_unsynced) continue;
        auto f = log_file(*s);
        if (!f) {
            // Cannot even open it: nothing becomes durable.
            go_offline(f.error(), fmt::format("{}: open for sync failed", path_of(*s, ".log")));
            return sync_work{};
        }
        w.files.push_back({std::move(f).value(), s->base_offset, s->size_bytes});
    }
    // Transaction index entries become durable with the markers they describe.
    for (auto& s : segments_) {
        if (s->txn_changes == s->txn_synced_changes) continue;
        auto f = fs_.open(path_of(*s, ".txnindex"), open_mode::read_write);
        if (!f) {
            go_offline(f.error(), fmt::format("{}: open for sync failed", path_of(*s, ".txnindex")));
            return sync_work{};
        }
        w.files.push_back({std::move(f).value(), s->base_offset, 0, true, s->txn_changes});
    }
    return w;
}

void log::on_synced(const sync_work& w) {
    if (w.generation != generation_ || offline_) return;  // a truncation overtook it
    for (const auto& it : w.files) {
        const size_t i = segment_index_for(it.segment_base);
        segment& s = *segments_[i];
        if (s.base_offset != it.segment_base) continue;  // deleted meanwhile
        if (it.txn_index) {
            // Changes count up: a later completion may carry a higher count.
            if (static_cast<int32_t>(it.txn_changes - s.txn_synced_changes) > 0) s.txn_synced_changes = it.txn_changes;
            continue;
        }
        s.synced_bytes = std::max(s.synced_bytes, std::min(it.bytes, s.size_bytes));
        if (it.bytes == s.size_bytes) s.truncate_unsynced = false;
    }
    if (w.dir_sync) dir_synced_generation_ = std::max(dir_synced_generation_, w.dir_generation);
    FJORD_ASSERT(w.durable_offset <= next_offset_, "durable {} beyond the end {}", w.durable_offset, next_offset_);
    // Only as far as every segment before it is synced (items cover them all).
    durable_offset_ = std::max(durable_offset_, w.durable_offset);
}

void log::on_sync_failed(errc e) {
    // After a failed fsync the kernel may have dropped the dirty pages and a
    // retry can "succeed" without them: nothing written since the last good
    // sync can be trusted. Offline until reopened (recovery decides).
    go_offline(e, "fsync failed");
}

result<void, errc> log::sync() {
    if (offline_) return fail(errc::log_offline);
    sync_work w = pending_sync();
    if (offline_) return fail(errc::log_offline);
    for (auto& it : w.files) {
        if (test_faults_.skip_fsync) break;  // negative control (tests only)
        if (auto r = it.f->sync(); !r) {
            on_sync_failed(r.error());
            return r;
        }
    }
    if (w.dir_sync && !test_faults_.skip_dir_sync) {
        if (auto r = fs_.sync_dir(w.dir); !r) {
            on_sync_failed(r.error());
            return r;
        }
    }
    on_synced(w);
    return {};
}

result<void, errc> log::flush_all() {
    if (offline_) return fail(errc::log_offline);
    for (auto& s : segments_) {
        if (!s->indexes_loaded) continue;
        write_index_entries(*s);
        for (auto* slot : {&s->offset_index_file, &s->time_index_file}) {
            if (slot->f) {
                if (auto r = slot->f->sync(); !r) return r;
            }
        }
    }
    write_producer_snapshot(true);
    return sync();
}

void log::release_memory() {
    for (size_t i = 0; i + 1 < segments_.size(); ++i) {
        segment& s = *segments_[i];
        if (!s.indexes_loaded) continue;
        write_index_entries(s);
        if (s.offsets_on_disk == s.offsets.size() && s.times_on_disk == s.times.size()) s.unload_indexes();
        // The .txnindex file has every entry: read again on use.
        s.aborted_txns = {};
        s.txn_loaded = false;
    }
    segments_.shrink_to_fit();
}

}  // namespace fjord::storage
