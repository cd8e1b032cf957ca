// Storage errors: expected failures of the file layer and of logs.
#pragma once

#include <cstdint>

namespace fjord::storage {

enum class errc : uint8_t {
    io_error = 1,         // EIO or another unexpected OS error
    no_space,             // ENOSPC / EDQUOT: the disk is full
    not_found,            // a file or partition that does not exist
    already_exists,       // creating something that exists
    too_many_open_files,  // EMFILE / ENFILE
    invalid_batch,        // append input that is not a well-formed batch
    offset_out_of_range,  // read/lookup outside [log start, log end]
    offset_regression,    // replicated append whose offsets go backwards
    epoch_regression,     // a batch with a leader epoch below the latest
    corrupt_log,          // bytes that should be valid failed validation: partition offline
    bad_checkpoint,       // a checkpoint/metadata file that does not parse
    log_offline,          // the partition was taken offline by an earlier error
    identity_mismatch,    // meta.properties names another node.id or cluster.id
};

const char* describe(errc e);

}  // namespace fjord::storage
