#include "models/conv_predictive_coding.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "kernels/axpby.h"
#include "kernels/column_sum.h"
#include "kernels/plane_layout.h"
#include "models/conv_ops.h"
#include "models/parameter_init.h"

namespace eqprop {

ConvPredictiveCoding::ConvPredictiveCoding(Backend& backend, ConvHopfieldShape shape, PredictionActivation activation,
                                           int max_batch, std::int64_t workspace_floats)
    : LayeredModel(backend, "ConvPredictiveCoding", max_batch), shape_(std::move(shape)), activation_(activation) {
  shape_.validate();
  if (shape_.cost != CostKind::mse)
    throw std::invalid_argument("ConvPredictiveCoding: the nudge is the mse cost's; cross_entropy is not supported");
  if (max_batch_ < 1) throw std::invalid_argument("ConvPredictiveCoding: max_batch must be >= 1");
  LayerLayout layout;
  layout.input_size = shape_.input.units();
  layout.classes = shape_.classes();
  for (int i = 0; i < shape_.state_layers(); ++i) layout.state_units.push_back(shape_.units(i + 1));
  layout.whole_batch = true;  // each conv GEMM is large: no per-core slices
  define_layers(std::move(layout));
  parameters_ = make_parameter_like();
  std::int64_t widest_columns = 1, widest_output = 1;
  int widest_plane = 1, widest_conv_units = 1;
  for (int k = 0; k < shape_.conv_layers(); ++k) {
    const ConvShape conv = shape_.conv_shape(k, 1);
    widest_columns = std::max(widest_columns, conv.columns_size());
    widest_output = std::max(widest_output, conv.output_size());
    widest_plane = std::max(widest_plane, shape_.conv_plane(k + 1).plane());
    widest_conv_units = std::max(widest_conv_units, shape_.units(k + 1));
    argmax_.emplace_back(backend_,
                         shape_.pool == PoolKind::max ? std::size_t(max_batch_) * shape_.units(k + 1) : 0);
    expanded_bias_.emplace_back(backend_, std::size_t(shape_.units(k + 1)));
  }
  chunk_ = static_cast<int>(std::clamp<std::int64_t>(workspace_floats / widest_columns, 1, max_batch_));
  columns_ = DeviceBuffer<float>(backend_, std::size_t(chunk_) * widest_columns);
  conv_out_ = DeviceBuffer<float>(backend_, std::size_t(chunk_) * widest_output);
  for (int i = 0; i <= top(); ++i) {
    const std::size_t size = std::size_t(max_batch_) * shape_.units(i + 1);
    drive_.emplace_back(backend_, size);
    feedback_.emplace_back(backend_, i < top() ? size : 0);
    error_.emplace_back(backend_, size);
    other_error_.emplace_back(backend_, size);
  }
  unit_sums_ = DeviceBuffer<float>(backend_, std::size_t(widest_conv_units));
  ones_ = DeviceBuffer<float>(backend_, std::size_t(widest_plane));
  ones_.copy_from_host(std::vector<float>(ones_.size(), 1.0f));
}

ParameterSet ConvPredictiveCoding::make_parameter_like() const {
  ParameterSet set;
  for (int t = 0; t < shape_.weight_tensors(); ++t) {
    std::size_t weights = 1, biases = 1;
    for (std::int64_t d : tensor_shape(t, false)) weights *= static_cast<std::size_t>(d);
    for (std::int64_t d : tensor_shape(t, true)) biases *= static_cast<std::size_t>(d);
    set.weights.emplace_back(backend_, weights);
    set.biases.emplace_back(backend_, biases);
    set.weights.back().zero();
    set.biases.back().zero();
  }
  return set;
}

std::vector<std::int64_t> ConvPredictiveCoding::tensor_shape(int l, bool bias) const {
  if (is_conv(l)) {
    const ConvLayerSpec& c = shape_.convs[l];
    if (bias) return {c.channels};
    return {c.channels, shape_.conv_plane(l).channels, c.kernel, c.kernel};  // PyTorch's Conv2d layout
  }
  if (bias) return {shape_.units(l + 1)};
  return {shape_.units(l), shape_.units(l + 1)};
}

void ConvPredictiveCoding::initialize(std::uint64_t seed, float gain) {
  // U(-a, a), a = gain / sqrt(fan_in): PyTorch's Conv2d / Linear default range, as ConvHopfield.
  for (int t = 0; t < shape_.weight_tensors(); ++t) {
    const std::vector<std::int64_t> dims = tensor_shape(t, false);
    const double fan_in = is_conv(t) ? double(dims[1]) * dims[2] * dims[3] : double(dims[0]);
    const float bound = gain / static_cast<float>(std::sqrt(fan_in));
    fill_uniform_parameters(parameters_.weights[t], seed, static_cast<std::uint32_t>(2 * t), bound);
    fill_uniform_parameters(parameters_.biases[t], seed, static_cast<std::uint32_t>(2 * t + 1), bound);
  }
}

const float* ConvPredictiveCoding::unit_bias(int i) const {
  return is_conv(i) ? expanded_bias_[i].data() : parameters_.biases[i].data();
}

// ---- the couplings: drive, adjoint, parameter gradients ----

void ConvPredictiveCoding::conv_drive(int k, const float* below) {
  const int in_units = shape_.units(k), out_units = shape_.units(k + 1);
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
    ConvShape conv = shape_.conv_shape(k, rows);
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    float* drive = drive_[k].data() + out_offset;
    if (shape_.pool == PoolKind::none) {
      conv2d_forward(backend_, conv, below + in_offset, parameters_.weights[k].data(), nullptr, drive, workspace);
      continue;
    }
    // The pre-pool output channel-major in conv_out_, pooled into the NCHW drive.
    conv.output_layout = cnhw_layout(rows);
    const PoolShape pool = shape_.pool_shape(k, rows);
    conv2d_forward(backend_, conv, below + in_offset, parameters_.weights[k].data(), nullptr, conv_out_.data(),
                   workspace);
    if (shape_.pool == PoolKind::max)
      max_pool2d(backend_, pool, conv_out_.data(), drive, argmax_[k].data() + out_offset);
    else
      avg_pool2d(backend_, pool, conv_out_.data(), drive);
  }
}

