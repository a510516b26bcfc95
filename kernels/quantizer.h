// The quantizer of one value: the DAC that writes parameters and inputs into the
// analog system and the ADC that reads its states (DESIGN.md §1, hardware
// non-idealities). Single source: the ops of kernels/dac_write.h and
// kernels/adc_read.h call these functions on both backends.
//
// Order of operations, fixed (the same on every backend and in every op):
//   1. scale:  v = (x - origin) / step          (the value in units of the LSB)
//   2. noise:  v = v + noise_lsb                 (ADC readout noise, drawn by the caller)
//   3. round:  code = rint(v)                    (nearest, ties to even)
//          or  code = floor(v) + [u < v - floor(v)]   (stochastic, u uniform in [0, 1);
//                                                      see the exactness guard below)
//   4. clip:   code = clip(code, code_min, code_max)
//   5. value:  origin + code * step, with the two end codes pinned to the range ends.
// Clipping the integer code (rather than x) makes every output exactly one of the
// levels, and pinning the end codes makes a value on a range end come back
// unchanged (origin + code_max * step can differ from hi by an ulp).
//
// Level conventions (both used in the field):
//  - asymmetric: 2^b levels spanning [lo, hi]: lo + k * step, k = 0 .. 2^b - 1,
//    step = (hi - lo) / (2^b - 1). Both ends are levels. An unsigned ADC on the unit
//    states (which live in [0, 1]) is this convention; 8 bits on [0, 1] reproduce
//    the loader's 8-bit pixels p * (1/255) bit for bit.
//  - symmetric: 2^b - 1 levels k * step, k = -K .. K, K = 2^(b-1) - 1,
//    step = r / K, r = max(|lo|, |hi|): the levels span [-r, r] and include 0
//    exactly (a zero weight stays zero; the sign-magnitude / differential-pair
//    convention of analog weight arrays). One code of the 2^b is unused. With b = 1
//    the only level is 0 (the config rejects that combination).
// Which is the default is a config decision (engine/hardware_config.h): symmetric
// for the parameter DAC (signed weights, exact zero), asymmetric for the input DAC
// and the ADC (values in [0, 1], no code wasted on a negative half).
//
// Rounding:
//  - nearest: ties to even (IEEE rint, PyTorch's and NumPy's round): unbiased on
//    ties, where ties-away-from-zero would push every exact half outwards. Nearest
//    up to the float error of v (an ulp of v; 0.03 LSB at 16 bits on [0, 255]):
//    a value that close to a midpoint may take the other neighbour.
//  - stochastic: rounds up with probability frac(v), so E[code] = v inside the range,
//    unbiased up to the float error of v (an ulp of v: 2^(b-24) LSB at most) and the
//    24 bits of u. Without noise, a value on a level, or at or beyond a range end,
//    keeps that level exactly (a guard against that float error). u comes from
//    Philox keyed on logical indices, drawn by the op.
//
// Range: fixed [lo, hi] from the config, or calibrated per tensor by the caller
// (kernels/range_calibration.h computes [min x, max x] of the tensor on the device;
// the symmetric convention then uses r = max|x|). Degenerate ranges:
//  - zero width (asymmetric hi <= lo, or symmetric r = 0, or symmetric b = 1): a
//    single level (lo, resp. 0); a calibrated constant tensor is left unchanged;
//  - a non-finite end (a calibrated tensor holding a NaN or an Inf, or a range too
//    wide for a float step): every finite input gives NaN, so a diverged tensor
//    cannot come out looking finite.
// Non-finite inputs pass through unchanged: NaN stays NaN (with its payload) and
// an Inf stays Inf: both mean the run diverged upstream, and saturating an Inf to
// the range end would hide that from the divergence check. Finite values beyond
// the range clip, as a real converter saturates.
//
// Determinism: only IEEE +, -, *, /, rint, floor and comparisons, so the result is
// bit-exact on every backend (with the CUDA backend's -fmad=false) given the same
// noise and uniform inputs. A -0 input may come out as +0 (noise of +0 added).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/hard_sigmoid.h"
#include "kernels/hostdevice.h"

