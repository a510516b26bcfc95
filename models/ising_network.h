// A layered network of binary spins trained with EP, the Ising machine of
// Laydevant, Markovic & Grollier, "Training an Ising machine with equilibrium
// propagation", Nat. Commun. 15, 3671 (2024) (DESIGN.md §1):
//   E(s) = -1/2 s^T J s - h^T s = -sum_l s_l^T W_l s_{l+1} - sum_l h_{l+1}^T s_{l+1},
// spins s_l in {-1, +1}^{n_l} for l >= 1; J couples consecutive layers only.
//
// Input: layer 0 is clamped to the real-valued pixels x in [0, 1] (not binarized):
// x W_0 is a constant field on layer 1, computed once per batch. Output: each class
// owns G consecutive spins of the top layer (G = spins_per_class, Laydevant et al.
// replicate the output spins per class); the prediction is the class with the
// largest mean spin. The nudge is the field beta t_k / G on the spins of class k,
// t_k = 2 y_k - 1: the cost C = 1/(2G) sum_j (s_j - t_k(j))^2 is linear in spins
// (kernels/ising_layer_update.h).
//
// Equilibrium by simulated annealing with block sweeps: odd layers, then even
// layers, each layer one GEMM from below, one from above and a fused update
// (kernels/ising_layer_update.h). The free phase anneals geometrically from
// temperature_start to temperature_end over its sweeps; nudged phases start from
// the free state and run at temperature_end. Or by discrete simulated bifurcation
// (dSB; kernels/simulated_bifurcation.h, c0 = 1): every layer's field from the
// spins sign(x) at the start of a step, then every oscillator steps; the free phase
// starts from small random positions with the pump ramping over the phase, a nudged
// phase from x = the free spins, momenta 0 and the pump at its end (detuning 0). R replicas per sample (independent
// chains of the same system) average the correlations of the update.
//
// Layout: weights[l] is (n_l, n_{l+1}), biases[l] is h of layer l + 1 (n_{l+1}).
// State layer i holds spin layer i + 1 as (batch * R, n_{i+1}): the R replicas of a
// sample are consecutive rows, i.e. one (batch, R * n_{i+1}) row per sample.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/ising_layer_update.h"
#include "models/layered_model.h"
#include "models/model_config.h"

namespace eqprop {

struct IsingNetworkShape {
  std::vector<int> layers;  // input, hidden..., classes (the top layer has classes * spins_per_class spins)
  int spins_per_class = 1;
  int replicas = 1;

  int weight_tensors() const { return static_cast<int>(layers.size()) - 1; }
  int state_layers() const { return weight_tensors(); }
  int classes() const { return layers.back(); }
  // Units of layer l (0: the input).
  int units(int l) const { return l + 1 == static_cast<int>(layers.size()) ? layers[l] * spins_per_class : layers[l]; }
  // units(l) of every layer: the widths of the weight tensors.
  std::vector<int> all_units() const {
    std::vector<int> widths;
    for (int l = 0; l < static_cast<int>(layers.size()); ++l) widths.push_back(units(l));
    return widths;
  }
};

// How a phase relaxes.
enum class IsingRelaxation : int {
  annealing = 0,  // block Gibbs/Metropolis sweeps over a temperature schedule
  dsb = 1,        // discrete simulated bifurcation (Goto et al. 2021), synchronous
};

// The sweep or step counts come from PhaseSpec::steps; dSB's step and position gain
// from PhaseSpec::dt and a0.
struct IsingDynamics {
  float temperature_start = 2.0f;  // first sweep of the free phase
  float temperature_end = 0.1f;    // last sweep of the free phase; every sweep of a nudged phase
  SpinUpdate rule = SpinUpdate::gibbs;
  IsingRelaxation relaxation = IsingRelaxation::annealing;
};

class IsingNetwork final : public LayeredModel {
 public:
  // path: training.relaxation_path (annealing phases take the fused path where it
  // and the phase allow it: fused_path_refusal; dSB steps always take GEMMs).
  IsingNetwork(Backend& backend, IsingNetworkShape shape, IsingDynamics dynamics, int max_batch,
               RelaxationPath path = RelaxationPath::automatic);

  const IsingNetworkShape& shape() const { return shape_; }
  const IsingDynamics& dynamics() const { return dynamics_; }
  void set_dynamics(const IsingDynamics& dynamics);

