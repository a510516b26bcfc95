// A whole relaxation phase of the layered oscillator network (models/oscillator_network.h)
// in one launch: its fused path, for the phases it covers (synchronous gradient flow
// on the phases, the read-out nudge of the output layer, no Langevin noise, early
// exit or ADC read-out). The per-oscillator math is OscillatorStepOp's
// (kernels/oscillator_step.h: OscillatorStepOp::advance on fields assembled in its
// order, phase_sincos for the starting cos and sin), so this path and the GEMM path
// differ only in how the couplings' sums are ordered (see Determinism).
//
// Body over an execution context (kernels/execution_context.h), laid out as the
// dense network's (kernels/fused_relaxation_block.h; the geometry, thread mapping and
// coupling sums are kernels/fused_layered_phase.h's): block b relaxes systems
// [b G, b G + G), their phases, cos, sin and fields in shared memory, the couplings
// read from global memory at every step. The coupling force is two sums per
// coupling, on cos phi and on sin phi (kernels/oscillator_step.h); the clamped
// input's constant fields, cos(phi_0) J_0 and sin(phi_0) J_0, are two GEMMs before
// the launch (the model's set_input). Phases:
//   load:    the phases of every layer, their cos and sin, and layer 0's input fields
//   T times: fields: c_drive_i = sum_j J_i[j][k] cos_{i-1}[j], s_drive_i likewise on sin (i >= 1)
//                    c_feedback_i = sum_j J_{i+1}^T[j][k] cos_{i+1}[j], s_feedback_i    (below the top)
//            step:   phi, cos, sin <- OscillatorStepOp::advance(drive + feedback, the nudge)
//   store:   the phases to global memory
// Two barriers per step (FusedLayeredPhase::run_phases): the fields read every
// layer's cos and sin, which the step then overwrites; the step reads fields that
// other threads wrote.
// Cost per step and system: the GEMM path's multiply-adds (four passes through every
// coupling between oscillator layers); the fused path saves the launches (four GEMMs
// per such coupling and one step op per layer and step) and the passes over the
// (batch, units) arrays in global memory.
//
// Determinism: every sum starts at 0 and runs over j ascending whatever the block
// size, thread order or tile width, and the rest is OscillatorStepOp's float
// arithmetic: bit-exact against fused_oscillator_reference on one backend, and
// across backends (CUDA built -fmad=false). Against the GEMM path it is exact up to
// reduction order: that is the promise declared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/determinism.h"
#include "kernels/execution_context.h"
#include "kernels/fused_layered_phase.h"
#include "kernels/hostdevice.h"
#include "kernels/oscillator_step.h"

namespace eqprop {

// A block's arrays in shared memory, each (elements): for every layer i, its
// (systems_per_block, units[i]) rows, layer after layer.
struct FusedOscillatorShared {
  float* phases;
  float* cosines;
  float* sines;
  float* cos_drive;
  float* sin_drive;
  float* cos_feedback;
  float* sin_feedback;
};

// Relaxes rows [0, batch) of the phases for `steps` synchronous gradient-flow steps.
// Launch: blocks() blocks, any block size (the GPU wants a multiple of 32),
// shared_bytes() of shared memory.
struct FusedOscillatorBlock : FusedLayeredBody<FusedOscillatorBlock> {
  static constexpr Determinism determinism = Determinism::exact_up_to_reduction_order;
  // Shared floats per element: the seven arrays of FusedOscillatorShared.
  static constexpr int shared_arrays_per_element = 7;
  // FusedLayeredPhase's states are the phases in [-pi, pi], its target the one-hot
  // y of the read-out's cost, its weights the couplings J; and:
  const float* input_cos_drive;  // (batch, units[0]) = cos(phi_0) J_0, the clamped input's constant field
  const float* input_sin_drive;  // (batch, units[0]) = sin(phi_0) J_0
  float shil;                    // S, the second-harmonic injection

  std::size_t shared_bytes() const {
    return std::size_t(shared_arrays_per_element) * std::size_t(elements()) * sizeof(float);
  }

  EQ_HD FusedOscillatorShared shared_arrays(void* memory) const {
    float* base = static_cast<float*>(memory);
    const int n = elements();
    return {base, base + n, base + 2 * n, base + 3 * n, base + 4 * n, base + 5 * n, base + 6 * n};
  }

