#include "models/ising_network.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/fused_ising_block.h"
#include "kernels/noise_key.h"
#include "models/fused_relaxation_path.h"

namespace eqprop {

IsingNetwork::IsingNetwork(Backend& backend, IsingNetworkShape shape, IsingDynamics dynamics, int max_batch,
                           RelaxationPath path)
    : LayeredModel(backend, "IsingNetwork", max_batch), shape_(std::move(shape)), relaxation_path_(path) {
  if (shape_.state_layers() < 1 || max_batch_ < 1)
    throw std::invalid_argument("IsingNetwork: needs at least one spin layer and batch >= 1");
  if (shape_.spins_per_class < 1 || shape_.replicas < 1)
    throw std::invalid_argument("IsingNetwork: spins_per_class and replicas must be >= 1");
  set_dynamics(dynamics);
  LayerLayout layout;
  layout.input_size = shape_.layers.front();
  layout.classes = shape_.classes();
  layout.parameter_widths = shape_.all_units();
  for (int i = 0; i < shape_.state_layers(); ++i) layout.state_units.push_back(shape_.replicas * shape_.units(i + 1));
  layout.early_exit = false;  // annealing and dSB run their full schedule
  define_layers(std::move(layout));
  const std::size_t rows = std::size_t(max_batch_) * shape_.replicas;
  input_drive_ = DeviceBuffer<float>(backend_, rows * shape_.units(1));
  for (int i = 0; i < shape_.state_layers(); ++i) {
    const std::size_t size = rows * shape_.units(i + 1);
    below_.emplace_back(backend_, i > 0 ? size : 0);  // layer 1 uses the cached input drive
    above_.emplace_back(backend_, i + 1 < shape_.state_layers() ? size : 0);
  }
  row_energy_ = DeviceBuffer<float>(backend_, rows);
}

void IsingNetwork::set_dynamics(const IsingDynamics& dynamics) {
  if (!(dynamics.temperature_start > 0.0f) || !(dynamics.temperature_end > 0.0f))
    throw std::invalid_argument("IsingNetwork: temperatures must be positive");
  dynamics_ = dynamics;
  if (dynamics_.relaxation == IsingRelaxation::dsb && positions_.empty()) {
    const std::size_t rows = std::size_t(max_batch_) * shape_.replicas;
    for (int i = 0; i < shape_.state_layers(); ++i) {
      positions_.emplace_back(backend_, rows * shape_.units(i + 1));
      momenta_.emplace_back(backend_, rows * shape_.units(i + 1));
      fields_.emplace_back(backend_, rows * shape_.units(i + 1));
    }
  }
}

void IsingNetwork::set_input(const float* x, int batch) {
  begin_batch(x, batch);
  const int n0 = shape_.units(0), n1 = shape_.units(1), replicas = shape_.replicas;
  // input_drive (batch, replica r, n_1) = x (batch, n_0) W_0 (n_0, n_1): one GEMM per
  // replica into its rows (row stride R * n_1), so the sweeps and the energy read a
  // (batch * R, n_1) array like every other field.
  for (int r = 0; r < replicas; ++r)
    backend_.gemm(Transpose::no, Transpose::no, batch, n1, n0, 1.0f, x, n0, parameters_.weights[0].data(), n1, 0.0f,
                  input_drive_.data() + std::size_t(r) * n1, replicas * n1);
}

float IsingNetwork::inverse_temperature(int sweep, int sweeps, bool nudged) const {
  return ising_inverse_temperature(sweep, sweeps, nudged, dynamics_.temperature_start, dynamics_.temperature_end);
}

namespace {

// Where RelaxationPath::automatic takes the fused annealing path: where it was
// measured faster than the GEMM path. Nowhere yet: on the CPU a per-row
// matrix-vector product cannot match a BLAS that reuses the couplings across the
// batch (as for the dense and oscillator networks; perf/relaxation_path_crossover.sh
// with MODEL=ising measures it), and on the GPU it has not run
// (perf/gpu_check.sh's bench_ising_relax_fused and _gemm pair is the measurement).
bool ising_fused_measured_faster(const BackendTraits& traits, int units_total, int rows) {
  (void)traits, (void)units_total, (void)rows;
  return false;
}

// The fused block's shared memory per row: each spin and its two fields.
constexpr int kFusedIsingMaxUnits =
    FusedRelaxationLaunchPolicy::max_units_total(FusedIsingBlock::shared_arrays_per_element);
static_assert(kFusedIsingMaxUnits == 8192, "the refusal below names the limit");

}  // namespace

const char* IsingNetwork::fused_path_refusal(const PhaseSpec& spec) const {
  if (dynamics_.relaxation != IsingRelaxation::annealing) return "it runs annealing sweeps only (not dSB)";
  if (spec.read_out) return "it has no fused ADC read-out";
  if (shape_.state_layers() > kFusedRelaxationMaxLayers) return "it takes at most 4 spin layers";
  if (units_total() / shape_.replicas > kFusedIsingMaxUnits) return "it takes at most 8192 spins per replica";
  return nullptr;
}

PhaseResult IsingNetwork::relax(NetworkState& state, const float* target, const PhaseSpec& spec) {
  if (dynamics_.relaxation == IsingRelaxation::dsb && spec.order != UpdateOrder::synchronous)
    throw std::invalid_argument("IsingNetwork: dSB steps are synchronous; dynamics.order = \"asynchronous\" applies "
                                "to annealing sweeps, which always go odd layers then even layers");
  const char* refusal = relaxation_path_ == RelaxationPath::gemm ? nullptr : fused_path_refusal(spec);
  const int rows = batch_ * shape_.replicas;
  const bool faster = ising_fused_measured_faster(backend_.traits(), units_total() / shape_.replicas, rows);
  if (takes_fused_path(relaxation_path_, refusal, faster, "IsingNetwork")) {
    relax_fused(state, target, spec);
    return PhaseResult{spec.steps};
  }
  // The samples of a batch are independent systems: the CPU backend gives each core
  // its own samples (all their replicas) for the whole phase.
  backend_.parallel_over_rows(batch_, [&](int begin, int end) {
    if (dynamics_.relaxation == IsingRelaxation::dsb) start_dsb(state, spec, begin, end - begin);
    for (int step = 0; step < spec.steps; ++step) step_rows(state, target, spec, step, begin, end - begin);
  });
  return PhaseResult{spec.steps};
}

void IsingNetwork::step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                             int samples) {
  if (dynamics_.relaxation == IsingRelaxation::dsb) return dsb_step(state, target, spec, step, begin, samples);
  const bool nudged = spec.beta != 0.0f;
  const int layers = shape_.state_layers();
  const int first_row = begin * shape_.replicas, rows = samples * shape_.replicas;
  const float inverse_temperature_now = inverse_temperature(step, spec.steps, nudged);
  // Odd spin layers (state layers 0, 2, ...) given the even ones, then the even
  // ones given the new odd ones: each half is an exact block update.
  for (int parity = 0; parity < 2; ++parity)
    for (int i = parity; i < layers; i += 2)
      update_layer(state, i, nudged ? target : nullptr, spec, inverse_temperature_now, step, begin, first_row, rows);
}

