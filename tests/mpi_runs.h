// Helpers of the tests that run the eqprop binary under mpirun (tests/
// test_distributed.cpp on the CPU, tests/cuda/test_cuda_distributed.cpp on GPUs):
// the launcher, a short Fashion-MNIST training command, and the comparisons of two
// runs' parameters and accuracy.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "engine/distributed.h"
#include "engine/safetensors.h"
#include "tests/skip.h"

namespace eqprop {
namespace test {

constexpr const char* kFashionImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
// Loopback and shared memory only, as root in a container, more ranks than cores.
constexpr const char* kMpirun =
    "mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -x OMP_NUM_THREADS=1";

// skip_case_if without MPI in the build or mpirun on PATH.
inline bool skip_without_mpirun() {
  if (skip_case_if(!Distributed::built_with_mpi(), "this build has no MPI")) return true;
  return skip_case_if(std::system("command -v mpirun > /dev/null 2>&1") != 0, "mpirun is not on PATH");
}

// skip_without_mpirun, or without the Fashion-MNIST training images.
inline bool skip_without_mpirun_or_data() {
  if (skip_without_mpirun()) return true;
  return skip_case_if(!std::filesystem::exists(kFashionImages), std::string(kFashionImages) + " is not installed");
}

// 10 SGD steps of a global batch of 100 (1000 samples), then the test split.
inline std::string train_args(const std::string& out, const std::string& device = "cpu") {
  return std::string(" train --config ") + EQPROP_SOURCE_DIR + "/configs/fashion_mnist.json --device " + device +
         " --out " + out + " --set training.epochs=1 --set training.batch_size=100 --set data.train_limit=1000" +
         " --set data.test_limit=1000 --set model.layers=[784,64,10]";
}

// Runs `command` with its output discarded; its exit code, or -1 when it did not exit.
inline int run_command(const std::string& command) {
  const int status = std::system((command + " > /dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The largest difference between two runs' parameters (and the same tensors in both).
inline double largest_parameter_difference(const std::string& run_a, const std::string& run_b) {
  const SafetensorsFile a = read_safetensors(run_a + "/model.safetensors");
  const SafetensorsFile b = read_safetensors(run_b + "/model.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  double worst = 0;
  for (const auto& [name, tensor] : a.tensors) {
    REQUIRE(b.tensors.count(name) == 1);
    const std::vector<float>& other = b.tensors.at(name).data;
    REQUIRE(tensor.data.size() == other.size());
    for (std::size_t i = 0; i < other.size(); ++i)
      worst = std::max(worst, std::fabs(double(tensor.data[i]) - double(other[i])));
  }
  return worst;
}

// The test accuracy of a run's first epoch record.
inline double test_accuracy(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  std::getline(in, line);
  return nlohmann::json::parse(line).at("test_acc").get<double>();
}

}  // namespace test
}  // namespace eqprop
