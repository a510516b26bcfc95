// One Jacobi step of the adjoint system of the implicit gradient (DESIGN.md §1,
// "Implicit differentiation"): mu = M (g + K mu), where K is the coupling matrix
// (the drive from below plus the feedback from above, both GEMMs on mu) and M
// keeps the units whose free field lies strictly inside (0, c), the active set of
// rho = clip(s, 0, c). At the projected fixed point s = clip(h, 0, c), so the
// active set is read from the state itself: 0 < s < c.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

struct AdjointStepOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* state;     // (count): the free fixed point s
  const float* source;    // (count) or null: g = dL/ds
  const float* drive;     // (count) or null: (K mu) from the layer below
  const float* feedback;  // (count) or null: (K mu) from the layer above
  float* out;             // (count): mu; may alias none of the inputs but source
  float activation_max;   // c

  EQ_HD void operator()(std::int64_t i) const {
    const float active = static_cast<float>(state[i] > 0.0f) * static_cast<float>(state[i] < activation_max);
    float sum = source ? source[i] : 0.0f;
    if (drive) sum += drive[i];
    if (feedback) sum += feedback[i];
    out[i] = active * sum;
  }
};

}  // namespace eqprop
