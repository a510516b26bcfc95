// What the EP trainer needs from a physical system (DESIGN.md §1): a batch of
// independent systems with a state, dynamics that relax it on an energy (free, or
// nudged towards a target), the energy itself, a contrastive parameter gradient and
// a read-out. The dense and convolutional Hopfield networks, the phase-oscillator
// network and the Ising machine implement it; engine/ sees only this interface.
//
// Conventions every model follows:
// - Parameters are a list of tensors in pairs: weights[l] and biases[l] (a model
//   with fewer bias tensors keeps them empty-sized). The optimizer, the hardware
//   model's DAC and the checkpoints treat every tensor alike; tensor_shape() gives
//   the shapes a checkpoint records.
// - A state is one (batch, units) array per state layer, plus one momentum array
//   per layer for second-order dynamics; the hardware model's ADC reads every state
//   layer the same way.
// - Inputs are (batch, input_size()) floats, targets (batch, classes()) one-hot.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/adc_read.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/layer_step.h"
#include "models/update_order.h"

namespace eqprop {

// How one phase relaxes. Models read the fields that apply to their dynamics.
struct PhaseSpec {
  Integrator integrator = Integrator::fixed_point;
  float dt = 0.5f;
  int steps = 30;     // the cap; fewer when the phase converges first
  float beta = 0.0f;  // 0: free phase
  // cSB: damping, position gain, and whether the bifurcation pump a0 - a(t) acts:
  // in a free phase (beta = 0) it ramps to 0 on the last step, a nudged phase has none.
  float gamma = 0.5f;
  float a0 = 1.0f;
  bool pump = false;
  // cSB momenta start at zero unless kept (to continue a trajectory across calls).
  bool keep_momenta = false;
  // Langevin noise of standard deviation noise_sigma per unit and step, keyed on
  // (noise_seed, sample, unit, noise_phase, step): sample = first_sample + row.
  float noise_sigma = 0.0f;
  std::uint64_t noise_seed = 0;
  std::uint64_t first_sample = 0;
  std::uint32_t noise_phase = 0;
  // A recorded training step's samples before its batch, in device memory (the
  // step-parameter block), read when the kernels run and added to first_sample;
  // null: first_sample holds them. Only models whose kind is capturable_step read it.
  const std::uint64_t* step_first_sample = nullptr;
  // Early exit: every check_every steps, a system's residual is its largest unit
  // change in that step (divided by dt for gradient flow and cSB); the phase ends
  // when every system is below tolerance. 0 runs to the cap.
  float tolerance = 0.0f;
  int check_every = 5;
  // The ADC read-out of the phase's final state, fused into the relaxation's own
  // passes (models whose fuses_readout() is true): the reading of state layer i
  // goes to state.readouts[i], keyed on tensor adc.tensor + i. Off when read_out
  // is false.
  bool read_out = false;
  AdcSpec adc{};
  // Which layers one step moves, and in what order (models/update_order.h); models
  // that cannot order their updates refuse asynchronous. Last, so that positional
  // initializers of the fields above keep their meaning.
  UpdateOrder order = UpdateOrder::synchronous;
};

// What a relaxation did.
struct PhaseResult {
  int steps = 0;  // steps taken (the most of any slice of the batch)
};

// The states of a batch of systems: one (batch, units) array per state layer, and
// the momenta of second-order dynamics (zero for the other integrators).
struct NetworkState {
  std::vector<DeviceBuffer<float>> layers;
  std::vector<DeviceBuffer<float>> momenta;
  // Digital readings of the layers (PhaseSpec::read_out), shaped like them; empty
  // unless the trainer reads states out through a fused ADC.
  std::vector<DeviceBuffer<float>> readouts;
};

// Parameter-shaped arrays: the model's parameters, gradients, optimizer momenta.
struct ParameterSet {
  std::vector<DeviceBuffer<float>> weights;
  std::vector<DeviceBuffer<float>> biases;
};

class EnergyModel {
 public:
  virtual ~EnergyModel() = default;

  // The checkpoint format tag, e.g. "dense_hopfield".
  virtual std::string kind() const = 0;
  virtual Backend& backend() = 0;
  virtual int input_size() const = 0;
  virtual int classes() const = 0;
  virtual int max_batch() const = 0;

  // Seeded initialization of the parameters from the counter-based RNG (the ids
  // engine/hardware_model.h lists), `gain` scaling the model's default range.
  virtual void initialize(std::uint64_t seed, float gain) = 0;
  virtual ParameterSet& parameters() = 0;
  virtual const ParameterSet& parameters() const = 0;
  // A zeroed set of arrays shaped like the parameters (gradients, momenta).
  virtual ParameterSet make_parameter_like() const = 0;
  // The shape of weights[l] (bias = false) or biases[l] (bias = true), outermost first.
  virtual std::vector<std::int64_t> tensor_shape(int l, bool bias) const = 0;

  virtual NetworkState make_state() const = 0;
  // Units per sample of state layer i (its array is (max_batch, units)).
  virtual int state_units(int i) const = 0;
  virtual void copy_state(const NetworkState& from, NetworkState& to, int batch) = 0;

  // Clamps the input x (batch, input_size()), owned by the caller until the next call.
  // Starts a batch: the parameters hold still until the next set_input (the trainer
  // updates them between batches), so a model may cache what it derives from them
  // for the batch (the clamped input's drive, a library's reordered weights).
  virtual void set_input(const float* x, int batch) = 0;
  // The reset state of the free phase.
  virtual void reset(NetworkState& state) = 0;
  // Relaxes `state` in place for up to spec.steps steps; target is used when
  // spec.beta != 0.
  virtual PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) = 0;
  // True if relax() honours PhaseSpec::read_out; otherwise the trainer reads the
  // states out with a pass of its own after the phase.
  virtual bool fuses_readout() const { return false; }
  // energy (batch, device) = E(s) of every system, without the cost.
  virtual void energy(const NetworkState& state, float* energy) = 0;
  // EP estimate of dLoss/dtheta, batch-averaged, from two states relaxed at
  // beta_a != beta_b (DESIGN.md §1).
  virtual void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b,
                           float beta_b, const float* target, ParameterSet& gradient) = 0;
  // The exact dLoss/dtheta at the free fixed point `free_state`, batch-averaged, by
  // implicit differentiation (DESIGN.md §1, "Implicit differentiation"): the
  // adjoint system solved by `iterations` Jacobi steps on the active set, then one
  // GEMM per coupling. Returns the relative residual of the last step
  // (||mu_k - mu_{k-1}|| / ||mu_k||, 0 where mu is 0). Throws
  // std::invalid_argument where the model has no implicit gradient.
  virtual float implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                                  ParameterSet& gradient) {
    (void)free_state, (void)target, (void)iterations, (void)gradient;
    throw std::invalid_argument(kind() + ": training.algorithm = implicit is not available for this model kind");
  }
  // Per-sample loss and correctness (1/0) of the prediction read from `state`.
  virtual void metrics(const NetworkState& state, const float* target, float* loss, float* correct) = 0;

  // Floating-point operations of one EP training step on `batch` systems (the
  // GEMM-shaped work; elementwise passes are not counted): a free phase of
  // `free_steps`, `nudged_phases` nudged phases of `nudged_steps`, the gradient.
  // 0 where the model does not count them.
  virtual double training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const {
    (void)batch, (void)free_steps, (void)nudged_steps, (void)nudged_phases;
    return 0.0;
  }
};

}  // namespace eqprop
