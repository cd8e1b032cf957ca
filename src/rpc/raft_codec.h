// raft::envelope <-> the body of a one-way RPC frame: one generated message
// per raft message kind (RaftVote ... RaftTimeoutNow) and RaftHeartbeatBatch
// for a coalesced batch (src/rpc/messages). The envelope's from/to travel in
// the frame header (SourceNodeId, DestinationNodeId), not in the body.
//
// Lossless: decode(encode(e)) equals e field for field. Decoding reads
// untrusted bytes: it is checked, never asserted, and refuses what the Raft
// core would assert on (a negative group or term, an entry kind out of range,
// entries that are not contiguous from prev_offset + 1 or whose terms go
// backwards, a control entry of more than one record, an undecodable
// configuration, snapshot voters not ascending). It checks the shape of one
// message, not whether it fits the receiver's log (that is the core's job).
// Entry payloads and snapshot data are slices of the received frame, not
// copies.
//
// Plain functions; any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "protocol/wire.h"
#include "raft/group_manager.h"
#include "rpc/errc.h"

namespace fjord::rpc {

struct api_version {
    int16_t key = 0;
    int16_t version = 0;
};

// The API key and version an envelope travels as.
api_version raft_api(const raft::envelope& e);
// One of the Raft messages (keys 0-8).
bool is_raft_api(int16_t key);

// Appends the body of `e` to `w` (after the frame header). `e` comes from
// this node's group_manager: a message's from/to must equal the envelope's.
void encode_raft(const raft::envelope& e, protocol::writer& w);
std::vector<uint8_t> encode_raft(const raft::envelope& e);

// Decodes a body received as `api` in a frame from `from` to `to`.
result<raft::envelope, errc> decode_raft(api_version api, raft::node_id from, raft::node_id to, shared_bytes body);

}  // namespace fjord::rpc
