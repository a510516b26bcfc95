// The oscillator Ising machine (OIM; Wang & Roychowdhury, "OIM: Oscillator-based
// Ising machines for solving combinatorial optimisation problems", UCNC 2019; the
// phase energy of DESIGN.md §1): each spin is an oscillator phase phi_i with
//   V = -1/2 sum_ij J_ij cos(phi_i - phi_j) - sum_i (K/2) cos(2 phi_i),
//   dphi_i/dt = -dV/dphi_i = -[ sin(phi_i) (J cos phi)_i - cos(phi_i) (J sin phi)_i + K sin(2 phi_i) ],
// where the sub-harmonic injection K(t) ramps up over the run and locks every phase
// to 0 or pi: the answer is s = sign(cos phi). The pairwise sin(phi_i - phi_j)
// splits into two GEMMs on cos phi and sin phi (for R replicas, (R, n) x (n, n)),
// done by the caller; OimStepOp fuses the rest of a step, including the cosines
// and sines the next step's GEMMs read.
//
// Determinism: no reductions; the phases go through sinf/cosf, so the backends
// agree to a few ulp per step (bit-exact on one backend).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/oscillator_step.h"
#include "kernels/philox.h"

namespace eqprop {

// Random initial phases, uniform in [0, 2 pi), keyed on (seed, replica * units +
// unit, round); also writes cos, sin and the spins they stand for.
struct OimInitOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  float* phases;   // (replicas, units)
  float* cosines;  // (replicas, units)
  float* sines;    // (replicas, units)
  float* signs;    // (replicas, units) sign(cos phi)
  std::uint64_t seed;
  std::uint64_t first_index;
  std::uint32_t round;

  EQ_HD void operator()(std::int64_t i) const {
    const Philox4 words =
        random_words(seed, RngStream::oscillator_phases, first_index + static_cast<std::uint64_t>(i), round);
    const float phase = kTwoPi * uniform_from_word(words.v[0]);
    phases[i] = phase;
    cosines[i] = cosf(phase);
    sines[i] = sinf(phase);
    signs[i] = cosines[i] >= 0.0f ? 1.0f : -1.0f;
  }
};

// One explicit Euler step of every phase of every replica, after the two GEMMs.
// Thread mapping: one flat index per oscillator of one replica.
struct OimStepOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  float* phases;            // (replicas, units), updated in place
  float* cosines;           // (replicas, units) cos phi: read, then rewritten for the next step
  float* sines;             // (replicas, units) sin phi: likewise
  float* signs;             // (replicas, units) sign(cos phi) after the step
  const float* cos_field;   // (replicas, units) (J cos phi)
  const float* sin_field;   // (replicas, units) (J sin phi)
  float injection;          // K(t), the sub-harmonic injection strength
  float dt;

  EQ_HD void operator()(std::int64_t i) const {
    const float c = cosines[i], s = sines[i];
    const float force = -oscillator_energy_gradient(c, s, cos_field[i], sin_field[i], 0.0f, injection);
    const float phase = phases[i] + dt * force;
    phases[i] = phase;
    cosines[i] = cosf(phase);
    sines[i] = sinf(phase);
    signs[i] = cosines[i] >= 0.0f ? 1.0f : -1.0f;
  }
};

}  // namespace eqprop
