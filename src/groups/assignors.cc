#include "groups/assignors.h"

#include <algorithm>

namespace fjord::groups {

size_t partition_count(const assignment& a) {
    size_t n = 0;
    for (const auto& [t, ps] : a) n += ps.size();
    return n;
}

bool known_assignor(const std::string& name) {
    return name == "uniform" || name == "range";
}

std::map<std::string, assignment> assign_range(const assignor_input& members, const topic_partitions& topics) {
    std::map<std::string, assignment> out;
    for (const auto& [id, m] : members) out[id];
    for (const auto& [topic, count] : topics) {
        std::vector<std::string> subs;
        for (const auto& [id, m] : members) {
            if (m.topics.count(topic)) subs.push_back(id);
        }
        if (subs.empty()) continue;
        const int32_t n = static_cast<int32_t>(subs.size());
        const int32_t per = count / n;
        const int32_t extra = count % n;
        int32_t next = 0;
        for (int32_t i = 0; i < n; ++i) {
            const int32_t take = per + (i < extra ? 1 : 0);
            for (int32_t k = 0; k < take; ++k) out[subs[static_cast<size_t>(i)]][topic].insert(next++);
        }
    }
    return out;
}

std::map<std::string, assignment> assign_uniform(const assignor_input& members, const topic_partitions& topics) {
    std::map<std::string, assignment> out;
    std::map<std::string, size_t> load;
    for (const auto& [id, m] : members) {
        out[id];
        load[id] = 0;
    }
    // 1. Sticky: each partition stays with its current member if that member
    // still subscribes to the topic and the partition exists.
    std::map<std::pair<std::string, int32_t>, std::string> owner;
    for (const auto& [id, m] : members) {
        for (const auto& [topic, parts] : m.current) {
            auto t = topics.find(topic);
            if (t == topics.end() || !m.topics.count(topic)) continue;
            for (int32_t p : parts) {
                if (p >= t->second || owner.count({topic, p})) continue;
                owner[{topic, p}] = id;
                out[id][topic].insert(p);
                ++load[id];
            }
        }
    }
    auto least_loaded = [&](const std::string& topic) -> const std::string* {
        const std::string* best = nullptr;
        for (const auto& [id, m] : members) {
            if (!m.topics.count(topic)) continue;
            if (!best || load[id] < load[*best]) best = &id;
        }
        return best;
    };
    // 2. New partitions go to the least loaded subscriber.
    for (const auto& [topic, count] : topics) {
        for (int32_t p = 0; p < count; ++p) {
            if (owner.count({topic, p})) continue;
            const std::string* to = least_loaded(topic);
            if (!to) break;
            owner[{topic, p}] = *to;
            out[*to][topic].insert(p);
            ++load[*to];
        }
    }
    // 3. Balance: move a partition from the most to a least loaded member
    // that subscribes to its topic while they differ by more than one.
    for (bool moved = true; moved;) {
        moved = false;
        for (const auto& [from, m] : members) {
            for (const auto& [to, n] : members) {
                if (load[from] <= load[to] + 1) continue;
                for (auto& [topic, parts] : out[from]) {
                    if (parts.empty() || !n.topics.count(topic)) continue;
                    const int32_t p = *parts.rbegin();
                    parts.erase(p);
                    out[to][topic].insert(p);
                    --load[from];
                    ++load[to];
                    moved = true;
                    break;
                }
            }
        }
    }
    for (auto& [id, a] : out) {
        for (auto it = a.begin(); it != a.end();) it = it->second.empty() ? a.erase(it) : std::next(it);
    }
    return out;
}

}  // namespace fjord::groups
