// One relaxation step of one layer of the dense Hopfield network, fused: the field
// from the GEMMs, the bias, the nudge, Langevin noise, the integrator and the
// projection onto [0, c] in a single pass over the layer's states (DESIGN.md §1,
// §2). The GEMMs before it read the states of the previous step, so the update of
// every layer is synchronous.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/adc_read.h"
#include "kernels/hard_sigmoid.h"
#include "kernels/hostdevice.h"
#include "kernels/langevin_noise.h"
#include "kernels/noise_key.h"
#include "kernels/philox.h"

namespace eqprop {

enum class Integrator : int {
  gradient_flow = 0,  // s <- clip(s + dt * (-dF/ds)), explicit (projected) Euler
  fixed_point = 1,    // s <- rho(h), h the field of DESIGN.md §1 (Laborieux et al. 2021)
  csb = 2,            // continuous simulated bifurcation: momentum y, symplectic Euler, walls
};

// -dF/ds for one unit, F = E + beta * 1/2 (s - y)^2 on a nudged MSE output unit:
//   field:  W_l^T rho(s_{l-1}) + W_{l+1} rho(s_{l+1}) + b_l (+ a read-out nudge that
//           acts through rho(s), already scaled by beta)
//   beta, target: the MSE nudge; beta = 0 for every other unit (and when free).
//   c: the activation's bound, rho = clip(s, 0, c) (kernels/hard_sigmoid.h).
// DESIGN.md §1: -dF/ds = rho'(s) * field - s - beta * (s - y).
EQ_HD float hopfield_force(float s, float field, float beta, float target, float c) {
  return clipped_relu_derivative(s, c) * field - s - beta * (s - target);
}

// The new state of one unit under gradient flow or the fixed-point map.
// Gradient flow: s + dt * force + noise, projected onto [0, c]; `noise` is the
// Langevin term sigma * sqrt(dt) * xi.
// Fixed point: the minimizer of F over this unit with its neighbours held,
// s = rho((field + beta * y) / (1 + beta)), with `noise` added to the field. Solving
// the unit's own quadratic term exactly (rather than s <- rho(field - beta (s - y)),
// which uses the old s) keeps the synchronous map from oscillating on the output
// layer for beta >= ~0.5; both have the same fixed points. Requires 1 + beta > 0
// (the config checks it).
EQ_HD float hopfield_unit_step(Integrator integrator, float dt, float s, float field, float beta,
                               float target, float c, float noise = 0.0f) {
  if (integrator == Integrator::fixed_point)
    return clipped_relu((field + noise + beta * target) / (1.0f + beta), c);
  return clipped_relu(s + dt * hopfield_force(s, field, beta, target, c) + noise, c);
}

// One cSB step of one unit (the seed paper, "Hybridizing Equilibrium Propagation
// with Ising machines"; DESIGN.md §1), symplectic Euler:
//   y <- y + dt * (force - gamma * y - pump * s) + noise
//   s <- s + dt * a0 * y
// and an inelastic wall at each bound: where s leaves [0, c] it is clipped and its
// momentum zeroed. `pump` = a0 - a(t) is the detuning of simulated bifurcation
// (Goto et al. 2019): a confining term pump/2 s^2 centred on s = 0, the reset state
// the free phase starts from (as SB's x^2 term is centred on its start x = 0). It
// ramps to exactly 0 on the free phase's last step and is 0 in nudged phases, so
// the states EP contrasts are F's fixed points (DESIGN.md §1, "cSB").
EQ_HD void csb_unit_step(float dt, float gamma, float a0, float pump, float force, float noise, float c, float& s,
                         float& y) {
  y += dt * (force - gamma * y - pump * s) + noise;
  s += dt * a0 * y;
  y *= clipped_relu_derivative(s, c);  // 1 inside [0, c], 0 where s hit a wall
  s = clipped_relu(s, c);
}

// The raw Langevin sigma (LayerStepOp::noise_sigma) whose stationary distribution
// is exp(-E/T) at temperature T, so that integrators compare at one temperature
// rather than at one sigma (DESIGN.md §1, "Langevin noise"):
// - gradient flow, ds = -dE/ds dt + sigma dW (the op's sigma sqrt(dt) xi per step):
//   the Einstein relation, sigma = sqrt(2 T);
// - cSB, noise on the momentum, dx = a0 y dt, dy = (-dE/dx - gamma y) dt + sigma dW:
//   with H = E + a0/2 y^2 the friction is (gamma / a0) dH/dy, so fluctuation-
//   dissipation gives sigma = sqrt(2 T gamma / a0) (and y's variance is T / a0);
//   without damping there is no thermalization, and sigma is 0;
// - fixed point, s <- rho(field + sigma xi): a unit's energy given its neighbours is
//   s^2/2 - field s, a Gaussian of mean `field` and variance T, so sigma = sqrt(T)
//   makes each step a heat-bath draw of the unit (clipped at the bounds rather than
//   truncated, so exact away from them).
// The discretization leaves a bias of O(dt * curvature) for gradient flow and
// O((dt * curvature)^2) for cSB's symplectic Euler (tests/test_temperature.cpp).
inline float langevin_sigma_at_temperature(Integrator integrator, float temperature, float gamma, float a0) {
  switch (integrator) {
    case Integrator::gradient_flow: return std::sqrt(2.0f * temperature);
    case Integrator::csb: return std::sqrt(2.0f * temperature * gamma / a0);
    case Integrator::fixed_point: return std::sqrt(temperature);
  }
  return 0.0f;
}

// Updates states (batch, units) of one layer in place. Thread mapping: one index
// per unit of one sample; no reductions, so the result is bit-exact on any backend.
// Fields that are zero (or null) switch their feature off.
struct LayerStepOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  float* states;          // (batch, units), in [0, activation_max]; updated in place
  const float* drive;     // (batch, units) field from the layer below (W_l^T rho(s_{l-1}))
  const float* feedback;  // (batch, units) field from above (W_{l+1} rho(s_{l+1})), or null
  const float* bias;      // (units)
  const float* target;    // (batch, units) MSE target, or null when the layer is not nudged
  float beta;             // nudging strength for the MSE pull (sign included)
  float dt;               // gradient-flow and cSB step
  Integrator integrator;
  std::int32_t units;
  float activation_max = kHardSigmoidMax;  // c of rho = clip(s, 0, c)
  // cSB only.
  float* momenta = nullptr;  // (batch, units) y, updated in place
  float gamma = 0.0f;        // damping
  float a0 = 1.0f;           // position-update gain
  float pump = 0.0f;         // a0 - a(t) at this step
  // Langevin noise: sigma * xi per unit and step (times sqrt(dt) for gradient flow
  // and cSB), xi keyed on (seed, dynamics_noise, index, step) with
  // index = noise_element_at(noise_index, noise_first_sample, noise_row_stride, row,
  // unit): logical positions, so the draws do not depend on the backend or on how
  // the batch is sliced (kernels/noise_key.h).
  float noise_sigma = 0.0f;
  std::uint64_t noise_seed = 0;
  std::uint64_t noise_index = 0;
  std::int64_t noise_row_stride = 0;
  std::uint32_t noise_step = 0;
  const std::uint64_t* noise_first_sample = nullptr;  // device: samples before a recorded step's batch
  // The ADC reading of the new state, in the same pass (the final step of a phase
  // whose states are read out): readout[i] = adc.read(new state, readout_first + i),
  // i the index within this op's arrays. Null: none.
  float* readout = nullptr;
  AdcSpec adc{};
  std::int64_t readout_first = 0;

