#include "hosttools/input_file.h"

#include <filesystem>

#include "kernels/error.h"

namespace eqprop {

void refuse_special_file(const std::string& path, const std::string& kind) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status) || std::filesystem::is_regular_file(status)) return;
  if (std::filesystem::is_directory(status)) throw DataError(path + ": is a directory, not " + kind);
  throw DataError(path + ": not a regular file (a FIFO, socket or device), not " + kind);
}

}  // namespace eqprop