void IsingNetwork::relax_fused(NetworkState& state, const float* target, const PhaseSpec& spec) {
  const int replicas = shape_.replicas, states = shape_.state_layers();
  FusedIsingBlock body{};
  fill_fused_phase(backend_, parameters_, shape_.all_units(), states, state, target, spec, batch_ * replicas,
                   FusedIsingBlock::shared_arrays_per_element, weights_transposed_, body);
  body.input_drive = input_drive_.data();
  body.nudge = spec.beta / static_cast<float>(shape_.spins_per_class);
  body.temperature_start = dynamics_.temperature_start;
  body.temperature_end = dynamics_.temperature_end;
  body.nudged = spec.beta != 0.0f;
  body.rule = dynamics_.rule;
  body.replicas = replicas;
  body.spins_per_class = shape_.spins_per_class;
  body.classes = shape_.classes();
  // update_layer's keys, for the whole batch at once (a row is one replica's spins).
  const std::uint64_t per_row = static_cast<std::uint64_t>(units_total()) / replicas;
  for (int i = 0; i < states; ++i)
    body.first_key[i] =
        relaxation_noise_key(spec.first_sample * replicas, per_row, static_cast<std::uint64_t>(unit_offset(i)) / replicas,
                             spec.noise_phase, 0)
            .first;
  body.key_row_stride = per_row;
  body.first_sample = spec.step_first_sample;
  body.seed = spec.noise_seed;
  body.noise_phase = spec.noise_phase;
  backend_.run_blocks(body, body.blocks(), FusedRelaxationLaunchPolicy::threads_per_block(body.elements()));
}

