// storage_tool: a small command line over the storage engine, for the
// interop and crash tests (and by hand).
//
//   storage_tool write DIR TOPIC PARTITION RECORDS PER_BATCH VALUE_BYTES SEGMENT_BYTES
//       creates DIR (a log dir) with one partition and appends, then shuts down cleanly
//   storage_tool write-compacted DIR TOPIC PARTITION RECORDS PER_BATCH KEYS SEGMENT_BYTES
//       the same with cleanup.policy=compact: keyed records (some tombstones)
//       from three idempotent producers and plain ones, then cleans the log,
//       shuts down cleanly, prints "records R kept K segments S"
//   storage_tool dump PARTITION_DIR [--values]
//       opens a partition directory (recovering it), reads every batch, prints
//       "batches B records R start S end E" (and every record value with --values)
//   storage_tool producers PARTITION_DIR
//       decodes the partition's latest .snapshot file (Kafka's or Fjord's),
//       then opens the partition as after a clean shutdown (snapshot + the
//       batches after it) and prints both producer tables, by producer id:
//       "snapshot FILE producers N", then "snapshot|log producer_id P epoch E
//       last_sequence S last_offset O"
//   storage_tool crash-writer DIR
//       appends forever, syncing after every append, printing "durable N"
//       after each sync: for kill -9 tests
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "protocol/record_batch.h"
#include "storage/log.h"
#include "storage/log_manager.h"
#include "storage/test_util.h"

using namespace fjord;
using namespace fjord::storage;

namespace {

int usage() {
    std::fprintf(stderr,
                 "usage: storage_tool write DIR TOPIC PARTITION RECORDS PER_BATCH VALUE_BYTES SEGMENT_BYTES\n"
                 "       storage_tool write-compacted DIR TOPIC PARTITION RECORDS PER_BATCH KEYS SEGMENT_BYTES\n"
                 "       storage_tool dump PARTITION_DIR [--values]\n"
                 "       storage_tool producers PARTITION_DIR\n"
                 "       storage_tool crash-writer DIR\n");
    return 2;
}

int cmd_write(char** argv) {
    log_manager_config mc;
    mc.dir = argv[0];
    const topic_partition tp{argv[1], std::atoi(argv[2])};
    const long records = std::atol(argv[3]), per_batch = std::atol(argv[4]);
    const size_t value_bytes = std::strtoul(argv[5], nullptr, 10);
    mc.defaults.segment_bytes = std::strtoull(argv[6], nullptr, 10);
    auto m = log_manager::open(posix_file_system(), mc, 0);
    if (!m) return std::fprintf(stderr, "open %s: %s\n", argv[0], describe(m.error())), 1;
    uuid id{};
    for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i + 1);
    auto l = (*m)->create_log(tp, mc.defaults, &id);
    if (!l) return std::fprintf(stderr, "create: %s\n", describe(l.error())), 1;
    long written = 0;
    int32_t epoch = 0;
    while (written < records) {
        const int n = static_cast<int>(std::min(per_batch, records - written));
        auto b = testing::make_batch(n, value_bytes, static_cast<uint64_t>(written), 1700000000000 + written,
                                     written % 3 == 0 ? protocol::codec::none : protocol::codec::lz4);
        if (written > records / 2) epoch = 1;
        auto r = (*l)->append(b, {.now_ms = 1700000000000, .leader_epoch = epoch});
        if (!r) return std::fprintf(stderr, "append: %s\n", describe(r.error())), 1;
        written += n;
    }
    if (auto r = (*m)->shutdown(); !r) return std::fprintf(stderr, "shutdown: %s\n", describe(r.error())), 1;
    std::printf("records %ld segments %zu\n", written, (*l)->segment_count());
    return 0;
}

