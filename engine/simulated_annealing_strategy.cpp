#include "engine/simulated_annealing_strategy.h"

#include <cmath>

#include "kernels/metropolis_sweep.h"
#include "kernels/random_spins.h"

namespace eqprop {

SimulatedAnnealingStrategy::SimulatedAnnealingStrategy(const SolverSetup& setup, float beta_start, float beta_end)
    : SolverStrategy(setup), beta_start_(beta_start), beta_end_(beta_end), spins_(state_buffer()) {}

void SimulatedAnnealingStrategy::start_round(std::uint32_t round) {
  round_ = round;
  run_over_states(RandomSpinsOp{spins_.data(), setup_.seed, first_state_index(), round});
}

float SimulatedAnnealingStrategy::beta(int step) const {
  const int steps = setup_.steps;
  const double progress = steps > 1 ? double(step) / (steps - 1) : 1.0;
  return static_cast<float>(beta_start_ * std::pow(double(beta_end_) / beta_start_, progress));
}

void SimulatedAnnealingStrategy::advance_slice(const Slice& slice, int first_step, int last_step) {
  float* spins = slice.of(spins_);
  float* fields = slice.of(fields_);
  if (first_step == 0) coupling_field(slice.rows, spins, fields);
  const auto first_replica = static_cast<std::uint32_t>(setup_.first_replica + slice.first_replica);
  for (int k = first_step; k < last_step; ++k)
    setup_.backend.run(MetropolisSweepOp{spins, fields, setup_.couplings, beta(k), setup_.seed, std::uint64_t(k),
                                         round_, first_replica, setup_.spins},
                       slice.rows);
}

}  // namespace eqprop
