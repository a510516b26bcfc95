#include "models/oscillator_network.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/fused_oscillator_block.h"
#include "kernels/oscillator_adjoint.h"
#include "models/fused_relaxation_path.h"

namespace eqprop {

OscillatorNetwork::OscillatorNetwork(Backend& backend, OscillatorShape shape, int max_batch, RelaxationPath path)
    : LayeredModel(backend, "OscillatorNetwork", max_batch), shape_(std::move(shape)), relaxation_path_(path) {
  if (shape_.layers.size() < 2 || max_batch_ < 1)
    throw std::invalid_argument("OscillatorNetwork: needs an input and at least one oscillator layer, and batch >= 1");
  for (int n : shape_.layers)
    if (n < 1) throw std::invalid_argument("OscillatorNetwork: a layer has no units");
  const std::vector<int>& n = shape_.layers;
  LayerLayout layout;
  layout.input_size = n.front();
  layout.classes = shape_.classes();
  layout.parameter_widths = n;
  layout.state_units.assign(n.begin() + 1, n.end());
  layout.period = kTwoPi;  // first-order dynamics on phases: no momenta
  define_layers(std::move(layout));
  const std::size_t b = max_batch_;
  auto trig_of = [&](int units) { return Trig{DeviceBuffer<float>(backend_, b * units), DeviceBuffer<float>(backend_, b * units)}; };
  input_trig_ = trig_of(n[0]);
  input_cos_drive_ = DeviceBuffer<float>(backend_, b * n[1]);
  input_sin_drive_ = DeviceBuffer<float>(backend_, b * n[1]);
  const int states = shape_.state_layers();
  int widest = 0;
  for (int i = 0; i < states; ++i) {
    const int units = n[i + 1];
    trig_.push_back(trig_of(units));
    other_trig_.push_back(trig_of(units));
    const std::size_t size = b * units;
    cos_drive_.emplace_back(backend_, i > 0 ? size : 0);  // layer 0 uses the cached input fields
    sin_drive_.emplace_back(backend_, i > 0 ? size : 0);
    cos_feedback_.emplace_back(backend_, i + 1 < states ? size : 0);
    sin_feedback_.emplace_back(backend_, i + 1 < states ? size : 0);
    widest = std::max(widest, units);
  }
  readout_ = DeviceBuffer<float>(backend_, b * shape_.classes());
  reset_phases_ = DeviceBuffer<float>(backend_, b * widest);
  reset_phases_.copy_from_host(std::vector<float>(reset_phases_.size(), 0.5f * kPi));
}

void OscillatorNetwork::set_input(const float* x, int batch) {
  begin_batch(x, batch);
  const int n0 = shape_.layers[0], n1 = shape_.layers[1];
  backend_.run(OscillatorTrigOp{x, shape_.input_scale, input_trig_.cosines.data(), input_trig_.sines.data(), nullptr, n0},
               std::int64_t(batch) * n0);
  // input fields (batch, n1) = cos/sin(phi_0) (batch, n0) J_0 (n0, n1)
  backend_.gemm(Transpose::no, Transpose::no, batch, n1, n0, 1.0f, input_trig_.cosines.data(), n0,
                parameters_.weights[0].data(), n1, 0.0f, input_cos_drive_.data(), n1);
  backend_.gemm(Transpose::no, Transpose::no, batch, n1, n0, 1.0f, input_trig_.sines.data(), n0,
                parameters_.weights[0].data(), n1, 0.0f, input_sin_drive_.data(), n1);
}

void OscillatorNetwork::reset(NetworkState& state) {
  for (std::size_t i = 0; i < state.layers.size(); ++i)
    backend_.copy_on_device(state.layers[i].data(), reset_phases_.data(),
                            std::size_t(batch_) * shape_.layers[i + 1] * sizeof(float));
}

void OscillatorNetwork::compute_trig(const NetworkState& state, std::vector<Trig>& trig, int begin, int rows) {
  for (std::size_t i = 0; i < state.layers.size(); ++i) {
    const std::size_t offset = std::size_t(begin) * shape_.layers[i + 1];
    backend_.run(OscillatorTrigOp{state.layers[i].data() + offset, 1.0f, trig[i].cosines.data() + offset,
                                  trig[i].sines.data() + offset, nullptr, shape_.layers[i + 1]},
                 std::int64_t(rows) * shape_.layers[i + 1]);
  }
}

void OscillatorNetwork::drive_from_below(const std::vector<Trig>& trig, int i, int begin, int rows) {
  const std::vector<int>& n = shape_.layers;
  const std::size_t below = std::size_t(begin) * n[i], here = std::size_t(begin) * n[i + 1];
  backend_.gemm(Transpose::no, Transpose::no, rows, n[i + 1], n[i], 1.0f, trig[i - 1].cosines.data() + below, n[i],
                parameters_.weights[i].data(), n[i + 1], 0.0f, cos_drive_[i].data() + here, n[i + 1]);
  backend_.gemm(Transpose::no, Transpose::no, rows, n[i + 1], n[i], 1.0f, trig[i - 1].sines.data() + below, n[i],
                parameters_.weights[i].data(), n[i + 1], 0.0f, sin_drive_[i].data() + here, n[i + 1]);
}

void OscillatorNetwork::feedback_from_above(const std::vector<Trig>& trig, int i, int begin, int rows) {
  const std::vector<int>& n = shape_.layers;
  const std::size_t above = std::size_t(begin) * n[i + 2], here = std::size_t(begin) * n[i + 1];
  backend_.gemm(Transpose::no, Transpose::yes, rows, n[i + 1], n[i + 2], 1.0f, trig[i + 1].cosines.data() + above,
                n[i + 2], parameters_.weights[i + 1].data(), n[i + 2], 0.0f, cos_feedback_[i].data() + here, n[i + 1]);
  backend_.gemm(Transpose::no, Transpose::yes, rows, n[i + 1], n[i + 2], 1.0f, trig[i + 1].sines.data() + above,
                n[i + 2], parameters_.weights[i + 1].data(), n[i + 2], 0.0f, sin_feedback_[i].data() + here, n[i + 1]);
}

void OscillatorNetwork::prepare_phase(const NetworkState& state, const PhaseSpec& spec) {
  if (spec.integrator != Integrator::gradient_flow)
    throw std::invalid_argument("OscillatorNetwork: phases relax by gradient flow only (dynamics.integrator = \"gradient_flow\")");
  // The steps read cos and sin of the previous step (each step writes the next
  // ones), so they start from the state as given.
  compute_trig(state, trig_, 0, batch_);
}

namespace {

// Where RelaxationPath::automatic takes the fused path: where it was measured
// faster than the GEMM path (perf/relaxation_path_crossover.sh with
// MODEL=oscillator, perf/results/relaxation_path_crossover.jsonl). Nowhere yet:
// - the CPU: the GEMM path won at 9 of 10 sizes (784-H-10, H 16..1000, batch 16 and
//   128: the fused path 1.8x to 66x slower on a loaded machine); the exception,
//   H = 64 at batch 16, did not repeat on one thread (gemm 0.37 ms, fused 1.4 ms).
//   As for the dense network (models/dense_hopfield.cpp), a per-system
//   matrix-vector product cannot match a BLAS that reuses the couplings across
//   the batch;
// - the GPU: not measured (perf/gpu_check.sh's bench_oscillator_relax_fused and
//   _gemm pair is the measurement; perf/gpu_step_model.md expects the fused path
//   ~5x faster at 784-500-10, batch 128).
bool oscillator_fused_measured_faster(const BackendTraits& traits, int units_total, int batch) {
  (void)traits, (void)units_total, (void)batch;
  return false;
}

// The fused block's shared memory per system: phase, cos, sin and four fields of
// every oscillator (FusedRelaxationLaunchPolicy::max_shared_bytes_per_system).
constexpr int kFusedOscillatorMaxUnits =
    FusedRelaxationLaunchPolicy::max_units_total(FusedOscillatorBlock::shared_arrays_per_element);
static_assert(kFusedOscillatorMaxUnits == 3510, "the refusal below names the limit");

}  // namespace

const char* OscillatorNetwork::fused_path_refusal(const PhaseSpec& spec) const {
  if (spec.integrator != Integrator::gradient_flow) return "it runs gradient-flow phases only";
  if (spec.order != UpdateOrder::synchronous) return "it runs synchronous updates only";
  if (spec.noise_sigma != 0.0f) return "it runs without Langevin noise";
  if (spec.tolerance > 0.0f) return "it runs every step (no early exit by tolerance)";
  if (spec.read_out) return "it has no fused ADC read-out";
  if (shape_.state_layers() > kFusedRelaxationMaxLayers) return "it takes at most 4 oscillator layers";
  if (units_total() > kFusedOscillatorMaxUnits) return "it takes at most 3510 oscillators per system";
  return nullptr;
}

PhaseResult OscillatorNetwork::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  if (spec.beta == 0.0f) free_phase_dt_ = spec.dt;
  const char* refusal = relaxation_path_ == RelaxationPath::gemm ? nullptr : fused_path_refusal(spec);
  const bool faster = oscillator_fused_measured_faster(backend_.traits(), units_total(), batch_);
  if (!takes_fused_path(relaxation_path_, refusal, faster, "OscillatorNetwork"))
    return LayeredModel::relax(state, target, spec);
  relax_fused(state, target, spec);
  return PhaseResult{spec.steps};
}

