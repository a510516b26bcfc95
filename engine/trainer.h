// The EP trainer: one minibatch is a free phase, one or two nudged phases started
// from the free state, the contrastive gradient and an SGD-momentum step, all on
// the backend (DESIGN.md §1). Evaluation runs the free phase only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/batch_loader.h"
#include "engine/captured_step.h"
#include "engine/config.h"
#include "engine/dataset.h"
#include "engine/hardware_model.h"
#include "engine/thread_team.h"
#include "kernels/step_parameters.h"
#include "models/energy_model.h"

namespace eqprop {

struct BatchResult {
  double loss_sum = 0;     // summed over the batch's samples
  double correct_sum = 0;  // samples predicted right
  int size = 0;
  // Relaxation diagnostics (DESIGN.md §1): steps taken, summed over batches, and
  // the energy E of every system at the end of its free phase.
  std::int64_t batches = 0;
  std::int64_t free_steps = 0;
  std::int64_t nudge_steps = 0;  // the longer nudged phase of each batch
  std::vector<float> free_energies;
  // training.algorithm = implicit: the largest relative residual of the adjoint
  // solve's last Jacobi step over the batches (0 for EP); near 1 or above, the
  // adjoint did not converge and the gradient is not the exact one.
  double adjoint_residual_max = 0;

  void add(const BatchResult& other);
};

struct EvalResult {
  double loss = 0;      // mean per sample
  double accuracy = 0;  // fraction in [0, 1]
  std::int64_t samples = 0;
  double free_energy_mean = 0;  // E at the end of the free phase, mean per sample
  double free_steps_mean = 0;   // steps the free phase took, mean per batch
  bool stopped = false;         // evaluate's stop_requested said so: no result
};

// Whether a batch's inputs still need the hardware model's input DAC (raw) or went
// through it already on the loader thread (converted; the trainer's own passes).
enum class InputForm { raw, converted };

// Called after each training batch: batches done, batches in the epoch, running totals.
using BatchProgress = std::function<void(std::int64_t done, std::int64_t total, const BatchResult& so_far)>;

// What keys a training step's random draws (Langevin noise, the hardware model's
// noise and rounding): its global batch index, taken by the kernels as a launch
// argument, or, in a recorded step (engine/captured_step.h), read by them from the
// step-parameter block when they run, so that a replay draws afresh.
struct StepKey {
  std::uint64_t global_batch = 0;
  bool on_device = false;
  StepKey(std::uint64_t batch_index) : global_batch(batch_index) {}  // implicit: a launch argument
  StepKey(std::uint64_t batch_index, bool read_on_device) : global_batch(batch_index), on_device(read_on_device) {}
};

class Trainer {
 public:
  // input_size and classes are the data's, checked against the model's; -1 takes
  // the model's own (benchmarks, synthetic data). Sets the backend's GEMM precision
  // to training.gemm_precision.
  Trainer(Backend& backend, const Config& config, int input_size = -1, int classes = -1);

  EnergyModel& model() { return *model_; }
  const Config& config() const { return config_; }
  ParameterSet& momentum() { return velocity_; }
  // The parameters the optimizer updates: the model's own, or, when the hardware
  // model writes them through a DAC with a full-precision copy kept, that copy.
  ParameterSet& optimizer_parameters() { return hardware_.writes_parameters() ? master_ : model_->parameters(); }
  // Writes the optimizer's parameters into the model through the hardware model
  // (DAC, programming noise, mismatch): `write_count` keys the noise; `resumed`
  // restores device values loaded from a checkpoint without writing them again.
  // A no-op without a hardware model.
  void program_device(std::uint32_t write_count, bool resumed);
  // Writes done so far (0 after initialization): what a checkpoint records.
  std::uint32_t writes_done() const { return writes_done_; }

