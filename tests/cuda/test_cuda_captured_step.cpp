// Recorded training steps on the GPU (training.cuda_graphs, engine/captured_step.h):
// a trainer that records its step once per input slot and replays it must give the
// weights and metrics of one that launches every call, bit for bit (a replay runs
// the same kernels on the same data), with the learning rate changing between
// steps and the metric queue wrapping around, and with the per-step random keys
// (Langevin noise, the hardware model) read from the step-parameter block and one
// recording per sign of beta. Skips where no GPU is present.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include "engine/trainer.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "tests/skip.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {

namespace {

void check_recorded_matches_direct(const nlohmann::json& user) {
  nlohmann::json on = user, off = user;
  on["training"]["cuda_graphs"] = "on";
  off["training"]["cuda_graphs"] = "off";
  auto cuda = make_backend("cuda");
  Trainer recorded(*cuda, parse_config(on, "test")), direct(*cuda, parse_config(off, "test"));
  REQUIRE(recorded.captured_step().recording());
  REQUIRE_FALSE(direct.captured_step().recording());
  const int batch = recorded.config().training.batch_size;
  const int inputs = recorded.model().input_size(), classes = recorded.model().classes();
  // Two input slots, as train_epoch alternates them: two recordings.
  std::mt19937 rng(21);
  std::vector<DeviceBuffer<float>> x, target;
  for (int slot = 0; slot < 2; ++slot) {
    x.emplace_back(*cuda, std::size_t(batch) * inputs);
    target.emplace_back(*cuda, std::size_t(batch) * classes);
  }
  const int steps = Trainer::kMetricsBatches + 6;  // the metric queue fills and wraps
  BatchResult recorded_total, direct_total;
  for (int step = 0; step < steps; ++step) {
    const int slot = step % 2;
    x[slot].copy_from_host(test::random_vector(rng, x[slot].size(), 0.0f, 1.0f));
    target[slot].copy_from_host(test::random_one_hot(rng, batch, classes));
    const float scale = 1.0f / float(1 + step / 4);  // a schedule: changes every 4 steps
    recorded.train_step(x[slot].data(), target[slot].data(), batch, step, scale);
    direct.train_step(x[slot].data(), target[slot].data(), batch, step, scale);
    if (step % 7 == 6) {  // reads at other points than the queue's wrap
      recorded_total.add(recorded.flush_metrics());
      direct_total.add(direct.flush_metrics());
    }
  }
  recorded_total.add(recorded.flush_metrics());
  direct_total.add(direct.flush_metrics());
  // One recording per input slot and sign of beta that ran at least twice (a
  // warm-up, then the recording).
  std::map<std::pair<int, float>, int> runs;
  for (int step = 0; step < steps; ++step) ++runs[{step % 2, recorded.beta_sign(std::uint64_t(step))}];
  std::size_t expected_graphs = 0;
  for (const auto& shape : runs) expected_graphs += shape.second >= 2 ? 1 : 0;
  CHECK(recorded.captured_step().graphs() == expected_graphs);
  CHECK(recorded.captured_step().failure() == "");
  const ParameterSet &a = recorded.model().parameters(), &b = direct.model().parameters();
  for (std::size_t l = 0; l < a.weights.size(); ++l) {
    test::check_bit_exact("weights " + std::to_string(l), a.weights[l].to_host(), b.weights[l].to_host());
    test::check_bit_exact("biases " + std::to_string(l), a.biases[l].to_host(), b.biases[l].to_host());
  }
  CHECK(recorded_total.batches == steps);
  CHECK(recorded_total.loss_sum == direct_total.loss_sum);
  CHECK(recorded_total.correct_sum == direct_total.correct_sum);
  CHECK(recorded_total.free_energies == direct_total.free_energies);
}

}  // namespace

TEST_CASE("cuda captured step: replayed dense steps equal launched ones (gemm and fused relaxation)") {
  if (test::skip_without_gpu()) return;
  for (const char* path : {"gemm", "fused"}) {
    CAPTURE(path);
    check_recorded_matches_direct(nlohmann::json{{"model", {{"layers", {64, 48, 10}}}},
                                                 {"dynamics", {{"t_free", 20}, {"t_nudge", 6}}},
                                                 {"optimizer", {{"lr", 0.05}}},
                                                 {"training",
                                                  {{"batch_size", 32}, {"eval_batch_size", 32},
                                                   {"relaxation_path", path}}}});
  }
}

TEST_CASE("cuda captured step: replayed conv steps equal launched ones") {
  if (test::skip_without_gpu()) return;
  nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_conv.json");
  user["dynamics"]["t_free"] = 6;
  user["dynamics"]["t_nudge"] = 2;
  user["training"]["batch_size"] = 16;
  user["training"]["eval_batch_size"] = 16;
  check_recorded_matches_direct(user);
}

TEST_CASE("cuda captured step: replayed steps with Langevin noise, the hardware model or a random beta sign equal launched ones") {
  if (test::skip_without_gpu()) return;
  const nlohmann::json base{{"model", {{"layers", {64, 48, 10}}}},
                            {"dynamics", {{"t_free", 12}, {"t_nudge", 4}}},
                            {"optimizer", {{"lr", 0.05}}},
                            {"training", {{"batch_size", 32}, {"eval_batch_size", 32}}}};
  const nlohmann::json variants[] = {
      {{"dynamics", {{"noise", 0.05}}}},
      {{"hardware",
        {{"dac", {{"enabled", true}, {"bits", 6}, {"rounding", "stochastic"}}},
         {"input_dac", {{"enabled", true}, {"bits", 5}, {"rounding", "stochastic"}}},
         {"adc", {{"enabled", true}, {"bits", 6}, {"noise_sigma", 0.5}, {"rounding", "stochastic"}}},
         {"programming_noise", {{"additive", 0.01}}},
         {"mismatch_sigma", 0.02}}}},
      {{"hardware",
        {{"dac", {{"enabled", true}, {"bits", 6}, {"range", "calibrated"}}},
         {"adc", {{"enabled", true}, {"bits", 6}, {"range", "calibrated"}, {"noise_sigma", 0.5}}}}}},
      {{"ep", {{"nudging", "one_sided"}, {"random_sign", true}}}},
  };
  for (const nlohmann::json& variant : variants) {
    CAPTURE(variant.dump());
    nlohmann::json user = base;
    user.merge_patch(variant);
    check_recorded_matches_direct(user);
  }
}

TEST_CASE("cuda captured step: replayed oscillator steps with Langevin noise equal launched ones") {
  if (test::skip_without_gpu()) return;
  nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_oscillator.json");
  user["dynamics"]["t_free"] = 12;
  user["dynamics"]["t_nudge"] = 4;
  user["dynamics"]["noise"] = 0.05;
  user["training"]["batch_size"] = 32;
  user["training"]["eval_batch_size"] = 32;
  check_recorded_matches_direct(user);
}

TEST_CASE("cuda captured step: replayed Ising steps equal launched ones (GEMM and fused annealing, dSB)") {
  if (test::skip_without_gpu()) return;
  for (const std::string variant : {"gemm", "fused", "dsb"}) {
    CAPTURE(variant);
    nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_ising.json");
    user["ising"]["replicas"] = 2;
    user["dynamics"]["t_free"] = 8;
    user["dynamics"]["t_nudge"] = 4;
    user["training"]["batch_size"] = 32;
    user["training"]["eval_batch_size"] = 32;
    if (variant == "dsb")
      user["ising"]["relaxation"] = "dsb";
    else
      user["training"]["relaxation_path"] = variant;
    check_recorded_matches_direct(user);
  }
}

}  // namespace eqprop