const float* ConvPredictiveCoding::layer_drive(const NetworkState& state, int i) {
  if (i == 0) return drive_[0].data();  // cached by set_input
  const float* below = state.layers[i - 1].data();
  if (is_conv(i)) {
    conv_drive(i, below);
  } else {
    const int fan_in = shape_.units(i), units = shape_.units(i + 1);
    // drive (batch, units) = s_{i-1} (batch, fan_in) W_i (fan_in, units)
    backend_.gemm(Transpose::no, Transpose::no, batch_, units, fan_in, 1.0f, below, fan_in,
                  parameters_.weights[i].data(), units, 0.0f, drive_[i].data(), units);
  }
  return drive_[i].data();
}

void ConvPredictiveCoding::backward(int t, const float* upstream, float* out) {
  const int in_units = shape_.units(t), out_units = shape_.units(t + 1);
  const float* weights = parameters_.weights[t].data();
  if (!is_conv(t)) {
    // out (batch, in_units) = upstream (batch, out_units) W_t^T
    backend_.gemm(Transpose::no, Transpose::yes, batch_, in_units, out_units, 1.0f, upstream, out_units, weights,
                  out_units, 0.0f, out, in_units);
    return;
  }
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
    ConvShape conv = shape_.conv_shape(t, rows);
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    if (shape_.pool == PoolKind::none) {
      conv2d_transpose(backend_, conv, upstream + out_offset, weights, out + in_offset, workspace);
      continue;
    }
    // P^T(upstream), channel-major, then W^T *'.
    conv.output_layout = cnhw_layout(rows);
    const PoolShape pool = shape_.pool_shape(t, rows);
    if (shape_.pool == PoolKind::max)
      max_unpool2d(backend_, pool, upstream + out_offset, argmax_[t].data() + out_offset, conv_out_.data());
    else
      avg_unpool2d(backend_, pool, upstream + out_offset, conv_out_.data());
    conv2d_transpose(backend_, conv, conv_out_.data(), weights, out + in_offset, workspace);
  }
}

void ConvPredictiveCoding::weight_gradient(int t, const float* below, const float* upstream, float alpha,
                                           bool overwrite, float* gradient) {
  const int in_units = shape_.units(t), out_units = shape_.units(t + 1);
  if (!is_conv(t)) {
    // gradient (in_units, out_units) (+)= alpha below^T upstream
    backend_.gemm(Transpose::yes, Transpose::no, in_units, out_units, batch_, alpha, below, in_units, upstream,
                  out_units, overwrite ? 0.0f : 1.0f, gradient, out_units);
    return;
  }
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
    const float beta = overwrite && begin == 0 ? 0.0f : 1.0f;
    ConvShape conv = shape_.conv_shape(t, rows);
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    const float* pre_pool = upstream + out_offset;
    if (shape_.pool != PoolKind::none) {
      conv.output_layout = cnhw_layout(rows);
      const PoolShape pool = shape_.pool_shape(t, rows);
      if (shape_.pool == PoolKind::max)
        max_unpool2d(backend_, pool, upstream + out_offset, argmax_[t].data() + out_offset, conv_out_.data());
      else
        avg_unpool2d(backend_, pool, upstream + out_offset, conv_out_.data());
      pre_pool = conv_out_.data();
    }
    conv2d_weight_gradient(backend_, conv, below + in_offset, pre_pool, alpha, beta, gradient, workspace);
  }
}

