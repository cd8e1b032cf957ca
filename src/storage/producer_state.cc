#include "storage/producer_state.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/assert.h"
#include "protocol/crc32c.h"
#include "protocol/record_batch.h"
#include "storage/log.h"
#include "storage/segment.h"

namespace fjord::storage {

namespace {

// Kafka's sequence arithmetic: sequences wrap from INT32_MAX to 0.
int32_t add_sequence(int32_t seq, int32_t delta) {
    if (seq < 0) return -1;
    const int64_t s = int64_t{seq} + delta;
    return static_cast<int32_t>(s > INT32_MAX ? s - INT32_MAX - 1 : s);
}
int32_t sub_sequence(int32_t seq, int32_t delta) {
    if (seq < 0) return -1;
    const int64_t s = int64_t{seq} - delta;
    return static_cast<int32_t>(s < 0 ? s + INT32_MAX + 1 : s);
}

class be_writer {
public:
    explicit be_writer(std::vector<uint8_t>& out) : out_(out) {}
    template <typename T>
    void put(T v) {
        auto u = static_cast<std::make_unsigned_t<T>>(v);
        for (int i = static_cast<int>(sizeof(T)) - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(u >> (8 * i)));
    }

private:
    std::vector<uint8_t>& out_;
};

template <typename T>
T get_be(const uint8_t*& p) {
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i) u = static_cast<std::make_unsigned_t<T>>((u << 8) | p[i]);
    p += sizeof(T);
    return static_cast<T>(u);
}

}  // namespace

void producer_entry::push(const producer_batch& b) {
    if (count == producer_batches_kept) {
        std::move(batches.begin() + 1, batches.end(), batches.begin());
        --count;
    }
    batches[static_cast<size_t>(count++)] = b;
}

bool operator==(const producer_entry& a, const producer_entry& b) {
    if (a.producer_id != b.producer_id || a.epoch != b.epoch || a.count != b.count ||
        a.last_timestamp != b.last_timestamp || a.coordinator_epoch != b.coordinator_epoch ||
        a.current_txn_first_offset != b.current_txn_first_offset)
        return false;
    for (size_t i = 0; i < static_cast<size_t>(a.count); ++i) {
        const auto &x = a.batches[i], &y = b.batches[i];
        if (x.first_seq != y.first_seq || x.last_seq != y.last_seq || x.first_offset != y.first_offset ||
            x.last_offset != y.last_offset)
            return false;
    }
    return true;
}

bool producer_state::operator==(const producer_state& o) const {
    return producers_ == o.producers_;
}

std::optional<completed_txn> producer_state::apply(const producer_batch_info& b) {
    if (b.producer_id < 0) return std::nullopt;
    FJORD_ASSERT(b.last_offset >= b.base_offset, "batch [{}, {}]", b.base_offset, b.last_offset);
    auto [it, inserted] = producers_.try_emplace(b.producer_id);
    producer_entry& e = it->second;
    if (inserted) e.producer_id = b.producer_id;
    if (b.epoch != e.epoch) {
        // A new epoch restarts the sequences (Kafka's maybeUpdateProducerEpoch).
        e.epoch = b.epoch;
        e.count = 0;
    }
    e.last_timestamp = b.max_timestamp;
    if (b.control) {
        // An end-transaction marker closes the open transaction (Kafka's
        // appendEndTxnMarker: one without data starts at the marker).
        completed_txn done;
        done.producer_id = b.producer_id;
        done.first_offset = e.current_txn_first_offset >= 0 ? e.current_txn_first_offset : b.base_offset;
        done.last_offset = b.last_offset;
        done.aborted = b.control_type == control_type_abort;
        if (e.current_txn_first_offset >= 0) ongoing_.erase(e.current_txn_first_offset);
        e.current_txn_first_offset = -1;
        if (b.coordinator_epoch >= 0) e.coordinator_epoch = b.coordinator_epoch;
        return done;
    }
    const int32_t delta = static_cast<int32_t>(std::min<int64_t>(b.last_offset - b.base_offset, INT32_MAX));
    e.push({b.base_sequence, add_sequence(b.base_sequence, delta), b.base_offset, b.last_offset});
    if (b.transactional && e.current_txn_first_offset < 0) {
        e.current_txn_first_offset = b.base_offset;
        ongoing_[b.base_offset] = b.producer_id;
    }
    return std::nullopt;
}

