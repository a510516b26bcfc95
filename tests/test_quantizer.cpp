// Tests of the quantizer of one value (kernels/quantizer.h): the level grid of both
// conventions, every level reachable and a fixed point, nearest rounding with ties
// to even, clipping, range ends, NaN/Inf, b = 1 and b = 16, zero-width and
// non-finite ranges, and stochastic rounding being unbiased.
//
// Declared determinism (quantizer.h): IEEE +, -, *, /, rint, floor only, so exact
// checks (bit patterns) everywhere except the statistics of stochastic rounding,
// which are held to 5 sigma of the estimator, each reporting its budget used.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/analog_noise.h"
#include "kernels/philox.h"
#include "kernels/quantizer.h"
#include "tests/test_util.h"

namespace {

using eqprop::LevelConvention;
using eqprop::QuantizerLevels;
using eqprop::Rounding;
using eqprop::test::bits_of;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

float nearest(float x, const QuantizerLevels& levels) {
  return eqprop::quantize(x, levels, Rounding::nearest, 0.0f, 0.0f);
}

std::string name_of(LevelConvention c) { return c == LevelConvention::symmetric ? "symmetric" : "asymmetric"; }

using eqprop::test::check_within_sigmas;

struct Range {
  float lo, hi;
};
constexpr Range kRanges[] = {{0.0f, 1.0f}, {-1.0f, 1.0f}, {-0.37f, 2.5f}, {0.0f, 255.0f}, {-3e-3f, 1e-3f}};

}  // namespace

TEST_CASE("quantizer: both conventions have the documented levels, each reachable and a fixed point") {
  for (const Range range : kRanges) {
    for (int bits = 1; bits <= eqprop::kMaxQuantizerBits; ++bits) {
      for (LevelConvention convention : {LevelConvention::asymmetric, LevelConvention::symmetric}) {
        if (convention == LevelConvention::symmetric && bits == 1) continue;  // one level: its own case
        CAPTURE(range.lo);
        CAPTURE(range.hi);
        CAPTURE(bits);
        CAPTURE(name_of(convention));
        const QuantizerLevels levels = eqprop::quantizer_levels(bits, convention, range.lo, range.hi);
        const bool symmetric = convention == LevelConvention::symmetric;
        const double r = std::fmax(std::fabs(range.lo), std::fabs(range.hi));
        // Count and step of the convention.
        const double count = levels.code_max - levels.code_min + 1;
        const double expected_count = symmetric ? std::ldexp(1.0, bits) - 1 : std::ldexp(1.0, bits);
        const float expected_step = symmetric ? static_cast<float>(r) / static_cast<float>((1 << (bits - 1)) - 1)
                                              : (range.hi - range.lo) / static_cast<float>((1 << bits) - 1);
        REQUIRE(count == expected_count);
        CHECK(bits_of(levels.step) == bits_of(expected_step));
        // The ends are the range ends exactly.
        CHECK(bits_of(eqprop::quantizer_value(levels, levels.code_min)) ==
              bits_of(symmetric ? -static_cast<float>(r) : range.lo));
        CHECK(bits_of(eqprop::quantizer_value(levels, levels.code_max)) ==
              bits_of(symmetric ? static_cast<float>(r) : range.hi));
        if (symmetric) CHECK(eqprop::quantizer_value(levels, 0.0f) == 0.0f);
        // Every level: increasing by one step (to float precision), and the quantizer
        // maps it to itself, so each of the 2^b (2^b - 1) levels is an output.
        const double slack = 4.0 * FLT_EPSILON * (std::fabs(range.lo) + std::fabs(range.hi));
        int not_fixed = 0, bad_steps = 0, asymmetric_pairs = 0;
        float previous = 0.0f;
        for (float code = levels.code_min; code <= levels.code_max; code += 1.0f) {
          const float level = eqprop::quantizer_value(levels, code);
          if (bits_of(nearest(level, levels)) != bits_of(level)) ++not_fixed;
          if (code > levels.code_min && std::fabs((double(level) - previous) - levels.step) > slack) ++bad_steps;
          if (symmetric && eqprop::quantizer_value(levels, -code) != -level) ++asymmetric_pairs;  // 0 == -0
          previous = level;
        }
        CHECK_MESSAGE(not_fixed == 0, not_fixed << " levels do not quantize to themselves");
        CHECK_MESSAGE(bad_steps == 0, bad_steps << " gaps differ from the step by more than " << slack);
        CHECK_MESSAGE(asymmetric_pairs == 0, asymmetric_pairs << " symmetric levels are not exact negatives");
      }
    }
  }
}

