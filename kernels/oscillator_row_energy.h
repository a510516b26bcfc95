// The energy V of every oscillator network of a batch, one layer at a time
// (kernels/oscillator_step.h; DESIGN.md §1). With the fields from the layer below,
// cos_drive = cos(phi_{l-1}) J_l and sin_drive = sin(phi_{l-1}) J_l (GEMMs), layer l
// contributes, by cos(a - b) = cos a cos b + sin a sin b,
//   sum_u [ -cos phi_u cos_drive_u - sin phi_u sin_drive_u - h_u cos phi_u - (S/2) cos 2 phi_u ],
// so each coupling is counted once, in the layer above it; cos 2 phi = c^2 - s^2.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one system (row) per index, a serial loop over its oscillators,
// so the sum is bit-exact on every backend. energy[row] += (or =) the layer's term.
struct OscillatorRowEnergyOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* cosines;    // (batch, units) cos phi
  const float* sines;      // (batch, units) sin phi
  const float* cos_drive;  // (batch, units)
  const float* sin_drive;  // (batch, units)
  const float* bias;       // (units) h
  float* energy;           // (batch)
  float shil;              // S
  std::int32_t units;
  bool accumulate;

  EQ_HD void operator()(std::int64_t row) const {
    const std::int64_t offset = row * units;
    float sum = 0.0f;
    for (std::int32_t u = 0; u < units; ++u) {
      const float c = cosines[offset + u], s = sines[offset + u];
      sum -= c * cos_drive[offset + u] + s * sin_drive[offset + u] + bias[u] * c + 0.5f * shil * (c * c - s * s);
    }
    energy[row] = accumulate ? energy[row] + sum : sum;
  }
};

}  // namespace eqprop