const producer_entry* producer_state::find(int64_t producer_id) const {
    auto it = producers_.find(producer_id);
    return it == producers_.end() ? nullptr : &it->second;
}

std::vector<std::pair<int64_t, int64_t>> producer_state::last_batch_offsets() const {
    std::vector<std::pair<int64_t, int64_t>> out;
    out.reserve(producers_.size());
    for (const auto& [id, e] : producers_) {
        if (const producer_batch* b = e.last()) out.emplace_back(id, b->last_offset);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint8_t> producer_state::encode_snapshot() const {
    std::vector<const producer_entry*> sorted;
    sorted.reserve(producers_.size());
    for (const auto& [id, e] : producers_) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](const producer_entry* a, const producer_entry* b) { return a->producer_id < b->producer_id; });
    std::vector<uint8_t> out;
    out.reserve(producer_snapshot_header_bytes + sorted.size() * producer_snapshot_entry_bytes);
    be_writer w(out);
    w.put<int16_t>(producer_snapshot_version);
    w.put<uint32_t>(0);  // crc, filled below
    w.put<int32_t>(static_cast<int32_t>(sorted.size()));
    for (const producer_entry* e : sorted) {
        const producer_batch* b = e->last();
        w.put<int64_t>(e->producer_id);
        w.put<int16_t>(e->epoch);
        w.put<int32_t>(b ? b->last_seq : -1);
        w.put<int64_t>(b ? b->last_offset : -1);
        w.put<int32_t>(b ? static_cast<int32_t>(b->last_offset - b->first_offset) : 0);
        w.put<int64_t>(e->last_timestamp);
        w.put<int32_t>(e->coordinator_epoch);
        w.put<int64_t>(e->current_txn_first_offset);
    }
    FJORD_ASSERT(out.size() == producer_snapshot_header_bytes + sorted.size() * producer_snapshot_entry_bytes,
                 "snapshot of {} entries is {} bytes", sorted.size(), out.size());
    const uint32_t crc = protocol::crc32c(std::span<const uint8_t>(out).subspan(6));
    for (int i = 0; i < 4; ++i) out[static_cast<size_t>(2 + i)] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    return out;
}

bool producer_state::decode_snapshot(std::span<const uint8_t> bytes) {
    if (bytes.size() < producer_snapshot_header_bytes) return false;
    const uint8_t* p = bytes.data();
    if (get_be<int16_t>(p) != producer_snapshot_version) return false;
    const uint32_t crc = get_be<uint32_t>(p);
    if (protocol::crc32c(bytes.subspan(6)) != crc) return false;
    const int32_t count = get_be<int32_t>(p);
    if (count < 0 ||
        bytes.size() != producer_snapshot_header_bytes + static_cast<size_t>(count) * producer_snapshot_entry_bytes)
        return false;
    std::unordered_map<int64_t, producer_entry> loaded;
    loaded.reserve(static_cast<size_t>(count));
    for (int32_t i = 0; i < count; ++i) {
        producer_entry e;
        e.producer_id = get_be<int64_t>(p);
        e.epoch = get_be<int16_t>(p);
        const int32_t last_seq = get_be<int32_t>(p);
        const int64_t last_offset = get_be<int64_t>(p);
        const int32_t offset_delta = get_be<int32_t>(p);
        e.last_timestamp = get_be<int64_t>(p);
        e.coordinator_epoch = get_be<int32_t>(p);
        e.current_txn_first_offset = get_be<int64_t>(p);
        if (e.producer_id < 0 || offset_delta < 0 || last_offset < -1 || e.current_txn_first_offset < -1) return false;
        if (last_offset >= 0) {
            if (last_offset < offset_delta) return false;
            e.push({sub_sequence(last_seq, offset_delta), last_seq, last_offset - offset_delta, last_offset});
        }
        if (!loaded.emplace(e.producer_id, e).second) return false;  // duplicate id
    }
    std::map<int64_t, int64_t> ongoing;
    for (const auto& [id, e] : loaded) {
        if (e.current_txn_first_offset < 0) continue;
        if (!ongoing.emplace(e.current_txn_first_offset, id).second) return false;  // two open at one offset
    }
    producers_ = std::move(loaded);
    ongoing_ = std::move(ongoing);
    return true;
}

