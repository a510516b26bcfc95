#include "models/dense_hopfield.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "models/layered_tensors.h"
#include "models/parameter_init.h"
#include "models/relaxation.h"

namespace eqprop {

DenseHopfield::DenseHopfield(Backend& backend, DenseHopfieldShape shape, int max_batch)
    : backend_(backend), shape_(std::move(shape)), max_batch_(max_batch) {
  if (shape_.state_layers() < 1 || max_batch_ < 1)
    throw std::invalid_argument("DenseHopfield: needs at least one state layer and batch >= 1");
  parameters_ = make_parameter_like();
  const int states = shape_.state_layers();
  state_units_.assign(shape_.layers.begin() + 1, shape_.layers.begin() + 1 + states);
  input_drive_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_) * shape_.layers[1]);
  for (int i = 0; i < states; ++i) {
    const std::size_t size = std::size_t(max_batch_) * shape_.layers[i + 1];
    drive_.emplace_back(backend_, i > 0 ? size : 0);  // layer 0 uses the cached input drive
    feedback_.emplace_back(backend_, size);
  }
  if (shape_.cost == CostKind::cross_entropy)
    readout_.emplace(backend_, shape_.layers[states], shape_.classes(), max_batch_);
  state_difference_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_) * shape_.layers[1]);
  snapshot_ = make_state();
  row_residual_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_));
  for (int units : state_units_) units_total_ += units;
}

ParameterSet DenseHopfield::make_parameter_like() const { return make_layered_parameters(backend_, shape_.layers); }

std::vector<std::int64_t> DenseHopfield::tensor_shape(int l, bool bias) const {
  return layered_tensor_shape(shape_.layers, l, bias);
}

void DenseHopfield::initialize(std::uint64_t seed, float gain) {
  initialize_uniform_fan_in(parameters_, shape_.layers, seed, gain);
}

NetworkState DenseHopfield::make_state() const {
  return make_layered_state(backend_, state_units_, max_batch_, true);  // momenta for cSB
}

void DenseHopfield::copy_state(const NetworkState& from, NetworkState& to, int batch) {
  copy_state_rows(backend_, from, to, state_units_, batch);
}

void DenseHopfield::set_input(const float* x, int batch) {
  if (batch < 1 || batch > max_batch_) throw std::invalid_argument("DenseHopfield: bad batch size");
  batch_ = batch;
  input_ = x;
  // input_drive (batch, layers[1]) = x (batch, layers[0]) W_1 (layers[0], layers[1])
  backend_.gemm(Transpose::no, Transpose::no, batch, shape_.layers[1], shape_.layers[0], 1.0f, x,
                shape_.layers[0], parameters_.weights[0].data(), shape_.layers[1], 0.0f,
                input_drive_.data(), shape_.layers[1]);
}

void DenseHopfield::reset(NetworkState& state) { zero_rows(backend_, state.layers, state_units_, batch_); }

void DenseHopfield::energy(const NetworkState& state, float* energy) {
  const std::vector<int>& n = shape_.layers;
  for (int i = 0; i < shape_.state_layers(); ++i) {
    const float* drive = input_drive_.data();
    if (i > 0) {
      // drive_i (batch, n_i) = s_{i-1} W_i, at the state whose energy we want
      backend_.gemm(Transpose::no, Transpose::no, batch_, n[i + 1], n[i], 1.0f, state.layers[i - 1].data(), n[i],
                    parameters_.weights[i].data(), n[i + 1], 0.0f, drive_[i].data(), n[i + 1]);
      drive = drive_[i].data();
    }
    backend_.run(RowEnergyOp{state.layers[i].data(), drive, parameters_.biases[i].data(), energy, n[i + 1], i > 0},
                 batch_);
  }
}

PhaseResult DenseHopfield::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  const RelaxationBuffers buffers{&snapshot_, row_residual_.data(), state_units_};
  return relax_with_early_exit(backend_, state, batch_, spec, buffers, [&](int step, int begin, int rows) {
    step_rows(state, target, spec, step, begin, rows);
  });
}

