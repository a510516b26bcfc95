// A layered network of coupled phase oscillators trained by EP (DESIGN.md §1;
// Wang, Wanjura & Marquardt 2024; Gower 2025, "Equilibrium propagation on
// oscillator Ising machines"): the state of a unit is a phase phi, the energy
//   V = -sum_l sum_ij J^l_ij cos(phi_{l,i} - phi_{l+1,j}) - sum h_i cos phi_i - sum (S/2) cos 2 phi_i
// (the -1/2 sum_ij J_ij cos(phi_i - phi_j) of DESIGN.md §1 with J only between
// consecutive layers, each pair counted once), the dynamics gradient flow
// phi <- phi - dt dF/dphi with F = V + beta C, and Langevin noise as the phase noise.
//
// Layout: layers[0] is the input, clamped to the phases phi_0 = input_scale * x;
// layers[1..L] are oscillators, layers[L] the output. weights[l] is
// (layers[l], layers[l+1]) row-major, the couplings J between layers l and l+1;
// biases[l] (layers[l+1]) is h of layer l+1. S (shil) is one fixed, untrained
// second-harmonic injection for every oscillator.
// Read-out and cost (kernels/oscillator_step.h): u_k = (1 + cos phi_k) / 2 is the
// prediction of class k, C = 1/2 ||u - y||^2 against the one-hot y.
// States are the phases, wrapped into [-pi, pi); the free phase starts from
// phi = pi/2 everywhere (u = 1/2: no class preferred; and cos 2 phi = -1, the top of
// the injection's potential, so S > 0 pushes every phase towards 0 or pi from there).
//
// Every coupling computation is a GEMM on cos phi and sin phi (no batch x N x M
// tensor): the force sin phi_i (J cos phi)_i - cos phi_i (J sin phi)_i, the energy,
// and the contrastive update dV/dJ_ij = -(cos phi_i cos phi_j + sin phi_i sin phi_j).
//
// Two relaxation paths (training.relaxation_path, models/model_config.h): the GEMM
// path above, or the fused path, one launch per phase (kernels/fused_oscillator_block.h)
// for the phases it covers; they agree up to the couplings' summation order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/oscillator_step.h"
#include "models/layered_model.h"
#include "models/model_config.h"

namespace eqprop {

struct OscillatorShape {
  std::vector<int> layers;  // input, ..., output
  float shil = 0.0f;        // S, the second-harmonic injection of every oscillator
  float input_scale = kPi;  // phi_0 = input_scale * x

  int weight_tensors() const { return static_cast<int>(layers.size()) - 1; }
  int state_layers() const { return weight_tensors(); }
  int classes() const { return layers.back(); }
};

class OscillatorNetwork final : public LayeredModel {
 public:
  // path: how relax() runs a phase (training.relaxation_path, below).
  OscillatorNetwork(Backend& backend, OscillatorShape shape, int max_batch, RelaxationPath path = RelaxationPath::automatic);

  const OscillatorShape& shape() const { return shape_; }
  std::string kind() const override { return "oscillator"; }

