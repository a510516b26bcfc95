// The convergence residual of every system: the largest change of any of its units
// in one step, max_u |s_u - s_u^previous|, accumulated over the layers.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/adc_read.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one system (row) per index, a serial loop over its units;
// bit-exact on every backend. A NaN state gives a NaN residual (never "converged").
struct RowMaxChangeOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* states;    // (batch, units) after the step
  const float* previous;  // (batch, units) before the step
  float* residual;        // (batch)
  std::int32_t units;
  bool accumulate;        // max with the value already in residual[row]
  // The ADC reading of the states, in the same pass: a convergence check that ends
  // the phase leaves the readout of the final state (LayerStepOp's readout fields).
  float* readout = nullptr;  // (batch, units), or null
  AdcSpec adc{};
  std::int64_t readout_first = 0;
  // > 0 for periodic states (phases): a change is measured around the circle,
  // min(|d|, period - |d|) for |d| <= period, so a wrap from pi to -pi counts as
  // the small step it is.
  float period = 0.0f;

  EQ_HD void operator()(std::int64_t row) const {
    const float* s = states + row * units;
    const float* p = previous + row * units;
    float largest = accumulate ? residual[row] : 0.0f;
    for (std::int32_t u = 0; u < units; ++u) {
      float change = s[u] > p[u] ? s[u] - p[u] : p[u] - s[u];
      if (period > 0.0f && change > 0.5f * period && change <= period) change = period - change;
      largest = (change > largest || change != change) ? change : largest;
    }
    residual[row] = largest;
    if (readout) adc.read_run(s, readout + row * units, readout_first + row * units, units);
  }
};

}  // namespace eqprop
