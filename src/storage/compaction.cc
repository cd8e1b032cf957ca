#include "storage/compaction.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "base/assert.h"
#include "base/endian.h"
#include "protocol/crc32c.h"
#include "protocol/record_batch.h"
#include "protocol/varint.h"
#include "storage/log.h"

namespace fjord::storage {

namespace proto = fjord::protocol;

namespace {

// The data batches of aborted transactions (Kafka's cleaner discards them,
// and they must not shadow committed values in the key map). A producer has
// one transaction open at a time, so a batch is aborted iff an aborted
// transaction of its producer spans its base offset: [first, marker).
class aborted_batches {
public:
    explicit aborted_batches(std::span<const aborted_txn> txns) {
        for (const auto& t : txns) by_producer_[t.producer_id].emplace_back(t.first_offset, t.last_offset);
        for (auto& [id, v] : by_producer_) std::sort(v.begin(), v.end());
    }
    bool holds(const proto::record_batch& b) const {
        if (by_producer_.empty() || !b.is_transactional() || b.is_control() || b.producer_id() < 0) return false;
        auto it = by_producer_.find(b.producer_id());
        if (it == by_producer_.end()) return false;
        const auto& v = it->second;
        auto j = std::upper_bound(v.begin(), v.end(), std::pair<int64_t, int64_t>(b.base_offset(), INT64_MAX));
        return j != v.begin() && b.base_offset() < std::prev(j)->second;
    }

private:
    std::unordered_map<int64_t, std::vector<std::pair<int64_t, int64_t>>> by_producer_;
};

constexpr size_t read_chunk_bytes = 1 << 20;
constexpr size_t write_chunk_bytes = 1 << 20;
constexpr size_t min_key_map_slots = 16;

uint64_t rotl(uint64_t x, int r) {
    return (x << r) | (x >> (64 - r));
}
uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}
uint64_t load_le64(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
}

int64_t wrapping_add(int64_t a, int64_t b) {
    return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

// Reads whole batches of a segment file sequentially, in bounded chunks.
class batch_file_reader {
public:
    batch_file_reader(file& f, uint64_t size, std::string where) : f_(f), size_(size), where_(std::move(where)) {}

    // True with `out` set (or empty at the end); false on an I/O error or
    // malformed bytes (detail says where; *e the error).
    bool next(std::optional<proto::record_batch>& out, uint64_t& position, errc& e, std::string& detail) {
        for (;;) {
            if (split_) {
                if (auto b = split_->next()) {
                    position = chunk_pos_ + split_->consumed() - b->size();
                    out.emplace(std::move(*b));
                    return true;
                }
                if (split_->error()) {
                    e = errc::corrupt_log;
                    detail = fmt::format("{}: position {}: invalid batch header: {}", where_,
                                         chunk_pos_ + split_->consumed(), proto::describe(*split_->error()));
                    return false;
                }
                chunk_pos_ += split_->consumed();
                split_.reset();
            }
            if (chunk_pos_ >= size_) {
                out.reset();
                return true;
            }
            const uint64_t left = size_ - chunk_pos_;
            uint8_t head[proto::batch_log_overhead];
            if (left < proto::batch_header_size) return bad(e, detail, "partial batch at the end");
            if (auto r = read_exact(f_, chunk_pos_, head); !r) return io(e, detail, r.error());
            const int32_t length = load_be<int32_t>(head + proto::batch_length_offset);
            if (length < static_cast<int32_t>(proto::batch_header_size - proto::batch_log_overhead))
                return bad(e, detail, fmt::format("batch length {}", length));
            const uint64_t need = proto::batch_log_overhead + static_cast<uint64_t>(length);
            if (need > left) return bad(e, detail, fmt::format("partial batch ({} of {} bytes)", left, need));
            const size_t want =
                static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(read_chunk_bytes, need), left));
            std::vector<uint8_t> buf(want);
            if (auto r = read_exact(f_, chunk_pos_, buf); !r) return io(e, detail, r.error());
            split_.emplace(shared_bytes::adopt(std::move(buf)));
        }
    }

private:
    bool bad(errc& e, std::string& detail, std::string why) {
        e = errc::corrupt_log;
        detail = fmt::format("{}: position {}: {}", where_, chunk_pos_, why);
        return false;
    }
    bool io(errc& e, std::string& detail, errc got) {
        e = got;
        detail = fmt::format("{}: read at {} failed: {}", where_, chunk_pos_, describe(got));
        return false;
    }
    file& f_;
    uint64_t size_;
    std::string where_;
    uint64_t chunk_pos_ = 0;
    std::optional<proto::batch_splitter> split_;
};