namespace eqprop {

enum class LevelConvention : int {
  asymmetric = 0,  // 2^b levels spanning [lo, hi]
  symmetric = 1,   // 2^b - 1 levels k * step, |k| <= 2^(b-1) - 1, including 0
};

enum class Rounding : int {
  nearest = 0,     // ties to even
  stochastic = 1,  // up with probability frac(v): unbiased
};

// The highest bit width: codes up to 2^16 - 1 are exact floats with room to spare,
// and the float error of v and of the levels, about 2^(b-24) * max(|lo|, |hi|) /
// (hi - lo) LSB, stays far below half an LSB for ranges at or near 0 (states in
// [0, 1], weights in [-r, r]). A narrow range far from 0 (e.g. [1000, 1001] at 16
// bits) would ask for levels finer than a float resolves there.
constexpr int kMaxQuantizerBits = 16;

// The level grid of one quantizer over one range, derived from (bits, convention,
// lo, hi) by quantizer_levels. Codes are held as floats (exact integers).
struct QuantizerLevels {
  float origin;     // the value of code 0 (lo, or 0 for symmetric)
  float step;       // the LSB
  float code_min;   // lowest code (0, or -K)
  float code_max;   // highest code (2^b - 1, or K)
  float value_min;  // the value of code_min: lo exactly (or -r)
  float value_max;  // the value of code_max: hi exactly (or r)
};

// True for finite x (false for NaN and +-Inf); a comparison, so it vectorizes and
// means the same in host and device code.
EQ_HD bool quantizer_is_finite(float x) { return fabsf(x) <= 3.40282346638528859812e+38f; }

// The NaN a poisoned range produces: one fixed bit pattern (0x7fc00000) built without
// arithmetic, since the GPU's arithmetic NaN (0x7fffffff) differs from the CPU's.
EQ_HD float quantizer_nan() {
#if defined(__CUDA_ARCH__)
  return __int_as_float(0x7fc00000);
#else
  const std::uint32_t bits = 0x7fc00000u;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}

// The levels for bits in [1, 16] over the range [lo, hi] (see the header comment for
// degenerate and non-finite ranges).
EQ_HD QuantizerLevels quantizer_levels(int bits, LevelConvention convention, float lo, float hi) {
  const float nan = quantizer_nan();
  if (!quantizer_is_finite(lo) || !quantizer_is_finite(hi)) return QuantizerLevels{nan, nan, 0.0f, 0.0f, nan, nan};
  if (convention == LevelConvention::asymmetric) {
    const float top = static_cast<float>((1 << bits) - 1);
    const float step = (hi - lo) / top;
    if (!(hi > lo) || !(step > 0.0f)) return QuantizerLevels{lo, 1.0f, 0.0f, 0.0f, lo, lo};
    if (!quantizer_is_finite(step)) return QuantizerLevels{nan, nan, 0.0f, 0.0f, nan, nan};
    return QuantizerLevels{lo, step, 0.0f, top, lo, hi};
  }
  const float half = static_cast<float>((1 << (bits - 1)) - 1);  // K
  const float r = fmaxf(fabsf(lo), fabsf(hi));
  const float step = half > 0.0f ? r / half : 0.0f;
  if (!(step > 0.0f)) return QuantizerLevels{0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  return QuantizerLevels{0.0f, step, -half, half, -r, r};
}

// Step 5: the value of an (already clipped) code.
EQ_HD float quantizer_value(const QuantizerLevels& levels, float code) {
  if (code == levels.code_max) return levels.value_max;
  if (code == levels.code_min) return levels.value_min;
  return levels.origin + code * levels.step;
}

// Quantizes x (steps 1-5 of the header comment).
//   noise_lsb: readout noise already drawn and expressed in LSB (0: none);
//   uniform:   in [0, 1), used by stochastic rounding only.
EQ_HD float quantize(float x, const QuantizerLevels& levels, Rounding rounding, float noise_lsb,
                     float uniform) {
  const float v = (x - levels.origin) / levels.step + noise_lsb;
  float code;
  if (rounding == Rounding::nearest) {
    code = rintf(v);
  } else {
    const float below = floorf(v);
    code = below + (uniform < v - below ? 1.0f : 0.0f);  // v - below is exact
    if (noise_lsb == 0.0f) {
      // Exactness guard: v carries about an ulp of float error, so a value on a
      // level could come out as v = k - 1e-7 and round down with that probability.
      // A value on a level, or at or beyond a range end, keeps that level.
      const float nearest = clip(rintf(v), levels.code_min, levels.code_max);
      if (x >= levels.value_max) {
        code = levels.code_max;
      } else if (x <= levels.value_min) {
        code = levels.code_min;
      } else if (quantizer_value(levels, nearest) == x) {
        code = nearest;
      }
    }
  }
  code = clip(code, levels.code_min, levels.code_max);
  const float value = quantizer_value(levels, code);
  // Selects, not arithmetic, so NaN bit patterns are the same on every backend.
  if (!quantizer_is_finite(x)) return x;
  return quantizer_is_finite(value) ? value : quantizer_nan();
}

// What one converter does, as it travels inside an op (trivially copyable).
struct QuantizerSpec {
  std::int32_t bits;  // 1 .. 16; 0: no quantization (the value passes unchanged)
  LevelConvention convention;
  Rounding rounding;
  float lo;            // the fixed range, used when range is null
  float hi;
  const float* range;  // (2) [min, max] of the tensor on the device (calibrated), or null

  EQ_HD bool enabled() const { return bits > 0; }
  // The levels over this spec's range (the calibrated one when range is set).
  EQ_HD QuantizerLevels levels() const {
    return range ? quantizer_levels(bits, convention, range[0], range[1])
                 : quantizer_levels(bits, convention, lo, hi);
  }
};

// A spec that quantizes nothing.
inline QuantizerSpec quantizer_off() {
  return QuantizerSpec{0, LevelConvention::asymmetric, Rounding::nearest, 0.0f, 1.0f, nullptr};
}

}  // namespace eqprop
