// Tables over every generated message and every API key. Hand-written
// declarations; the tables themselves are generated into registry.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "protocol/wire.h"

namespace fjord::protocol::gen {

// oneway: a message with no response (Fjord's node-to-node RPC only).
enum class message_kind : uint8_t { request, response, header, data, oneway };

struct message_info {
    std::string_view name;  // the spec's name, e.g. "ProduceRequest"
    message_kind kind;
    int16_t api_key;  // -1 for headers and data
    int16_t min_version;
    int16_t max_version;
    // Decodes a body at a version and encodes it again.
    result<std::vector<uint8_t>, errc> (*reencode)(shared_bytes body, int16_t version);
    // Decodes a body and reports only whether it decoded.
    errc (*check_decode)(shared_bytes body, int16_t version);
};

struct api_info {
    int16_t key;
    std::string_view name;  // e.g. "Produce"
    int16_t min_version;    // decodable range
    int16_t max_version;
    int16_t advertised_min;  // what ApiVersions advertises; -1 when not advertised
    int16_t advertised_max;
    int16_t first_flexible;  // first flexible version, -1 if none
};

std::span<const message_info> all_messages();
std::span<const api_info> all_apis();

inline const message_info* find_message(std::string_view name) {
    for (const auto& m : all_messages()) {
        if (m.name == name) return &m;
    }
    return nullptr;
}

inline const api_info* find_api(int16_t key) {
    for (const auto& a : all_apis()) {
        if (a.key == key) return &a;
    }
    return nullptr;
}

// Request header version for a request of (api key, version): 2 when the
// request version is flexible, 1 otherwise (0 only for ControlledShutdown v0).
inline int16_t request_header_version(const api_info& api, int16_t version) {
    if (api.key == 7 && version == 0) return 0;
    return api.first_flexible >= 0 && version >= api.first_flexible ? 2 : 1;
}

// Response header version: 1 when flexible, 0 otherwise, and always 0 for
// ApiVersions so that any client can read the answer.
inline int16_t response_header_version(const api_info& api, int16_t version) {
    if (api.key == 18) return 0;
    return api.first_flexible >= 0 && version >= api.first_flexible ? 1 : 0;
}

}  // namespace fjord::protocol::gen
