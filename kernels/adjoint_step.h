// One Jacobi step of the adjoint system of the implicit gradient (DESIGN.md §1,
// "Implicit differentiation"): mu = M (g + K mu), where K is the coupling matrix
// (the drive from below plus the feedback from above, both GEMMs on mu) and M
// keeps the units whose free field lies strictly inside (0, 1), the active set of
// the hard sigmoid. At the projected fixed point s = clip(h, 0, 1), so the
// active set is read from the state itself: 0 < s < 1.
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

  EQ_HD void operator()(std::int64_t i) const {
    const float active = static_cast<float>(state[i] > 0.0f) * static_cast<float>(state[i] < 1.0f);
    float sum = source ? source[i] : 0.0f;
    if (drive) sum += drive[i];
    if (feedback) sum += feedback[i];
    out[i] = active * sum;
  }
};

}  // namespace eqprop