void ConvPredictiveCoding::bias_gradient(int t, const float* upstream_a, const float* upstream_b, float alpha_a,
                                         float alpha_b, float* gradient) {
  const int units = shape_.units(t + 1);
  if (!is_conv(t)) {
    backend_.run(ColumnSumOp{upstream_a, upstream_b, gradient, alpha_a, alpha_b, batch_, units}, units);
    return;
  }
  // The batch sums of every unit, then each channel's plane summed as a
  // (channels, plane) . ones(plane) product (as ConvHopfield's bias update).
  const PlaneShape plane = shape_.conv_plane(t + 1);
  backend_.run(ColumnSumOp{upstream_a, upstream_b, unit_sums_.data(), alpha_a, alpha_b, batch_, units}, units);
  backend_.gemm(Transpose::no, Transpose::no, plane.channels, 1, plane.plane(), 1.0f, unit_sums_.data(), plane.plane(),
                ones_.data(), 1, 0.0f, gradient, 1);
}

// ---- input, phases, energy ----

void ConvPredictiveCoding::set_input(const float* x, int batch) {
  begin_batch(x, batch);
  // The clamped input's drive and its argmax are constant over a batch: the widest
  // convolution runs once per batch, not once per sweep.
  conv_drive(0, x);
  // Conv biases broadcast over their planes: the per-unit ops see a per-unit bias.
  for (int k = 0; k < shape_.conv_layers(); ++k) {
    const PlaneShape plane = shape_.conv_plane(k + 1);
    DeviceBuffer<float>& expanded = expanded_bias_[k];
    backend_.fill_zero(expanded.data(), expanded.bytes());
    backend_.run(PlaneRelayoutOp{expanded.data(), expanded.data(), parameters_.biases[k].data(),
                                 nchw_layout(plane.channels), nchw_layout(plane.channels), plane.channels,
                                 plane.plane(), false},
                 plane.units());
  }
}

namespace {

// What every phase of the network refuses: the dynamics it does not have.
void check_phase(const PhaseSpec& spec) {
  if (spec.integrator != Integrator::fixed_point && spec.integrator != Integrator::gradient_flow)
    throw std::invalid_argument(
        "ConvPredictiveCoding: phases run the fixed-point or gradient-flow update, not cSB");
  if (spec.noise_sigma != 0.0f)
    throw std::invalid_argument(
        "ConvPredictiveCoding: phases run without Langevin noise (the free phase is a forward pass)");
}

}  // namespace

void ConvPredictiveCoding::prepare_phase(const NetworkState& state, const PhaseSpec& spec) {
  (void)state;
  check_phase(spec);
  // Kerjan, Hoier & Scellier (2026): synchronous sweeps of the nudged phase diverge.
  if (spec.order != UpdateOrder::asynchronous)
    throw std::invalid_argument("ConvPredictiveCoding: iterated phases run asynchronous sweeps only");
}

PhaseResult ConvPredictiveCoding::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  if (spec.beta != 0.0f) return relax_by_iterations(state, target, spec);
  check_phase(spec);
  // The free equilibrium: every term of E is zero at s_l = f(a_l), layer by layer.
  for (int i = 0; i <= top(); ++i) {
    const float* drive = layer_drive(state, i);
    backend_.run(PredictionOp{drive, unit_bias(i), state.layers[i].data(), shape_.units(i + 1), activation_},
                 std::int64_t(batch_) * shape_.units(i + 1));
  }
  return PhaseResult{1};
}

PhaseResult ConvPredictiveCoding::relax_by_iterations(NetworkState& state, const float* target,
                                                      const PhaseSpec& spec) {
  return LayeredModel::relax(state, target, spec);
}

