// fjord_loadgen: a Kafka load generator for end-to-end broker benchmarks,
// built on librdkafka's C API so that it measures a broker through the same
// client most Kafka applications use. It speaks only the Kafka protocol and
// links nothing of Fjord, so the same binary drives Fjord and the reference
// Apache Kafka broker alike.
//
// Modes (README.md says what each figure means):
//   produce   N bytes of fixed-size records to a topic with P partitions
//   consume   read a topic from the beginning with assign() (no group) until
//             N records have arrived
//   latency   produce at a fixed rate for T seconds (acks=all by default) and
//             report enqueue -> delivery-report latency percentiles
//   e2e       produce at a fixed rate and consume the same topic in the same
//             process: publish and end-to-end latency from time stamps (ns,
//             CLOCK_MONOTONIC) carried in each payload, with and without
//             coordinated-omission correction (latency from the record's
//             scheduled send time rather than from when it was really sent)
//   metadata  wait until the broker answers a Metadata request; with --topic,
//             also until that topic (auto-created) has leaders on all partitions
//   startup   fork/exec the command after "--", time from exec to the first
//             successful Metadata answer, then SIGTERM it and time the stop
//
// Every run prints one JSON line on stdout and one human line on stderr. The
// exit status is 0 only if the run finished with no delivery or fetch errors.
//
// Threading: produce/consume/metadata/startup are single-threaded apart from
// librdkafka's own threads; latency adds one thread that serves delivery
// reports (rd_kafka_poll) so that their time stamps are not delayed by the
// pacing sleeps of the producing thread; e2e adds that thread and a consumer
// thread. Nothing on the per-record path of e2e allocates: payloads are
// written into one scratch buffer that librdkafka copies (RD_KAFKA_MSG_F_COPY),
// and time stamps go to arrays sized before the clock starts.
//
// Every JSON line carries the process's CPU time (getrusage: all threads,
// librdkafka's included), so a result limited by the generator shows.
#include <arpa/inet.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------------------
// Small helpers

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until_ns(int64_t deadline_ns) {
    timespec ts{};
    ts.tv_sec = deadline_ns / 1'000'000'000;
    ts.tv_nsec = deadline_ns % 1'000'000'000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

[[noreturn]] void die(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fputs("fjord_loadgen: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
    std::exit(2);
}

// "512MiB", "1G", "1000" -> bytes. Binary suffixes (K/M/G and KiB/MiB/GiB)
// are powers of 1024; KB/MB/GB are powers of 1000.
int64_t parse_size(const std::string& s) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || v < 0) die("bad size '%s'", s.c_str());
    std::string suffix(end);
    for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    double mult = 1;
    if (suffix.empty() || suffix == "B")
        mult = 1;
    else if (suffix == "K" || suffix == "KIB")
        mult = 1024.0;
    else if (suffix == "M" || suffix == "MIB")
        mult = 1024.0 * 1024;
    else if (suffix == "G" || suffix == "GIB")
        mult = 1024.0 * 1024 * 1024;
    else if (suffix == "KB")
        mult = 1e3;
    else if (suffix == "MB")
        mult = 1e6;
    else if (suffix == "GB")
        mult = 1e9;
    else
        die("bad size suffix in '%s'", s.c_str());
    return static_cast<int64_t>(v * mult);
}

// One JSON object, printed on one line; values are added in order.
class json_line {
public:
    json_line& str(const char* key, const std::string& v) {
        sep();
        out_ += '"';
        out_ += key;
        out_ += "\":\"";
        for (char c : v) {
            if (c == '"' || c == '\\') out_ += '\\';
            if (static_cast<unsigned char>(c) < 0x20) continue;
            out_ += c;
        }
        out_ += '"';
        return *this;
    }
    json_line& num(const char* key, int64_t v) {
        sep();
        out_ += '"';
        out_ += key;
        out_ += "\":";
        out_ += std::to_string(v);
        return *this;
    }
    json_line& num(const char* key, double v) {
        sep();
        char buf[64];
        if (std::isfinite(v))
            std::snprintf(buf, sizeof buf, "%.6g", v);
        else
            std::snprintf(buf, sizeof buf, "null");
        out_ += '"';
        out_ += key;
        out_ += "\":";
        out_ += buf;
        return *this;
    }
    json_line& nums(const char* key, const std::vector<double>& v) {
        sep();
        out_ += '"';
        out_ += key;
        out_ += "\":[";
        char buf[64];
        for (size_t i = 0; i < v.size(); ++i) {
            if (std::isfinite(v[i]))
                std::snprintf(buf, sizeof buf, "%s%.6g", i ? "," : "", v[i]);
            else
                std::snprintf(buf, sizeof buf, "%snull", i ? "," : "");
            out_ += buf;
        }
        out_ += ']';
        return *this;
    }
    // CPU seconds of this process so far (user, system), all threads.
    json_line& cpu() {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        auto secs = [](const timeval& tv) {
            return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
        };
        num("cpu_user_s", secs(ru.ru_utime));
        num("cpu_sys_s", secs(ru.ru_stime));
        return *this;
    }
    void print() const {
        std::printf("{%s}\n", out_.c_str());
        std::fflush(stdout);
    }

private:
    void sep() {
        if (!out_.empty()) out_ += ',';
    }
    std::string out_;
};

// ---------------------------------------------------------------------------
// Options

struct options {
    std::string mode;
    std::string bootstrap = "127.0.0.1:9092";
    std::string topic = "bench";
    bool topic_given = false;  // metadata: also wait for this topic
    std::string label;
    std::string acks;  // empty: mode default (produce "1", latency "all")
    int partitions = 16;
    int first_partition = 0;   // produce/consume: use partitions [first, first + count)
    int partition_count = -1;  // -1: all from first_partition on
    std::string config_out;    // append the client's non-default librdkafka settings here
    int64_t bytes = 512LL * 1024 * 1024;
    int64_t records = -1;  // -1: bytes / record_bytes
    int record_bytes = 1024;
    int linger_ms = -1;  // -1: mode default (produce 5, latency 0)
    int batch_bytes = 1'000'000;
    int sticky_records = -1;  // -1: batch_bytes / record_bytes
    int rate = 5000;
    double seconds = 10;
    double timeout_s = 300;
    double stop_timeout_s = 30;  // startup: SIGKILL if SIGTERM has not stopped the child by then
    std::string log_file;        // startup: child's stdout/stderr
    std::vector<std::pair<std::string, std::string>> extra;  // -X key=value
    std::vector<std::string> command;                        // startup: after "--"
};

