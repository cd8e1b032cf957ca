// Random instances of every generated message, for tests and fuzz seeds.
// Hand-written declarations; the randomize() functions are generated.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/wire.h"

namespace fjord::protocol::gen {

// A deterministic source of field values, biased toward boundary cases.
class rng {
public:
    explicit rng(uint64_t seed) : e_(seed) {}

    uint64_t next() { return e_(); }
    size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(e_() % n); }
    bool flip() { return (e_() & 1) != 0; }
    bool one_in(size_t n) { return below(n) == 0; }

    template <typename T>
    T integer() {
        switch (below(8)) {
            case 0: return 0;
            case 1: return static_cast<T>(-1);
            case 2: return std::numeric_limits<T>::max();
            case 3: return std::numeric_limits<T>::min();
            case 4: return static_cast<T>(below(128));
            default: return static_cast<T>(e_());
        }
    }
    double real() {
        switch (below(4)) {
            case 0: return 0.0;
            case 1: return -1.5;
            default: return static_cast<double>(static_cast<int64_t>(e_() >> 11)) / 1024.0;
        }
    }
    uuid make_uuid() {
        uuid u;
        if (one_in(4)) return u;
        for (auto& b : u.bytes) b = static_cast<uint8_t>(e_());
        return u;
    }
    std::string text() {
        std::string s(below(13), ' ');
        for (auto& c : s) c = static_cast<char>('a' + below(26));
        return s;
    }
    shared_bytes blob() {
        std::vector<uint8_t> v(below(24));
        for (auto& b : v) b = static_cast<uint8_t>(e_());
        return shared_bytes::adopt(std::move(v));
    }
    // Tags no spec uses, ascending, as a newer peer might send them.
    unknown_tags random_tags() {
        unknown_tags tags;
        if (!one_in(4)) return tags;
        uint32_t tag = 90 + static_cast<uint32_t>(below(10));
        for (size_t i = 0, n = 1 + below(2); i < n; ++i) {
            tags.push_back(raw_tagged_field{tag, blob()});
            tag += 1 + static_cast<uint32_t>(below(300));
        }
        return tags;
    }

private:
    std::mt19937_64 e_;
};

struct random_info {
    std::string_view name;
    std::vector<uint8_t> (*random_encoded)(rng& g, int16_t version);
};

std::span<const random_info> all_random();

}  // namespace fjord::protocol::gen
