// The plumbing every layered energy model shares (DESIGN.md §1), so that a model
// writes only its physics. A LayeredModel is a batch of independent systems whose
// state is one (max_batch, units) array per state layer (plus cSB momenta); it owns
// - the batch bookkeeping of set_input (the batch size and the clamped input),
// - the parameters (by default a stack of dense couplings, models/layered_tensors.h,
//   drawn by models/parameter_init.h) and the state layers: make_state,
//   copy_state, the zero reset,
// - the scratch of a relaxation (the snapshot and row residual of the early exit,
//   the first layer's state difference of the contrastive gradient),
// - the relaxation loop (models/relaxation.h) and the fused LayerStepOp of a
//   Hopfield-type layer with the fields every integrator shares: the phase's
//   integrator, cSB momenta, damping, gain and pump, the Langevin noise keyed on
//   (sample, unit) (kernels/noise_key.h) and the fused ADC read-out of the final step,
// - the cross-entropy cost's softmax read-out of the top state layer, where the
//   model has one (models/softmax_readout.h).
// A model derives from it, calls define_layers() in its constructor once its shape
// is validated, and writes its physics: kind, set_input (calling begin_batch),
// step_rows (one synchronous step; relax() loops it), energy, ep_gradient, metrics,
// training_step_flops.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/layer_step.h"
#include "kernels/noise_key.h"
#include "models/energy_model.h"
#include "models/softmax_readout.h"

namespace eqprop {

// What a model's layers are, given to LayeredModel::define_layers.
struct LayerLayout {
  int input_size = 0;  // floats per sample of an input
  int classes = 0;     // classes of a target
  // Widths of the dense coupling stack weights[l] (widths[l], widths[l+1]),
  // biases[l] (widths[l+1]); empty for a model that overrides the parameter methods.
  std::vector<int> parameter_widths;
  std::vector<int> state_units;  // units per sample of each state layer
  bool with_momenta = false;     // second-order (cSB) dynamics keep a momentum per unit
  // Relaxed by LayeredModel::relax (allocates the early exit's snapshot and row residual).
  bool early_exit = true;
  float period = 0.0f;       // > 0: states are phases, changes measured around the circle
  bool whole_batch = false;  // steps are batch-wide (no per-core slices of the batch)
  // c of the activation rho = clip(s, 0, c) of LayerStepOp (kernels/hard_sigmoid.h).
  float activation_max = kHardSigmoidMax;
};

// EnergyModel::training_step_flops of a Hopfield-type network: per step a drive and
// a feedback pass through every coupling between state layers (and, nudged, two
// through the softmax read-out), the cached input drive once, and the contrastive
// update (one pass for the input coupling, update_passes(t) for tensor t >= 1).
// pass(t) is one pass through tensor t on the batch.
double hopfield_training_step_flops(const std::function<double(int t)>& pass,
                                    const std::function<int(int t)>& update_passes, int state_layers,
                                    int weight_tensors, bool softmax_readout, int free_steps, int nudged_steps,
                                    int nudged_phases);

class LayeredModel : public EnergyModel {
 public:
  Backend& backend() override { return backend_; }
  int input_size() const override { return layout_.input_size; }
  int classes() const override { return layout_.classes; }
  int max_batch() const override { return max_batch_; }

  // The dense coupling stack of LayerLayout::parameter_widths: Uniform(+-gain /
  // sqrt(fan_in)) weights and biases from the counter-based RNG (PyTorch
  // nn.Linear's default range times a gain), tensor ids 2l and 2l + 1.
  void initialize(std::uint64_t seed, float gain) override;
  ParameterSet& parameters() override { return parameters_; }
  const ParameterSet& parameters() const override { return parameters_; }
  ParameterSet make_parameter_like() const override;
  std::vector<std::int64_t> tensor_shape(int l, bool bias) const override;

  NetworkState make_state() const override;
  int state_units(int i) const override { return layout_.state_units[i]; }
  void copy_state(const NetworkState& from, NetworkState& to, int batch) override;
  // Sets every state to 0.
  void reset(NetworkState& state) override;
  // Relaxes rows [0, batch) of `state` in place through models/relaxation.h (the
  // early exit, slices of the batch relaxed concurrently unless whole_batch):
  // prepare_phase, then up to spec.steps calls of step_rows. target (batch,
  // classes) is the one-hot label, used when spec.beta != 0.
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override;

 protected:
  // `name` prefixes the model's error messages. Allocates nothing: the model
  // validates its shape, then calls define_layers.
  LayeredModel(Backend& backend, std::string name, int max_batch);

  // Allocates the parameters and the scratch of `layout`.
  void define_layers(LayerLayout layout);
  // Records the batch of set_input; throws std::invalid_argument unless
  // 1 <= batch <= max_batch. x (batch, input_size()) stays the caller's.
  void begin_batch(const float* x, int batch);

  // One synchronous step (`step` of the phase) of rows [begin, begin + rows): every
  // field from the states of the previous step before any layer moves.
  virtual void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                         int rows) = 0;
  // Before the first step of a phase: checks the spec, caches what the steps read.
  virtual void prepare_phase(const NetworkState& state, const PhaseSpec& spec) { (void)state, (void)spec; }

