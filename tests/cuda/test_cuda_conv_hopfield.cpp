// CPU vs CUDA parity of the convolutional Hopfield network: the same config, initial
// weights and batch give the same free-phase energy and EP gradient on both
// backends (up to GEMM summation order), and the GPU's EP gradient passes the
// gradcheck against the double-precision reference. Skips where no GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "engine/gradcheck.h"
#include "engine/trainer.h"
#include "kernels/backend.h"

namespace eqprop {
namespace {

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double difference = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(difference / std::max(norm, 1e-300));
}

}  // namespace

TEST_CASE("cuda conv hopfield: the EP gradient on the GPU matches the CPU backend") {
  if (!cuda_device_available()) {
    MESSAGE("skipped: no CUDA GPU on this machine");
    return;
  }
  for (const char* pool : {"max", "avg", "none"}) {
    CAPTURE(pool);
    // 1x12x12 -> conv 3x3, 6 ch -> (pool) -> conv 3x3, 8 ch -> (pool) -> read-out of 10.
    const Config config = parse_config(
        nlohmann::json{{"model", {{"kind", "conv_hopfield"}, {"layers", {10}}, {"cost", "cross_entropy"}}},
                       {"conv", {{"input_shape", {1, 12, 12}}, {"channels", {6, 8}}, {"padding", {1}}, {"pool", pool}}},
                       {"dynamics", {{"t_free", 30}, {"t_nudge", 10}}},
                       {"training", {{"batch_size", 16}, {"eval_batch_size", 16}}}},
        "test");
    auto cpu = make_backend("cpu");
    auto cuda = make_backend("cuda");
    Trainer on_cpu(*cpu, config), on_cuda(*cuda, config);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    std::vector<float> x(16 * 144), target(16 * 10, 0.0f);
    for (float& v : x) v = unit(rng);
    for (int s = 0; s < 16; ++s) target[s * 10 + rng() % 10] = 1.0f;
    DeviceBuffer<float> x_cpu(*cpu, x.size()), t_cpu(*cpu, target.size());
    DeviceBuffer<float> x_gpu(*cuda, x.size()), t_gpu(*cuda, target.size());
    x_cpu.copy_from_host(x), t_cpu.copy_from_host(target);
    x_gpu.copy_from_host(x), t_gpu.copy_from_host(target);

    ParameterSet g_cpu = on_cpu.model().make_parameter_like(), g_gpu = on_cuda.model().make_parameter_like();
    on_cpu.ep_gradient(x_cpu.data(), t_cpu.data(), 16, 0, g_cpu);
    on_cuda.ep_gradient(x_gpu.data(), t_gpu.data(), 16, 0, g_gpu);
    // GEMMs sum in different orders; a max-pooling argmax can follow a rounding
    // difference only at a near-tie, so the tolerance is the dense network's x10.
    for (std::size_t l = 0; l < g_cpu.weights.size(); ++l) {
      CAPTURE(l);
      CHECK(relative_difference(g_gpu.weights[l].to_host(), g_cpu.weights[l].to_host()) < 1e-3);
      CHECK(relative_difference(g_gpu.biases[l].to_host(), g_cpu.biases[l].to_host()) < 1e-3);
    }
  }
}

TEST_CASE("cuda conv hopfield: gradcheck on the GPU agrees with central differences") {
  if (!cuda_device_available()) {
    MESSAGE("skipped: no CUDA GPU on this machine");
    return;
  }
  auto cuda = make_backend("cuda");
  const Config config = parse_config(
      read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/gradcheck_tiny_conv.json"), "gradcheck_tiny_conv");
  const nlohmann::json report = run_gradcheck(*cuda, config, GradcheckOptions{6});
  MESSAGE(report["tensors"].dump());
  for (const auto& tensor : report["tensors"]) {
    CHECK(tensor["cosine"].get<double>() > 0.9999);
    CHECK(tensor["relative_error"].get<double>() < 5e-3);
  }
}

}  // namespace eqprop
