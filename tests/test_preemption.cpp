// Preemption: a run stopped between batches (a signal, a batch or time limit)
// writes a checkpoint of its position inside the epoch, and resuming from it gives
// the checkpoint and metrics of a run that was never stopped, bit for bit.
#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "engine/training_run.h"
#include "kernels/error.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::halves;

// 2 epochs of the halves data, several batches each.
Config preemption_config() {
  return parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 2}}}},
                                     {"dynamics", {{"t_free", 15}, {"t_nudge", 6}}},
                                     {"optimizer", {{"lr", 0.1}, {"momentum", 0.9}}},
                                     {"training", {{"epochs", 2}, {"batch_size", 16}, {"eval_batch_size", 50}}}},
                      "test");
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The model.safetensors bytes (parameters, momentum, metadata) and the metrics
// without the wall-clock fields.
void check_same_run(const std::string& a, const std::string& b) {
  CHECK(file_text(a + "/" + kModelFile) == file_text(b + "/" + kModelFile));
  std::ifstream left(a + "/" + kMetricsFile), right(b + "/" + kMetricsFile);
  std::string l, r;
  int records = 0;
  while (std::getline(left, l)) {
    REQUIRE(std::getline(right, r));
    nlohmann::json x = nlohmann::json::parse(l), y = nlohmann::json::parse(r);
    for (const char* clock : {"seconds", "samples_per_s"}) x.erase(clock), y.erase(clock);
    CHECK(x.dump() == y.dump());
    ++records;
  }
  CHECK(!std::getline(right, r));
  CHECK(records == 2);
}

}  // namespace

TEST_CASE("preemption: stopped after k batches and resumed equals an uninterrupted run") {
  auto backend = make_backend("cpu");
  test::TempDir straight, stopped;
  run_training(*backend, preemption_config(), halves(), straight.path().string(), false, {});

  RunLimits limits;
  limits.stop_after_batches = 3;  // inside the first epoch
  std::string message;
  try {
    run_training(*backend, preemption_config(), halves(), stopped.path().string(), false, {}, limits);
  } catch (const TrainingStopped& stop) {
    message = stop.what();
  }
  CHECK(message.find("epoch 1 after batch 3") != std::string::npos);
  CHECK(message.find(stopped.path().string()) != std::string::npos);
  const SafetensorsFile midway = read_safetensors(stopped.file(kModelFile));
  CHECK(midway.metadata.at("epochs_done") == "0");
  CHECK(midway.metadata.at("batches_done") == "3");

  const auto records = run_training(*backend, preemption_config(), halves(), stopped.path().string(), true, {});
  CHECK(records.size() == 2);
  check_same_run(straight.path().string(), stopped.path().string());
}

TEST_CASE("preemption: SIGUSR1 during a batch stops after it, resuming twice still matches") {
  auto backend = make_backend("cpu");
  test::TempDir straight, stopped;
  run_training(*backend, preemption_config(), halves(), straight.path().string(), false, {});

  RunLimits limits;
  limits.stop_on_signals = true;
  // Slurm's warning signal arrives during the progress report of batch `at` of a
  // run. The trainer reads its metrics (and reports progress) every
  // Trainer::kMetricsBatches = 16 batches and at an epoch's end, so the report of
  // batch `at` runs after the group's last batch, where the run then stops.
  const auto signal_at = [](int at) {
    RunCallbacks callbacks;
    callbacks.on_batch = [at, seen = 0](std::int64_t, std::int64_t, const BatchResult&) mutable {
      if (++seen == at) std::raise(SIGUSR1);
    };
    return callbacks;
  };
  const auto run_until_stopped = [&](bool resume, int at) {
    std::string message;
    try {
      run_training(*backend, preemption_config(), halves(), stopped.path().string(), resume, signal_at(at), limits);
    } catch (const TrainingStopped& stop) {
      message = stop.what();
    }
    MESSAGE(message);
    CHECK(message.find("SIGUSR1") != std::string::npos);
  };
  run_until_stopped(false, 2);  // epoch 1 (20 batches), reported after batch 16
  run_until_stopped(true, 10);  // 4 batches to the epoch's end, then epoch 2: batch 6, reported after 16
  CHECK(read_safetensors(stopped.file(kModelFile)).metadata.at("batches_done") == "16");
  CHECK(read_safetensors(stopped.file(kModelFile)).metadata.at("epochs_done") == "1");
  const auto records = run_training(*backend, preemption_config(), halves(), stopped.path().string(), true, {});
  CHECK(records.size() == 1);
  check_same_run(straight.path().string(), stopped.path().string());
}

TEST_CASE("preemption: a signal during the evaluation stops it there, resuming evaluates that epoch and matches") {
  auto backend = make_backend("cpu");
  test::TempDir straight, stopped;
  run_training(*backend, preemption_config(), halves(), straight.path().string(), false, {});

  RunLimits limits;
  limits.stop_on_signals = true;
  // The test split is 2 evaluation batches of 50: the signal comes in the report of
  // the first one, and the run stops before the second.
  RunCallbacks callbacks;
  int evaluated_batches = 0;
  callbacks.on_eval_batch = [&](std::int64_t, std::int64_t, const BatchResult&) {
    if (++evaluated_batches == 1) std::raise(SIGUSR1);
  };
  std::string message;
  try {
    run_training(*backend, preemption_config(), halves(), stopped.path().string(), false, callbacks, limits);
  } catch (const TrainingStopped& stop) {
    message = stop.what();
  }
  MESSAGE(message);
  CHECK(message.find("SIGUSR1 in epoch 1 during its evaluation") != std::string::npos);
  CHECK(evaluated_batches == 1);
  const SafetensorsFile at_stop = read_safetensors(stopped.file(kModelFile));
  CHECK(at_stop.metadata.at("epochs_done") == "0");
  CHECK(at_stop.metadata.at("batches_done") == "20");  // 320 samples in batches of 16: all of epoch 1
  const double train_seconds = nlohmann::json::parse(at_stop.metadata.at("epoch_totals")).at("train_seconds");
  CHECK(train_seconds > 0);
  CHECK(file_text(stopped.file(kMetricsFile)).empty());  // no record of an epoch not evaluated

  const auto records = run_training(*backend, preemption_config(), halves(), stopped.path().string(), true, {});
  REQUIRE(records.size() == 2);
  // The resumed epoch's record times its training before the stop too.
  CHECK(records[0].seconds >= train_seconds);
  check_same_run(straight.path().string(), stopped.path().string());
}

}  // namespace eqprop