void DenseHopfield::step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                              int rows) {
  const int states = shape_.state_layers();
  const int top = states - 1;
  const bool nudged = spec.beta != 0.0f;
  const bool readout_nudge = nudged && shape_.cost == CostKind::cross_entropy;
  const std::vector<int>& n = shape_.layers;
  // Row `begin` of a (batch, units) array.
  auto at = [begin](auto* array, int units) { return array + std::size_t(begin) * units; };
  // Synchronous update: every field is computed from the states of the previous
  // step before any layer moves.
  for (int i = 1; i < states; ++i) {
    // drive_i (rows, n_i) = s_{i-1} (rows, n_{i-1}) W_i (n_{i-1}, n_i)
    backend_.gemm(Transpose::no, Transpose::no, rows, n[i + 1], n[i], 1.0f, at(state.layers[i - 1].data(), n[i]), n[i],
                  parameters_.weights[i].data(), n[i + 1], 0.0f, at(drive_[i].data(), n[i + 1]), n[i + 1]);
  }
  for (int i = 0; i < top; ++i) {
    // feedback_i (rows, n_i) = s_{i+1} (rows, n_{i+1}) W_{i+1}^T (n_{i+1}, n_i)
    backend_.gemm(Transpose::no, Transpose::yes, rows, n[i + 1], n[i + 2], 1.0f,
                  at(state.layers[i + 1].data(), n[i + 2]), n[i + 2], parameters_.weights[i + 1].data(), n[i + 2],
                  0.0f, at(feedback_[i].data(), n[i + 1]), n[i + 1]);
  }
  if (readout_nudge)
    // -beta dl/drho(s_top) = -beta (softmax - y) W_out^T, acting through rho(s_top).
    readout_->nudge(state.layers[top].data(), parameters_.weights[top + 1].data(), parameters_.biases[top + 1].data(),
                    target, spec.beta, begin, rows, at(feedback_[top].data(), n[top + 1]));
  // cSB's pump a0 - a(t), with a(t) = a0 * t / T ramping over the phase.
  const float pump = spec.pump ? spec.a0 * (1.0f - static_cast<float>(step) / spec.steps) : 0.0f;
  int unit_offset = 0;
  for (int i = 0; i < states; ++i) {
    const int units = n[i + 1];
    const bool has_feedback = i < top || readout_nudge;
    const bool mse_nudge = nudged && i == top && shape_.cost == CostKind::mse;
    LayerStepOp op{at(state.layers[i].data(), units),
                   i == 0 ? at(input_drive_.data(), units) : at(drive_[i].data(), units),
                   has_feedback ? at(feedback_[i].data(), units) : nullptr,
                   parameters_.biases[i].data(),
                   mse_nudge ? at(target, units) : nullptr,
                   spec.beta,
                   spec.dt,
                   spec.integrator,
                   units};
    op.momenta = at(state.momenta[i].data(), units);
    op.gamma = spec.gamma;
    op.a0 = spec.a0;
    op.pump = pump;
    op.noise_sigma = spec.noise_sigma;
    op.noise_seed = spec.noise_seed;
    op.noise_index = (spec.first_sample + static_cast<std::uint64_t>(begin)) * units_total_ + unit_offset;
    op.noise_row_stride = units_total_;
    op.noise_step = (spec.noise_phase << 24) + static_cast<std::uint32_t>(step);
    if (spec.read_out && step == spec.steps - 1) point_readout(op, state, spec, i, std::int64_t(begin) * units);
    backend_.run(op, std::int64_t(rows) * units);
    unit_offset += units;
  }
}

void DenseHopfield::ep_gradient(const NetworkState& state_a, float beta_a,
                                const NetworkState& state_b, float beta_b, const float* target,
                                ParameterSet& gradient) {
  if (beta_a == beta_b) throw std::invalid_argument("ep_gradient: the two betas must differ");
  const int states = shape_.state_layers();
  const float c = 1.0f / ((beta_a - beta_b) * static_cast<float>(batch_));
  // dE/dW_l = -rho(s_{l-1})^T rho(s_l); states live in [0, 1], so rho(s) = s.
  for (int i = 0; i < states; ++i) {
    const int fan_in = shape_.layers[i], units = shape_.layers[i + 1];
    float* weight_gradient = gradient.weights[i].data();
    if (i == 0) {
      // The input is clamped to x in both phases: one GEMM on s_a - s_b.
      backend_.run(AxpbyOp{state_a.layers[0].data(), state_b.layers[0].data(),
                           state_difference_.data(), 1.0f, -1.0f},
                   std::int64_t(batch_) * units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, input_, fan_in,
                    state_difference_.data(), units, 0.0f, weight_gradient, units);
    } else {
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c,
                    state_a.layers[i - 1].data(), fan_in, state_a.layers[i].data(), units, 0.0f,
                    weight_gradient, units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, c,
                    state_b.layers[i - 1].data(), fan_in, state_b.layers[i].data(), units, 1.0f,
                    weight_gradient, units);
    }
    // dE/db_l = -rho(s_l)
    backend_.run(ColumnSumOp{state_a.layers[i].data(), state_b.layers[i].data(),
                             gradient.biases[i].data(), -c, c, batch_, units},
                 units);
  }
  if (!readout_) return;
  const int top = states - 1;
  readout_->gradient(state_a.layers[top].data(), beta_a, state_b.layers[top].data(), beta_b,
                     parameters_.weights[top + 1].data(), parameters_.biases[top + 1].data(), target, c, batch_,
                     gradient.weights[top + 1].data(), gradient.biases[top + 1].data());
}

void DenseHopfield::metrics(const NetworkState& state, const float* target, float* loss,
                            float* correct) {
  const int top = shape_.state_layers() - 1;
  if (readout_)
    return readout_->metrics(state.layers[top].data(), parameters_.weights[top + 1].data(),
                             parameters_.biases[top + 1].data(), target, batch_, loss, correct);
  backend_.run(RowMetricsOp{state.layers[top].data(), target, loss, correct, CostKind::mse, shape_.classes(), nullptr},
               batch_);
}

double DenseHopfield::training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const {
  const std::vector<int>& n = shape_.layers;
  const int weight_tensors = shape_.weight_tensors(), states = shape_.state_layers();
  const double b = batch;
  auto gemm = [&](int l) { return 2.0 * b * n[l] * n[l + 1]; };  // one pass through W_{l+1}
  double per_step = 0;
  for (int i = 1; i < states; ++i) per_step += 2 * gemm(i);  // drive and feedback
  const double readout_nudge = shape_.cost == CostKind::cross_entropy ? 2 * gemm(weight_tensors - 1) : 0;
  double flops = gemm(0);  // the cached input drive
  flops += per_step * (free_steps + nudged_phases * double(nudged_steps));
  flops += readout_nudge * nudged_phases * nudged_steps;
  // Contrastive update: one GEMM for the input layer, two for the others.
  flops += gemm(0);
  for (int l = 1; l < weight_tensors; ++l) flops += 2 * gemm(l);
  return flops;
}

}  // namespace eqprop
