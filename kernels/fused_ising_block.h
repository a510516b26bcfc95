// A whole annealing phase of the layered Ising network (models/ising_network.h) in
// one launch: its fused path. Every sweep updates the odd spin layers given the even
// ones, then the even ones given the new odd ones (the checkerboard order of
// kernels/ising_layer_update.h: each half an exact Gibbs or Metropolis block update);
// the per-spin math is that file's ising_local_field and ising_spin_update, the
// temperature schedule its ising_inverse_temperature, and the draws are keyed as
// IsingLayerUpdateOp keys them, so this path and the GEMM path draw the same
// uniforms for the same spin and sweep.
//
// Body over an execution context (kernels/execution_context.h), laid out as the
// dense network's (the geometry, thread mapping and coupling sums are
// kernels/fused_layered_phase.h's), with one "system" per replica row: block b
// relaxes rows [b G, b G + G) of the (batch * R) rows, their spins and fields in
// shared memory, the couplings read from global memory. Phases:
//   load:     the spins of every layer, and layer 0's input field x W_0
//   T times, for parity 0 then 1, one phase each (half_sweep):
//     fields: drive_i = sum_j W_i[j][k] s_{i-1}[j] (i >= 1), feedback_i =
//             sum_j W_{i+1}^T[j][k] s_{i+1}[j] (below the top), layers of this parity
//     update: s <- ising_spin_update(field, 1 / T(sweep), uniform), layers of this parity
//   store:    the spins to global memory
// Two barriers per sweep, one after each half: a half's fields read the other
// parity's spins, which the half before wrote. Within a half no barrier is needed:
// the fields read only spins this half does not write, and a thread's update reads
// only the fields of its own elements (the same for_each_run share), which it wrote.
//
// Determinism: every sum starts at 0 and runs over j ascending whatever the block
// size, thread order or tile width, so the body equals fused_ising_reference bit
// for bit on one backend. Against the GEMM path the fields differ in summation
// order, and a uniform that falls within those last bits of a spin's flip
// probability draws the other value: the same distribution of spins, not the same
// spins (statistical, as IsingLayerUpdateOp across backends).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/determinism.h"
#include "kernels/execution_context.h"
#include "kernels/fused_layered_phase.h"
#include "kernels/hostdevice.h"
#include "kernels/ising_layer_update.h"
#include "kernels/noise_key.h"
#include "kernels/philox.h"

namespace eqprop {

// A block's arrays in shared memory, each (elements): for every layer i, its
// (systems_per_block, units[i]) rows, layer after layer.
struct FusedIsingShared {
  float* spins;
  float* drive;
  float* feedback;
};

// Runs `steps` annealing sweeps of rows [0, batch) of the spins (batch = samples x
// replicas). Launch: blocks() blocks, any block size (the GPU wants a multiple of
// 32), shared_bytes() of shared memory.
struct FusedIsingBlock : FusedLayeredPhase {
  static constexpr Determinism determinism = Determinism::statistical;
  // Shared floats per element: the three arrays of FusedIsingShared.
  static constexpr int shared_arrays_per_element = 3;
  // FusedLayeredPhase's states are the spins (+-1, or 0 before the first draw), its
  // weights the couplings W, its target the one-hot (samples, classes) labels of a
  // nudged phase (null when free); beta and dt are unused. And:
  const float* input_drive;  // (batch, units[0]) = x W_0 on every replica row, constant over the phase
  float nudge;               // beta / spins_per_class: the field beta t / G on an output spin
  float temperature_start;   // the free phase's schedule (ising_inverse_temperature)
  float temperature_end;
  std::int32_t nudged;       // nonzero: a nudged phase (the schedule's end temperature throughout)
  SpinUpdate rule;
  std::int32_t replicas;         // rows per sample
  std::int32_t spins_per_class;  // G
  std::int32_t classes;
  // The draws: spin k of row r of state layer i has the key first_key[i] + r *
  // key_row_stride + k at step noise_step_key(noise_phase, sweep), under seed.
  std::uint64_t seed;
  std::uint64_t first_key[kFusedRelaxationMaxLayers];
  std::uint64_t key_row_stride;
  std::uint32_t noise_phase;
  // A recorded training step's samples before its batch (device memory,
  // kernels/noise_key.h), `replicas` rows each, added to every first_key; or null.
  const std::uint64_t* first_sample;

  std::size_t shared_bytes() const {
    return std::size_t(shared_arrays_per_element) * std::size_t(elements()) * sizeof(float);
  }

  EQ_HD FusedIsingShared shared_arrays(void* memory) const {
    float* base = static_cast<float*>(memory);
    const int n = elements();
    return {base, base + n, base + 2 * n};
  }

