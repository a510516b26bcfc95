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
// Determinism: bit-exact on every backend. No reductions, and cos/sin come from
// phase_sincos below (polynomials, no library sinf/cosf whose last bits differ
// between glibc and CUDA; CUDA builds with -fmad=false and the host with
// -ffp-contract=off, so the same operations round the same way).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/langevin_noise.h"
#include "kernels/noise_key.h"

namespace eqprop {

constexpr float kTwoPi = 6.2831853071795864769f;
constexpr float kPi = 3.1415926535897932385f;

// x rounded to the nearest integer (ties to even), |x| < 2^22: adding and
// subtracting 1.5 * 2^23 leaves no fraction bits. Unlike rintf/floorf it needs no
// SSE4.1 rounding instruction, so the baseline x86-64 build vectorizes it too.
EQ_HD float round_to_integer(float x) {
  const float magic = 12582912.0f;
  return (x + magic) - magic;
}

// cos and sin of a phase, |phase| <= 8192: Cody-Waite reduction by pi/2 in three
// parts, then the Cephes single-precision minimax polynomials on [-pi/4, pi/4]
// (absolute error about 1e-7 for |phase| <= 2 pi, checked against double in
// tests/test_oscillator_network.cpp). Written without branches so the CPU's row
// loops vectorize it (glibc's sinf/cosf are scalar calls: 45 ns per pair measured,
// most of a relaxation step of the 784-500-10 network).
EQ_HD void phase_sincos(float phase, float& cosine, float& sine) {
  const float quadrant_float = round_to_integer(phase * 0.63661977236758134308f);  // 2 / pi
  const int quadrant = static_cast<int>(quadrant_float);
  // pi/2 = 1.5703125 + 4.837512969970703125e-4 + 7.54978995489188216e-8 (exact float parts).
  float r = phase - quadrant_float * 1.5703125f;
  r = r - quadrant_float * 4.837512969970703125e-4f;
  r = r - quadrant_float * 7.54978995489188216e-8f;
  const float z = r * r;
  const float sin_r = r + r * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  const float cos_r =
      1.0f - 0.5f * z + z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
  // phase = quadrant * pi/2 + r: rotate (cos r, sin r) by the quadrant.
  const int q = quadrant & 3;
  const bool swap = (q & 1) != 0;
  const float c = swap ? sin_r : cos_r, s = swap ? cos_r : sin_r;
  cosine = (q == 1 || q == 2) ? -c : c;
  sine = (q == 2 || q == 3) ? -s : s;
}

// dV/dphi of one oscillator, given cos phi = c, sin phi = s and the GEMM fields
// cos_field = (J cos phi)_i, sin_field = (J sin phi)_i; sin 2 phi = 2 s c.
EQ_HD float oscillator_energy_gradient(float c, float s, float cos_field, float sin_field, float bias,
                                       float shil) {
  return (s * cos_field - c * sin_field + shil * 2.0f * s * c) + bias * s;
}

// d2V/dphi2 of one oscillator, its own row of the Hessian's diagonal (the fields
// held fixed): d/dphi of the gradient above, with d(2 s c)/dphi = 2 (c^2 - s^2).
// At a strict minimum of V the Hessian is positive definite, so this is > 0 there.
EQ_HD float oscillator_energy_curvature(float c, float s, float cos_field, float sin_field, float bias,
                                        float shil) {
  return (c * cos_field + s * sin_field + shil * 2.0f * (c * c - s * s)) + bias * c;
}

// dC/dphi of an output oscillator for C = 1/2 (u - y)^2, u = (1 + cos phi) / 2:
// (u - y) du/dphi with du/dphi = -sin(phi) / 2.
EQ_HD float oscillator_readout(float c) { return 0.5f * (1.0f + c); }
EQ_HD float oscillator_cost_gradient(float c, float s, float y) {
  return (oscillator_readout(c) - y) * (-0.5f * s);
}

// phi mapped into [-pi, pi] (minus the nearest multiple of 2 pi): the energy is
// 2 pi-periodic, so this changes no physics, and it keeps the phases inside a
// fixed ADC range. Inside the range the multiple is 0 and the phase unchanged.
EQ_HD float wrap_phase(float phase) {
  return phase - kTwoPi * round_to_integer(phase * 0.15915494309189533577f);  // 1 / (2 pi)
}

// cos and sin of scale * phases[i] (the clamped input phases use scale != 1), and
// optionally the read-out u = (1 + cos) / 2. Thread mapping: one flat index per
// oscillator of one sample; the CPU loops (vectorized) over one sample at a time.
struct OscillatorTrigOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* phases;  // (batch, units)
  float scale;          // phi = scale * phases[i]
  float* cosines;       // (batch, units)
  float* sines;         // (batch, units)
  float* readout;       // (batch, units) u = (1 + cos phi) / 2, or null
  std::int32_t units;

  EQ_HD void operator()(std::int64_t i) const {
    float c, s;
    phase_sincos(scale * phases[i], c, s);
    cosines[i] = c;
    sines[i] = s;
    if (readout) readout[i] = oscillator_readout(c);
  }

