// Phase-oscillator dynamics (DESIGN.md §1; Wang, Wanjura & Marquardt 2024; Gower 2025,
// eq. 1-2): oscillator phases phi_i with the energy
//   V = -1/2 sum_ij J_ij cos(phi_i - phi_j) - sum_i h_i cos phi_i - sum_i (S_i/2) cos 2 phi_i,
//   dV/dphi_i = sum_j J_ij sin(phi_i - phi_j) + h_i sin phi_i + S_i sin 2 phi_i.
// With sin(a - b) = sin a cos b - cos a sin b the coupling term is
//   sin phi_i (J cos phi)_i - cos phi_i (J sin phi)_i,
// two GEMMs on cos phi and sin phi (no pairwise sin(phi_i - phi_j) is ever formed);
// these ops fuse what lies between the GEMMs. The oscillator Ising machine
// (kernels/oscillator_ising.h) is the same physics with h = 0 and a ramped S.
//
// Read-out of the oscillator network (models/oscillator_network.h): an output
// oscillator's prediction is u = (1 + cos phi) / 2 in [0, 1] (phase 0: on, pi: off),
// the cost C = 1/2 sum_k (u_k - y_k)^2 against the one-hot y, i.e.
// 1/8 sum_k (cos phi_k - t_k)^2 with targets t = 2y - 1 = +-1 (Gower 2025 reads the
// output as cos phi against +-1 targets; the factor 1/4 only rescales beta).
//
// Determinism: no reductions; phases go through sinf/cosf, so backends agree to a
// few ulp per step (bit-exact on one backend).
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"
#include "kernels/langevin_noise.h"

namespace eqprop {

constexpr float kTwoPi = 6.2831853071795864769f;
constexpr float kPi = 3.1415926535897932385f;

// dV/dphi of one oscillator, given cos phi = c, sin phi = s and the GEMM fields
// cos_field = (J cos phi)_i, sin_field = (J sin phi)_i; sin 2 phi = 2 s c.
EQ_HD float oscillator_energy_gradient(float c, float s, float cos_field, float sin_field, float bias,
                                       float shil) {
  return (s * cos_field - c * sin_field + shil * 2.0f * s * c) + bias * s;
}

// dC/dphi of an output oscillator for C = 1/2 (u - y)^2, u = (1 + cos phi) / 2:
// (u - y) du/dphi with du/dphi = -sin(phi) / 2.
EQ_HD float oscillator_readout(float c) { return 0.5f * (1.0f + c); }
EQ_HD float oscillator_cost_gradient(float c, float s, float y) {
  return (oscillator_readout(c) - y) * (-0.5f * s);
}

// phi mapped into [-pi, pi): the energy is 2 pi-periodic, so this changes no
// physics, and it keeps the phases inside a fixed ADC range.
EQ_HD float wrap_phase(float phase) {
  if (phase >= -kPi && phase < kPi) return phase;
  const float wrapped = phase - kTwoPi * floorf((phase + kPi) / kTwoPi);
  return wrapped >= kPi ? wrapped - kTwoPi : wrapped;
}

// cos and sin of scale * phases[i] (the clamped input phases use scale != 1), and
// optionally the read-out u = (1 + cos) / 2. Thread mapping: one flat index per
// oscillator of one sample.
struct OscillatorTrigOp {
  const float* phases;  // (batch, units)
  float scale;          // phi = scale * phases[i]
  float* cosines;       // (batch, units)
  float* sines;         // (batch, units)
  float* readout;       // (batch, units) u = (1 + cos phi) / 2, or null

  EQ_HD void operator()(std::int64_t i) const {
    const float phase = scale * phases[i];
    const float c = cosf(phase);
    cosines[i] = c;
    sines[i] = sinf(phase);
    if (readout) readout[i] = oscillator_readout(c);
  }
};

// One explicit Euler step of gradient flow on F = V + beta C for one layer of
// oscillators, after the GEMMs that built its fields from the previous step's
// cos/sin (a synchronous update):
//   phi <- wrap(phi - dt (dV/dphi + beta dC/dphi) + sigma sqrt(dt) xi),
// then cos phi and sin phi are rewritten for the next step's GEMMs.
// Thread mapping: one flat index per oscillator of one sample.
struct OscillatorStepOp {
  float* phases;              // (batch, units), updated in place
  float* cosines;             // (batch, units) cos phi: read, then rewritten
  float* sines;               // (batch, units) sin phi: likewise
  const float* cos_drive;     // (batch, units) (J cos phi) from the layer below
  const float* sin_drive;     // (batch, units) (J sin phi) from the layer below
  const float* cos_feedback;  // (batch, units) from the layer above, or null
  const float* sin_feedback;  // (batch, units) from the layer above, or null
  const float* bias;          // (units) h
  const float* target;        // (batch, units) one-hot y of a nudged output layer, or null
  float beta;                 // nudging strength (sign included)
  float shil;                 // S, the second-harmonic injection
  float dt;
  std::int32_t units;
  // Langevin noise sigma sqrt(dt) xi, xi = langevin_normal(noise_seed,
  // noise_index + row * noise_row_stride + unit, noise_step): logical positions.
  float noise_sigma = 0.0f;
  std::uint64_t noise_seed = 0;
  std::uint64_t noise_index = 0;
  std::int64_t noise_row_stride = 0;
  std::uint32_t noise_step = 0;

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t row = i / units;
    const std::int32_t unit = static_cast<std::int32_t>(i % units);
    update(i, unit, row);
  }

  EQ_HD void update(std::int64_t i, std::int32_t unit, std::int64_t row) const {
    const float c = cosines[i], s = sines[i];
    float cos_field = cos_drive[i], sin_field = sin_drive[i];
    if (cos_feedback) {
      cos_field += cos_feedback[i];
      sin_field += sin_feedback[i];
    }
    float gradient = oscillator_energy_gradient(c, s, cos_field, sin_field, bias[unit], shil);
    if (target) gradient += beta * oscillator_cost_gradient(c, s, target[i]);
    float phase = phases[i] - dt * gradient;
    if (noise_sigma != 0.0f)
      phase += noise_sigma * sqrtf(dt) *
               langevin_normal(noise_seed, noise_index + static_cast<std::uint64_t>(row * noise_row_stride + unit),
                               noise_step);
    phase = wrap_phase(phase);
    phases[i] = phase;
    cosines[i] = cosf(phase);
    sines[i] = sinf(phase);
  }

  // The CPU loops a sample at a time (no 64-bit division per element); same math.
  std::int64_t row_count(std::int64_t count) const { return count / units; }
  void row(std::int64_t r) const {
    for (std::int32_t unit = 0; unit < units; ++unit) update(r * units + unit, unit, r);
  }
};

}  // namespace eqprop