  // One EP update on a batch already on the device: x (batch, input), target
  // (batch, classes). `global_batch` keys the random sign of beta. The batch's
  // free-phase loss, accuracy and energies (before the update) stay on the device,
  // so a step never waits for the device (a GPU step is launch-bound,
  // perf/gpu_step_model.md); flush_metrics() reads them. After kMetricsBatches
  // unread steps a step reads the queue into host memory first.
  void train_step(const float* x, const float* target, int batch, std::uint64_t global_batch,
                  float learning_rate_scale, InputForm form = InputForm::raw);
  // The metrics of every step since the last flush, summed batch by batch in step
  // order (one read of the device per quantity; with sharded steps, one allreduce).
  BatchResult flush_metrics();
  // Steps whose metrics the device holds at most before they are read; also how
  // often train_epoch reads them (and checks for divergence, calls its progress).
  static constexpr int kMetricsBatches = 16;
  // Training steps taken since construction (counted when launched, not when read).
  std::int64_t steps_taken() const { return steps_taken_; }
  // The CPU team size of the steps (training.threads): tuned between steps unless
  // pinned; inactive on a GPU.
  ThreadTeam& thread_team() { return thread_team_; }
  const ThreadTeam& thread_team() const { return thread_team_; }
  // The recording of train_step as a CUDA graph (training.cuda_graphs).
  const CapturedStep& captured_step() const { return *captured_; }
  // Computes the gradient of a batch without updating (for gradcheck and tests):
  // EP's, or the implicit one under training.algorithm = implicit.
  void ep_gradient(const float* x, const float* target, int batch, std::uint64_t global_batch,
                   ParameterSet& gradient, InputForm form = InputForm::raw);

  // The spec of a phase of the current config: free (beta = 0) or nudged.
  PhaseSpec phase_spec(bool nudged, float beta, StepKey key, std::uint32_t phase) const;
  // The sign of beta of step `global_batch`'s nudged phase: -1 where ep.random_sign
  // draws it negative (one-sided nudging), else +1.
  float beta_sign(std::uint64_t global_batch) const;

  // One pass over `data` in seeded shuffled order; throws DivergenceError on a
  // non-finite loss.
  // Starts at batch `first_batch` (a run resumed mid-epoch). `stop_requested`, when
  // set, is asked after each batch that is not the epoch's last (with MPI it must
  // return the same answer on every rank); true ends the pass there. `totals` are
  // the running totals of the batches before first_batch, which the result continues.
  BatchResult train_epoch(const Dataset& data, const Normalization& normalization, int epoch,
                          const BatchProgress& progress, std::int64_t first_batch = 0,
                          const std::function<bool()>& stop_requested = {}, BatchResult totals = {});
  // `progress` (optional) is called after each batch with the running totals.
  // `stop_requested` (optional) is asked before each batch, on every rank alike;
  // true ends the pass there with a result that says `stopped` and nothing else.
  EvalResult evaluate(const Dataset& data, const Normalization& normalization, std::int64_t limit,
                      const BatchProgress& progress = {}, const std::function<bool()>& stop_requested = {});

  // The learning-rate multiplier of an epoch (constant or cosine schedule).
  float learning_rate_scale(int epoch) const;
  // Number of NaN/Inf values in the parameters.
  std::int64_t count_nonfinite_parameters();

 private:
  // Data parallelism (engine/distributed.h): the sum over the ranks of each rank's
  // gradient, weighted by its share of the global batch, so that the result is the
  // mean over the global batch a single process would compute. On CUDA with NCCL
  // the sums stay on the device (engine/distributed.h: ReductionPath).
  void sum_gradient_over_ranks(int rows);
  bool sums_on_device() const;
  // Where a step writes its per-sample metrics in the metric buffers: at `slot`,
  // or, when sharded with the sums on the device, at its rows' places in the
  // global batch, the slot's other rows zeroed, so that one all-reduce per flush
  // gathers every batch whole.
  std::size_t metric_rows(std::size_t slot);
  // set_input, then the free phase from the reset state into free_ and its
  // energies into free_energy.
  void run_free_phase(const float* x, const float* target, int batch, StepKey key, InputForm form,
                      float* free_energy);
  // The free phase (its energies into free_energy) and the nudged phases.
  void run_phases(const float* x, const float* target, int batch, StepKey key, InputForm form,
                  float* free_energy);
  // The batch's gradient into `gradient` (EP's from the phases, or the implicit
  // one) and its free energies into free_energy.
  void compute_gradient(const float* x, const float* target, int batch, StepKey key, InputForm form,
                        float* free_energy, ParameterSet& gradient);
  // The contrastive gradient of the phases run_phases left, seen through the ADC.
  void gradient_from_phases(const float* target, int batch, StepKey key, ParameterSet& gradient);
  // The device work of train_step after its step parameters are uploaded: the
  // phases, the gradient, the metrics into queue slot `queue_slot` and the update.
  // What train_step records (engine/captured_step.h): every per-step value it
  // passes to a kernel comes from step_parameters_ when recording.
  void enqueue_step(const float* x, const float* target, int batch, StepKey key, InputForm form,
                    int queue_slot);
  // Moves the metrics of the steps queued on the device into unread_, one
  // BatchResult per step (three copies to the host, one wait).
  void read_queued_metrics();
  // The queued steps' per-batch sums over the ranks when they were sharded.
  void sum_metrics_over_ranks(std::vector<BatchResult>& results) const;
  // train_epoch's read: every unread batch checked for divergence, added to `total`
  // and reported to `progress` in order; the last one is batch `batches_done`.
  void report_unread(int epoch, std::int64_t batches_done, std::int64_t batches_in_epoch, BatchResult& total,
                     const BatchProgress& progress);
  // Loader options that convert the inputs on the loader thread (input DAC), keyed
  // like device_input with key = first_key + batch index.
  void convert_on_loader(BatchLoader::Options& options, std::uint32_t tensor, std::uint64_t first_key) const;
  // The model's input for x: x itself, or its input-DAC conversion.
  const float* device_input(const float* x, int batch, std::uint32_t tensor, StepKey key);
  // The count of a hardware draw of step `key`, plus `plus`: a launch argument, or
  // the step-parameter block's step number (kernels/draw_count.h).
  DrawCount draw_count(StepKey key, std::uint32_t plus) const;
  // `spec` with the fused ADC read-out of `phase` switched on, where the trainer uses it.
  PhaseSpec reading(PhaseSpec spec, hardware_tensor::ReadPhase phase, StepKey key) const;
  // Every state layer of `state` through the ADC, once its phases no longer need the
  // analog values: the fused readings swapped in, or an ADC pass in place.
  void read_out(NetworkState& state, hardware_tensor::ReadPhase phase, int batch, StepKey key);
  // Uploads a host batch into device slot `slot` (copy stream, overlaps compute).
  void upload(const HostBatch& batch, int slot);

