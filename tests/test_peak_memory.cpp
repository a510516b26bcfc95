// The eqprop command's peak resident memory where no GPU is used: `eqprop help`, and
// runs refused at a 16-byte IDX header or a 19-byte Ising couplings file, stay below
// 100 MiB. They once peaked at ~225 MB in the CUDA build because cuBLAS(Lt), merely
// loaded, costs ~210 MB; the CUDA backend is now a module loaded only when a CUDA
// backend is made (kernels/cuda_module.h).
//
// Measured by GNU time (-f %M, the peak resident set of the process it starts): the
// rusage of a child forked from this test program would not do, because Linux keeps
// in a process's peak the memory of the forked copy it was before exec, i.e. this
// program's own peak (the tests link the CUDA module, and cuBLAS with it).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/address_sanitizer.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

constexpr long kPeakLimitKiB = 100 * 1024;
constexpr char kGnuTime[] = "/usr/bin/time";

struct ChildRun {
  int exit_code = -1;  // -1: killed by a signal
  long peak_kib = 0;
};

// Runs the eqprop command with `args` under GNU time (its output to /dev/null),
// waits for it, and reads its peak from the file time writes.
ChildRun run_eqprop(const test::TempDir& dir, const std::vector<std::string>& args) {
  const std::string report = dir.file("peak.txt");
  std::vector<std::string> words = {kGnuTime, "-f", "%M", "-o", report, EQPROP_CLI_PATH};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // only async-signal-safe calls until exec
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  ChildRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  // The last line is the peak in KiB (a "Command exited with non-zero status" line may precede it).
  std::ifstream in(report);
  std::string last;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) last = line;
  run.peak_kib = std::atol(last.c_str());
  REQUIRE(run.peak_kib > 0);
  return run;
}

// The pin is on the build users run: under ASan (scripts/sanitize.sh) the same runs
// peak at 55-85 MB from its shadow memory and quarantine alone.
bool skip_unmeasurable() {
  if (test::skip_case_if(EQPROP_UNDER_ASAN, "AddressSanitizer's own memory would be measured")) return true;
  return test::skip_case_if(!std::filesystem::exists(kGnuTime), "GNU time (/usr/bin/time) is not installed");
}

// An IDX header (big-endian magic and sizes) with no data after it.
void write_idx_header(const std::string& path, std::uint32_t magic, const std::vector<std::uint32_t>& sizes) {
  std::vector<std::uint8_t> bytes;
  auto put = [&](std::uint32_t word) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(word >> shift));
  };
  put(magic);
  for (std::uint32_t size : sizes) put(size);
  test::write_bytes(path, bytes);
}

TEST_CASE("peak memory: eqprop help stays below 100 MiB") {
  if (skip_unmeasurable()) return;
  test::TempDir dir;
  const ChildRun run = run_eqprop(dir, {"help"});
  CHECK(run.exit_code == 0);
  MESSAGE("eqprop help peaked at " << run.peak_kib << " KiB");
  CHECK(run.peak_kib < kPeakLimitKiB);
}

TEST_CASE("peak memory: a run refused at a 16-byte IDX header stays below 100 MiB") {
  if (skip_unmeasurable()) return;
  test::TempDir dir;
  // 2^31 images of 1x1 promised, none there: the reader refuses before allocating.
  for (const std::string split : {"train", "t10k"}) {
    write_idx_header(dir.file(split + "-images-idx3-ubyte"), 0x00000803, {1u << 31, 1, 1});
    write_idx_header(dir.file(split + "-labels-idx1-ubyte"), 0x00000801, {1u << 31});
  }
  // --device cpu: on a GPU machine auto would make (and load) the CUDA backend first.
  const ChildRun run =
      run_eqprop(dir, {"train", "--config", std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist.json", "--device",
                  "cpu", "--set", "data.dir=" + dir.path().string(), "--out", dir.file("run")});
  CHECK(run.exit_code == 1);  // the DataError of the truncated file
  MESSAGE("the refused IDX run peaked at " << run.peak_kib << " KiB");
  CHECK(run.peak_kib < kPeakLimitKiB);
}

TEST_CASE("peak memory: a solve refused at a 19-byte Ising couplings file stays below 100 MiB") {
  if (skip_unmeasurable()) return;
  test::TempDir dir;
  std::ofstream(dir.file("j.txt")) << "1073741824 0\nh 1 1\n";  // 2^30 spins, above the solvers' limit
  const ChildRun run =
      run_eqprop(dir, {"solve", "--problem", "ising", "--couplings", dir.file("j.txt"), "--device", "cpu"});
  CHECK(run.exit_code == 1);
  MESSAGE("the refused solve peaked at " << run.peak_kib << " KiB");
  CHECK(run.peak_kib < kPeakLimitKiB);
}

}  // namespace
}  // namespace eqprop