  template <class Context>
  EQ_HD void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedIsingShared shared = shared_arrays(ctx.shared_memory());
    const int block = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { load<tile>(shared, block, thread, threads); });
    for (std::int32_t sweep = 0; sweep < steps; ++sweep)
      for (int parity = 0; parity < 2; ++parity)
        ctx.for_each_thread([&](int thread) { half_sweep<tile>(shared, block, thread, threads, parity, sweep); });
    ctx.for_each_thread([&](int thread) { store_states<tile>(shared.spins, block, thread, threads); });
  }

  // One thread's share of a half sweep: the fields of the layers of `parity`, then
  // their spins.
  template <int TileWidth>
  EQ_HD void half_sweep(const FusedIsingShared& shared, int block, int thread, int threads, int parity,
                        int sweep) const {
    field_phase<TileWidth>(shared, block, thread, threads, parity);
    update_phase<TileWidth>(shared, block, thread, threads, parity, sweep);
  }

  // The phases, one thread's share of each (public so that a test can assemble a
  // body with a barrier left out).
  template <int TileWidth>
  EQ_HD void load(const FusedIsingShared& shared, int block, int thread, int threads) const {
    for_each_element<TileWidth>(block, thread, threads, [&](int i, int local, std::int64_t global, int) {
      shared.spins[local] = states[i][global];
      if (i == 0) shared.drive[local] = input_drive[global];  // constant over the phase
    });
  }

  template <int TileWidth>
  EQ_HD void field_phase(const FusedIsingShared& shared, int block, int thread, int threads, int parity) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      if (i % 2 == parity) coupling_fields<TileWidth>(shared.spins, i, system, first, end, at, shared.drive, shared.feedback);
    });
  }

  template <int TileWidth>
  EQ_HD void update_phase(const FusedIsingShared& shared, int block, int thread, int threads, int parity,
                          int sweep) const {
    const float inverse_temperature =
        ising_inverse_temperature(sweep, steps, nudged != 0, temperature_start, temperature_end);
    const std::uint32_t step = noise_step_key(noise_phase, sweep);
    const std::uint64_t before = step_keys_before(first_sample, static_cast<std::uint64_t>(replicas) * key_row_stride);
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      if (i % 2 != parity) return;
      const std::int64_t row = static_cast<std::int64_t>(block) * systems_per_block + system;
      const bool top = i + 1 == layers;
      // One Philox block serves four consecutive keys (IsingLayerUpdateOp::row).
      std::uint64_t cached = ~std::uint64_t{0};
      Philox4 words{};
      for (int k = first; k < end; ++k) {
        const std::uint64_t key = first_key[i] + before + static_cast<std::uint64_t>(row) * key_row_stride +
                                  static_cast<std::uint64_t>(k);
        if ((key >> 2) != cached) words = random_words(seed, RngStream::ising_sweep, key >> 2, step), cached = key >> 2;
        float nudge_field = 0.0f;
        if (top && target) {
          const float y = target[(row / replicas) * classes + k / spins_per_class];
          nudge_field = nudge * (2.0f * y - 1.0f);
        }
        const float field =
            ising_local_field(shared.drive[at + k], top ? 0.0f : shared.feedback[at + k], bias[i][k], nudge_field);
        float& spin = shared.spins[at + k];
        spin = ising_spin_update(rule, spin, field, inverse_temperature, uniform_from_word(words.v[key & 3u]));
      }
    });
  }
};

// The naive reference: the same phase as plain loops over rows, sweeps, parities,
// layers and spins, every sum over j ascending, each parity's fields from the spins
// as the other parity left them; in place on body.states.
inline void fused_ising_reference(const FusedIsingBlock& body) {
  const int top = body.layers - 1;
  for (int r = 0; r < body.batch; ++r) {
    std::vector<std::vector<float>> spins(std::size_t(body.layers));
    for (int i = 0; i < body.layers; ++i)
      spins[i].assign(body.states[i] + std::size_t(r) * body.units[i], body.states[i] + std::size_t(r + 1) * body.units[i]);
    for (int sweep = 0; sweep < body.steps; ++sweep) {
      const float inverse_temperature =
          ising_inverse_temperature(sweep, body.steps, body.nudged != 0, body.temperature_start, body.temperature_end);
      for (int parity = 0; parity < 2; ++parity)
        for (int i = parity; i < body.layers; i += 2) {
          std::vector<float> fields(std::size_t(body.units[i]));
          for (int k = 0; k < body.units[i]; ++k) {
            const float below = i == 0 ? body.input_drive[std::size_t(r) * body.units[0] + k]
                                       : fused_reference_drive(body, spins, i, k);
            const float above = i < top ? fused_reference_feedback(body, spins, i, k) : 0.0f;
            float nudge_field = 0.0f;
            if (i == top && body.target) {
              const float y = body.target[std::size_t(r / body.replicas) * body.classes + k / body.spins_per_class];
              nudge_field = body.nudge * (2.0f * y - 1.0f);
            }
            fields[k] = ising_local_field(below, above, body.bias[i][k], nudge_field);
          }
          for (int k = 0; k < body.units[i]; ++k) {
            const std::uint64_t key =
                body.first_key[i] +
                step_keys_before(body.first_sample, std::uint64_t(body.replicas) * body.key_row_stride) +
                std::uint64_t(r) * body.key_row_stride + std::uint64_t(k);
            const Philox4 words =
                random_words(body.seed, RngStream::ising_sweep, key >> 2, noise_step_key(body.noise_phase, sweep));
            spins[i][k] = ising_spin_update(body.rule, spins[i][k], fields[k], inverse_temperature,
                                            uniform_from_word(words.v[key & 3u]));
          }
        }
    }
    for (int i = 0; i < body.layers; ++i)
      for (int k = 0; k < body.units[i]; ++k) body.states[i][std::size_t(r) * body.units[i] + k] = spins[i][k];
  }
}

}  // namespace eqprop