  Backend& backend_;
  Config config_;
  // This rank's rows of the current training batch: [shard_begin_, shard_begin_ +
  // rows) of global_rows_ (0: not sharded, a single process).
  int shard_begin_ = 0, global_rows_ = 0;
  int input_size_ = 0;
  int classes_ = 0;
  HardwareModel hardware_;
  std::unique_ptr<EnergyModel> model_;
  ParameterSet master_;  // full-precision parameters when the hardware model writes the model's
  std::uint32_t writes_done_ = 0;
  bool fused_readout_ = false;  // the model applies the (fixed-range) ADC inside its final step
  DeviceBuffer<float> device_inputs_;  // (max batch, input) the input DAC's output
  NetworkState free_, plus_, minus_;
  ParameterSet gradient_, velocity_;
  DeviceBuffer<float> fused_gradient_;  // every gradient tensor, for one NCCL all-reduce
  float beta_a_ = 0, beta_b_ = 0;  // betas of the two states the gradient contrasts
  PhaseResult free_result_, plus_result_, minus_result_;
  float adjoint_residual_ = 0;  // of the last implicit gradient
  DeviceBuffer<float> inputs_[2], targets_[2];
  // Per-sample loss, correctness and free energy: kMetricsBatches slots of the
  // largest batch, slot q for the q-th queued step (evaluation uses slot 0).
  DeviceBuffer<float> loss_, correct_, energy_;
  struct QueuedStep {
    int size = 0;
    std::int64_t free_steps = 0, nudge_steps = 0;
    int shard_begin = 0, global_rows = 0;  // the step's shard (global_rows 0: not sharded)
    double adjoint_residual = 0;           // of the implicit gradient (0 for EP)
  };
  // The per-step values kernels read (learning rates, metric slot), one host copy
  // per metric slot (kernels/step_parameters.h: reused after a read of the metrics).
  StepParameterBlock step_parameters_;
  std::unique_ptr<CapturedStep> captured_;
  // (max batch) each: a recorded step's loss, correctness and free energy, moved
  // into their queue slot by MetricSlotCopyOp. Allocated only when recording.
  DeviceBuffer<float> step_loss_, step_correct_, step_energy_;
  std::vector<QueuedStep> queued_;   // steps whose metrics are still on the device
  std::vector<BatchResult> unread_;  // steps read from the device, not yet flushed
  std::int64_t steps_taken_ = 0;
  ThreadTeam thread_team_;
  // The loaders' pinned host buffers, allocated at the first pass and kept for the
  // run (engine/batch_loader.h: BatchStaging).
  std::unique_ptr<BatchStaging> staging_;
  BatchStaging& staging();
};

}  // namespace eqprop
