// Whole-file reads and crash-safe whole-file writes, used for checkpoints: a reader
// never sees a half-written file, and a crash mid-write leaves the old file intact.
#pragma once

#include <string>
#include <vector>

namespace eqprop {

// Writes `bytes` to `path + ".tmp.<pid>"` in the same directory, fsyncs it, then
// renames it onto `path` (rename is atomic within one file system, which is why the
// temp file must not live in /tmp). On failure removes the temp file and throws
// CheckpointError naming the path and the OS reason.
void write_file_atomically(const std::string& path, const std::string& bytes);

// Removes the temp files write_file_atomically leaves behind when its process dies
// mid-write ("NAME.tmp.<pid>" directly in `dir`) whose pid is not a live process; a
// live process's temp file may be a write in flight and is never touched. Returns
// the paths removed (none when `dir` does not exist).
std::vector<std::string> remove_stale_temp_files(const std::string& dir);

// The whole file as bytes; CheckpointError if it is missing or unreadable.
std::string read_file(const std::string& path);

// The plain read behind read_file, for callers that report their own error type:
// false when the file cannot be opened (opened = false) or read, with errno in
// error_number. A directory opens but does not read (EISDIR).
bool read_whole_file(const std::string& path, std::string& bytes, bool& opened, int& error_number);

}  // namespace eqprop
