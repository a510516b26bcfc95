// The loop every model's relaxation shares (DESIGN.md §1, "convergence-aware
// phases"): up to spec.steps synchronous steps on a batch of independent systems,
// slices of the batch relaxed concurrently where the backend allows, and the early
// exit by tolerance. The model supplies the step; this file owns the step counting,
// the snapshots and the residual check.
#pragma once

#include <functional>
#include <vector>

#include "kernels/backend.h"
#include "models/energy_model.h"

namespace eqprop {

// What a model's relaxation needs besides its step.
struct RelaxationBuffers {
  NetworkState* snapshot;            // shaped like the state: the states before a checked step
  float* row_residual;               // (max_batch) scratch
  std::vector<int> units;            // units of each state layer
  float period = 0.0f;               // > 0: states are phases, changes measured around the circle
};

// Relaxes rows [0, batch) of `state`: step_rows(step, begin, rows) advances rows
// [begin, begin + rows) by one step. Every spec.check_every steps (when
// spec.tolerance > 0) a slice stops once each of its systems moved less than the
// tolerance in that step (per unit time, i.e. tolerance * dt, for gradient flow and
// cSB). Returns the steps taken by the slowest slice.
PhaseResult relax_with_early_exit(Backend& backend, NetworkState& state, int batch, const PhaseSpec& spec,
                                  const RelaxationBuffers& buffers,
                                  const std::function<void(int step, int begin, int rows)>& step_rows);

}  // namespace eqprop
