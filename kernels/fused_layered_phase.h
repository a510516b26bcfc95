// What the fused relaxations of the layered networks share (DESIGN.md §2): the dense
// Hopfield network's (kernels/fused_relaxation_block.h) and the oscillator
// network's (kernels/fused_oscillator_block.h) bodies differ only in their unit's
// state and step; both relax a stack of state layers coupled by dense matrices
// between neighbours, for `steps` synchronous steps of one phase, in one launch.
// Here: the couplings and the layer geometry, the mapping of a block's elements onto
// its threads, the coupling sums (the one place their summation order is fixed),
// the launch shape, and the naive references' sums.
//
// Thread mapping: the (layer, system, unit) elements of a block are one flat range,
// strided over the threads in runs of Context::tile_width (for_each_tile), a run cut
// where a system's row of a layer ends. The feedback reads the transpose of W_{i+1}
// (the model keeps a copy), so both sums read a row j of a matrix at consecutive
// units k: coalesced on the GPU (runs of 1, a register sum per thread), one axpy over
// the run per j on the CPU (runs of up to 1024, the sums in shared memory).
// kernels/fused_sb_block.h sums its couplings with the same fused_relaxation_sum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/execution_context.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// The most state layers a fused path takes (a trivially copyable body holds its
// per-layer pointers in fixed arrays); deeper networks take the GEMM path.
constexpr int kFusedRelaxationMaxLayers = 4;

// out[k] = sum_{j = 0..rows-1, ascending} matrix[j][k] * input[j] for k in [first,
// end): one thread's run of a layer's units, matrix (rows, columns) row-major. Width
// 1 (the GPU) sums in a register; wider runs (the CPU) accumulate in out, j outer,
// so the inner loop is a contiguous axpy. The same additions in the same order.
template <int TileWidth>
EQ_HD void fused_relaxation_sum(const float* __restrict matrix, const float* __restrict input, int rows, int columns,
                                int first, int end, float* __restrict out) {
  if constexpr (TileWidth == 1) {
    float sum = 0.0f;
    for (int j = 0; j < rows; ++j) sum += matrix[static_cast<std::int64_t>(j) * columns + first] * input[j];
    out[first] = sum;
  } else {
    for (int k = first; k < end; ++k) out[k] = 0.0f;
    for (int j = 0; j < rows; ++j) {
      const float in = input[j];
      const float* __restrict row = matrix + static_cast<std::int64_t>(j) * columns;
      for (int k = first; k < end; ++k) out[k] += row[k] * in;
    }
  }
}

// The parameters every fused layered phase has. A body derives from it and adds
// its input drive, its unit's parameters and its phases.
struct FusedLayeredPhase {
  // Per state layer i in [0, layers):
  float* states[kFusedRelaxationMaxLayers];                     // (batch, units[i]); in place
  const float* weights[kFusedRelaxationMaxLayers];              // W_i (units[i-1], units[i]); [0] unused
  const float* weights_transposed[kFusedRelaxationMaxLayers];   // W_{i+1}^T (units[i+1], units[i]); top unused
  const float* bias[kFusedRelaxationMaxLayers];                 // (units[i])
  std::int32_t units[kFusedRelaxationMaxLayers];
  const float* target;       // (batch, units[top]) target of the output's nudge, or null (free phase)
  float beta;                // the nudge's strength (sign included); unused without target
  float dt;                  // gradient-flow step
  std::int32_t layers;
  std::int32_t batch;
  std::int32_t systems_per_block;
  std::int32_t steps;

  int blocks() const { return (batch + systems_per_block - 1) / systems_per_block; }
  // Elements (layer, system, unit) of one block.
  EQ_HD int elements() const {
    int total = 0;
    for (int i = 0; i < layers; ++i) total += systems_per_block * units[i];
    return total;
  }
  // Where layer i's rows start in a block's shared array of elements().
  EQ_HD int layer_offset(int i) const {
    int offset = 0;
    for (int l = 0; l < i; ++l) offset += systems_per_block * units[l];
    return offset;
  }
  // Where row `system` of `block`, layer i, starts in a (batch, units[i]) array.
  EQ_HD std::int64_t global_row(int block, int system, int i) const {
    return (static_cast<std::int64_t>(block) * systems_per_block + system) * units[i];
  }
  // The nudge on layer i: its strength (0 but on the top layer of a nudged phase),
  // and the goal of the element at `global` of a (batch, units[i]) array.
  EQ_HD float nudge_of(int i) const { return target && i + 1 == layers ? beta : 0.0f; }
  EQ_HD float goal_of(int i, std::int64_t global) const { return target && i + 1 == layers ? target[global] : 0.0f; }

