// Sums over the replicas of each sample: with R replicas per sample stored as
// consecutive rows of (batch * R, units) arrays,
//   out[b, u] = alpha * sum_r a[b R + r, u] + beta * sum_r c[b R + r, u].
// The Ising network (models/ising_network.h) uses it for s_a - s_b summed over the
// replicas of a sample before the input layer's update GEMM (the input is one row
// per sample), and for the mean energy of a sample's replicas (units = 1).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one output element per index, a serial sum over the replicas:
// bit-exact on every backend.
struct ReplicaSumOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* a;  // (batch * replicas, units)
  const float* c;  // (batch * replicas, units), or null
  float* out;      // (batch, units); must not alias a or c
  float alpha;
  float beta;
  std::int32_t replicas;
  std::int32_t units;

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t b = i / units, u = i % units;
    float sum_a = 0.0f, sum_c = 0.0f;
    for (std::int32_t r = 0; r < replicas; ++r) {
      const std::int64_t j = (b * replicas + r) * units + u;
      sum_a += a[j];
      if (c) sum_c += c[j];
    }
    out[i] = alpha * sum_a + beta * sum_c;
  }
};

}  // namespace eqprop
