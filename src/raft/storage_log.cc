#include "raft/storage_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "base/assert.h"
#include "protocol/gen/leader_change_message.h"
#include "protocol/record_batch.h"
#include "storage/errc.h"

namespace fjord::raft {

namespace proto = fjord::protocol;

storage_log::storage_log(storage::log& lg, term_id prev_term)
    : log_(lg), start_(first_batch_base()), prev_term_(prev_term) {}

storage_log::storage_log(storage::log& lg) : log_(lg), start_(first_batch_base()), prev_term_(no_term) {
    if (start_ == offset(0)) return;
    const auto& epochs = log_.epochs();
    int32_t e = epochs.epoch_at(start_.get() - 1);
    if (e == storage::undefined_epoch) {
        // An empty log's history ends with the epoch of its last batch;
        // otherwise it starts at the log start.
        e = start_ == next() ? epochs.latest_epoch() : epochs.epoch_at(log_.start_offset());
    }
    prev_term_ = term_id(std::max(e, 0));
}

offset storage_log::first_batch_base() const {
    const int64_t lso = log_.start_offset();
    if (lso >= log_.end_offset()) return offset(lso);
    auto r = log_.read(lso, 1, INT64_MAX);
    if (!r.ok() || r->chunks.empty()) {
        fail(fmt::format("reading the batch at the log start offset {} failed", lso));
        return offset(lso);
    }
    auto b = proto::record_batch::parse(r->chunks.front());
    if (!b.ok()) {
        fail(fmt::format("the batch at the log start offset {} is unreadable", lso));
        return offset(lso);
    }
    return offset(b->base_offset());
}

term_id storage_log::term_at(offset o) const {
    FJORD_ASSERT(o >= start() - 1 && o < next(), "term_at({}) outside [{}, {})", o.get(), start().get() - 1,
                 next().get());
    if (o == start() - 1) return prev_term_;
    int32_t epoch = log_.epochs().epoch_at(storage_offset(o));
    FJORD_ASSERT(epoch != storage::undefined_epoch, "no epoch for offset {} in [{}, {})", o.get(), start().get(),
                 next().get());
    return term_id(epoch);
}

offset storage_log::last_offset_for_term(term_id t) const {
    if (next() == start()) return start() - 1;
    // Every batch has a term at or below the latest epoch: the whole log.
    const int32_t latest = log_.epochs().latest_epoch();
    if (latest == storage::undefined_epoch || t.get() >= latest) return next() - 1;
    // Kafka's end offset for the epoch is exclusive (the first offset of the
    // next higher epoch); below the first epoch it is that epoch's start.
    auto [epoch, end] = log_.end_offset_for_epoch(t.get());
    if (end == storage::undefined_epoch_offset) return start() - 1;
    return offset(std::max(end, log_.start_offset()) - 1);
}

offset storage_log::batch_base(offset o) const {
    FJORD_ASSERT(o >= start() && o < next(), "batch_base({}) outside [{}, {})", o.get(), start().get(), next().get());
    auto r = log_.read(storage_offset(o), 1, INT64_MAX);
    if (!r.ok() || r->chunks.empty()) {
        fail(fmt::format("reading the batch at offset {} failed: {}", o.get(),
                         r.ok() ? "no batch" : storage::describe(r.error())));
        return o;
    }
    auto b = proto::record_batch::parse(r->chunks.front());
    if (!b.ok()) {
        fail(fmt::format("the batch at offset {} is unreadable", o.get()));
        return o;
    }
    return offset(b->base_offset());
}

std::vector<uint8_t> storage_log::to_batch(const entry& e) {
    std::vector<uint8_t> bytes;
    if (e.kind == entry_kind::data) {
        bytes.assign(e.payload.data(), e.payload.data() + e.payload.size());
        auto b = proto::record_batch::parse(e.payload);
        FJORD_ASSERT(b.ok() && b->last_offset_delta() + 1 == e.records,
                     "a data entry must be one record batch of {} records", e.records);
    } else {
        proto::batch_options o;
        o.control = true;
        proto::batch_builder builder(o);
        uint8_t key[4] = {0, 0, 0, 0};
        int16_t type = e.kind == entry_kind::leader_change ? static_cast<int16_t>(proto::control_type::leader_change)
                                                           : fjord_configuration_control_type;
        key[2] = static_cast<uint8_t>(type >> 8);
        key[3] = static_cast<uint8_t>(type);
        std::vector<uint8_t> value;
        if (e.kind == entry_kind::leader_change) {
            proto::gen::leader_change_message m;
            m.leader_id = -1;
            proto::writer w;
            m.encode(w, 0);
            value = w.take();
        } else {
            value.assign(e.payload.data(), e.payload.data() + e.payload.size());
        }
        builder.add(0, std::span<const uint8_t>(key), std::span<const uint8_t>(value));
        bytes = builder.build().value();  // codec none cannot fail
        FJORD_ASSERT(e.records == 1, "a control entry holds one record, not {}", e.records);
    }
    proto::set_base_offset(bytes, e.base.get());
    proto::set_partition_leader_epoch(bytes, e.term.get());
    return bytes;
}

std::optional<entry> storage_log::from_batch(const shared_bytes& batch) {
    auto b = proto::record_batch::parse(batch);
    if (!b) return std::nullopt;
    entry e;
    e.base = offset(b->base_offset());
    e.records = b->last_offset_delta() + 1;
    e.term = term_id(b->partition_leader_epoch());
    e.kind = entry_kind::data;
    e.payload = batch;
    if (!b->is_control()) return e;
    // One control record: its key says which kind.
    proto::record_reader records(b->records_bytes(), b->record_count());
    proto::record_view r;
    if (!records.next(r)) return std::nullopt;
    auto c = proto::parse_control_record(r);
    if (!c) return std::nullopt;
    if (c->type == proto::control_type::leader_change) {
        e.kind = entry_kind::leader_change;
        e.payload = shared_bytes{};
    } else if (static_cast<int16_t>(c->type) == fjord_configuration_control_type && r.value) {
        e.kind = entry_kind::configuration;
        e.payload = shared_bytes::copy_of(*r.value);
    }
    return e;
}

void storage_log::stage(offset base, int32_t records) {
    FJORD_ASSERT(staged_base_ == no_offset, "two staged appends");
    FJORD_ASSERT(records >= 1 && base + records == offset(log_.end_offset()), "staged [{}, +{}) but the log ends at {}",
                 base.get(), records, log_.end_offset());
    staged_base_ = base;
    staged_records_ = records;
}

void storage_log::append(entry e) {
    FJORD_ASSERT(e.base == next(), "append at {} but the log ends at {}", e.base.get(), next().get());
    if (staged_base_ != no_offset) {
        FJORD_ASSERT(e.kind == entry_kind::data && e.records == staged_records_,
                     "staged {} records at {}, but the append is {} records of kind {}", staged_records_,
                     staged_base_.get(), e.records, static_cast<int>(e.kind));
        staged_base_ = no_offset;
        return;
    }
    storage::append_options o;
    o.assign_offsets = false;  // Raft chose the offsets and the term
    // The wall clock, for segment.ms (the core itself has no clock).
    o.now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    // A data batch that already carries its offset and term (a follower's,
    // as the leader sent it) is appended as it is: with assign_offsets off
    // the storage log does not write into the bytes.
    if (e.kind == entry_kind::data) {
        auto b = proto::record_batch::parse(e.payload);
        if (b && b->base_offset() == e.base.get() && b->partition_leader_epoch() == e.term.get() &&
            b->last_offset_delta() + 1 == e.records) {
            auto r = log_.append(std::span<uint8_t>(const_cast<uint8_t*>(e.payload.data()), e.payload.size()), o);
            if (!r.ok()) fail(fmt::format("append at {} failed: {}", e.base.get(), storage::describe(r.error())));
            return;
        }
    }
    auto bytes = to_batch(e);
    auto r = log_.append(bytes, o);
    // An append that fails (disk full, I/O error) must not be acknowledged:
    // the driver stops this replica, as it does on a failed flush.
    if (!r.ok()) fail(fmt::format("append at {} failed: {}", e.base.get(), storage::describe(r.error())));
}

void storage_log::read(offset from, size_t max_bytes, std::vector<entry>& out) const {
    if (from >= next()) return;
    auto r = log_.read(storage_offset(from), max_bytes, INT64_MAX);
    if (!r.ok()) {
        fail(fmt::format("read at {} failed: {}", from.get(), storage::describe(r.error())));
        return;
    }
    for (const auto& chunk : r->chunks) {
        proto::batch_splitter split(chunk);
        while (auto b = split.next()) {
            auto e = from_batch(b->bytes());
            if (!e) {
                fail(fmt::format("the batch at {} is undecodable", b->base_offset()));
                return;
            }
            out.push_back(std::move(*e));
        }
    }
}

void storage_log::truncate_suffix(offset from) {
    // From the first batch on, the storage log restarts empty at its start.
    auto r = log_.truncate_suffix(storage_offset(from));
    if (!r.ok()) fail(fmt::format("truncating from {} failed: {}", from.get(), storage::describe(r.error())));
    if (from <= start_) start_ = offset(log_.start_offset());
}

void storage_log::truncate_prefix(offset new_start, term_id prev_term) {
    if (new_start.get() > log_.end_offset()) {
        auto r = log_.truncate_prefix(new_start.get());
        if (!r.ok()) fail(fmt::format("restarting at {} failed: {}", new_start.get(), storage::describe(r.error())));
    } else if (new_start.get() > log_.start_offset()) {
        auto r = log_.advance_start_offset(new_start.get());
        if (!r.ok())
            fail(fmt::format("moving the start to {} failed: {}", new_start.get(), storage::describe(r.error())));
    }
    start_ = new_start;
    prev_term_ = prev_term;
}

bool plausible_envelope(const envelope& e, node_id self, bool snapshots) {
    if (e.to != self || e.from == self || e.from.get() < 0) return false;
    const auto* m = std::get_if<message>(&e.body);
    if (!m) return true;
    if (m->from != e.from || m->to != e.to || m->group.get() < 0) return false;
    if (const auto* a = std::get_if<append_request>(&m->body)) {
        offset next = a->prev_offset + 1;
        for (const auto& en : a->entries) {
            if (en.base != next || en.records < 1 || en.term > a->term || en.term.get() < 0) return false;
            if (en.kind != entry_kind::data && en.records != 1) return false;
            if (en.kind == entry_kind::data) {
                auto b = proto::record_batch::parse(en.payload);
                if (!b || b->last_offset_delta() + 1 != en.records || !b->crc_ok()) return false;
            }
            if (en.kind == entry_kind::configuration && !decode_configuration(en.payload)) return false;
            next = en.next();
        }
    }
    if (const auto* s = std::get_if<snapshot_request>(&m->body)) {
        if (!snapshots) return false;
        const auto& voters = s->meta.config.voters;
        if (s->meta.last.get() < 0 || s->meta.last_term.get() < 0 || s->meta.last_term > s->term) return false;
        if (voters.empty() || !std::is_sorted(voters.begin(), voters.end()) ||
            std::adjacent_find(voters.begin(), voters.end()) != voters.end()) {
            return false;
        }
        // A partition's snapshot is its log start offset, at or after the
        // end of the batches it covers.
        if (s->data.size() != 8) return false;
    }
    return true;
}

}  // namespace fjord::raft
