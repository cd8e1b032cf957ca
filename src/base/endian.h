// Big-endian loads and stores: the byte order of the Kafka protocol and of
// every on-disk format Fjord shares with Kafka. The one place they live.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fjord {

// std::byteswap is C++23; g++ 12 and clang 14 have the builtins.
template <typename T>
constexpr T byteswap(T v) {
    static_assert(std::is_integral_v<T>);
    if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(v)));
    if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
    if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
    return v;
}

template <typename T>
T load_be(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return byteswap(v);
}

template <typename T>
void store_be(uint8_t* p, T v) {
    v = byteswap(v);
    std::memcpy(p, &v, sizeof(T));
}

}  // namespace fjord
