#include "models/dense_hopfield.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/column_sum.h"
#include "kernels/fused_relaxation_block.h"
#include "models/fused_relaxation_path.h"

namespace eqprop {

DenseHopfield::DenseHopfield(Backend& backend, DenseHopfieldShape shape, int max_batch,
                             RelaxationPath relaxation_path)
    : LayeredModel(backend, "DenseHopfield", max_batch), shape_(std::move(shape)), relaxation_path_(relaxation_path) {
  if (shape_.state_layers() < 1 || max_batch_ < 1)
    throw std::invalid_argument("DenseHopfield: needs at least one state layer and batch >= 1");
  const int states = shape_.state_layers();
  LayerLayout layout;
  layout.input_size = shape_.layers.front();
  layout.classes = shape_.classes();
  layout.parameter_widths = shape_.layers;
  layout.state_units.assign(shape_.layers.begin() + 1, shape_.layers.begin() + 1 + states);
  layout.with_momenta = true;  // for cSB
  layout.activation_max = shape_.activation_max;
  define_layers(std::move(layout));
  input_drive_ = DeviceBuffer<float>(backend_, std::size_t(max_batch_) * shape_.layers[1]);
  for (int i = 0; i < states; ++i) {
    const std::size_t size = std::size_t(max_batch_) * shape_.layers[i + 1];
    drive_.emplace_back(backend_, i > 0 ? size : 0);  // layer 0 uses the cached input drive
    feedback_.emplace_back(backend_, size);
  }
  if (shape_.cost == CostKind::cross_entropy) enable_softmax_readout(shape_.classes());
}

void DenseHopfield::set_input(const float* x, int batch) {
  begin_batch(x, batch);
  // input_drive (batch, layers[1]) = x (batch, layers[0]) W_1 (layers[0], layers[1])
  backend_.gemm(Transpose::no, Transpose::no, batch, shape_.layers[1], shape_.layers[0], 1.0f, x,
                shape_.layers[0], parameters_.weights[0].data(), shape_.layers[1], 0.0f,
                input_drive_.data(), shape_.layers[1]);
}

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
    backend_.reduce_rows(RowEnergyOp{state.layers[i].data(), drive, parameters_.biases[i].data(), energy, n[i + 1], i > 0},
                 batch_);
  }
}

namespace {

// Where RelaxationPath::automatic takes the fused path: where it was measured
// faster than the GEMM path (perf/relaxation_path_crossover.sh,
// perf/results/relaxation_path_crossover.jsonl). Nowhere yet:
// - the CPU: the GEMM path won at every measured size (784-H-10, H 16..1000, batch
//   16..512: the fused path 2.5x to 25x slower), as the fused SB kernel did
//   (DESIGN.md §2): a per-system matrix-vector product, the output layer's long
//   sums over runs of 10 units, cannot match a BLAS that reuses the couplings in
//   registers across the batch;
// - the GPU: not measured here (perf/gpu_check.sh's bench_dense_relax_fused and
//   _gemm pair is the measurement; perf/gpu_step_model.md expects the fused path
//   ~4x faster at 784-500-10, batch 128, where the GEMM path is launch-bound).
// Until a GPU measurement says otherwise, auto keeps the GEMM path everywhere.
bool fused_measured_faster(const BackendTraits& traits, int units_total, int batch) {
  (void)traits, (void)units_total, (void)batch;
  return false;
}

// The fused block's shared memory per system: states, drives and feedbacks of
// every unit (FusedRelaxationLaunchPolicy::max_shared_bytes_per_system).
constexpr int kFusedMaxUnitsTotal = FusedRelaxationLaunchPolicy::max_units_total(3);
static_assert(kFusedMaxUnitsTotal == 8192, "the refusal below names the limit");

}  // namespace

