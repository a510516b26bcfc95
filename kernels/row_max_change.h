// The convergence residual of every system: the largest change of any of its units
// in one step, max_u |s_u - s_u^previous|, accumulated over the layers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/adc_read.h"
#include "kernels/hostdevice.h"
#include "kernels/row_reduction.h"

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

  // |s - p|, around the circle where periodic.
  EQ_HD float change(float s, float p) const {
    float d = s > p ? s - p : p - s;
    if (period > 0.0f && d > 0.5f * period && d <= period) d = period - d;
    return d;
  }

  // The change of unit u in row `row`.
  EQ_HD float change_at(std::int64_t row, std::int32_t u) const {
    const std::int64_t i = row * units + u;
    return change(states[i], previous[i]);
  }
  // The ADC reading of units [first, end) of row `row`, where there is a readout.
  EQ_HD void read_out(std::int64_t row, std::int32_t first, std::int32_t end) const {
    const std::int64_t i = row * units + first;
    if (readout) adc.read_run(states + i, readout + i, readout_first + i, end - first);
  }

  EQ_HD void operator()(std::int64_t row) const {
    float largest = accumulate ? residual[row] : 0.0f;
    for (std::int32_t u = 0; u < units; ++u) largest = RowMaxOrNan{}(largest, change_at(row, u));
    residual[row] = largest;
    read_out(row, 0, units);
  }

  // RowMaxChangeBlock: a maximum, bit-exact on every backend and block size, and
  // against the serial loop above.
  static constexpr Determinism block_determinism = Determinism::bit_exact;

  // Block `row` of RowMaxChangeBlock.
  template <class Context>
  EQ_HD void reduce_block_row(Context& ctx, std::int64_t row, const RowReductionPhases& phases) const {
    phases.run(
        ctx, 0.0f, [&](std::int32_t u) { return change_at(row, u); }, RowMaxOrNan{},
        [&](std::int32_t first, std::int32_t end) { read_out(row, first, end); },
        [&](float largest) { residual[row] = accumulate ? RowMaxOrNan{}(residual[row], largest) : largest; });
  }
};

// RowMaxChangeOp as a block body: block `row` folds the row's changes over the
// fixed tree of row_reduction.h, and reads out the units it visits. A maximum does
// not depend on the order, so without NaN this is bit-exact against
// RowMaxChangeOp's serial loop (and the CPU backend keeps the op); with a NaN both
// give a NaN (not necessarily the same payload). The readout is the same
// per-element function of (value, element index): bit-exact.
using RowMaxChangeBlock = RowReductionBlock<RowMaxChangeOp>;

}  // namespace eqprop