  // Logical elements 2k and 2k + 1 share one Philox draw: the two normals of one
  // Box-Muller pair (half the draws, logarithms and square roots per step).
  EQ_HD std::uint64_t noise_element(std::int64_t row, std::int32_t unit) const {
    return noise_element_at(noise_index, noise_first_sample, noise_row_stride, row, unit);
  }
  EQ_HD float noise_scale() const {
    return integrator == Integrator::fixed_point ? noise_sigma : noise_sigma * sqrtf(dt);
  }
  EQ_HD float noise_of(std::uint64_t element) const {
    return noise_scale() * langevin_normal(noise_seed, element, noise_step);
  }

  // Thread mapping on the GPU: one flat index per unit of one sample.
  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t row = i / units;
    const std::int32_t unit = static_cast<std::int32_t>(i % units);
    update(i, unit, noise_sigma == 0.0f ? 0.0f : noise_of(noise_element(row, unit)));
    if (readout) readout[i] = adc.read(states[i], readout_first + i);
  }

  EQ_HD void update(std::int64_t i, std::int32_t unit, float noise) const {
    float field = drive[i] + bias[unit];
    if (feedback) field += feedback[i];
    const float nudge = target ? beta : 0.0f, y = target ? target[i] : 0.0f;
    if (integrator == Integrator::csb) {
      float s = states[i], p = momenta[i];
      csb_unit_step(dt, gamma, a0, pump, hopfield_force(s, field, nudge, y, activation_max), noise, activation_max, s,
                    p);
      states[i] = s;
      momenta[i] = p;
    } else {
      states[i] = hopfield_unit_step(integrator, dt, states[i], field, nudge, y, activation_max, noise);
    }
  }

  // The CPU loops a whole sample at a time, with the per-layer choices hoisted out
  // of the loop so it vectorizes; no 64-bit division per element (that alone cost
  // more than the step). The per-unit math is the same functions as above. Noise
  // takes the general per-element path.
  std::int64_t row_count(std::int64_t count) const { return count / units; }
  void row(std::int64_t r) const {
    step_row(r);
    if (readout) adc.read_run(states + r * units, readout + r * units, readout_first + r * units, units);
  }
  void step_row(std::int64_t r) const {
    if (noise_sigma != 0.0f) {
      // One draw per pair of elements; the same values as noise_of, element by element.
      std::uint64_t pair = ~std::uint64_t{0};
      float first = 0.0f, second = 0.0f;
      const float scale = noise_scale();
      for (std::int32_t unit = 0; unit < units; ++unit) {
        const std::uint64_t element = noise_element(r, unit);
        if ((element >> 1) != pair) {
          pair = element >> 1;
          const Philox4 words = random_words(noise_seed, RngStream::dynamics_noise, pair, noise_step);
          first = scale * normal_pair_member(words.v[0], words.v[1], false);
          second = scale * normal_pair_member(words.v[0], words.v[1], true);
        }
        update(r * units + unit, unit, (element & 1u) ? second : first);
      }
      return;
    }
    switch (integrator) {
      case Integrator::fixed_point: return row_with<Integrator::fixed_point>(r);
      case Integrator::gradient_flow: return row_with<Integrator::gradient_flow>(r);
      case Integrator::csb: return row_with<Integrator::csb>(r);
    }
  }
  template <Integrator kKind>
  void row_with(std::int64_t r) const {
    if (feedback) {
      target ? row_of<kKind, true, true>(r) : row_of<kKind, true, false>(r);
    } else {
      target ? row_of<kKind, false, true>(r) : row_of<kKind, false, false>(r);
    }
  }
  template <Integrator kKind, bool kFeedback, bool kTarget>
  void row_of(std::int64_t r) const {
    const std::int64_t offset = r * units;
    float* __restrict s = states + offset;
    float* __restrict p = kKind == Integrator::csb ? momenta + offset : nullptr;
    const float* __restrict d = drive + offset;
    const float* __restrict f = kFeedback ? feedback + offset : nullptr;
    const float* __restrict y = kTarget ? target + offset : nullptr;
    const float* __restrict b = bias;
#pragma omp simd
    for (std::int32_t unit = 0; unit < units; ++unit) {
      float field = d[unit] + b[unit];
      if (kFeedback) field += f[unit];
      const float nudge = kTarget ? beta : 0.0f, goal = kTarget ? y[unit] : 0.0f;
      if constexpr (kKind == Integrator::csb) {
        float position = s[unit], momentum = p[unit];
        csb_unit_step(dt, gamma, a0, pump, hopfield_force(position, field, nudge, goal, activation_max), 0.0f,
                      activation_max, position, momentum);
        s[unit] = position;
        p[unit] = momentum;
      } else {
        s[unit] = hopfield_unit_step(kKind, dt, s[unit], field, nudge, goal, activation_max);
      }
    }
  }
};

}  // namespace eqprop
