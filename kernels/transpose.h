// out = in^T for a row-major (rows, columns) matrix: e.g. the copy of a coupling
// that lets the fused relaxation (kernels/fused_relaxation_block.h) read the
// feedback through W^T row by row, as it reads the drive through W.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one index per element of `in`, read in order (coalesced); the
// writes stride by rows.
struct TransposeOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* in;  // (rows, columns)
  float* out;       // (columns, rows); must not alias in
  std::int32_t rows;
  std::int32_t columns;

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t row = i / columns, column = i % columns;
    out[column * rows + row] = in[i];
  }
};

}  // namespace eqprop
