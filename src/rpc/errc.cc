#include "rpc/errc.h"

namespace fjord::rpc {

const char* describe(errc e) {
    switch (e) {
        case errc::malformed: return "malformed";
        case errc::invalid_value: return "invalid value";
        case errc::unknown_api_key: return "unknown API key";
        case errc::unsupported_version: return "unsupported version";
        case errc::unknown_peer: return "unknown peer";
        case errc::disconnected: return "disconnected";
        case errc::timeout: return "timed out";
        case errc::queue_full: return "send queue full";
        case errc::frame_too_large: return "frame too large";
        case errc::stopped: return "transport stopped";
        case errc::remote_error: return "the peer could not answer";
    }
    return "?";
}

}  // namespace fjord::rpc
