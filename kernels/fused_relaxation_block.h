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
// Two barriers per step (FusedLayeredPhase::run_phases).
//
// Thread mapping and coupling sums: kernels/fused_layered_phase.h, shared with the
// oscillator network's fused body.
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
#include "kernels/fused_layered_phase.h"
#include "kernels/hostdevice.h"
#include "kernels/layer_step.h"

namespace eqprop {

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
struct FusedRelaxationBlock : FusedLayeredBody<FusedRelaxationBlock> {
  static constexpr Determinism determinism = Determinism::exact_up_to_reduction_order;
  // FusedLayeredPhase's states are in [0, activation_max], its target the MSE target; and:
  const float* input_drive;  // (batch, units[0]) = x W_1, the clamped input's constant drive
  Integrator integrator;     // fixed_point or gradient_flow
  float activation_max = kHardSigmoidMax;  // c of rho = clip(s, 0, c) (LayerStepOp's)

  std::size_t shared_bytes() const { return 3 * std::size_t(elements()) * sizeof(float); }

  EQ_HD FusedRelaxationShared shared_arrays(void* memory) const {
    float* base = static_cast<float*>(memory);
    const int n = elements();
    return {base, base + n, base + 2 * n};
  }
  // The phases, one thread's share of each (public so that a test can assemble a
  // body with a barrier left out and see the order tests catch it).
  template <int TileWidth>
  EQ_HD void load(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_element<TileWidth>(block, thread, threads, [&](int i, int local, std::int64_t global, int) {
      shared.states[local] = states[i][global];
      if (i == 0) shared.drive[local] = input_drive[global];  // constant over the phase
    });
  }

  template <int TileWidth>
  EQ_HD void field_phase(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      coupling_fields<TileWidth>(shared.states, i, system, first, end, at, shared.drive, shared.feedback);
    });
  }

  template <int TileWidth>
  EQ_HD void step_phase(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    for_each_element<TileWidth>(block, thread, threads, [&](int i, int local, std::int64_t global, int k) {
      // LayerStepOp::update's field and nudge, in its order.
      float field = shared.drive[local] + bias[i][k];
      if (i + 1 < layers) field += shared.feedback[local];
      shared.states[local] = hopfield_unit_step(integrator, dt, shared.states[local], field, nudge_of(i),
                                                goal_of(i, global), activation_max);
    });
  }

  template <int TileWidth>
  EQ_HD void store(const FusedRelaxationShared& shared, int block, int thread, int threads) const {
    store_states<TileWidth>(shared.states, block, thread, threads);
  }
};

// The naive reference: the same phase as plain loops over systems, steps, layers and
// units, every sum over j ascending, every field from the previous step's states;
// in place on body.states.
inline void fused_relaxation_reference(const FusedRelaxationBlock& body) {
  const int top = body.layers - 1;
  std::vector<std::vector<float>> next(std::size_t(body.layers));
  fused_reference_systems(body, [&](int r, std::vector<std::vector<float>>& s) {
    for (int i = 0; i < body.layers; ++i) {
      const int n = body.units[i];
      next[i].resize(std::size_t(n));
      for (int k = 0; k < n; ++k) {
        const float drive = i == 0 ? body.input_drive[std::size_t(r) * n + k] : fused_reference_drive(body, s, i, k);
        float field = drive + body.bias[i][k];
        if (i < top) field += fused_reference_feedback(body, s, i, k);
        const bool nudged = body.target && i == top;
        next[i][k] = hopfield_unit_step(body.integrator, body.dt, s[i][k], field, nudged ? body.beta : 0.0f,
                                        nudged ? body.target[std::size_t(r) * n + k] : 0.0f, body.activation_max);
      }
    }
    s.swap(next);
  });
}

}  // namespace eqprop
