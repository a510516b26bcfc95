#include "models/layered_model.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "kernels/adjoint_step.h"
#include "kernels/axpby.h"
#include "kernels/row_metrics.h"
#include "kernels/simulated_bifurcation.h"
#include "models/layered_tensors.h"
#include "models/parameter_init.h"
#include "models/relaxation.h"

namespace eqprop {

LayeredModel::LayeredModel(Backend& backend, std::string name, int max_batch)
    : backend_(backend), name_(std::move(name)), max_batch_(max_batch) {}

void LayeredModel::define_layers(LayerLayout layout) {
  if (!(layout.activation_max > 0.0f))  // also refuses NaN
    throw std::invalid_argument(name_ + ": the activation's bound c of clip(s, 0, c) must be > 0");
  layout_ = std::move(layout);
  if (!layout_.parameter_widths.empty()) parameters_ = make_parameter_like();
  unit_offsets_.clear();
  units_total_ = 0;
  for (int units : layout_.state_units) {
    unit_offsets_.push_back(units_total_);
    units_total_ += units;
  }
  state_difference_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_) * layout_.state_units.front());
  if (!layout_.early_exit) return;
  snapshot_ = make_state();
  row_residual_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_));
}

ParameterSet LayeredModel::make_parameter_like() const {
  return make_layered_parameters(backend_, layout_.parameter_widths);
}

std::vector<std::int64_t> LayeredModel::tensor_shape(int l, bool bias) const {
  return layered_tensor_shape(layout_.parameter_widths, l, bias);
}

void LayeredModel::initialize(std::uint64_t seed, float gain) {
  initialize_uniform_fan_in(parameters_, layout_.parameter_widths, seed, gain);
}

NetworkState LayeredModel::make_state() const {
  return make_layered_state(backend_, layout_.state_units, max_batch_, layout_.with_momenta);
}

void LayeredModel::copy_state(const NetworkState& from, NetworkState& to, int batch) {
  copy_state_rows(backend_, from, to, layout_.state_units, batch);
}

void LayeredModel::reset(NetworkState& state) { zero_rows(backend_, state.layers, layout_.state_units, batch_); }

void LayeredModel::begin_batch(const float* x, int batch) {
  if (batch < 1 || batch > max_batch_) throw std::invalid_argument(name_ + ": bad batch size");
  batch_ = batch;
  input_ = x;
}

PhaseResult LayeredModel::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  prepare_phase(state, spec);
  RelaxationBuffers buffers{&snapshot_, row_residual_.data(), layout_.state_units, layout_.period};
  buffers.whole_batch = layout_.whole_batch;
  return relax_with_early_exit(backend_, state, batch_, spec, buffers, [&](int step, int begin, int rows) {
    step_rows(state, target, spec, step, begin, rows);
  });
}

int LayeredModel::unit_offset(int i) const { return unit_offsets_[i]; }

NoiseKey LayeredModel::noise_key(const PhaseSpec& spec, int step, int i, int begin) const {
  return relaxation_noise_key(spec.first_sample + static_cast<std::uint64_t>(begin),
                              static_cast<std::uint64_t>(units_total_), static_cast<std::uint64_t>(unit_offsets_[i]),
                              spec.noise_phase, step);
}

void LayeredModel::run_layer_step(NetworkState& state, const PhaseSpec& spec, int step, int i, int begin, int rows,
                                  const LayerFields& fields) {
  const int units = layout_.state_units[i];
  const std::size_t first = std::size_t(begin) * units;
  auto at = [first](auto* array) { return array ? array + first : nullptr; };
  LayerStepOp op{at(state.layers[i].data()),
                 at(fields.drive),
                 at(fields.feedback),
                 fields.bias,
                 at(fields.target),
                 spec.beta,
                 spec.dt,
                 spec.integrator,
                 units,
                 layout_.activation_max};
  op.momenta = at(state.momenta[i].data());
  op.gamma = spec.gamma;
  op.a0 = spec.a0;
  // cSB's pump a0 - a(t): a(t) ramps over the free phase to a0 on its last step
  // (sb_detuning, the solver's schedule); nudged phases (beta != 0) run at full gain.
  op.pump = spec.pump && spec.beta == 0.0f ? sb_detuning(spec.a0, step, spec.steps) : 0.0f;
  set_langevin_noise(op, spec, step, i, begin);
  if (spec.read_out && step == spec.steps - 1) point_readout(op, state, spec, i, std::int64_t(first));
  backend_.run(op, std::int64_t(rows) * units);
}

float LayeredModel::contrastive_scale(float beta_a, float beta_b, int rows) const {
  if (beta_a == beta_b) throw std::invalid_argument("ep_gradient: the two betas must differ");
  return 1.0f / ((beta_a - beta_b) * static_cast<float>(rows));
}

const float* LayeredModel::first_layer_difference(const float* a, const float* b) {
  backend_.run(AxpbyOp{a, b, state_difference_.data(), 1.0f, -1.0f}, std::int64_t(batch_) * layout_.state_units[0]);
  return state_difference_.data();
}

void LayeredModel::enable_softmax_readout(int classes) {
  softmax_.emplace(backend_, layout_.state_units.back(), classes, max_batch_);
}

void LayeredModel::softmax_nudge(const NetworkState& state, const float* target, float beta, int begin, int rows,
                                 float* feedback) {
  const std::size_t top = state.layers.size() - 1;
  softmax_->nudge(state.layers[top].data(), parameters_.weights[top + 1].data(), parameters_.biases[top + 1].data(),
                  target, beta, begin, rows, feedback);
}