  // Calls run(i, system, first, end, at) for one thread's share of the block's
  // elements: units [first, end) of layer i of system `system` of the block (only
  // systems inside the batch), `at` the offset of that system's row of layer i in
  // a shared array.
  template <int TileWidth, class Run>
  EQ_HD void for_each_run(int block, int thread, int threads, Run&& run) const {
    const int in_batch = batch - block * systems_per_block;
    const int systems = in_batch < systems_per_block ? in_batch : systems_per_block;
    for_each_tile<TileWidth>(thread, threads, elements(), [&](int first, int end) {
      while (first < end) {
        int i = 0, base = 0;
        while (first >= base + systems_per_block * units[i]) base += systems_per_block * units[i++];
        const int system = (first - base) / units[i], row = base + system * units[i];
        const int stop = end < row + units[i] ? end : row + units[i];
        if (system < systems) run(i, system, first - row, stop - row, row);
        first = stop;
      }
    });
  }

  // Calls element(i, local, global, k) for each element of one thread's share (as
  // for_each_run): unit k of layer i, `local` its index in a shared array, `global`
  // in a (batch, units[i]) array.
  template <int TileWidth, class Element>
  EQ_HD void for_each_element(int block, int thread, int threads, Element&& element) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      const std::int64_t global = global_row(block, system, i);
      for (int k = first; k < end; ++k) element(i, at + k, global + k, k);
    });
  }

  // The body's phases in order, each a barrier apart: load, then `steps` times the
  // fields and the step, then store (Body's templated load, field_phase, step_phase
  // and store, one thread's share each, on Body's shared arrays). Two barriers per
  // step, both needed: the fields read every layer's states, which the step then
  // overwrites; the step reads fields that other threads wrote.
  template <class Body, class Context>
  EQ_HD static void run_phases(const Body& body, Context& ctx) {
    constexpr int tile = Context::tile_width;
    const auto shared = body.shared_arrays(ctx.shared_memory());
    const int block = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { body.template load<tile>(shared, block, thread, threads); });
    for (std::int32_t step = 0; step < body.steps; ++step) {
      ctx.for_each_thread([&](int thread) { body.template field_phase<tile>(shared, block, thread, threads); });
      ctx.for_each_thread([&](int thread) { body.template step_phase<tile>(shared, block, thread, threads); });
    }
    ctx.for_each_thread([&](int thread) { body.template store<tile>(shared, block, thread, threads); });
  }

  // The couplings' fields on units [first, end) of layer i of `system` from the
  // per-unit values `values` (a shared array, a unit's value as its neighbours see
  // it): drive = sum_j W_i[j][k] values_{i-1}[j] (i >= 1), feedback = sum_j
  // W_{i+1}^T[j][k] values_{i+1}[j] (below the top), into drive + at, feedback + at.
  template <int TileWidth>
  EQ_HD void coupling_fields(const float* values, int i, int system, int first, int end, int at, float* drive,
                             float* feedback) const {
    if (i > 0)
      fused_relaxation_sum<TileWidth>(weights[i], values + layer_offset(i - 1) + system * units[i - 1], units[i - 1],
                                      units[i], first, end, drive + at);
    if (i + 1 < layers)
      fused_relaxation_sum<TileWidth>(weights_transposed[i], values + layer_offset(i + 1) + system * units[i + 1],
                                      units[i + 1], units[i], first, end, feedback + at);
  }

  // The store phase: a thread's share of the block's states back to global memory.
  template <int TileWidth>
  EQ_HD void store_states(const float* shared_states, int block, int thread, int threads) const {
    for_each_element<TileWidth>(block, thread, threads, [&](int i, int local, std::int64_t global, int) {
      states[i][global] = shared_states[local];
    });
  }
};