void ConvPredictiveCoding::step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step,
                                     int begin, int rows) {
  (void)step, (void)begin, (void)rows;  // whole_batch: one call per sweep covers the batch
  const bool nudged = spec.beta != 0.0f;
  // Layer i's share of F reads s_{i-1}, s_i, s_{i+1} only (models/predictive_coding.h):
  // the layers of one parity move together, each from the latest other parity.
  const int groups = update_group_count(spec.order);
  for (int g = 0; g < groups; ++g) {
    for (int i = g; i <= top(); i += groups) {
      const int units = shape_.units(i + 1);
      const float* feedback = nullptr;
      if (i < top()) {
        // e_{i+1} at the current s_i (the drive above also sets its pooling argmax
        // there), carried back onto layer i through tensor i + 1.
        const int above = shape_.units(i + 2);
        const float* drive_above = layer_drive(state, i + 1);
        backend_.run(PredictionErrorOp{state.layers[i + 1].data(), nullptr, drive_above, unit_bias(i + 1),
                                       error_[i + 1].data(), above, activation_},
                     std::int64_t(batch_) * above);
        backward(i + 1, error_[i + 1].data(), feedback_[i].data());
        feedback = feedback_[i].data();
      }
      const float* drive = layer_drive(state, i);
      backend_.run(PredictiveCodingStepOp{state.layers[i].data(), drive, unit_bias(i), feedback,
                                          nudged && i == top() ? target : nullptr, spec.beta, spec.dt,
                                          spec.integrator, units, activation_},
                   std::int64_t(batch_) * units);
    }
  }
}

void ConvPredictiveCoding::layer_errors(const NetworkState& state, std::vector<DeviceBuffer<float>>& errors) {
  for (int i = 0; i <= top(); ++i) {
    const float* drive = layer_drive(state, i);
    backend_.run(PredictionErrorOp{state.layers[i].data(), nullptr, drive, unit_bias(i), errors[i].data(),
                                   shape_.units(i + 1), activation_},
                 std::int64_t(batch_) * shape_.units(i + 1));
  }
}

void ConvPredictiveCoding::energy(const NetworkState& state, float* energy) {
  for (int i = 0; i <= top(); ++i) {
    const float* drive = layer_drive(state, i);
    backend_.run(PredictionEnergyOp{state.layers[i].data(), drive, unit_bias(i), energy, shape_.units(i + 1), i > 0,
                                    activation_},
                 batch_);
  }
}

// ---- gradients ----

void ConvPredictiveCoding::ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b,
                                       float beta_b, const float* target, ParameterSet& gradient) {
  (void)target;
  const float c = contrastive_scale(beta_a, beta_b, batch_);
  // dE/dW_t = -corr(s_{t-1}, P^T(e_t)) at each state, through that state's argmax:
  // each state's errors, then its products, before the other state moves the argmax.
  layer_errors(state_a, error_);
  for (int t = 1; t <= top(); ++t)
    weight_gradient(t, state_a.layers[t - 1].data(), error_[t].data(), -c, true, gradient.weights[t].data());
  layer_errors(state_b, other_error_);
  for (int t = 1; t <= top(); ++t)
    weight_gradient(t, state_b.layers[t - 1].data(), other_error_[t].data(), c, false, gradient.weights[t].data());
  // The input (and its argmax) is the same in both states: one product on e_a - e_b.
  weight_gradient(0, input_, first_layer_difference(error_[0].data(), other_error_[0].data()), -c, true,
                  gradient.weights[0].data());
  for (int t = 0; t <= top(); ++t)
    bias_gradient(t, error_[t].data(), other_error_[t].data(), -c, c, gradient.biases[t].data());
}

float ConvPredictiveCoding::implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                                              ParameterSet& gradient) {
  (void)iterations;
  const int t = top();
  const float mean = 1.0f / static_cast<float>(batch_);
  // d_L = (s_L - y) f'(a_L) / batch (the batch mean of C = 1/2 ||s_L - y||^2).
  backend_.run(AxpbyOp{free_state.layers[t].data(), target, error_[t].data(), mean, -mean},
               std::int64_t(batch_) * shape_.units(t + 1));
  for (int i = t; i >= 0; --i) {
    const int units = shape_.units(i + 1);
    // dL/ds_i through tensor i + 1, whose argmax the previous pass set at the free s_i.
    if (i < t) backward(i + 1, error_[i + 1].data(), feedback_[i].data());
    const float* drive = layer_drive(free_state, i);
    backend_.run(PredictionErrorOp{nullptr, i < t ? feedback_[i].data() : error_[i].data(), drive, unit_bias(i),
                                   error_[i].data(), units, activation_},
                 std::int64_t(batch_) * units);
    const float* below = i == 0 ? input_ : free_state.layers[i - 1].data();
    weight_gradient(i, below, error_[i].data(), 1.0f, true, gradient.weights[i].data());
    bias_gradient(i, error_[i].data(), nullptr, 1.0f, 0.0f, gradient.biases[i].data());
  }
  return 0.0f;
}

void ConvPredictiveCoding::metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  top_layer_metrics(state, target, loss, correct);
}

}  // namespace eqprop