void usage() {
    std::fputs(
        "usage: fjord_loadgen MODE [options]\n"
        "modes: produce | consume | latency | e2e | metadata | startup [options] -- CMD ARGS...\n"
        "  --bootstrap HOST:PORT   broker (default 127.0.0.1:9092)\n"
        "  --topic T               topic (default bench)\n"
        "  --partitions P          partitions expected/used (default 16; the topic is auto-created\n"
        "                          by Metadata, so P must match the broker's num.partitions)\n"
        "  --bytes N               produce: total payload bytes (default 512MiB; K/M/G suffixes)\n"
        "  --records N             produce/consume: record count (default bytes/record-size)\n"
        "  --record-size S         record value bytes (default 1024)\n"
        "  --acks 0|1|all          produce default 1, latency default all\n"
        "  --linger-ms L           produce default 5, latency default 0\n"
        "  --batch-bytes B         batch.size (default 1000000)\n"
        "  --sticky-records K      produce: records sent to one partition before moving to the\n"
        "                          next (default batch-bytes/record-size, like a sticky partitioner)\n"
        "  --first-partition F     produce/consume: first partition used (default 0)\n"
        "  --partition-count N     produce/consume: partitions used from F on (default: the rest)\n"
        "  --rate R                latency/e2e: records/s (default 5000)\n"
        "  --seconds T             latency/e2e: duration (default 10)\n"
        "  --config-out FILE       append the clients' settings that differ from librdkafka's defaults\n"
        "  --timeout-s S           give up after S seconds (default 300)\n"
        "  --label L               copied into the JSON line\n"
        "  --log FILE              startup: child's stdout+stderr (default /dev/null)\n"
        "  --stop-timeout-s S      startup: SIGKILL the child if SIGTERM has not stopped it (default 30)\n"
        "  -X key=value            extra librdkafka property (repeatable)\n",
        stderr);
}

options parse_args(int argc, char** argv) {
    if (argc < 2) {
        usage();
        std::exit(2);
    }
    options o;
    o.mode = argv[1];
    if (o.mode == "-h" || o.mode == "--help") {
        usage();
        std::exit(0);
    }
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {
            for (++i; i < argc; ++i) o.command.emplace_back(argv[i]);
            break;
        }
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die("%s needs a value", a.c_str());
            return argv[++i];
        };
        if (a == "--bootstrap")
            o.bootstrap = value();
        else if (a == "--topic") {
            o.topic = value();
            o.topic_given = true;
        } else if (a == "--label")
            o.label = value();
        else if (a == "--acks")
            o.acks = value();
        else if (a == "--partitions")
            o.partitions = std::stoi(value());
        else if (a == "--first-partition")
            o.first_partition = std::stoi(value());
        else if (a == "--partition-count")
            o.partition_count = std::stoi(value());
        else if (a == "--config-out")
            o.config_out = value();
        else if (a == "--bytes")
            o.bytes = parse_size(value());
        else if (a == "--records")
            o.records = std::stoll(value());
        else if (a == "--record-size")
            o.record_bytes = static_cast<int>(parse_size(value()));
        else if (a == "--linger-ms")
            o.linger_ms = std::stoi(value());
        else if (a == "--batch-bytes")
            o.batch_bytes = static_cast<int>(parse_size(value()));
        else if (a == "--sticky-records")
            o.sticky_records = std::stoi(value());
        else if (a == "--rate")
            o.rate = std::stoi(value());
        else if (a == "--seconds")
            o.seconds = std::stod(value());
        else if (a == "--timeout-s")
            o.timeout_s = std::stod(value());
        else if (a == "--stop-timeout-s")
            o.stop_timeout_s = std::stod(value());
        else if (a == "--log")
            o.log_file = value();
        else if (a == "-X") {
            std::string kv = value();
            auto eq = kv.find('=');
            if (eq == std::string::npos) die("-X needs key=value, got '%s'", kv.c_str());
            o.extra.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        } else {
            usage();
            die("unknown option '%s'", a.c_str());
        }
    }
    if (o.record_bytes <= 0) die("--record-size must be > 0");
    if (o.partitions <= 0) die("--partitions must be > 0");
    if (o.records < 0) o.records = o.bytes / o.record_bytes;
    if (o.sticky_records <= 0) o.sticky_records = std::max(1, o.batch_bytes / o.record_bytes);
    return o;
}

// ---------------------------------------------------------------------------
// librdkafka plumbing

void set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", key.c_str(), value.c_str(), err);
}

rd_kafka_conf_t* base_conf(const options& o) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o.bootstrap);
    set(conf, "client.id", "fjord_loadgen");
    set(conf, "log_level", "4");  // warnings and worse
    return conf;
}

void apply_extra(rd_kafka_conf_t* conf, const options& o) {
    for (const auto& [k, v] : o.extra) set(conf, k, v);
}

// Client-side errors (connection refused, broker down, ...) are counted, not
// fatal: the run's result says how many there were.
std::atomic<int64_t> client_errors{0};

void error_cb(rd_kafka_t*, int err, const char* reason, void*) {
    client_errors.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "fjord_loadgen: client error %s: %s\n",
                 rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
}

// --config-out: where the settings of each client (those that differ from
// librdkafka's defaults) are appended, for the benchmark report.
std::string config_out_file;

// Appends "key=value" for every global and default-topic property of `conf`
// that differs from a fresh configuration's; callbacks and opaques are left out.
void dump_config(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
    auto to_map = [](const char** arr, size_t n) {
        std::map<std::string, std::string> m;
        for (size_t i = 0; i + 1 < n; i += 2) m[arr[i]] = arr[i + 1];
        return m;
    };
    auto dump_global = [&](const rd_kafka_conf_t* c) {
        size_t n = 0;
        const char** arr = rd_kafka_conf_dump(const_cast<rd_kafka_conf_t*>(c), &n);
        auto m = to_map(arr, n);
        rd_kafka_conf_dump_free(arr, n);
        return m;
    };
    auto dump_topic = [&](const rd_kafka_topic_conf_t* c) {
        if (!c) return std::map<std::string, std::string>{};
        size_t n = 0;
        const char** arr = rd_kafka_topic_conf_dump(const_cast<rd_kafka_topic_conf_t*>(c), &n);
        auto m = to_map(arr, n);
        rd_kafka_conf_dump_free(arr, n);
        return m;
    };
    rd_kafka_conf_t* def = rd_kafka_conf_new();
    rd_kafka_topic_conf_t* def_topic = rd_kafka_topic_conf_new();
    auto mine = dump_global(conf), base = dump_global(def);
    auto mine_t = dump_topic(rd_kafka_conf_get_default_topic_conf(conf)), base_t = dump_topic(def_topic);
    rd_kafka_conf_destroy(def);
    rd_kafka_topic_conf_destroy(def_topic);
    FILE* f = std::fopen(config_out_file.c_str(), "a");
    if (!f) die("--config-out %s: %s", config_out_file.c_str(), std::strerror(errno));
    std::fprintf(f, "# librdkafka %s %s\n", rd_kafka_version_str(),
                 type == RD_KAFKA_PRODUCER ? "producer" : "consumer");
    auto skip = [](const std::string& k) {
        return (k.size() > 3 && k.compare(k.size() - 3, 3, "_cb") == 0) || k.find("opaque") != std::string::npos ||
               k == "default_topic_conf";
    };
    for (const auto& [k, v] : mine)
        if (!skip(k) && (!base.count(k) || base[k] != v)) std::fprintf(f, "%s=%s\n", k.c_str(), v.c_str());
    for (const auto& [k, v] : mine_t)
        if (!skip(k) && (!base_t.count(k) || base_t[k] != v)) std::fprintf(f, "%s=%s\n", k.c_str(), v.c_str());
    std::fclose(f);
}