// Full validation of a segment batch (disk bytes are untrusted): header,
// CRC, records, offsets increasing and inside [lo, hi).
bool check_batch(const proto::record_batch& b, std::vector<uint8_t>& scratch, int64_t& expected_next, int64_t lo,
                 int64_t hi, const std::string& where, uint64_t position, std::string& detail) {
    auto v =
        b.validate_all(scratch, proto::default_max_decompressed_bytes, proto::validate_options{.dense_offsets = false});
    if (!v) {
        detail = fmt::format("{}: position {}: invalid batch: {}", where, position, proto::describe(v.error()));
        return false;
    }
    const int64_t base = b.base_offset(), last = b.last_offset();
    if (base < expected_next || last < base || base < lo || last >= hi) {
        detail = fmt::format("{}: position {}: batch [{}, {}] outside [{}, {}) or before {}", where, position, base,
                             last, lo, hi, expected_next);
        return false;
    }
    expected_next = last + 1;
    return true;
}

std::string seg_path(const std::string& dir, int64_t base, std::string_view ext) {
    return dir + "/" + segment_file_name(base, ext);
}

}  // namespace

// ---------------------------------------------------------------------------
// Key hashing and the key map

key_hash hash_key(std::span<const uint8_t> key) {
    // Two 64-bit lanes over 16-byte blocks, cross-mixed and finalized: 128
    // bits so that a collision (which would drop a live record) is negligible.
    constexpr uint64_t k1 = 0x87c37b91114253d5ull, k2 = 0x4cf5ad432745937full;
    uint64_t h1 = 0x9e3779b97f4a7c15ull ^ key.size(), h2 = 0xc2b2ae3d27d4eb4full + key.size();
    const uint8_t* p = key.data();
    size_t n = key.size();
    while (n >= 16) {
        uint64_t a = load_le64(p, 8), b = load_le64(p + 8, 8);
        h1 ^= rotl(a * k1, 31) * k2;
        h1 = rotl(h1, 27) + h2;
        h1 = h1 * 5 + 0x52dce729;
        h2 ^= rotl(b * k2, 33) * k1;
        h2 = rotl(h2, 31) + h1;
        h2 = h2 * 5 + 0x38495ab5;
        p += 16;
        n -= 16;
    }
    const uint64_t a = load_le64(p, std::min<size_t>(n, 8));
    const uint64_t b = n > 8 ? load_le64(p + 8, n - 8) : 0;
    h1 ^= rotl(a * k1, 31) * k2;
    h2 ^= rotl(b * k2, 33) * k1;
    h1 += h2;
    h2 += h1;
    h1 = mix64(h1);
    h2 = mix64(h2);
    h1 += h2;
    h2 += h1;
    return {h1, h2};
}

key_map::key_map(size_t memory_bytes, double load_factor) {
    const size_t slots = std::max(min_key_map_slots, memory_bytes / slot_bytes);
    slots_.resize(slots);
    max_entries_ = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(slots) * load_factor));
    if (max_entries_ >= slots) max_entries_ = slots - 1;
}

void key_map::clear() {
    if (size_ == 0) return;
    std::fill(slots_.begin(), slots_.end(), slot{});
    size_ = 0;
}

size_t key_map::home(const key_hash& h) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(h.a) * slots_.size()) >> 64);
}

void key_map::put(const key_hash& h, int64_t offset) {
    FJORD_ASSERT(offset >= 0, "key map offset {}", offset);
    for (size_t i = home(h);; i = i + 1 == slots_.size() ? 0 : i + 1) {
        slot& s = slots_[i];
        if (s.offset < 0) {
            FJORD_ASSERT(size_ < max_entries_, "key map full ({} of {} entries)", size_, max_entries_);
            s = {h.a, h.b, offset};
            ++size_;
            return;
        }
        if (s.a == h.a && s.b == h.b) {
            FJORD_ASSERT(offset > s.offset, "key map offsets must increase: {} after {}", offset, s.offset);
            s.offset = offset;
            return;
        }
    }
}

