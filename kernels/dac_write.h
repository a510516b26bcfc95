// A DAC write into the analog system: a parameter tensor (weights, biases) after an
// optimizer step, or an input batch (DESIGN.md §1, hardware non-idealities).
// Per element, in this order:
//   q         = quantize(source)                    kernels/quantizer.h (if enabled)
//   written   = q + programming noise                kernels/analog_noise.h
//   effective = mismatch gain * written              kernels/analog_noise.h
// `written` is what the device holds (the optimizer continues from it when it keeps
// no full-precision copy); `effective` is the coupling the dynamics see.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/determinism.h"
#include "kernels/draw_count.h"
#include "kernels/analog_noise.h"
#include "kernels/hostdevice.h"
#include "kernels/philox.h"
#include "kernels/quantizer.h"

namespace eqprop {

// Elements per CPU row of the flat hardware ops (DacWriteOp, AdcReadOp): the CPU
// backend runs row(r) over chunks of this size, with the level grid derived once
// per chunk and the loop vectorized (kernels/cpu_backend.cpp); the GPU runs op(i).
constexpr std::int64_t kHardwareChunk = 4096;

// The CPU rows of a flat hardware op over `run` elements. The op's own count field
// must agree: a mismatch would skip or overrun elements on the CPU only, so it is a
// programming error reported before any element is touched.
inline std::int64_t hardware_chunk_count(const char* op, std::int64_t count, std::int64_t run) {
  if (run != count)
    throw std::logic_error(std::string(op) + ": the count field (" + std::to_string(count) +
                           ") differs from the count run (" + std::to_string(run) + ")");
  return (run + kHardwareChunk - 1) / kHardwareChunk;
}

// Thread mapping: one element per index, no reductions. Determinism: bit-exact on
// every backend with programming noise and mismatch off (stochastic rounding
// included: its uniforms are exact); with them on, a few ulp across backends (the
// normals' logf/cosf) and bit-exact on one backend. With everything off
// (quantizer.bits = 0, zero sigmas) it copies source to written and effective
// bit for bit. op(i) and row(r) run the same element function with the same
// switches, so the two paths are bit-identical.
struct DacWriteOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  const float* source;    // (count) the value to write: full-precision weights, or inputs
  float* written;         // (count) q + programming noise, or null; may alias source
  float* effective;       // (count) gain * written, what the dynamics use; may alias source
  QuantizerSpec quantizer;  // bits = 0: no quantization
  float noise_additive;        // programming noise sigma, in the units of the value
  float noise_multiplicative;  // programming noise sigma relative to |q|
  float mismatch_sigma;        // device-to-device gain spread; 0: all gains 1
  std::uint64_t seed;
  std::uint32_t tensor;       // logical tensor id: draws keyed on hardware_index(tensor, i)
  DrawCount write_count;      // keys the programming noise and the stochastic rounding
  std::int64_t count;         // elements: the count given to Backend::run (the CPU chunks need it)

  EQ_HD bool noisy() const { return noise_additive != 0.0f || noise_multiplicative != 0.0f; }

  EQ_HD void operator()(std::int64_t i) const {
    const bool quantize_on = quantizer.enabled();
    const QuantizerLevels levels = quantize_on ? quantizer.levels() : QuantizerLevels{};
    write(i, levels, quantize_on, quantizer.rounding == Rounding::stochastic, noisy(), mismatch_sigma != 0.0f,
          write_count.value());
  }

  // One element, with the level grid, the feature switches and write_count.value() given.
  EQ_HD void write(std::int64_t i, const QuantizerLevels& levels, bool quantize_on, bool stochastic, bool noise_on,
                   bool mismatch_on, std::uint32_t draw) const {
    const std::uint64_t index = hardware_index(tensor, static_cast<std::uint64_t>(i));
    float q = source[i];
    if (quantize_on) {
      const float u = stochastic ? rounding_uniform(seed, RngStream::dac_rounding, index, draw) : 0.0f;
      q = quantize(q, levels, stochastic ? Rounding::stochastic : Rounding::nearest, 0.0f, u);
    }
    const float w =
        noise_on ? programming_noise(q, seed, index, draw, noise_additive, noise_multiplicative) : q;
    if (written) written[i] = w;
    effective[i] = mismatch_on ? mismatch_gain(seed, index, mismatch_sigma) * w : w;
  }

  // CPU: chunks of kHardwareChunk elements, switches hoisted so the loop vectorizes.
  std::int64_t row_count(std::int64_t n) const { return hardware_chunk_count("DacWriteOp", count, n); }
  void row(std::int64_t r) const {
    const bool quantize_on = quantizer.enabled();
    const QuantizerLevels levels = quantize_on ? quantizer.levels() : QuantizerLevels{};
    const bool stochastic = quantizer.rounding == Rounding::stochastic;
    if (!quantize_on) {
      chunk<false, false>(r, levels);
    } else if (stochastic) {
      chunk<true, true>(r, levels);
    } else {
      chunk<true, false>(r, levels);
    }
  }
  template <bool kQuantize, bool kStochastic>
  void chunk(std::int64_t r, const QuantizerLevels& levels) const {
    const std::int64_t begin = r * kHardwareChunk;
    const std::int64_t end = begin + kHardwareChunk < count ? begin + kHardwareChunk : count;
    const bool noise_on = noisy(), mismatch_on = mismatch_sigma != 0.0f;
    const std::uint32_t draw = write_count.value();
    if (!noise_on && !mismatch_on) {
#pragma omp simd
      for (std::int64_t i = begin; i < end; ++i) write(i, levels, kQuantize, kStochastic, false, false, draw);
    } else {
      for (std::int64_t i = begin; i < end; ++i) write(i, levels, kQuantize, kStochastic, noise_on, mismatch_on, draw);
    }
  }
};

}  // namespace eqprop