std::string producer_snapshot_name(int64_t offset) {
    return segment_file_name(offset, ".snapshot");
}

std::optional<int64_t> parse_producer_snapshot_name(std::string_view name) {
    int64_t offset = 0;
    std::string_view ext;
    if (!parse_segment_file_name(name, offset, ext) || ext != ".snapshot") return std::nullopt;
    return offset;
}

// ---------------------------------------------------------------------------
// The log's side: feeding the table, snapshots, rebuilding at open.

namespace {
int64_t be_at64(const uint8_t* p) {
    const uint8_t* q = p;
    return get_be<int64_t>(q);
}
int32_t be_at32(const uint8_t* p) {
    const uint8_t* q = p;
    return get_be<int32_t>(q);
}
int16_t be_at16(const uint8_t* p) {
    const uint8_t* q = p;
    return get_be<int16_t>(q);
}
}  // namespace

void log::track_producer(std::span<const uint8_t> batch, int64_t txn_index_from) {
    FJORD_ASSERT(batch.size() >= protocol::batch_header_size, "batch of {} bytes", batch.size());
    const uint8_t* p = batch.data();
    producer_batch_info b;
    b.producer_id = be_at64(p + 43);
    if (b.producer_id < 0) return;
    const auto attrs = static_cast<uint16_t>(be_at16(p + protocol::batch_attributes_offset));
    b.epoch = be_at16(p + 51);
    b.base_sequence = be_at32(p + 53);
    b.base_offset = be_at64(p);
    b.last_offset = b.base_offset + be_at32(p + 23);
    b.max_timestamp = be_at64(p + protocol::batch_max_timestamp_offset);
    b.transactional = attrs & protocol::attr::transactional;
    b.control = attrs & protocol::attr::control;
    if (b.control && (attrs & protocol::attr::codec_mask) == 0) {
        // An end-transaction marker's value: int16 version, int32 coordinator epoch.
        // Its key: int16 version, int16 type (0 ABORT, 1 COMMIT).
        protocol::record_reader rr(batch.subspan(protocol::batch_records_offset), be_at32(p + 57));
        protocol::record_view r;
        if (rr.next(r)) {
            if (r.value && r.value->size() >= 6) b.coordinator_epoch = be_at32(r.value->data() + 2);
            if (r.key && r.key->size() >= 4) b.control_type = be_at16(r.key->data() + 2);
        }
    }
    // Control batches are never compressed (Kafka's coordinator writes them
    // plain and refuses them from clients); one that is, or whose type does
    // not parse, closes the transaction as committed.
    auto done = producers_.apply(b);
    if (done && done->aborted && done->last_offset >= txn_index_from) {
        add_aborted_txn(
            {done->producer_id, done->first_offset, done->last_offset, producers_.stable_offset_after(*done)});
    }
}