void OscillatorNetwork::relax_fused(NetworkState& state, const float* target, const PhaseSpec& spec) {
  FusedOscillatorBlock body{};
  fill_fused_phase(backend_, parameters_, shape_.layers, shape_.state_layers(), state, target, spec, batch_,
                   FusedOscillatorBlock::shared_arrays_per_element, weights_transposed_, body);
  body.input_cos_drive = input_cos_drive_.data();
  body.input_sin_drive = input_sin_drive_.data();
  body.shil = shape_.shil;
  backend_.run_blocks(body, body.blocks(), FusedRelaxationLaunchPolicy::threads_per_block(body.elements()));
}

void OscillatorNetwork::step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step,
                                  int begin, int rows) {
  const int states = shape_.state_layers(), top = states - 1;
  // Each group of layers (models/update_order.h) moves from fields computed at the
  // latest phases: synchronous, one group, every field from the previous step's cos
  // and sin; asynchronous, the odd layers, then the even ones from the new odd ones
  // (the step op rewrites a layer's cos and sin). Given its neighbours a layer's
  // energy is separable per oscillator, -A cos phi - B sin phi - S/2 cos 2 phi, so
  // each half step is a gradient-flow step on that block alone (Gauss-Seidel); its
  // exact minimiser, phi = atan2(B, A) for S = 0, is not what a physical oscillator
  // does, so the dynamics stay gradient flow.
  const bool nudged = spec.beta != 0.0f;
  const int groups = update_group_count(spec.order);
  for (int g = 0; g < groups; ++g) {
    for (int i = g > 0 ? g : groups; i < states; i += groups) drive_from_below(trig_, i, begin, rows);  // layer 0's is cached
    for (int i = g; i < top; i += groups) feedback_from_above(trig_, i, begin, rows);
    for (int i = g; i < states; i += groups) step_layer(state, target, spec, step, i, begin, rows, nudged);
  }
}