TEST_CASE("quantizer: nearest rounding picks the nearest level and clips outside the range") {
  std::mt19937 rng(7);
  for (const Range range : kRanges) {
    for (int bits : {1, 2, 3, 4, 6, 8, 12, 16}) {
      for (LevelConvention convention : {LevelConvention::asymmetric, LevelConvention::symmetric}) {
        if (convention == LevelConvention::symmetric && bits == 1) continue;
        CAPTURE(range.lo);
        CAPTURE(range.hi);
        CAPTURE(bits);
        CAPTURE(name_of(convention));
        const QuantizerLevels levels = eqprop::quantizer_levels(bits, convention, range.lo, range.hi);
        const float bottom = eqprop::quantizer_value(levels, levels.code_min);
        const float top = eqprop::quantizer_value(levels, levels.code_max);
        const float width = top - bottom;
        std::uniform_real_distribution<float> draw(bottom - 0.25f * width, top + 0.25f * width);
        int off_grid = 0, not_nearest = 0, not_clipped = 0;
        double worst = 0.0;
        for (int n = 0; n < 20000; ++n) {
          const float x = draw(rng);
          const float q = nearest(x, levels);
          // q is a level: its code recovers it exactly.
          const float code = std::rint((q - levels.origin) / levels.step);
          if (bits_of(eqprop::quantizer_value(levels, code)) != bits_of(q)) ++off_grid;
          if (x <= bottom) {
            if (bits_of(q) != bits_of(bottom)) ++not_clipped;
          } else if (x >= top) {
            if (bits_of(q) != bits_of(top)) ++not_clipped;
          } else {
            // Within half a step, up to the float error of (x - origin) / step and of
            // the level itself: a few ulp of the range's magnitude, in LSB (0.03 LSB
            // at 16 bits on [0, 255], 1e-6 LSB at 8 bits on [0, 1]).
            const double magnitude = std::fmax(std::fabs(range.lo), std::fabs(range.hi));
            const double slack = 4.0 * FLT_EPSILON * magnitude / levels.step;
            const double error = std::fabs(double(x) - q) / levels.step;
            worst = std::fmax(worst, (error - 0.5) / slack);
            if (error > 0.5 + slack) ++not_nearest;
          }
        }
        CHECK(off_grid == 0);
        CHECK(not_clipped == 0);
        CHECK_MESSAGE(not_nearest == 0, not_nearest << " values more than half a step from their level");
        if (worst > 0.0) MESSAGE("beyond half a step: " << worst * 100.0 << "% of the float slack used");
      }
    }
  }
}

TEST_CASE("quantizer: ties round to even, in both conventions and on both signs") {
  // Step exactly 1: asymmetric 8 bits on [0, 255]; symmetric 8 bits on [-127, 127].
  const QuantizerLevels asymmetric = eqprop::quantizer_levels(8, LevelConvention::asymmetric, 0.0f, 255.0f);
  const QuantizerLevels symmetric = eqprop::quantizer_levels(8, LevelConvention::symmetric, -127.0f, 127.0f);
  REQUIRE(asymmetric.step == 1.0f);
  REQUIRE(symmetric.step == 1.0f);
  for (int k = 0; k < 255; ++k) {
    const float tie = static_cast<float>(k) + 0.5f;
    const float even = static_cast<float>(k % 2 == 0 ? k : k + 1);
    CHECK(nearest(tie, asymmetric) == even);
    // Just off the tie, the nearer level wins.
    CHECK(nearest(std::nextafter(tie, 0.0f), asymmetric) == static_cast<float>(k));
    CHECK(nearest(std::nextafter(tie, 1e9f), asymmetric) == static_cast<float>(k + 1));
  }
  for (int k = -127; k < 127; ++k) {
    const float tie = static_cast<float>(k) + 0.5f;
    const int even = (k % 2 == 0) ? k : k + 1;
    CHECK(nearest(tie, symmetric) == static_cast<float>(even));
  }
  CHECK(nearest(0.5f, symmetric) == 0.0f);
  CHECK(nearest(-0.5f, symmetric) == 0.0f);  // -0: equal to 0
  CHECK(nearest(1.5f, symmetric) == 2.0f);
  CHECK(nearest(-1.5f, symmetric) == -2.0f);
  CHECK(nearest(-2.5f, symmetric) == -2.0f);
  // Ties between the top two levels and beyond the last level.
  CHECK(nearest(254.5f, asymmetric) == 254.0f);
  CHECK(nearest(255.5f, asymmetric) == 255.0f);
  CHECK(nearest(-0.5f, asymmetric) == 0.0f);
}