  // The inputs of state layer i's LayerStepOp that the model's physics computes:
  // whole (batch, units) arrays with row 0 first (null where absent); bias (units).
  struct LayerFields {
    const float* drive;
    const float* feedback;
    const float* bias;
    const float* target;
  };
  // Runs the fused LayerStepOp of state layer i on rows [begin, begin + rows) at
  // `step` of the phase `spec`.
  void run_layer_step(NetworkState& state, const PhaseSpec& spec, int step, int i, int begin, int rows,
                      const LayerFields& fields);
  // The Langevin noise key of state layer i, rows from `begin`, at `step` of `spec`.
  NoiseKey noise_key(const PhaseSpec& spec, int step, int i, int begin) const;
  // Sets the Langevin noise fields of a step op (noise_sigma, seed, index, row
  // stride, step) of state layer i, rows from `begin`.
  template <class Op>
  void set_langevin_noise(Op& op, const PhaseSpec& spec, int step, int i, int begin) const {
    const NoiseKey key = noise_key(spec, step, i, begin);
    op.noise_sigma = spec.noise_sigma;
    op.noise_seed = spec.noise_seed;
    op.noise_index = key.first;
    op.noise_row_stride = static_cast<std::int64_t>(key.row_stride);
    op.noise_step = key.step;
    op.noise_first_sample = spec.step_first_sample;
  }
  // Units of the state layers below state layer i, per sample.
  int unit_offset(int i) const;
  int units_total() const { return units_total_; }

  // The scale c = 1 / ((beta_a - beta_b) rows) of the EP estimate of DESIGN.md §1
  // over `rows` systems; throws std::invalid_argument when the betas are equal.
  float contrastive_scale(float beta_a, float beta_b, int rows) const;
  // The difference a - b of two (batch, state_units(0)) first-layer arrays, in
  // scratch owned here (valid until the next call): the clamped input is the
  // same in both phases, so its coupling's gradient is one product on a - b.
  const float* first_layer_difference(const float* a, const float* b);
  // That scratch, for a model whose first-layer difference is computed otherwise.
  float* state_difference() { return state_difference_.data(); }

  // The cross-entropy cost's softmax read-out of the top state layer: its
  // parameters are the pair after the top layer's, outside the energy
  // (Laborieux et al. 2021, §3). Off unless enabled.
  void enable_softmax_readout(int classes);
  bool has_softmax_readout() const { return softmax_.has_value(); }
  // feedback (rows, top units), row `begin` first, = -beta dl/ds_top of rows
  // [begin, begin + rows): the nudge's force on the top layer.
  void softmax_nudge(const NetworkState& state, const float* target, float beta, int begin, int rows, float* feedback);
  // The read-out's part of the EP gradient (c from contrastive_scale).
  void softmax_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                        const float* target, float c, ParameterSet& gradient);
  // Per-sample loss and correctness: the softmax read-out's, or else the MSE cost
  // of the top state layer against the target (batch, classes).
  void top_layer_metrics(const NetworkState& state, const float* target, float* loss, float* correct);

  // Implicit differentiation of a Hopfield-type network (DESIGN.md §1, "Implicit
  // differentiation"): the adjoint mu of the free fixed point by `iterations`
  // Jacobi steps of mu = M (g + K mu) from mu = 0 (kernels/adjoint_step.h), g =
  // dL/ds_top of the batch mean (MSE, or the softmax read-out's). Each step calls
  // `couplings(mu)`, which writes K mu into drive[i] (from the layers below, i >= 1)
  // and feedback[i] (from above, i < top): the model's couplings without biases,
  // linear in mu, at the free state's active set and pooling argmax. adjoint()
  // holds mu afterwards. Returns the relative residual of the last step
  // (||mu_k - mu_{k-1}|| / ||mu_k||, 0 where mu is 0, infinite where mu
  // overflowed), read on the host.
  float solve_adjoint(const NetworkState& free_state, const float* target, int iterations,
                      const std::function<void(const NetworkState& mu)>& couplings,
                      const std::vector<DeviceBuffer<float>>& drive, const std::vector<DeviceBuffer<float>>& feedback);
  const NetworkState& adjoint() const { return adjoint_; }
  // The iteration every adjoint solve shares: mu = 0 (adjoint(), allocated by the
  // first call), then `iterations` calls of step(mu), each one synchronous step of
  // the model's adjoint system in place. Returns the relative residual of the last
  // step as solve_adjoint does; throws std::invalid_argument for iterations < 1.
  float iterate_adjoint(int iterations, const std::function<void(NetworkState& mu)>& step);

  Backend& backend_;
  const std::string name_;
  const int max_batch_;
  int batch_ = 0;
  const float* input_ = nullptr;  // (batch, input_size()), owned by the caller
  ParameterSet parameters_;

 private:
  LayerLayout layout_;
  std::vector<int> unit_offsets_;           // unit_offset(i) of every state layer
  int units_total_ = 0;                     // units per sample over all state layers
  NetworkState snapshot_;                   // states before a convergence-check step
  DeviceBuffer<float> row_residual_;        // (max_batch)
  DeviceBuffer<float> state_difference_;    // (max_batch, state_units(0))
  std::optional<SoftmaxReadout> softmax_;   // the cross-entropy cost's read-out
  // solve_adjoint's mu and its previous iterate, allocated by the first call.
  NetworkState adjoint_, previous_adjoint_;
  DeviceBuffer<float> loss_gradient_;       // (max_batch, top units) = dL/ds_top
};

}  // namespace eqprop
