// The adjoint system of the oscillator network's implicit gradient (DESIGN.md §1,
// "Implicit differentiation"; models/oscillator_network.h): H mu = g at the free
// fixed point, H = d2V/dphi2 and g = dC/dphi of the batch mean. With the coupling
// term -J_ab cos(phi_a - phi_b) the Hessian is
//   (H mu)_a = d_a mu_a - sum_b J_ab cos(phi_a - phi_b) mu_b,
//   d_a = oscillator_energy_curvature (kernels/oscillator_step.h),
// and cos(phi_a - phi_b) = c_a c_b + s_a s_b turns the sum into the GEMM fields
// c_a (J (c mu))_a + s_a (J (s mu))_a: two GEMMs on c mu and s mu per direction, as
// the relaxation's fields are two GEMMs on c and s.
//
// The solve is the free phase's own gradient-flow step linearised at its end:
//   mu <- mu - dt (H mu - g),
// whose iteration matrix I - dt H is the Jacobian of the relaxation step there, so it
// converges exactly where the free phase converges to that minimum, at its rate.
// (H is not of the Hopfield form I - K, so the Jacobi step of kernels/adjoint_step.h
// does not apply.)
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/oscillator_step.h"
#include "kernels/plane_layout.h"

namespace eqprop {

// d_a of every oscillator of one layer at the free state, from the relaxation's
// fields (J c) and (J s) of both neighbours. Thread mapping: one flat index per
// oscillator of one sample.
struct OscillatorCurvatureOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* cosines;       // (batch, units) cos phi of the free state
  const float* sines;         // (batch, units) sin phi
  const float* cos_drive;     // (batch, units) (J cos phi) from the layer below
  const float* sin_drive;     // (batch, units) (J sin phi) from the layer below
  const float* cos_feedback;  // (batch, units) from the layer above, or null
  const float* sin_feedback;  // (batch, units) from the layer above, or null
  const float* bias;          // (units) h
  float shil;                 // S
  float* curvature;           // (batch, units) d
  std::int32_t units;

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t unit = divide_index(i, units).remainder;
    float cos_field = cos_drive[i], sin_field = sin_drive[i];
    if (cos_feedback) {
      cos_field += cos_feedback[i];
      sin_field += sin_feedback[i];
    }
    curvature[i] = oscillator_energy_curvature(cosines[i], sines[i], cos_field, sin_field, bias[unit], shil);
  }
};

// One step mu <- mu + dt (g + c (J (c mu)) + s (J (s mu)) - d mu) of one layer, the
// fields of mu from the previous step's c mu and s mu (synchronous), then c mu and s
// mu rewritten for the next step's GEMMs and for the gradient. g is the cost's,
// source_scale dC/dphi, on the output layer only.
struct OscillatorAdjointStepOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* cosines;       // (batch, units) cos phi of the free state
  const float* sines;         // (batch, units) sin phi
  const float* curvature;     // (batch, units) d
  const float* cos_drive;     // (batch, units) (J (c mu)) from the layer below, or null
  const float* sin_drive;     // (batch, units) (J (s mu)) from the layer below, or null
  const float* cos_feedback;  // (batch, units) from the layer above, or null
  const float* sin_feedback;  // (batch, units) from the layer above, or null
  const float* target;        // (batch, units) one-hot y of the output layer, or null
  float source_scale;         // g = source_scale dC/dphi (1 / batch: the batch mean)
  float dt;
  float* mu;                  // (batch, units), updated in place
  float* cos_mu;              // (batch, units) c mu, rewritten
  float* sin_mu;              // (batch, units) s mu, rewritten

  EQ_HD void operator()(std::int64_t i) const {
    const float c = cosines[i], s = sines[i];
    float cos_field = 0.0f, sin_field = 0.0f;
    if (cos_drive) {
      cos_field += cos_drive[i];
      sin_field += sin_drive[i];
    }
    if (cos_feedback) {
      cos_field += cos_feedback[i];
      sin_field += sin_feedback[i];
    }
    const float source = target ? source_scale * oscillator_cost_gradient(c, s, target[i]) : 0.0f;
    const float next = mu[i] + dt * ((source + (c * cos_field + s * sin_field)) - curvature[i] * mu[i]);
    mu[i] = next;
    cos_mu[i] = c * next;
    sin_mu[i] = s * next;
  }
};

}  // namespace eqprop
