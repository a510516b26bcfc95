// One block update of one layer of a layered Ising network (models/ising_network.h):
// every spin of the layer redrawn from its local field at a temperature T, in one
// pass. In a layered network the couplings join only consecutive layers, so given
// the layers next to it the spins of one layer are conditionally independent:
// updating all odd layers at once, then all even layers, is an exact Gibbs or
// Metropolis sweep (the "checkerboard" order; Laydevant, Markovic & Grollier,
// "Training an Ising machine with equilibrium propagation", Nat. Commun. 15, 3671
// (2024), anneal the same layered energy on a D-Wave machine).
//
// Energy (DESIGN.md §1), F = E + beta C:
//   E = -sum_l s_l^T W_l s_{l+1} - sum_l h_{l+1}^T s_{l+1},  s_0 = x clamped,
// so the local field of spin u of layer l is
//   f_u = (s_{l-1} W_{l-1})_u + (s_{l+1} W_l^T)_u + h_u  (+ the nudge on output spins),
// the first two from GEMMs before this op, and flipping s_u changes F by 2 s_u f_u.
// Update rules at inverse temperature b = 1/T:
//   gibbs (heat bath): s_u = +1 with probability 1 / (1 + exp(-2 b f_u)), else -1;
//   metropolis: flip with probability min(1, exp(-2 b s_u f_u)) (Metropolis et al.,
//     J. Chem. Phys. 21, 1087 (1953)).
// Both leave the Boltzmann distribution exp(-b F) invariant.
//
// Nudge: the cost C = 1/(2G) sum_j (s_j - t_k(j))^2 over the output spins, G spins
// per class, t_k = 2 y_k - 1 the one-hot target mapped to +-1. For spins s_j^2 = 1,
// so C = sum_j (1 - t_k(j) s_j) / G is linear: the nudge is the field beta t_k(j) / G
// on output spin j (`nudge` = beta / G).
//
// Random numbers: spin u of row r has the logical index k = first_key +
// r * key_row_stride + u (the model makes it (sample, replica, unit over all
// layers)) and the step (phase, sweep); its uniform is word k % 4 of the Philox
// block keyed on (seed, ising_sweep stream, k / 4, step). A pure function of the
// logical indices, so a draw is the same on every backend and for any split of the
// batch; one Philox block serves four consecutive spins, which the CPU's row loop
// exploits (a block per spin made the random numbers most of a sweep's cost).
//
// Thread mapping: one index per spin; no reductions. Determinism: the fields come
// from GEMMs (exact up to summation order); given the fields, bit-exact except where
// expf differs in its last bit between backends and a uniform falls exactly between
// (statistical, as kernels/metropolis_sweep.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/metropolis_sweep.h"
#include "kernels/noise_key.h"
#include "kernels/philox.h"

namespace eqprop {

enum class SpinUpdate : int { gibbs = 0, metropolis = 1 };

// The new value of one spin with local field `field`. A spin not yet set (0, the
// model's reset state) takes the heat-bath draw under either rule.
EQ_HD float ising_spin_update(SpinUpdate rule, float spin, float field, float inverse_temperature, float uniform) {
  if (rule == SpinUpdate::metropolis && spin != 0.0f)
    return metropolis_accept(2.0f * spin * field, inverse_temperature, uniform) ? -spin : spin;
  const float p_up = 1.0f / (1.0f + expf(-2.0f * inverse_temperature * field));
  return uniform < p_up ? 1.0f : -1.0f;
}

// The inverse temperature of `sweep` of a phase of `sweeps` sweeps: geometric from
// temperature_start to temperature_end when free, temperature_end when nudged (in
// double, so that the schedule ends exactly at temperature_end).
EQ_HD float ising_inverse_temperature(int sweep, int sweeps, bool nudged, float temperature_start,
                                      float temperature_end) {
  if (nudged || sweeps < 2) return 1.0f / temperature_end;
  const double fraction = static_cast<double>(sweep) / (sweeps - 1);
  const double temperature = temperature_start * pow(double(temperature_end) / temperature_start, fraction);
  return static_cast<float>(1.0 / temperature);
}

// The local field of one spin: from below, from above, the bias and the nudge,
// summed in this order everywhere (the energy, the update, the tests).
EQ_HD float ising_local_field(float below, float above, float bias, float nudge) {
  return below + above + bias + nudge;
}

// The inputs of one layer's local fields (rows, units): the GEMM outputs, the bias
// and the nudge.
struct IsingLayerFields {
  const float* below;   // (rows, units) s_{l-1} W_{l-1}
  const float* above;   // (rows, units) s_{l+1} W_l^T, or null (top layer)
  const float* bias;    // (units) h
  const float* target;  // (rows / replicas, classes) one-hot, or null (no nudge)
  float nudge;          // beta / spins_per_class
  std::int32_t units;
  std::int32_t replicas;         // rows per sample (target lookup)
  std::int32_t spins_per_class;  // G: output spin u belongs to class u / G
  std::int32_t classes;