  // The phases, one thread's share of each (public so that a test can assemble a
  // body with a barrier left out).
  template <int TileWidth>
  EQ_HD void load(const FusedOscillatorShared& shared, int block, int thread, int threads) const {
    for_each_element<TileWidth>(block, thread, threads, [&](int i, int local, std::int64_t global, int) {
      shared.phases[local] = states[i][global];
      phase_sincos(shared.phases[local], shared.cosines[local], shared.sines[local]);
      if (i == 0) {  // constant over the phase
        shared.cos_drive[local] = input_cos_drive[global];
        shared.sin_drive[local] = input_sin_drive[global];
      }
    });
  }

  template <int TileWidth>
  EQ_HD void field_phase(const FusedOscillatorShared& shared, int block, int thread, int threads) const {
    for_each_run<TileWidth>(block, thread, threads, [&](int i, int system, int first, int end, int at) {
      coupling_fields<TileWidth>(shared.cosines, i, system, first, end, at, shared.cos_drive, shared.cos_feedback);
      coupling_fields<TileWidth>(shared.sines, i, system, first, end, at, shared.sin_drive, shared.sin_feedback);
    });
  }

  template <int TileWidth>
  EQ_HD void step_phase(const FusedOscillatorShared& shared, int block, int thread, int threads) const {
    for_each_element<TileWidth>(block, thread, threads, [&](int i, int local, std::int64_t global, int k) {
      // OscillatorStepOp::update's fields, in its order.
      float cos_field = shared.cos_drive[local], sin_field = shared.sin_drive[local];
      if (i + 1 < layers) {
        cos_field += shared.cos_feedback[local];
        sin_field += shared.sin_feedback[local];
      }
      OscillatorStepOp::advance(shared.phases[local], shared.cosines[local], shared.sines[local], cos_field, sin_field,
                                bias[i][k], shil, nudge_of(i), goal_of(i, global), dt, 0.0f);
    });
  }

  template <int TileWidth>
  EQ_HD void store(const FusedOscillatorShared& shared, int block, int thread, int threads) const {
    store_states<TileWidth>(shared.phases, block, thread, threads);
  }
};

// The naive reference: the same phase as plain loops over systems, steps, layers and
// oscillators, cos and sin of every phase taken afresh at every step, every sum over
// j ascending, every field from the previous step's phases; in place on body.states.
inline void fused_oscillator_reference(const FusedOscillatorBlock& body) {
  const int top = body.layers - 1;
  std::vector<std::vector<float>> cosines(std::size_t(body.layers)), sines(std::size_t(body.layers)),
      next(std::size_t(body.layers));
  fused_reference_systems(body, [&](int r, std::vector<std::vector<float>>& phases) {
    for (int i = 0; i < body.layers; ++i) {
      cosines[i].resize(phases[i].size());
      sines[i].resize(phases[i].size());
      for (std::size_t k = 0; k < phases[i].size(); ++k) phase_sincos(phases[i][k], cosines[i][k], sines[i][k]);
    }
    for (int i = 0; i < body.layers; ++i) {
      const int n = body.units[i];
      next[i].resize(std::size_t(n));
      for (int k = 0; k < n; ++k) {
        const std::size_t at = std::size_t(r) * n + k;
        float cos_field = i == 0 ? body.input_cos_drive[at] : fused_reference_drive(body, cosines, i, k);
        float sin_field = i == 0 ? body.input_sin_drive[at] : fused_reference_drive(body, sines, i, k);
        if (i < top) {
          cos_field += fused_reference_feedback(body, cosines, i, k);
          sin_field += fused_reference_feedback(body, sines, i, k);
        }
        const bool nudged = body.target && i == top;
        float phase = phases[i][k], c = cosines[i][k], s = sines[i][k];
        OscillatorStepOp::advance(phase, c, s, cos_field, sin_field, body.bias[i][k], body.shil,
                                  nudged ? body.beta : 0.0f, nudged ? body.target[at] : 0.0f, body.dt, 0.0f);
        next[i][k] = phase;
      }
    }
    phases.swap(next);
  });
}

}  // namespace eqprop
