// The read-out of the Ising network (models/ising_network.h): per sample, the mean
// m_k of the output spins of class k over its G spins and R replicas, the predicted
// class argmax_k m_k (ties go to the lowest class), and the cost
//   C = 1/(2G) sum_j (s_j - t_k(j))^2 = sum_k (1 - t_k m_k),  t_k = 2 y_k - 1,
// the nudging cost of kernels/ising_layer_update.h averaged over the replicas (it is
// linear in the spins, so the cost of the mean is the mean of the costs).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one sample per index, serial loops: bit-exact on every backend.
struct IsingReadoutOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* outputs;  // (batch * replicas, classes * spins_per_class) output spins
  const float* target;   // (batch, classes) one-hot
  float* loss;           // (batch)
  float* correct;        // (batch) 1 if the prediction is the target class, else 0
  std::int32_t classes;
  std::int32_t spins_per_class;
  std::int32_t replicas;

  EQ_HD float class_mean(std::int64_t b, std::int32_t k) const {
    const std::int32_t width = classes * spins_per_class;
    float sum = 0.0f;
    for (std::int32_t r = 0; r < replicas; ++r) {
      const float* row = outputs + (b * replicas + r) * width + k * spins_per_class;
      for (std::int32_t j = 0; j < spins_per_class; ++j) sum += row[j];
    }
    return sum / static_cast<float>(replicas * spins_per_class);
  }

  EQ_HD void operator()(std::int64_t b) const {
    const float* y = target + b * classes;
    std::int32_t predicted = 0, label = 0;
    float best = class_mean(b, 0), cost = 0.0f;
    for (std::int32_t k = 0; k < classes; ++k) {
      const float m = class_mean(b, k);
      if (m > best) best = m, predicted = k;
      if (y[k] > y[label]) label = k;
      cost += 1.0f - (2.0f * y[k] - 1.0f) * m;
    }
    loss[b] = cost;
    correct[b] = predicted == label ? 1.0f : 0.0f;
  }
};

}  // namespace eqprop