rd_kafka_t* make_client(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
    char err[512];
    if (!config_out_file.empty()) dump_config(type, conf);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new: %s", err);
    return rk;
}

// Asks for the topic's metadata until every partition has a leader (the
// Metadata request auto-creates the topic). Returns the partition count.
int wait_for_topic(rd_kafka_t* rk, const options& o) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
    const int64_t deadline = now_ns() + static_cast<int64_t>(o.timeout_s * 1e9);
    std::string last = "no answer";
    while (now_ns() < deadline) {
        const rd_kafka_metadata_t* md = nullptr;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int count = -1;
            for (int t = 0; t < md->topic_cnt; ++t) {
                const auto& tm = md->topics[t];
                if (o.topic != tm.topic) continue;
                if (tm.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    last = rd_kafka_err2name(tm.err);
                    break;
                }
                bool leaders = tm.partition_cnt > 0;
                for (int p = 0; p < tm.partition_cnt; ++p)
                    if (tm.partitions[p].leader < 0 || tm.partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR)
                        leaders = false;
                if (leaders)
                    count = tm.partition_cnt;
                else
                    last = "partitions without leader";
            }
            rd_kafka_metadata_destroy(md);
            if (count > 0) {
                rd_kafka_topic_destroy(rkt);
                return count;
            }
        } else {
            last = rd_kafka_err2name(err);
        }
        usleep(50'000);
    }
    die("topic %s not ready after %.0f s: %s", o.topic.c_str(), o.timeout_s, last.c_str());
}

int checked_partitions(rd_kafka_t* rk, const options& o) {
    int n = wait_for_topic(rk, o);
    if (n != o.partitions)
        std::fprintf(stderr, "fjord_loadgen: topic %s has %d partitions, --partitions said %d; using %d\n",
                     o.topic.c_str(), n, o.partitions, n);
    return n;
}

// The partitions this run uses: [first, first + count) of the topic's.
struct partition_range {
    int first = 0;
    int count = 0;
};

partition_range used_partitions(int topic_partitions, const options& o) {
    partition_range r{o.first_partition,
                      o.partition_count < 0 ? topic_partitions - o.first_partition : o.partition_count};
    if (r.first < 0 || r.count <= 0 || r.first + r.count > topic_partitions)
        die("partitions [%d, %d) are not within the topic's %d", r.first, r.first + r.count, topic_partitions);
    return r;
}

std::vector<char> make_payload(int bytes) {
    // Incompressible bytes, so that a broker or a disk that compresses gains nothing.
    std::vector<char> buf(static_cast<size_t>(bytes));
    std::mt19937_64 rng(42);
    for (auto& c : buf) c = static_cast<char>(rng());
    return buf;
}

// ---------------------------------------------------------------------------
// produce

struct produce_state {
    int64_t delivered = 0;
    int64_t delivered_bytes = 0;
    int64_t errors = 0;
    std::map<std::string, int64_t> error_names;
    // latency mode only
    std::vector<int64_t>* enqueue_ns = nullptr;
    std::vector<int64_t>* latency_ns = nullptr;
};

void dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* st = static_cast<produce_state*>(opaque);
    const int64_t t = now_ns();
    if (m->err) {
        st->errors++;
        st->error_names[rd_kafka_err2name(m->err)]++;
        return;
    }
    st->delivered++;
    st->delivered_bytes += static_cast<int64_t>(m->len);
    if (st->latency_ns) {
        auto i = reinterpret_cast<uintptr_t>(m->_private);
        (*st->latency_ns)[i] = t - (*st->enqueue_ns)[i];
    }
}

rd_kafka_t* make_producer(const options& o, produce_state* st, const std::string& acks, int linger_ms) {
    rd_kafka_conf_t* conf = base_conf(o);
    set(conf, "acks", acks);
    set(conf, "linger.ms", std::to_string(linger_ms));
    set(conf, "batch.size", std::to_string(o.batch_bytes));
    set(conf, "compression.type", "none");
    set(conf, "enable.idempotence", "false");
    set(conf, "queue.buffering.max.messages", "1000000");
    set(conf, "queue.buffering.max.kbytes", "1048576");
    set(conf, "message.timeout.ms", std::to_string(static_cast<int64_t>(o.timeout_s * 1000)));
    apply_extra(conf, o);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    return make_client(RD_KAFKA_PRODUCER, conf);
}

std::string errors_text(const produce_state& st) {
    std::string s;
    for (const auto& [name, n] : st.error_names) s += name + "=" + std::to_string(n) + " ";
    return s;
}

