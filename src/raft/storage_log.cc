#include "raft/storage_log.h"

#include "base/assert.h"
#include "protocol/gen/leader_change_message.h"
#include "protocol/record_batch.h"

namespace fjord::raft {

namespace proto = fjord::protocol;

storage_log::storage_log(storage::log& lg, term_id prev_term) : log_(lg), prev_term_(prev_term) {}

term_id storage_log::term_at(offset o) const {
    FJORD_ASSERT(o >= start() - 1 && o < next(), "term_at({}) outside [{}, {})", o.get(), start().get() - 1,
                 next().get());
    if (o == start() - 1) return prev_term_;
    int32_t epoch = log_.epochs().epoch_at(o.get());
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
    auto r = log_.read(o.get(), 1, INT64_MAX);
    FJORD_ASSERT(r.ok() && !r->chunks.empty(), "no batch holds offset {}", o.get());
    auto b = proto::record_batch::parse(r->chunks.front());
    FJORD_ASSERT(b.ok(), "unparsable batch at offset {}", o.get());
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
    // A data batch that already carries its offset and term (a follower's,
    // as the leader sent it) is appended as it is: with assign_offsets off
    // the storage log does not write into the bytes.
    if (e.kind == entry_kind::data) {
        auto b = proto::record_batch::parse(e.payload);
        if (b && b->base_offset() == e.base.get() && b->partition_leader_epoch() == e.term.get() &&
            b->last_offset_delta() + 1 == e.records) {
            auto r = log_.append(std::span<uint8_t>(const_cast<uint8_t*>(e.payload.data()), e.payload.size()), o);
            FJORD_ASSERT(r.ok(), "storage append at {} failed: {}", e.base.get(), static_cast<int>(r.error()));
            return;
        }
    }
    auto bytes = to_batch(e);
    auto r = log_.append(bytes, o);
    // An append that fails (disk full, I/O error) must not be acknowledged:
    // the node stops this replica, as it does on a failed flush.
    FJORD_ASSERT(r.ok(), "storage append at {} failed: {}", e.base.get(), static_cast<int>(r.error()));
}

void storage_log::read(offset from, size_t max_bytes, std::vector<entry>& out) const {
    if (from >= next()) return;
    auto r = log_.read(from.get(), max_bytes, INT64_MAX);
    FJORD_ASSERT(r.ok(), "storage read at {} failed", from.get());
    for (const auto& chunk : r->chunks) {
        proto::batch_splitter split(chunk);
        while (auto b = split.next()) {
            auto e = from_batch(b->bytes());
            FJORD_ASSERT(e.has_value(), "undecodable batch at {}", b->base_offset());
            out.push_back(std::move(*e));
        }
    }
}

void storage_log::truncate_suffix(offset from) {
    auto r = log_.truncate_suffix(from.get());
    FJORD_ASSERT(r.ok(), "storage truncate_suffix({}) failed", from.get());
}

void storage_log::truncate_prefix(offset new_start, term_id prev_term) {
    auto r = log_.truncate_prefix(new_start.get());
    FJORD_ASSERT(r.ok(), "storage truncate_prefix({}) failed", new_start.get());
    prev_term_ = prev_term;
}

bool plausible_envelope(const envelope& e, node_id self) {
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
    if (std::holds_alternative<snapshot_request>(m->body)) return false;
    return true;
}

}  // namespace fjord::raft
