#include "storage/txn_index.h"

#include <fmt/format.h>

#include "base/assert.h"
#include "base/endian.h"
#include "storage/log.h"

namespace fjord::storage {

namespace {
template <typename T>
void put_be(std::vector<uint8_t>& out, T v) {
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    for (int i = static_cast<int>(sizeof(T)) - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(u >> (8 * i)));
}
}  // namespace

void encode_txn_index(std::span<const aborted_txn> entries, std::vector<uint8_t>& out) {
    out.reserve(out.size() + entries.size() * txn_index_entry_size);
    for (const auto& e : entries) {
        put_be<int16_t>(out, txn_index_version);
        put_be<int64_t>(out, e.producer_id);
        put_be<int64_t>(out, e.first_offset);
        put_be<int64_t>(out, e.last_offset);
        put_be<int64_t>(out, e.last_stable_offset);
    }
}

bool decode_txn_index(std::span<const uint8_t> bytes, std::vector<aborted_txn>& out) {
    if (bytes.size() % txn_index_entry_size != 0) return false;
    std::vector<aborted_txn> entries;
    entries.reserve(bytes.size() / txn_index_entry_size);
    for (size_t pos = 0; pos < bytes.size(); pos += txn_index_entry_size) {
        const uint8_t* p = bytes.data() + pos;
        if (load_be<int16_t>(p) != txn_index_version) return false;
        aborted_txn e;
        e.producer_id = load_be<int64_t>(p + 2);
        e.first_offset = load_be<int64_t>(p + 10);
        e.last_offset = load_be<int64_t>(p + 18);
        e.last_stable_offset = load_be<int64_t>(p + 26);
        if (e.producer_id < 0 || e.first_offset < 0 || e.first_offset > e.last_offset || e.last_stable_offset < 0)
            return false;
        if (!entries.empty() && e.last_offset <= entries.back().last_offset) return false;
        entries.push_back(e);
    }
    out.insert(out.end(), entries.begin(), entries.end());
    return true;
}

}  // namespace fjord::storage

// ---------------------------------------------------------------------------
// The log's side: the .txnindex of each segment, the LSO, Fetch's query.

