#include "engine/oscillator_ising_strategy.h"

#include "kernels/oscillator_ising.h"

namespace eqprop {

OscillatorIsingStrategy::OscillatorIsingStrategy(const SolverSetup& setup, float final_injection, float dt)
    : SolverStrategy(setup),
      final_injection_(final_injection),
      dt_(dt),
      phases_(setup.backend, state_count()),
      cosines_(setup.backend, state_count()),
      sines_(setup.backend, state_count()),
      signs_(setup.backend, state_count()),
      sin_fields_(setup.backend, state_count()) {}

void OscillatorIsingStrategy::start_round(std::uint32_t round) {
  setup_.backend.run(OimInitOp{phases_.data(), cosines_.data(), sines_.data(), signs_.data(), setup_.seed, 0, round},
                     static_cast<std::int64_t>(state_count()));
}

void OscillatorIsingStrategy::advance(int first_step, int last_step) {
  const int n = setup_.spins;
  for_each_slice([&](const Slice& slice) {
    float* phases = phases_.data() + slice.offset;
    float* cosines = cosines_.data() + slice.offset;
    float* sines = sines_.data() + slice.offset;
    float* signs = signs_.data() + slice.offset;
    float* cos_fields = fields_.data() + slice.offset;
    float* sin_fields = sin_fields_.data() + slice.offset;
    for (int k = first_step; k < last_step; ++k) {
      coupling_field(slice.rows, cosines, cos_fields);
      coupling_field(slice.rows, sines, sin_fields);
      const float injection = final_injection_ * static_cast<float>(double(k + 1) / setup_.steps);
      setup_.backend.run(OimStepOp{phases, cosines, sines, signs, cos_fields, sin_fields, injection, dt_},
                         static_cast<std::int64_t>(slice.rows) * n);
    }
  });
}

}  // namespace eqprop