void OscillatorNetwork::step_layer(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int i,
                                   int begin, int rows, bool nudged) {
  const int top = shape_.state_layers() - 1;
  const std::vector<int>& n = shape_.layers;
  auto at = [begin](auto* array, int units) { return array + std::size_t(begin) * units; };
  const int units = n[i + 1];
  OscillatorStepOp op{at(state.layers[i].data(), units),
                      at(trig_[i].cosines.data(), units),
                      at(trig_[i].sines.data(), units),
                      i == 0 ? at(input_cos_drive_.data(), units) : at(cos_drive_[i].data(), units),
                      i == 0 ? at(input_sin_drive_.data(), units) : at(sin_drive_[i].data(), units),
                      i < top ? at(cos_feedback_[i].data(), units) : nullptr,
                      i < top ? at(sin_feedback_[i].data(), units) : nullptr,
                      parameters_.biases[i].data(),
                      nudged && i == top ? at(target, units) : nullptr,
                      spec.beta,
                      shape_.shil,
                      spec.dt,
                      units};
  set_langevin_noise(op, spec, step, i, begin);
  backend_.run(op, std::int64_t(rows) * units);
}

void OscillatorNetwork::energy(const NetworkState& state, float* energy) {
  compute_trig(state, other_trig_, 0, batch_);
  for (int i = 0; i < shape_.state_layers(); ++i) {
    const int units = shape_.layers[i + 1];
    if (i > 0) drive_from_below(other_trig_, i, 0, batch_);
    backend_.run(OscillatorRowEnergyOp{other_trig_[i].cosines.data(), other_trig_[i].sines.data(),
                                       i == 0 ? input_cos_drive_.data() : cos_drive_[i].data(),
                                       i == 0 ? input_sin_drive_.data() : sin_drive_[i].data(),
                                       parameters_.biases[i].data(), energy, shape_.shil, units, i > 0},
                 batch_);
  }
}

