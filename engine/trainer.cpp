#include "engine/trainer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "engine/distributed.h"
#include "engine/model_factory.h"
#include "kernels/error.h"
#include "kernels/philox.h"

namespace eqprop {
namespace {

int max_batch_of(const Config& config) {
  return std::max(config.training.batch_size, config.training.eval_batch_size);
}

// body(tensor) for the weights and biases of every layer, in that order: the
// layout of the fused buffer the ranks sum.
template <class Body>
void for_each_tensor(ParameterSet& set, const Body& body) {
  for (std::size_t l = 0; l < set.weights.size(); ++l) {
    body(set.weights[l]);
    body(set.biases[l]);
  }
}

}  // namespace

Trainer::Trainer(Backend& backend, const Config& config, int input_size, int classes)
    : backend_(backend),
      config_(config),
      hardware_(backend, config.hardware, config.seed),
      model_(make_model(backend, config, max_batch_of(config))),
      thread_team_(!backend.traits().is_device, config.training.threads) {
  // The backend runs this trainer's GEMMs at the configured precision (the model
  // and the trainer share one backend; the last trainer built on it sets it).
  backend.set_gemm_precision(config.training.gemm_precision);
  backend.set_convolution_path(config.training.conv_path);
  if (input_size < 0) input_size = model_->input_size();
  if (classes < 0) classes = model_->classes();
  input_size_ = input_size;
  classes_ = classes;
  if (model_->input_size() != input_size)
    throw ConfigError("the model takes inputs of " + std::to_string(model_->input_size()) +
                      " values (model.layers[0] or the input shape) but the data's samples have " +
                      std::to_string(input_size) + " values");
  if (model_->classes() != classes)
    throw ConfigError("the model has " + std::to_string(model_->classes()) +
                      " outputs (the last of model.layers) but the data has " + std::to_string(classes) +
                      " classes");
  const std::size_t tensors = model_->parameters().weights.size();
  if (!config.optimizer.single_rate && config.optimizer.learning_rates.size() != tensors)
    throw ConfigError("optimizer.lr has " + std::to_string(config.optimizer.learning_rates.size()) +
                      " entries but the model has " + std::to_string(tensors) + " weight tensors");
  model_->initialize(config.seed, config.model.init_gain);
  if (hardware_.writes_parameters()) {
    master_ = model_->make_parameter_like();
    for (std::size_t l = 0; l < master_.weights.size(); ++l) {
      backend.copy_on_device(master_.weights[l].data(), model_->parameters().weights[l].data(), master_.weights[l].bytes());
      backend.copy_on_device(master_.biases[l].data(), model_->parameters().biases[l].data(), master_.biases[l].bytes());
    }
    program_device(0, false);
  }
  if (hardware_.writes_inputs())
    device_inputs_ = DeviceBuffer<float>(backend, std::size_t(max_batch_of(config)) * input_size);
  free_ = model_->make_state();
  plus_ = model_->make_state();
  minus_ = model_->make_state();
  fused_readout_ = hardware_.reads_in_step() && model_->fuses_readout();
  if (fused_readout_)
    for (NetworkState* state : {&free_, &plus_, &minus_})
      for (const DeviceBuffer<float>& layer : state->layers) state->readouts.emplace_back(backend, layer.size());
  gradient_ = model_->make_parameter_like();
  velocity_ = model_->make_parameter_like();
  const std::size_t max_batch = static_cast<std::size_t>(max_batch_of(config));
  for (int slot = 0; slot < 2; ++slot) {
    inputs_[slot] = DeviceBuffer<float>(backend, max_batch * input_size);
    targets_[slot] = DeviceBuffer<float>(backend, max_batch * classes);
  }
  if (model_->parameters().weights.size() > static_cast<std::size_t>(StepParameters::kMaxLayers))
    throw ConfigError("the model has " + std::to_string(model_->parameters().weights.size()) +
                      " parameter layers; the trainer takes at most " + std::to_string(StepParameters::kMaxLayers));
  step_parameters_ = StepParameterBlock(backend, kMetricsBatches);
  const int ranks = Distributed::world().size();
  if (config.training.cuda_graphs == CudaGraphMode::on && ranks > 1)
    throw ConfigError("training.cuda_graphs = \"on\" but the step cannot be recorded as a CUDA graph with " +
                      std::to_string(ranks) + " MPI ranks (the gradient allreduce runs on the host); use \"auto\"");
  captured_ = std::make_unique<CapturedStep>(backend, records_steps(config, backend, ranks),
                                             config.training.cuda_graphs == CudaGraphMode::on);
  if (captured_->recording()) {
    step_loss_ = DeviceBuffer<float>(backend, max_batch);
    step_correct_ = DeviceBuffer<float>(backend, max_batch);
    step_energy_ = DeviceBuffer<float>(backend, max_batch);
  }
  loss_ = DeviceBuffer<float>(backend, kMetricsBatches * max_batch);
  correct_ = DeviceBuffer<float>(backend, kMetricsBatches * max_batch);
  energy_ = DeviceBuffer<float>(backend, kMetricsBatches * max_batch);
}

void BatchResult::add(const BatchResult& other) {
  loss_sum += other.loss_sum;
  correct_sum += other.correct_sum;
  size += other.size;
  batches += other.batches;
  free_steps += other.free_steps;
  nudge_steps += other.nudge_steps;
  adjoint_residual_max = std::max(adjoint_residual_max, other.adjoint_residual_max);
  free_energies.insert(free_energies.end(), other.free_energies.begin(), other.free_energies.end());
}

PhaseSpec Trainer::phase_spec(bool nudged, float beta, StepKey key, std::uint32_t phase) const {
  const DynamicsConfig& dynamics = config_.dynamics;
  PhaseSpec spec;
  spec.integrator = nudged ? dynamics.nudge_integrator : dynamics.integrator;
  spec.order = dynamics.order;
  spec.dt = dynamics.dt;
  spec.steps = nudged ? dynamics.t_nudge : dynamics.t_free;
  spec.beta = nudged ? beta : 0.0f;
  spec.gamma = dynamics.gamma;
  spec.a0 = dynamics.a0;
  spec.pump = dynamics.pump;
  spec.noise_sigma = dynamics.temperature > 0.0f
                         ? langevin_sigma_at_temperature(spec.integrator, dynamics.temperature, spec.gamma, spec.a0)
                         : dynamics.noise;
  spec.noise_seed = config_.seed;
  // A rank's rows keep the sample positions they have in the global batch, so the
  // noise of a sharded batch is the single process's. A recorded step reads the
  // samples before its batch from the step-parameter block.
  const std::uint64_t before = key.global_batch * static_cast<std::uint64_t>(model_->max_batch());
  spec.first_sample = (key.on_device ? 0u : before) + static_cast<std::uint64_t>(shard_begin_);
  if (key.on_device) spec.step_first_sample = step_parameters_.first_sample();
  spec.noise_phase = phase;
  spec.tolerance = dynamics.tolerance;
  spec.check_every = dynamics.check_every;
  return spec;
}

void Trainer::program_device(std::uint32_t write_count, bool resumed) {
  writes_done_ = write_count;
  if (!hardware_.writes_parameters()) return;
  ParameterSet& device = model_->parameters();
  for (std::size_t l = 0; l < master_.weights.size(); ++l) {
    const int layer = static_cast<int>(l);
    const std::pair<DeviceBuffer<float>*, DeviceBuffer<float>*> tensors[2] = {{&master_.weights[l], &device.weights[l]},
                                                                              {&master_.biases[l], &device.biases[l]}};
    const std::uint32_t ids[2] = {hardware_tensor::weights(layer), hardware_tensor::biases(layer)};
    for (int t = 0; t < 2; ++t) {
      const auto count = static_cast<std::int64_t>(tensors[t].first->size());
      if (resumed && !config_.hardware.keep_full_precision) {
        hardware_.restore_parameter(tensors[t].first->data(), tensors[t].second->data(), count, ids[t]);
      } else {
        hardware_.write_parameter(tensors[t].first->data(), tensors[t].second->data(), count, ids[t], write_count);
      }
    }
  }
}

DrawCount Trainer::draw_count(StepKey key, std::uint32_t plus) const {
  if (key.on_device) return DrawCount(step_parameters_.step_number(), plus);
  return DrawCount(static_cast<std::uint32_t>(key.global_batch + plus));
}

const float* Trainer::device_input(const float* x, int batch, std::uint32_t tensor, StepKey key) {
  if (!hardware_.writes_inputs()) return x;
  hardware_.write_input(x, device_inputs_.data(), std::int64_t(batch) * input_size_, tensor, draw_count(key, 0));
  return device_inputs_.data();
}

PhaseSpec Trainer::reading(PhaseSpec spec, hardware_tensor::ReadPhase phase, StepKey key) const {
  if (!fused_readout_) return spec;
  spec.read_out = true;
  spec.adc = hardware_.adc_spec(nullptr, hardware_tensor::state(phase, 0), draw_count(key, 0));
  return spec;
}

void Trainer::read_out(NetworkState& state, hardware_tensor::ReadPhase phase, int batch, StepKey key) {
  if (!hardware_.reads_states()) return;
  if (fused_readout_) {
    // The relaxation left the readings in state.readouts: they become the state.
    for (std::size_t i = 0; i < state.layers.size(); ++i) std::swap(state.layers[i], state.readouts[i]);
    return;
  }
  for (std::size_t i = 0; i < state.layers.size(); ++i)
    hardware_.read_states(state.layers[i].data(), std::int64_t(batch) * model_->state_units(static_cast<int>(i)),
                          hardware_tensor::state(phase, static_cast<int>(i)), draw_count(key, 0));
}

void Trainer::convert_on_loader(BatchLoader::Options& options, std::uint32_t tensor, std::uint64_t first_key) const {
  if (!hardware_.writes_inputs()) return;
  const HardwareModel* hardware = &hardware_;
  options.convert_inputs = [hardware, tensor, first_key](float* x, std::int64_t count, std::int64_t index) {
    hardware->write_input_on_host(x, count, tensor, static_cast<std::uint32_t>(first_key + index));
  };
}

void Trainer::run_free_phase(const float* x, const float* target, int batch, StepKey key, InputForm form,
                             float* free_energy) {
  model_->set_input(form == InputForm::converted ? x : device_input(x, batch, hardware_tensor::kTrainInput, key),
                    batch);
  model_->reset(free_);
  free_result_ =
      model_->relax(free_, target, reading(phase_spec(false, 0.0f, key, 0), hardware_tensor::ReadPhase::free, key));
  model_->energy(free_, free_energy);  // of the physical state, before any ADC read
}

float Trainer::beta_sign(std::uint64_t global_batch) const {
  if (!config_.ep.random_sign || config_.ep.symmetric) return 1.0f;
  const Philox4 words = random_words(config_.seed, RngStream::beta_sign, global_batch, 0);
  return (words.v[0] & 1u) ? -1.0f : 1.0f;
}

void Trainer::run_phases(const float* x, const float* target, int batch, StepKey key, InputForm form,
                         float* free_energy) {
  // The sign is a host decision: a recorded step has one recording per sign
  // (StepShape::beta_sign).
  const float beta = beta_sign(key.global_batch) * config_.ep.beta;
  run_free_phase(x, target, batch, key, form, free_energy);
  using hardware_tensor::ReadPhase;
  // The nudged phases start from the free state (DESIGN.md §1).
  model_->copy_state(free_, plus_, batch);
  plus_result_ = model_->relax(plus_, target, reading(phase_spec(true, beta, key, 1), ReadPhase::plus, key));
  beta_a_ = beta;
  beta_b_ = 0.0f;
  minus_result_ = PhaseResult{};
  if (config_.ep.symmetric) {
    model_->copy_state(free_, minus_, batch);
    minus_result_ =
        model_->relax(minus_, target, reading(phase_spec(true, -beta, key, 2), ReadPhase::minus, key));
    beta_b_ = -beta;
  }
}

void Trainer::ep_gradient(const float* x, const float* target, int batch, std::uint64_t global_batch,
                          ParameterSet& gradient, InputForm form) {
  read_queued_metrics();  // the free energies go to slot 0 of the metric buffers
  captured_->forget();  // a batch of another size may grow scratch a recording points to
  compute_gradient(x, target, batch, global_batch, form, energy_.data(), gradient);
}

void Trainer::compute_gradient(const float* x, const float* target, int batch, StepKey key, InputForm form,
                               float* free_energy, ParameterSet& gradient) {
  if (config_.training.implicit) {
    // training.algorithm = implicit: no nudged phase; the exact gradient at the
    // free fixed point (as read out) by implicit differentiation.
    run_free_phase(x, target, batch, key, form, free_energy);
    plus_result_ = minus_result_ = PhaseResult{};
    read_out(free_, hardware_tensor::ReadPhase::free, batch, key);
    adjoint_residual_ = model_->implicit_gradient(free_, target, config_.training.adjoint_iterations, gradient);
    return;
  }
  run_phases(x, target, batch, key, form, free_energy);
  gradient_from_phases(target, batch, key, gradient);
}

void Trainer::gradient_from_phases(const float* target, int batch, StepKey key, ParameterSet& gradient) {
  // The contrastive update and the prediction see the states through the ADC.
  // Every phase has relaxed by now, so reading in place changes no dynamics.
  read_out(plus_, hardware_tensor::ReadPhase::plus, batch, key);
  if (config_.ep.symmetric) read_out(minus_, hardware_tensor::ReadPhase::minus, batch, key);
  read_out(free_, hardware_tensor::ReadPhase::free, batch, key);
  model_->ep_gradient(plus_, beta_a_, config_.ep.symmetric ? minus_ : free_, beta_b_, target, gradient);
}

void Trainer::train_step(const float* x, const float* target, int batch, std::uint64_t global_batch,
                         float learning_rate_scale, InputForm form) {
  thread_team_.begin_step();
  const std::int64_t library_convolutions = backend_.library_convolutions_run();
  if (queued_.size() == static_cast<std::size_t>(kMetricsBatches)) read_queued_metrics();
  // The step's own values go to the device block first (the host copy of this
  // metric slot is free again: its last upload ran before the last metrics read).
  const int queue_slot = static_cast<int>(queued_.size());
  StepParameters& values = step_parameters_.host(queue_slot);
  for (std::size_t l = 0; l < optimizer_parameters().weights.size(); ++l)
    values.learning_rates[l] = config_.optimizer.learning_rate(l) * learning_rate_scale;
  values.metric_slot = queue_slot;
  values.step_number = static_cast<std::uint32_t>(global_batch);
  values.first_sample = global_batch * static_cast<std::uint64_t>(model_->max_batch());
  step_parameters_.upload(queue_slot);
  writes_done_ = static_cast<std::uint32_t>(global_batch + 1);
  const StepKey key{global_batch, captured_->recording()};
  captured_->run(StepShape{x, target, batch, beta_sign(global_batch)},
                 [&] { enqueue_step(x, target, batch, key, form, queue_slot); });
  queued_.push_back({batch, free_result_.steps, std::max(plus_result_.steps, minus_result_.steps), shard_begin_,
                     global_rows_, adjoint_residual_});
  ++steps_taken_;
  // oneDNN's convolutions give other bits at another thread count: a team resized by
  // timing would make this run's results depend on the machine's load. Held at the
  // size this step ran at, before the tuner could move it.
  if (backend_.library_convolutions_run() > library_convolutions)
    thread_team_.hold("library convolutions (training.conv_path) give other bits at another thread count");
  thread_team_.end_step();  // the CPU backend's step is done when its calls return
}

void Trainer::enqueue_step(const float* x, const float* target, int batch, StepKey key, InputForm form,
                           int queue_slot) {
  // Recording: the metrics go to fixed arrays and MetricSlotCopyOp moves them to
  // the slot the block names; otherwise straight into the slot, as they always did.
  const bool recording = captured_->recording();
  // With device sums over ranks (never recorded), metric_rows places this rank's
  // rows in the global batch.
  const std::size_t slot =
      metric_rows(static_cast<std::size_t>(queue_slot) * static_cast<std::size_t>(max_batch_of(config_)));
  float* const loss = recording ? step_loss_.data() : loss_.data() + slot;
  float* const correct = recording ? step_correct_.data() : correct_.data() + slot;
  float* const energy = recording ? step_energy_.data() : energy_.data() + slot;
  compute_gradient(x, target, batch, key, form, energy, gradient_);
  if (global_rows_ > 0) sum_gradient_over_ranks(batch);
  model_->metrics(free_, target, loss, correct);
  if (recording)
    backend_.run(MetricSlotCopyOp{{step_loss_.data(), step_correct_.data(), step_energy_.data()},
                                  {loss_.data(), correct_.data(), energy_.data()},
                                  step_parameters_.metric_slot(),
                                  batch,
                                  max_batch_of(config_)},
                 3 * std::int64_t(batch));
  // The update of each tensor and its write into the device (DAC, programming
  // noise, mismatch) share one pass (HardwareModel::update_parameter).
  ParameterSet& parameters = optimizer_parameters();
  ParameterSet& device = model_->parameters();
  const float momentum = config_.optimizer.momentum, decay = config_.optimizer.weight_decay;
  for (std::size_t l = 0; l < parameters.weights.size(); ++l) {
    const int layer = static_cast<int>(l);
    const float* lr = step_parameters_.learning_rate(layer);
    hardware_.update_parameter(
        SgdMomentumOp{parameters.weights[l].data(), velocity_.weights[l].data(), gradient_.weights[l].data(), lr,
                      momentum, decay},
        device.weights[l].data(), static_cast<std::int64_t>(parameters.weights[l].size()),
        hardware_tensor::weights(layer), draw_count(key, 1));
    hardware_.update_parameter(
        SgdMomentumOp{parameters.biases[l].data(), velocity_.biases[l].data(), gradient_.biases[l].data(), lr,
                      momentum, decay},
        device.biases[l].data(), static_cast<std::int64_t>(parameters.biases[l].size()),
        hardware_tensor::biases(layer), draw_count(key, 1));
  }
}

void Trainer::read_queued_metrics() {
  if (queued_.empty()) return;
  const std::size_t stride = static_cast<std::size_t>(max_batch_of(config_));
  const std::size_t count = queued_.size() * stride;
  // Sharded steps with the sums on the device: every rank's rows in their places
  // (metric_rows), summed with zeros into whole batches, in one NCCL group.
  const bool gathered = queued_.front().global_rows > 0 && sums_on_device();
  if (gathered) {
    const auto floats = static_cast<std::int64_t>(count);
    Distributed::world().device_allreduce_sum(
        {{loss_.data(), floats}, {correct_.data(), floats}, {energy_.data(), floats}}, backend_.native_stream());
  }
  std::vector<float> loss(count), correct(count), energy(count);
  backend_.copy_to_host(loss.data(), loss_.data(), count * sizeof(float));
  backend_.copy_to_host(correct.data(), correct_.data(), count * sizeof(float));
  backend_.copy_to_host(energy.data(), energy_.data(), count * sizeof(float));
  std::vector<BatchResult> results(queued_.size());
  for (std::size_t q = 0; q < queued_.size(); ++q) {
    BatchResult& result = results[q];
    result.size = gathered ? queued_[q].global_rows : queued_[q].size;
    result.batches = 1;
    result.free_steps = queued_[q].free_steps;
    result.nudge_steps = queued_[q].nudge_steps;
    result.adjoint_residual_max = queued_[q].adjoint_residual;
    const std::size_t first = q * stride;
    result.free_energies.assign(energy.begin() + first, energy.begin() + first + result.size);
    // Each batch's sums are its own, in sample order, as when every step read its
    // metrics at once: the epoch totals add them batch by batch.
    for (int i = 0; i < result.size; ++i) {
      result.loss_sum += loss[first + i];
      result.correct_sum += correct[first + i];
    }
  }
  if (!gathered) sum_metrics_over_ranks(results);
  for (BatchResult& result : results) unread_.push_back(std::move(result));
  queued_.clear();
}

void Trainer::sum_metrics_over_ranks(std::vector<BatchResult>& results) const {
  // Sharded steps (all of a flush or none: train_epoch reads at its end). Per batch:
  // loss, correct and size sums, then every system's free energy in its place in
  // the global batch (the other ranks' rows are zero, so the sum is a gather and
  // exact in double). One MPI_Allreduce for the whole flush; each batch's sums are
  // reduced on their own as before, so the totals stay bit for bit the same.
  if (queued_.empty() || queued_.front().global_rows == 0) return;
  std::vector<double> fused;
  for (std::size_t q = 0; q < results.size(); ++q) {
    const BatchResult& result = results[q];
    fused.insert(fused.end(), {result.loss_sum, result.correct_sum, static_cast<double>(result.size)});
    std::vector<double> energies(static_cast<std::size_t>(queued_[q].global_rows), 0.0);
    std::copy(result.free_energies.begin(), result.free_energies.end(), energies.begin() + queued_[q].shard_begin);
    fused.insert(fused.end(), energies.begin(), energies.end());
  }
  Distributed::world().allreduce_sum(fused.data(), static_cast<std::int64_t>(fused.size()));
  std::size_t offset = 0;
  for (std::size_t q = 0; q < results.size(); ++q) {
    BatchResult& result = results[q];
    result.loss_sum = fused[offset];
    result.correct_sum = fused[offset + 1];
    result.size = static_cast<int>(fused[offset + 2]);
    offset += 3;
    const std::size_t rows = static_cast<std::size_t>(queued_[q].global_rows);
    result.free_energies.assign(rows, 0.0f);
    for (std::size_t i = 0; i < rows; ++i) result.free_energies[i] = static_cast<float>(fused[offset + i]);
    offset += rows;
  }
}

BatchResult Trainer::flush_metrics() {
  read_queued_metrics();
  BatchResult total;
  for (const BatchResult& result : unread_) total.add(result);
  unread_.clear();
  return total;
}

bool Trainer::sums_on_device() const {
  return Distributed::world().reduction_path(backend_) == ReductionPath::device_nccl;
}

std::size_t Trainer::metric_rows(std::size_t slot) {
  if (global_rows_ == 0 || !sums_on_device()) return slot;
  for (DeviceBuffer<float>* metric : {&loss_, &correct_, &energy_})
    backend_.fill_zero(metric->data() + slot, std::size_t(global_rows_) * sizeof(float));
  return slot + static_cast<std::size_t>(shard_begin_);
}

void Trainer::sum_gradient_over_ranks(int rows) {
  // The model's ep_gradient is the mean over this rank's rows; weighted by
  // rows / global rows, the ranks' sum is the global batch's mean. One fused
  // buffer, one all-reduce (the sum order differs from one process's: equal to it
  // within float rounding, not bit for bit): on the device through NCCL, ordered
  // on the compute stream before the optimizer's pass; else through the host.
  const float weight = static_cast<float>(rows) / static_cast<float>(global_rows_);
  std::size_t total = 0;
  for_each_tensor(gradient_, [&](DeviceBuffer<float>& tensor) { total += tensor.size(); });
  if (sums_on_device()) {
    if (fused_gradient_.size() != total) fused_gradient_ = DeviceBuffer<float>(backend_, total);
    std::size_t offset = 0;
    for_each_tensor(gradient_, [&](DeviceBuffer<float>& tensor) {
      // weight * g + 0 * g: the host path's weight * g
      backend_.run(AxpbyOp{tensor.data(), tensor.data(), fused_gradient_.data() + offset, weight, 0.0f},
                   static_cast<std::int64_t>(tensor.size()));
      offset += tensor.size();
    });
    Distributed::world().device_allreduce_sum({{fused_gradient_.data(), static_cast<std::int64_t>(total)}},
                                              backend_.native_stream());
    offset = 0;
    for_each_tensor(gradient_, [&](DeviceBuffer<float>& tensor) {
      backend_.copy_on_device(tensor.data(), fused_gradient_.data() + offset, tensor.bytes());
      offset += tensor.size();
    });
    return;
  }
  std::vector<float> fused;
  fused.reserve(total);
  for_each_tensor(gradient_, [&](DeviceBuffer<float>& tensor) {
    const std::vector<float> host = tensor.to_host();
    fused.insert(fused.end(), host.begin(), host.end());
  });
  for (float& g : fused) g *= weight;
  Distributed::world().allreduce_sum(fused.data(), static_cast<std::int64_t>(fused.size()));
  std::size_t offset = 0;
  for_each_tensor(gradient_, [&](DeviceBuffer<float>& tensor) {
    tensor.copy_from_host(fused.data() + offset, tensor.size());
    offset += tensor.size();
  });
}

BatchStaging& Trainer::staging() {
  if (!staging_)
    staging_ = std::make_unique<BatchStaging>(backend_, std::max(1, config_.training.prefetch_batches),
                                              max_batch_of(config_), input_size_, classes_);
  return *staging_;
}

void Trainer::upload(const HostBatch& batch, int slot) {
  backend_.upload(slot, inputs_[slot].data(), batch.inputs, std::size_t(batch.size) * input_size_ * sizeof(float));
  backend_.upload(slot, targets_[slot].data(), batch.targets, std::size_t(batch.size) * classes_ * sizeof(float));
}

float Trainer::learning_rate_scale(int epoch) const {
  if (!config_.optimizer.cosine_schedule) return 1.0f;
  const double progress = static_cast<double>(epoch) / config_.training.epochs;
  return static_cast<float>(0.5 * (1.0 + std::cos(3.14159265358979323846 * progress)));
}

BatchResult Trainer::train_epoch(const Dataset& data, const Normalization& normalization, int epoch,
                                 const BatchProgress& progress, std::int64_t first_batch,
                                 const std::function<bool()>& stop_requested, BatchResult totals) {
  BatchLoader::Options options;
  options.batch_size = config_.training.batch_size;
  options.shuffle = true;
  options.drop_last = true;
  options.seed = config_.seed;
  options.epoch = static_cast<std::uint32_t>(epoch);
  options.depth = config_.training.prefetch_batches;
  options.limit = config_.data.train_limit;
  options.augmentation = config_.data.augmentation;  // training passes only, never evaluation
  options.first_batch = first_batch;
  require_fits_model(data, "the training split", input_size_, classes_);
  const std::int64_t batches = BatchLoader::batch_count_of(data, options);
  if (batches == 0)
    throw ConfigError("training.batch_size = " + std::to_string(options.batch_size) +
                      " is larger than the training set");
  const std::uint64_t first_global_batch = static_cast<std::uint64_t>(epoch) * batches;
  convert_on_loader(options, hardware_tensor::kTrainInput, first_global_batch);
  BatchLoader loader(staging(), data, normalization, classes_, options);
  const float scale = learning_rate_scale(epoch);

  flush_metrics();  // the epoch's result covers its own batches only
  BatchResult total = std::move(totals);
  // Batch k+1 is uploaded (copy stream) into the other slot before batch k
  // computes, so transfers overlap compute: the upload waits only for batch k-1's
  // reads of that slot, and batch k's compute only for its own slot's upload
  // (Backend::upload). The host slot returns to the loader once its copy is done.
  // With several ranks every one loads the same seeded batches and relaxes its
  // contiguous rows [r B / N, (r + 1) B / N) of each (drop_last: every batch is B).
  const Distributed& world = Distributed::world();
  world.require_rows_for_every_rank(options.batch_size);
  const auto shard_of = [&](const HostBatch& batch) {
    if (world.size() == 1) return batch;
    const RankShare rows = world.share_of(batch.size);
    HostBatch shard = batch;
    shard.inputs += std::size_t(rows.begin) * input_size_;
    shard.targets += std::size_t(rows.begin) * classes_;
    shard.size = static_cast<int>(rows.size());
    return shard;
  };
  const HostBatch* current = loader.next();
  if (!current) return total;  // resumed after the epoch's last batch
  upload(shard_of(*current), 0);
  for (std::int64_t k = first_batch; current; ++k) {
    const int slot = static_cast<int>((k - first_batch) % 2);
    const HostBatch* following = loader.next();
    if (following) upload(shard_of(*following), 1 - slot);
    backend_.begin_slot_reads(slot);
    const HostBatch shard = shard_of(*current);
    if (world.size() > 1) {
      shard_begin_ = static_cast<int>((shard.inputs - current->inputs) / input_size_);
      global_rows_ = current->size;
    }
    train_step(inputs_[slot].data(), targets_[slot].data(), shard.size, first_global_batch + k, scale,
               InputForm::converted);
    shard_begin_ = global_rows_ = 0;
    backend_.end_slot_reads(slot);
    backend_.wait_uploads();
    loader.release(current);
    // The metrics are read every kMetricsBatches batches, at the epoch's end and
    // before a stop: the divergence check and the progress see them there, batch
    // by batch, so a divergence is reported up to kMetricsBatches - 1 batches late
    // (still naming the first non-finite batch).
    if ((k + 1 - first_batch) % kMetricsBatches == 0 || !following)
      report_unread(epoch, k + 1, loader.batch_count(), total, progress);
    if (following && stop_requested && stop_requested()) {
      report_unread(epoch, k + 1, loader.batch_count(), total, progress);
      break;
    }
    current = following;
  }
  return total;
}

void Trainer::report_unread(int epoch, std::int64_t batches_done, std::int64_t batches_in_epoch, BatchResult& total,
                            const BatchProgress& progress) {
  read_queued_metrics();
  const std::int64_t first_unread = batches_done - static_cast<std::int64_t>(unread_.size());
  for (std::size_t u = 0; u < unread_.size(); ++u) {
    const BatchResult& result = unread_[u];
    const std::int64_t batch = first_unread + static_cast<std::int64_t>(u) + 1;
    if (!std::isfinite(result.loss_sum)) {
      // The exact gradient fails differently from EP: its adjoint grows without bound
      // where the free phase has not settled at a stable minimum.
      const std::string remedy =
          config_.training.implicit
              ? "training.algorithm = implicit: the adjoint converges only where the free phase has settled at a "
                "stable fixed point (adjoint residual of the batch " +
                    std::to_string(result.adjoint_residual_max) +
                    "); raise dynamics.t_free, lower optimizer.lr, or train with ep"
              : "lower optimizer.lr or ep.beta";
      throw DivergenceError("training diverged at epoch " + std::to_string(epoch + 1) + ", batch " +
                            std::to_string(batch) + ": the loss is " + std::to_string(result.loss_sum) +
                            " (NaN or Inf in the states or the weights); " + remedy);
    }
    total.add(result);
    if (progress) progress(batch, batches_in_epoch, total);
  }
  unread_.clear();
}

EvalResult Trainer::evaluate(const Dataset& data, const Normalization& normalization, std::int64_t limit,
                             const BatchProgress& progress, const std::function<bool()>& stop_requested) {
  BatchLoader::Options options;
  options.batch_size = config_.training.eval_batch_size;
  options.shuffle = false;
  options.drop_last = false;
  options.depth = config_.training.prefetch_batches;
  options.limit = limit;
  require_fits_model(data, "the evaluated split", input_size_, classes_);
  convert_on_loader(options, hardware_tensor::kEvalInput, 0);
  BatchLoader loader(staging(), data, normalization, classes_, options);
  read_queued_metrics();  // evaluation reuses slot 0 of the metric buffers
  // Evaluation runs larger batches, which may grow the backend's scratch (a
  // convolution library's workspace) that a recorded step points to: record again.
  captured_->forget();
  double loss_sum = 0, correct_sum = 0, energy_sum = 0, steps_sum = 0;
  std::int64_t samples = 0, batches = 0;
  std::vector<float> loss(options.batch_size), correct(options.batch_size), energy(options.batch_size);
  // Sharded by batch: rank r evaluates batches r, r + N, ...; the sums are reduced.
  const Distributed& world = Distributed::world();
  while (const HostBatch* batch = loader.next()) {
    // Asked at every batch, the other ranks' too, so that every rank asks as often.
    if (stop_requested && stop_requested()) {
      loader.release(batch);
      EvalResult stopped;
      stopped.stopped = true;
      return stopped;
    }
    if (batch->index % world.size() != world.rank()) {
      loader.release(batch);
      continue;
    }
    upload(*batch, 0);
    backend_.begin_slot_reads(0);
    backend_.wait_uploads();
    loader.release(batch);
    model_->set_input(inputs_[0].data(),  // input DAC applied on the loader thread
                     batch->size);
    model_->reset(free_);
    // Evaluation is noiseless unless the dynamics themselves are noisy: same spec as
    // training's free phase, keyed on its own sample positions.
    const PhaseResult phase =
        model_->relax(free_, targets_[0].data(),
                      reading(phase_spec(false, 0.0f, (1ull << 40) + std::uint64_t(batch->index) * options.batch_size, 0), hardware_tensor::ReadPhase::eval,
                              batch->index));
    model_->energy(free_, energy_.data());
    read_out(free_, hardware_tensor::ReadPhase::eval, batch->size, batch->index);
    model_->metrics(free_, targets_[0].data(), loss_.data(), correct_.data());
    backend_.copy_to_host(loss.data(), loss_.data(), batch->size * sizeof(float));
    backend_.copy_to_host(correct.data(), correct_.data(), batch->size * sizeof(float));
    backend_.copy_to_host(energy.data(), energy_.data(), batch->size * sizeof(float));
    backend_.end_slot_reads(0);
    for (int i = 0; i < batch->size; ++i) {
      loss_sum += loss[i];
      correct_sum += correct[i];
      energy_sum += energy[i];
    }
    samples += batch->size;
    steps_sum += phase.steps;
    ++batches;
    if (progress) {
      BatchResult so_far;
      so_far.loss_sum = loss_sum;
      so_far.correct_sum = correct_sum;
      so_far.size = static_cast<int>(samples);
      so_far.batches = batches;
      progress(batches, loader.batch_count(), so_far);
    }
  }
  if (world.size() > 1) {
    double sums[6] = {loss_sum, correct_sum, energy_sum, steps_sum, double(samples), double(batches)};
    Distributed::world().allreduce_sum(sums, 6);
    loss_sum = sums[0], correct_sum = sums[1], energy_sum = sums[2], steps_sum = sums[3];
    samples = static_cast<std::int64_t>(sums[4]);
    batches = static_cast<std::int64_t>(sums[5]);
  }
  EvalResult result;
  result.samples = samples;
  if (samples > 0) {
    result.loss = loss_sum / samples;
    result.accuracy = correct_sum / samples;
    result.free_energy_mean = energy_sum / samples;
    result.free_steps_mean = steps_sum / batches;
  }
  return result;
}

std::int64_t Trainer::count_nonfinite_parameters() {
  std::int64_t bad = 0;
  ParameterSet& parameters = optimizer_parameters();
  for (std::size_t l = 0; l < parameters.weights.size(); ++l) {
    bad += backend_.count_nonfinite(parameters.weights[l].data(), parameters.weights[l].size());
    bad += backend_.count_nonfinite(parameters.biases[l].data(), parameters.biases[l].size());
  }
  return bad;
}

}  // namespace eqprop
