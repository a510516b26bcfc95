// CPU vs CUDA parity of whole EP training steps: the same config, initial weights
// and batch on both backends give the same EP gradient and, after a few SGD steps,
// the same weights (up to GEMM summation order). Skips where no GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "engine/gradcheck.h"
#include "engine/trainer.h"
#include "kernels/backend.h"
#include "tests/cuda/cuda_parity.h"
#include "tests/skip.h"
#include "tests/tolerance.h"

namespace eqprop {

TEST_CASE("cuda training: EP steps on the GPU match the CPU backend") {
  if (eqprop::test::skip_without_gpu()) return;
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

    const test::TwinBatch data(*cpu, *cuda, 32, 64, 10, 5);
    test::check_ep_gradient_parity(on_cpu, on_cuda, data, 32, 1e-4);
    for (int step = 0; step < 5; ++step) {
      on_cpu.train_step(data.x_cpu.data(), data.t_cpu.data(), 32, step, 1.0f);
      on_cuda.train_step(data.x_gpu.data(), data.t_gpu.data(), 32, step, 1.0f);
    }
    const ParameterSet &w_cpu = on_cpu.model().parameters(), &w_gpu = on_cuda.model().parameters();
    for (std::size_t l = 0; l < w_cpu.weights.size(); ++l)
      eqprop::test::check_within("relative difference of the weights (cuda vs cpu) of layer " + std::to_string(l), test::relative_difference(w_gpu.weights[l].to_host(), w_cpu.weights[l].to_host()), 1e-4);
  }
}

TEST_CASE("cuda training: gradcheck passes on the GPU") {
  if (eqprop::test::skip_without_gpu()) return;
  const Config config = parse_config(
      nlohmann::json::parse(R"({"model": {"layers": [6, 5, 4]}, "dynamics": {"t_free": 400, "t_nudge": 400},
                                "ep": {"beta": 0.01}})"),
      "test");
  auto cuda = make_backend("cuda");
  const nlohmann::json report = run_gradcheck(*cuda, config, GradcheckOptions{8});
  CHECK(report["overall"]["cosine"].get<double>() > 0.99);
}

}  // namespace eqprop
