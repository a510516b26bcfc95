// The activation of the Hopfield energy (DESIGN.md §1): rho(s) = clip(s, 0, 1).
#pragma once

#include "kernels/hostdevice.h"

namespace eqprop {

// clip to [lo, hi] written with comparisons so that NaN propagates (fminf/fmaxf
// would silently turn a NaN state into a bound and hide a divergence).
EQ_HD float clip(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

EQ_HD float hard_sigmoid(float s) { return clip(s, 0.0f, 1.0f); }

// rho'(s) = 1 on the *closed* interval [0, 1]: a unit pinned at a bound by the
// projected dynamics keeps its full field instead of chattering across the kink.
// (Written as a product of comparisons so the CPU loop stays branch-free and vectorizes.)
EQ_HD float hard_sigmoid_derivative(float s) {
  return static_cast<float>(s >= 0.0f) * static_cast<float>(s <= 1.0f);
}

}  // namespace eqprop