int run_produce(const options& o) {
    const std::string acks = o.acks.empty() ? "1" : o.acks;
    const int linger = o.linger_ms < 0 ? 5 : o.linger_ms;
    produce_state st;
    rd_kafka_t* rk = make_producer(o, &st, acks, linger);
    const int partitions = checked_partitions(rk, o);
    const partition_range used = used_partitions(partitions, o);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
    const auto payload = make_payload(o.record_bytes);

    const int64_t t0 = now_ns();
    int64_t queue_full_waits = 0;
    for (int64_t i = 0; i < o.records; ++i) {
        const auto partition = static_cast<int32_t>(used.first + (i / o.sticky_records) % used.count);
        // Flag 0: librdkafka neither copies nor frees the payload, which lives until exit.
        while (rd_kafka_produce(rkt, partition, 0, const_cast<char*>(payload.data()), payload.size(), nullptr, 0,
                                nullptr) != 0) {
            rd_kafka_resp_err_t err = rd_kafka_last_error();
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce: %s", rd_kafka_err2str(err));
            queue_full_waits++;
            rd_kafka_poll(rk, 5);
        }
        if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
        if (now_ns() - t0 > static_cast<int64_t>(o.timeout_s * 1e9))
            die("produce: timeout after %" PRId64 " records", i);
    }
    const int64_t t_enqueued = now_ns();
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, static_cast<int>(o.timeout_s * 1000));
    const int64_t t1 = now_ns();
    const int64_t undelivered = rd_kafka_outq_len(rk);

    const double secs = static_cast<double>(t1 - t0) / 1e9;
    const double mbps = static_cast<double>(st.delivered_bytes) / 1e6 / secs;
    const double rps = static_cast<double>(st.delivered) / secs;
    const int64_t errors = st.errors + undelivered + (ferr ? 1 : 0);
    json_line()
        .str("mode", "produce")
        .str("label", o.label)
        .str("topic", o.topic)
        .str("acks", acks)
        .num("partitions", int64_t{partitions})
        .num("record_bytes", int64_t{o.record_bytes})
        .num("linger_ms", int64_t{linger})
        .num("batch_bytes", int64_t{o.batch_bytes})
        .num("records", st.delivered)
        .num("bytes", st.delivered_bytes)
        .num("seconds", secs)
        .num("enqueue_seconds", static_cast<double>(t_enqueued - t0) / 1e9)
        .num("mb_per_s", mbps)
        .num("records_per_s", rps)
        .num("errors", errors)
        .str("error_names", errors_text(st))
        .num("client_errors", client_errors.load())
        .num("queue_full_waits", queue_full_waits)
        .num("start_mono_ns", t0)
        .num("end_mono_ns", t1)
        .num("first_partition", int64_t{used.first})
        .num("partitions_used", int64_t{used.count})
        .cpu()
        .print();
    std::fprintf(stderr,
                 "produce %s acks=%s: %" PRId64 " records, %.1f MB in %.2f s = %.1f MB/s, %.0f records/s, %" PRId64
                 " delivery errors %s\n",
                 o.topic.c_str(), acks.c_str(), st.delivered, static_cast<double>(st.delivered_bytes) / 1e6, secs, mbps,
                 rps, errors, errors_text(st).c_str());
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return errors == 0 && st.delivered == o.records ? 0 : 1;
}

// ---------------------------------------------------------------------------
// latency

double percentile_ms(const std::vector<int64_t>& sorted, double q) {
    if (sorted.empty()) return NAN;
    auto idx = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    idx = std::min(sorted.size() - 1, idx == 0 ? 0 : idx - 1);
    return static_cast<double>(sorted[idx]) / 1e6;
}

int run_latency(const options& o) {
    const std::string acks = o.acks.empty() ? "all" : o.acks;
    const int linger = o.linger_ms < 0 ? 0 : o.linger_ms;
    if (o.rate <= 0 || o.seconds <= 0) die("latency needs --rate > 0 and --seconds > 0");
    const auto total = static_cast<int64_t>(o.rate * o.seconds);
    std::vector<int64_t> enqueue(static_cast<size_t>(total), 0);
    std::vector<int64_t> latency(static_cast<size_t>(total), -1);
    produce_state st;
    rd_kafka_t* rk = make_producer(o, &st, acks, linger);
    const int partitions = checked_partitions(rk, o);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
    const auto payload = make_payload(o.record_bytes);

    // Warm-up: one record per partition so that connections and leaders are
    // known before the clock starts; not counted.
    for (int p = 0; p < partitions; ++p)
        rd_kafka_produce(rkt, p, 0, const_cast<char*>(payload.data()), payload.size(), nullptr, 0, nullptr);
    rd_kafka_flush(rk, 10'000);
    const int64_t warm_errors = st.errors;
    st = produce_state{};
    st.enqueue_ns = &enqueue;
    st.latency_ns = &latency;

    std::atomic<bool> done{false};
    std::thread poller([&] {
        while (!done.load(std::memory_order_acquire)) rd_kafka_poll(rk, 50);
    });

    const int64_t interval_ns = 1'000'000'000 / o.rate;
    const int64_t t0 = now_ns();
    int64_t late = 0;  // records enqueued more than 1 ms after their slot
    for (int64_t i = 0; i < total; ++i) {
        const int64_t due = t0 + i * interval_ns;
        if (now_ns() < due) sleep_until_ns(due);
        const int64_t t = now_ns();
        if (t - due > 1'000'000) late++;
        enqueue[static_cast<size_t>(i)] = t;
        const auto partition = static_cast<int32_t>(i % partitions);
        while (rd_kafka_produce(rkt, partition, 0, const_cast<char*>(payload.data()), payload.size(), nullptr, 0,
                                reinterpret_cast<void*>(static_cast<uintptr_t>(i))) != 0) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            usleep(100);
        }
    }
    const int64_t t_sent = now_ns();
    rd_kafka_flush(rk, static_cast<int>(o.timeout_s * 1000));
    done.store(true, std::memory_order_release);
    poller.join();
    const int64_t undelivered = rd_kafka_outq_len(rk);

    std::vector<int64_t> lat;
    lat.reserve(latency.size());
    for (int64_t v : latency)
        if (v >= 0) lat.push_back(v);
    std::sort(lat.begin(), lat.end());
    double sum = 0;
    for (int64_t v : lat) sum += static_cast<double>(v);
    const double mean_ms = lat.empty() ? NAN : sum / static_cast<double>(lat.size()) / 1e6;
    const double achieved = static_cast<double>(total) / (static_cast<double>(t_sent - t0) / 1e9);
    const int64_t errors = st.errors + undelivered + warm_errors;
    const double p50 = percentile_ms(lat, 0.50), p99 = percentile_ms(lat, 0.99), p999 = percentile_ms(lat, 0.999);
    const double max = lat.empty() ? NAN : static_cast<double>(lat.back()) / 1e6;
    json_line()
        .str("mode", "latency")
        .str("label", o.label)
        .str("topic", o.topic)
        .str("acks", acks)
        .num("partitions", int64_t{partitions})
        .num("record_bytes", int64_t{o.record_bytes})
        .num("linger_ms", int64_t{linger})
        .num("rate", int64_t{o.rate})
        .num("achieved_rate", achieved)
        .num("seconds", o.seconds)
        .num("records", static_cast<int64_t>(lat.size()))
        .num("bytes", st.delivered_bytes)
        .num("p50_ms", p50)
        .num("p99_ms", p99)
        .num("p999_ms", p999)
        .num("max_ms", max)
        .num("mean_ms", mean_ms)
        .num("late_enqueues", late)
        .num("errors", errors)
        .str("error_names", errors_text(st))
        .num("client_errors", client_errors.load())
        .cpu()
        .print();
    std::fprintf(
        stderr,
        "latency %s acks=%s %d rec/s (achieved %.0f) x %.0f s: p50 %.3f ms, p99 %.3f ms, p999 %.3f ms, max %.3f ms,"
        " mean %.3f ms, %" PRId64 " errors, %" PRId64 " late enqueues\n",
        o.topic.c_str(), acks.c_str(), o.rate, achieved, o.seconds, p50, p99, p999, max, mean_ms, errors, late);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return errors == 0 && static_cast<int64_t>(lat.size()) == total ? 0 : 1;
}

