// The check every file reader makes before it opens its input.
#pragma once

#include <string>

namespace eqprop {

// Throws DataError when `path` exists but is not a regular file: a directory
// ("is a directory, not <kind>"), or a FIFO, socket or device, which a reader must
// refuse because opening or reading it can block forever (a FIFO without a writer)
// or never end (/dev/zero). A missing path is left to the caller, whose message
// for it differs by reader. `kind` names what was expected, e.g. "an IDX file".
void refuse_special_file(const std::string& path, const std::string& kind);

}  // namespace eqprop
