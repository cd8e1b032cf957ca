// End-to-end tests of one Fjord broker in this process, over raw Kafka
// connections (requests and responses built with the generated messages):
// the limits and the waiting of Fetch (issue 18 item 2), Metadata by topic id
// (item 7), and partitions whose log is offline (item 10). Each test starts
// its own broker on 127.0.0.1 port 0 with a fresh log directory. README.md
// says what each test proves.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/endian.h"
#include "kafka/broker.h"
#include "protocol/gen/fetch.h"
#include "protocol/gen/list_offsets.h"
#include "protocol/gen/metadata.h"
#include "protocol/gen/offset_for_leader_epoch.h"
#include "protocol/gen/produce.h"
#include "protocol/gen/registry.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen/response_header.h"
#include "protocol/record_batch.h"
#include "raw_client.h"

namespace {
using namespace fjord;
namespace gen = protocol::gen;
using clock_type = std::chrono::steady_clock;

int64_t elapsed_ms(clock_type::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - since).count();
}

using fjord::testing::raw_client;

// One batch of one record whose value is `value_bytes` long (incompressible
// enough; codec none anyway).
std::vector<uint8_t> batch_of(size_t value_bytes, int seed) {
    std::string v(value_bytes, '\0');
    uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 7;
    for (auto& c : v) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 16);
    }
    protocol::batch_builder b;
    b.add(1'700'000'000'000, std::nullopt,
          protocol::nullable_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size())));
    auto built = b.build();
    if (!built) throw std::runtime_error("batch_builder failed");
    return std::move(built).value();
}

constexpr int16_t produce_version = 8;

int16_t produce(uint16_t port, const std::string& topic, int32_t partition, std::vector<uint8_t> batch) {
    raw_client c(port);
    gen::produce_request req;
    req.acks = -1;
    req.timeout_ms = 30000;
    gen::produce_request::topic_produce_data t;
    t.name = topic;
    gen::produce_request::partition_produce_data pd;
    pd.index = partition;
    pd.records = shared_bytes::adopt(std::move(batch));
    t.partition_data.push_back(std::move(pd));
    req.topic_data.push_back(std::move(t));
    auto resp = c.call<gen::produce_response>(req, produce_version);
    return resp.responses.at(0).partition_responses.at(0).error_code;
}

gen::metadata_response metadata(uint16_t port, const std::vector<std::string>& topics, bool create = false,
                                int16_t version = 12) {
    raw_client c(port);
    gen::metadata_request req;
    req.topics.emplace();
    for (const auto& name : topics) {
        gen::metadata_request::metadata_request_topic t;
        t.name = name;
        req.topics->push_back(t);
    }
    req.allow_auto_topic_creation = create;
    return c.call<gen::metadata_response>(req, version);
}

