#include "models/relaxation.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "kernels/row_max_change.h"
#include "models/layered_tensors.h"

namespace eqprop {
namespace {

// True if every system of rows [begin, begin + rows) moved less than the
// tolerance in the step from the snapshot to `state`.
bool rows_converged(Backend& backend, NetworkState& state, const PhaseSpec& spec,
                    const RelaxationBuffers& buffers, int begin, int rows) {
  for (std::size_t i = 0; i < state.layers.size(); ++i) {
    const std::size_t units = buffers.units[i];
    RowMaxChangeOp op{state.layers[i].data() + begin * units, buffers.snapshot->layers[i].data() + begin * units,
                      buffers.row_residual + begin, static_cast<std::int32_t>(units), i > 0};
    op.period = buffers.period;
    // If this check ends the phase, the readout must be of this state.
    if (spec.read_out) point_readout(op, state, spec, static_cast<int>(i), std::int64_t(begin) * units);
    backend.reduce_rows(op, rows);  // one block per system on the GPU
  }
  std::vector<float> residual(rows);
  backend.copy_to_host(residual.data(), buffers.row_residual + begin, rows * sizeof(float));
  // Gradient flow and cSB move by dt * (rate): the residual is the rate.
  const float threshold = spec.integrator == Integrator::fixed_point ? spec.tolerance : spec.tolerance * spec.dt;
  // `!(r < threshold)` is true for NaN: a diverging system never counts as converged.
  return std::none_of(residual.begin(), residual.end(), [&](float r) { return !(r < threshold); });
}

int relax_rows(Backend& backend, NetworkState& state, const PhaseSpec& spec, const RelaxationBuffers& buffers,
               int begin, int rows, const std::function<void(int, int, int)>& step_rows) {
  const bool checking = spec.tolerance > 0.0f;
  const int check_every = std::max(1, spec.check_every);
  for (int step = 0; step < spec.steps; ++step) {
    const bool check = checking && (step + 1) % check_every == 0;
    if (check)
      for (std::size_t i = 0; i < state.layers.size(); ++i) {
        const std::size_t units = buffers.units[i];
        backend.copy_on_device(buffers.snapshot->layers[i].data() + begin * units,
                               state.layers[i].data() + begin * units, rows * units * sizeof(float));
      }
    step_rows(step, begin, rows);
    if (check && rows_converged(backend, state, spec, buffers, begin, rows)) return step + 1;
  }
  return spec.steps;
}

}  // namespace

PhaseResult relax_with_early_exit(Backend& backend, NetworkState& state, int batch, const PhaseSpec& spec,
                                  const RelaxationBuffers& buffers,
                                  const std::function<void(int step, int begin, int rows)>& step_rows) {
  // The readout is written by the final step or a check; a phase with no step has neither.
  if (spec.read_out && spec.steps < 1)
    throw std::invalid_argument("relax: a phase read out by the ADC needs at least one step");
  if (spec.integrator == Integrator::csb && !spec.keep_momenta)
    zero_rows(backend, state.momenta, buffers.units, batch);
  // The systems of a batch are independent: the backend may relax slices of the
  // batch concurrently (the CPU backend gives each core its own rows for the whole
  // phase, with no synchronization per step).
  if (buffers.whole_batch) return PhaseResult{relax_rows(backend, state, spec, buffers, 0, batch, step_rows)};
  std::vector<int> steps_by_slice;
  std::mutex mutex;
  backend.parallel_over_rows(batch, [&](int begin, int end) {
    const int steps = relax_rows(backend, state, spec, buffers, begin, end - begin, step_rows);
    std::lock_guard<std::mutex> lock(mutex);
    steps_by_slice.push_back(steps);
  });
  PhaseResult result;
  for (int steps : steps_by_slice) result.steps = std::max(result.steps, steps);
  return result;
}

}  // namespace eqprop
