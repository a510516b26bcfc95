// The energy of every system of a batch, one layer at a time (DESIGN.md §1):
//   E = sum_l [ 1/2 ||s_l||^2 - rho(s_{l-1})^T W_l rho(s_l) - b_l^T rho(s_l) ],
// with drive_l = rho(s_{l-1}) W_l from a GEMM, so layer l contributes
//   sum_u [ 1/2 s_u^2 - s_u * drive_u - b_u * s_u ]   (rho(s) = s for s in [0, 1]).
// Each coupling term is counted once, in the layer above it. The Ising network
// (models/ising_network.h) has no self term (s^2 = 1 is a constant for spins):
// self_coefficient = 0 gives its layer term -sum_u s_u (drive_u + b_u).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/row_reduction.h"

namespace eqprop {

// One unit's term of a layer's energy: s (c s - drive - bias), c the self coefficient.
EQ_HD float row_energy_term(float s, float drive, float bias, float self_coefficient) {
  return s * (self_coefficient * s - drive - bias);
}

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

  // Unit u's term in row `row`.
  EQ_HD float term(std::int64_t row, std::int32_t u) const {
    const std::int64_t i = row * units + u;
    return row_energy_term(states[i], drive[i], bias[u], self_coefficient);
  }
  // energy[row] (+)= the row's sum.
  EQ_HD void store(std::int64_t row, float sum) const { energy[row] = accumulate ? energy[row] + sum : sum; }

  EQ_HD void operator()(std::int64_t row) const {
    float sum = 0.0f;
    for (std::int32_t u = 0; u < units; ++u) sum += term(row, u);
    store(row, sum);
  }

  // RowEnergyBlock: the same fixed-order tree on every backend and block size
  // (-fmad=false); equal to the serial sum above up to summation order.
  static constexpr Determinism block_determinism = Determinism::bit_exact;

  // Block `row` of RowEnergyBlock.
  template <class Context>
  EQ_HD void reduce_block_row(Context& ctx, std::int64_t row, const RowReductionPhases& phases) const {
    phases.run(
        ctx, 0.0f, [&](std::int32_t u) { return term(row, u); }, RowSum{}, NoTermRun{},
        [&](float sum) { store(row, sum); });
  }
};

// RowEnergyOp as a block body: block `row` sums the row's terms over the fixed
// tree of row_reduction.h, then adds the layer's term to (or stores it in)
// energy[row] as the op does. Deterministic and the same bits for every block
// size, thread order and backend; it differs from RowEnergyOp's serial sum by
// rounding only (a different summation order), which is why the CPU backend keeps
// the op (Backend::reduce_rows).
using RowEnergyBlock = RowReductionBlock<RowEnergyOp>;

}  // namespace eqprop
