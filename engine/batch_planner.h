// How large a batch fits on the device: the planner builds the trainer of a config
// at two small batch sizes, runs one (one-step) training step on each, and reads
// the peak of the device bytes the backend counted (kernels/allocation_counter.h).
// Every buffer of the trainer and the model is sized for a fixed part plus a part
// per system (the batch rows), so two measurements give
//   bytes(batch) = fixed_bytes + bytes_per_system * batch
// for any model, without the planner knowing its buffers. The largest batch that
// fits keeps a safety margin of the available memory for what the counter does
// not see (allocator rounding, cuBLAS workspace, CUB scratch, fragmentation).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "kernels/backend.h"

namespace eqprop {

struct BatchPlan {
  std::string backend;  // the backend's name and device
  std::string device;
  int measured_batch[2] = {0, 0};       // the two batch sizes built
  std::int64_t measured_bytes[2] = {0, 0};
  std::int64_t bytes_per_system = 0;
  std::int64_t fixed_bytes = 0;
  std::int64_t available_bytes = 0;  // free device memory, or the caller's figure
  bool available_given = false;      // available_bytes came from the caller
  double safety_margin = 0.0;        // fraction of available_bytes kept free
  std::int64_t usable_bytes = 0;     // available_bytes * (1 - safety_margin)
  std::int64_t max_batch = 0;        // the largest batch within usable_bytes (capped at 65536)
  int configured_batch = 0;          // max(training.batch_size, training.eval_batch_size)
  std::int64_t configured_bytes = 0;  // fixed + per system * configured_batch
  bool fits = false;

  nlohmann::json to_json() const;
};

// Fraction of the available memory the plan leaves unused.
constexpr double kPlannerSafetyMargin = 0.10;

// The peak device bytes of a trainer for `config` sized for `batch` systems (both
// training.batch_size and eval_batch_size set to it), over its construction and
// one training step of one free and one nudged step per phase on zero inputs.
std::int64_t measure_trainer_bytes(Backend& backend, const Config& config, int batch);

// The plan for `config` on `backend`. available_bytes: the memory to plan for;
// absent: what the device reports free now (device_memory()).
BatchPlan plan_batch(Backend& backend, const Config& config, std::optional<std::int64_t> available_bytes = {});

// Throws ConfigError naming the batch sizes, the bytes they need and the largest
// batch that fits, if `plan` does not fit.
void check_batch_fits(const BatchPlan& plan);

}  // namespace eqprop
