#include "models/predictive_coding.h"

#include <stdexcept>
#include <utility>

#include "kernels/axpby.h"
#include "kernels/column_sum.h"
#include "kernels/predictive_coding.h"

namespace eqprop {

PredictiveCoding::PredictiveCoding(Backend& backend, std::vector<int> layers, PredictionActivation activation,
                                   int max_batch)
    : LayeredModel(backend, "PredictiveCoding", max_batch), layers_(std::move(layers)), activation_(activation) {
  if (layers_.size() < 2 || max_batch_ < 1)
    throw std::invalid_argument("PredictiveCoding: needs an input and an output layer and batch >= 1");
  LayerLayout layout;
  layout.input_size = layers_.front();
  layout.classes = layers_.back();
  layout.parameter_widths = layers_;
  layout.state_units.assign(layers_.begin() + 1, layers_.end());
  define_layers(std::move(layout));
  input_drive_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_) * layers_[1]);
  for (int i = 0; i <= top(); ++i) {
    const std::size_t size = std::size_t(max_batch_) * layers_[i + 1];
    drive_.emplace_back(backend_, i > 0 ? size : 0);  // layer 0 uses the cached input drive
    feedback_.emplace_back(backend_, i < top() ? size : 0);
    error_.emplace_back(backend_, size);
    other_error_.emplace_back(backend_, size);
  }
}

void PredictiveCoding::set_input(const float* x, int batch) {
  begin_batch(x, batch);
  // input_drive (batch, layers[1]) = x (batch, layers[0]) W_1 (layers[0], layers[1])
  backend_.gemm(Transpose::no, Transpose::no, batch, layers_[1], layers_[0], 1.0f, x, layers_[0],
                parameters_.weights[0].data(), layers_[1], 0.0f, input_drive_.data(), layers_[1]);
}

const float* PredictiveCoding::layer_drive(const NetworkState& state, int i, int begin, int rows) {
  if (i == 0) return input_drive_.data();
  const int fan_in = layers_[i], units = layers_[i + 1];
  // drive_i (rows, units) = s_{i-1} (rows, fan_in) W_i (fan_in, units)
  backend_.gemm(Transpose::no, Transpose::no, rows, units, fan_in, 1.0f,
                state.layers[i - 1].data() + std::size_t(begin) * fan_in, fan_in, parameters_.weights[i].data(), units,
                0.0f, drive_[i].data() + std::size_t(begin) * units, units);
  return drive_[i].data();
}

namespace {

// What every phase of the network refuses: the dynamics it does not have.
void check_phase(const PhaseSpec& spec) {
  if (spec.integrator != Integrator::fixed_point && spec.integrator != Integrator::gradient_flow)
    throw std::invalid_argument("PredictiveCoding: phases run the fixed-point or gradient-flow update, not cSB");
  if (spec.noise_sigma != 0.0f)
    throw std::invalid_argument(
        "PredictiveCoding: phases run without Langevin noise (the free phase is a forward pass)");
}

}  // namespace

void PredictiveCoding::prepare_phase(const NetworkState& state, const PhaseSpec& spec) {
  (void)state;
  check_phase(spec);
  // Kerjan, Hoier & Scellier (2026): synchronous sweeps of the nudged phase diverge.
  if (spec.order != UpdateOrder::asynchronous)
    throw std::invalid_argument(
        "PredictiveCoding: iterated phases run asynchronous sweeps only (synchronous ones "
        "diverge)");
}

PhaseResult PredictiveCoding::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  if (spec.beta != 0.0f) return relax_by_iterations(state, target, spec);
  check_phase(spec);
  // The free equilibrium: every term of E is zero at s_l = f(a_l), layer by layer.
  for (int i = 0; i <= top(); ++i) {
    const float* drive = layer_drive(state, i, 0, batch_);
    backend_.run(PredictionOp{drive, parameters_.biases[i].data(), state.layers[i].data(), layers_[i + 1], activation_},
                 std::int64_t(batch_) * layers_[i + 1]);
  }
  return PhaseResult{1};
}

PhaseResult PredictiveCoding::relax_by_iterations(NetworkState& state, const float* target, const PhaseSpec& spec) {
  return LayeredModel::relax(state, target, spec);
}

