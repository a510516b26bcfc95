// The hardware model inside training: with every part off the run is bit-identical
// to one without a hardware section, the ADC sits on the contrastive-update path,
// the DAC on the weights the dynamics use, and a resumed hardware run equals an
// uninterrupted one.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <set>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "engine/training_run.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

nlohmann::json small_user(int epochs) {
  return {{"model", {{"layers", {16, 12, 2}}}},
          {"dynamics", {{"t_free", 15}, {"t_nudge", 6}}},
          {"optimizer", {{"lr", 0.1}}},
          {"training", {{"epochs", epochs}, {"batch_size", 16}, {"eval_batch_size", 50}}}};
}

std::map<std::string, Tensor> trained(const nlohmann::json& user, const std::string& dir) {
  auto backend = make_backend("cpu");
  run_training(*backend, parse_config(user, "test"), test::halves(), dir, false, {});
  return read_safetensors((std::filesystem::path(dir) / kModelFile).string()).tensors;
}

}  // namespace

TEST_CASE("hardware training: with every part off, results are bit-identical to no hardware section") {
  test::TempDir plain, off;
  nlohmann::json user = small_user(2);
  const auto a = trained(user, plain.path().string());
  user["hardware"] = {{"dac", {{"enabled", false}}},
                      {"input_dac", {{"enabled", false}}},
                      {"adc", {{"enabled", false}}},
                      {"programming_noise", {{"additive", 0.0}}},
                      {"mismatch_sigma", 0.0}};
  const auto b = trained(user, off.path().string());
  for (const auto& [name, tensor] : a) {
    CAPTURE(name);
    CHECK(tensor.data == b.at(name).data);
  }
}

TEST_CASE("hardware training: the contrastive update reads the states through the ADC") {
  // A 1-bit ADC on [0, 1] reads every state as 0 or 1, so each bias gradient
  // -c * sum_b (q(s+) - q(s-)) is an integer multiple of c = 1 / ((beta+ - beta-) B).
  // Skipping the ADC on this path leaves fractional states and breaks the pattern.
  auto gradient_of = [](bool adc) {
    nlohmann::json user = small_user(1);
    user["hardware"]["adc"] = adc ? nlohmann::json{{"enabled", true}, {"bits", 1}} : nlohmann::json{{"enabled", false}};
    const Config config = parse_config(user, "test");
    auto backend = make_backend("cpu");
    Trainer trainer(*backend, config, 16, 2);
    std::mt19937 rng(4);
    DeviceBuffer<float> x(*backend, 16 * 16), target(*backend, 16 * 2);
    x.copy_from_host(test::random_vector(rng, 16 * 16, 0.0f, 1.0f));
    target.copy_from_host(test::random_one_hot(rng, 16, 2));
    ParameterSet gradient = trainer.model().make_parameter_like();
    trainer.ep_gradient(x.data(), target.data(), 16, 0, gradient);
    const float c = 1.0f / (2 * config.ep.beta * 16);
    std::vector<double> multiples;
    for (const auto& b : gradient.biases)
      for (float g : b.to_host()) multiples.push_back(g / c);
    return multiples;
  };
  auto off_integer = [](const std::vector<double>& multiples) {
    double worst = 0;
    for (double m : multiples) worst = std::max(worst, std::abs(m - std::round(m)));
    return worst;
  };
  eqprop::test::check_within("distance of the gradient from integer multiples", off_integer(gradient_of(true)), 1e-4);
  CHECK(off_integer(gradient_of(false)) > 1e-2);
}

TEST_CASE("hardware training: the dynamics see the DAC-written weights, the optimizer its own copy") {
  nlohmann::json user = small_user(1);
  user["hardware"]["dac"] = {{"enabled", true}, {"bits", 3}};  // 7 symmetric levels per tensor
  const Config config = parse_config(user, "test");
  auto backend = make_backend("cpu");
  Trainer trainer(*backend, config, 16, 2);
  for (std::size_t l = 0; l < 2; ++l) {
    const std::vector<float> device = trainer.model().parameters().weights[l].to_host();
    const std::vector<float> master = trainer.optimizer_parameters().weights[l].to_host();
    std::set<float> levels(device.begin(), device.end()), values(master.begin(), master.end());
    CAPTURE(l);
    CHECK(levels.size() <= 7);
    CHECK(values.size() > 7);  // the full-precision copy is not quantized
    float largest = 0;
    for (float w : master) largest = std::max(largest, std::abs(w));
    for (float w : device) CHECK(std::abs(w) <= largest * (1 + 1e-6f));
  }
}

TEST_CASE("hardware training: a resumed run with noisy writes equals an uninterrupted one") {
  nlohmann::json user = small_user(2);
  user["hardware"] = {{"dac", {{"enabled", true}, {"bits", 6}, {"rounding", "stochastic"}}},
                      {"adc", {{"enabled", true}, {"bits", 6}, {"noise_sigma", 0.5}}},
                      {"programming_noise", {{"multiplicative", 0.02}}},
                      {"mismatch_sigma", 0.02}};
  auto backend = make_backend("cpu");
  test::TempDir straight, resumed;
  run_training(*backend, parse_config(user, "test"), test::halves(), straight.path().string(), false, {});
  nlohmann::json first = user;
  first["training"]["epochs"] = 1;
  run_training(*backend, parse_config(first, "test"), test::halves(), resumed.path().string(), false, {});
  run_training(*backend, parse_config(user, "test"), test::halves(), resumed.path().string(), true, {});
  const auto a = read_safetensors((straight.path() / kModelFile).string());
  const auto b = read_safetensors((resumed.path() / kModelFile).string());
  for (const auto& [name, tensor] : a.tensors) {
    CAPTURE(name);
    CHECK(tensor.data == b.tensors.at(name).data);
  }
  CHECK(a.metadata.at("device_writes") == b.metadata.at("device_writes"));
}

}  // namespace eqprop
