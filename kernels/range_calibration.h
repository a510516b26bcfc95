// Per-tensor range calibration of a quantizer (kernels/quantizer.h): the range of a
// tensor is [min x, max x] over all its elements at the time of the conversion; the
// symmetric convention then takes r = max(|min|, |max|) = max|x|. Computed on the
// device by passes of MinMaxReduceOp, each reducing by a fan-in of
// kRangeCalibrationFanIn, so no value returns to the host (engine/hardware_model.cpp
// drives the passes; the quantizing op reads the [min, max] pair from the device).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Elements each index of a pass reduces: 400k weights take 4 passes (6250, 98, 2, 1).
constexpr std::int64_t kRangeCalibrationFanIn = 64;

// Indices of the pass that reduces `count` values.
inline std::int64_t range_calibration_parts(std::int64_t count) {
  return (count + kRangeCalibrationFanIn - 1) / kRangeCalibrationFanIn;
}

// NaN-propagating min and max: once a NaN is seen it stays, so a tensor holding a
// NaN calibrates to a NaN range and its quantized values are NaN (divergence shows).
EQ_HD float nan_propagating_min(float m, float v) { return (v < m || v != v) ? v : m; }
EQ_HD float nan_propagating_max(float m, float v) { return (v > m || v != v) ? v : m; }

// One pass: min_out[p] = min of min_source[j], max_out[p] = max of max_source[j]
// over j = p, p + parts, p + 2 parts, ... < count. Thread mapping: one part per index;
// the strided partition makes neighbouring GPU threads read neighbouring addresses.
// Determinism: bit-exact on every backend and launch shape (the partition and the
// order within a part depend only on count and parts; min and max do not round).
struct MinMaxReduceOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* min_source;  // (count)
  const float* max_source;  // (count); the same array as min_source in the first pass
  float* min_out;           // (parts)
  float* max_out;           // (parts)
  std::int64_t count;
  std::int64_t parts;  // the op runs over [0, parts); parts <= count

  EQ_HD void operator()(std::int64_t p) const {
    float lo = min_source[p], hi = max_source[p];
    for (std::int64_t j = p + parts; j < count; j += parts) {
      lo = nan_propagating_min(lo, min_source[j]);
      hi = nan_propagating_max(hi, max_source[j]);
    }
    min_out[p] = lo;
    max_out[p] = hi;
  }
};

}  // namespace eqprop
