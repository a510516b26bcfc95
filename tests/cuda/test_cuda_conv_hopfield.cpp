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
#include "tests/cuda/cuda_parity.h"
#include "tests/skip.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

// The same trainer on both backends, one batch of 16 1x12x12 inputs: the EP gradients
// agree tensor by tensor. GEMMs sum in different orders; a max-pooling argmax can
// follow a rounding difference only at a near-tie, so the tolerance is the dense
// network's x10.
void check_parity(const Config& config) {
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  Trainer on_cpu(*cpu, config), on_cuda(*cuda, config);
  const test::TwinBatch data(*cpu, *cuda, 16, 144, 10, 3);
  test::check_ep_gradient_parity(on_cpu, on_cuda, data, 16, 1e-3);
}

}  // namespace

TEST_CASE("cuda conv hopfield: the EP gradient on the GPU matches the CPU backend") {
  if (eqprop::test::skip_without_gpu()) return;
  for (const char* pool : {"max", "avg", "none"}) {
    CAPTURE(pool);
    // 1x12x12 -> conv 3x3, 6 ch -> (pool) -> conv 3x3, 8 ch -> (pool) -> read-out of 10.
    const Config config = parse_config(
        nlohmann::json{{"model", {{"kind", "conv_hopfield"}, {"layers", {10}}, {"cost", "cross_entropy"}}},
                       {"conv", {{"input_shape", {1, 12, 12}}, {"channels", {6, 8}}, {"padding", {1}}, {"pool", pool}}},
                       {"dynamics", {{"t_free", 30}, {"t_nudge", 10}}},
                       {"training", {{"batch_size", 16}, {"eval_batch_size", 16}}}},
        "test");
    check_parity(config);
  }
}

TEST_CASE("cuda conv hopfield: a residual network's EP gradient on the GPU matches the CPU backend") {
  if (eqprop::test::skip_without_gpu()) return;
  // 1x12x12 -> 6x12x12 -> 8x6x6 -> 8x6x6 -> 8x3x3, skips 0-2, 1-3 and 2-4, asynchronous, ReLU6.
  const Config config = parse_config(
      nlohmann::json{{"model",
                      {{"kind", "conv_hopfield"}, {"layers", {10}}, {"cost", "mse"}, {"activation", "clipped_relu"}}},
                     {"conv",
                      {{"input_shape", {1, 12, 12}}, {"channels", {6, 8, 8, 8}}, {"stride", {1, 2, 1, 2}},
                       {"padding", {1}}, {"pool", "none"}, {"skips", {{0, 2}, {1, 3}, {2, 4}}}}},
                     {"dynamics", {{"t_free", 30}, {"t_nudge", 10}, {"order", "asynchronous"}}},
                     {"training", {{"batch_size", 16}, {"eval_batch_size", 16}}}},
      "test");
  check_parity(config);
}

TEST_CASE("cuda conv hopfield: gradcheck on the GPU agrees with central differences") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cuda = make_backend("cuda");
  for (const char* name : {"gradcheck_tiny_conv", "gradcheck_tiny_resnet"}) {
    CAPTURE(name);
    const Config config = parse_config(
        read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/" + name + ".json"), name);
    const nlohmann::json report = run_gradcheck(*cuda, config, GradcheckOptions{6});
    MESSAGE(report["tensors"].dump());
    for (const auto& tensor : report["tensors"]) {
      CHECK(tensor["cosine"].get<double>() > 0.9999);
      eqprop::test::check_within("relative error of the tensor", tensor["relative_error"].get<double>(), 5e-3);
    }
  }
}

}  // namespace eqprop
