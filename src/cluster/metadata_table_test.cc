// metadata_table: record semantics, validation, immutable images and
// copy-on-write sharing of unchanged topics.
#include "cluster/metadata_table.h"

#include <gtest/gtest.h>

#include <chrono>

namespace fjord::cluster {
namespace {

protocol::uuid id_of(uint32_t n) {
    protocol::uuid u;
    u.bytes[0] = 0x40;
    for (int i = 0; i < 4; ++i) u.bytes[12 + i] = static_cast<uint8_t>(n >> (24 - 8 * i));
    return u;
}

partition_record part(const protocol::uuid& id, int32_t p) {
    return partition_record{id, p, {1}, {1}, 1, 0, 0};
}

class table_test : public ::testing::Test {
protected:
    // Applies and publishes; fails the test on a refusal.
    metadata_delta apply_all(const std::vector<metadata_record>& records) {
        for (const auto& r : records) {
            std::string why;
            auto ok = table.apply(next++, r, &why);
            EXPECT_TRUE(ok.ok()) << why;
        }
        return table.publish();
    }
    errc refused(const metadata_record& r, std::string* why = nullptr) {
        auto before = table.image();
        auto res = table.apply(next, r, why);
        EXPECT_FALSE(res.ok());
        EXPECT_FALSE(table.has_pending());  // a refusal changes nothing...
        EXPECT_EQ(table.image(), before);   // ...and publishes nothing
        return res.ok() ? errc::io_error : res.error();
    }