namespace fjord::storage {

namespace {
// A .txnindex larger than this is not read (a corrupt size must not pick the
// allocation): the log goes offline instead.
constexpr uint64_t max_txn_index_bytes = uint64_t{256} << 20;
}  // namespace

std::optional<int64_t> log::first_unstable_offset() const {
    auto u = producers_.first_unstable_offset();
    if (!u) return std::nullopt;
    return std::max(*u, start_offset_);
}

result<void, errc> log::load_txn_index(segment& s) {
    if (s.txn_loaded) return {};
    const std::string path = path_of(s, ".txnindex");
    auto f = fs_.open(path, open_mode::read_only);
    if (!f) {
        if (f.error() != errc::not_found) return fail(f.error());
        s.aborted_txns.clear();
        s.txn_loaded = true;
        return {};
    }
    auto size = (*f)->size();
    if (!size) return fail(size.error());
    if (*size > max_txn_index_bytes)
        return fail(go_offline(errc::corrupt_log, fmt::format("{}: {} bytes", path, *size)));
    std::vector<uint8_t> bytes(*size);
    if (auto r = read_exact(**f, 0, bytes); !r) return fail(r.error());
    std::vector<aborted_txn> entries;
    if (!decode_txn_index(bytes, entries)) {
        return fail(go_offline(errc::corrupt_log,
                               fmt::format("{}: not a transaction index ({} bytes; entries of {} bytes, version 0, "
                                           "markers increasing)",
                                           path, bytes.size(), txn_index_entry_size)));
    }
    const size_t i = segment_index_for(s.base_offset);
    const int64_t limit = i + 1 < segments_.size() ? segments_[i + 1]->base_offset : next_offset_;
    for (const auto& e : entries) {
        // Every marker lies in this segment.
        if (e.last_offset < s.base_offset || e.last_offset >= limit) {
            return fail(go_offline(errc::corrupt_log,
                                   fmt::format("{}: marker offset {} outside the segment", path, e.last_offset)));
        }
    }
    s.aborted_txns = std::move(entries);
    s.txn_loaded = true;
    return {};
}

void log::add_aborted_txn(const aborted_txn& t) {
    segment& s = *segments_[segment_index_for(t.last_offset)];
    if (!load_txn_index(s)) return;  // offline now
    FJORD_ASSERT(s.aborted_txns.empty() || s.aborted_txns.back().last_offset < t.last_offset,
                 "{}: abort marker {} after {}", dir_, t.last_offset, s.aborted_txns.back().last_offset);
    s.aborted_txns.push_back(t);
    std::vector<uint8_t> bytes;
    encode_txn_index(std::span(&t, 1), bytes);
    const bool created = s.aborted_txns.size() == 1;
    auto f = fs_.open(path_of(s, ".txnindex"), open_mode::create);
    // Without its entry a read_committed consumer would take the aborted
    // records as committed: offline (recovery rebuilds it from the log).
    if (!f) {
        go_offline(f.error(), fmt::format("{}: open failed", path_of(s, ".txnindex")));
        return;
    }
    const uint64_t at = (s.aborted_txns.size() - 1) * txn_index_entry_size;
    if (created) {
        if (auto r = (*f)->truncate(0); !r) {
            go_offline(r.error(), fmt::format("{}: truncate failed", path_of(s, ".txnindex")));
            return;
        }
    }
    if (auto r = (*f)->write_at(at, bytes); !r) {
        go_offline(r.error(), fmt::format("{}: write failed", path_of(s, ".txnindex")));
        return;
    }
    ++s.txn_changes;
    if (created) ++dir_generation_;
}

result<void, errc> log::truncate_txn_index(segment& s, int64_t end) {
    if (auto r = load_txn_index(s); !r) return r;
    size_t keep = s.aborted_txns.size();
    while (keep > 0 && s.aborted_txns[keep - 1].last_offset >= end) --keep;
    if (keep == s.aborted_txns.size()) return {};
    s.aborted_txns.resize(keep);
    const std::string path = path_of(s, ".txnindex");
    if (keep == 0) {
        if (auto r = fs_.remove(path); !r && r.error() != errc::not_found) return r;
        s.txn_synced_changes = s.txn_changes;  // no file left to sync; the directory is
        ++dir_generation_;
        return {};
    }
    auto f = fs_.open(path, open_mode::read_write);
    if (!f) return fail(f.error());
    if (auto r = (*f)->truncate(keep * txn_index_entry_size); !r) return r;
    ++s.txn_changes;
    return {};
}

void log::clear_txn_index(segment& s) {
    s.aborted_txns.clear();
    s.txn_loaded = true;
    s.txn_synced_changes = s.txn_changes;
    if (fs_.remove(path_of(s, ".txnindex"))) ++dir_generation_;
}

result<void, errc> log::sync_txn_indexes() {
    for (auto& s : segments_) {
        if (s->txn_changes == s->txn_synced_changes) continue;
        auto f = fs_.open(path_of(*s, ".txnindex"), open_mode::read_write);
        if (!f) return fail(f.error());
        if (auto r = (*f)->sync(); !r) return r;
        s->txn_synced_changes = s->txn_changes;
    }
    return {};
}

result<std::vector<aborted_txn>, errc> log::aborted_transactions(int64_t from, int64_t upper) {
    if (offline_) return fail(errc::log_offline);
    std::vector<aborted_txn> out;
    if (from >= upper || from >= next_offset_) return out;
    // Markers follow their data: those of transactions overlapping the range
    // lie in the segment holding `from` or later. An entry whose last stable
    // offset reaches `upper` ends the search (every transaction that began
    // below `upper` had completed by then: Kafka's isComplete).
    for (size_t i = segment_index_for(std::max(from, start_offset_)); i < segments_.size(); ++i) {
        segment& s = *segments_[i];
        if (auto r = load_txn_index(s); !r) return fail(r.error());
        for (const auto& t : s.aborted_txns) {
            if (t.last_offset >= from && t.first_offset < upper) out.push_back(t);
            if (t.last_stable_offset >= upper) return out;
        }
    }
    return out;
}

}  // namespace fjord::storage
