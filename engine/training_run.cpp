#include "engine/training_run.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/atomic_file.h"
#include "engine/checkpoint.h"
#include "engine/distributed.h"
#include "engine/run_directory.h"
#include "kernels/error.h"

#include "eqprop_build_info.h"

namespace eqprop {

Histogram Histogram::of(const std::vector<float>& values, int bins) {
  Histogram histogram;
  if (values.empty() || bins < 1) return histogram;
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  const double lo = *low, width = (*high > *low ? *high - *low : 1.0) / bins;
  for (int b = 0; b <= bins; ++b) histogram.edges.push_back(lo + b * width);
  histogram.counts.assign(bins, 0);
  for (float v : values) {
    if (!std::isfinite(v)) continue;
    const int bin = std::min(bins - 1, static_cast<int>((v - lo) / width));
    ++histogram.counts[std::max(0, bin)];
  }
  return histogram;
}

nlohmann::json Histogram::to_json() const { return nlohmann::json{{"edges", edges}, {"counts", counts}}; }

nlohmann::json EpochRecord::to_json() const {
  nlohmann::json json{{"epoch", epoch},
                      {"train_loss", train_loss},
                      {"train_acc", train_acc},
                      {"test_loss", test_loss},
                      {"test_acc", test_acc},
                      {"seconds", seconds},
                      {"samples_per_s", samples_per_s},
                      {"free_steps_mean", free_steps_mean},
                      {"nudge_steps_mean", nudge_steps_mean},
                      {"free_energy_mean", free_energy_mean},
                      {"free_energy_histogram", free_energy_histogram.to_json()}};
  if (adjoint_residual_max) json["adjoint_residual_max"] = *adjoint_residual_max;
  return json;
}

Normalization make_normalization(const Config& config, const Dataset& train) {
  if (config.data.standardize) return Normalization::standardize(train);
  return Normalization::unit(train.sample_shape.empty() ? 1 : train.sample_shape[0]);
}

namespace {

// Keeps the metrics of the epochs a checkpoint holds and drops any later ones (an
// interrupted run may have logged an epoch whose checkpoint was never written).
void truncate_metrics(const std::string& path, int epochs_done) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_object() && record.value("epoch", 0) <= epochs_done) kept += line + "\n";
  }
  write_file_atomically(path, kept);
}

// The best test accuracy among the records of metrics.jsonl (-1: none), the one
// best.safetensors holds when a resumed run continues.
double best_recorded_accuracy(const std::string& path) {
  std::ifstream in(path);
  double best = -1;
  for (std::string line; std::getline(in, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_object() && record.contains("test_acc") && record["test_acc"].is_number())
      best = std::max(best, record["test_acc"].get<double>());
  }
  return best;
}

// Every rank must hold the same parameters after each update (the same reduced
// gradient, the same keyed noise): a hash of their bits, agreed across ranks.
void require_identical_parameters(Trainer& trainer, int epoch) {
  Distributed& world = Distributed::world();
  if (world.size() == 1) return;
  std::uint64_t hash = fnv1a(nullptr, 0);
  ParameterSet& parameters = trainer.optimizer_parameters();
  for (std::size_t l = 0; l < parameters.weights.size(); ++l)
    for (const DeviceBuffer<float>* tensor : {&parameters.weights[l], &parameters.biases[l]}) {
      const std::vector<float> host = tensor->to_host();
      hash = fnv1a(host.data(), host.size() * sizeof(float), hash);
    }
  world.require_agreement(hash, "the parameters after epoch " + std::to_string(epoch));
}

// The signal that asked the run to stop (0: none). A handler may only set a
// sig_atomic_t; the trainer looks at it between batches.
volatile std::sig_atomic_t stop_signal = 0;

extern "C" void request_stop(int signal) { stop_signal = signal; }

// Catches SIGTERM, SIGINT and SIGUSR1 while a run lasts, restoring the previous
// handlers after it: a second signal during the final checkpoint changes nothing.
class StopSignals {
 public:
  explicit StopSignals(bool active) : active_(active) {
    if (!active_) return;
    stop_signal = 0;
    struct sigaction action {};
    action.sa_handler = request_stop;
    action.sa_flags = SA_RESTART;  // reads and MPI calls in flight carry on
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &action, &previous_[i]);
  }
  ~StopSignals() {
    if (!active_) return;
    for (std::size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
    stop_signal = 0;
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGTERM, SIGINT, SIGUSR1};
  bool active_;
  std::array<struct sigaction, 3> previous_{};
};

// Why a run stops early, agreed across MPI ranks (the largest code wins): a signal
// number, or one of these.
constexpr std::int64_t kTimeLimitReached = 1000, kBatchLimitReached = 1001;

