#include "engine/oscillator_ising_strategy.h"

#include "kernels/oscillator_ising.h"

namespace eqprop {

OscillatorIsingStrategy::OscillatorIsingStrategy(const SolverSetup& setup, float final_injection, float dt)
    : SolverStrategy(setup),
      final_injection_(final_injection),
      dt_(dt),
      phases_(state_buffer()),
      cosines_(state_buffer()),
      sines_(state_buffer()),
      signs_(state_buffer()),
      sin_fields_(state_buffer()) {}

void OscillatorIsingStrategy::start_round(std::uint32_t round) {
  run_over_states(OimInitOp{phases_.data(), cosines_.data(), sines_.data(), signs_.data(), setup_.seed,
                           first_state_index(), round});
}

void OscillatorIsingStrategy::advance_slice(const Slice& slice, int first_step, int last_step) {
  float* phases = slice.of(phases_);
  float* cosines = slice.of(cosines_);
  float* sines = slice.of(sines_);
  float* signs = slice.of(signs_);
  float* cos_fields = slice.of(fields_);
  float* sin_fields = slice.of(sin_fields_);
  for (int k = first_step; k < last_step; ++k) {
    coupling_field(slice.rows, cosines, cos_fields);
    coupling_field(slice.rows, sines, sin_fields);
    const float injection = final_injection_ * static_cast<float>(double(k + 1) / setup_.steps);
    setup_.backend.run(OimStepOp{phases, cosines, sines, signs, cos_fields, sin_fields, injection, dt_},
                       static_cast<std::int64_t>(slice.rows) * setup_.spins);
  }
}

}  // namespace eqprop
