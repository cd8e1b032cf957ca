// Kafka's topic name rules (org.apache.kafka.common.internals.Topic).
// Pure functions: any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fjord::cluster {

inline constexpr size_t max_topic_name_length = 249;

// 1..249 characters of [a-zA-Z0-9._-], and not "." or "..".
inline bool is_valid_topic_name(std::string_view name) {
    if (name.empty() || name.size() > max_topic_name_length || name == "." || name == "..") return false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// Metrics names replace '.' with '_', so Kafka refuses two topics whose
// names are equal after that replacement (Topic.unifyCollisionChars).
inline std::string collision_key(std::string_view name) {
    std::string s(name);
    for (char& c : s) {
        if (c == '.') c = '_';
    }
    return s;
}

}  // namespace fjord::cluster
