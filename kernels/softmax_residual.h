// Softmax read-out residual for the cross-entropy variant of EP (Laborieux et al.
// 2021, §3): the read-out p = softmax(logits) is not part of the energy; the cost
// l = CE(p, y) enters F = E + beta * l, and dl/dlogits = p - y.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Numerically stable softmax of one row, written into out.
EQ_HD void softmax_row(const float* logits, float* out, std::int32_t classes) {
  float max_logit = logits[0];
  for (std::int32_t k = 1; k < classes; ++k) max_logit = logits[k] > max_logit ? logits[k] : max_logit;
  float total = 0.0f;
  for (std::int32_t k = 0; k < classes; ++k) {
    out[k] = expf(logits[k] - max_logit);
    total += out[k];
  }
  for (std::int32_t k = 0; k < classes; ++k) out[k] /= total;
}

// residual = softmax(logits) - target, one row per index (thread mapping: one row
// per thread; rows are short, classes ~10).
struct SoftmaxResidualOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  const float* logits;  // (batch, classes)
  const float* target;  // (batch, classes) one-hot
  float* residual;      // (batch, classes); may alias logits
  std::int32_t classes;
  const float* bias;    // (classes) added to the logits, or null

  EQ_HD void operator()(std::int64_t row) const {
    const std::int64_t offset = row * classes;
    for (std::int32_t k = 0; k < classes; ++k)
      residual[offset + k] = logits[offset + k] + (bias ? bias[k] : 0.0f);
    softmax_row(residual + offset, residual + offset, classes);
    for (std::int32_t k = 0; k < classes; ++k) residual[offset + k] -= target[offset + k];
  }
};

}  // namespace eqprop