bool log::delete_snapshots_outside(int64_t lo, int64_t hi) {
    auto names = fs_.list_dir(dir_);
    if (!names) return false;
    bool removed = false;
    for (const auto& name : *names) {
        auto off = parse_producer_snapshot_name(name);
        if (!off || (*off >= lo && *off <= hi)) continue;
        if (fs_.remove(dir_ + "/" + name)) removed = true;
        if (*off == last_snapshot_offset_) last_snapshot_offset_ = -1;
    }
    return removed;
}

void log::write_producer_snapshot(bool durable) {
    if (offline_) return;
    const int64_t at = next_offset_;
    if (!durable && at == last_snapshot_offset_) return;  // never overwrite a good one non-durably
    const std::vector<uint8_t> bytes = producers_.encode_snapshot();
    const std::string name = producer_snapshot_name(at);
    // Best effort: a snapshot only saves a rescan; a missing or torn one
    // (CRC) is ignored at open and the state rebuilt from an older one.
    if (durable) {
        if (!write_file_atomically(fs_, dir_, name,
                                   std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())))
            return;
    } else {
        auto f = fs_.open(dir_ + "/" + name, open_mode::create);
        if (!f || !(*f)->truncate(0) || !(*f)->write_at(0, bytes)) return;
        ++dir_generation_;
    }
    // One superseded by this one inside the active segment is not needed.
    if (last_snapshot_offset_ > active().base_offset && last_snapshot_offset_ < at)
        (void)fs_.remove(dir_ + "/" + producer_snapshot_name(last_snapshot_offset_));
    last_snapshot_offset_ = at;
}

result<void, errc> log::rebuild_producer_state(std::string& detail, int64_t txn_index_from) {
    producers_.clear();
    last_snapshot_offset_ = -1;
    auto names = fs_.list_dir(dir_);
    if (!names) return fail(names.error());
    std::vector<int64_t> offsets;
    for (const auto& name : *names) {
        if (auto off = parse_producer_snapshot_name(name)) offsets.push_back(*off);
    }
    std::sort(offsets.rbegin(), offsets.rend());
    const int64_t first_base = segments_.front()->base_offset;
    int64_t from = start_offset_;
    bool removed = false;
    for (int64_t off : offsets) {
        const std::string path = dir_ + "/" + producer_snapshot_name(off);
        // Beyond the end: written before data that is gone (a power cut or a
        // truncation); below the first segment: deleted with it.
        bool keep = off <= next_offset_ && off >= first_base;
        // One past txn_index_from is only checked: the replay starts below it.
        if (keep && last_snapshot_offset_ < 0) {
            auto text = read_small_file(fs_, path);
            if (!text) {
                if (text.error() != errc::not_found) return fail(text.error());
                continue;
            }
            const auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text->data()), text->size());
            if (off > txn_index_from) {
                producer_state check;
                keep = check.decode_snapshot(bytes);
            } else {
                keep = producers_.decode_snapshot(bytes);
                if (keep) {
                    last_snapshot_offset_ = off;
                    from = std::max(off, start_offset_);
                }
            }
        }
        if (!keep) {
            (void)fs_.remove(path);
            removed = true;
        }
    }
    // A removed snapshot must not come back after a power cut to describe
    // a history the log no longer has.
    if (removed) {
        if (auto r = fs_.sync_dir(dir_); !r) return r;
    }
    // The batches after the snapshot.
    for (int64_t o = from; o < next_offset_;) {
        auto rr = read(o, 1 << 20, next_offset_);
        if (!rr) {
            detail = fmt::format("{}: rebuilding producer state from offset {}: {} {}", dir_, o, describe(rr.error()),
                                 offline_detail_);
            return fail(rr.error());
        }
        if (rr->chunks.empty()) break;
        for (const auto& chunk : rr->chunks) {
            protocol::batch_splitter split(chunk);
            while (auto b = split.next()) track_producer(b->bytes().span(), txn_index_from);
        }
        FJORD_ASSERT(rr->next_offset > o, "read from {} made no progress", o);
        o = rr->next_offset;
    }
    return {};
}

}  // namespace fjord::storage