std::string stop_reason(std::int64_t code) {
  if (code == kTimeLimitReached) return "the time limit (--time-limit)";
  if (code == kBatchLimitReached) return "the batch limit (--stop-after-batches)";
  if (code == SIGTERM) return "SIGTERM";
  if (code == SIGINT) return "SIGINT";
  if (code == SIGUSR1) return "SIGUSR1";
  return "signal " + std::to_string(code);
}

// One line of metrics.jsonl; a record that cannot be written (disk full) fails the
// run instead of leaving a hole in the log of a run that reports success.
void append_record(const std::string& path, const EpochRecord& record) {
  std::ofstream out(path, std::ios::app);
  out << record.to_json().dump() << "\n";
  out.flush();
  if (!out) throw CheckpointError("cannot append the record of epoch " + std::to_string(record.epoch) + " to " + path);
}

}  // namespace

std::vector<EpochRecord> run_training(Backend& backend, const Config& config, const DatasetSplits& data,
                                      const std::string& out_dir, bool resume,
                                      const RunCallbacks& callbacks, const RunLimits& limits) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) throw CheckpointError("cannot create output directory " + out_dir + ": " + error.message());
  const std::string metrics_path = (std::filesystem::path(out_dir) / kMetricsFile).string();
  // With several MPI ranks, all train with one config and rank 0 alone writes.
  Distributed& world = Distributed::world();
  const std::string config_text = config.resolved.dump();
  world.require_agreement(fnv1a(config_text.data(), config_text.size()), "the resolved config");
  if (world.size() > 1) {
    // The same config can still name node-local copies of the data that differ, or
    // ranks started from different builds: either would train another run per rank.
    world.require_agreement(fingerprint(data.train) ^ (fingerprint(data.test) * 1099511628211ull),
                            "the training or test data");
    const std::string build = std::string(EQPROP_VERSION) + " " + EQPROP_GIT_COMMIT + " " + EQPROP_BUILD_TYPE;
    world.require_agreement(fnv1a(build.data(), build.size()), "the eqprop build (version, commit, build type)");
  }
  // Before anything is written: a run that cannot start leaves no run directory.
  world.require_rows_for_every_rank(config.training.batch_size);
  const bool writes = world.is_root();

  Trainer trainer(backend, config, static_cast<int>(data.train.sample_size()), data.train.num_classes);
  const Normalization normalization = make_normalization(config, data.train);
  int epochs_done = 0;
  EpochPosition position;  // inside epoch epochs_done + 1, when resumed from a stop
  // A process killed mid-write leaves its temp file (engine/atomic_file.h).
  if (writes) remove_stale_temp_files(out_dir);
  if (resume) {
    epochs_done = load_checkpoint(out_dir, trainer, /*with_optimizer=*/true, &position);
    if (writes) truncate_metrics(metrics_path, epochs_done);
  } else if (writes) {
    // Only now, with the config valid and the model built, does an earlier run in
    // out_dir go: a new run never mixes with an old checkpoint or best checkpoint.
    remove_run_files(out_dir);
    write_file_atomically(metrics_path, "");
    write_file_atomically((std::filesystem::path(out_dir) / kConfigFile).string(), config.resolved.dump(2) + "\n");
  }
  if (writes)
    record_run_start(out_dir, run_start_record(backend.name(), backend.device_name(), world.size(), epochs_done),
                     !resume);
  const std::string best_path = (std::filesystem::path(out_dir) / kBestModelFile).string();
  double best_accuracy = resume && writes && std::filesystem::exists(best_path) ? best_recorded_accuracy(metrics_path) : -1;

  // Asked at batch boundaries by every rank alike (one allreduce of the reason).
  const StopSignals signals(limits.stop_on_signals);
  const auto run_start = std::chrono::steady_clock::now();
  std::int64_t batches_in_epoch = 0;
  std::int64_t stop_code = 0;
  const auto stop_requested = [&] {
    std::int64_t code = limits.stop_on_signals ? stop_signal : 0;
    if (code == 0 && limits.time_limit_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count() >=
            limits.time_limit_seconds)
      code = kTimeLimitReached;
    // Steps taken, not yet reported: train_epoch reads metrics (and reports) in groups.
    if (code == 0 && limits.stop_after_batches > 0 && trainer.steps_taken() >= limits.stop_after_batches)
      code = kBatchLimitReached;
    stop_code = world.allreduce_max(code);
    return stop_code != 0;
  };
  const BatchProgress on_batch = [&](std::int64_t done, std::int64_t total, const BatchResult& so_far) {
    batches_in_epoch = total;
    if (callbacks.on_batch) callbacks.on_batch(done, total, so_far);
  };
  // The one line a stopped run prints: why, where (`where`), and how to go on.
  const auto stopped = [&](const std::string& where) {
    return TrainingStopped("stopped by " + stop_reason(stop_code) + " " + where + "; checkpoint in " + out_dir +
                           " (continue with: eqprop train --resume " + out_dir + ")");
  };
  // Inside epoch `epoch`: the checkpoint of the parameters, the momentum and where
  // the epoch stands, written before every rank stops.
  const auto stopped_inside = [&](int epoch, const EpochPosition& at, const std::string& where) {
    if (writes) save_checkpoint(out_dir, trainer, epoch, at);
    world.barrier();
    return stopped("in epoch " + std::to_string(epoch + 1) + " " + where);
  };

  std::vector<EpochRecord> records;
  for (int epoch = epochs_done; epoch < config.training.epochs; ++epoch) {
    if (epoch > epochs_done && stop_requested())  // the previous epoch's checkpoint holds the run
      throw stopped("after epoch " + std::to_string(epoch));
    if (callbacks.on_epoch_start) callbacks.on_epoch_start(epoch + 1, config.training.epochs);
    const auto start = std::chrono::steady_clock::now();
    BatchResult train;
    const std::int64_t first_batch = position.batches_done;
    BatchResult carried = std::move(position.totals);
    const double carried_seconds = position.train_seconds;  // the epoch's training before a stop
    position = EpochPosition{};
    const auto seconds_since = [](std::chrono::steady_clock::time_point since) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    };
    try {
      stop_code = 0;
      train = trainer.train_epoch(data.train, normalization, epoch, on_batch, first_batch, stop_requested,
                                  std::move(carried));
      if (stop_code != 0)
        throw stopped_inside(epoch, EpochPosition{train.batches, train, carried_seconds + seconds_since(start)},
                             "after batch " + std::to_string(train.batches) + " of " +
                                 std::to_string(batches_in_epoch));
      if (trainer.count_nonfinite_parameters() > 0)
        throw DivergenceError("training diverged in epoch " + std::to_string(epoch + 1) +
                              ": NaN or Inf in the weights");
    } catch (const DivergenceError& diverged) {
      const std::string kept = epoch > 0 ? "the last good checkpoint (epoch " + std::to_string(epoch) +
                                               ") is kept in " + out_dir
                                         : "no checkpoint was written";
      throw DivergenceError(std::string(diverged.what()) + "; " + kept);
    }
    const double train_seconds = carried_seconds + seconds_since(start);
    if (callbacks.on_eval_start) callbacks.on_eval_start(epoch + 1);
    // A stop is honoured inside the evaluation too: a test set of long relaxations can
    // take longer than a cluster's warning before the kill. The checkpoint then holds
    // the epoch with all its batches done, and the resumed run evaluates it.
    const EvalResult test = trainer.evaluate(data.test, normalization, config.data.test_limit,
                                             callbacks.on_eval_batch, stop_requested);
    if (test.stopped)
      throw stopped_inside(epoch, EpochPosition{train.batches, train, train_seconds},
                           "during its evaluation, after its last batch (resuming evaluates it)");

    EpochRecord record;
    record.epoch = epoch + 1;
    record.train_loss = train.loss_sum / train.size;
    record.train_acc = train.correct_sum / train.size;
    record.test_loss = test.loss;
    record.test_acc = test.accuracy;
    record.seconds = carried_seconds + seconds_since(start);
    record.samples_per_s = train.size / train_seconds;
    record.free_steps_mean = static_cast<double>(train.free_steps) / train.batches;
    record.nudge_steps_mean = static_cast<double>(train.nudge_steps) / train.batches;
    double energy_sum = 0;
    for (float e : train.free_energies) energy_sum += e;
    record.free_energy_mean = energy_sum / train.free_energies.size();
    record.free_energy_histogram = Histogram::of(train.free_energies, 20);
    if (config.training.implicit) record.adjoint_residual_max = train.adjoint_residual_max;
    require_identical_parameters(trainer, epoch + 1);
    if (writes) {
      // The record goes out before the checkpoint: a run killed between the two has
      // a record of an epoch it has no checkpoint of, which resuming drops and runs
      // again (truncate_metrics); the other order would lose the record for good.
      append_record(metrics_path, record);
      update_run_start(out_dir, "thread_team", trainer.thread_team().to_json());
      save_checkpoint(out_dir, trainer, epoch + 1);
      // best.safetensors: the checkpoint of the best test accuracy so far (the
      // earliest of equals), a byte copy of this epoch's, written atomically too.
      if (record.test_acc > best_accuracy) {
        write_file_atomically(best_path, read_file((std::filesystem::path(out_dir) / kModelFile).string()));
        best_accuracy = record.test_acc;
      }
    }
    records.push_back(record);
    if (callbacks.on_epoch_end) callbacks.on_epoch_end(record);
  }
  return records;
}

}  // namespace eqprop
