// A parameter sweep: one training run per (variant, value) of a swept config key,
// e.g. accuracy against the free-phase step budget for gradient-flow EP and cSB-EP.
// Every run keeps its own directory (metrics, checkpoint) under the sweep's, and a
// sweep started again resumes its runs instead of repeating them: nothing is lost
// when a long sweep is interrupted. A run is resumed (or a finished one reused)
// only when its resolved config is identical; a changed one is trained again.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/dataset.h"
#include "engine/training_run.h"
#include "kernels/backend.h"

namespace eqprop {

struct SweepSpec {
  std::string key;                  // e.g. "dynamics.t_free"
  std::vector<std::string> values;  // e.g. {"5", "10", "20"}
  // Keys that change along with the swept one, value for value (same length).
  std::vector<std::pair<std::string, std::vector<std::string>>> tied;
  // Named variants, each a list of "key=value" overrides; none: one unnamed run set.
  std::vector<std::pair<std::string, std::vector<std::string>>> variants;
};

struct SweepPoint {
  std::string variant;
  std::string value;              // of the swept key
  std::vector<std::string> tied;  // values of the tied keys
  EpochRecord last;               // the final epoch of the run
  double seconds = 0;             // training + evaluation, all epochs
  std::string run_dir;
  // Non-empty when run_dir held a run of another config, trained again: the
  // resolved-config keys that differed ("optimizer.lr").
  std::string retrained_because;
};

// Checks the spec (keys exist, values parse, tied lengths match) before any run.
void validate_sweep(const nlohmann::json& user, const SweepSpec& spec);

// Runs every point; `user` is the partial config every run starts from (overrides
// already applied). on_point is called after each run.
std::vector<SweepPoint> run_sweep(Backend& backend, const nlohmann::json& user, const std::string& source,
                                  const SweepSpec& spec, const DatasetSplits& data, const std::string& out_dir,
                                  const RunCallbacks& callbacks,
                                  const std::function<void(const SweepPoint&)>& on_point);

// Creates the directory a sweep writes its table and plots into (and its parents);
// CheckpointError naming it when it cannot be made.
void create_output_directory(const std::string& dir);

// The values of a sweep range as text: "A:B", the integers A..B; "A:B:STEP", A,
// A + STEP, ... up to B (B included when a whole number of steps away, within
// rounding), each written with at most 12 significant digits so that
// "0:0.1:0.01" gives 0, 0.01, ..., 0.1. ConfigError for anything else, for
// B < A, a STEP <= 0 or more than kMaxSweepRangeValues values.
constexpr std::size_t kMaxSweepRangeValues = 1001;
std::vector<std::string> sweep_range_values(const std::string& range);

// CSV with one row per point: variant, the swept and tied keys, epochs, test and
// train accuracy and loss, free-phase energy and steps, seconds.
std::string sweep_csv(const SweepSpec& spec, const std::vector<SweepPoint>& points);

}  // namespace eqprop