// A fused layered body's entry point (kernels/execution_context.h): Body's phases in
// run_phases' order. Body derives from FusedLayeredBody<Body>.
template <class Body>
struct FusedLayeredBody : FusedLayeredPhase {
  template <class Context>
  EQ_HD void operator()(Context& ctx) const {
    run_phases(static_cast<const Body&>(*this), ctx);
  }
};

// The launch shape, kept as data. The GPU takes several systems per block, so that
// a block has about a warp's multiple of elements and one read of a coupling from
// L1 serves them all, within 48 KiB of shared memory (no opt-in); threads: one per
// element up to 256, in whole warps. The CPU takes one system per block (a block is
// one core's loop; more systems would only lengthen it). Not tuned on a GPU (any
// shape gives the same bits). arrays: the body's shared floats per element.
struct FusedRelaxationLaunchPolicy {
  static constexpr int max_threads_per_block = 256;
  static constexpr int max_shared_bytes = 48 * 1024;
  // A system's shared arrays past which a fused path refuses: the GPU's blocks would
  // need more than the opt-in allows on older parts (and the CPU's per-core buffer
  // would leave L2).
  static constexpr int max_shared_bytes_per_system = 96 * 1024;
  static constexpr int max_units_total(int arrays) {
    return max_shared_bytes_per_system / (arrays * static_cast<int>(sizeof(float)));
  }
  static int systems_per_block(bool on_chip_blocks, int units_total, int arrays = 3) {
    if (!on_chip_blocks || units_total >= max_threads_per_block) return 1;
    const int by_threads = max_threads_per_block / units_total;
    const int by_memory = max_shared_bytes / (arrays * units_total * static_cast<int>(sizeof(float)));
    const int systems = by_threads < by_memory ? by_threads : by_memory;
    return systems < 1 ? 1 : systems;
  }
  static int threads_per_block(int elements) {
    const int warps = (elements + 31) / 32;
    return warps * 32 < max_threads_per_block ? (warps < 1 ? 32 : warps * 32) : max_threads_per_block;
  }
};

// The naive references' couplings (row r of the phase, one system's per-layer
// values): the drive from below (i >= 1) and the feedback from above (below the
// top) on unit k of layer i, each summed over j ascending from 0, as the body does.
inline float fused_reference_drive(const FusedLayeredPhase& phase, const std::vector<std::vector<float>>& values,
                                   int i, int k) {
  float drive = 0.0f;
  for (int j = 0; j < phase.units[i - 1]; ++j)
    drive += phase.weights[i][std::size_t(j) * phase.units[i] + k] * values[i - 1][j];
  return drive;
}
inline float fused_reference_feedback(const FusedLayeredPhase& phase, const std::vector<std::vector<float>>& values,
                                      int i, int k) {
  float feedback = 0.0f;
  for (int j = 0; j < phase.units[i + 1]; ++j)
    feedback += phase.weights_transposed[i][std::size_t(j) * phase.units[i] + k] * values[i + 1][j];
  return feedback;
}

// The naive references' frame: for every system r of the batch, its per-layer
// states copied out, `steps` calls of step(r, states) (which replaces them by the
// next step's, every field from the previous step's states), and the states copied
// back.
template <class Step>
void fused_reference_systems(const FusedLayeredPhase& phase, Step&& step) {
  for (int r = 0; r < phase.batch; ++r) {
    std::vector<std::vector<float>> s(std::size_t(phase.layers));
    for (int i = 0; i < phase.layers; ++i)
      s[i].assign(phase.states[i] + std::size_t(r) * phase.units[i],
                  phase.states[i] + std::size_t(r + 1) * phase.units[i]);
    for (int t = 0; t < phase.steps; ++t) step(r, s);
    for (int i = 0; i < phase.layers; ++i)
      for (int k = 0; k < phase.units[i]; ++k) phase.states[i][std::size_t(r) * phase.units[i] + k] = s[i][k];
  }
}

}  // namespace eqprop
