// The unit normal of the Langevin noise of the relaxation dynamics (DESIGN.md §1),
// keyed on logical indices: (seed, element, step), element being the unit's position
// in the run (sample * units per sample + unit) and step (phase << 24) + step.
// Elements 2k and 2k + 1 share one Philox draw, the two normals of one Box-Muller
// pair. Every integrator of every model draws its noise here, so the same seed gives
// the same noise whatever the model, backend or slicing of the batch.
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"
#include "kernels/philox.h"

namespace eqprop {

EQ_HD float langevin_normal(std::uint64_t seed, std::uint64_t element, std::uint32_t step) {
  const Philox4 words = random_words(seed, RngStream::dynamics_noise, element >> 1, step);
  return normal_pair_member(words.v[0], words.v[1], (element & 1u) != 0);
}

}  // namespace eqprop