  // initialize() is the dense model's scaled uniform init (LayeredModel), U(-a, a),
  // a = gain / sqrt(fan_in): the coupling field on an oscillator, sum_i J_ij
  // cos(phi_i - phi_j), then has a spread of order gain whatever the layer widths.
  // Clamps the input phases input_scale * x (batch, layers[0]) and caches their
  // constant fields on layer 1, cos(phi_0) J_0 and sin(phi_0) J_0.
  void set_input(const float* x, int batch) override;
  // Sets every phase to pi/2.
  void reset(NetworkState& state) override;
  // relax(): up to spec.steps gradient-flow steps, synchronous or asynchronous
  // (spec.order: odd layers, then even ones from the new odd ones): the fused path where
  // relaxation_path and the phase allow it (fused_path_refusal), else LayeredModel's
  // GEMM path. relaxation_path = fused with a phase the fused path does not cover
  // throws std::invalid_argument naming why.
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override;
  // Why the fused path cannot run `spec` on this network, or null when it can.
  const char* fused_path_refusal(const PhaseSpec& spec) const;
  // energy (batch, device) = V(phi) of every system, without the cost.
  void energy(const NetworkState& state, float* energy) override;
  // g = (dV/dtheta(phi_a) - dV/dtheta(phi_b)) / (beta_a - beta_b), batch mean.
  void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                   const float* target, ParameterSet& gradient) override;
  // Exact dLoss/dtheta at the free fixed point (EnergyModel::implicit_gradient):
  // the adjoint H mu = dC/dphi of the batch mean (H = d2V/dphi2, the input's mu 0)
  // by `iterations` steps of the last free phase's gradient flow linearised at its
  // end (kernels/oscillator_adjoint.h), then, with the mixed derivatives of
  // models/oscillator_network_reference.cpp,
  //   dL/dJ_ab = -(mu_a - mu_b) sin(phi_a - phi_b),  dL/dh_a = -mu_a sin phi_a,
  // four GEMMs on cos, sin, c mu and s mu per coupling (two for the input's).
  // Throws std::invalid_argument before any free phase has run (its dt is the
  // adjoint's step).
  float implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                          ParameterSet& gradient) override;
  // Per-sample C = 1/2 ||u - y||^2 and whether argmax u is the label.
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override;

  double training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const override;

 private:
  // cos and sin of one state layer, (max_batch, units) each.
  struct Trig {
    DeviceBuffer<float> cosines, sines;
  };
  // trig[i] = cos, sin of state layer i of rows [begin, begin + rows) of `state`.
  void compute_trig(const NetworkState& state, std::vector<Trig>& trig, int begin, int rows);
  // Gradient flow is the only integrator of phases (anything else throws
  // std::invalid_argument); the steps start from cos and sin of the given state.
  void prepare_phase(const NetworkState& state, const PhaseSpec& spec) override;
  // One gradient-flow step of rows [begin, begin + rows), in spec.order.
  void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                 int rows) override;
  // The step of state layer i from its fields (cos_drive_, ..., or the cached input's).
  void step_layer(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int i, int begin,
                  int rows, bool nudged);
  // fields (rows, n_{i+1}) = cos/sin of layer i-1 (rows, n_i) times J_i (n_i, n_{i+1}),
  // the fields from below on state layer i >= 1, into cos_drive_[i], sin_drive_[i].
  void drive_from_below(const std::vector<Trig>& trig, int i, int begin, int rows);
  // fields (rows, n_{i+1}) = cos/sin of layer i+1 (rows, n_{i+2}) times J_{i+1}^T,
  // the fields from above on state layer i < top, into cos_feedback_[i], sin_feedback_[i].
  void feedback_from_above(const std::vector<Trig>& trig, int i, int begin, int rows);
  // The whole phase in one launch of FusedOscillatorBlock.
  void relax_fused(NetworkState& state, const float* target, const PhaseSpec& spec);

  OscillatorShape shape_;
  RelaxationPath relaxation_path_;
  std::vector<DeviceBuffer<float>> weights_transposed_;  // J_{i+1}^T per state layer below the top (fused path)
  Trig input_trig_;                            // (batch, layers[0]) cos, sin of the input phases
  DeviceBuffer<float> input_cos_drive_;        // (batch, layers[1]) cos(phi_0) J_0
  DeviceBuffer<float> input_sin_drive_;        // (batch, layers[1]) sin(phi_0) J_0
  std::vector<Trig> trig_;                     // per state layer: the relaxing state's cos, sin
  std::vector<Trig> other_trig_;               // per state layer: a second state's (gradient, energy)
  std::vector<DeviceBuffer<float>> cos_drive_, sin_drive_;        // per state layer, from below
  std::vector<DeviceBuffer<float>> cos_feedback_, sin_feedback_;  // per state layer, from above
  DeviceBuffer<float> readout_;                                   // (batch, classes) u
  DeviceBuffer<float> reset_phases_;                              // (batch * widest layer) of pi/2
  float free_phase_dt_ = 0.0f;  // dt of the last phase relaxed at beta = 0 (implicit_gradient's step)
  std::vector<DeviceBuffer<float>> curvature_;  // per state layer: the Hessian's diagonal (implicit_gradient)
};

}  // namespace eqprop