// ---------------------------------------------------------------------------
// e2e: fixed-rate producer and a consumer of the same topic in one process

// The first bytes of every e2e payload; the rest is the incompressible filler.
struct e2e_header {
    uint64_t magic;
    int64_t seq;          // -1 for warm-up records
    int64_t intended_ns;  // scheduled send time (CLOCK_MONOTONIC)
    int64_t sent_ns;      // when produce() was first called for it
};
constexpr uint64_t e2e_magic = 0x6532656472726f6aULL;  // "jorrde2e" little-endian

struct e2e_state {
    // Indexed by seq and sized before the clock starts: the per-record path
    // only stores into them. 0 = not yet.
    std::vector<int64_t> intended, sent, acked, received;
    std::atomic<int64_t> warm_received{0};
    std::atomic<int64_t> received_count{0};
    int64_t duplicates = 0;  // consumer thread only
    int64_t foreign = 0;     // records without our header (consumer thread only)
    std::atomic<int64_t> dr_errors{0};
    // delivery-report thread only, read after it stopped
    std::map<std::string, int64_t> error_names;
};

void e2e_dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* st = static_cast<e2e_state*>(opaque);
    const int64_t t = now_ns();
    if (m->err) {
        st->dr_errors++;
        st->error_names[rd_kafka_err2name(m->err)]++;  // error path only
        return;
    }
    const auto seq = static_cast<int64_t>(reinterpret_cast<intptr_t>(m->_private));
    if (seq >= 0 && static_cast<size_t>(seq) < st->acked.size()) st->acked[static_cast<size_t>(seq)] = t;
}

// Quantiles of the latency curves in the JSON (for plots): 0 .. 1 - 1e-5 and max.
const std::vector<double>& curve_quantiles() {
    static const std::vector<double> q = {0.0,   0.1,   0.25,  0.5,    0.75,   0.9,    0.95,    0.98,    0.99,
                                          0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999, 0.99995, 0.99999, 1.0};
    return q;
}

// Latencies (ns) of `end[i] - start[i]` for the records where both are set, sorted.
std::vector<int64_t> differences(const std::vector<int64_t>& start, const std::vector<int64_t>& end) {
    std::vector<int64_t> d;
    d.reserve(end.size());
    for (size_t i = 0; i < end.size(); ++i)
        if (end[i] > 0 && start[i] > 0) d.push_back(end[i] - start[i]);
    std::sort(d.begin(), d.end());
    return d;
}

std::vector<double> curve_ms(const std::vector<int64_t>& sorted) {
    std::vector<double> c;
    for (double q : curve_quantiles())
        c.push_back(q >= 1.0 ? (sorted.empty() ? NAN : static_cast<double>(sorted.back()) / 1e6)
                             : percentile_ms(sorted, std::max(q, 1e-12)));
    return c;
}