TEST_CASE("quantizer: values on the range ends, and far beyond, give the ends exactly") {
  for (const Range range : kRanges) {
    for (int bits : {1, 2, 5, 8, 16}) {
      CAPTURE(range.lo);
      CAPTURE(range.hi);
      CAPTURE(bits);
      const QuantizerLevels levels = eqprop::quantizer_levels(bits, LevelConvention::asymmetric, range.lo, range.hi);
      for (Rounding rounding : {Rounding::nearest, Rounding::stochastic}) {
        for (float u : {0.0f, 0.5f, 0.99999994f}) {
          auto q = [&](float x) { return eqprop::quantize(x, levels, rounding, 0.0f, u); };
          CHECK(bits_of(q(range.lo)) == bits_of(range.lo));
          CHECK(bits_of(q(range.hi)) == bits_of(range.hi));
          CHECK(bits_of(q(std::nextafter(range.hi, 1e30f))) == bits_of(range.hi));
          CHECK(bits_of(q(std::nextafter(range.lo, -1e30f))) == bits_of(range.lo));
          CHECK(bits_of(q(FLT_MAX)) == bits_of(range.hi));
          CHECK(bits_of(q(-FLT_MAX)) == bits_of(range.lo));
          CHECK(bits_of(q(1e30f)) == bits_of(range.hi));
        }
      }
      if (bits >= 2) {
        const QuantizerLevels sym = eqprop::quantizer_levels(bits, LevelConvention::symmetric, range.lo, range.hi);
        const float r = std::fmax(std::fabs(range.lo), std::fabs(range.hi));
        CHECK(nearest(r, sym) == r);
        CHECK(nearest(-r, sym) == -r);
        CHECK(nearest(FLT_MAX, sym) == r);
        CHECK(nearest(-FLT_MAX, sym) == -r);
      }
    }
  }
}

TEST_CASE("quantizer: NaN stays NaN (payload kept) and Inf stays Inf, a non-finite range gives NaN") {
  const float payload_nan = [] {
    const std::uint32_t bits = 0x7fc01234u;
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
  }();
  const float negative_nan = -kNaN;
  for (LevelConvention convention : {LevelConvention::asymmetric, LevelConvention::symmetric}) {
    for (int bits : {1, 2, 8, 16}) {
      const QuantizerLevels levels = eqprop::quantizer_levels(bits, convention, -1.0f, 1.0f);
      for (Rounding rounding : {Rounding::nearest, Rounding::stochastic}) {
        for (float noise : {0.0f, 0.7f}) {
          auto q = [&](float x) { return eqprop::quantize(x, levels, rounding, noise, 0.3f); };
          CHECK(bits_of(q(kNaN)) == bits_of(kNaN));
          CHECK(bits_of(q(payload_nan)) == bits_of(payload_nan));
          CHECK(bits_of(q(negative_nan)) == bits_of(negative_nan));
          CHECK(bits_of(q(kInf)) == bits_of(kInf));
          CHECK(bits_of(q(-kInf)) == bits_of(-kInf));
        }
      }
    }
  }
  // A calibrated range from a tensor holding NaN or Inf: every finite value
  // becomes the one NaN pattern (the same on every backend); NaN inputs keep theirs.
  const std::uint32_t canonical = 0x7fc00000u;
  for (LevelConvention convention : {LevelConvention::asymmetric, LevelConvention::symmetric}) {
    for (Range poisoned : {Range{kNaN, 1.0f}, Range{0.0f, kNaN}, Range{-kInf, 1.0f}, Range{0.0f, kInf}}) {
      const QuantizerLevels levels = eqprop::quantizer_levels(8, convention, poisoned.lo, poisoned.hi);
      for (Rounding rounding : {Rounding::nearest, Rounding::stochastic}) {
        for (float x : {0.0f, 0.5f, -3.0f, 1e30f}) CHECK(bits_of(eqprop::quantize(x, levels, rounding, 0.0f, 0.5f)) == canonical);
        CHECK(bits_of(eqprop::quantize(payload_nan, levels, rounding, 0.0f, 0.5f)) == bits_of(payload_nan));
      }
    }
  }
  // A range too wide for a float step is non-finite too.
  const QuantizerLevels huge = eqprop::quantizer_levels(8, LevelConvention::asymmetric, -FLT_MAX, FLT_MAX);
  CHECK(bits_of(nearest(1.0f, huge)) == canonical);
}