IsingLayerFields IsingNetwork::layer_fields(const NetworkState& state, int i, const float* target, float beta,
                                            int first_sample, int first_row, int rows) {
  const int units = shape_.units(i + 1);
  const bool top = i + 1 == shape_.state_layers();
  auto at = [first_row](auto* array, int width) { return array + std::size_t(first_row) * width; };
  const float* below = at(input_drive_.data(), units);
  if (i > 0) {
    // below (rows, n_{i+1}) = s_i (rows, n_i) W_i (n_i, n_{i+1})
    const int fan_in = shape_.units(i);
    backend_.gemm(Transpose::no, Transpose::no, rows, units, fan_in, 1.0f, at(state.layers[i - 1].data(), fan_in),
                  fan_in, parameters_.weights[i].data(), units, 0.0f, at(below_[i].data(), units), units);
    below = at(below_[i].data(), units);
  }
  const float* above = nullptr;
  if (!top) {
    // above (rows, n_{i+1}) = s_{i+2} (rows, n_{i+2}) W_{i+1}^T (n_{i+2}, n_{i+1})
    const int fan_out = shape_.units(i + 2);
    backend_.gemm(Transpose::no, Transpose::yes, rows, units, fan_out, 1.0f, at(state.layers[i + 1].data(), fan_out),
                  fan_out, parameters_.weights[i + 1].data(), fan_out, 0.0f, at(above_[i].data(), units), units);
    above = at(above_[i].data(), units);
  }
  return IsingLayerFields{below,
                          above,
                          parameters_.biases[i].data(),
                          top && target ? target + std::size_t(first_sample) * shape_.classes() : nullptr,
                          beta / static_cast<float>(shape_.spins_per_class),
                          units,
                          shape_.replicas,
                          shape_.spins_per_class,
                          shape_.classes()};
}

void IsingNetwork::update_layer(NetworkState& state, int i, const float* target, const PhaseSpec& spec,
                                float inverse_temperature_now, int sweep, int first_sample, int first_row, int rows) {
  const int units = shape_.units(i + 1);
  // The draws are keyed per replica row: a row is one replica's spins over all
  // layers, units_total() / R of them, layer i starting at unit_offset(i) / R.
  const std::uint64_t replicas = static_cast<std::uint64_t>(shape_.replicas);
  const NoiseKey key = relaxation_noise_key(
      (spec.first_sample + static_cast<std::uint64_t>(first_sample)) * replicas,
      static_cast<std::uint64_t>(units_total()) / replicas, static_cast<std::uint64_t>(unit_offset(i)) / replicas,
      spec.noise_phase, sweep);
  IsingLayerUpdateOp op{state.layers[i].data() + std::size_t(first_row) * units,
                        layer_fields(state, i, target, spec.beta, first_sample, first_row, rows),
                        inverse_temperature_now,
                        dynamics_.rule,
                        spec.noise_seed,
                        key.first,
                        key.row_stride,
                        key.step,
                        spec.step_first_sample};
  backend_.run(op, std::int64_t(rows) * units);
}

void IsingNetwork::start_dsb(NetworkState& state, const PhaseSpec& spec, int begin, int samples) {
  const bool nudged = spec.beta != 0.0f;
  const int first_row = begin * shape_.replicas, rows = samples * shape_.replicas;
  const std::uint64_t first_replica_row =
      (spec.first_sample + static_cast<std::uint64_t>(begin)) * static_cast<std::uint64_t>(shape_.replicas);
  constexpr float kInitialAmplitude = 0.1f;  // small random start, as Goto et al. 2021
  for (int i = 0; i < shape_.state_layers(); ++i) {
    const int units = shape_.units(i + 1);
    const std::size_t offset = std::size_t(first_row) * units, count = std::size_t(rows) * units;
    if (nudged) {
      // From the free spins at the walls, at rest.
      backend_.copy_on_device(positions_[i].data() + offset, state.layers[i].data() + offset, count * sizeof(float));
      backend_.fill_zero(momenta_[i].data() + offset, count * sizeof(float));
    } else {
      // Keyed on (sample, replica, unit) within the layer; the round names phase and layer.
      backend_.run(SbInitOp{positions_[i].data() + offset, momenta_[i].data() + offset, state.layers[i].data() + offset,
                            spec.noise_seed, first_replica_row * static_cast<std::uint64_t>(units),
                            (spec.noise_phase << 8) + static_cast<std::uint32_t>(i), kInitialAmplitude,
                            spec.step_first_sample,
                            static_cast<std::uint64_t>(shape_.replicas) * static_cast<std::uint64_t>(units)},
                   static_cast<std::int64_t>(count));
    }
  }
}

