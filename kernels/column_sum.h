// Bias gradients: a weighted sum over the batch of two (batch, units) arrays,
//   out[j] = scale_a * sum_b a[b, j] + scale_b * sum_b b[b, j],
// e.g. the contrastive bias update (1/2beta) * sum_b (s+ - s-) (DESIGN.md §1).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one column per index, a serial sum over the batch, so the result
// is bit-exact on every backend (the batch is at most a few thousand rows).
struct ColumnSumOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* a;  // (batch, units)
  const float* b;  // (batch, units), or null
  float* out;      // (units)
  float scale_a;
  float scale_b;
  std::int32_t batch;
  std::int32_t units;

  EQ_HD void operator()(std::int64_t column) const {
    float sum_a = 0.0f, sum_b = 0.0f;
    for (std::int32_t r = 0; r < batch; ++r) {
      const std::int64_t i = static_cast<std::int64_t>(r) * units + column;
      sum_a += a[i];
      if (b) sum_b += b[i];
    }
    out[column] = scale_a * sum_a + scale_b * sum_b;
  }
};

}  // namespace eqprop
