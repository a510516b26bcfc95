// The oscillator Ising machine (kernels/oscillator_ising.h; Wang & Roychowdhury,
// UCNC 2019) as a solver strategy (engine/solver_strategy.h): every spin is a
// phase, coupled through two GEMMs per step on cos phi and sin phi, with a
// sub-harmonic injection that ramps linearly to its final strength over the round
// and locks each phase to 0 or pi; the spins are sign(cos phi).
#pragma once

#include "engine/solver_strategy.h"

namespace eqprop {

class OscillatorIsingStrategy final : public SolverStrategy {
 public:
  // final_injection: K at the last step of a round; dt: the Euler step.
  OscillatorIsingStrategy(const SolverSetup& setup, float final_injection, float dt);
  void start_round(std::uint32_t round) override;
  const float* spins() const override { return signs_.data(); }

 private:
  void advance_slice(const Slice& slice, int first_step, int last_step) override;

  const float final_injection_, dt_;
  // (R, n) phi, cos phi, sin phi, sign(cos phi), and J sin phi (J cos phi is in fields_).
  DeviceBuffer<float> phases_, cosines_, sines_, signs_, sin_fields_;
};

}  // namespace eqprop
