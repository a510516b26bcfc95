// The fuzz input as a file: the readers under test take paths. One file per
// process, rewritten each run (tmpfs when /dev/shm exists, so runs stay fast).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace eqprop::fuzz {

inline std::string scratch_path(const char* name) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/eqprop_fuzz_" + std::to_string(getpid()) + "_" + name;
}

inline const std::string& write_input(const char* name, const std::uint8_t* data, std::size_t size) {
  static const std::string path = scratch_path(name);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  return path;
}

}  // namespace eqprop::fuzz
