#include "engine/solver_strategy.h"

namespace eqprop {

SolverStrategy::SolverStrategy(const SolverSetup& setup)
    : setup_(setup), fields_(setup.backend, std::size_t(setup.replicas) * setup.spins) {}

void SolverStrategy::advance(int first_step, int last_step) {
  for_each_slice([&](const Slice& slice) { advance_slice(slice, first_step, last_step); });
}

void SolverStrategy::compute_fields() {
  for_each_slice(
      [&](const Slice& slice) { coupling_field(slice.rows, spins() + slice.offset, fields_.data() + slice.offset); });
}

void SolverStrategy::coupling_field(int rows, const float* in, float* out) const {
  const int n = setup_.spins;
  setup_.backend.gemm(Transpose::no, Transpose::no, rows, n, n, 1.0f, in, n, setup_.couplings, n, 0.0f, out, n);
}

}  // namespace eqprop