TEST_CASE("quantizer: b = 1 has the two ends (asymmetric) or the single level 0 (symmetric)") {
  const QuantizerLevels two = eqprop::quantizer_levels(1, LevelConvention::asymmetric, -0.5f, 1.5f);
  CHECK(two.step == 2.0f);
  CHECK(nearest(-0.4f, two) == -0.5f);
  CHECK(nearest(0.49f, two) == -0.5f);
  CHECK(nearest(0.5f, two) == -0.5f);  // the tie goes to the even code, 0
  CHECK(nearest(0.51f, two) == 1.5f);
  CHECK(nearest(1.5f, two) == 1.5f);
  CHECK(nearest(100.0f, two) == 1.5f);
  CHECK(eqprop::quantize(0.5f, two, Rounding::stochastic, 0.0f, 0.49f) == 1.5f);  // frac 0.5 > u
  CHECK(eqprop::quantize(0.5f, two, Rounding::stochastic, 0.0f, 0.5f) == -0.5f);
  const QuantizerLevels zero = eqprop::quantizer_levels(1, LevelConvention::symmetric, -1.0f, 1.0f);
  for (float x : {-5.0f, -1.0f, -0.3f, 0.0f, 0.3f, 1.0f, 5.0f}) CHECK(nearest(x, zero) == 0.0f);
  CHECK(std::isnan(nearest(kNaN, zero)));
}

TEST_CASE("quantizer: b = 16 resolves 65536 levels, with the exact step") {
  const QuantizerLevels levels = eqprop::quantizer_levels(16, LevelConvention::asymmetric, 0.0f, 65535.0f);
  CHECK(levels.step == 1.0f);
  CHECK(levels.code_max == 65535.0f);
  for (int k = 0; k <= 65535; k += 1) {
    const float x = static_cast<float>(k);
    if (nearest(x + 0.25f, levels) != x || nearest(x - 0.25f, levels) != (k == 0 ? 0.0f : x)) {
      FAIL_CHECK("level " << k << " not the nearest of its neighbourhood");
      break;
    }
  }
  const QuantizerLevels sym = eqprop::quantizer_levels(16, LevelConvention::symmetric, -32767.0f, 32767.0f);
  CHECK(sym.step == 1.0f);
  CHECK(sym.code_max == 32767.0f);
  CHECK(sym.code_min == -32767.0f);
  CHECK(nearest(-40000.0f, sym) == -32767.0f);
  CHECK(nearest(12345.4f, sym) == 12345.0f);
}

TEST_CASE("quantizer: a zero-width range is one level, a calibrated constant tensor is unchanged") {
  for (float c : {0.0f, 0.25f, -3.0f}) {
    const QuantizerLevels levels = eqprop::quantizer_levels(8, LevelConvention::asymmetric, c, c);
    for (float x : {c, c + 1.0f, c - 1.0f, 1e30f, -1e30f}) CHECK(nearest(x, levels) == c);
    CHECK(eqprop::quantize(c, levels, Rounding::stochastic, 0.0f, 0.9f) == c);
    CHECK(std::isnan(nearest(kNaN, levels)));
    // The symmetric convention over [c, c] has the levels -|c|, 0, |c|.
    const QuantizerLevels sym = eqprop::quantizer_levels(8, LevelConvention::symmetric, c, c);
    CHECK(nearest(c, sym) == c);
  }
  const QuantizerLevels zero = eqprop::quantizer_levels(8, LevelConvention::symmetric, 0.0f, 0.0f);
  for (float x : {0.0f, 1.0f, -1.0f}) CHECK(nearest(x, zero) == 0.0f);
  // An inverted range (hi < lo) is a single level at lo, not a NaN.
  const QuantizerLevels inverted = eqprop::quantizer_levels(8, LevelConvention::asymmetric, 1.0f, 0.0f);
  CHECK(nearest(0.5f, inverted) == 1.0f);
}

TEST_CASE("quantizer: 8 bits asymmetric on [0, 1] reproduce the loader's 8-bit pixels bit for bit") {
  // engine/batch_loader.cpp: x = p * (1 / 255) for unit normalization.
  const QuantizerLevels levels = eqprop::quantizer_levels(8, LevelConvention::asymmetric, 0.0f, 1.0f);
  const float scale = 1.0f / 255.0f;
  int changed = 0;
  for (int p = 0; p < 256; ++p) {
    const float x = static_cast<float>(p) * scale;
    if (bits_of(nearest(x, levels)) != bits_of(x)) ++changed;
  }
  CHECK(changed == 0);
}