  EQ_HD float at(std::int64_t r, std::int32_t u) const {
    const float from_above = above ? above[r * units + u] : 0.0f;
    float nudge_field = 0.0f;
    if (target) {
      const float y = target[(r / replicas) * classes + u / spins_per_class];
      nudge_field = nudge * (2.0f * y - 1.0f);
    }
    return ising_local_field(below[r * units + u], from_above, bias[u], nudge_field);
  }
};

// The local fields of one layer into an array: the force of simulated bifurcation
// (kernels/simulated_bifurcation.h), whose step takes one field array.
// Bit-exact on every backend given the GEMM outputs.
struct IsingLocalFieldOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  float* out;  // (rows, units)
  IsingLayerFields fields;

  EQ_HD void operator()(std::int64_t i) const {
    out[i] = fields.at(i / fields.units, static_cast<std::int32_t>(i % fields.units));
  }
};

struct IsingLayerUpdateOp {
  static constexpr Determinism determinism = Determinism::statistical;
  float* spins;  // (rows, units) +-1 (0 before the first update), updated in place
  IsingLayerFields fields;
  float inverse_temperature;
  SpinUpdate rule;
  std::uint64_t seed;
  std::uint64_t first_key;       // key of (row 0, unit 0)
  std::uint64_t key_row_stride;  // key distance between rows
  std::uint32_t step;
  // A recorded training step's samples before its batch (device memory, the
  // step-parameter block; kernels/noise_key.h), fields.replicas rows each, added
  // to first_key when the op runs; null: first_key holds them.
  const std::uint64_t* first_sample = nullptr;

  EQ_HD std::uint64_t key_of(std::int64_t r, std::int32_t u) const {
    return first_key + step_keys_before(first_sample, static_cast<std::uint64_t>(fields.replicas) * key_row_stride) +
           static_cast<std::uint64_t>(r) * key_row_stride + static_cast<std::uint64_t>(u);
  }
  EQ_HD Philox4 block_of(std::uint64_t key) const { return random_words(seed, RngStream::ising_sweep, key >> 2, step); }

  EQ_HD void update(std::int64_t r, std::int32_t u, const Philox4& block) const {
    const float uniform = uniform_from_word(block.v[key_of(r, u) & 3u]);
    float& s = spins[r * fields.units + u];
    s = ising_spin_update(rule, s, fields.at(r, u), inverse_temperature, uniform);
  }

  EQ_HD void operator()(std::int64_t i) const {
    const std::int64_t r = i / fields.units;
    const std::int32_t u = static_cast<std::int32_t>(i % fields.units);
    update(r, u, block_of(key_of(r, u)));
  }

  // The CPU runs a row at a time, one Philox block per four spins; same draws.
  std::int64_t row_count(std::int64_t count) const { return count / fields.units; }
  void row(std::int64_t r) const {
    std::uint64_t cached = ~std::uint64_t{0};
    Philox4 block{};
    for (std::int32_t u = 0; u < fields.units; ++u) {
      const std::uint64_t group = key_of(r, u) >> 2;
      if (group != cached) block = block_of(key_of(r, u)), cached = group;
      update(r, u, block);
    }
  }
};

}  // namespace eqprop
