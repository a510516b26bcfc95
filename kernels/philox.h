// Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC'11). A draw is a pure function of
// (seed, stream, index, step): no generator state, so the CPU and CUDA backends
// produce the same stream for any launch configuration or thread order.
//
// Determinism: the 32-bit words are bit-exact on every backend; uniform floats are
// exact too (integer arithmetic and one exact scaling); normals go through
// logf/cosf and agree across backends to a few ulp.
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"

namespace eqprop {

struct Philox4 {
  std::uint32_t v[4];
};

// What a random number is for. Keying each purpose on its own stream keeps the
// draws of one purpose independent of how many draws another purpose made.
enum class RngStream : std::uint32_t {
  parameter_init = 1,
  shuffle = 2,
  beta_sign = 3,
  dynamics_noise = 4,
  synthetic_data = 5,
  test = 99,
  // Analog hardware model (kernels/analog_noise.h); numbered apart from the others
  // so that entries appended elsewhere cannot collide with them.
  programming_noise = 16,  // noise on each weight write
  device_mismatch = 17,    // per-weight gain, drawn once (step 0)
  dac_rounding = 18,       // stochastic rounding of a DAC write
  adc_rounding = 19,       // stochastic rounding of an ADC read
  adc_noise = 20,          // ADC readout noise
  // Ising solver (engine/maxcut_solver.h).
  sb_initial_state = 21,   // simulated bifurcation: initial positions
  random_spins = 22,       // random initial spins (annealing)
  oscillator_phases = 23,  // oscillator Ising machine: initial phases
  // Data pipeline (engine/image_augmentation.h).
  augmentation = 24,       // random crop offset and horizontal flip per (sample, epoch)
};

namespace philox_detail {
constexpr std::uint32_t kMul0 = 0xD2511F53u;
constexpr std::uint32_t kMul1 = 0xCD9E8D57u;
constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

EQ_HD void mul_hi_lo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(product >> 32);
  lo = static_cast<std::uint32_t>(product);
}
}  // namespace philox_detail

// The raw bijection: 10 rounds over a 128-bit counter with a 64-bit key.
EQ_HD Philox4 philox4x32_10(Philox4 counter, std::uint32_t key0, std::uint32_t key1) {
  using namespace philox_detail;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mul_hi_lo(kMul0, counter.v[0], hi0, lo0);
    mul_hi_lo(kMul1, counter.v[2], hi1, lo1);
    counter = Philox4{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// Four random words for a logical position: `index` is e.g. a sample or a flat
// element index, `step` e.g. an integration step or an epoch.
EQ_HD Philox4 random_words(std::uint64_t seed, RngStream stream, std::uint64_t index,
                           std::uint32_t step) {
  const Philox4 counter{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                         step, static_cast<std::uint32_t>(stream)}};
  return philox4x32_10(counter, static_cast<std::uint32_t>(seed),
                       static_cast<std::uint32_t>(seed >> 32));
}

// Uniform in [0, 1): the top 24 bits, so every value is an exact float.
EQ_HD float uniform_from_word(std::uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// Uniform in (0, 1]: safe to take the logarithm of.
EQ_HD float uniform_open_zero(std::uint32_t word) {
  return (static_cast<float>(word >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

// One of the two independent standard normals Box-Muller makes from two words:
// radius * cos(angle) (first) or radius * sin(angle) (second).
EQ_HD float normal_pair_member(std::uint32_t word0, std::uint32_t word1, bool second) {
  const float radius = sqrtf(-2.0f * logf(uniform_open_zero(word0)));
  const float angle = 6.2831853071795864769f * uniform_from_word(word1);
  return radius * (second ? sinf(angle) : cosf(angle));
}

// A standard normal from two words (Box-Muller, cosine branch).
EQ_HD float normal_from_words(std::uint32_t word0, std::uint32_t word1) {
  const float radius = sqrtf(-2.0f * logf(uniform_open_zero(word0)));
  const float angle = 6.2831853071795864769f * uniform_from_word(word1);
  return radius * cosf(angle);
}

}  // namespace eqprop
