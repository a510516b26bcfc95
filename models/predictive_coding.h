// The predictive-coding network (DESIGN.md, "Predictive coding") trained by
// Equilibrium Propagation (Kerjan, Hoier & Scellier 2026): the energy
//   E(s) = sum_{l=1..L} 1/2 ||s_l - f(W_l s_{l-1} + b_l)||^2,   s_0 = x,
// f the sigmoid or the hard sigmoid, the MSE cost C = 1/2 ||s_L - y||^2 on the last layer.
// - The free equilibrium is the feed-forward pass s_l = f(a_l): every term of E is
//   zero there, its minimum, so the free phase is one forward pass, not iterated.
// - The nudged phases minimise F = E + beta C by asynchronous sweeps
//   (models/update_order.h: odd layers, then even ones; each half a block update
//   of layers coupled only to the other parity), predictive_coding_update of
//   kernels/predictive_coding.h per unit; synchronous sweeps diverge (ibid.).
// - At the free equilibrium the implicit gradient is backprop through the forward
//   pass, which implicit_gradient computes (training.algorithm = implicit).
// Layout as DenseHopfield's: weights[l] is (layers[l], layers[l+1]) row-major,
// the W_{l+1} above (a_{l+1} = s_l weights[l] + biases[l], rows are systems);
// state layer i is layers[i + 1].
#pragma once

#include <string>
#include <vector>

#include "kernels/device_buffer.h"
#include "kernels/predictive_coding.h"
#include "models/layered_model.h"

namespace eqprop {

class PredictiveCoding final : public LayeredModel {
 public:
  // layers: input, ..., output (at least two); f of every layer.
  PredictiveCoding(Backend& backend, std::vector<int> layers, PredictionActivation activation, int max_batch);

  std::string kind() const override { return "predictive_coding"; }
  const std::vector<int>& layers() const { return layers_; }

  // Clamps x (batch, layers[0]) and caches its drive x W_1 (the widest GEMM, once per batch).
  void set_input(const float* x, int batch) override;
  // beta = 0: the forward pass (whatever the state held; one step); otherwise
  // relax_by_iterations. Refuses cSB and Langevin noise (std::invalid_argument).
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override;
  // Up to spec.steps asynchronous sweeps (spec.order must say so) of
  // predictive_coding_update from `state`
  // (LayeredModel's loop with its early exit), at any beta, 0 included.
  PhaseResult relax_by_iterations(NetworkState& state, const float* target, const PhaseSpec& spec);

  // energy (batch, device) = E(s) of every system, without the cost.
  void energy(const NetworkState& state, float* energy) override;
  // g = (dE/dtheta(s_a) - dE/dtheta(s_b)) / (beta_a - beta_b), batch-averaged, with
  //   dE/dW_l = -s_{l-1}^T e_l,  dE/db_l = -sum_batch e_l,  e_l = (s_l - f(a_l)) f'(a_l)
  // (zero at the free state: one-sided EP reads the nudged state alone).
  void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                   const float* target, ParameterSet& gradient) override;
  // The exact gradient at the free equilibrium: backprop through the forward pass,
  //   d_L = (s_L - y) f'(a_L) / batch,  d_l = (d_{l+1} W_{l+1}^T) f'(a_l),
  //   dL/dW_l = s_{l-1}^T d_l,  dL/db_l = sum_batch d_l.
  // One backward pass is exact: `iterations` is unused and the residual is 0.
  float implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                          ParameterSet& gradient) override;
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override;

 private:
  // One asynchronous (or synchronous) sweep of rows [begin, begin + rows): per group
  // of spec.order, each moving layer's drive and the feedback of the layer above
  // (its drive, error and one GEMM through W^T) from the latest states, then
  // PredictiveCodingStepOp per moving layer.
  void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                 int rows) override;
  void prepare_phase(const NetworkState& state, const PhaseSpec& spec) override;
  // Computes drive_[i] (rows [begin, begin + rows)) = s_{i-1} W_i for i >= 1 and
  // returns state layer i's drive from row 0 (the cached input drive for i = 0).
  const float* layer_drive(const NetworkState& state, int i, int begin, int rows);
  // errors[i] = e_i of every state layer of `state`, on the whole batch.
  void layer_errors(const NetworkState& state, std::vector<DeviceBuffer<float>>& errors);
  int top() const { return static_cast<int>(layers_.size()) - 2; }

  std::vector<int> layers_;
  PredictionActivation activation_;
  DeviceBuffer<float> input_drive_;            // (batch, layers[1]) = x W_1
  std::vector<DeviceBuffer<float>> drive_;     // per state layer (empty for layer 0): s_{i-1} W_i
  std::vector<DeviceBuffer<float>> feedback_;  // per state layer below the top: e_{i+1} W_{i+1}^T
  // Per state layer: e_i of a sweep or of the gradient's first state (or backprop's
  // d_i), and of the gradient's second state.
  std::vector<DeviceBuffer<float>> error_, other_error_;
};

}  // namespace eqprop
