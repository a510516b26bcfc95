// Ballistic and discrete simulated bifurcation (kernels/simulated_bifurcation.h;
// Goto et al., Sci. Adv. 7, eabe7953, 2021) as solver strategies
// (engine/solver_strategy.h), on two paths with the same equations, pump schedule
// and initial state:
//  - SimulatedBifurcationStrategy, the GEMM path: per step, F = X J (or sign(X) J
//    for dSB) for all replicas as one GEMM, then SbStepOp; J is read once per step
//    for all replicas, so large problems run at the GEMM's rate;
//  - FusedSimulatedBifurcationStrategy, the fused path (kernels/fused_sb_block.h):
//    one block per replica holding its state in shared memory, a whole range of
//    steps in one launch; every block re-reads J at every step (from L1/L2), but
//    there is no launch or global-memory pass per step: faster for small n on a
//    GPU (engine/maxcut_solver.h, fused_sb_max_spins).
#pragma once

#include "engine/solver_strategy.h"

namespace eqprop {

struct SbParameters {
  float a0;
  float c0;
  float dt;
  float initial_amplitude;  // x, y start uniform in [-amplitude, amplitude)
  bool discrete;            // dSB (field J sign(x)) or bSB (field J x)
};

class SimulatedBifurcationStrategy : public SolverStrategy {
 public:
  SimulatedBifurcationStrategy(const SolverSetup& setup, const SbParameters& parameters);
  void start_round(std::uint32_t round) override;
  const float* spins() const override { return signs_.data(); }

 protected:
  void advance_slice(const Slice& slice, int first_step, int last_step) override;

  const SbParameters parameters_;
  DeviceBuffer<float> x_, y_, signs_;  // (R, n) positions, momenta, sign(x)
};

class FusedSimulatedBifurcationStrategy final : public SimulatedBifurcationStrategy {
 public:
  using SimulatedBifurcationStrategy::SimulatedBifurcationStrategy;
  void advance(int first_step, int last_step) override;
  // One GEMM over all replicas: the fused launch already spans them.
  void compute_fields() override;
};

}  // namespace eqprop