int run_e2e(const options& o) {
    const std::string acks = o.acks.empty() ? "all" : o.acks;
    const int linger = o.linger_ms < 0 ? 0 : o.linger_ms;
    if (o.rate <= 0 || o.seconds <= 0) die("e2e needs --rate > 0 and --seconds > 0");
    if (o.record_bytes < static_cast<int>(sizeof(e2e_header)))
        die("e2e needs --record-size >= %zu", sizeof(e2e_header));
    const auto total = static_cast<int64_t>(o.rate * o.seconds);
    e2e_state st;
    st.intended.assign(static_cast<size_t>(total), 0);
    st.sent.assign(static_cast<size_t>(total), 0);
    st.acked.assign(static_cast<size_t>(total), 0);
    st.received.assign(static_cast<size_t>(total), 0);

    // Producer.
    rd_kafka_conf_t* pconf = base_conf(o);
    set(pconf, "acks", acks);
    set(pconf, "linger.ms", std::to_string(linger));
    set(pconf, "batch.size", std::to_string(o.batch_bytes));
    set(pconf, "compression.type", "none");
    set(pconf, "enable.idempotence", "false");
    set(pconf, "queue.buffering.max.messages", "1000000");
    set(pconf, "queue.buffering.max.kbytes", "1048576");
    set(pconf, "message.timeout.ms", std::to_string(static_cast<int64_t>(o.timeout_s * 1000)));
    apply_extra(pconf, o);
    rd_kafka_conf_set_opaque(pconf, &st);
    rd_kafka_conf_set_dr_msg_cb(pconf, e2e_dr_cb);
    rd_kafka_t* prod = make_client(RD_KAFKA_PRODUCER, pconf);
    const int partitions = checked_partitions(prod, o);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(prod, o.topic.c_str(), nullptr);

    // Consumer: every partition from the beginning of the (fresh) topic.
    rd_kafka_conf_t* cconf = base_conf(o);
    set(cconf, "group.id", "fjord-loadgen-e2e");
    set(cconf, "enable.auto.commit", "false");
    set(cconf, "enable.auto.offset.store", "false");
    set(cconf, "enable.partition.eof", "false");
    set(cconf, "auto.offset.reset", "earliest");
    apply_extra(cconf, o);
    rd_kafka_t* cons = make_client(RD_KAFKA_CONSUMER, cconf);
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(parts, o.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_resp_err_t err = rd_kafka_assign(cons, parts)) die("assign: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(cons);
    if (!q) die("no consumer queue");

    std::atomic<bool> done{false};
    std::thread consumer([&] {
        // One record at a time: rd_kafka_consume_batch_queue() waits for a
        // full batch or its timeout, which would add up to that timeout.
        while (!done.load(std::memory_order_acquire)) {
            rd_kafka_message_t* m = rd_kafka_consume_queue(q, 20);
            if (!m) continue;
            const int64_t t = now_ns();
            e2e_header h{};
            if (!m->err && m->len >= sizeof h) {
                std::memcpy(&h, m->payload, sizeof h);
                if (h.magic != e2e_magic) {
                    st.foreign++;
                } else if (h.seq < 0) {
                    st.warm_received.fetch_add(1, std::memory_order_relaxed);
                } else if (h.seq < total && st.received[static_cast<size_t>(h.seq)] == 0) {
                    st.received[static_cast<size_t>(h.seq)] = t;
                    st.received_count.fetch_add(1, std::memory_order_relaxed);
                } else {
                    st.duplicates++;
                }
            }
            rd_kafka_message_destroy(m);
        }
    });
    std::thread poller([&] {
        while (!done.load(std::memory_order_acquire)) rd_kafka_poll(prod, 50);
    });

    std::vector<char> scratch = make_payload(o.record_bytes);
    auto send = [&](int32_t partition, const e2e_header& h) {
        std::memcpy(scratch.data(), &h, sizeof h);
        while (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, scratch.data(), scratch.size(), nullptr, 0,
                                reinterpret_cast<void*>(static_cast<intptr_t>(h.seq))) != 0) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            usleep(100);
        }
    };

    // Warm-up: one record per partition, not counted; the clock starts once
    // the consumer has seen them all (connections, leaders and fetch
    // positions are then established).
    for (int p = 0; p < partitions; ++p) send(p, e2e_header{e2e_magic, -1, now_ns(), now_ns()});
    rd_kafka_flush(prod, 10'000);
    const int64_t warm_deadline = now_ns() + static_cast<int64_t>(std::min(o.timeout_s, 60.0) * 1e9);
    while (st.warm_received.load() < partitions && now_ns() < warm_deadline) usleep(1000);
    if (st.warm_received.load() < partitions)
        std::fprintf(stderr, "fjord_loadgen: e2e: only %" PRId64 " of %d warm-up records came back\n",
                     st.warm_received.load(), partitions);
    const int64_t warm_errors = st.dr_errors.load();

    const int64_t interval_ns = 1'000'000'000 / o.rate;
    const int64_t t0 = now_ns();
    int64_t late = 0;
    for (int64_t i = 0; i < total; ++i) {
        const int64_t due = t0 + i * interval_ns;
        if (now_ns() < due) sleep_until_ns(due);
        const int64_t t = now_ns();
        if (t - due > 1'000'000) late++;
        st.intended[static_cast<size_t>(i)] = due;
        st.sent[static_cast<size_t>(i)] = t;
        send(static_cast<int32_t>(i % partitions), e2e_header{e2e_magic, i, due, t});
    }
    const int64_t t_sent = now_ns();
    rd_kafka_flush(prod, static_cast<int>(o.timeout_s * 1000));
    // Wait for the consumer: until everything came back, or 10 s without progress.
    int64_t last = st.received_count.load(), last_t = now_ns();
    while (st.received_count.load() < total) {
        usleep(1000);
        const int64_t c = st.received_count.load();
        if (c != last) {
            last = c;
            last_t = now_ns();
        } else if (now_ns() - last_t > 10'000'000'000LL) {
            break;
        }
    }
    done.store(true, std::memory_order_release);
    consumer.join();
    poller.join();
    const int64_t undelivered = rd_kafka_outq_len(prod);

    const auto pub = differences(st.intended, st.acked), pub_raw = differences(st.sent, st.acked);
    const auto e2e = differences(st.intended, st.received), e2e_raw = differences(st.sent, st.received);
    const int64_t received = st.received_count.load();
    const int64_t errors = st.dr_errors.load() - warm_errors + undelivered + (total - received) + st.duplicates;
    const double achieved = static_cast<double>(total) / (static_cast<double>(t_sent - t0) / 1e9);
    int64_t bytes = 0, last_ack = t0;
    for (int64_t a : st.acked) {
        bytes += a > 0 ? o.record_bytes : 0;
        last_ack = std::max(last_ack, a);
    }
    // Below the asked rate when the broker could not keep up: then the
    // latencies grow with the length of the run and say little else.
    const double ack_rate = static_cast<double>(pub.size()) / (static_cast<double>(last_ack - t0) / 1e9);
    json_line j;
    j.str("mode", "e2e")
        .str("label", o.label)
        .str("topic", o.topic)
        .str("acks", acks)
        .num("partitions", int64_t{partitions})
        .num("record_bytes", int64_t{o.record_bytes})
        .num("linger_ms", int64_t{linger})
        .num("rate", int64_t{o.rate})
        .num("achieved_rate", achieved)
        .num("ack_rate", ack_rate)
        .num("seconds", o.seconds)
        .num("records", total)
        .num("bytes", bytes)
        .num("acked", static_cast<int64_t>(pub.size()))
        .num("received", received);
    auto pcts = [&](const char* prefix, const std::vector<int64_t>& v) {
        const std::string p(prefix);
        j.num((p + "_p50_ms").c_str(), percentile_ms(v, 0.50))
            .num((p + "_p99_ms").c_str(), percentile_ms(v, 0.99))
            .num((p + "_p999_ms").c_str(), percentile_ms(v, 0.999))
            .num((p + "_max_ms").c_str(), v.empty() ? NAN : static_cast<double>(v.back()) / 1e6);
    };
    // The same from the records scheduled after the first quarter of the run
    // (at most 5 s): what is left once start-up effects (a JIT, first
    // fetches) have passed. Both are reported; neither hides the other.
    const auto steady_ns = static_cast<int64_t>(std::min(5.0, o.seconds / 4) * 1e9);
    std::vector<int64_t> intended_steady = st.intended;
    for (auto& v : intended_steady)
        if (v - t0 < steady_ns) v = 0;
    const auto pub_steady = differences(intended_steady, st.acked);
    const auto e2e_steady = differences(intended_steady, st.received);
    j.num("steady_after_s", static_cast<double>(steady_ns) / 1e9);
    pcts("pub_steady", pub_steady);
    pcts("e2e_steady", e2e_steady);
    pcts("pub", pub);
    pcts("pub_raw", pub_raw);
    pcts("e2e", e2e);
    pcts("e2e_raw", e2e_raw);
    // The worst end-to-end latency of the records scheduled in each second:
    // shows whether a high percentile comes from one stall or from many.
    std::vector<double> worst_per_s(static_cast<size_t>(std::ceil(o.seconds)), NAN);
    for (size_t i = 0; i < st.received.size(); ++i) {
        if (st.received[i] <= 0) continue;
        const auto sec = std::min(worst_per_s.size() - 1, static_cast<size_t>((st.intended[i] - t0) / 1'000'000'000));
        const double ms = static_cast<double>(st.received[i] - st.intended[i]) / 1e6;
        if (!(worst_per_s[sec] >= ms)) worst_per_s[sec] = ms;
    }
    j.nums("e2e_worst_ms_per_second", worst_per_s)
        .nums("curve_quantiles", curve_quantiles())
        .nums("curve_pub_ms", curve_ms(pub))
        .nums("curve_e2e_ms", curve_ms(e2e))
        .nums("curve_e2e_raw_ms", curve_ms(e2e_raw))
        .num("late_enqueues", late)
        .num("duplicates", st.duplicates)
        .num("foreign_records", st.foreign)
        .num("errors", errors + warm_errors)
        .str("error_names",
             [&] {
                 std::string s;
                 for (const auto& [name, n] : st.error_names) s += name + "=" + std::to_string(n) + " ";
                 return s;
             }())
        .num("client_errors", client_errors.load())
        .cpu()
        .print();
    std::fprintf(stderr,
                 "e2e %s acks=%s %d rec/s (achieved %.0f) x %.0f s: publish p50 %.3f p99 %.3f p999 %.3f ms;"
                 " end-to-end p50 %.3f p99 %.3f p999 %.3f ms (corrected); %" PRId64 " of %" PRId64 " received, %" PRId64
                 " late enqueues, %" PRId64 " errors\n",
                 o.topic.c_str(), acks.c_str(), o.rate, achieved, o.seconds, percentile_ms(pub, 0.5),
                 percentile_ms(pub, 0.99), percentile_ms(pub, 0.999), percentile_ms(e2e, 0.5), percentile_ms(e2e, 0.99),
                 percentile_ms(e2e, 0.999), received, total, late, errors + warm_errors);
    rd_kafka_queue_destroy(q);
    rd_kafka_assign(cons, nullptr);
    rd_kafka_destroy_flags(cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(prod);
    return errors + warm_errors == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// consume

int run_consume(const options& o) {
    rd_kafka_conf_t* conf = base_conf(o);
    // assign() needs a group.id in librdkafka, though no group is joined; the
    // coordinator lookup it starts may fail on a broker without groups.
    set(conf, "group.id", "fjord-loadgen");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "enable.partition.eof", "false");
    set(conf, "auto.offset.reset", "earliest");
    apply_extra(conf, o);
    rd_kafka_t* rk = make_client(RD_KAFKA_CONSUMER, conf);
    const int partitions = checked_partitions(rk, o);
    const partition_range used = used_partitions(partitions, o);

    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(used.count);
    for (int p = used.first; p < used.first + used.count; ++p)
        rd_kafka_topic_partition_list_add(parts, o.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk);
    if (!q) die("no consumer queue");

    const int64_t t0 = now_ns();
    if (rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts)) die("assign: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(parts);

    int64_t records = 0, bytes = 0, errors = 0;
    int64_t t_first = 0, t_last = 0;  // CLOCK_MONOTONIC: comparable between processes
    int64_t last_progress = now_ns();
    std::map<std::string, int64_t> error_names;
    std::vector<rd_kafka_message_t*> batch(4096);
    while (records < o.records) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch.data(), batch.size());
        const int64_t t = now_ns();
        for (ssize_t k = 0; k < n; ++k) {
            rd_kafka_message_t* m = batch[static_cast<size_t>(k)];
            if (m->err) {
                errors++;
                error_names[rd_kafka_err2name(m->err)]++;
            } else {
                records++;
                bytes += static_cast<int64_t>(m->len + m->key_len);
            }
            rd_kafka_message_destroy(m);
        }
        if (n > 0) {
            if (t_first == 0) t_first = t;
            last_progress = t;
            t_last = t;
        } else if (t - last_progress > static_cast<int64_t>(std::min(o.timeout_s, 30.0) * 1e9)) {
            std::fprintf(stderr,
                         "fjord_loadgen: consume: no records for 30 s, stopping at %" PRId64 " of %" PRId64 "\n",
                         records, o.records);
            break;
        }
        if (t - t0 > static_cast<int64_t>(o.timeout_s * 1e9)) {
            std::fprintf(stderr, "fjord_loadgen: consume: timeout at %" PRId64 " of %" PRId64 "\n", records, o.records);
            break;
        }
    }
    const int64_t t1 = now_ns();
    const double secs = static_cast<double>(t1 - t0) / 1e9;
    const double mbps = static_cast<double>(bytes) / 1e6 / secs;
    const double rps = static_cast<double>(records) / secs;
    std::string names;
    for (const auto& [name, n] : error_names) names += name + "=" + std::to_string(n) + " ";
    json_line()
        .str("mode", "consume")
        .str("label", o.label)
        .str("topic", o.topic)
        .num("partitions", int64_t{partitions})
        .num("records", records)
        .num("bytes", bytes)
        .num("seconds", secs)
        .num("first_record_ms", t_first ? static_cast<double>(t_first - t0) / 1e6 : NAN)
        .num("mb_per_s", mbps)
        .num("records_per_s", rps)
        .num("errors", errors)
        .str("error_names", names)
        .num("client_errors", client_errors.load())
        .num("start_mono_ns", t0)
        .num("first_mono_ns", t_first)
        .num("end_mono_ns", t_last)
        .num("first_partition", int64_t{used.first})
        .num("partitions_used", int64_t{used.count})
        .cpu()
        .print();
    std::fprintf(stderr,
                 "consume %s: %" PRId64 " records, %.1f MB in %.2f s = %.1f MB/s, %.0f records/s, %" PRId64
                 " errors %s\n",
                 o.topic.c_str(), records, static_cast<double>(bytes) / 1e6, secs, mbps, rps, errors, names.c_str());
    rd_kafka_queue_destroy(q);
    rd_kafka_assign(rk, nullptr);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return errors == 0 && records >= o.records ? 0 : 1;
}

// ---------------------------------------------------------------------------
// metadata / startup: a raw Metadata v1 request on a fresh TCP connection,
// retried every millisecond. librdkafka is not used here: its reconnect
// back-off (100 ms and growing) would dominate a start-up that takes a few ms.

bool split_host_port(const std::string& hp, sockaddr_in* addr) {
    auto colon = hp.rfind(':');
    if (colon == std::string::npos) return false;
    std::string host = hp.substr(0, colon);
    if (host == "localhost") host = "127.0.0.1";
    std::memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons(static_cast<uint16_t>(std::stoi(hp.substr(colon + 1))));
    return inet_pton(AF_INET, host.c_str(), &addr->sin_addr) == 1;
}

bool read_full(int fd, void* buf, size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return false;
        }
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

// True if the broker answered a Metadata v1 request (all topics) listing at
// least one broker.
bool metadata_ok(const sockaddr_in& addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool ok = false;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        static const char client_id[] = "fjord_loadgen";
        std::vector<uint8_t> req;
        auto put16 = [&](int v) {
            req.push_back(uint8_t(v >> 8));
            req.push_back(uint8_t(v));
        };
        auto put32 = [&](int32_t v) {
            for (int s = 24; s >= 0; s -= 8) req.push_back(uint8_t(uint32_t(v) >> s));
        };
        put32(0);     // size, patched below
        put16(3);     // api_key Metadata
        put16(1);     // api_version 1
        put32(4242);  // correlation_id
        put16(static_cast<int>(sizeof client_id - 1));
        req.insert(req.end(), client_id, client_id + sizeof client_id - 1);
        put32(-1);  // topics: null = all
        const uint32_t size = htonl(static_cast<uint32_t>(req.size() - 4));
        std::memcpy(req.data(), &size, 4);
        if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            uint32_t len = 0;
            if (read_full(fd, &len, 4)) {
                len = ntohl(len);
                if (len >= 8 && len < (64u << 20)) {
                    std::vector<uint8_t> body(len);
                    if (read_full(fd, body.data(), len)) {
                        uint32_t corr = 0, brokers = 0;
                        std::memcpy(&corr, body.data(), 4);
                        std::memcpy(&brokers, body.data() + 4, 4);
                        ok = ntohl(corr) == 4242 && static_cast<int32_t>(ntohl(brokers)) >= 1;
                    }
                }
            }
        }
    }
    close(fd);
    return ok;
}

