// The energy of every system of a batch, one layer at a time (DESIGN.md §1):
//   E = sum_l [ 1/2 ||s_l||^2 - rho(s_{l-1})^T W_l rho(s_l) - b_l^T rho(s_l) ],
// with drive_l = rho(s_{l-1}) W_l from a GEMM, so layer l contributes
//   sum_u [ 1/2 s_u^2 - s_u * drive_u - b_u * s_u ]   (rho(s) = s for s in [0, 1]).
// Each coupling term is counted once, in the layer above it. The Ising network
// (models/ising_network.h) has no self term (s^2 = 1 is a constant for spins):
// self_coefficient = 0 gives its layer term -sum_u s_u (drive_u + b_u).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one system (row) per index, a serial loop over its units, so the
// sum is bit-exact on every backend. energy[row] += (or =) the layer's term.
struct RowEnergyOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* states;  // (batch, units)
  const float* drive;   // (batch, units) rho(s_{l-1}) W_l
  const float* bias;    // (units)
  float* energy;        // (batch)
  std::int32_t units;
  bool accumulate;
  float self_coefficient = 0.5f;  // the 1/2 of 1/2 ||s||^2; 0 for spins

  EQ_HD void operator()(std::int64_t row) const {
    const float* s = states + row * units;
    const float* d = drive + row * units;
    float sum = 0.0f;
    for (std::int32_t u = 0; u < units; ++u) sum += s[u] * (self_coefficient * s[u] - d[u] - bias[u]);
    energy[row] = accumulate ? energy[row] + sum : sum;
  }
};

}  // namespace eqprop
