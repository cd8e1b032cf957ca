// What the generated RPC codecs need: the protocol's wire reader and writer
// and its generated-code support, brought into fjord::rpc::gen so that the
// same generator output compiles here. Hand-written; not generated.
#pragma once

#include "protocol/gen/support.h"

namespace fjord::rpc::gen {

using protocol::describe;
using protocol::errc;
using protocol::raw_tagged_field;
using protocol::reader;
using protocol::unknown_tags;
using protocol::uuid;
using protocol::writer;
using protocol::gen::decode_message;
using protocol::gen::encode_message;
using protocol::gen::write_raw_tagged_field;

}  // namespace fjord::rpc::gen
