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

  EQ_HD void operator()(std::int64_t row) const {
    const float* s = states + row * units;
    const float* p = previous + row * units;
    float largest = accumulate ? residual[row] : 0.0f;
    for (std::int32_t u = 0; u < units; ++u) largest = RowMaxOrNan{}(largest, change(s[u], p[u]));
    residual[row] = largest;
    if (readout) adc.read_run(s, readout + row * units, readout_first + row * units, units);
  }
};

// RowMaxChangeOp as a block body (kernels/row_reduction.h): block `row` folds the
// row's changes over the fixed tree of row_reduction.h, and reads out the units it
// visits. A maximum does not depend on the order, so without NaN this is bit-exact
// against RowMaxChangeOp's serial loop (and the CPU backend keeps the op); with a
// NaN both give a NaN (not necessarily the same payload). The readout is the same
// per-element function of (value, element index): bit-exact. Launch: one block per
// row, RowReductionLaunchPolicy::threads_per_block(units) threads, shared_bytes().
struct RowMaxChangeBlock {
  RowMaxChangeOp op;
  // a maximum: bit-exact on every backend and block size, and against RowMaxChangeOp.
  static constexpr Determinism determinism = Determinism::bit_exact;

  std::size_t shared_bytes() const { return std::size_t(row_reduction_slots(op.units)) * sizeof(float); }

  EQ_HD RowReductionPhases phases(void* shared_memory) const {
    return {static_cast<float*>(shared_memory), op.units, row_reduction_slots(op.units)};
  }

  template <class Context>
  EQ_HD void operator()(Context& ctx) const {
    const std::int64_t row = ctx.block();
    const float* s = op.states + row * op.units;
    const float* p = op.previous + row * op.units;
    float* residual = op.residual + row;
    const RowMaxChangeOp& self = op;
    const bool accumulate = op.accumulate;
    phases(ctx.shared_memory())
        .run(
            ctx, 0.0f, [&](std::int32_t u) { return self.change(s[u], p[u]); }, RowMaxOrNan{},
            [&](std::int32_t first, std::int32_t end) {
              if (self.readout)
                self.adc.read_run(s + first, self.readout + row * self.units + first,
                                  self.readout_first + row * self.units + first, end - first);
            },
            [&](float largest) { *residual = accumulate ? RowMaxOrNan{}(*residual, largest) : largest; });
  }
};

}  // namespace eqprop