const char* DenseHopfield::fused_path_refusal(const PhaseSpec& spec) const {
  if (spec.integrator != Integrator::fixed_point && spec.integrator != Integrator::gradient_flow)
    return "it runs fixed-point or gradient-flow phases, not cSB";
  if (spec.order != UpdateOrder::synchronous) return "it runs synchronous updates only";
  if (spec.noise_sigma != 0.0f) return "it runs without Langevin noise";
  if (spec.tolerance > 0.0f) return "it runs every step (no early exit by tolerance)";
  if (spec.read_out) return "it has no fused ADC read-out";
  if (spec.beta != 0.0f && shape_.cost == CostKind::cross_entropy)
    return "it nudges the MSE output only, not the cross-entropy read-out";
  if (shape_.state_layers() > kFusedRelaxationMaxLayers) return "it takes at most 4 state layers";
  if (units_total() > kFusedMaxUnitsTotal) return "it takes at most 8192 state units per system";
  return nullptr;
}

PhaseResult DenseHopfield::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  const char* refusal = relaxation_path_ == RelaxationPath::gemm ? nullptr : fused_path_refusal(spec);
  if (!takes_fused_path(relaxation_path_, refusal, fused_measured_faster(backend_.traits(), units_total(), batch_),
                        "DenseHopfield"))
    return LayeredModel::relax(state, target, spec);
  relax_fused(state, target, spec);
  return PhaseResult{spec.steps};
}

void DenseHopfield::relax_fused(NetworkState& state, const float* target, const PhaseSpec& spec) {
  FusedRelaxationBlock body{};
  fill_fused_phase(backend_, parameters_, shape_.layers, shape_.state_layers(), state, target, spec, batch_, 3,
                   weights_transposed_, body);
  body.input_drive = input_drive_.data();
  body.integrator = spec.integrator;
  body.activation_max = shape_.activation_max;
  backend_.run_blocks(body, body.blocks(), FusedRelaxationLaunchPolicy::threads_per_block(body.elements()));
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
  // Each group of layers (models/update_order.h) moves from fields computed at the
  // latest states: synchronous, one group, every field from the previous step;
  // asynchronous, the odd layers, then the even ones from the new odd ones.
  const int groups = update_group_count(spec.order);
  for (int g = 0; g < groups; ++g) {
    for (int i = g > 0 ? g : groups; i < states; i += groups) {  // layer 0's drive is cached
      // drive_i (rows, n_i) = s_{i-1} (rows, n_{i-1}) W_i (n_{i-1}, n_i)
      backend_.gemm(Transpose::no, Transpose::no, rows, n[i + 1], n[i], 1.0f, at(state.layers[i - 1].data(), n[i]),
                    n[i], parameters_.weights[i].data(), n[i + 1], 0.0f, at(drive_[i].data(), n[i + 1]), n[i + 1]);
    }
    for (int i = g; i < top; i += groups) {
      // feedback_i (rows, n_i) = s_{i+1} (rows, n_{i+1}) W_{i+1}^T (n_{i+1}, n_i)
      backend_.gemm(Transpose::no, Transpose::yes, rows, n[i + 1], n[i + 2], 1.0f,
                    at(state.layers[i + 1].data(), n[i + 2]), n[i + 2], parameters_.weights[i + 1].data(), n[i + 2],
                    0.0f, at(feedback_[i].data(), n[i + 1]), n[i + 1]);
    }
    if (readout_nudge && top % groups == g)
      // -beta dl/drho(s_top) = -beta (softmax - y) W_out^T, acting through rho(s_top).
      softmax_nudge(state, target, spec.beta, begin, rows, at(feedback_[top].data(), n[top + 1]));
    for (int i = g; i < states; i += groups) {
      const bool has_feedback = i < top || readout_nudge;
      const bool mse_nudge = nudged && i == top && shape_.cost == CostKind::mse;
      run_layer_step(state, spec, step, i, begin, rows,
                     {i == 0 ? input_drive_.data() : drive_[i].data(), has_feedback ? feedback_[i].data() : nullptr,
                      parameters_.biases[i].data(), mse_nudge ? target : nullptr});
    }
  }
}

