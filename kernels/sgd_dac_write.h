// The optimizer step and the weight DAC in one pass over a parameter tensor: a
// physical EP machine programs each weight right after the update computes it
// (DESIGN.md §1, hardware non-idealities), so the update and the write share the
// element's load and store instead of being two passes over memory.
//
// With a fixed DAC range a written value depends on its own element alone:
// SgdDacWriteOp does update and write in one pass. A calibrated range is the
// [min, max] of the whole updated tensor, which no element knows until every
// element is updated: SgdRangeOp fuses the update with the first pass of the range
// reduction (kernels/range_calibration.h), the remaining passes reduce the
// partials (count / 64 values, then / 64 again), and DacWriteOp writes. Either way
// the values are bit-identical to SgdMomentumOp followed by the separate
// calibration and DacWriteOp, element by element.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/dac_write.h"
#include "kernels/hostdevice.h"
#include "kernels/range_calibration.h"
#include "kernels/sgd_momentum.h"

namespace eqprop {

// Thread mapping: one element per index; no reductions; the determinism of
// DacWriteOp (bit-exact without programming noise and mismatch).
// sgd.weights is the optimizer's copy and dac.source must be the same array.
struct SgdDacWriteOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  SgdMomentumOp sgd;
  DacWriteOp dac;

  EQ_HD void operator()(std::int64_t i) const {
    sgd(i);
    dac(i);
  }
  // CPU: the DAC's chunks, each updated and then written while it is in cache.
  std::int64_t row_count(std::int64_t n) const { return dac.row_count(n); }
  void row(std::int64_t r) const {
    const std::int64_t begin = r * kHardwareChunk;
    const std::int64_t end = begin + kHardwareChunk < dac.count ? begin + kHardwareChunk : dac.count;
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) sgd(i);
    dac.row(r);
  }
};

// The update of every element, and the first calibration pass over the updated
// values: min_out[p], max_out[p] over elements p, p + parts, p + 2 parts, ... <
// count (MinMaxReduceOp's partition, so the reduction continues unchanged).
// Thread mapping: one part per index, strided so neighbouring GPU threads touch
// neighbouring elements; bit-exact (min and max do not round).
struct SgdRangeOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  SgdMomentumOp sgd;
  float* min_out;  // (parts)
  float* max_out;  // (parts)
  std::int64_t count;
  std::int64_t parts;  // range_calibration_parts(count); the op runs over [0, parts)

  EQ_HD void operator()(std::int64_t p) const {
    sgd(p);
    float lo = sgd.weights[p], hi = lo;
    for (std::int64_t j = p + parts; j < count; j += parts) {
      sgd(j);
      lo = nan_propagating_min(lo, sgd.weights[j]);
      hi = nan_propagating_max(hi, sgd.weights[j]);
    }
    min_out[p] = lo;
    max_out[p] = hi;
  }
};

}  // namespace eqprop
