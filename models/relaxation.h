// The loop every model's relaxation shares (DESIGN.md §1, "convergence-aware
// phases"): up to spec.steps synchronous steps on a batch of independent systems,
// slices of the batch relaxed concurrently where the backend allows, and the early
// exit by tolerance. The model supplies the step; this file owns the step counting,
// the snapshots and the residual check.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
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
  // Step the whole batch at once (models whose step is batch-wide GEMMs that do
  // not slice by rows, e.g. the convolutions); otherwise the backend may relax
  // slices of the batch concurrently.
  bool whole_batch = false;
};

// Relaxes rows [0, batch) of `state`: step_rows(step, begin, rows) advances rows
// [begin, begin + rows) by one step. Every spec.check_every steps (when
// spec.tolerance > 0) the batch stops once each of its systems moved less than the
// tolerance in that step (per unit time, i.e. tolerance * dt, for gradient flow and
// cSB); every system takes the same steps whatever the slicing. Returns the steps. cSB momenta start at zero
// unless spec.keep_momenta; a phase read out by the ADC (spec.read_out) needs at
// least one step (std::invalid_argument).
PhaseResult relax_with_early_exit(Backend& backend, NetworkState& state, int batch, const PhaseSpec& spec,
                                  const RelaxationBuffers& buffers,
                                  const std::function<void(int step, int begin, int rows)>& step_rows);

// Points the readout fields of an op that writes the final state of layer `layer`
// (LayerStepOp at the last step, RowMaxChangeOp at a check that may end the phase)
// at state.readouts[layer] from element `first` (PhaseSpec::read_out): the ADC
// reading rides on the pass that produces or checks the state.
template <class Op>
void point_readout(Op& op, NetworkState& state, const PhaseSpec& spec, int layer, std::int64_t first) {
  if (state.readouts.size() != state.layers.size())
    throw std::invalid_argument("relax: PhaseSpec::read_out needs state.readouts shaped like the layers");
  op.readout = state.readouts[layer].data() + first;
  op.adc = spec.adc;
  op.adc.tensor += static_cast<std::uint32_t>(layer);
  op.readout_first = first;
}

}  // namespace eqprop
