// The layered (dense) Hopfield network of DESIGN.md §1 and the EP computations on
// it: relaxation of a batch of independent systems, the contrastive parameter
// gradient, and the read-out's loss and accuracy. Everything runs on a Backend:
// GEMMs for the couplings, one fused LayerStepOp per layer and step between them.
//
// Layout: layers[0] is the input (clamped to x), layers[1..] carry states. With the
// MSE cost every layer above the input is in the energy and the last one is the
// output. With the cross-entropy cost the last weight tensor is a softmax read-out
// of the top state layer, outside the energy (Laborieux et al. 2021, §3).
// weights[l] is (layers[l], layers[l+1]) row-major: W_{l+1} of DESIGN.md.
//
// Two relaxation paths (training.relaxation_path, models/model_config.h): the GEMM
// path above, or the fused path, one launch per phase (kernels/fused_relaxation_block.h)
// for the phases it covers; they agree up to the couplings' summation order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/layer_step.h"
#include "kernels/row_metrics.h"
#include "models/layered_model.h"
#include "models/model_config.h"

namespace eqprop {

struct DenseHopfieldShape {
  std::vector<int> layers;  // input, ..., output
  CostKind cost = CostKind::mse;
  float activation_max = kHardSigmoidMax;  // c of rho = clip(s, 0, c) (model.activation)

  int weight_tensors() const { return static_cast<int>(layers.size()) - 1; }
  // Layers with states (excludes the input; excludes the read-out for cross-entropy).
  int state_layers() const { return weight_tensors() - (cost == CostKind::cross_entropy ? 1 : 0); }
  int classes() const { return layers.back(); }
};

class DenseHopfield final : public LayeredModel {
 public:
  DenseHopfield(Backend& backend, DenseHopfieldShape shape, int max_batch,
                RelaxationPath relaxation_path = RelaxationPath::automatic);

  const DenseHopfieldShape& shape() const { return shape_; }
  std::string kind() const override { return "dense_hopfield"; }

  // Clamps the input x (batch, layers[0]) and caches its constant drive x W_1, so a
  // phase pays for the widest GEMM once per batch, not once per step.
  void set_input(const float* x, int batch) override;
  // relax(): up to spec.steps steps (LayeredModel), synchronous or asynchronous
  // (spec.order, models/update_order.h), cSB from the momenta zeroed. The final
  // step (at the cap) and every convergence check write the ADC reading.
  bool fuses_readout() const override { return true; }
  // The fused path where relaxation_path and the phase allow it (fused_path_refusal),
  // else LayeredModel's GEMM path. relaxation_path = fused with a phase the fused
  // path does not cover throws std::invalid_argument naming why.
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override;
  // Why the fused path cannot run `spec` on this network, or null when it can.
  const char* fused_path_refusal(const PhaseSpec& spec) const;

  // energy (batch, device) = E(s) of every system (DESIGN.md §1), without the cost.
  void energy(const NetworkState& state, float* energy) override;

  // EP estimate of dLoss/dtheta, batch-averaged (DESIGN.md §1):
  //   g = (dE/dtheta(s_a) - dE/dtheta(s_b)) / (beta_a - beta_b)
  // for energy parameters and, for the cross-entropy read-out,
  //   g = (beta_a dl/dtheta(s_a) - beta_b dl/dtheta(s_b)) / (beta_a - beta_b).
  // Symmetric EP: (s+, +beta) and (s-, -beta); one-sided: (s_beta, beta), (s0, 0).
  void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b,
                   float beta_b, const float* target, ParameterSet& gradient) override;

  // Exact dLoss/dtheta at the free fixed point (EnergyModel::implicit_gradient):
  // mu = M (dL/ds + K mu) by Jacobi steps, where K's blocks are the couplings, then
  //   dL/dW_l = rho(s_{l-1})^T mu_l + mu_{l-1}^T rho(s_l),   dL/db_l = sum_batch mu_l
  // (mu_0 = 0: the input is clamped), and the read-out's own gradient at s.
  float implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                          ParameterSet& gradient) override;

  // Per-sample loss and correctness (1/0) of the prediction read from `state`.
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override;

  double training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const override;

 private:
  // One step of rows [begin, begin + rows): for each group of spec.order, the
  // drives and feedbacks of its layers (GEMMs), the read-out's nudge, then one
  // fused LayerStepOp per layer of the group.
  void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                 int rows) override;

  // The whole phase in one launch of FusedRelaxationBlock.
  void relax_fused(NetworkState& state, const float* target, const PhaseSpec& spec);

  DenseHopfieldShape shape_;
  RelaxationPath relaxation_path_;
  std::vector<DeviceBuffer<float>> weights_transposed_;  // W_{i+1}^T per state layer below the top (fused path)
  DeviceBuffer<float> input_drive_;              // (batch, layers[1]) = x W_1
  std::vector<DeviceBuffer<float>> drive_;       // per state layer, from below
  std::vector<DeviceBuffer<float>> feedback_;    // per state layer, from above
};

}  // namespace eqprop
