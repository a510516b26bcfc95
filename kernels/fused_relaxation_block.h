// A whole relaxation phase of the dense layered Hopfield network (DESIGN.md §1) in
// one launch: the fused path of models/dense_hopfield.h, for the phases it covers
// (synchronous fixed-point or gradient-flow steps, the MSE nudge of the output
// layer, no Langevin noise, early exit or ADC read-out). The per-unit math is
// LayerStepOp's (kernels/layer_step.h: hopfield_unit_step, the field assembled in
// the same order), so this path and the GEMM path differ only in how the couplings'
// sums are ordered (see Determinism).
//
// Body over an execution context (kernels/execution_context.h). Block b relaxes
// systems [b G, b G + G) of the batch (G = systems_per_block); their states and
// fields live in shared memory, the couplings are read from global memory (L2 on
// the GPU, the caches on the CPU) at every step, and every system of a block
// reads the same couplings, so a GPU block re-reads them from L1. The constant
// drive of the clamped input, x W_1, is one GEMM before the launch (the model's
// set_input), read once into shared memory. Phases:
//   load:    the states of every layer, and layer 0's input drive
//   T times: fields: drive_i  = sum_j W_i[j][k] s_{i-1}[j]        (i >= 1)
//                    feedback_i = sum_j W_{i+1}^T[j][k] s_{i+1}[j] (i below the top)
//            step:   s_i[k] = hopfield_unit_step(drive + bias + feedback, the nudge)
//   store:   the states to global memory
// Two barriers per step, both needed: the fields read every layer's states, which
// the step then overwrites; the step reads fields that other threads wrote.
//
// Thread mapping: the (layer, system, unit) elements of the block are one flat
// range, strided over the threads in runs of Context::tile_width (for_each_tile),
// a run cut where a system's row of a layer ends. The feedback reads the
// transpose of W_{i+1} (the model keeps a copy), so both sums read a row j of a
// matrix at consecutive units k: coalesced on the GPU (runs of 1, a register sum
// per thread), one axpy over the run per j on the CPU (runs of up to 1024, the sums
// in shared memory); kernels/fused_sb_block.h sums its couplings the same way.
// Cost per step and system: the same multiply-adds as the GEMM path; what the fused
// path saves is the launches (two GEMMs per coupling and one step op per layer and
// step) and the passes over the (batch, units) arrays in global memory.
//
// Determinism: every sum starts at 0 and runs over j ascending whatever the block
// size, thread order or tile width, and the rest is LayerStepOp's float arithmetic:
// bit-exact against fused_relaxation_reference on one backend, and across backends
// (CUDA built -fmad=false). Against the GEMM path, whose BLAS chooses its own
// summation order, it is exact up to reduction order: that is the promise declared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/determinism.h"
#include "kernels/execution_context.h"
#include "kernels/hostdevice.h"
#include "kernels/layer_step.h"

namespace eqprop {

// The most state layers the fused path takes (a trivially copyable body holds its
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

// A block's arrays in shared memory, each (elements): for every layer i, its
// (systems_per_block, units[i]) rows, layer after layer.
struct FusedRelaxationShared {
  float* states;
  float* drive;
  float* feedback;
};

// Relaxes rows [0, batch) of the states for `steps` synchronous steps. Launch:
// blocks() blocks, any block size (the GPU wants a multiple of 32),
// shared_bytes() of shared memory.
struct FusedRelaxationBlock {
  static constexpr Determinism determinism = Determinism::exact_up_to_reduction_order;
  // Per state layer i in [0, layers):
  float* states[kFusedRelaxationMaxLayers];                     // (batch, units[i]), in [0, 1]; in place
  const float* weights[kFusedRelaxationMaxLayers];              // W_i (units[i-1], units[i]); [0] unused
  const float* weights_transposed[kFusedRelaxationMaxLayers];   // W_{i+1}^T (units[i+1], units[i]); top unused
  const float* bias[kFusedRelaxationMaxLayers];                 // (units[i])
  std::int32_t units[kFusedRelaxationMaxLayers];
  const float* input_drive;  // (batch, units[0]) = x W_1, the clamped input's constant drive
  const float* target;       // (batch, units[top]) MSE target of the nudge, or null (free phase)
  float beta;                // the nudge's strength (sign included); unused without target
  float dt;                  // gradient-flow step
  Integrator integrator;     // fixed_point or gradient_flow
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
  std::size_t shared_bytes() const { return 3 * std::size_t(elements()) * sizeof(float); }

  EQ_HD FusedRelaxationShared shared_arrays(void* memory) const {
    float* base = static_cast<float*>(memory);
    const int n = elements();
    return {base, base + n, base + 2 * n};
  }
  // Where layer i's rows start in a shared array.
  EQ_HD int layer_offset(int i) const {
    int offset = 0;
    for (int l = 0; l < i; ++l) offset += systems_per_block * units[l];
    return offset;
  }

