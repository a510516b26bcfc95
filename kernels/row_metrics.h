// Per-sample loss and correctness of a prediction: the mean-squared cost
// C = 1/2 ||s_out - y||^2 of the energy's output layer, or the cross-entropy of a
// softmax read-out. One row per index; the class count is small.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

enum class CostKind : int { mse = 0, cross_entropy = 1 };

// Upper bound on the classes a read-out may have (checked by the config).
constexpr int kMaxClasses = 1024;

struct RowMetricsOp {
  static constexpr Determinism determinism = Determinism::ulp_bounded;
  const float* outputs;  // (batch, classes): output states (mse) or logits (cross_entropy)
  const float* target;   // (batch, classes) one-hot
  float* loss;           // (batch)
  float* correct;        // (batch) 1 if argmax(outputs) is the target class, else 0
  CostKind cost;
  std::int32_t classes;
  const float* bias;  // (classes) added to the outputs (the read-out bias), or null

  EQ_HD float output(const float* row_outputs, std::int32_t k) const {
    return row_outputs[k] + (bias ? bias[k] : 0.0f);
  }

  EQ_HD void operator()(std::int64_t row) const {
    const float* raw = outputs + row * classes;
    const float* y = target + row * classes;
    std::int32_t predicted = 0, label = 0;
    for (std::int32_t k = 1; k < classes; ++k) {
      if (output(raw, k) > output(raw, predicted)) predicted = k;
      if (y[k] > y[label]) label = k;
    }
    float value = 0.0f;
    if (cost == CostKind::mse) {
      for (std::int32_t k = 0; k < classes; ++k) value += 0.5f * (output(raw, k) - y[k]) * (output(raw, k) - y[k]);
    } else {
      const float max_logit = output(raw, predicted);
      float total = 0.0f;
      for (std::int32_t k = 0; k < classes; ++k) total += expf(output(raw, k) - max_logit);
      value = logf(total) + (max_logit - output(raw, label));  // exact when the label wins
    }
    loss[row] = value;
    correct[row] = predicted == label ? 1.0f : 0.0f;
  }
};

}  // namespace eqprop