void LayeredModel::softmax_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b,
                                    float beta_b, const float* target, float c, ParameterSet& gradient) {
  const std::size_t top = state_a.layers.size() - 1;
  softmax_->gradient(state_a.layers[top].data(), beta_a, state_b.layers[top].data(), beta_b,
                     parameters_.weights[top + 1].data(), parameters_.biases[top + 1].data(), target, c, batch_,
                     gradient.weights[top + 1].data(), gradient.biases[top + 1].data());
}

void LayeredModel::top_layer_metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  const float* top = state.layers.back().data();
  const std::size_t t = state.layers.size() - 1;
  if (softmax_)
    return softmax_->metrics(top, parameters_.weights[t + 1].data(), parameters_.biases[t + 1].data(), target, batch_,
                             loss, correct);
  backend_.run(RowMetricsOp{top, target, loss, correct, CostKind::mse, layout_.classes, nullptr}, batch_);
}

float LayeredModel::iterate_adjoint(int iterations, const std::function<void(NetworkState& mu)>& step) {
  if (iterations < 1) throw std::invalid_argument(name_ + ": implicit_gradient needs iterations >= 1");
  const int states = static_cast<int>(layout_.state_units.size());
  const std::vector<int>& units = layout_.state_units;
  if (adjoint_.layers.empty())
    for (int i = 0; i < states; ++i) {
      adjoint_.layers.emplace_back(backend_, std::size_t(max_batch_) * units[i]);
      previous_adjoint_.layers.emplace_back(backend_, std::size_t(max_batch_) * units[i]);
    }
  for (int i = 0; i < states; ++i) backend_.fill_zero(adjoint_.layers[i].data(), adjoint_.layers[i].bytes());
  for (int k = 0; k < iterations; ++k) {
    if (k == iterations - 1)
      for (int i = 0; i < states; ++i)
        backend_.copy_on_device(previous_adjoint_.layers[i].data(), adjoint_.layers[i].data(),
                                std::size_t(batch_) * units[i] * sizeof(float));
    step(adjoint_);
  }
  // The residual of the last step, on the host: once per batch, a few arrays.
  double change = 0.0, size = 0.0;
  std::vector<float> now, before;
  for (int i = 0; i < states; ++i) {
    const std::size_t count = std::size_t(batch_) * units[i];
    now.resize(count);
    before.resize(count);
    backend_.copy_to_host(now.data(), adjoint_.layers[i].data(), count * sizeof(float));
    backend_.copy_to_host(before.data(), previous_adjoint_.layers[i].data(), count * sizeof(float));
    for (std::size_t j = 0; j < count; ++j) {
      change += double(now[j] - before[j]) * (now[j] - before[j]);
      size += double(now[j]) * now[j];
    }
  }
  // A mu that overflowed (the iteration diverged) reports an infinite residual, not 0.
  if (!std::isfinite(size) || !std::isfinite(change)) return std::numeric_limits<float>::infinity();
  return size > 0.0 ? static_cast<float>(std::sqrt(change / size)) : 0.0f;
}

float LayeredModel::solve_adjoint(const NetworkState& free_state, const float* target, int iterations,
                                  const std::function<void(const NetworkState& mu)>& couplings,
                                  const std::vector<DeviceBuffer<float>>& drive,
                                  const std::vector<DeviceBuffer<float>>& feedback) {
  const int states = static_cast<int>(layout_.state_units.size()), top = states - 1;
  const std::vector<int>& units = layout_.state_units;
  if (loss_gradient_.size() == 0) loss_gradient_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_) * units[top]);
  const float* s_top = free_state.layers[top].data();
  // g = dL/ds_top of the batch mean: MSE (s - y) / batch; cross-entropy
  // (softmax - y) W_out^T / batch, which is the read-out's nudge at beta = -1 / batch.
  const float mean = 1.0f / static_cast<float>(batch_);
  if (has_softmax_readout())
    softmax_nudge(free_state, target, -mean, 0, batch_, loss_gradient_.data());
  else
    backend_.run(AxpbyOp{s_top, target, loss_gradient_.data(), mean, -mean}, std::int64_t(batch_) * units[top]);
  // Jacobi steps of mu = M (g + K mu) from mu = 0: a Neumann series that converges
  // where the free fixed point is a stable attractor of the relaxation (the
  // spectral radius of M K below 1, as for the relaxation itself).
  return iterate_adjoint(iterations, [&](NetworkState& mu) {
    couplings(mu);
    for (int i = 0; i < states; ++i)
      backend_.run(AdjointStepOp{free_state.layers[i].data(), i == top ? loss_gradient_.data() : nullptr,
                                 i > 0 ? drive[i].data() : nullptr, i < top ? feedback[i].data() : nullptr,
                                 mu.layers[i].data(), layout_.activation_max},
                   std::int64_t(batch_) * units[i]);
  });
}

double hopfield_training_step_flops(const std::function<double(int t)>& pass,
                                    const std::function<int(int t)>& update_passes, int state_layers,
                                    int weight_tensors, bool softmax_readout, int free_steps, int nudged_steps,
                                    int nudged_phases) {
  double per_step = 0;
  for (int t = 1; t < state_layers; ++t) per_step += 2 * pass(t);  // drive and feedback
  const double readout_nudge = softmax_readout ? 2 * pass(weight_tensors - 1) : 0;
  double flops = pass(0);  // the cached input drive
  flops += per_step * (free_steps + nudged_phases * double(nudged_steps));
  flops += readout_nudge * nudged_phases * nudged_steps;
  flops += pass(0);  // the input coupling's update: one product on s_a - s_b
  for (int t = 1; t < weight_tensors; ++t) flops += update_passes(t) * pass(t);
  return flops;
}

}  // namespace eqprop