  std::int64_t row_count(std::int64_t count) const { return count / units; }
  void row(std::int64_t r) const {
    const std::int64_t offset = r * units;
    const float* __restrict p = phases + offset;
    float* __restrict c = cosines + offset;
    float* __restrict s = sines + offset;
#pragma omp simd
    for (std::int32_t unit = 0; unit < units; ++unit) phase_sincos(scale * p[unit], c[unit], s[unit]);
    if (readout)
      for (std::int32_t unit = 0; unit < units; ++unit) readout[offset + unit] = oscillator_readout(c[unit]);
  }
};

// One explicit Euler step of gradient flow on F = V + beta C for one layer of
// oscillators, after the GEMMs that built its fields from the previous step's
// cos/sin (a synchronous update):
//   phi <- wrap(phi - dt (dV/dphi + beta dC/dphi) + sigma sqrt(dt) xi),
// then cos phi and sin phi are rewritten for the next step's GEMMs.
// Thread mapping: one flat index per oscillator of one sample.
struct OscillatorStepOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
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
  // Langevin noise sigma sqrt(dt) xi, xi = langevin_normal(noise_seed, element,
  // noise_step), element = noise_element_at(noise_index, noise_first_sample,
  // noise_row_stride, row, unit): logical positions (kernels/noise_key.h).
  float noise_sigma = 0.0f;
  std::uint64_t noise_seed = 0;
  std::uint64_t noise_index = 0;
  std::int64_t noise_row_stride = 0;
  std::uint32_t noise_step = 0;
  const std::uint64_t* noise_first_sample = nullptr;  // device: samples before a recorded step's batch

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t row = i / units;
    const std::int32_t unit = static_cast<std::int32_t>(i % units);
    update(i, unit, row);
  }

  EQ_HD float noise_of(std::int64_t row, std::int32_t unit) const {
    return noise_sigma * sqrtf(dt) *
           langevin_normal(noise_seed, noise_element_at(noise_index, noise_first_sample, noise_row_stride, row, unit),
                           noise_step);
  }

  // The new phase of oscillator i from its cos, sin and fields; writes phase, cos, sin.
  EQ_HD static void advance(float& phase, float& cosine, float& sine, float cos_field, float sin_field, float bias,
                            float shil, float nudge, float goal, float dt, float noise) {
    float gradient = oscillator_energy_gradient(cosine, sine, cos_field, sin_field, bias, shil);
    gradient += nudge * oscillator_cost_gradient(cosine, sine, goal);
    phase = wrap_phase(phase - dt * gradient + noise);
    phase_sincos(phase, cosine, sine);
  }

  EQ_HD void update(std::int64_t i, std::int32_t unit, std::int64_t row) const {
    float cos_field = cos_drive[i], sin_field = sin_drive[i];
    if (cos_feedback) {
      cos_field += cos_feedback[i];
      sin_field += sin_feedback[i];
    }
    const float nudge = target ? beta : 0.0f, goal = target ? target[i] : 0.0f;
    const float noise = noise_sigma != 0.0f ? noise_of(row, unit) : 0.0f;
    float phase = phases[i], c = cosines[i], s = sines[i];
    advance(phase, c, s, cos_field, sin_field, bias[unit], shil, nudge, goal, dt, noise);
    phases[i] = phase;
    cosines[i] = c;
    sines[i] = s;
  }

  // The CPU loops a sample at a time with the per-layer choices hoisted, so the
  // loop vectorizes (no 64-bit division per element); the math is advance() above.
  std::int64_t row_count(std::int64_t count) const { return count / units; }
  void row(std::int64_t r) const {
    if (noise_sigma != 0.0f) {
      for (std::int32_t unit = 0; unit < units; ++unit) update(r * units + unit, unit, r);
      return;
    }
    if (cos_feedback) {
      target ? row_of<true, true>(r) : row_of<true, false>(r);
    } else {
      target ? row_of<false, true>(r) : row_of<false, false>(r);
    }
  }
  template <bool kFeedback, bool kTarget>
  void row_of(std::int64_t r) const {
    const std::int64_t offset = r * units;
    float* __restrict p = phases + offset;
    float* __restrict c = cosines + offset;
    float* __restrict s = sines + offset;
    const float* __restrict cd = cos_drive + offset;
    const float* __restrict sd = sin_drive + offset;
    const float* __restrict cf = kFeedback ? cos_feedback + offset : nullptr;
    const float* __restrict sf = kFeedback ? sin_feedback + offset : nullptr;
    const float* __restrict y = kTarget ? target + offset : nullptr;
    const float* __restrict b = bias;
#pragma omp simd
    for (std::int32_t unit = 0; unit < units; ++unit) {
      float cos_field = cd[unit], sin_field = sd[unit];
      if (kFeedback) {
        cos_field += cf[unit];
        sin_field += sf[unit];
      }
      advance(p[unit], c[unit], s[unit], cos_field, sin_field, b[unit], shil, kTarget ? beta : 0.0f,
              kTarget ? y[unit] : 0.0f, dt, 0.0f);
    }
  }
};

}  // namespace eqprop
