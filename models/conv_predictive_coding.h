// The convolutional predictive-coding network (DESIGN.md, "Predictive coding";
// Kerjan, Hoier & Scellier 2026, arXiv 2606.03584, their VGG networks): the energy
//   E(s) = sum_l 1/2 ||s_l - f(a_l)||^2,   s_0 = x,
//   a_l = P(W_l * s_{l-1}) + b_l   for a conv layer (P the 2x2 pooling, * the convolution),
//   a_l = s_{l-1} W_l + b_l        for a dense layer,
// f the sigmoid or the hard sigmoid (kernels/predictive_coding.h), the MSE cost on the
// last layer. The pooling sits inside the prediction, so a conv state lives on the
// pooled plane: with max pooling and a nondecreasing f, f(P(a)) = P(f(a)), and the
// free phase is the usual VGG block conv -> f -> pool. The bias is per channel; the
// 2x2 windows tile the plane, so P(y + b) = P(y) + b (as in models/conv_hopfield.h).
// - The free equilibrium is the forward pass (every term of E zero): one
//   convolution or GEMM and one PredictionOp per layer.
// - The nudged phases minimise F = E + beta C by asynchronous sweeps
//   (models/update_order.h) of PredictiveCodingStepOp, the dense network's per-unit
//   update: a unit reads its prediction f(a_l) and the feedback of the layer above,
//     -d/ds_l 1/2 ||s_{l+1} - f(a_{l+1})||^2 = W_{l+1}^T *' P^T(e_{l+1}),
//   e_{l+1} = (s_{l+1} - f(a_{l+1})) f'(a_{l+1}), P^T the adjoint of the pooling
//   (unpooling through the argmax of P(W_{l+1} * s_l) at the current s_l).
// - dE/dW_l = -corr(s_{l-1}, P^T(e_l)), dE/db_l[c] = -sum over the plane of e_l[c]
//   (dense: -s_{l-1}^T e_l, -e_l): zero at the free state, so one-sided EP reads the
//   nudged state alone; as beta -> 0 it is backprop through the forward pass, which
//   implicit_gradient computes in one backward pass.
//
// Layout and chunking as ConvHopfield's: states, the input and the drives are
// per-sample NCHW (batch, C*H*W); the convolutions go through models/conv_ops.h over
// chunks of the batch so that im2col's workspace stays bounded; the pre-pool output
// is written channel-major by the GEMM and pooled into the NCHW drive. Parameters:
// weights[k] (Co, C, K, K), biases[k] (Co) for conv layer k, then (fan_in, units)
// and (units) for the dense layers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/device_buffer.h"
#include "kernels/predictive_coding.h"
#include "models/conv_hopfield.h"  // ConvHopfieldShape, PoolKind
#include "models/layered_model.h"

namespace eqprop {

class ConvPredictiveCoding final : public LayeredModel {
 public:
  // shape.cost must be mse (the nudge is the MSE cost's); workspace_floats bounds the
  // im2col workspace as ConvHopfield's does.
  ConvPredictiveCoding(Backend& backend, ConvHopfieldShape shape, PredictionActivation activation, int max_batch,
                       std::int64_t workspace_floats = ConvHopfield::kDefaultWorkspaceFloats);

  std::string kind() const override { return "conv_predictive_coding"; }
  const ConvHopfieldShape& shape() const { return shape_; }
  int chunk_samples() const { return chunk_; }

  // Uniform(+-gain/sqrt(fan_in)) weights and biases, fan_in = C*K*K for a kernel.
  void initialize(std::uint64_t seed, float gain) override;
  ParameterSet make_parameter_like() const override;
  std::vector<std::int64_t> tensor_shape(int l, bool bias) const override;

  // Clamps x (batch, C*H*W) and caches its drive P(W_0 * x) with the pooling argmax,
  // and the conv biases broadcast over their planes. Reads the parameters: call it
  // after changing them.
  void set_input(const float* x, int batch) override;
  // beta = 0: the forward pass; otherwise relax_by_iterations. Refuses cSB and
  // Langevin noise (std::invalid_argument).
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override;
  // Up to spec.steps asynchronous sweeps (spec.order must say so) from `state`, at any beta.
  PhaseResult relax_by_iterations(NetworkState& state, const float* target, const PhaseSpec& spec);

