// out = alpha * x + beta * y, elementwise; e.g. s+ - s- before a single update GEMM.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

struct AxpbyOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* x;  // (count)
  const float* y;  // (count)
  float* out;      // (count); may alias x or y
  float alpha;
  float beta;

  EQ_HD void operator()(std::int64_t i) const { out[i] = alpha * x[i] + beta * y[i]; }
};

}  // namespace eqprop
