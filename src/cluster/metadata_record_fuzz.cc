// libFuzzer: decode() of untrusted metadata record bytes must fail cleanly or
// produce a record that re-encodes to the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/assert.h"
#include "cluster/metadata_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> in(data, size);
    auto rec = fjord::cluster::decode(in);
    if (!rec) return 0;
    auto again = fjord::cluster::encode(*rec);
    // Varints have one shortest form but decode longer ones too: compare the
    // decoded values, not the bytes.
    auto back = fjord::cluster::decode(again);
    FJORD_ASSERT(back.ok() && *back == *rec, "a decoded record does not round-trip");
    return 0;
}
