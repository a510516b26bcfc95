// A captured training step writes its per-sample metrics (loss, correctness, free
// energy) into fixed arrays; this op moves them into the step's slot of the
// trainer's queue of unread metrics, the slot read from the step-parameter block
// (kernels/step_parameters.h) when the op runs. So one recorded step serves every
// slot; an uncaptured step writes into its slot directly and does not run it.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// Thread mapping: one value per index over [0, 3 batch): array index / batch,
// sample index % batch. A copy: bit-exact.
struct MetricSlotCopyOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  static constexpr int kArrays = 3;
  const float* source[kArrays];  // (batch) each
  float* queue[kArrays];         // (slots, stride) each
  const std::int32_t* slot;      // (1) the step's slot, on the device
  std::int64_t batch;
  std::int64_t stride;  // values per slot, >= batch

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t array = i / batch, sample = i - array * batch;
    queue[array][static_cast<std::int64_t>(*slot) * stride + sample] = source[array][sample];
  }
};

}  // namespace eqprop
