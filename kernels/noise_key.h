// The logical key of a unit's random draw in a relaxation step (STYLE.md habit 4:
// keyed on logical indices, never on threads or slices). A batch's states are laid
// out as if every sample's units over all state layers were one row of units_total:
// the draw of (sample, unit u of layer l) at a step is element
//   sample * units_total + (units of the layers below l) + u
// of step key (noise_phase << 24) + step, so the key of every (sample, unit) is
// unique over a run and does not depend on how the batch is split into slices.
// The Langevin noise of every integrator (kernels/langevin_noise.h) and the Ising
// sweeps' uniforms draw at these keys; the ops hold the key of their first row and
// unit and the row stride.
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"

namespace eqprop {

struct NoiseKey {
  std::uint64_t first = 0;       // element of (first row of the slice, first unit of the layer)
  std::uint64_t row_stride = 0;  // elements between consecutive samples: units over all state layers
  std::uint32_t step = 0;        // (phase << 24) + step of the phase

  // The element of unit `unit` of row `row` of the slice.
  EQ_HD std::uint64_t element(std::int64_t row, std::int32_t unit) const {
    return first + static_cast<std::uint64_t>(row) * row_stride + static_cast<std::uint64_t>(unit);
  }
};

// The element of (row, unit) of an op whose first row and unit sit at element
// `index`, rows `row_stride` apart. A recorded training step (DESIGN.md, "Captured
// training steps") cannot carry the step's first sample as a launch argument: the
// op then holds the rest of its position in `index` and reads the samples before
// the step from the step-parameter block (`step_first_sample`, in device memory)
// when it runs; null where the whole position is in `index`.
EQ_HD std::uint64_t noise_element_at(std::uint64_t index, const std::uint64_t* step_first_sample,
                                     std::int64_t row_stride, std::int64_t row, std::int32_t unit) {
  const std::uint64_t before = step_first_sample ? *step_first_sample * static_cast<std::uint64_t>(row_stride) : 0u;
  return index + before + static_cast<std::uint64_t>(row * row_stride + unit);
}

// The keys before a recorded step's batch, for an op whose keys run `per_sample`
// per sample (several rows per sample: the Ising network's replicas): 0 where the
// op's launch-time key holds the whole position.
EQ_HD std::uint64_t step_keys_before(const std::uint64_t* step_first_sample, std::uint64_t per_sample) {
  return step_first_sample ? *step_first_sample * per_sample : 0u;
}

// The step key: a phase holds up to 2^24 steps, the phase id (PhaseSpec::noise_phase)
// names the rest.
EQ_HD std::uint32_t noise_step_key(std::uint32_t phase, int step) {
  return (phase << 24) + static_cast<std::uint32_t>(step);
}

// The key of a layer's units in a slice of the batch whose first row is sample
// first_sample of the run: units_total units per sample over all state layers, the
// layer starting at unit_offset within a sample.
EQ_HD NoiseKey relaxation_noise_key(std::uint64_t first_sample, std::uint64_t units_total, std::uint64_t unit_offset,
                                    std::uint32_t phase, int step) {
  return NoiseKey{first_sample * units_total + unit_offset, units_total, noise_step_key(phase, step)};
}

}  // namespace eqprop
