// Tables over every generated RPC message and API key (Fjord's own numbering,
// src/rpc/messages). The entry types are the protocol registry's; the tables
// are generated into registry.cc. Hand-written.
#pragma once

#include <span>
#include <string_view>

#include "protocol/gen/registry.h"
#include "rpc/gen/support.h"

namespace fjord::rpc::gen {

using protocol::gen::api_info;
using protocol::gen::message_info;
using protocol::gen::message_kind;

std::span<const message_info> all_messages();
std::span<const api_info> all_apis();

inline const message_info* find_message(std::string_view name) {
    for (const auto& m : all_messages()) {
        if (m.name == name) return &m;
    }
    return nullptr;
}

// The message of `kind` (request, response or oneway) with `api_key`.
inline const message_info* find_message(int16_t api_key, message_kind kind) {
    for (const auto& m : all_messages()) {
        if (m.api_key == api_key && m.kind == kind) return &m;
    }
    return nullptr;
}

inline const api_info* find_api(int16_t key) {
    for (const auto& a : all_apis()) {
        if (a.key == key) return &a;
    }
    return nullptr;
}

}  // namespace fjord::rpc::gen
