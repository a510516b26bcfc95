// The write or read number that keys a hardware draw (programming noise, ADC noise,
// stochastic rounding; kernels/analog_noise.h): a value fixed when the op is made,
// or, in a recorded training step (DESIGN.md, "Captured training steps"), the
// step's number read from the step-parameter block when the kernel runs, plus a
// fixed offset. A replayed step then draws afresh, as a direct step does.
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"

namespace eqprop {

struct DrawCount {
  std::uint32_t offset = 0;
  const std::uint32_t* step = nullptr;  // device: the step's number; null: offset alone

  EQ_HD DrawCount() {}
  // Implicit: a plain count is the common case (evaluation, programming, tests).
  EQ_HD DrawCount(std::uint32_t count) : offset(count) {}
  EQ_HD DrawCount(const std::uint32_t* step_number, std::uint32_t plus) : offset(plus), step(step_number) {}

  EQ_HD std::uint32_t value() const { return step ? *step + offset : offset; }
};

}  // namespace eqprop
