#include "engine/training_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/atomic_file.h"
#include "engine/checkpoint.h"
#include "kernels/error.h"

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
  return nlohmann::json{{"epoch", epoch},
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
                                      const RunCallbacks& callbacks) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) throw CheckpointError("cannot create output directory " + out_dir + ": " + error.message());
  const std::string metrics_path = (std::filesystem::path(out_dir) / kMetricsFile).string();

  Trainer trainer(backend, config, static_cast<int>(data.train.sample_size()), data.train.num_classes);
  const Normalization normalization = make_normalization(config, data.train);
  int epochs_done = 0;
  if (resume) {
    epochs_done = load_checkpoint(out_dir, trainer, /*with_optimizer=*/true);
    truncate_metrics(metrics_path, epochs_done);
  } else {
    write_file_atomically(metrics_path, "");
    write_file_atomically((std::filesystem::path(out_dir) / kConfigFile).string(), config.resolved.dump(2) + "\n");
  }

  std::vector<EpochRecord> records;
  for (int epoch = epochs_done; epoch < config.training.epochs; ++epoch) {
    if (callbacks.on_epoch_start) callbacks.on_epoch_start(epoch + 1, config.training.epochs);
    const auto start = std::chrono::steady_clock::now();
    BatchResult train;
    try {
      train = trainer.train_epoch(data.train, normalization, epoch, callbacks.on_batch);
      if (trainer.count_nonfinite_parameters() > 0)
        throw DivergenceError("training diverged in epoch " + std::to_string(epoch + 1) +
                              ": NaN or Inf in the weights");
    } catch (const DivergenceError& diverged) {
      const std::string kept = epoch > 0 ? "the last good checkpoint (epoch " + std::to_string(epoch) +
                                               ") is kept in " + out_dir
                                         : "no checkpoint was written";
      throw DivergenceError(std::string(diverged.what()) + "; " + kept);
    }
    const double train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const EvalResult test = trainer.evaluate(data.test, normalization, config.data.test_limit);

    EpochRecord record;
    record.epoch = epoch + 1;
    record.train_loss = train.loss_sum / train.size;
    record.train_acc = train.correct_sum / train.size;
    record.test_loss = test.loss;
    record.test_acc = test.accuracy;
    record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    record.samples_per_s = train.size / train_seconds;
    record.free_steps_mean = static_cast<double>(train.free_steps) / train.batches;
    record.nudge_steps_mean = static_cast<double>(train.nudge_steps) / train.batches;
    double energy_sum = 0;
    for (float e : train.free_energies) energy_sum += e;
    record.free_energy_mean = energy_sum / train.free_energies.size();
    record.free_energy_histogram = Histogram::of(train.free_energies, 20);
    // The record goes out before the checkpoint: a run killed between the two has
    // a record of an epoch it has no checkpoint of, which resuming drops and runs
    // again (truncate_metrics); the other order would lose the record for good.
    append_record(metrics_path, record);
    save_checkpoint(out_dir, trainer, epoch + 1);
    records.push_back(record);
    if (callbacks.on_epoch_end) callbacks.on_epoch_end(record);
  }
  return records;
}

}  // namespace eqprop
