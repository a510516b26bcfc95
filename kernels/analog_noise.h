// The noise and variability of an analog EP machine beyond the dynamics' Langevin
// noise (DESIGN.md §1, hardware non-idealities), as single-source draws:
//  - programming noise on each weight write: the device holds
//      w_written = q + sigma_add * xi_1 + sigma_mul * |q| * xi_2
//    (q the DAC output), fresh xi at every write (keyed on the write count);
//  - device-to-device mismatch: a fixed gain per weight, g = 1 + sigma * xi, so the
//    coupling the dynamics see is g * w_written. xi is a pure function of
//    (seed, element): the same at every step, nothing to store or checkpoint;
//  - ADC readout noise: Gaussian, added to the analog value before the ADC rounds
//    (step 2 of kernels/quantizer.h), sigma in LSB or in absolute units.
// Every draw is keyed on logical indices (seed, stream, element, write or read
// count), never on threads, so any backend and launch shape gives the same draws.
//
// Determinism: the Philox words are bit-exact everywhere; the normals go through
// logf/cosf (kernels/philox.h), so on one backend the results are bit-exact and
// reproducible, and across backends they agree to a few ulp.
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"
#include "kernels/philox.h"

namespace eqprop {

// Elements per tensor in the logical index space of the hardware draws: element e
// of tensor t has index t * 2^40 + e, so every tensor (weights, biases, inputs, the
// states of each phase) gets its own draws from one stream.
constexpr int kHardwareTensorShift = 40;

EQ_HD std::uint64_t hardware_index(std::uint32_t tensor, std::uint64_t element) {
  return (static_cast<std::uint64_t>(tensor) << kHardwareTensorShift) + element;
}

// The value a weight write leaves on the device: q plus programming noise. A zero
// sigma adds nothing (not even a signed zero), so with both off this is q exactly.
EQ_HD float programming_noise(float q, std::uint64_t seed, std::uint64_t index, std::uint32_t write_count,
                              float sigma_additive, float sigma_multiplicative) {
  if (sigma_additive == 0.0f && sigma_multiplicative == 0.0f) return q;
  const Philox4 words = random_words(seed, RngStream::programming_noise, index, write_count);
  float written = q;
  if (sigma_additive != 0.0f) written += sigma_additive * normal_from_words(words.v[0], words.v[1]);
  if (sigma_multiplicative != 0.0f)
    written += sigma_multiplicative * fabsf(q) * normal_from_words(words.v[2], words.v[3]);
  return written;
}

// The fixed gain of device `index`: 1 + sigma * xi, xi ~ N(0, 1) keyed on
// (seed, index) alone. Exactly 1 when sigma = 0.
EQ_HD float mismatch_gain(std::uint64_t seed, std::uint64_t index, float sigma) {
  if (sigma == 0.0f) return 1.0f;
  const Philox4 words = random_words(seed, RngStream::device_mismatch, index, 0);
  return 1.0f + sigma * normal_from_words(words.v[0], words.v[1]);
}

enum class NoiseUnit : int {
  lsb = 0,       // sigma in LSB of the ADC
  absolute = 1,  // sigma in the units of the value read
};

// ADC readout noise for element `index` at read `read_count`, in LSB (what
// kernels/quantizer.h adds before rounding). step: the ADC's LSB (> 0).
EQ_HD float readout_noise_lsb(std::uint64_t seed, std::uint64_t index, std::uint32_t read_count, float sigma,
                              NoiseUnit unit, float step) {
  if (sigma == 0.0f) return 0.0f;
  const Philox4 words = random_words(seed, RngStream::adc_noise, index, read_count);
  const float xi = normal_from_words(words.v[0], words.v[1]);
  return unit == NoiseUnit::lsb ? sigma * xi : sigma * xi / step;
}

// ADC readout noise in absolute units, for a read without quantization.
EQ_HD float readout_noise_absolute(std::uint64_t seed, std::uint64_t index, std::uint32_t read_count,
                                   float sigma) {
  if (sigma == 0.0f) return 0.0f;
  const Philox4 words = random_words(seed, RngStream::adc_noise, index, read_count);
  return sigma * normal_from_words(words.v[0], words.v[1]);
}

// The uniform in [0, 1) that stochastic rounding compares with (24 bits, exact).
EQ_HD float rounding_uniform(std::uint64_t seed, RngStream stream, std::uint64_t index, std::uint32_t count) {
  return uniform_from_word(random_words(seed, stream, index, count).v[0]);
}

}  // namespace eqprop
