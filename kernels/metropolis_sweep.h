// Simulated annealing of Ising problems E = -1/2 s^T J s: one Metropolis sweep
// (Metropolis, Rosenbluth, Rosenbluth, Teller & Teller, J. Chem. Phys. 21, 1087
// (1953)) over the spins of each replica at inverse temperature beta; the solver
// (engine/maxcut_solver.h) lowers the temperature between sweeps (Kirkpatrick,
// Gelatt & Vecchi, Science 220, 671 (1983)).
//
// A sweep proposes flipping spins 0, 1, ..., n-1 in turn. Flipping s_i changes the
// energy by dE = 2 s_i f_i with the local field f_i = sum_j J_ij s_j; the flip is
// accepted with probability min(1, exp(-beta dE)), which satisfies detailed balance
// with the Boltzmann distribution exp(-beta E) for each single-spin update, so the
// sweep (their composition) leaves it invariant. The fields of a replica are kept
// up to date: an accepted flip adds 2 s_i' J_ij to every f_j (O(n) per accepted flip,
// O(1) per rejected one). The caller sets them (F = S J, one GEMM) before the first
// sweep and may refresh them (incremental float updates drift for non-integer J;
// they are exact for integer J).
//
// Random numbers: the uniform for proposal i of sweep k of replica r is keyed on
// (seed, round, r, k * n + i), a pure function of those logical indices. Only
// uphill proposals draw one.
//
// Thread mapping: one index per replica, a sequential sweep inside (the order of the
// proposals is part of the algorithm). On a GPU this wants many replicas; a
// warp-per-replica version would read J rows cooperatively (not yet written).
// Determinism: for integer J (exact fields) the decisions are identical on every
// backend except where exp differs in its last bit from one backend to the other
// and a uniform falls exactly between (about 1e-7 per uphill proposal); otherwise
// statistical.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/philox.h"

namespace eqprop {

// Tag in the Philox key of the Metropolis draws (the counter holds all four indices).
constexpr std::uint32_t kMetropolisKeyTag = 0x15A00002u;

// Uniform in [0, 1) for one proposal.
EQ_HD float metropolis_uniform(std::uint64_t seed, std::uint32_t round, std::uint32_t replica,
                               std::uint64_t proposal) {
  const Philox4 counter{{static_cast<std::uint32_t>(proposal), static_cast<std::uint32_t>(proposal >> 32), replica,
                         round}};
  const Philox4 words = philox4x32_10(counter, static_cast<std::uint32_t>(seed),
                                      static_cast<std::uint32_t>(seed >> 32) ^ kMetropolisKeyTag);
  return uniform_from_word(words.v[0]);
}

// The Metropolis rule: accept a move that changes the energy by delta_energy when
// uniform < min(1, exp(-beta * delta_energy)). Downhill and level moves always.
EQ_HD bool metropolis_accept(float delta_energy, float beta, float uniform) {
  return delta_energy <= 0.0f || uniform < expf(-beta * delta_energy);
}

struct MetropolisSweepOp {
  static constexpr Determinism determinism = Determinism::statistical;
  float* spins;             // (replicas, units) +1 / -1, updated in place
  float* fields;            // (replicas, units) local fields f = S J, kept up to date
  const float* couplings;   // (units, units) symmetric J, zero diagonal
  float beta;               // inverse temperature of this sweep
  std::uint64_t seed;
  std::uint64_t sweep;      // sweep number k within the round
  std::uint32_t round;
  std::uint32_t first_replica;  // replica number of index 0
  std::int32_t units;

  EQ_HD void operator()(std::int64_t r) const {
    // Restrict: the field update below then vectorizes (spins, fields and J are
    // distinct arrays).
    float* __restrict__ s = spins + r * units;
    float* __restrict__ f = fields + r * units;
    const std::uint32_t replica = first_replica + static_cast<std::uint32_t>(r);
    const std::uint64_t first_proposal = sweep * static_cast<std::uint64_t>(units);
    for (std::int32_t i = 0; i < units; ++i) {
      const float delta = 2.0f * s[i] * f[i];
      if (delta > 0.0f &&
          !metropolis_accept(delta, beta, metropolis_uniform(seed, round, replica, first_proposal + i)))
        continue;
      const float flipped = -s[i];
      s[i] = flipped;
      const float change = 2.0f * flipped;
      const float* __restrict__ row = couplings + static_cast<std::int64_t>(i) * units;
      for (std::int32_t j = 0; j < units; ++j) f[j] += change * row[j];
    }
  }

  // The CPU backend runs rows through its AVX-512 build of the loop where the CPU
  // has it (kernels/cpu_backend.cpp); a row is a replica, the same body.
  std::int64_t row_count(std::int64_t count) const { return count; }
  void row(std::int64_t r) const { (*this)(r); }
};

}  // namespace eqprop