int cmd_dump(int argc, char** argv) {
    std::string dir = argv[0];
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    const bool values = argc > 1 && std::strcmp(argv[1], "--values") == 0;
    topic_partition tp;
    const std::string name = dir.substr(dir.find_last_of('/') + 1);
    if (!topic_partition::from_dir_name(name, tp))
        return std::fprintf(stderr, "%s: not a partition dir\n", dir.c_str()), 1;
    file_cache cache(posix_file_system(), 64);
    std::string detail;
    recovery_report rep;
    auto l = storage::log::open(cache, dir, tp, log_config{}, {}, detail, &rep);
    if (!l) return std::fprintf(stderr, "open %s: %s: %s\n", dir.c_str(), describe(l.error()), detail.c_str()), 1;
    if (!rep.detail.empty()) std::fprintf(stderr, "recovery: %s\n", rep.detail.c_str());
    long batches = 0, records = 0;
    std::vector<uint8_t> scratch;
    int64_t o = (*l)->start_offset();
    while (o < (*l)->end_offset()) {
        auto r = (*l)->read(o, 1 << 20, INT64_MAX);
        if (!r)
            return std::fprintf(stderr, "read at %ld: %s %s\n", long(o), describe(r.error()),
                                (*l)->offline_detail().c_str()),
                   1;
        if (r->chunks.empty()) break;
        for (const auto& c : r->chunks) {
            protocol::batch_splitter s(c);
            while (auto b = s.next()) {
                ++batches;
                if (auto v = b->validate_all(scratch, 64 << 20, {.dense_offsets = false}); !v) {
                    return std::fprintf(stderr, "batch %ld invalid: %s\n", long(b->base_offset()),
                                        protocol::describe(v.error())),
                           1;
                }
                if (b->is_control()) continue;
                auto payload = b->payload(scratch);
                auto rr = b->records(*payload);
                protocol::record_view rec;
                while (rr.next(rec)) {
                    ++records;
                    if (values) {
                        if (rec.value) std::fwrite(rec.value->data(), 1, rec.value->size(), stdout);
                        std::fputc('\n', stdout);
                    }
                }
            }
        }
        o = r->next_offset;
    }
    std::printf("batches %ld records %ld start %ld end %ld\n", batches, records, long((*l)->start_offset()),
                long((*l)->end_offset()));
    return 0;
}

void print_producers(const char* source, const producer_state& ps) {
    std::vector<const producer_entry*> es;
    for (const auto& [id, e] : ps.entries()) es.push_back(&e);
    std::sort(es.begin(), es.end(), [](auto* a, auto* b) { return a->producer_id < b->producer_id; });
    for (const auto* e : es) {
        const producer_batch* last = e->last();
        std::printf("%s producer_id %ld epoch %d last_sequence %d last_offset %ld\n", source, long(e->producer_id),
                    int(e->epoch), last ? int(last->last_seq) : -1, last ? long(last->last_offset) : -1L);
    }
}

int cmd_producers(char** argv) {
    std::string dir = argv[0];
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    topic_partition tp;
    if (!topic_partition::from_dir_name(dir.substr(dir.find_last_of('/') + 1), tp))
        return std::fprintf(stderr, "%s: not a partition dir\n", dir.c_str()), 1;
    auto names = posix_file_system().list_dir(dir);
    if (!names) return std::fprintf(stderr, "list %s: %s\n", dir.c_str(), describe(names.error())), 1;
    int64_t latest = -1;
    for (const auto& n : *names) {
        if (auto off = parse_producer_snapshot_name(n)) latest = std::max(latest, *off);
    }
    if (latest >= 0) {
        const std::string name = producer_snapshot_name(latest);
        auto text = read_small_file(posix_file_system(), dir + "/" + name);
        if (!text) return std::fprintf(stderr, "read %s: %s\n", name.c_str(), describe(text.error())), 1;
        producer_state snap;
        if (!snap.decode_snapshot(std::span(reinterpret_cast<const uint8_t*>(text->data()), text->size())))
            return std::fprintf(stderr, "%s: not a valid producer snapshot\n", name.c_str()), 1;
        std::printf("snapshot %s producers %zu\n", name.c_str(), snap.size());
        print_producers("snapshot", snap);
    } else {
        std::printf("snapshot none producers 0\n");
    }
    file_cache cache(posix_file_system(), 64);
    std::string detail;
    storage::log::open_options o;
    o.clean_shutdown = true;  // as after Kafka's clean stop: the latest snapshot, then the batches after it
    auto l = storage::log::open(cache, dir, tp, log_config{}, o, detail);
    if (!l) return std::fprintf(stderr, "open %s: %s: %s\n", dir.c_str(), describe(l.error()), detail.c_str()), 1;
    print_producers("log", (*l)->producers());
    return 0;
}