void IsingNetwork::dsb_step(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                            int samples) {
  const bool nudged = spec.beta != 0.0f;
  const int layers = shape_.state_layers();
  const int first_row = begin * shape_.replicas, rows = samples * shape_.replicas;
  // Synchronous: every field from the spins sign(x) at the start of the step.
  for (int i = 0; i < layers; ++i)
    backend_.run(IsingLocalFieldOp{fields_[i].data() + std::size_t(first_row) * shape_.units(i + 1),
                                   layer_fields(state, i, nudged ? target : nullptr, spec.beta, begin, first_row, rows)},
                 std::int64_t(rows) * shape_.units(i + 1));
  // The pump a(t) ramps 0 -> a0 over the free phase; nudged phases run at its end.
  // Its last free step keeps a detuning of a0 / steps (the solver's ramp, sb_detuning,
  // reaches 0). Shifting the ramp by that one step measured worse, not better: 47.25%
  // against 59.50% (10 000 training images, one epoch, dt 0.5, 30 + 15 steps), so
  // the schedule stays as trained until a dSB study settles it.
  const float detuning = nudged ? 0.0f : spec.a0 * (1.0f - static_cast<float>(step) / spec.steps);
  for (int i = 0; i < layers; ++i) {
    const int units = shape_.units(i + 1);
    const std::size_t offset = std::size_t(first_row) * units;
    backend_.run(SbStepOp{positions_[i].data() + offset, momenta_[i].data() + offset, fields_[i].data() + offset,
                          state.layers[i].data() + offset, detuning, spec.a0, 1.0f, spec.dt, units},
                 std::int64_t(rows) * units);
  }
}

void IsingNetwork::energy(const NetworkState& state, float* energy) {
  const int rows = batch_ * shape_.replicas;
  for (int i = 0; i < shape_.state_layers(); ++i) {
    const int units = shape_.units(i + 1);
    const float* drive = input_drive_.data();
    if (i > 0) {
      const int fan_in = shape_.units(i);
      backend_.gemm(Transpose::no, Transpose::no, rows, units, fan_in, 1.0f, state.layers[i - 1].data(), fan_in,
                    parameters_.weights[i].data(), units, 0.0f, below_[i].data(), units);
      drive = below_[i].data();
    }
    // E's terms of layer i + 1: -sum_u s_u (drive_u + h_u); no self term for spins.
    backend_.reduce_rows(RowEnergyOp{state.layers[i].data(), drive, parameters_.biases[i].data(), row_energy_.data(), units,
                             i > 0, 0.0f},
                 rows);
  }
  backend_.run(ReplicaSumOp{row_energy_.data(), nullptr, energy, 1.0f / shape_.replicas, 0.0f, shape_.replicas, 1},
               batch_);
}

void IsingNetwork::ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                               const float* target, ParameterSet& gradient) {
  (void)target;  // the cost has no parameters
  const int replicas = shape_.replicas, rows = batch_ * replicas;
  const float c = contrastive_scale(beta_a, beta_b, rows);
  for (int l = 0; l < shape_.weight_tensors(); ++l) {
    const int fan_in = shape_.units(l), units = shape_.units(l + 1);
    float* weight_gradient = gradient.weights[l].data();
    if (l == 0) {
      // The input is clamped in both phases (one row per sample): one GEMM on
      // sum_r (s_a - s_b), (batch, n_1).
      float* replica_sum = state_difference();
      backend_.run(ReplicaSumOp{state_a.layers[0].data(), state_b.layers[0].data(), replica_sum, 1.0f, -1.0f,
                                replicas, units},
                   std::int64_t(batch_) * units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, input_, fan_in, replica_sum, units,
                    0.0f, weight_gradient, units);
    } else {
      // -c s_a,l^T s_a,l+1 + c s_b,l^T s_b,l+1 over the batch * R rows
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, rows, -c, state_a.layers[l - 1].data(), fan_in,
                    state_a.layers[l].data(), units, 0.0f, weight_gradient, units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, rows, c, state_b.layers[l - 1].data(), fan_in,
                    state_b.layers[l].data(), units, 1.0f, weight_gradient, units);
    }
    backend_.run(ColumnSumOp{state_a.layers[l].data(), state_b.layers[l].data(), gradient.biases[l].data(), -c, c,
                             rows, units},
                 units);
  }
}

void IsingNetwork::metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  backend_.run(IsingReadoutOp{state.layers.back().data(), target, loss, correct, shape_.classes(),
                              shape_.spins_per_class, shape_.replicas},
               batch_);
}

double IsingNetwork::training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const {
  const double rows = double(batch) * shape_.replicas;
  auto gemm = [&](double m, int l) { return 2.0 * m * shape_.units(l) * shape_.units(l + 1); };  // through W_l
  double per_sweep = 0;
  for (int l = 1; l < shape_.weight_tensors(); ++l) per_sweep += 2 * gemm(rows, l);  // from below and from above
  double flops = gemm(rows, 0);                                                       // the input drive
  flops += per_sweep * (free_steps + nudged_phases * double(nudged_steps));
  flops += gemm(batch, 0);  // the update: one GEMM for the input layer, two for the others
  for (int l = 1; l < shape_.weight_tensors(); ++l) flops += 2 * gemm(rows, l);
  return flops;
}

}  // namespace eqprop
