// A whole training run: epochs of EP training, evaluation after each, a record per
// epoch in metrics.jsonl and a checkpoint after each epoch; resumable, so that a
// resumed run gives the same result as an uninterrupted one with the same seed
// (every random draw is keyed on (seed, epoch, batch), none on history).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/batch_loader.h"
#include "engine/config.h"
#include "engine/dataset.h"
#include "engine/trainer.h"
#include "kernels/error.h"

namespace eqprop {

// A histogram with equal-width bins over [edges.front(), edges.back()].
struct Histogram {
  std::vector<double> edges;  // bins + 1
  std::vector<std::int64_t> counts;

  static Histogram of(const std::vector<float>& values, int bins);
  nlohmann::json to_json() const;
};

struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double seconds = 0, samples_per_s = 0;
  // Relaxation diagnostics over the epoch's training batches: mean steps of the
  // free and of the (longer) nudged phase, and the energies E of the free states.
  double free_steps_mean = 0, nudge_steps_mean = 0;
  double free_energy_mean = 0;
  Histogram free_energy_histogram;
  // training.algorithm = implicit only: BatchResult::adjoint_residual_max of the epoch.
  std::optional<double> adjoint_residual_max;

  nlohmann::json to_json() const;
};

struct RunCallbacks {
  std::function<void(int epoch, int epochs)> on_epoch_start;  // epoch 1-based
  BatchProgress on_batch;
  std::function<void(int epoch)> on_eval_start;  // the test-set evaluation after each epoch
  BatchProgress on_eval_batch;
  std::function<void(const EpochRecord&)> on_epoch_end;
};

// When a run stops before its last epoch, at a batch boundary, with a resumable
// checkpoint (preemption on a cluster: Slurm sends SIGTERM, or SIGUSR1 with
// --signal=B:USR1@SECONDS, before it kills a job).
struct RunLimits {
  bool stop_on_signals = false;     // SIGTERM, SIGINT, SIGUSR1 while the run lasts
  double time_limit_seconds = 0;    // > 0: stop once this call has run this long
  std::int64_t stop_after_batches = 0;  // > 0: stop after this many training batches
};

// The run stopped early (RunLimits) after writing a checkpoint that --resume
// continues exactly where it stopped; what() says why and where.
class TrainingStopped : public Error {
 public:
  using Error::Error;
};

// The normalization the config asks for, computed from the training split.
Normalization make_normalization(const Config& config, const Dataset& train);

// Trains into out_dir (created if needed). With `resume`, continues from the
// checkpoint in out_dir. Returns the records of the epochs run by this call.
// Throws TrainingStopped when `limits` end it early.
std::vector<EpochRecord> run_training(Backend& backend, const Config& config, const DatasetSplits& data,
                                      const std::string& out_dir, bool resume,
                                      const RunCallbacks& callbacks, const RunLimits& limits = {});

}  // namespace eqprop