bool create_topic(uint16_t port, const std::string& topic) {
    for (int i = 0; i < 100; ++i) {
        auto md = metadata(port, {topic}, true);
        if (md.topics.size() == 1 && md.topics[0].error_code == 0) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

struct fetch_part {
    int32_t partition;
    int64_t offset;
};

gen::fetch_request fetch_of(const std::string& topic, const std::vector<fetch_part>& parts, int32_t max_bytes,
                            int32_t partition_max_bytes, int32_t min_bytes = 1, int32_t max_wait_ms = 0) {
    gen::fetch_request req;
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = min_bytes;
    req.max_bytes = max_bytes;
    req.session_id = 0;
    req.session_epoch = -1;  // sessionless
    gen::fetch_request::fetch_topic ft;
    ft.topic = topic;
    for (const auto& p : parts) {
        gen::fetch_request::fetch_partition fp;
        fp.partition = p.partition;
        fp.fetch_offset = p.offset;
        fp.partition_max_bytes = partition_max_bytes;
        ft.partitions.push_back(fp);
    }
    req.topics.push_back(ft);
    return req;
}

constexpr int16_t fetch_version = 11;  // topic names, sessions

// Bytes of records per partition index of a one-topic response, and the total.
struct fetched {
    std::map<int32_t, size_t> bytes;
    std::map<int32_t, int16_t> errors;
    size_t total = 0;
};

fetched summarize(const gen::fetch_response& resp) {
    fetched f;
    for (const auto& t : resp.responses) {
        for (const auto& p : t.partitions) {
            const size_t n = p.records ? p.records->size() : 0;
            f.bytes[p.partition_index] += n;
            f.errors[p.partition_index] = p.error_code;
            f.total += n;
        }
    }
    return f;
}

class fetch_metadata_test : public ::testing::Test {
protected:
    void SetUp() override {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/fjord-fetch-metadata-test-XXXXXX";
        std::vector<char> buf(pattern.begin(), pattern.end());
        buf.push_back('\0');
        ASSERT_NE(::mkdtemp(buf.data()), nullptr);
        dir_ = buf.data();
    }
    void TearDown() override {
        stop_broker();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    void start_broker(const kafka::properties& extra = {}) {
        kafka::properties props = {
            {"listeners", "PLAINTEXT://127.0.0.1:0"}, {"log.dirs", dir_}, {"fjord.smp", "1"}, {"num.partitions", "1"}};
        for (const auto& [k, v] : extra) props[k] = v;
        auto cfg = kafka::make_broker_config(props);
        ASSERT_TRUE(cfg) << cfg.error();
        auto b = kafka::broker::create(std::move(cfg).value());
        ASSERT_TRUE(b) << b.error();
        broker_ = std::move(b).value();
        auto started = broker_->start();
        ASSERT_TRUE(started) << started.error();
        ASSERT_NE(broker_->port(), 0);
    }
    void stop_broker() {
        if (!broker_) return;
        broker_->stop();
        broker_->wait();
        broker_.reset();
    }
    uint16_t port() const { return broker_->port(); }

    std::string dir_;
    std::unique_ptr<kafka::broker> broker_;
};

constexpr size_t big = 300'000;  // one batch: a little over 300,000 bytes

// KIP-74 as Kafka: the first partition is capped at the response's max_bytes
// too; only the first batch of a response may exceed the limits. Sessionless,
// and in a fetch session (full, then incremental).
TEST_F(fetch_metadata_test, fetch_response_stays_within_max_bytes) {
    ASSERT_NO_FATAL_FAILURE(start_broker({{"num.partitions", "2"}}));
    const std::string topic = "big";
    ASSERT_TRUE(create_topic(port(), topic));
    for (int32_t p = 0; p < 2; ++p) {
        for (int i = 0; i < 4; ++i) ASSERT_EQ(produce(port(), topic, p, batch_of(big, p * 10 + i)), 0);
    }
    const size_t one = batch_of(big, 0).size();
    raw_client c(port());

    // The consumer of issue 18: 1,000,000 per response, 20,000,000 per partition.
    auto r = summarize(c.call<gen::fetch_response>(fetch_of(topic, {{0, 0}, {1, 0}}, 1'000'000, 20'000'000), 11));
    EXPECT_LE(r.total, 1'000'000u) << "a response above max_bytes";
    EXPECT_EQ(r.bytes[0], 3 * one) << "the first partition takes what fits";
    EXPECT_EQ(r.bytes[1], 0u) << "nothing fits after it";

    // A first batch larger than max_bytes goes out alone.
    r = summarize(c.call<gen::fetch_response>(fetch_of(topic, {{0, 0}, {1, 0}}, 100'000, 20'000'000), 11));
    EXPECT_EQ(r.bytes[0], one);
    EXPECT_EQ(r.bytes[1], 0u);

    // And larger than its partition's limit.
    r = summarize(c.call<gen::fetch_response>(fetch_of(topic, {{0, 0}, {1, 0}}, 50'000'000, 1000), 11));
    EXPECT_EQ(r.bytes[0], one);
    EXPECT_EQ(r.bytes[1], 0u) << "only the first batch of the response may exceed a limit";

    // The partition limit binds below the response limit.
    r = summarize(c.call<gen::fetch_response>(fetch_of(topic, {{0, 0}, {1, 0}}, 50'000'000, 700'000), 11));
    EXPECT_EQ(r.bytes[0], 2 * one);
    EXPECT_EQ(r.bytes[1], 2 * one);

    // A fetch session: a full fetch, then incremental ones; each response
    // within max_bytes whichever partition the session puts first.
    auto req = fetch_of(topic, {{0, 0}, {1, 0}}, 1'000'000, 20'000'000);
    req.session_epoch = 0;
    auto full = c.call<gen::fetch_response>(req, fetch_version);
    ASSERT_EQ(full.error_code, 0);
    ASSERT_NE(full.session_id, 0);
    r = summarize(full);
    EXPECT_LE(r.total, 1'000'000u);
    EXPECT_EQ(r.bytes[0], 3 * one);
    int64_t next0 = 3;
    for (int32_t epoch = 1; epoch <= 3; ++epoch) {
        auto inc = fetch_of(topic, {{0, next0}}, 1'000'000, 20'000'000);
        inc.session_id = full.session_id;
        inc.session_epoch = epoch;
        auto resp = c.call<gen::fetch_response>(inc, fetch_version);
        ASSERT_EQ(resp.error_code, 0);
        r = summarize(resp);
        EXPECT_LE(r.total, 1'000'000u) << "incremental fetch " << epoch;
        EXPECT_GT(r.total, 0u) << "incremental fetch " << epoch;
        if (r.bytes.count(0)) next0 += static_cast<int64_t>(r.bytes[0] / one);
    }
}

// Waiting (Kafka's DelayedFetch): min_bytes is capped at max_bytes, a waiting
// fetch completes once the bytes available reach it, and what it returns is
// within max_bytes.
TEST_F(fetch_metadata_test, waiting_fetch_caps_min_bytes_and_stays_within_max_bytes) {
    ASSERT_NO_FATAL_FAILURE(start_broker());
    const std::string topic = "wait";
    ASSERT_TRUE(create_topic(port(), topic));
    const size_t one = batch_of(400'000, 0).size();

    // Waits at the log end for 900,000 bytes, max 1,000,000: three batches of
    // 400,000 arrive one by one; the answer holds two.
    {
        raw_client c(port());
        auto start = clock_type::now();
        c.send(fetch_of(topic, {{0, 0}}, 1'000'000, 20'000'000, 900'000, 10'000), fetch_version);
        for (int i = 0; i < 3; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            ASSERT_EQ(produce(port(), topic, 0, batch_of(400'000, i)), 0);
        }
        auto r = summarize(c.receive<gen::fetch_response>(fetch_version));
        const int64_t took = elapsed_ms(start);
        EXPECT_LE(r.total, 1'000'000u) << "a waiting fetch answered above max_bytes";
        EXPECT_EQ(r.bytes[0], 2 * one);
        EXPECT_LT(took, 5000) << "the waiting fetch was not completed by the bytes available";
    }
    // min_bytes above max_bytes: capped, so 1,200,000 bytes available answer
    // at once (two batches), not after max_wait_ms.
    {
        raw_client c(port());
        auto start = clock_type::now();
        auto r = summarize(c.call<gen::fetch_response>(
            fetch_of(topic, {{0, 0}}, 1'000'000, 20'000'000, 5'000'000, 5'000), fetch_version));
        const int64_t took = elapsed_ms(start);
        EXPECT_EQ(r.bytes[0], 2 * one);
        EXPECT_LT(took, 2000) << "min_bytes above max_bytes was not capped";
    }
    // Less than min_bytes available: waits max_wait_ms (without spinning),
    // then answers what there is.
    {
        raw_client c(port());
        auto start = clock_type::now();
        auto r = summarize(c.call<gen::fetch_response>(fetch_of(topic, {{0, 2}}, 1'000'000, 20'000'000, 900'000, 1'000),
                                                       fetch_version));
        const int64_t took = elapsed_ms(start);
        EXPECT_EQ(r.bytes[0], one);
        EXPECT_GE(took, 900);
        EXPECT_LT(took, 3000);
    }
}

gen::metadata_request::metadata_request_topic by_id(const protocol::uuid& id,
                                                    std::optional<std::string> name = std::nullopt) {
    gen::metadata_request::metadata_request_topic t;
    t.topic_id = id;
    t.name = std::move(name);
    return t;
}

gen::metadata_response metadata_of(uint16_t port, std::vector<gen::metadata_request::metadata_request_topic> topics,
                                   int16_t version) {
    raw_client c(port);
    gen::metadata_request req;
    req.topics = std::move(topics);
    req.allow_auto_topic_creation = true;
    return c.call<gen::metadata_response>(req, version);
}

// Metadata by topic id as Kafka 4.4 answers it (checked against it with
// tests/kafka_ref/Probe.java): the Java consumer's regex subscription and
// Admin.describeTopics(TopicCollection.ofTopicIds(...)) send the id with an
// empty name.
TEST_F(fetch_metadata_test, metadata_by_topic_id) {
    ASSERT_NO_FATAL_FAILURE(start_broker({{"num.partitions", "2"}}));
    ASSERT_TRUE(create_topic(port(), "t1"));
    ASSERT_TRUE(create_topic(port(), "t2"));
    auto md = metadata(port(), {"t1", "t2"});
    const auto id1 = md.topics.at(0).topic_id;
    const auto id2 = md.topics.at(1).topic_id;
    ASSERT_FALSE(id1.is_zero());
    protocol::uuid unknown{};
    unknown.bytes[15] = 1;

    for (int16_t v : {12, 13}) {
        SCOPED_TRACE("Metadata v" + std::to_string(v));
        // Empty name (the Java client's default), null name: found by id.
        for (auto name : {std::optional<std::string>(""), std::optional<std::string>()}) {
            auto r = metadata_of(port(), {by_id(id1, name)}, v);
            ASSERT_EQ(r.topics.size(), 1u);
            EXPECT_EQ(r.topics[0].error_code, 0);
            EXPECT_EQ(r.topics[0].name, "t1");
            EXPECT_EQ(r.topics[0].topic_id, id1);
            EXPECT_EQ(r.topics[0].partitions.size(), 2u);
            EXPECT_FALSE(r.brokers.empty());
        }
        // Name and id: the id wins.
        auto r = metadata_of(port(), {by_id(id1, "t2")}, v);
        ASSERT_EQ(r.topics.size(), 1u);
        EXPECT_EQ(r.topics[0].name, "t1");
        // Names beside ids are ignored; unknown ids first, each id once.
        r = metadata_of(port(), {by_id({}, "t2"), by_id(id2, ""), by_id(unknown), by_id(id2)}, v);
        ASSERT_EQ(r.topics.size(), 2u);
        EXPECT_EQ(r.topics[0].error_code, 100);  // UNKNOWN_TOPIC_ID
        EXPECT_EQ(r.topics[0].name, std::nullopt);
        EXPECT_EQ(r.topics[0].topic_id, unknown);
        EXPECT_TRUE(r.topics[0].partitions.empty());
        EXPECT_EQ(r.topics[1].error_code, 0);
        EXPECT_EQ(r.topics[1].name, "t2");
        // An unknown id with a name is not auto-created.
        r = metadata_of(port(), {by_id(unknown, "nosuch")}, v);
        ASSERT_EQ(r.topics.size(), 1u);
        EXPECT_EQ(r.topics[0].error_code, 100);
        EXPECT_EQ(metadata(port(), {"nosuch"}).topics.at(0).error_code, 3);
        // Neither name nor id, and no id elsewhere: Kafka's generic error answer.
        r = metadata_of(port(), {by_id({})}, v);
        ASSERT_EQ(r.topics.size(), 1u);
        EXPECT_EQ(r.topics[0].error_code, -1);
        EXPECT_EQ(r.cluster_id, std::nullopt);
        // ... but with an id beside it the null name is ignored.
        r = metadata_of(port(), {by_id({}), by_id(id1)}, v);
        ASSERT_EQ(r.topics.size(), 1u);
        EXPECT_EQ(r.topics[0].name, "t1");
    }
    // v10 and v11 carry the fields, but Kafka refuses ids and null names there.
    for (int16_t v : {10, 11}) {
        SCOPED_TRACE("Metadata v" + std::to_string(v));
        for (auto t : {by_id(id1, ""), by_id(id1, "t1"), by_id({})}) {
            auto r = metadata_of(port(), {t}, v);
            ASSERT_EQ(r.topics.size(), 1u);
            EXPECT_EQ(r.topics[0].error_code, 42);  // INVALID_REQUEST
            EXPECT_EQ(r.topics[0].name, t.name.value_or(""));
            EXPECT_EQ(r.topics[0].topic_id, t.topic_id);
            EXPECT_EQ(r.cluster_id, std::nullopt);
            EXPECT_EQ(r.controller_id, -1);
            EXPECT_TRUE(r.brokers.empty());
        }
    }
}

// A partition whose log failed to open at start-up (a corrupt batch below its
// recovery point), and one that goes offline on a read later: both answer
// KAFKA_STORAGE_ERROR (NOT_LEADER_OR_FOLLOWER to Fetch v5 and older), and
// Metadata lists them as Kafka lists a partition whose only replica is on a
// failed log directory: no leader, the replica offline.
TEST_F(fetch_metadata_test, offline_partitions_answer_as_kafka) {
    // Small segments, so that "later-0" has closed segments an unclean
    // restart does not scan; two shards, so that Metadata gathers the
    // offline logs of both.
    const kafka::properties props = {{"log.segment.bytes", "1024"}, {"fjord.smp", "2"}};
    ASSERT_NO_FATAL_FAILURE(start_broker(props));
    for (const char* t : {"torn", "later", "fine"}) ASSERT_TRUE(create_topic(port(), t));
    for (const char* t : {"torn", "later", "fine"}) {
        for (int i = 0; i < 4; ++i) ASSERT_EQ(produce(port(), t, 0, batch_of(600, i)), 0);
    }
    stop_broker();

    auto flip = [](const std::filesystem::path& file, std::streamoff at) {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        ASSERT_TRUE(f.good()) << file;
        f.seekg(at);
        char b = 0;
        f.read(&b, 1);
        b = static_cast<char>(b ^ 0x40);
        f.seekp(at);
        f.write(&b, 1);
    };
    auto segments = [&](const std::string& partition_dir) {
        std::vector<std::filesystem::path> out;
        for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(dir_) / partition_dir)) {
            if (e.path().extension() == ".log" && std::filesystem::file_size(e.path()) > 0) out.push_back(e.path());
        }
        std::sort(out.begin(), out.end());
        return out;
    };
    // torn-0: its last segment, which the unclean restart scans; later-0: its
    // first, closed segment, which only a read meets.
    auto torn = segments("torn-0");
    auto later = segments("later-0");
    ASSERT_FALSE(torn.empty());
    ASSERT_GE(later.size(), 2u);
    ASSERT_NO_FATAL_FAILURE(flip(torn.back(), 100));
    ASSERT_NO_FATAL_FAILURE(flip(later.front(), 100));
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
        if (e.path().filename().string().rfind(".kafka_cleanshutdown", 0) == 0) std::filesystem::remove(e.path());
    }
    ASSERT_NO_FATAL_FAILURE(start_broker(props));

    // later-0 goes offline on the first read that meets the corrupt batch.
    {
        raw_client c(port());
        auto f = c.call<gen::fetch_response>(fetch_of("later", {{0, 0}}, 1 << 20, 1 << 20), fetch_version);
        EXPECT_EQ(f.responses.at(0).partitions.at(0).error_code, 56);
    }
    for (const char* t : {"torn", "later"}) {
        SCOPED_TRACE(t);
        raw_client c(port());
        EXPECT_EQ(produce(port(), t, 0, batch_of(100, 9)), 56);  // KAFKA_STORAGE_ERROR
        auto f = c.call<gen::fetch_response>(fetch_of(t, {{0, 0}}, 1 << 20, 1 << 20), fetch_version);
        EXPECT_EQ(f.responses.at(0).partitions.at(0).error_code, 56);
        f = c.call<gen::fetch_response>(fetch_of(t, {{0, 0}}, 1 << 20, 1 << 20), 5);
        EXPECT_EQ(f.responses.at(0).partitions.at(0).error_code, 6) << "Fetch v5: NOT_LEADER_OR_FOLLOWER, as Kafka";

        gen::list_offsets_request lo;
        lo.replica_id = -1;
        gen::list_offsets_request::list_offsets_topic lt;
        lt.name = t;
        lt.partitions.push_back({.partition_index = 0,
                                 .current_leader_epoch = -1,
                                 .timestamp = -1,
                                 .max_num_offsets = 1,
                                 .unknown_tagged_fields = {}});
        lo.topics.push_back(lt);
        auto l = c.call<gen::list_offsets_response>(lo, 9);
        EXPECT_EQ(l.topics.at(0).partitions.at(0).error_code, 56);

        gen::offset_for_leader_epoch_request oe;
        oe.replica_id = -1;
        gen::offset_for_leader_epoch_request::offset_for_leader_topic ot;
        ot.topic = t;
        ot.partitions.push_back(
            {.partition = 0, .current_leader_epoch = -1, .leader_epoch = 0, .unknown_tagged_fields = {}});
        oe.topics.push_back(ot);
        auto e = c.call<gen::offset_for_leader_epoch_response>(oe, 4);
        EXPECT_EQ(e.topics.at(0).partitions.at(0).error_code, 56);
    }
    auto md = metadata(port(), {"torn", "later", "fine"});
    ASSERT_EQ(md.topics.size(), 3u);
    for (const auto& t : md.topics) {
        SCOPED_TRACE(t.name.value_or("?"));
        ASSERT_EQ(t.partitions.size(), 1u);
        const auto& p = t.partitions[0];
        EXPECT_EQ(t.error_code, 0);
        EXPECT_EQ(p.replica_nodes, std::vector<int32_t>{1});
        EXPECT_EQ(p.isr_nodes, std::vector<int32_t>{1}) << "the last in-sync replica stays in the ISR";
        if (t.name == "fine") {
            EXPECT_EQ(p.error_code, 0);
            EXPECT_EQ(p.leader_id, 1);
            EXPECT_TRUE(p.offline_replicas.empty());
        } else {
            EXPECT_EQ(p.error_code, 5);  // LEADER_NOT_AVAILABLE
            EXPECT_EQ(p.leader_id, -1);
            EXPECT_EQ(p.offline_replicas, std::vector<int32_t>{1});
        }
    }
    // The healthy partition still works.
    EXPECT_EQ(produce(port(), "fine", 0, batch_of(100, 9)), 0);
}

}  // namespace
