// bSB / dSB with one replica per block, all the steps of a chunk in one launch: the
// fused path of the many-replica solver (engine/maxcut_solver.h) for problems small
// enough that a replica's state fits in block-shared memory. The equations and the
// pump schedule are those of kernels/simulated_bifurcation.h (Goto et al., Sci. Adv.
// 7, eabe7953, 2021), through the same functions (sb_oscillator_step, sb_detuning),
// and the state comes from the same SbInitOp, so this path and the GEMM path start
// from the same state and follow the same schedule; they differ only in how the field
// J x (or J sign(x)) is summed (see Determinism).
//
// Body over an execution context (kernels/execution_context.h). Block b integrates
// replica b; its x, y, the field and (dSB) sign(x) live in shared memory, J is read
// from global memory (L2 on the GPU, the caches on the CPU) at every step. Phases:
//   load:   x, y from global memory; sign(x) for dSB
//   K times: field:  f_i = sum_j J_ji in_j, in = x (bSB) or sign(x) (dSB)
//            step:   sb_oscillator_step of every unit, sign(x) for dSB
//   store:  x, y and sign(x) (the evaluation's input) to global memory
// Two barriers per step, both needed: the field reads every unit's input, which the
// step then overwrites; the step reads the field the other threads wrote.
//
// Thread mapping: every phase gives a thread runs of Context::tile_width
// consecutive units, strided by the block (for_each_tile). The field of a run is
// summed over j ascending from row j of J (J is symmetric, so J_ji = J_ij): on the
// GPU (runs of 1) a warp reads 32 neighbouring floats of a row (coalesced) and each
// thread keeps its sum in a register; on the CPU (runs of up to 1024) the sums
// accumulate in the shared field array, one axpy over the run per j, which
// vectorizes and streams row j once.
// Cost per step and replica: n^2 multiply-adds and n^2 floats of J read (from L1/L2,
// since every block reads the same J), against the GEMM path's J read once per step
// for all replicas; what the fused path saves is two kernel launches and two passes
// over the (replicas, n) arrays in global memory per step.
//
// Determinism: every f_i is summed from 0 over j ascending, whatever the block size,
// thread order or vector width, and the rest is plain float arithmetic: bit-exact
// against fused_sb_reference and across backends (CUDA built -fmad=false). Against
// the GEMM path it is exact up to the GEMM's summation order (bit-exact for dSB with
// integer couplings, whose sums are exact integers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/determinism.h"
#include "kernels/execution_context.h"
#include "kernels/fused_layered_phase.h"  // fused_relaxation_sum: the coupling sums
#include "kernels/hostdevice.h"
#include "kernels/simulated_bifurcation.h"

namespace eqprop {

// A block's arrays in shared memory, each (units).
struct FusedSbSharedArrays {
  float* x;
  float* y;
  float* field;
  float* signs;  // dSB only; null for bSB
};

// Runs steps [first_step, last_step) of a run of `steps` for every replica (one
// block each). Launch: `replicas` blocks, any block size (the GPU wants a multiple
// of 32 near units), shared_bytes() of shared memory.
struct FusedSbBlock {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* couplings;  // (units, units) J, symmetric
  float* x;                // (replicas, units) positions: read at the start, written at the end
  float* y;                // (replicas, units) momenta: likewise
  float* signs;            // (replicas, units) sign(x), written at the end
  std::int32_t units;
  std::int32_t first_step;
  std::int32_t last_step;
  std::int32_t steps;  // of the whole run: the pump reaches a0 at its last step
  float a0;
  float c0;
  float dt;
  bool discrete;  // dSB (field J sign(x)) or bSB (field J x)

  std::size_t shared_bytes() const { return std::size_t(discrete ? 4 : 3) * std::size_t(units) * sizeof(float); }

  EQ_HD FusedSbSharedArrays shared_arrays(void* memory) const {
    float* base = static_cast<float*>(memory);
    return {base, base + units, base + 2 * units, discrete ? base + 3 * units : nullptr};
  }