void OscillatorNetwork::ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b,
                                    float beta_b, const float*, ParameterSet& gradient) {
  const float c = contrastive_scale(beta_a, beta_b, batch_);
  compute_trig(state_a, trig_, 0, batch_);
  compute_trig(state_b, other_trig_, 0, batch_);
  const std::vector<Trig>& a = trig_;
  const std::vector<Trig>& b = other_trig_;
  // dV/dJ_l(i, j) = -(cos phi_i cos phi_j + sin phi_i sin phi_j): two GEMMs per state.
  for (int i = 0; i < shape_.state_layers(); ++i) {
    const int fan_in = shape_.layers[i], units = shape_.layers[i + 1];
    float* weight_gradient = gradient.weights[i].data();
    if (i == 0) {
      // The input phases are clamped in both phases: GEMMs on the differences.
      const float* cos_difference = first_layer_difference(a[0].cosines.data(), b[0].cosines.data());
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, input_trig_.cosines.data(), fan_in,
                    cos_difference, units, 0.0f, weight_gradient, units);
      const float* sin_difference = first_layer_difference(a[0].sines.data(), b[0].sines.data());
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, input_trig_.sines.data(), fan_in,
                    sin_difference, units, 1.0f, weight_gradient, units);
    } else {
      const std::pair<const Trig*, float> terms[2] = {{a.data(), -c}, {b.data(), c}};
      float accumulate = 0.0f;
      for (const auto& [trig, scale] : terms) {
        backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, scale, trig[i - 1].cosines.data(), fan_in,
                      trig[i].cosines.data(), units, accumulate, weight_gradient, units);
        backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, scale, trig[i - 1].sines.data(), fan_in,
                      trig[i].sines.data(), units, 1.0f, weight_gradient, units);
        accumulate = 1.0f;
      }
    }
    // dV/dh_j = -cos phi_j
    backend_.run(ColumnSumOp{a[i].cosines.data(), b[i].cosines.data(), gradient.biases[i].data(), -c, c, batch_, units},
                 units);
  }
}

