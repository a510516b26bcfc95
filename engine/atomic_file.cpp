#include "engine/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kernels/error.h"

namespace eqprop {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw CheckpointError("cannot " + what + " " + path + ": " + std::strerror(err));
}

// Closes `fd` (if open), removes the temp file, then reports `err` for `path`.
[[noreturn]] void abandon(int fd, const std::string& tmp, const std::string& path, int err) {
  if (fd >= 0) ::close(fd);
  ::unlink(tmp.c_str());
  fail("write", path, err);
}

constexpr const char* kTempInfix = ".tmp.";

// The pid in "NAME.tmp.<pid>", or 0 when `name` is not such a temp file.
pid_t temp_file_owner(const std::string& name) {
  const auto at = name.rfind(kTempInfix);
  if (at == std::string::npos || at == 0) return 0;
  const std::string digits = name.substr(at + std::strlen(kTempInfix));
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<pid_t>(std::stol(digits));
}

// kill(pid, 0) delivers nothing and only checks: ESRCH means no such process
// (EPERM: it exists under another user, so it is alive).
bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + kTempInfix + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("write", path, errno);

  // Any failure from here on must not leave the temp file behind.
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {  // write() may write less than asked, or be interrupted
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon(fd, tmp, path, errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  // fsync before rename: otherwise a crash could leave the new name pointing at
  // an empty or partial file on file systems that reorder metadata and data.
  if (::fsync(fd) != 0) abandon(fd, tmp, path, errno);
  if (::close(fd) != 0) abandon(-1, tmp, path, errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) abandon(-1, tmp, path, errno);
  // Make the rename itself durable. Best effort: the file is already complete and
  // in place, and some file systems refuse fsync on a directory.
  const int dir = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const pid_t owner = temp_file_owner(entry.path().filename().string());
    if (owner <= 0 || process_alive(owner) || !entry.is_regular_file(error)) continue;
    if (std::filesystem::remove(entry.path(), error)) removed.push_back(entry.path().string());
  }
  return removed;
}

bool read_whole_file(const std::string& path, std::string& bytes, bool& opened, int& error_number) {
  bytes.clear();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  opened = f != nullptr;
  if (!opened) {
    error_number = errno;
    return false;
  }
  char buffer[1 << 16];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) bytes.append(buffer, n);
  const bool failed = std::ferror(f) != 0;  // e.g. EISDIR: fopen of a directory succeeds
  error_number = errno;
  std::fclose(f);
  return !failed;
}

std::string read_file(const std::string& path) {
  std::string bytes;
  bool opened = false;
  int err = 0;
  if (!read_whole_file(path, bytes, opened, err)) fail("read", path, err);
  return bytes;
}

}  // namespace eqprop