int64_t key_map::get(const key_hash& h) const {
    for (size_t i = home(h);; i = i + 1 == slots_.size() ? 0 : i + 1) {
        const slot& s = slots_[i];
        if (s.offset < 0) return -1;
        if (s.a == h.a && s.b == h.b) return s.offset;
    }
}

// ---------------------------------------------------------------------------
// The compactor (off-shard)

compactor::compactor(file_system& fs, size_t key_map_bytes) : fs_(fs), map_(key_map_bytes) {}

result<compaction_result, errc> compactor::run(const compaction_plan& plan, std::string& detail) {
    compaction_result res;
    map_.clear();
    const aborted_batches aborted(plan.aborted);
    FJORD_ASSERT(!plan.segments.empty(), "compaction plan for {} without segments", plan.dir);
    for (size_t i = 0; i < plan.segments.size(); ++i) {
        const auto& s = plan.segments[i];
        FJORD_ASSERT(s.end > s.base && (i == 0 || s.base == plan.segments[i - 1].end),
                     "plan segments not consecutive at {} ({}..{})", i, s.base, s.end);
    }
    FJORD_ASSERT(plan.first_dirty <= plan.segments.back().end, "first dirty {} beyond the cleanable end {}",
                 plan.first_dirty, plan.segments.back().end);

    // 1. The key map, from the first dirty offset on, until it fills.
    int64_t mapped_end = plan.segments.back().end;
    bool map_full = false;
    for (const auto& src : plan.segments) {
        if (src.end <= plan.first_dirty) continue;
        const std::string where = seg_path(plan.dir, src.base, ".log");
        auto f = fs_.open(where, open_mode::read_only);
        if (!f) {
            detail = fmt::format("{}: open failed: {}", where, describe(f.error()));
            return fail(f.error());
        }
        batch_file_reader reader(**f, src.size, where);
        std::optional<proto::record_batch> b;
        uint64_t pos = 0;
        errc e = errc::io_error;
        int64_t expected = src.base;
        for (;;) {
            if (!reader.next(b, pos, e, detail)) return fail(e);
            if (!b) break;
            if (!check_batch(*b, scratch_, expected, src.base, src.end, where, pos, detail))
                return fail(errc::corrupt_log);
            res.stats.bytes_read += b->size();
            if (b->last_offset() < plan.first_dirty || b->is_control() || aborted.holds(*b)) continue;
            auto payload = b->payload(scratch_);
            FJORD_ASSERT(payload.ok(), "payload of a validated batch failed");
            auto records = b->records(*payload);
            proto::record_view r;
            while (records.next(r)) {
                const int64_t o = b->offset_of(r);
                if (o < plan.first_dirty || !r.key) continue;
                if (map_.full()) {
                    mapped_end = o;
                    map_full = true;
                    break;
                }
                map_.put(hash_key(*r.key), o);
            }
            if (map_full) break;
        }
        if (map_full) break;
    }
    // Progress: at least one record mapped, unless nothing was dirty (a pass
    // that only drops tombstones past their horizon).
    FJORD_ASSERT(mapped_end > plan.first_dirty || plan.first_dirty == plan.segments.back().end,
                 "key map covered nothing from {}", plan.first_dirty);
    res.cleaned_to = mapped_end;

    // 2. Cleaned segments: every source starting below mapped_end, in groups.
    size_t sources = 0;
    while (sources < plan.segments.size() && plan.segments[sources].base < mapped_end) ++sources;
    std::vector<std::string> written;
    auto abandon = [&](errc e) {
        for (const auto& p : written) (void)fs_.remove(p);
        return e;
    };
    for (size_t gi = 0; gi < sources;) {
        compaction_result::group g;
        g.first_source = gi;
        g.base = plan.segments[gi].base;
        uint64_t bytes = 0;
        while (gi < sources) {
            const auto& s = plan.segments[gi];
            const bool fits =
                g.source_count == 0 || (bytes + s.size <= plan.group_bytes && s.end - 1 - g.base <= int64_t{INT32_MAX});
            if (!fits) break;
            bytes += s.size;
            ++g.source_count;
            ++gi;
        }
        const std::string out_path = seg_path(plan.dir, g.base, ".log") + std::string(cleaned_suffix);
        auto out = fs_.open(out_path, open_mode::create);
        if (!out) {
            detail = fmt::format("{}: create failed", out_path);
            return fail(abandon(out.error()));
        }
        written.push_back(out_path);
        if (auto r = (*out)->truncate(0); !r) return fail(abandon(r.error()));
        segment idx(g.base);
        idx.indexes_loaded = true;
        uint64_t out_pos = 0;
        out_buf_.clear();
        auto flush = [&]() -> result<void, errc> {
            if (out_buf_.empty()) return {};
            if (auto r = (*out)->write_at(out_pos - out_buf_.size(), out_buf_); !r) return r;
            out_buf_.clear();
            return {};
        };
        auto emit = [&](std::span<const uint8_t> bytes_out, int64_t base, int64_t last,
                        int64_t max_ts) -> result<void, errc> {
            FJORD_ASSERT(out_pos + bytes_out.size() <= (uint64_t{1} << 31), "cleaned segment {} beyond 2 GiB", g.base);
            idx.index_batch({out_pos, static_cast<uint32_t>(bytes_out.size()), base, last, max_ts},
                            plan.index_interval_bytes);
            out_buf_.insert(out_buf_.end(), bytes_out.begin(), bytes_out.end());
            out_pos += bytes_out.size();
            res.stats.bytes_written += bytes_out.size();
            if (out_buf_.size() >= write_chunk_bytes) return flush();
            return {};
        };
        for (size_t si = g.first_source; si < g.first_source + g.source_count; ++si) {
            const auto& src = plan.segments[si];
            const std::string where = seg_path(plan.dir, src.base, ".log");
            auto f = fs_.open(where, open_mode::read_only);
            if (!f) {
                detail = fmt::format("{}: open failed: {}", where, describe(f.error()));
                return fail(abandon(f.error()));
            }
            batch_file_reader reader(**f, src.size, where);
            std::optional<proto::record_batch> b;
            uint64_t pos = 0;
            errc e = errc::io_error;
            int64_t expected = src.base;
            for (;;) {
                if (!reader.next(b, pos, e, detail)) return fail(abandon(e));
                if (!b) break;
                if (!check_batch(*b, scratch_, expected, src.base, src.end, where, pos, detail))
                    return fail(abandon(errc::corrupt_log));
                if (b->is_control()) {
                    if (auto r = emit(b->bytes().span(), b->base_offset(), b->last_offset(), b->max_timestamp()); !r)
                        return fail(abandon(r.error()));
                    continue;
                }
                auto payload = b->payload(scratch_);
                FJORD_ASSERT(payload.ok(), "payload of a validated batch failed");
                const int32_t count = b->record_count();
                kept_.resize(static_cast<size_t>(count));
                const bool retain_deletes = !b->has_delete_horizon() || plan.now_ms < b->base_timestamp();
                const bool batch_aborted = aborted.holds(*b);
                int32_t kept = 0, i = 0;
                bool kept_tombstone = false;
                {
                    auto records = b->records(*payload);
                    proto::record_view r;
                    while (records.next(r)) {
                        const int64_t o = b->offset_of(r);
                        bool keep = !batch_aborted;
                        if (keep && o < mapped_end) {
                            if (!r.key) {
                                keep = false;
                            } else {
                                const bool latest = o >= map_.get(hash_key(*r.key));
                                keep = latest && (r.value || retain_deletes);
                                if (latest && !r.value && !keep) ++res.stats.tombstones_dropped;
                            }
                        }
                        kept_[static_cast<size_t>(i++)] = keep;
                        kept += keep;
                        kept_tombstone = kept_tombstone || (keep && !r.value);
                    }
                    FJORD_ASSERT(records.ok() && i == count, "validated batch reread failed at record {}", i);
                }
                res.stats.records_read += static_cast<uint64_t>(count);
                res.stats.records_dropped += static_cast<uint64_t>(count - kept);
                if (batch_aborted) res.stats.aborted_records_dropped += static_cast<uint64_t>(count);
                const bool set_horizon = kept_tombstone && !b->has_delete_horizon();
                if (kept_tombstone) {
                    const int64_t horizon =
                        set_horizon ? wrapping_add(plan.now_ms, plan.delete_retention_ms) : b->base_timestamp();
                    res.min_delete_horizon_ms = std::min(res.min_delete_horizon_ms, horizon);
                }
                if (kept == count && !set_horizon) {
                    if (auto r = emit(b->bytes().span(), b->base_offset(), b->last_offset(), b->max_timestamp()); !r)
                        return fail(abandon(r.error()));
                    continue;
                }
                const int64_t pid = b->producer_id();
                bool producer_last = false;
                if (pid >= 0) {
                    auto it = std::lower_bound(plan.producer_last_batches.begin(), plan.producer_last_batches.end(),
                                               std::pair<int64_t, int64_t>(pid, INT64_MIN));
                    producer_last =
                        it != plan.producer_last_batches.end() && it->first == pid && it->second == b->last_offset();
                }
                // The group's last batch stays too (empty if need be): a
                // cleaned segment then ends where its sources did, so a
                // hole between segments always means lost data (recovery).
                const bool group_last = si + 1 == g.first_source + g.source_count && pos + b->size() == src.size;
                if (kept == 0 && !producer_last && !group_last && !plan.keep_every_batch) continue;
                // Rebuild: same base offset, last offset delta, producer
                // fields; the kept records, recompressed with the batch's codec.
                const int64_t base_ts =
                    set_horizon ? wrapping_add(plan.now_ms, plan.delete_retention_ms) : b->base_timestamp();
                const bool reencode = base_ts != b->base_timestamp();
                payload_.clear();
                int64_t max_ts = no_timestamp;
                {
                    auto records = b->records(*payload);
                    proto::record_view r;
                    i = 0;
                    while (records.next(r)) {
                        if (!kept_[static_cast<size_t>(i++)]) continue;
                        const int64_t ts = wrapping_add(b->base_timestamp(), r.timestamp_delta);
                        max_ts = std::max(max_ts, ts);
                        if (!reencode) {
                            payload_.insert(payload_.end(), r.encoded.begin(), r.encoded.end());
                            continue;
                        }
                        const int64_t ts_delta =
                            static_cast<int64_t>(static_cast<uint64_t>(ts) - static_cast<uint64_t>(base_ts));
                        const int64_t klen = r.key ? static_cast<int64_t>(r.key->size()) : -1;
                        const int64_t vlen = r.value ? static_cast<int64_t>(r.value->size()) : -1;
                        const size_t body =
                            1 + proto::uvarint_size(proto::zigzag(ts_delta)) +
                            proto::uvarint_size(proto::zigzag(r.offset_delta)) +
                            proto::uvarint_size(proto::zigzag(klen)) + (klen > 0 ? static_cast<size_t>(klen) : 0) +
                            proto::uvarint_size(proto::zigzag(vlen)) + (vlen > 0 ? static_cast<size_t>(vlen) : 0) +
                            proto::uvarint_size(proto::zigzag(r.header_count)) + r.header_bytes.size();
                        const size_t before = payload_.size();
                        proto::put_uvarint(payload_, proto::zigzag(static_cast<int64_t>(body)));
                        const size_t body_start = payload_.size();
                        payload_.push_back(static_cast<uint8_t>(r.attributes));
                        proto::put_uvarint(payload_, proto::zigzag(ts_delta));
                        proto::put_uvarint(payload_, proto::zigzag(r.offset_delta));
                        proto::put_uvarint(payload_, proto::zigzag(klen));
                        if (r.key) payload_.insert(payload_.end(), r.key->begin(), r.key->end());
                        proto::put_uvarint(payload_, proto::zigzag(vlen));
                        if (r.value) payload_.insert(payload_.end(), r.value->begin(), r.value->end());
                        proto::put_uvarint(payload_, proto::zigzag(r.header_count));
                        payload_.insert(payload_.end(), r.header_bytes.begin(), r.header_bytes.end());
                        FJORD_ASSERT(payload_.size() - body_start == body, "re-encoded record body {} != {}",
                                     payload_.size() - body_start, body);
                        (void)before;
                    }
                }
                uint16_t attrs = b->attributes();
                if (set_horizon) attrs |= proto::attr::delete_horizon;
                std::span<const uint8_t> records_out = payload_;
                std::vector<uint8_t> compressed;
                if (kept == 0) {
                    attrs &= static_cast<uint16_t>(~proto::attr::codec_mask);
                    ++res.stats.empty_batches_kept;
                } else if (b->compression() != proto::codec::none) {
                    auto c = proto::compress(b->compression(), payload_);
                    if (!c) {
                        detail = fmt::format("{}: recompressing batch {} failed", where, b->base_offset());
                        return fail(abandon(errc::io_error));
                    }
                    compressed = std::move(c).value();
                    records_out = compressed;
                }
                const int64_t max_field =
                    b->ts_type() == proto::timestamp_type::log_append_time || kept == 0 ? b->max_timestamp() : max_ts;
                const size_t total = proto::batch_header_size + records_out.size();
                FJORD_ASSERT(total <= b->size() + 64 * static_cast<size_t>(count) + 64,
                             "rebuilt batch {} grew from {} to {} bytes", b->base_offset(), b->size(), total);
                batch_.resize(total);
                uint8_t* h = batch_.data();
                store_be<int64_t>(h + 0, b->base_offset());
                store_be<int32_t>(h + 8, static_cast<int32_t>(total - proto::batch_log_overhead));
                store_be<int32_t>(h + 12, b->partition_leader_epoch());
                h[16] = 2;
                store_be<uint16_t>(h + 21, attrs);
                store_be<int32_t>(h + 23, b->last_offset_delta());
                store_be<int64_t>(h + 27, base_ts);
                store_be<int64_t>(h + 35, max_field);
                store_be<int64_t>(h + 43, pid);
                store_be<int16_t>(h + 51, b->producer_epoch());
                store_be<int32_t>(h + 53, b->base_sequence());
                store_be<int32_t>(h + 57, kept);
                if (!records_out.empty())
                    std::memcpy(h + proto::batch_records_offset, records_out.data(), records_out.size());
                store_be<uint32_t>(
                    h + 17, proto::crc32c(std::span<const uint8_t>(batch_).subspan(proto::batch_attributes_offset)));
                ++res.stats.batches_rewritten;
                if (auto r = emit(batch_, b->base_offset(), b->last_offset(), max_field); !r)
                    return fail(abandon(r.error()));
            }
        }
        if (auto r = flush(); !r) return fail(abandon(r.error()));
        if (auto r = (*out)->sync(); !r) return fail(abandon(r.error()));
        idx.seal_time_index();
        g.size = out_pos;
        g.next_offset = idx.next_offset;
        g.offsets = std::move(idx.offsets);
        g.times = std::move(idx.times);
        g.max_timestamp = idx.max_timestamp;
        g.offset_of_max_timestamp = idx.offset_of_max_timestamp;
        res.groups.push_back(std::move(g));
    }
    return res;
}