  std::string kind() const override { return "ising"; }

  // The parameters are the dense stack of shape().all_units(); the states are the
  // spin layers only, replicas * units(i + 1) per sample, without momenta (binary
  // spins have none). reset() sets every spin to 0, "not yet drawn": the first
  // sweep draws each layer given the input and the layers already drawn (the
  // layers above still 0).

  // Clamps x (batch, n_0) and caches its field x W_0 on every replica of layer 1.
  void set_input(const float* x, int batch) override;
  // spec.steps sweeps (odd layers, then even layers) at the temperatures of the
  // annealing, or spec.steps dSB steps of spec.dt with gain spec.a0; nudged when
  // spec.beta != 0 (target (batch, classes) one-hot). The draws are keyed on
  // (spec.noise_seed, spec.first_sample + sample, replica, unit, spec.noise_phase,
  // sweep). spec.integrator, noise_sigma and tolerance do not apply: every slice
  // of samples runs step_rows over the whole schedule, with no early exit. The
  // annealing sweeps are always asynchronous (spec.order is moot: odd layers,
  // then even ones, each an exact block update); dSB steps are synchronous and
  // refuse spec.order = asynchronous.
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override;
  // Why the fused path (kernels/fused_ising_block.h) cannot run this phase, or null.
  const char* fused_path_refusal(const PhaseSpec& spec) const;
  // energy (batch) = E(s), the mean over the replicas of a sample, without the cost.
  void energy(const NetworkState& state, float* energy) override;
  // EP estimate of dLoss/dtheta averaged over the batch and the replicas:
  //   g = (dE/dtheta(s_a) - dE/dtheta(s_b)) / (beta_a - beta_b),
  //   dE/dW_l = -s_l^T s_{l+1},  dE/dh_l = -s_l   (one GEMM per tensor and state).
  void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                   const float* target, ParameterSet& gradient) override;
  // The cost C and the prediction of kernels/ising_readout.h.
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override;

  double training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const override;

  // The inverse temperature of `sweep` of a phase of `sweeps` sweeps: geometric from
  // temperature_start to temperature_end when free, temperature_end when nudged.
  float inverse_temperature(int sweep, int sweeps, bool nudged) const;

 private:
  // One annealing sweep (odd layers, then even layers) or one dSB step of the
  // samples [begin, begin + samples) of the batch (rows begin * R ..).
  void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                 int samples) override;
  // dSB's start of a phase for those samples: small random positions (free) or the
  // free spins at rest (nudged).
  void start_dsb(NetworkState& state, const PhaseSpec& spec, int begin, int samples);
  void dsb_step(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin, int samples);
  // The whole annealing phase in one launch of FusedIsingBlock.
  void relax_fused(NetworkState& state, const float* target, const PhaseSpec& spec);
  // The field inputs of state layer i for rows [first_row, first_row + rows): the
  // GEMMs from the spins below and above, the bias, the nudge when target is set.
  IsingLayerFields layer_fields(const NetworkState& state, int i, const float* target, float beta, int first_sample,
                                int first_row, int rows);
  // Draws state layer i (spin layer i + 1) of rows [first_row, first_row + rows).
  void update_layer(NetworkState& state, int i, const float* target, const PhaseSpec& spec, float inverse_temperature,
                    int sweep, int first_sample, int first_row, int rows);

  IsingNetworkShape shape_;
  IsingDynamics dynamics_;
  RelaxationPath relaxation_path_;
  std::vector<DeviceBuffer<float>> weights_transposed_;  // W_{i+1}^T per state layer below the top (fused path)
  DeviceBuffer<float> input_drive_;            // (batch * R, n_1) = x W_0 on every replica
  std::vector<DeviceBuffer<float>> below_;     // per state layer i > 0: (batch * R, n_{i+1}) s_i W_i
  std::vector<DeviceBuffer<float>> above_;     // per state layer below the top: s_{i+2} W_{i+1}^T
  DeviceBuffer<float> row_energy_;             // (batch * R)
  // dSB only, per state layer (batch * R, n_{i+1}): positions, momenta, fields.
  std::vector<DeviceBuffer<float>> positions_, momenta_, fields_;
};

}  // namespace eqprop