  template <class Context>
  EQ_HD void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedSbSharedArrays shared = shared_arrays(ctx.shared_memory());
    const int replica = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { load<tile>(shared, replica, thread, threads); });
    for (std::int32_t k = first_step; k < last_step; ++k) {
      const float detuning = sb_detuning(a0, k, steps);
      ctx.for_each_thread([&](int thread) { field_phase<tile>(shared, thread, threads); });
      ctx.for_each_thread([&](int thread) { step_phase<tile>(shared, detuning, thread, threads); });
    }
    ctx.for_each_thread([&](int thread) { store<tile>(shared, replica, thread, threads); });
  }

  // The phases, one thread's share of each (public so that a test can assemble a
  // body with a barrier left out and see the order tests catch it).
  template <int TileWidth>
  EQ_HD void load(const FusedSbSharedArrays& shared, int replica, int thread, int threads) const {
    const float* __restrict x_in = x + static_cast<std::int64_t>(replica) * units;
    const float* __restrict y_in = y + static_cast<std::int64_t>(replica) * units;
    for_each_tile<TileWidth>(thread, threads, units, [&](int first, int end) {
      for (int i = first; i < end; ++i) {
        shared.x[i] = x_in[i];
        shared.y[i] = y_in[i];
        if (discrete) shared.signs[i] = spin_of(x_in[i]);
      }
    });
  }

  template <int TileWidth>
  EQ_HD void field_phase(const FusedSbSharedArrays& shared, int thread, int threads) const {
    const float* input = discrete ? shared.signs : shared.x;
    for_each_tile<TileWidth>(thread, threads, units, [&](int first, int end) {
      fused_relaxation_sum<TileWidth>(couplings, input, units, units, first, end, shared.field);
    });
  }

  template <int TileWidth>
  EQ_HD void step_phase(const FusedSbSharedArrays& shared, float detuning, int thread, int threads) const {
    float* __restrict px = shared.x;
    float* __restrict py = shared.y;
    const float* __restrict pf = shared.field;
    float* __restrict ps = shared.signs;
    for_each_tile<TileWidth>(thread, threads, units, [&](int first, int end) {
      if (discrete) {
        for (int i = first; i < end; ++i) {
          sb_oscillator_step(px[i], py[i], pf[i], detuning, a0, c0, dt);
          ps[i] = spin_of(px[i]);
        }
      } else {
        for (int i = first; i < end; ++i) sb_oscillator_step(px[i], py[i], pf[i], detuning, a0, c0, dt);
      }
    });
  }

  template <int TileWidth>
  EQ_HD void store(const FusedSbSharedArrays& shared, int replica, int thread, int threads) const {
    float* __restrict x_out = x + static_cast<std::int64_t>(replica) * units;
    float* __restrict y_out = y + static_cast<std::int64_t>(replica) * units;
    float* __restrict signs_out = signs + static_cast<std::int64_t>(replica) * units;
    for_each_tile<TileWidth>(thread, threads, units, [&](int first, int end) {
      for (int i = first; i < end; ++i) {
        x_out[i] = shared.x[i];
        y_out[i] = shared.y[i];
        signs_out[i] = spin_of(shared.x[i]);
      }
    });
  }
};

// The GPU block size, kept as data: one thread per unit up to 256, in whole warps,
// so a field of up to 256 spins is one tile per thread; beyond that a thread takes
// several. Not tuned on a GPU (any block size gives the same bits).
struct FusedSbLaunchPolicy {
  static constexpr int max_threads_per_block = 256;
  static int threads_per_block(int units) {
    const int warps = (units + 31) / 32;
    return warps * 32 < max_threads_per_block ? (warps < 1 ? 32 : warps * 32) : max_threads_per_block;
  }
};

// The naive reference: the same run as plain loops over replicas, steps and units,
// every field summed over j ascending, in place on body.x, body.y, body.signs.
inline void fused_sb_reference(const FusedSbBlock& body, int replicas) {
  const int n = body.units;
  std::vector<float> field(static_cast<std::size_t>(n));
  for (int r = 0; r < replicas; ++r) {
    float* x = body.x + static_cast<std::size_t>(r) * n;
    float* y = body.y + static_cast<std::size_t>(r) * n;
    for (int k = body.first_step; k < body.last_step; ++k) {
      for (int i = 0; i < n; ++i) {
        float sum = 0.0f;
        for (int j = 0; j < n; ++j)
          sum += body.couplings[static_cast<std::size_t>(j) * n + i] * (body.discrete ? spin_of(x[j]) : x[j]);
        field[i] = sum;
      }
      const float detuning = sb_detuning(body.a0, k, body.steps);
      for (int i = 0; i < n; ++i) sb_oscillator_step(x[i], y[i], field[i], detuning, body.a0, body.c0, body.dt);
    }
    for (int i = 0; i < n; ++i) body.signs[static_cast<std::size_t>(r) * n + i] = spin_of(x[i]);
  }
}

}  // namespace eqprop