  template <class Context>
  EQ_HD void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedRelaxationShared shared = shared_arrays(ctx.shared_memory());
    const int block = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { load<tile>(shared, block, thread, threads); });
    for (std::int32_t step = 0; step < steps; ++step) {
      ctx.for_each_thread([&](int thread) { field_phase<tile>(shared, block, thread, threads); });
      ctx.for_each_thread([&](int thread) { step_phase<tile>(shared, block, thread, threads); });
    }
    ctx.for_each_thread([&](int thread) { store<tile>(shared, block, thread, threads); });
  }

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

  // The phases, one thread's share of each (public so that a test can assemble a
  // body with a barrier left out and see the order tests catch it).
  template <int TileWidth>
  EQ_HD void load(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      const std::int64_t global = (static_cast<std::int64_t>(block) * systems_per_block + system) * units[i];
      for (int k = first; k < end; ++k) {
        shared.states[at + k] = states[i][global + k];
        if (i == 0) shared.drive[at + k] = input_drive[global + k];  // constant over the phase
      }
    });
  }

  template <int TileWidth>
  EQ_HD void field_phase(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      if (i > 0) {
        const float* below = shared.states + layer_offset(i - 1) + system * units[i - 1];
        fused_relaxation_sum<TileWidth>(weights[i], below, units[i - 1], units[i], first, end, shared.drive + at);
      }
      if (i + 1 < layers) {
        const float* above = shared.states + layer_offset(i + 1) + system * units[i + 1];
        fused_relaxation_sum<TileWidth>(weights_transposed[i], above, units[i + 1], units[i], first, end,
                                        shared.feedback + at);
      }
    });
  }

  template <int TileWidth>
  EQ_HD void step_phase(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      const bool has_feedback = i + 1 < layers;
      const bool nudged = target && i + 1 == layers;
      const std::int64_t global = (static_cast<std::int64_t>(block) * systems_per_block + system) * units[i];
      const float* __restrict b = bias[i];
      for (int k = first; k < end; ++k) {
        // LayerStepOp::update's field and nudge, in its order.
        float field = shared.drive[at + k] + b[k];
        if (has_feedback) field += shared.feedback[at + k];
        const float nudge = nudged ? beta : 0.0f, goal = nudged ? target[global + k] : 0.0f;
        shared.states[at + k] = hopfield_unit_step(integrator, dt, shared.states[at + k], field, nudge, goal);
      }
    });
  }

  template <int TileWidth>
  EQ_HD void store(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      const std::int64_t global = (static_cast<std::int64_t>(block) * systems_per_block + system) * units[i];
      for (int k = first; k < end; ++k) states[i][global + k] = shared.states[at + k];
    });
  }
};

// The launch shape, kept as data. The GPU takes several systems per block, so that
// a block has about a warp's multiple of elements and one read of a coupling from
// L1 serves them all, within 48 KiB of shared memory (no opt-in); threads: one per
// element up to 256, in whole warps. The CPU takes one system per block (a block is
// one core's loop; more systems would only lengthen it). Not tuned on a GPU (any
// shape gives the same bits).
struct FusedRelaxationLaunchPolicy {
  static constexpr int max_threads_per_block = 256;
  static constexpr int max_shared_bytes = 48 * 1024;
  static int systems_per_block(bool on_chip_blocks, int units_total) {
    if (!on_chip_blocks || units_total >= max_threads_per_block) return 1;
    const int by_threads = max_threads_per_block / units_total;
    const int by_memory = max_shared_bytes / (3 * units_total * static_cast<int>(sizeof(float)));
    const int systems = by_threads < by_memory ? by_threads : by_memory;
    return systems < 1 ? 1 : systems;
  }
  static int threads_per_block(int elements) {
    const int warps = (elements + 31) / 32;
    return warps * 32 < max_threads_per_block ? (warps < 1 ? 32 : warps * 32) : max_threads_per_block;
  }
};

// The naive reference: the same phase as plain loops over systems, steps, layers and
// units, every sum over j ascending, every field from the previous step's states;
// in place on body.states.
inline void fused_relaxation_reference(const FusedRelaxationBlock& body) {
  const int layers = body.layers, top = layers - 1;
  for (int r = 0; r < body.batch; ++r) {
    std::vector<std::vector<float>> s(layers), next(layers);
    for (int i = 0; i < layers; ++i)
      s[i].assign(body.states[i] + std::size_t(r) * body.units[i], body.states[i] + std::size_t(r + 1) * body.units[i]);
    for (int step = 0; step < body.steps; ++step) {
      for (int i = 0; i < layers; ++i) {
        const int n = body.units[i];
        next[i].resize(std::size_t(n));
        for (int k = 0; k < n; ++k) {
          float drive = 0.0f;
          if (i == 0) {
            drive = body.input_drive[std::size_t(r) * n + k];
          } else {
            for (int j = 0; j < body.units[i - 1]; ++j) drive += body.weights[i][std::size_t(j) * n + k] * s[i - 1][j];
          }
          float field = drive + body.bias[i][k];
          if (i < top) {
            float feedback = 0.0f;
            for (int j = 0; j < body.units[i + 1]; ++j)
              feedback += body.weights_transposed[i][std::size_t(j) * n + k] * s[i + 1][j];
            field += feedback;
          }
          const bool nudged = body.target && i == top;
          next[i][k] = hopfield_unit_step(body.integrator, body.dt, s[i][k], field, nudged ? body.beta : 0.0f,
                                          nudged ? body.target[std::size_t(r) * n + k] : 0.0f);
        }
      }
      s.swap(next);
    }
    for (int i = 0; i < layers; ++i)
      for (int k = 0; k < body.units[i]; ++k) body.states[i][std::size_t(r) * body.units[i] + k] = s[i][k];
  }
}

}  // namespace eqprop