    metadata_table table;
    int64_t next = 0;
};

TEST_F(table_test, empty_image) {
    const auto& img = table.image();
    ASSERT_NE(img, nullptr);
    EXPECT_EQ(img->cluster_id(), "");
    EXPECT_EQ(img->last_offset(), -1);
    EXPECT_EQ(img->topic_count(), 0u);
    EXPECT_EQ(img->find_topic("x"), nullptr);
    EXPECT_EQ(img->find_topic(id_of(1)), nullptr);
}

TEST_F(table_test, topics_partitions_and_lookups) {
    auto d = apply_all({register_cluster{"c1"}, topic_record{"b", id_of(2)}, part(id_of(2), 0), part(id_of(2), 1),
                        topic_record{"a", id_of(1)}, part(id_of(1), 0)});
    const auto& img = table.image();
    EXPECT_EQ(img->cluster_id(), "c1");
    EXPECT_EQ(img->last_offset(), 5);
    EXPECT_EQ(img->topic_count(), 2u);
    const topic_info* b = img->find_topic("b");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b, img->find_topic(id_of(2)));
    EXPECT_EQ(b->partitions.size(), 2u);
    EXPECT_EQ(b->partitions[1].partition, 1);
    EXPECT_EQ(b->partitions[1].leader, 1);
    EXPECT_EQ(b->partitions[1].replicas, std::vector<int32_t>{1});
    std::vector<std::string> order;
    for (const auto& [name, t] : img->topics()) order.push_back(name);
    EXPECT_EQ(order, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(d.cluster_id_changed);
    EXPECT_EQ(d.created.size(), 2u);
    EXPECT_TRUE(d.changed.empty());
    EXPECT_TRUE(d.deleted.empty());
}

TEST_F(table_test, invalid_records_are_errors_not_crashes) {
    apply_all({register_cluster{"c1"}, topic_record{"t", id_of(1)}, part(id_of(1), 0)});
    std::string why;
    EXPECT_EQ(refused(part(id_of(9), 0), &why), errc::invalid_record);
    EXPECT_NE(why.find("unknown topic"), std::string::npos) << why;
    EXPECT_EQ(refused(part(id_of(1), 2)), errc::invalid_record);                                // a gap
    EXPECT_EQ(refused(part(id_of(1), -1)), errc::invalid_record);                               // negative
    EXPECT_EQ(refused(partition_record{id_of(1), 1, {}, {}, -1, 0, 0}), errc::invalid_record);  // no replicas
    EXPECT_EQ(refused(partition_record{id_of(1), 1, {1, 1}, {1}, 1, 0, 0}), errc::invalid_record);
    EXPECT_EQ(refused(topic_record{"t", id_of(2)}), errc::invalid_record);          // name in use
    EXPECT_EQ(refused(topic_record{"u", id_of(1)}), errc::invalid_record);          // id in use
    EXPECT_EQ(refused(topic_record{"u", protocol::uuid{}}), errc::invalid_record);  // zero id
    EXPECT_EQ(refused(topic_record{"a b", id_of(3)}), errc::invalid_record);        // illegal name
    EXPECT_EQ(refused(register_cluster{"c2"}), errc::invalid_record);
    EXPECT_EQ(refused(config_record{config_resource_type::topic, "nope", "retention.ms", "1"}), errc::invalid_record);
    EXPECT_EQ(refused(remove_topic_record{id_of(7)}), errc::invalid_record);
    EXPECT_EQ(refused(partition_change_record{id_of(1), 1, std::nullopt, std::nullopt, false}), errc::invalid_record);
    // A new leader needs a new leader epoch.
    EXPECT_EQ(refused(partition_change_record{id_of(1), 0, 2, std::nullopt, false}), errc::invalid_record);
    // Offsets only go up.
    auto res = table.apply(0, topic_record{"v", id_of(4)});
    EXPECT_FALSE(res.ok());
    // The same cluster id again is fine.
    apply_all({register_cluster{"c1"}});
}

TEST_F(table_test, a_refusal_after_staged_records_leaves_them_staged) {
    apply_all({topic_record{"t", id_of(1)}});
    ASSERT_TRUE(table.apply(next++, part(id_of(1), 0)).ok());
    EXPECT_FALSE(table.apply(next, part(id_of(1), 5)).ok());
    EXPECT_TRUE(table.has_pending());
    EXPECT_EQ(table.current().find_topic("t")->partitions.size(), 1u);
    EXPECT_EQ(table.image()->find_topic("t")->partitions.size(), 0u);
    table.discard();
    EXPECT_FALSE(table.has_pending());
    EXPECT_EQ(table.current().find_topic("t")->partitions.size(), 0u);
}

TEST_F(table_test, configs) {
    apply_all({topic_record{"t", id_of(1)}, config_record{config_resource_type::topic, "t", "retention.ms", "1000"},
               config_record{config_resource_type::topic, "t", "cleanup.policy", "compact"},
               config_record{config_resource_type::broker, "", "log.retention.ms", "5"},
               config_record{config_resource_type::broker, "1", "log.cleaner.threads", "2"}});
    const auto img = table.image();  // a copy of the pointer: this image, not the table's latest
    EXPECT_EQ(img->find_topic("t")->configs, (config_map{{"cleanup.policy", "compact"}, {"retention.ms", "1000"}}));
    ASSERT_NE(img->broker_configs(""), nullptr);
    EXPECT_EQ(img->broker_configs("")->at("log.retention.ms"), "5");
    EXPECT_EQ(img->broker_configs("2"), nullptr);
    auto d = apply_all({config_record{config_resource_type::topic, "t", "retention.ms", std::nullopt},
                        config_record{config_resource_type::broker, "1", "log.cleaner.threads", std::nullopt}});
    EXPECT_EQ(table.image()->find_topic("t")->configs, (config_map{{"cleanup.policy", "compact"}}));
    EXPECT_EQ(table.image()->broker_configs("1"), nullptr);
    EXPECT_EQ(d.changed.size(), 1u);
    EXPECT_TRUE(d.broker_configs_changed);
    // The old image still says what it said.
    EXPECT_EQ(img->find_topic("t")->configs.size(), 2u);
}

TEST_F(table_test, partition_changes_bump_epochs) {
    apply_all({topic_record{"t", id_of(1)}, partition_record{id_of(1), 0, {1, 2, 3}, {1, 2, 3}, 1, 4, 7}});
    apply_all({partition_change_record{id_of(1), 0, std::nullopt, std::vector<int32_t>{1, 2}, false}});
    const partition_info* p = &table.image()->find_topic("t")->partitions[0];
    EXPECT_EQ(p->isr, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(p->leader_epoch, 4);
    EXPECT_EQ(p->partition_epoch, 8);
    apply_all({partition_change_record{id_of(1), 0, 2, std::nullopt, true}});
    p = &table.image()->find_topic("t")->partitions[0];
    EXPECT_EQ(p->leader, 2);
    EXPECT_EQ(p->leader_epoch, 5);
    EXPECT_EQ(p->partition_epoch, 9);
}

TEST_F(table_test, remove_topic) {
    apply_all({topic_record{"t", id_of(1)}, part(id_of(1), 0), topic_record{"u", id_of(2)},
               config_record{config_resource_type::topic, "t", "retention.ms", "1"}});
    auto before = table.image();
    auto d = apply_all({remove_topic_record{id_of(1)}});
    EXPECT_EQ(table.image()->find_topic("t"), nullptr);
    EXPECT_EQ(table.image()->find_topic(id_of(1)), nullptr);
    EXPECT_EQ(table.image()->topic_count(), 1u);
    ASSERT_EQ(d.deleted.size(), 1u);
    EXPECT_EQ(d.deleted[0]->name, "t");
    EXPECT_NE(before->find_topic("t"), nullptr);
    // Recreated under the same name: a new topic, no old configs.
    d = apply_all({topic_record{"t", id_of(3)}});
    EXPECT_TRUE(table.image()->find_topic("t")->configs.empty());
    EXPECT_EQ(d.created.size(), 1u);
    // Created and removed before a publish: in no list.
    ASSERT_TRUE(table.apply(next++, topic_record{"w", id_of(4)}).ok());
    ASSERT_TRUE(table.apply(next++, remove_topic_record{id_of(4)}).ok());
    d = table.publish();
    EXPECT_TRUE(d.created.empty() && d.deleted.empty() && d.changed.empty());
}

TEST_F(table_test, unchanged_topics_are_shared_between_images) {
    constexpr uint32_t n = 10'000;
    std::vector<metadata_record> records;
    for (uint32_t i = 0; i < n; ++i) {
        records.push_back(topic_record{"topic-" + std::to_string(i), id_of(i + 1)});
        records.push_back(part(id_of(i + 1), 0));
    }
    apply_all(records);
    auto before = table.image();
    auto start = std::chrono::steady_clock::now();
    apply_all({partition_change_record{id_of(5), 0, std::nullopt, std::vector<int32_t>{}, false}});
    auto took = std::chrono::steady_clock::now() - start;
    auto after = table.image();
    ASSERT_NE(before, after);
    size_t shared = 0;
    for (uint32_t i = 0; i < n; ++i) {
        if (before->topic_ptr(id_of(i + 1)) == after->topic_ptr(id_of(i + 1))) ++shared;
    }
    EXPECT_EQ(shared, n - 1);
    EXPECT_NE(before->topic_ptr(id_of(5)), after->topic_ptr(id_of(5)));
    // The by-name index points at the same (new) topic.
    EXPECT_EQ(after->find_topic("topic-4"), after->find_topic(id_of(5)));
    EXPECT_EQ(before->find_topic("topic-4")->partitions[0].isr, std::vector<int32_t>{1});
    EXPECT_TRUE(after->find_topic("topic-4")->partitions[0].isr.empty());
    // A change of one topic copies the indexes (pointers), not 10,000 topics.
    std::cout << "one change with " << n
              << " topics: " << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us\n";
}

}  // namespace
}  // namespace fjord::cluster
