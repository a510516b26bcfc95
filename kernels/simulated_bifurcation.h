// Ballistic and discrete simulated bifurcation (bSB, dSB) for Ising problems
// E = -1/2 s^T J s: Goto, Endo, Suzuki, Sakai, Kanao, Hamakawa, Hidaka, Yamasaki,
// Tatsumura, "High-performance combinatorial optimization based on classical
// mechanics", Sci. Adv. 7, eabe7953 (2021), its bSB and dSB equations. Each spin
// is an oscillator with position x_i in [-1, 1] and momentum y_i:
//   y_i <- y_i + dt * ( -(a0 - a(t)) * x_i + c0 * f_i ),  f = J x (bSB) or J sign(x) (dSB)
//   x_i <- x_i + dt * a0 * y_i
//   |x_i| > 1:  x_i <- sign(x_i), y_i <- 0          (the perfectly inelastic walls)
// with the pump a(t) ramping linearly from 0 to a0 over the run; the answer is
// s = sign(x). The field f for R replicas is one GEMM, F (R, n) = X (R, n) J (n, n)
// (J symmetric), done by the caller through Backend::gemm; SbStepOp fuses the rest
// of a step into one pass. The integrator is symplectic Euler with the momentum
// half first (the field from the positions at the start of the step), so one GEMM
// per step suffices; the other order (x first, then y from the new x) gives the
// same sequence of states shifted by half a step.
//
// c0 (coupling scale): Goto, Tatsumura & Dixon, Sci. Adv. 5, eaav2372 (2019) use
// c0 = 0.5 / (<J> sqrt(n)), <J> = sqrt(sum_{i != j} J_ij^2 / (n (n - 1))); the
// solver's default (engine/maxcut_solver.h).
//
// Determinism: plain float arithmetic, no reductions: bit-exact on every backend
// (with the CUDA backend built -fmad=false). The GEMM before it is exact up to
// summation order (and exact for integer J and dSB's +-1 inputs below 2^24).
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/noise_key.h"
#include "kernels/philox.h"

namespace eqprop {

// Streams of the Ising solvers' random draws. Kept far from RngStream's values
// (kernels/philox.h) so the lists cannot collide; they belong in that enum.
constexpr RngStream kSbInitialStateStream = RngStream::sb_initial_state;

// The spin an oscillator position stands for; sign(0) = +1.
EQ_HD float spin_of(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

// One step of one oscillator (the equations above). detuning = a0 - a(t). Written
// with selects rather than branches so the CPU row loop vectorizes.
EQ_HD void sb_oscillator_step(float& x, float& y, float field, float detuning, float a0, float c0, float dt) {
  const float momentum = y + dt * (c0 * field - detuning * x);
  const float position = x + dt * a0 * momentum;
  const bool wall = position > 1.0f || position < -1.0f;
  y = wall ? 0.0f : momentum;
  x = position > 1.0f ? 1.0f : (position < -1.0f ? -1.0f : position);
}

// The detuning a0 - a(t) of step `step` (0-based) of a run of `steps`: the pump
// a(t) ramps linearly from 0 to a0 at the last step (Goto et al. 2021). One
// function for the GEMM path and the fused kernel, so both follow the same schedule
// to the bit.
EQ_HD float sb_detuning(float a0, std::int64_t step, std::int64_t steps) {
  return a0 - a0 * static_cast<float>(double(step + 1) / double(steps));
}

// Random initial positions and momenta, uniform in [-amplitude, amplitude), keyed
// on (seed, replica * units + unit, round): any launch shape gives the same start.
// Also writes sign(x) for dSB's first GEMM when `signs` is set.
struct SbInitOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  float* x;      // (replicas, units)
  float* y;      // (replicas, units)
  float* signs;  // (replicas, units) sign(x), or null (bSB)
  std::uint64_t seed;
  std::uint64_t first_index;  // first_replica * units: the key of element 0
  std::uint32_t round;        // a fresh start for every restart of the solver
  float amplitude;
  // A recorded training step's samples before its batch (device memory,
  // kernels/noise_key.h), keys_per_sample each, added to first_index when the op
  // runs; null: first_index holds them.
  const std::uint64_t* first_sample = nullptr;
  std::uint64_t keys_per_sample = 0;

  EQ_HD void operator()(std::int64_t i) const {
    const std::uint64_t index = first_index + step_keys_before(first_sample, keys_per_sample);
    const Philox4 words = random_words(seed, kSbInitialStateStream, index + static_cast<std::uint64_t>(i), round);
    const float x0 = amplitude * (2.0f * uniform_from_word(words.v[0]) - 1.0f);
    x[i] = x0;
    y[i] = amplitude * (2.0f * uniform_from_word(words.v[1]) - 1.0f);
    if (signs) signs[i] = spin_of(x0);
  }
};

// One bSB or dSB step of every oscillator of every replica, after the GEMM.
// Thread mapping: one flat index per oscillator of one replica; no reductions.
// The count is replicas * units.
struct SbStepOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  float* x;            // (replicas, units) positions, updated in place
  float* y;            // (replicas, units) momenta, updated in place
  const float* field;  // (replicas, units) J x (bSB) or J sign(x) (dSB) at the start of the step
  float* signs;        // (replicas, units) sign(x) after the step, dSB's next GEMM input; or null
  float detuning;      // a0 - a(t)
  float a0;
  float c0;
  float dt;
  std::int32_t units;

  EQ_HD void operator()(std::int64_t i) const {
    float position = x[i], momentum = y[i];
    sb_oscillator_step(position, momentum, field[i], detuning, a0, c0, dt);
    x[i] = position;
    y[i] = momentum;
    if (signs) signs[i] = spin_of(position);
  }

  // The CPU runs a replica at a time with the parameters in locals and restrict
  // pointers: per element, operator() reloads the float members after every float
  // store (they might alias) and does not vectorize; that made this op cost more
  // than the GEMM of an 800-spin problem (profiled: 42% of a dSB run on G1). Same
  // math per element, so the same bits.
  std::int64_t row_count(std::int64_t count) const { return count / units; }
  void row(std::int64_t r) const { signs ? row_of<true>(r) : row_of<false>(r); }
  template <bool kWriteSigns>
  void row_of(std::int64_t r) const {
    const std::int64_t offset = r * units;
    float* __restrict px = x + offset;
    float* __restrict py = y + offset;
    const float* __restrict pf = field + offset;
    float* __restrict ps = kWriteSigns ? signs + offset : nullptr;
    const float k_detuning = detuning, k_a0 = a0, k_c0 = c0, k_dt = dt;
    const std::int32_t n = units;
#pragma omp simd
    for (std::int32_t i = 0; i < n; ++i) {
      float position = px[i], momentum = py[i];
      sb_oscillator_step(position, momentum, pf[i], k_detuning, k_a0, k_c0, k_dt);
      px[i] = position;
      py[i] = momentum;
      if (kWriteSigns) ps[i] = spin_of(position);
    }
  }
};

}  // namespace eqprop