  // energy (batch, device) = E(s) of every system, without the cost.
  void energy(const NetworkState& state, float* energy) override;
  // g = (dE/dtheta(s_a) - dE/dtheta(s_b)) / (beta_a - beta_b), batch-averaged.
  void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                   const float* target, ParameterSet& gradient) override;
  // Backprop through the forward pass at the free state: d_L = (s_L - y) f'(a_L) / batch,
  // d_l = backward_{l+1}(d_{l+1}) f'(a_l); exact, so `iterations` is unused and the residual 0.
  float implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                          ParameterSet& gradient) override;
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override;

 private:
  void prepare_phase(const NetworkState& state, const PhaseSpec& spec) override;
  // One asynchronous sweep of the whole batch (begin 0, rows batch): per group of
  // spec.order, each moving layer's feedback (the error of the layer above carried
  // back through its tensor) and drive, then PredictiveCodingStepOp.
  void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                 int rows) override;
  // drive_[i] = the drive of state layer i from `state` (P(W_i * s_{i-1}) with the
  // argmax in argmax_[i], or s_{i-1} W_i) on the whole batch; the cached input drive
  // for i = 0. Returns it.
  const float* layer_drive(const NetworkState& state, int i);
  // out (batch, units(t)) = the adjoint of tensor t's drive applied to
  // upstream (batch, units(t + 1)): W_t^T *' P^T(upstream) through argmax_[t] (which
  // must be at the current layer t), or upstream W_t^T.
  void backward(int t, const float* upstream, float* out);
  // gradient (+)= alpha * (d drive_t / d W_t)^T upstream: corr(below, P^T(upstream))
  // for a conv tensor through argmax_[t] (which must be at `below`), below^T upstream
  // for a dense one; overwrites when `overwrite`. below (batch, units(t)), upstream
  // (batch, units(t + 1)).
  void weight_gradient(int t, const float* below, const float* upstream, float alpha, bool overwrite,
                       float* gradient);
  // gradient = the bias's share: alpha_a * upstream_a + alpha_b * upstream_b summed
  // over the batch (and, for a conv tensor, over each channel's plane); upstream_b may be null.
  void bias_gradient(int t, const float* upstream_a, const float* upstream_b, float alpha_a, float alpha_b,
                     float* gradient);
  // drive_[k] = P(W_k * below) of conv tensor k, chunk by chunk, argmax in argmax_[k].
  void conv_drive(int k, const float* below);
  // errors[i] = e_i of every state layer of `state`; each conv tensor's argmax is then at `state`.
  void layer_errors(const NetworkState& state, std::vector<DeviceBuffer<float>>& errors);
  // The per-unit bias of state layer i: the conv bias broadcast, or the dense bias.
  const float* unit_bias(int i) const;
  int top() const { return shape_.state_layers() - 1; }
  bool is_conv(int t) const { return t < shape_.conv_layers(); }

  ConvHopfieldShape shape_;
  PredictionActivation activation_;
  int chunk_ = 1;
  std::vector<DeviceBuffer<float>> drive_;          // per state layer (batch, units); [0] the cached input drive
  std::vector<DeviceBuffer<float>> feedback_;       // per state layer (batch, units)
  std::vector<DeviceBuffer<float>> error_, other_error_;  // per state layer (batch, units)
  std::vector<DeviceBuffer<std::int32_t>> argmax_;  // per conv tensor, max pooling (batch, pooled units)
  std::vector<DeviceBuffer<float>> expanded_bias_;  // per conv state layer (units)
  DeviceBuffer<float> columns_;                     // im2col workspace (C*K*K, chunk*OH*OW), widest layer
  DeviceBuffer<float> conv_out_;                    // (Co, chunk*OH*OW): pre-pool output / unpooled operand
  DeviceBuffer<float> unit_sums_;                   // (widest conv state units) batch sums before the plane sum
  DeviceBuffer<float> ones_;                        // (widest plane) for plane sums as GEMV
};

}  // namespace eqprop