// ---------------------------------------------------------------------------
// Recovery of interrupted swaps (log::open)

result<void, errc> recover_compaction_files(file_system& fs, const std::string& dir, std::string& detail) {
    auto names = fs.list_dir(dir);
    if (!names) return fail(names.error());
    auto ends_with = [](const std::string& n, std::string_view s) {
        return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    bool changed = false;
    std::vector<int64_t> swaps, bases;
    for (const auto& name : *names) {
        int64_t base = 0;
        std::string_view ext;
        if (ends_with(name, cleaned_suffix)) {
            (void)fs.remove(dir + "/" + name);
            changed = true;
        } else if (ends_with(name, swap_suffix)) {
            if (parse_segment_file_name(name, base, ext) && ext == ".log.swap") {
                swaps.push_back(base);
            } else {
                (void)fs.remove(dir + "/" + name);
                changed = true;
            }
        } else if (parse_segment_file_name(name, base, ext) && ext == ".log") {
            bases.push_back(base);
        }
    }
    std::sort(swaps.begin(), swaps.end());
    std::vector<uint8_t> scratch;
    for (int64_t x : swaps) {
        // The swap segment's offset range: from its base to after its last batch.
        const std::string swap_path = seg_path(dir, x, ".log") + std::string(swap_suffix);
        auto f = fs.open(swap_path, open_mode::read_only);
        if (!f) return fail(f.error());
        auto size = (*f)->size();
        if (!size) return fail(size.error());
        batch_file_reader reader(**f, *size, swap_path);
        std::optional<proto::record_batch> b;
        uint64_t pos = 0;
        errc e = errc::io_error;
        int64_t expected = x;
        for (;;) {
            if (!reader.next(b, pos, e, detail)) return fail(e);
            if (!b) break;
            if (!check_batch(*b, scratch, expected, x, INT64_MAX, swap_path, pos, detail))
                return fail(errc::corrupt_log);
        }
        const int64_t end = std::max(expected, x + 1);
        for (int64_t base : bases) {
            if (base < x || base >= end) continue;
            for (const char* ext : {".log", ".index", ".timeindex", ".txnindex"})
                (void)fs.remove(seg_path(dir, base, ext));
        }
        if (auto r = fs.sync_dir(dir); !r) return r;
        if (auto r = fs.rename(swap_path, seg_path(dir, x, ".log")); !r) return r;
        changed = true;
    }
    if (changed) {
        if (auto r = fs.sync_dir(dir); !r) return r;
    }
    return {};
}

// ---------------------------------------------------------------------------
// The log's side: planning and installing (on the shard)

std::optional<compaction_plan> log::plan_compaction(int64_t now_ms, int64_t max_offset, bool force) {
    if (offline_ || !cfg_.compact) return std::nullopt;
    // Never past an open transaction: its data may yet be aborted.
    const int64_t limit = std::min({durable_offset_, max_offset, first_unstable_offset().value_or(INT64_MAX)});
    compaction_plan p;
    for (size_t i = 0; i + 1 < segments_.size(); ++i) {
        segment& s = *segments_[i];
        const int64_t next = segments_[i + 1]->base_offset;
        if (next > limit || s.synced_bytes < s.size_bytes || s.truncate_unsynced) break;
        if (cfg_.min_compaction_lag_ms > 0) {
            if (!ensure_indexes(s)) return std::nullopt;
            if (s.max_timestamp != no_timestamp && now_ms - s.max_timestamp < cfg_.min_compaction_lag_ms) break;
        }
        p.segments.push_back({s.base_offset, s.size_bytes, s.serial, next});
    }
    if (p.segments.empty()) return std::nullopt;
    p.first_dirty = std::max(cleaner_checkpoint_, p.segments.front().base);
    p.first_dirty = std::min(p.first_dirty, p.segments.back().end);
    uint64_t clean = 0, dirty = 0;
    for (const auto& s : p.segments) (s.end <= p.first_dirty ? clean : dirty) += s.size;
    // Cleanable: dirty enough, or a kept tombstone's delete horizon passed
    // (KIP-534), or forced.
    const bool ratio =
        dirty > 0 && static_cast<double>(dirty) >= cfg_.min_cleanable_dirty_ratio * static_cast<double>(clean + dirty);
    if (!force && !ratio && now_ms < next_tombstone_expiry_ms_) return std::nullopt;
    p.dir = dir_;
    p.now_ms = now_ms;
    p.delete_retention_ms = cfg_.delete_retention_ms;
    const uint64_t index_entries = std::max<uint64_t>(cfg_.segment_index_bytes / time_index_entry_size, 2) - 1;
    p.group_bytes =
        std::max<uint64_t>(1, std::min<uint64_t>(cfg_.segment_bytes, index_entries * cfg_.index_interval_bytes));
    p.index_interval_bytes = cfg_.index_interval_bytes;
    p.producer_last_batches = producers_.last_batch_offsets();
    auto aborted = aborted_transactions(p.segments.front().base, p.segments.back().end);
    if (!aborted) return std::nullopt;  // offline
    p.aborted = std::move(aborted).value();
    return p;
}

result<compaction_stats, errc> log::install_compaction(const compaction_plan& plan, compaction_result& res) {
    compaction_stats stats = res.stats;
    size_t gi = 0;
    // Cleaning leaves holes between segments; recovery accepts holes only
    // below the recovery point, so it must cover the cleaned range (durable
    // already: plan_compaction takes only durable segments) before any swap.
    if (listener_ && !res.groups.empty()) {
        if (auto r = listener_->checkpoint_offsets(); !r) {
            for (const auto& g : res.groups)
                (void)fs_.remove(path_of_base(g.base, ".log") + std::string(cleaned_suffix));
            return fail(r.error());
        }
    }
    auto abandon_rest = [&]() {
        for (; gi < res.groups.size(); ++gi)
            (void)fs_.remove(path_of_base(res.groups[gi].base, ".log") + std::string(cleaned_suffix));
    };
    for (; gi < res.groups.size(); ++gi) {
        auto& g = res.groups[gi];
        // The segments it replaces must be exactly those the plan saw.
        bool unchanged = !offline_;
        const size_t first = unchanged ? segment_index_for(g.base) : 0;
        for (size_t k = 0; unchanged && k < g.source_count; ++k) {
            const auto& src = plan.segments[g.first_source + k];
            const size_t i = first + k;
            unchanged = i + 1 < segments_.size() && segments_[i]->serial == src.serial &&
                        segments_[i]->base_offset == src.base && segments_[i]->size_bytes == src.size &&
                        segments_[i + 1]->base_offset == src.end;
        }
        if (!unchanged) break;
        const std::string cleaned = path_of_base(g.base, ".log") + std::string(cleaned_suffix);
        const std::string swap = path_of_base(g.base, ".log") + std::string(swap_suffix);
        if (auto r = fs_.rename(cleaned, swap); !r) break;
        // From here on the swap is in progress: a failure leaves it to recovery.
        if (auto r = fs_.sync_dir(dir_); !r) return fail(go_offline(r.error(), "dir sync (compaction swap) failed"));
        const int64_t range_end = std::max(g.next_offset, g.base + 1);
        // Old segments in the swap's range go first (recovery would delete
        // them too); any later ones of the group one at a time, lowest first,
        // so that a crash leaves a suffix of them (never a tombstone's
        // segment gone while an older value's segment stays).
        for (size_t k = 0; k < g.source_count; ++k) {
            segment& s = *segments_[first + k];
            const bool in_range = s.base_offset < range_end;
            files_.forget(s.log_file);
            files_.forget(s.offset_index_file);
            files_.forget(s.time_index_file);
            // The cleaned segment has no aborted data left: no .txnindex.
            for (const char* ext : {".log", ".index", ".timeindex", ".txnindex"}) {
                if (auto r = fs_.remove(path_of(s, ext)); !r && r.error() != errc::not_found)
                    return fail(go_offline(r.error(), fmt::format("{}: remove failed", path_of(s, ext))));
            }
            const bool next_in_range = k + 1 < g.source_count && segments_[first + k + 1]->base_offset < range_end;
            if (!in_range || !next_in_range) {
                if (auto r = fs_.sync_dir(dir_); !r)
                    return fail(go_offline(r.error(), "dir sync (compaction swap) failed"));
            }
        }
        if (auto r = fs_.rename(swap, path_of_base(g.base, ".log")); !r)
            return fail(go_offline(r.error(), "rename of the swap segment failed"));
        if (auto r = fs_.sync_dir(dir_); !r) return fail(go_offline(r.error(), "dir sync (compaction swap) failed"));
        auto s = std::make_unique<segment>(g.base);
        s->size_bytes = s->synced_bytes = g.size;
        s->next_offset = g.next_offset;
        s->indexes_loaded = true;
        s->txn_loaded = true;
        s->offsets = std::move(g.offsets);
        s->times = std::move(g.times);
        s->max_timestamp = g.max_timestamp;
        s->offset_of_max_timestamp = g.offset_of_max_timestamp;
        // Both index files exist even when empty (Kafka's tools expect them).
        (void)files_.get(s->offset_index_file, path_of(*s, ".index"), open_mode::create);
        (void)files_.get(s->time_index_file, path_of(*s, ".timeindex"), open_mode::create);
        write_index_entries(*s);
        ++dir_generation_;  // the new index files' names
        segments_.erase(segments_.begin() + static_cast<std::ptrdiff_t>(first) + 1,
                        segments_.begin() + static_cast<std::ptrdiff_t>(first + g.source_count));
        segments_[first] = std::move(s);
        ++stats.groups_installed;
        stats.segments_replaced += static_cast<int>(g.source_count);
    }
    if (gi == res.groups.size()) {
        cleaner_checkpoint_ = std::max(cleaner_checkpoint_, res.cleaned_to);
        next_tombstone_expiry_ms_ = res.min_delete_horizon_ms;
    } else {
        abandon_rest();
    }
    FJORD_ASSERT(!segments_.empty() && segments_.front()->base_offset <= start_offset_,
                 "compaction moved the first segment of {} past the log start {}", dir_, start_offset_);
    return stats;
}

result<compaction_stats, errc> log::compact(int64_t now_ms, compactor& c, int64_t max_offset, bool force) {
    if (offline_) return fail(errc::log_offline);
    auto plan = plan_compaction(now_ms, max_offset, force);
    if (offline_) return fail(errc::log_offline);
    if (!plan) return compaction_stats{};
    std::string detail;
    auto res = c.run(*plan, detail);
    if (!res) {
        if (res.error() == errc::corrupt_log) return fail(go_offline(errc::corrupt_log, detail));
        return fail(res.error());
    }
    return install_compaction(*plan, *res);
}

}  // namespace fjord::storage