void DenseHopfield::ep_gradient(const NetworkState& state_a, float beta_a,
                                const NetworkState& state_b, float beta_b, const float* target,
                                ParameterSet& gradient) {
  const int states = shape_.state_layers();
  const float c = contrastive_scale(beta_a, beta_b, batch_);
  // dE/dW_l = -rho(s_{l-1})^T rho(s_l); states live in [0, 1], so rho(s) = s.
  for (int i = 0; i < states; ++i) {
    const int fan_in = shape_.layers[i], units = shape_.layers[i + 1];
    float* weight_gradient = gradient.weights[i].data();
    if (i == 0) {
      // The input is clamped to x in both phases: one GEMM on s_a - s_b.
      const float* difference = first_layer_difference(state_a.layers[0].data(), state_b.layers[0].data());
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, input_, fan_in, difference, units,
                    0.0f, weight_gradient, units);
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
  if (has_softmax_readout()) softmax_gradient(state_a, beta_a, state_b, beta_b, target, c, gradient);
}

float DenseHopfield::implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                                       ParameterSet& gradient) {
  const int states = shape_.state_layers();
  const int top = states - 1;
  const std::vector<int>& n = shape_.layers;
  const float residual = solve_adjoint(
      free_state, target, iterations,
      [&](const NetworkState& mu) {
        for (int i = 1; i < states; ++i)  // (K mu)_i from below: mu_{i-1} W_i
          backend_.gemm(Transpose::no, Transpose::no, batch_, n[i + 1], n[i], 1.0f, mu.layers[i - 1].data(), n[i],
                        parameters_.weights[i].data(), n[i + 1], 0.0f, drive_[i].data(), n[i + 1]);
        for (int i = 0; i < top; ++i)  // (K mu)_i from above: mu_{i+1} W_{i+1}^T
          backend_.gemm(Transpose::no, Transpose::yes, batch_, n[i + 1], n[i + 2], 1.0f, mu.layers[i + 1].data(),
                        n[i + 2], parameters_.weights[i + 1].data(), n[i + 2], 0.0f, feedback_[i].data(), n[i + 1]);
      },
      drive_, feedback_);
  const NetworkState& mu = adjoint();
  for (int i = 0; i < states; ++i) {
    const int fan_in = n[i], units = n[i + 1];
    const float* below = i == 0 ? input_ : free_state.layers[i - 1].data();
    // dL/dW_i = rho(s_{i-1})^T mu_i (+ mu_{i-1}^T rho(s_i) above the clamped input)
    backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, below, fan_in, mu.layers[i].data(), units,
                  0.0f, gradient.weights[i].data(), units);
    if (i > 0)
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, mu.layers[i - 1].data(), fan_in,
                    free_state.layers[i].data(), units, 1.0f, gradient.weights[i].data(), units);
    backend_.run(ColumnSumOp{mu.layers[i].data(), nullptr, gradient.biases[i].data(), 1.0f, 0.0f, batch_, units},
                 units);
  }
  if (has_softmax_readout())
    softmax_gradient(free_state, 1.0f, free_state, 0.0f, target, contrastive_scale(1.0f, 0.0f, batch_), gradient);
  return residual;
}

void DenseHopfield::metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  top_layer_metrics(state, target, loss, correct);
}

double DenseHopfield::training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const {
  const std::vector<int>& n = shape_.layers;
  const double b = batch;
  auto gemm = [&](int l) { return 2.0 * b * n[l] * n[l + 1]; };  // one pass through W_{l+1}
  // The contrastive update: two GEMMs for each coupling above the input.
  return hopfield_training_step_flops(gemm, [](int) { return 2; }, shape_.state_layers(), shape_.weight_tensors(),
                                      shape_.cost == CostKind::cross_entropy, free_steps, nudged_steps, nudged_phases);
}

}  // namespace eqprop
