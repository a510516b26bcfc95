// CPU vs CUDA parity of whole EP training steps: the same config, initial weights
// and batch on both backends give the same EP gradient and, after a few SGD steps,
// the same weights (up to GEMM summation order). Skips where no GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

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

TEST_CASE("cuda training: EP steps on the GPU match the CPU backend") {
  if (!cuda_device_available()) {
    MESSAGE("skipped: no CUDA GPU on this machine");
    return;
  }
  for (const char* cost : {"mse", "cross_entropy"}) {
    CAPTURE(cost);
    const Config config = parse_config(
        nlohmann::json{{"model", {{"layers", {64, 48, 32, 10}}, {"cost", cost}}},
                       {"dynamics", {{"t_free", 40}, {"t_nudge", 15}}},
                       {"optimizer", {{"lr", 0.05}}},
                       {"training", {{"batch_size", 32}, {"eval_batch_size", 32}}}},
        "test");
    auto cpu = make_backend("cpu");
    auto cuda = make_backend("cuda");
    Trainer on_cpu(*cpu, config, 64, 10), on_cuda(*cuda, config, 64, 10);

    std::mt19937 rng(5);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    std::vector<float> x(32 * 64), target(32 * 10, 0.0f);
    for (float& v : x) v = unit(rng);
    for (int s = 0; s < 32; ++s) target[s * 10 + rng() % 10] = 1.0f;
    DeviceBuffer<float> x_cpu(*cpu, x.size()), t_cpu(*cpu, target.size());
    DeviceBuffer<float> x_gpu(*cuda, x.size()), t_gpu(*cuda, target.size());
    x_cpu.copy_from_host(x), t_cpu.copy_from_host(target);
    x_gpu.copy_from_host(x), t_gpu.copy_from_host(target);

    ParameterSet g_cpu = on_cpu.model().make_parameter_like(), g_gpu = on_cuda.model().make_parameter_like();
    on_cpu.ep_gradient(x_cpu.data(), t_cpu.data(), 32, 0, g_cpu);
    on_cuda.ep_gradient(x_gpu.data(), t_gpu.data(), 32, 0, g_gpu);
    for (std::size_t l = 0; l < g_cpu.weights.size(); ++l) {
      CAPTURE(l);
      CHECK(relative_difference(g_gpu.weights[l].to_host(), g_cpu.weights[l].to_host()) < 1e-4);
      CHECK(relative_difference(g_gpu.biases[l].to_host(), g_cpu.biases[l].to_host()) < 1e-4);
    }
    for (int step = 0; step < 5; ++step) {
      on_cpu.train_step(x_cpu.data(), t_cpu.data(), 32, step, 1.0f);
      on_cuda.train_step(x_gpu.data(), t_gpu.data(), 32, step, 1.0f);
    }
    const ParameterSet &w_cpu = on_cpu.model().parameters(), &w_gpu = on_cuda.model().parameters();
    for (std::size_t l = 0; l < w_cpu.weights.size(); ++l)
      CHECK(relative_difference(w_gpu.weights[l].to_host(), w_cpu.weights[l].to_host()) < 1e-4);
  }
}

TEST_CASE("cuda training: gradcheck passes on the GPU") {
  if (!cuda_device_available()) {
    MESSAGE("skipped: no CUDA GPU on this machine");
    return;
  }
  const Config config = parse_config(
      nlohmann::json::parse(R"({"model": {"layers": [6, 5, 4]}, "dynamics": {"t_free": 400, "t_nudge": 400},
                                "ep": {"beta": 0.01}})"),
      "test");
  auto cuda = make_backend("cuda");
  const nlohmann::json report = run_gradcheck(*cuda, config, GradcheckOptions{8});
  CHECK(report["overall"]["cosine"].get<double>() > 0.99);
}

}  // namespace eqprop
