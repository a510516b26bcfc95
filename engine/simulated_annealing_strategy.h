// Simulated annealing (Metropolis sweeps, kernels/metropolis_sweep.h; Kirkpatrick,
// Gelatt & Vecchi 1983) as a solver strategy (engine/solver_strategy.h): every
// replica sweeps its spins in order, keeping its local fields F = S J up to date
// after each flip, while the inverse temperature rises geometrically from
// beta_start to beta_end over the round.
#pragma once

#include "engine/solver_strategy.h"

namespace eqprop {

class SimulatedAnnealingStrategy final : public SolverStrategy {
 public:
  SimulatedAnnealingStrategy(const SolverSetup& setup, float beta_start, float beta_end);
  void start_round(std::uint32_t round) override;
  const float* spins() const override { return spins_.data(); }

 private:
  // The local fields are computed afresh at step 0 and then updated flip by flip;
  // a later range starts from the F of the last compute_fields(), which also
  // resets the drift of the incremental updates for non-integer J.
  void advance_slice(const Slice& slice, int first_step, int last_step) override;
  // The inverse temperature of sweep `step`: geometric from beta_start to beta_end.
  float beta(int step) const;

  const float beta_start_, beta_end_;
  DeviceBuffer<float> spins_;  // (R, n) +1 / -1
  std::uint32_t round_ = 0;
};

}  // namespace eqprop
