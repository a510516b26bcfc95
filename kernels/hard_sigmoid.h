// The activation of the Hopfield energy (DESIGN.md §1): the clipped ReLU family
// rho(s) = clip(s, 0, c). c = 1 is the hard sigmoid of Scellier & Bengio (2017) and
// Laborieux et al. (2021); c = 6 is the ReLU6 of the residual Hopfield networks
// (Hopfield-ResNet13, Vinayak & Srinivasan 2025, arXiv 2509.26003).
#pragma once

#include "kernels/hostdevice.h"

namespace eqprop {

// The bound c of the hard sigmoid, the default activation.
inline constexpr float kHardSigmoidMax = 1.0f;

// clip to [lo, hi] written with comparisons so that NaN propagates (fminf/fmaxf
// would silently turn a NaN state into a bound and hide a divergence).
EQ_HD float clip(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// rho(s) = clip(s, 0, c), c > 0 (model.activation_max).
EQ_HD float clipped_relu(float s, float c) { return clip(s, 0.0f, c); }

// rho'(s) = 1 on the *closed* interval [0, c]: a unit pinned at a bound by the
// projected dynamics keeps its full field instead of chattering across the kink.
// (Written as a product of comparisons so the CPU loop stays branch-free and vectorizes.)
EQ_HD float clipped_relu_derivative(float s, float c) {
  return static_cast<float>(s >= 0.0f) * static_cast<float>(s <= c);
}

EQ_HD float hard_sigmoid(float s) { return clipped_relu(s, kHardSigmoidMax); }
EQ_HD float hard_sigmoid_derivative(float s) { return clipped_relu_derivative(s, kHardSigmoidMax); }

}  // namespace eqprop