int cmd_crash_writer(char** argv) {
    log_manager_config mc;
    mc.dir = argv[0];
    mc.defaults.segment_bytes = 256 << 10;
    auto m = log_manager::open(posix_file_system(), mc, 0);
    if (!m) return std::fprintf(stderr, "open: %s\n", describe(m.error())), 1;
    const topic_partition tp{"crash", 0};
    storage::log* l = (*m)->get(tp);
    if (!l) {
        auto c = (*m)->create_log(tp, mc.defaults, nullptr);
        if (!c) return std::fprintf(stderr, "create: %s\n", describe(c.error())), 1;
        l = *c;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::printf("start %ld\n", long(l->end_offset()));
    for (uint64_t i = 0;; ++i) {
        auto b = testing::make_batch(1 + static_cast<int>(i % 7), 100 + (i * 37) % 3000, i, 1);
        if (auto r = l->append(b, {.now_ms = 1}); !r)
            return std::fprintf(stderr, "append: %s\n", describe(r.error())), 1;
        if (i % 3 == 0) {
            if (auto r = l->sync(); !r) return std::fprintf(stderr, "sync: %s\n", describe(r.error())), 1;
            std::printf("durable %ld\n", long(l->durable_offset()));
        }
        if (i % 50 == 0) (void)(*m)->checkpoint();
    }
}

int cmd_write_compacted(char** argv) {
    log_manager_config mc;
    mc.dir = argv[0];
    const topic_partition tp{argv[1], std::atoi(argv[2])};
    const long records = std::atol(argv[3]), per_batch = std::atol(argv[4]), keys = std::atol(argv[5]);
    mc.defaults.segment_bytes = std::strtoull(argv[6], nullptr, 10);
    mc.defaults.compact = true;
    mc.defaults.delete_ = false;
    auto m = log_manager::open(posix_file_system(), mc, 0);
    if (!m) return std::fprintf(stderr, "open %s: %s\n", argv[0], describe(m.error())), 1;
    auto l = (*m)->create_log(tp, mc.defaults, nullptr);
    if (!l) return std::fprintf(stderr, "create: %s\n", describe(l.error())), 1;
    long written = 0;
    int32_t seq[3] = {0, 0, 0};
    std::string key, value;
    while (written < records) {
        const int n = static_cast<int>(std::min(per_batch, records - written));
        const long batch = written / per_batch;
        protocol::batch_options o;
        o.compression = batch % 3 == 0 ? protocol::codec::none : protocol::codec::lz4;
        if (batch % 2 == 0) {
            const int p = static_cast<int>(batch / 2 % 3);
            o.producer_id = 1000 + p;
            o.producer_epoch = 0;
            o.base_sequence = seq[p];
            seq[p] += n;
        }
        protocol::batch_builder b(o);
        for (int i = 0; i < n; ++i) {
            const long r = written + i;
            key = "key-" + std::to_string((r * 7919) % keys);
            value = "value-" + std::to_string(r);
            const auto k = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size());
            protocol::nullable_bytes v;
            if (r % 11 != 0) v = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()), value.size());
            b.add(1700000000000 + r, k, v);
        }
        auto built = b.build();
        if (!built) return std::fprintf(stderr, "build failed\n"), 1;
        auto r = (*l)->append(*built, {.now_ms = 1700000000000});
        if (!r) return std::fprintf(stderr, "append: %s\n", describe(r.error())), 1;
        written += n;
    }
    if (auto r = (*l)->roll(1700000000000); !r) return std::fprintf(stderr, "roll: %s\n", describe(r.error())), 1;
    if (auto r = (*l)->sync(); !r) return std::fprintf(stderr, "sync: %s\n", describe(r.error())), 1;
    compactor c(posix_file_system(), size_t{1} << 20);
    auto st = (*l)->compact(1700000000000, c);
    if (!st) return std::fprintf(stderr, "compact: %s %s\n", describe(st.error()), (*l)->offline_detail().c_str()), 1;
    const uint64_t kept = st->records_read - st->records_dropped;
    if (auto r = (*m)->shutdown(); !r) return std::fprintf(stderr, "shutdown: %s\n", describe(r.error())), 1;
    std::printf("records %ld kept %lu segments %zu\n", written, static_cast<unsigned long>(kept),
                (*l)->segment_count());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string cmd = argv[1];
    if (cmd == "write" && argc == 9) return cmd_write(argv + 2);
    if (cmd == "write-compacted" && argc == 9) return cmd_write_compacted(argv + 2);
    if (cmd == "dump") return cmd_dump(argc - 2, argv + 2);
    if (cmd == "crash-writer") return cmd_crash_writer(argv + 2);
    if (cmd == "producers" && argc == 3) return cmd_producers(argv + 2);
    return usage();
}
