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

// Advances rows [begin, begin + rows) through steps [first, end). When the last of
// them is a checked step (checked_last), the state before it is snapshotted and the
// return value says whether every system of the rows moved less than the tolerance
// in it; otherwise it is false.
bool advance_rows(Backend& backend, NetworkState& state, const PhaseSpec& spec, const RelaxationBuffers& buffers,
                  int begin, int rows, int first, int end, bool checked_last,
                  const std::function<void(int, int, int)>& step_rows) {
  for (int step = first; step < end; ++step) {
    const bool check = checked_last && step + 1 == end;
    if (check)
      for (std::size_t i = 0; i < state.layers.size(); ++i) {
        const std::size_t units = buffers.units[i];
        backend.copy_on_device(buffers.snapshot->layers[i].data() + begin * units,
                               state.layers[i].data() + begin * units, rows * units * sizeof(float));
      }
    step_rows(step, begin, rows);
    if (check) return rows_converged(backend, state, spec, buffers, begin, rows);
  }
  return false;
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
  // batch concurrently (the CPU backend gives each core its own rows, with no
  // synchronization per step). The early exit is decided for the whole batch, so
  // every system takes the same steps however the batch is sliced (and so however
  // many threads relax it): the slices run from one check to the next, and the
  // phase ends at the first check that finds every slice converged. Without a
  // tolerance the whole phase is one stretch.
  const bool checking = spec.tolerance > 0.0f;
  const int check_every = checking ? std::max(1, spec.check_every) : spec.steps;
  for (int first = 0; first < spec.steps;) {
    const int end = std::min(spec.steps, (first / check_every + 1) * check_every);
    const bool checked_last = checking && end % check_every == 0;
    bool converged = true;
    if (buffers.whole_batch) {
      converged = advance_rows(backend, state, spec, buffers, 0, batch, first, end, checked_last, step_rows);
    } else {
      std::mutex mutex;
      backend.parallel_over_rows(batch, [&](int begin, int end_row) {
        const bool slice_converged =
            advance_rows(backend, state, spec, buffers, begin, end_row - begin, first, end, checked_last, step_rows);
        std::lock_guard<std::mutex> lock(mutex);
        converged = converged && slice_converged;
      });
    }
    first = end;
    if (checked_last && converged) return PhaseResult{end};
  }
  return PhaseResult{spec.steps};
}

}  // namespace eqprop
