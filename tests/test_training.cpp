// Training end to end on the CPU backend with small synthetic data: it learns,
// checkpoints round-trip, a resumed run equals an uninterrupted one bit for bit,
// and a divergence stops training and keeps the last good checkpoint.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "engine/training_run.h"
#include "kernels/error.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::halves;

Config small_config(int epochs) {
  return parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 2}}}},
                                     {"dynamics", {{"t_free", 15}, {"t_nudge", 6}}},
                                     {"optimizer", {{"lr", 0.1}}},
                                     {"training", {{"epochs", epochs}, {"batch_size", 16}, {"eval_batch_size", 50}}}},
                      "test");
}


SafetensorsFile checkpoint_of(const std::string& dir) {
  return read_safetensors((std::filesystem::path(dir) / kModelFile).string());
}

}  // namespace

TEST_CASE("training: EP learns a separable two-class problem") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const auto records = run_training(*backend, small_config(4), halves(), dir.path().string(), false, {});
  REQUIRE(records.size() == 4);
  MESSAGE("test accuracy after 4 epochs: " << records.back().test_acc);
  CHECK(records.back().test_acc > 0.95);
  CHECK(records.back().train_loss < records.front().train_loss);
}

TEST_CASE("training: a resumed run equals an uninterrupted run with the same seed") {
  auto backend = make_backend("cpu");
  test::TempDir straight, resumed;
  run_training(*backend, small_config(3), halves(), straight.path().string(), false, {});
  run_training(*backend, small_config(1), halves(), resumed.path().string(), false, {});
  const auto continued = run_training(*backend, small_config(3), halves(), resumed.path().string(), true, {});
  CHECK(continued.size() == 2);
  CHECK(continued.front().epoch == 2);

  const SafetensorsFile a = checkpoint_of(straight.path().string());
  const SafetensorsFile b = checkpoint_of(resumed.path().string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, tensor] : a.tensors) {
    CAPTURE(name);
    CHECK(tensor.data == b.tensors.at(name).data);  // bit for bit
  }
  CHECK(b.metadata.at("epochs_done") == "3");
  std::ifstream metrics(resumed.path() / kMetricsFile);
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  CHECK(lines == 3);
}

TEST_CASE("training: the checkpoint holds the model a PyTorch user can read, and reloads") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const Config config = small_config(1);
  run_training(*backend, config, halves(), dir.path().string(), false, {});
  const SafetensorsFile file = checkpoint_of(dir.path().string());
  CHECK(file.tensors.at("weights.0").shape == std::vector<std::int64_t>{16, 12});
  CHECK(file.tensors.at("biases.1").shape == std::vector<std::int64_t>{2});
  CHECK(file.metadata.at("cost") == "mse");

  Trainer reloaded(*backend, config, 16, 2);
  CHECK(load_checkpoint(dir.path().string(), reloaded, true) == 1);
  CHECK(reloaded.model().parameters().weights[0].to_host() == file.tensors.at("weights.0").data);

  // A config that disagrees with the checkpoint's shapes is refused, naming both.
  Config wider = parse_config(nlohmann::json{{"model", {{"layers", {16, 13, 2}}}}}, "test");
  Trainer mismatched(*backend, wider, 16, 2);
  const std::string message = test::thrown_message<CheckpointError>(
      [&] { load_checkpoint(dir.path().string(), mismatched, false); });
  test::check_contains(message, {"weights.0", "[16, 12]", "[16, 13]"});
}

TEST_CASE("training: a divergence stops with a clear error and keeps the last good checkpoint") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  run_training(*backend, small_config(1), halves(), dir.path().string(), false, {});
  // Corrupt one weight of the saved model, as a faulty device write would, and
  // resume: the first batch produces a NaN loss.
  SafetensorsFile file = checkpoint_of(dir.path().string());
  file.tensors.at("weights.1").data[3] = std::numeric_limits<float>::quiet_NaN();
  write_safetensors((dir.path() / kModelFile).string(), file);
  const std::string message = test::thrown_message<DivergenceError>(
      [&] { run_training(*backend, small_config(2), halves(), dir.path().string(), true, {}); });
  test::check_contains(message, {"diverged", "epoch 2", "last good checkpoint (epoch 1)"});
  // Nothing was overwritten: the checkpoint on disk is the one we wrote.
  const SafetensorsFile after = checkpoint_of(dir.path().string());
  CHECK(after.metadata.at("epochs_done") == "1");
  CHECK(std::isnan(after.tensors.at("weights.1").data[3]));
  CHECK(after.tensors.at("weights.0").data == file.tensors.at("weights.0").data);
}

}  // namespace eqprop
