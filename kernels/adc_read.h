// An ADC read of analog values (the unit states used by the contrastive update and
// by the prediction; DESIGN.md §1, hardware non-idealities): readout noise on the
// analog value, then the quantizer, in the order of kernels/quantizer.h
// (scale -> noise -> round -> clip).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/determinism.h"
#include "kernels/analog_noise.h"
#include "kernels/dac_write.h"
#include "kernels/draw_count.h"
#include "kernels/hostdevice.h"
#include "kernels/philox.h"
#include "kernels/quantizer.h"

namespace eqprop {

// What one ADC does to one analog value, as it travels inside an op (trivially
// copyable): AdcReadOp applies it as a pass of its own; the relaxation ops apply it
// to the final state of a phase inside their own pass (LayerStepOp, RowMaxChangeOp).
// Draws are keyed on (seed, hardware_index(tensor, element), read_count), so every
// op that applies it to the same element gives the same value.
struct AdcSpec {
  QuantizerSpec quantizer;  // bits = 0: no quantization
  float noise_sigma;        // readout noise; 0: none
  NoiseUnit noise_unit;
  std::uint64_t seed;
  std::uint32_t tensor;      // logical tensor id: draws keyed on hardware_index(tensor, element)
  DrawCount read_count;      // keys the readout noise and the stochastic rounding

  // The digital reading of x, element `element` of the tensor, with the level grid,
  // the switches and read_count.value() given (hoisted out of loops by the callers).
  EQ_HD float read(float x, std::int64_t element, const QuantizerLevels& levels, bool quantize_on, bool stochastic,
                   bool noise_on, std::uint32_t read) const {
    const std::uint64_t index = hardware_index(tensor, static_cast<std::uint64_t>(element));
    if (!quantize_on) return noise_on ? x + readout_noise_absolute(seed, index, read, noise_sigma) : x;
    const float noise = noise_on ? readout_noise_lsb(seed, index, read, noise_sigma, noise_unit, levels.step) : 0.0f;
    const float u = stochastic ? rounding_uniform(seed, RngStream::adc_rounding, index, read) : 0.0f;
    return quantize(x, levels, stochastic ? Rounding::stochastic : Rounding::nearest, noise, u);
  }
  // The same, deriving the levels: for one element at a time (GPU threads).
  EQ_HD float read(float x, std::int64_t element) const {
    const bool quantize_on = quantizer.enabled();
    const QuantizerLevels levels = quantize_on ? quantizer.levels() : QuantizerLevels{};
    return read(x, element, levels, quantize_on, quantizer.rounding == Rounding::stochastic, noise_sigma != 0.0f,
                read_count.value());
  }
  // out[k] = read(in[k], first_element + k) for k < n: a run of elements, switches
  // hoisted so the noiseless loops vectorize. in and out may alias.
  EQ_HD void read_run(const float* in, float* out, std::int64_t first_element, std::int64_t n) const {
    const bool quantize_on = quantizer.enabled();
    const QuantizerLevels levels = quantize_on ? quantizer.levels() : QuantizerLevels{};
    const bool stochastic = quantizer.rounding == Rounding::stochastic;
    const std::uint32_t draw = read_count.value();
    if (noise_sigma != 0.0f) {
      for (std::int64_t k = 0; k < n; ++k)
        out[k] = read(in[k], first_element + k, levels, quantize_on, stochastic, true, draw);
    } else if (!quantize_on) {
      for (std::int64_t k = 0; k < n; ++k) out[k] = in[k];
    } else if (stochastic) {
#pragma omp simd
      for (std::int64_t k = 0; k < n; ++k) out[k] = read(in[k], first_element + k, levels, true, true, false, draw);
    } else {
#pragma omp simd
      for (std::int64_t k = 0; k < n; ++k) out[k] = read(in[k], first_element + k, levels, true, false, false, draw);
    }
  }
};

// An ADC pass over a tensor. Thread mapping: one element per index, no reductions.
// Determinism: bit-exact on every backend without readout noise (stochastic
// rounding included); with noise, a few ulp of the analog value across backends,
// which can move a value lying within a few ulp of a rounding boundary by one
// level, and bit-exact on one backend. With quantizer.bits = 0 and noise_sigma = 0
// it copies in to out bit for bit; with bits = 0 and noise on, the noise is added
// unquantized (sigma taken as absolute). op(i) and row(r) run the same element
// function: bit-identical.
struct AdcReadOp {
  static constexpr Determinism determinism = Determinism::statistical;
  const float* in;  // (count) analog values
  float* out;       // (count) the digital readout; may alias in
  AdcSpec adc;
  std::int64_t count;  // elements: the count given to Backend::run (the CPU chunks need it)

  EQ_HD void operator()(std::int64_t i) const { out[i] = adc.read(in[i], i); }
  // CPU: chunks of kHardwareChunk elements.
  std::int64_t row_count(std::int64_t n) const { return hardware_chunk_count("AdcReadOp", count, n); }
  void row(std::int64_t r) const {
    const std::int64_t begin = r * kHardwareChunk;
    const std::int64_t end = begin + kHardwareChunk < count ? begin + kHardwareChunk : count;
    adc.read_run(in + begin, out + begin, begin, end - begin);
  }
};

}  // namespace eqprop
