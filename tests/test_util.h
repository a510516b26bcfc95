// Helpers shared by the tests: a scratch directory that cleans up after itself,
// writers for raw and gzip files, a check on the text of a thrown error, random
// data; the tolerance checks come with tests/tolerance.h.
#pragma once

#include <doctest/doctest.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "tests/tolerance.h"

namespace eqprop {
namespace test {

// A fresh directory under the system temp dir, removed with its contents on
// destruction. The name mixes pid, time and a counter so parallel test runs and
// several TempDirs in one test never collide.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
      path_ = base / ("eqprop_test_" + std::to_string(::getpid()) + "_" +
                      std::to_string(stamp) + "_" + std::to_string(counter++));
      if (std::filesystem::create_directory(path_)) return;  // false: it already existed
    }
    throw std::runtime_error("TempDir: cannot create a unique directory in " + base.string());
  }
  ~TempDir() {
    std::error_code ec;  // never throw from a destructor
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside this directory, as a string for the readers.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("write_bytes: cannot write " + path.string());
}

// Writes `bytes` gzip-compressed, as the published .gz dataset files are.
inline void write_gzip(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  gzFile out = gzopen(path.string().c_str(), "wb");
  if (out == nullptr) throw std::runtime_error("write_gzip: cannot open " + path.string());
  const int written =
      bytes.empty() ? 0 : gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size()));
  const int closed = gzclose(out);
  if (written != static_cast<int>(bytes.size()) || closed != Z_OK)
    throw std::runtime_error("write_gzip: cannot write " + path.string());
}

// The what() of the ErrorType that `fn` throws, or "" (and a failed check) if it
// throws nothing. Any other exception escapes and fails the test case.
template <class ErrorType, class Fn>
std::string thrown_message(Fn&& fn) {
  try {
    fn();
  } catch (const ErrorType& e) {
    return e.what();
  }
  FAIL_CHECK("expected an exception, none was thrown");
  return "";
}

// Checks that `message` contains each of `parts`, printing the message on failure.
inline void check_contains(const std::string& message, std::initializer_list<std::string> parts) {
  for (const auto& part : parts)
    CHECK_MESSAGE(message.find(part) != std::string::npos,
                  "\"" << message << "\" should contain \"" << part << "\"");
}


// `count` floats uniform in [lo, hi).
inline std::vector<float> random_vector(std::mt19937& rng, std::size_t count, float lo, float hi) {
  std::uniform_real_distribution<float> distribution(lo, hi);
  std::vector<float> out(count);
  for (float& x : out) x = distribution(rng);
  return out;
}

// (rows, classes) one-hot rows with a random class each.
inline std::vector<float> random_one_hot(std::mt19937& rng, int rows, int classes) {
  std::uniform_int_distribution<int> label(0, classes - 1);
  std::vector<float> out(static_cast<std::size_t>(rows) * classes, 0.0f);
  for (int r = 0; r < rows; ++r) out[static_cast<std::size_t>(r) * classes + label(rng)] = 1.0f;
  return out;
}

}  // namespace test
}  // namespace eqprop
