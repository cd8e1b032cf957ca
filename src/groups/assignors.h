// Server-side partition assignors of the consumer group protocol (KIP-848):
// "uniform" and "range", Kafka's names. Given the members' subscriptions,
// the partition counts of the subscribed topics and the current target
// assignment, they compute the next target assignment.
//
// uniform: every partition of a topic goes to one of its subscribers;
// members end up within one partition of each other where subscriptions
// allow it, and a partition stays with its current member whenever balance
// permits (sticky).
// range: per topic, the subscribers in member id order take contiguous
// ranges; the first (partitions % members) take one more.
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace fjord::groups {

// topic name -> partitions
using assignment = std::map<std::string, std::set<int32_t>>;

struct assignor_member {
    std::set<std::string> topics;  // resolved subscription (names and regex matches)
    assignment current;            // the current target (for stickiness)
};

// member id -> its member
using assignor_input = std::map<std::string, assignor_member>;
// topic name -> partition count, for every subscribed topic that exists
using topic_partitions = std::map<std::string, int32_t>;

std::map<std::string, assignment> assign_uniform(const assignor_input& members, const topic_partitions& topics);
std::map<std::string, assignment> assign_range(const assignor_input& members, const topic_partitions& topics);

// Whether `name` is an assignor this broker runs.
bool known_assignor(const std::string& name);

size_t partition_count(const assignment& a);

}  // namespace fjord::groups