// Polls until Metadata succeeds; returns ns since `start`, or -1 on timeout
// (or when `child` exits first).
int64_t poll_metadata(const sockaddr_in& addr, int64_t start, double timeout_s, pid_t child) {
    const int64_t deadline = start + static_cast<int64_t>(timeout_s * 1e9);
    while (now_ns() < deadline) {
        if (metadata_ok(addr)) return now_ns() - start;
        if (child > 0) {
            int status = 0;
            if (waitpid(child, &status, WNOHANG) == child) {
                std::fprintf(stderr, "fjord_loadgen: broker exited before answering (status %d)\n", status);
                return -1;
            }
        }
        usleep(1000);
    }
    return -1;
}

int run_metadata(const options& o) {
    sockaddr_in addr{};
    if (!split_host_port(o.bootstrap, &addr)) die("metadata: --bootstrap must be IPv4:PORT");
    const int64_t t0 = now_ns();
    const int64_t ns = poll_metadata(addr, t0, o.timeout_s, 0);
    if (ns < 0) {
        std::fprintf(stderr, "fjord_loadgen: no Metadata answer from %s within %.0f s\n", o.bootstrap.c_str(),
                     o.timeout_s);
        return 1;
    }
    int partitions = 0;
    const bool with_topic = o.topic_given;
    if (with_topic) {
        rd_kafka_conf_t* conf = base_conf(o);
        apply_extra(conf, o);
        rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, conf);
        partitions = checked_partitions(rk, o);
        rd_kafka_destroy(rk);
    }
    const double ms = static_cast<double>(now_ns() - t0) / 1e6;
    json_line()
        .str("mode", "metadata")
        .str("label", o.label)
        .num("ready_ms", static_cast<double>(ns) / 1e6)
        .num("total_ms", ms)
        .str("topic", with_topic ? o.topic : "")
        .num("partitions", int64_t{partitions})
        .num("errors", int64_t{0})
        .print();
    std::fprintf(
        stderr, "metadata %s: answered after %.1f ms%s\n", o.bootstrap.c_str(), static_cast<double>(ns) / 1e6,
        with_topic ? (", topic " + o.topic + " has " + std::to_string(partitions) + " partitions").c_str() : "");
    return 0;
}