float OscillatorNetwork::implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                                           ParameterSet& gradient) {
  if (!(free_phase_dt_ > 0.0f))
    throw std::invalid_argument("OscillatorNetwork: implicit_gradient needs a free phase relaxed first (the adjoint "
                                "iterates its gradient-flow step dt)");
  const int states = shape_.state_layers(), top = states - 1;
  const std::vector<int>& n = shape_.layers;
  if (curvature_.empty())
    for (int i = 0; i < states; ++i) curvature_.emplace_back(backend_, std::size_t(max_batch_) * n[i + 1]);
  // The Hessian's diagonal from the free state's fields; trig_ keeps cos and sin of
  // the free state, other_trig_ holds c mu and s mu (0 with mu).
  compute_trig(free_state, trig_, 0, batch_);
  for (int i = 1; i < states; ++i) drive_from_below(trig_, i, 0, batch_);
  for (int i = 0; i < top; ++i) feedback_from_above(trig_, i, 0, batch_);
  for (int i = 0; i < states; ++i) {
    const int units = n[i + 1];
    backend_.run(OscillatorCurvatureOp{trig_[i].cosines.data(), trig_[i].sines.data(),
                                       i == 0 ? input_cos_drive_.data() : cos_drive_[i].data(),
                                       i == 0 ? input_sin_drive_.data() : sin_drive_[i].data(),
                                       i < top ? cos_feedback_[i].data() : nullptr,
                                       i < top ? sin_feedback_[i].data() : nullptr, parameters_.biases[i].data(),
                                       shape_.shil, curvature_[i].data(), units},
                 std::int64_t(batch_) * units);
    backend_.fill_zero(other_trig_[i].cosines.data(), other_trig_[i].cosines.bytes());
    backend_.fill_zero(other_trig_[i].sines.data(), other_trig_[i].sines.bytes());
  }
  const float mean = 1.0f / static_cast<float>(batch_);
  const float residual = iterate_adjoint(iterations, [&](NetworkState& mu) {
    // The couplings of mu: the relaxation's GEMMs on c mu and s mu (mu = 0 on the input).
    for (int i = 1; i < states; ++i) drive_from_below(other_trig_, i, 0, batch_);
    for (int i = 0; i < top; ++i) feedback_from_above(other_trig_, i, 0, batch_);
    for (int i = 0; i < states; ++i)
      backend_.run(OscillatorAdjointStepOp{trig_[i].cosines.data(), trig_[i].sines.data(), curvature_[i].data(),
                                           i > 0 ? cos_drive_[i].data() : nullptr,
                                           i > 0 ? sin_drive_[i].data() : nullptr,
                                           i < top ? cos_feedback_[i].data() : nullptr,
                                           i < top ? sin_feedback_[i].data() : nullptr,
                                           i == top ? target : nullptr, mean, free_phase_dt_, mu.layers[i].data(),
                                           other_trig_[i].cosines.data(), other_trig_[i].sines.data()},
                   std::int64_t(batch_) * n[i + 1]);
  });
  // dL/dJ_ab = -(mu_a - mu_b)(s_a c_b - c_a s_b)
  //          = -(s mu)_a c_b + (c mu)_a s_b + s_a (c mu)_b - c_a (s mu)_b,
  // a the layer below (the input, whose mu is 0, for J_0), b the layer above.
  const std::vector<Trig>& free = trig_;
  const std::vector<Trig>& weighted = other_trig_;
  for (int i = 0; i < states; ++i) {
    const int fan_in = n[i], units = n[i + 1];
    const Trig& lower = i == 0 ? input_trig_ : free[i - 1];
    float* weight_gradient = gradient.weights[i].data();
    backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, lower.sines.data(), fan_in,
                  weighted[i].cosines.data(), units, 0.0f, weight_gradient, units);
    backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -1.0f, lower.cosines.data(), fan_in,
                  weighted[i].sines.data(), units, 1.0f, weight_gradient, units);
    if (i > 0) {
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -1.0f, weighted[i - 1].sines.data(), fan_in,
                    free[i].cosines.data(), units, 1.0f, weight_gradient, units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, weighted[i - 1].cosines.data(), fan_in,
                    free[i].sines.data(), units, 1.0f, weight_gradient, units);
    }
    // dL/dh_a = -(s mu)_a
    backend_.run(ColumnSumOp{weighted[i].sines.data(), nullptr, gradient.biases[i].data(), -1.0f, 0.0f, batch_, units},
                 units);
  }
  return residual;
}

void OscillatorNetwork::metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  const int top = shape_.state_layers() - 1, classes = shape_.classes();
  backend_.run(OscillatorTrigOp{state.layers[top].data(), 1.0f, other_trig_[top].cosines.data(),
                                other_trig_[top].sines.data(), readout_.data(), classes},
               std::int64_t(batch_) * classes);
  backend_.run(RowMetricsOp{readout_.data(), target, loss, correct, CostKind::mse, classes, nullptr}, batch_);
}

double OscillatorNetwork::training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const {
  const std::vector<int>& n = shape_.layers;
  const int tensors = shape_.weight_tensors();
  const double b = batch;
  auto gemm = [&](int l) { return 2.0 * b * n[l] * n[l + 1]; };  // one pass through J_l
  double per_step = 0;
  for (int l = 1; l < tensors; ++l) per_step += 4 * gemm(l);  // cos and sin, from below and from above
  double flops = 2 * gemm(0);                                  // the cached input fields
  flops += per_step * (free_steps + nudged_phases * double(nudged_steps));
  flops += 2 * gemm(0);  // contrastive update: two GEMMs for the input couplings
  for (int l = 1; l < tensors; ++l) flops += 4 * gemm(l);
  return flops;
}

}  // namespace eqprop
