// Fills an array from the counter-based generator: element i gets the draw keyed on
// (seed, stream, first_index + i, step), whatever backend or launch shape runs it.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/philox.h"

namespace eqprop {

enum class Distribution : int { uniform = 0, normal = 1 };

struct FillRandomOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  float* out;  // (count)
  std::uint64_t seed;
  RngStream stream;
  std::uint64_t first_index;
  std::uint32_t step;
  Distribution distribution;
  float scale;   // uniform: [offset, offset + scale); normal: standard deviation
  float offset;  // normal: mean

  EQ_HD void operator()(std::int64_t i) const {
    const Philox4 words = random_words(seed, stream, first_index + static_cast<std::uint64_t>(i), step);
    const float unit = distribution == Distribution::uniform ? uniform_from_word(words.v[0])
                                                             : normal_from_words(words.v[0], words.v[1]);
    out[i] = offset + scale * unit;
  }
};

}  // namespace eqprop
