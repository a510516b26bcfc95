// One relaxation step of one layer of the dense Hopfield network, fused: the field
// from the GEMMs, the bias, the nudge, the integrator and the projection onto
// [0, 1] in a single pass over the layer's states (DESIGN.md §1, §2).
#pragma once

#include <cstdint>

#include "kernels/hard_sigmoid.h"
#include "kernels/hostdevice.h"

namespace eqprop {

enum class Integrator : int {
  gradient_flow = 0,  // s <- clip(s + dt * (-dF/ds)), explicit Euler
  fixed_point = 1,    // s <- rho(h), h the field of DESIGN.md §1 (Laborieux et al. 2021)
};

// The new state of one unit.
//   field:  W_l^T rho(s_{l-1}) + W_{l+1} rho(s_{l+1}) + b_l (+ a read-out nudge that
//           acts through rho(s), already scaled by beta)
//   beta, target: the MSE nudge beta * 1/2 (s - y)^2 of an output unit; beta = 0
//           for every other unit (and in the free phase).
// Gradient flow: s + dt * (-dF/ds), -dF/ds = rho'(s) * field - s - beta * (s - y)
// (DESIGN.md §1), projected onto [0, 1].
// Fixed point: the minimizer of F over this unit with its neighbours held, i.e.
// s = rho((field + beta * y) / (1 + beta)). Solving the unit's own quadratic term
// exactly (rather than s <- rho(field - beta * (s - y)), which uses the old s)
// keeps the synchronous map from oscillating on the output layer for beta >= ~0.5;
// both have the same fixed points. Requires 1 + beta > 0 (the config checks it).
EQ_HD float hopfield_unit_step(Integrator integrator, float dt, float s, float field, float beta,
                               float target) {
  if (integrator == Integrator::fixed_point) return hard_sigmoid((field + beta * target) / (1.0f + beta));
  const float force = hard_sigmoid_derivative(s) * field - s - beta * (s - target);
  return clip(s + dt * force, 0.0f, 1.0f);
}

// Updates states (batch, units) of one layer in place. Thread mapping: one index
// per unit of one sample; no reductions, so the result is bit-exact on any backend.
struct LayerStepOp {
  float* states;          // (batch, units), in [0, 1]; updated in place
  const float* drive;     // (batch, units) field from the layer below (W_l^T rho(s_{l-1}))
  const float* feedback;  // (batch, units) field from above (W_{l+1} rho(s_{l+1})), or null
  const float* bias;      // (units)
  const float* target;    // (batch, units) MSE target, or null when the layer is not nudged
  float beta;             // nudging strength for the MSE pull (sign included)
  float dt;               // gradient-flow step
  Integrator integrator;
  std::int32_t units;

  // Thread mapping on the GPU: one flat index per unit of one sample.
  EQ_HD void operator()(std::int64_t i) const { update(i, static_cast<std::int32_t>(i % units)); }

  // The CPU loops a whole sample at a time, with the per-layer choices hoisted out
  // of the loop so it vectorizes; no 64-bit division per element (that alone cost
  // more than the step). The per-unit math is the same hopfield_unit_step.
  std::int64_t row_count(std::int64_t count) const { return count / units; }
  void row(std::int64_t r) const {
    const bool fixed_point = integrator == Integrator::fixed_point;
    if (fixed_point) {
      if (feedback) {
        target ? row_of<true, true, true>(r) : row_of<true, true, false>(r);
      } else {
        target ? row_of<true, false, true>(r) : row_of<true, false, false>(r);
      }
    } else {
      if (feedback) {
        target ? row_of<false, true, true>(r) : row_of<false, true, false>(r);
      } else {
        target ? row_of<false, false, true>(r) : row_of<false, false, false>(r);
      }
    }
  }
  template <bool kFixedPoint, bool kFeedback, bool kTarget>
  void row_of(std::int64_t r) const {
    const std::int64_t offset = r * units;
    float* __restrict s = states + offset;
    const float* __restrict d = drive + offset;
    const float* __restrict f = kFeedback ? feedback + offset : nullptr;
    const float* __restrict y = kTarget ? target + offset : nullptr;
    const float* __restrict b = bias;
    const Integrator kind = kFixedPoint ? Integrator::fixed_point : Integrator::gradient_flow;
#pragma omp simd
    for (std::int32_t unit = 0; unit < units; ++unit) {
      float field = d[unit] + b[unit];
      if (kFeedback) field += f[unit];
      s[unit] = hopfield_unit_step(kind, dt, s[unit], field, kTarget ? beta : 0.0f, kTarget ? y[unit] : 0.0f);
    }
  }

  EQ_HD void update(std::int64_t i, std::int32_t unit) const {
    const float s = states[i];
    float field = drive[i] + bias[unit];
    if (feedback) field += feedback[i];
    states[i] = target ? hopfield_unit_step(integrator, dt, s, field, beta, target[i])
                       : hopfield_unit_step(integrator, dt, s, field, 0.0f, 0.0f);
  }
};

}  // namespace eqprop