TEST_CASE("quantizer: stochastic rounding is unbiased, moves only to the two neighbours, keeps levels") {
  // Draws over elements (one step) and over steps (one element): both must be
  // unbiased. N = 200000 draws per case; the estimator's sigma is
  // step * sqrt(f (1 - f) / N) for a value a fraction f of a step above a level.
  const int draws = 200000;
  const QuantizerLevels levels = eqprop::quantizer_levels(4, LevelConvention::asymmetric, 0.0f, 1.5f);  // step 0.1
  for (int base : {0, 7, 14}) {
    for (double fraction : {0.001, 0.1, 0.25, 0.5, 0.77, 0.999}) {
      const float level = eqprop::quantizer_value(levels, static_cast<float>(base));
      const float x = static_cast<float>(level + fraction * levels.step);
      const double exact = (double(x) - level) / levels.step;  // the fraction x really has
      const float up = eqprop::quantizer_value(levels, static_cast<float>(base + 1));
      for (bool over_steps : {false, true}) {
        CAPTURE(base);
        CAPTURE(fraction);
        CAPTURE(over_steps);
        double sum = 0.0;
        int strays = 0;
        for (int n = 0; n < draws; ++n) {
          const std::uint64_t index = over_steps ? 12345u : static_cast<std::uint64_t>(n);
          const std::uint32_t step = over_steps ? static_cast<std::uint32_t>(n) : 3u;
          const float u = eqprop::rounding_uniform(1, eqprop::RngStream::dac_rounding, index, step);
          const float q = eqprop::quantize(x, levels, Rounding::stochastic, 0.0f, u);
          if (q != level && q != up) ++strays;
          sum += q;
        }
        CHECK(strays == 0);
        const double sigma = levels.step * std::sqrt(exact * (1.0 - exact) / draws);
        check_within_sigmas("mean of stochastic rounding", sum / draws, double(level) + exact * levels.step, sigma);
      }
    }
  }
  // A value on a level never moves; a value beyond the range always clips.
  for (int n = 0; n < 1000; ++n) {
    const float u = eqprop::rounding_uniform(1, eqprop::RngStream::dac_rounding, n, 0);
    for (float code = 0.0f; code <= levels.code_max; code += 1.0f) {
      const float level = eqprop::quantizer_value(levels, code);
      if (eqprop::quantize(level, levels, Rounding::stochastic, 0.0f, u) != level) {
        FAIL_CHECK("level " << code << " moved under stochastic rounding");
        return;
      }
    }
    CHECK(eqprop::quantize(1.55f, levels, Rounding::stochastic, 0.0f, u) == 1.5f);
    CHECK(eqprop::quantize(-0.05f, levels, Rounding::stochastic, 0.0f, u) == 0.0f);
  }
}

TEST_CASE("quantizer: readout noise enters before rounding, in LSB") {
  const QuantizerLevels levels = eqprop::quantizer_levels(8, LevelConvention::asymmetric, 0.0f, 255.0f);
  CHECK(eqprop::quantize(10.2f, levels, Rounding::nearest, 0.4f, 0.0f) == 11.0f);   // 10.6 -> 11
  CHECK(eqprop::quantize(10.2f, levels, Rounding::nearest, -0.8f, 0.0f) == 9.0f);   // 9.4 -> 9
  CHECK(eqprop::quantize(254.8f, levels, Rounding::nearest, 3.0f, 0.0f) == 255.0f); // clipped after the noise
  CHECK(eqprop::quantize(0.0f, levels, Rounding::nearest, -3.0f, 0.0f) == 0.0f);
}

TEST_CASE("quantizer: QuantizerSpec reads a calibrated range from memory, and bits 0 is off") {
  const float range[2] = {-0.5f, 0.25f};
  eqprop::QuantizerSpec spec{8, LevelConvention::symmetric, Rounding::nearest, -1.0f, 1.0f, range};
  CHECK(spec.enabled());
  const QuantizerLevels calibrated = spec.levels();
  CHECK(calibrated.value_max == 0.5f);  // r = max(|-0.5|, |0.25|)
  CHECK(calibrated.step == 0.5f / 127.0f);
  spec.range = nullptr;
  CHECK(spec.levels().value_max == 1.0f);
  CHECK_FALSE(eqprop::quantizer_off().enabled());
}
