// The per-element math of the predictive-coding network (DESIGN.md, "Predictive
// coding"): the energy
//   E(s) = sum_l 1/2 ||s_l - f(a_l)||^2,   a_l = s_{l-1} W_l + b_l,   s_0 = x,
// with f the logistic sigmoid or the hard sigmoid clip(a, 0, 1)
// (predictive_coding.activation). Each op reads the pre-activation a_l as a GEMM's
// drive s_{l-1} W_l plus the bias, so the couplings stay on the backend's BLAS and
// everything between two GEMMs is one op. The ops go through libm's expf for the
// sigmoid, hence ulp_bounded (the hard sigmoid's arithmetic is bit-exact).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hard_sigmoid.h"
#include "kernels/hostdevice.h"
#include "kernels/layer_step.h"  // Integrator

namespace eqprop {

enum class PredictionActivation : int {
  // 1 / (1 + exp(-a)): no unit ever loses its slope, so none dies below 0 (the
  // hard sigmoid's flat sides stop the gradient of every unit they catch).
  sigmoid = 0,
  hard_sigmoid = 1,  // clip(a, 0, 1), the Hopfield networks' rho
};

// The prediction f(a).
EQ_HD float prediction(float a, PredictionActivation f) {
  return f == PredictionActivation::sigmoid ? 1.0f / (1.0f + expf(-a)) : hard_sigmoid(a);
}

// f'(a). For the hard sigmoid, 1 strictly inside (0, 1), its derivative almost
// everywhere: unlike the Hopfield states (kernels/hard_sigmoid.h, closed interval
// for the projected dynamics) nothing here is pinned at a bound, and backprop
// through the forward pass sees a zero slope outside, so EP's small-beta limit must too.
EQ_HD float prediction_slope(float a, PredictionActivation f) {
  if (f == PredictionActivation::sigmoid) {
    const float p = 1.0f / (1.0f + expf(-a));
    return p * (1.0f - p);
  }
  return static_cast<float>(a > 0.0f) * static_cast<float>(a < 1.0f);
}

// One unit's new state in a nudged phase (F = E + beta/2 ||s_L - y||^2 on the top
// layer), from its prediction mu = f(a_l), the feedback from above
// feedback = (e_{l+1} f'(a_{l+1})) W_{l+1}^T (zero at the top) and, at the top, the
// target y. dF/ds_l = (s_l - mu) - feedback + beta (s_l - y) [top].
// - fixed_point: a hidden unit takes the gradient step of size 1,
//   s = mu + feedback (the classical predictive-coding update, Whittington &
//   Bogacz 2017, eq. 9 with unit step); the top layer, quadratic in s_L, takes its
//   exact minimiser s = (mu + beta y) / (1 + beta).
// - gradient_flow: s -= dt dF/ds (any layer), for a step smaller than 1 where the
//   coupling above is strong.
EQ_HD float predictive_coding_update(float s, float mu, float feedback, float beta, float y, bool top,
                                     Integrator integrator, float dt) {
  if (integrator == Integrator::fixed_point) return top ? (mu + beta * y) / (1.0f + beta) : mu + feedback;
  const float nudge = top ? beta * (s - y) : 0.0f;
  return s - dt * ((s - mu) - feedback + nudge);
}

// The forward pass (the free equilibrium, where every term of E is zero):
// states = f(drive + bias). Thread mapping: one unit of one system per index.
struct PredictionOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  const float* drive;  // (batch, units) s_{l-1} W_l
  const float* bias;   // (units)
  float* states;       // (batch, units) s_l
  std::int32_t units;
  PredictionActivation activation;

  EQ_HD void operator()(std::int64_t i) const { states[i] = prediction(drive[i] + bias[i % units], activation); }
};

// The slope-weighted prediction error of layer l, the quantity that both the
// feedback to layer l-1 and dE/dtheta are made of:
//   error = (s_l - f(a_l)) f'(a_l)   (upstream null), or
//   error = upstream f'(a_l)         (backprop: upstream = dL/ds_l).
// dE/dW_l = -s_{l-1}^T error, dE/db_l = -sum_batch error.
struct PredictionErrorOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  const float* states;    // (batch, units) s_l, or null with upstream
  const float* upstream;  // (batch, units) or null
  const float* drive;     // (batch, units) s_{l-1} W_l
  const float* bias;      // (units)
  float* error;           // (batch, units); may alias upstream
  std::int32_t units;
  PredictionActivation activation;

  EQ_HD void operator()(std::int64_t i) const {
    const float a = drive[i] + bias[i % units];
    // The slope before the optional read: the other order spilled 16 bytes per
    // thread on sm_80 (perf/ptxas_report.txt).
    const float slope = prediction_slope(a, activation);
    const float residual = upstream ? upstream[i] : states[i] - prediction(a, activation);
    error[i] = residual * slope;
  }
};

// One nudged-phase update of a layer (predictive_coding_update) on rows of it.
struct PredictiveCodingStepOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  float* states;          // (rows, units) s_l
  const float* drive;     // (rows, units) s_{l-1} W_l
  const float* bias;      // (units)
  const float* feedback;  // (rows, units) or null (the top layer)
  const float* target;    // (rows, units) one-hot, the top layer of a nudged phase; else null
  float beta;
  float dt;
  Integrator integrator;
  std::int32_t units;
  PredictionActivation activation;

  EQ_HD void operator()(std::int64_t i) const {
    const float mu = prediction(drive[i] + bias[i % units], activation);
    // The optional reads named first: written inline in the call, ptxas (sm_90)
    // spilled 16 bytes per thread (perf/ptxas_report.txt).
    const bool top = feedback == nullptr;
    const float from_above = top ? 0.0f : feedback[i];
    const float y = target ? target[i] : 0.0f;
    states[i] = predictive_coding_update(states[i], mu, from_above, target ? beta : 0.0f, y, top, integrator, dt);
  }
};

// One layer's term of E for every system: energy[row] (+)= sum_u 1/2 (s - f(a))^2.
// Thread mapping: one system per index, a serial loop over its units (bit-exact).
struct PredictionEnergyOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  const float* states;  // (batch, units)
  const float* drive;   // (batch, units) s_{l-1} W_l
  const float* bias;    // (units)
  float* energy;        // (batch)
  std::int32_t units;
  bool accumulate;
  PredictionActivation activation;

  EQ_HD void operator()(std::int64_t row) const {
    float sum = 0.0f;
    for (std::int32_t u = 0; u < units; ++u) {
      const std::int64_t i = row * units + u;
      const float e = states[i] - prediction(drive[i] + bias[u], activation);
      sum += 0.5f * e * e;
    }
    energy[row] = accumulate ? energy[row] + sum : sum;
  }
};

}  // namespace eqprop
