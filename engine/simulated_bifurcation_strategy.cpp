#include "engine/simulated_bifurcation_strategy.h"

#include "kernels/fused_sb_block.h"

namespace eqprop {

SimulatedBifurcationStrategy::SimulatedBifurcationStrategy(const SolverSetup& setup, const SbParameters& parameters)
    : SolverStrategy(setup),
      parameters_(parameters),
      x_(state_buffer()),
      y_(state_buffer()),
      signs_(state_buffer()) {}

void SimulatedBifurcationStrategy::start_round(std::uint32_t round) {
  run_over_states(SbInitOp{x_.data(), y_.data(), signs_.data(), setup_.seed, first_state_index(), round,
                           parameters_.initial_amplitude});
}

void SimulatedBifurcationStrategy::advance_slice(const Slice& slice, int first_step, int last_step) {
  const int n = setup_.spins;
  float* positions = slice.of(x_);
  float* momenta = slice.of(y_);
  float* signs = slice.of(signs_);
  float* fields = slice.of(fields_);
  const float* gemm_input = parameters_.discrete ? signs : positions;
  for (int k = first_step; k < last_step; ++k) {
    coupling_field(slice.rows, gemm_input, fields);
    // sign(x): dSB's next GEMM input at every step; bSB's only for spins().
    const bool write_signs = parameters_.discrete || k + 1 == last_step;
    setup_.backend.run(SbStepOp{positions, momenta, fields, write_signs ? signs : nullptr,
                                sb_detuning(parameters_.a0, k, setup_.steps), parameters_.a0, parameters_.c0,
                                parameters_.dt, n},
                       static_cast<std::int64_t>(slice.rows) * n);
  }
}

void FusedSimulatedBifurcationStrategy::advance(int first_step, int last_step) {
  const int n = setup_.spins;
  setup_.backend.run_blocks(FusedSbBlock{setup_.couplings, x_.data(), y_.data(), signs_.data(), n, first_step,
                                         last_step, setup_.steps, parameters_.a0, parameters_.c0, parameters_.dt,
                                         parameters_.discrete},
                            setup_.replicas, FusedSbLaunchPolicy::threads_per_block(n));
}

void FusedSimulatedBifurcationStrategy::compute_fields() {
  coupling_field(setup_.replicas, signs_.data(), fields_.data());
}

}  // namespace eqprop