void PredictiveCoding::step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                                 int rows) {
  (void)step;
  const bool nudged = spec.beta != 0.0f;
  auto at = [begin](auto* array, int units) { return array + std::size_t(begin) * units; };
  // Layer i's share of F is 1/2 ||s_i - f(a_i)||^2 + 1/2 ||s_{i+1} - f(a_{i+1})||^2
  // (+ the cost at the top): it reads s_{i-1}, s_i, s_{i+1} only. The layers of one
  // group (i, i + 2, ...) therefore see none of each other's states, and moving
  // them one after the other is moving them together.
  const int groups = update_group_count(spec.order);  // 2: prepare_phase refuses synchronous sweeps
  for (int g = 0; g < groups; ++g) {
    for (int i = g; i <= top(); i += groups) {
      const int units = layers_[i + 1];
      const float* feedback = nullptr;
      if (i < top()) {
        // e_{i+1} (rows, n_{i+2}) at the current s_i, then
        // feedback_i (rows, n_{i+1}) = e_{i+1} W_{i+1}^T (n_{i+2}, n_{i+1})
        const int above = layers_[i + 2];
        const float* drive_above = layer_drive(state, i + 1, begin, rows);
        backend_.run(
            PredictionErrorOp{at(state.layers[i + 1].data(), above), nullptr, at(drive_above, above),
                              parameters_.biases[i + 1].data(), at(error_[i + 1].data(), above), above, activation_},
            std::int64_t(rows) * above);
        backend_.gemm(Transpose::no, Transpose::yes, rows, units, above, 1.0f, at(error_[i + 1].data(), above), above,
                      parameters_.weights[i + 1].data(), above, 0.0f, at(feedback_[i].data(), units), units);
        feedback = at(feedback_[i].data(), units);
      }
      const float* drive = layer_drive(state, i, begin, rows);
      backend_.run(
          PredictiveCodingStepOp{at(state.layers[i].data(), units), at(drive, units), parameters_.biases[i].data(),
                                 feedback, nudged && i == top() ? at(target, units) : nullptr, spec.beta, spec.dt,
                                 spec.integrator, units, activation_},
          std::int64_t(rows) * units);
    }
  }
}

void PredictiveCoding::layer_errors(const NetworkState& state, std::vector<DeviceBuffer<float>>& errors) {
  for (int i = 0; i <= top(); ++i) {
    const float* drive = layer_drive(state, i, 0, batch_);
    backend_.run(PredictionErrorOp{state.layers[i].data(), nullptr, drive, parameters_.biases[i].data(),
                                   errors[i].data(), layers_[i + 1], activation_},
                 std::int64_t(batch_) * layers_[i + 1]);
  }
}

void PredictiveCoding::energy(const NetworkState& state, float* energy) {
  for (int i = 0; i <= top(); ++i) {
    const float* drive = layer_drive(state, i, 0, batch_);
    backend_.run(PredictionEnergyOp{state.layers[i].data(), drive, parameters_.biases[i].data(), energy, layers_[i + 1],
                                    i > 0, activation_},
                 batch_);
  }
}

void PredictiveCoding::ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                                   const float* target, ParameterSet& gradient) {
  (void)target;
  const float c = contrastive_scale(beta_a, beta_b, batch_);
  layer_errors(state_a, error_);
  layer_errors(state_b, other_error_);
  for (int i = 0; i <= top(); ++i) {
    const int fan_in = layers_[i], units = layers_[i + 1];
    float* weight_gradient = gradient.weights[i].data();
    if (i == 0) {
      // The input is x in both states: one GEMM on e_a - e_b.
      const float* difference = first_layer_difference(error_[0].data(), other_error_[0].data());
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, input_, fan_in, difference, units, 0.0f,
                    weight_gradient, units);
    } else {
      // -c s_{a,i-1}^T e_{a,i} + c s_{b,i-1}^T e_{b,i}
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, state_a.layers[i - 1].data(), fan_in,
                    error_[i].data(), units, 0.0f, weight_gradient, units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, c, state_b.layers[i - 1].data(), fan_in,
                    other_error_[i].data(), units, 1.0f, weight_gradient, units);
    }
    backend_.run(ColumnSumOp{error_[i].data(), other_error_[i].data(), gradient.biases[i].data(), -c, c, batch_, units},
                 units);
  }
}

float PredictiveCoding::implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                                          ParameterSet& gradient) {
  (void)iterations;
  const int t = top();
  const float mean = 1.0f / static_cast<float>(batch_);
  // d_L = (s_L - y) f'(a_L) / batch (the batch mean of C = 1/2 ||s_L - y||^2).
  backend_.run(AxpbyOp{free_state.layers[t].data(), target, error_[t].data(), mean, -mean},
               std::int64_t(batch_) * layers_[t + 1]);
  for (int i = t; i >= 0; --i) {
    const int fan_in = layers_[i], units = layers_[i + 1];
    if (i < t)  // feedback_i (batch, n_{i+1}) = d_{i+1} W_{i+1}^T
      backend_.gemm(Transpose::no, Transpose::yes, batch_, units, layers_[i + 2], 1.0f, error_[i + 1].data(),
                    layers_[i + 2], parameters_.weights[i + 1].data(), layers_[i + 2], 0.0f, feedback_[i].data(),
                    units);
    const float* drive = layer_drive(free_state, i, 0, batch_);
    backend_.run(PredictionErrorOp{nullptr, i < t ? feedback_[i].data() : error_[i].data(), drive,
                                   parameters_.biases[i].data(), error_[i].data(), units, activation_},
                 std::int64_t(batch_) * units);
    const float* below = i == 0 ? input_ : free_state.layers[i - 1].data();
    // dL/dW_i = s_{i-1}^T d_i, dL/db_i = sum_batch d_i
    backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, below, fan_in, error_[i].data(), units,
                  0.0f, gradient.weights[i].data(), units);
    backend_.run(ColumnSumOp{error_[i].data(), nullptr, gradient.biases[i].data(), 1.0f, 0.0f, batch_, units}, units);
  }
  return 0.0f;
}

void PredictiveCoding::metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  top_layer_metrics(state, target, loss, correct);
}

}  // namespace eqprop
