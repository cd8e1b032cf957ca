// Random instances of every generated RPC message, for tests and fuzz seeds:
// the protocol's generator of field values, and the table of this tree.
// Hand-written; the randomize() functions are generated.
#pragma once

#include <span>

#include "protocol/gen_random/random.h"
#include "rpc/gen/support.h"

namespace fjord::rpc::gen {

using protocol::gen::random_info;
using protocol::gen::rng;

std::span<const random_info> all_random();

}  // namespace fjord::rpc::gen
