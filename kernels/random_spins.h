// Uniformly random spin assignments, +1 or -1 per element, keyed on
// (seed, first_index + i, round): the start of simulated annealing
// (kernels/metropolis_sweep.h), the same on every backend and launch shape.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/philox.h"

namespace eqprop {

// Kept far from RngStream's values (kernels/philox.h) so the lists cannot collide.
constexpr RngStream kRandomSpinsStream = RngStream::random_spins;

// Bit-exact on every backend (integer arithmetic only).
struct RandomSpinsOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  float* spins;               // (count) set to +1 or -1
  std::uint64_t seed;
  std::uint64_t first_index;  // e.g. first_replica * units
  std::uint32_t round;        // a fresh start for every restart of the solver

  EQ_HD void operator()(std::int64_t i) const {
    const Philox4 words = random_words(seed, kRandomSpinsStream, first_index + static_cast<std::uint64_t>(i), round);
    spins[i] = (words.v[0] >> 31) ? 1.0f : -1.0f;
  }
};

}  // namespace eqprop