int run_startup(const options& o) {
    if (o.command.empty()) die("startup needs the broker command after --");
    sockaddr_in addr{};
    if (!split_host_port(o.bootstrap, &addr)) die("startup: --bootstrap must be IPv4:PORT");
    if (metadata_ok(addr)) die("startup: something already answers on %s", o.bootstrap.c_str());
    std::vector<char*> argv;
    for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    const int64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", std::strerror(errno));
    if (pid == 0) {
        const char* log = o.log_file.empty() ? "/dev/null" : o.log_file.c_str();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv.data());
        _exit(127);
    }
    const int64_t ready_ns = poll_metadata(addr, t0, o.timeout_s, pid);
    int64_t stop_ns = -1;
    int status = -1;
    bool killed = false;
    if (ready_ns >= 0 || waitpid(pid, &status, WNOHANG) == 0) {
        const int64_t t_stop = now_ns();
        kill(pid, SIGTERM);
        while (true) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) break;
            if (now_ns() - t_stop > static_cast<int64_t>(o.stop_timeout_s * 1e9) && !killed) {
                kill(pid, SIGKILL);
                killed = true;
            }
            usleep(1000);
        }
        stop_ns = now_ns() - t_stop;
    }
    const int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : (WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1);
    const bool ok = ready_ns >= 0 && !killed && exit_code == 0;
    json_line()
        .str("mode", "startup")
        .str("label", o.label)
        .num("startup_ms", ready_ns >= 0 ? static_cast<double>(ready_ns) / 1e6 : NAN)
        .num("stop_ms", stop_ns >= 0 ? static_cast<double>(stop_ns) / 1e6 : NAN)
        .num("exit_code", int64_t{exit_code})
        .num("errors", int64_t{ok ? 0 : 1})
        .print();
    std::fprintf(stderr, "startup: exec -> Metadata answer %.1f ms, SIGTERM -> exit %.1f ms (exit code %d%s)\n",
                 static_cast<double>(ready_ns) / 1e6, static_cast<double>(stop_ns) / 1e6, exit_code,
                 killed ? ", needed SIGKILL" : "");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    const options o = parse_args(argc, argv);
    config_out_file = o.config_out;
    if (o.mode == "produce") return run_produce(o);
    if (o.mode == "consume") return run_consume(o);
    if (o.mode == "latency") return run_latency(o);
    if (o.mode == "e2e") return run_e2e(o);
    if (o.mode == "metadata") return run_metadata(o);
    if (o.mode == "startup") return run_startup(o);
    usage();
    die("unknown mode '%s'", o.mode.c_str());
}
