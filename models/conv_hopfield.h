// The convolutional Hopfield network (DESIGN.md §1; Laborieux et al. 2021, "Scaling
// equilibrium propagation to deep ConvNets by drastically reducing its gradient
// estimator bias", Frontiers in Neuroscience: E = 1/2 ||s||^2 - Phi with Phi the
// primitive function of their convolutional network; Scellier et al. 2023): a stack of
// convolutional layers, each followed by 2x2 pooling (max, average or none), then
// dense layers. With rho = clip(., 0, c) and states kept in [0, c] (rho(s) = s):
//   E = 1/2 sum_l ||s_l||^2 - sum_{conv k} s_{k+1} . P(W_k * s_k + b_k)
//       - sum_{dense l} (s_{l-1}^T W_l s_l + b_l . s_l),
// s_0 = x (clamped, unrectified), P the pooling, * the convolution (PyTorch's
// Conv2d, cross-correlation). The bias is per channel and sits inside the pooling
// as in Laborieux et al.'s code (a Conv2d with bias, then the pool); for 2x2 windows
// that tile the plane (the shape requires even sizes) P(y + b) = P(y) + b, so the
// engine adds b after pooling and max pooling keeps the same argmax.
// The force on a conv state (rho' = 1 inside [0, 1]):
//   -dE/ds_k = P(W_{k-1} * s_{k-1} + b) + W_k^T *' P^T(s_{k+1}) - s_k,
// P^T the adjoint of the pooling: for max pooling, unpooling through the argmax of
// the pooled convolution of s_k at the current state (E is piecewise smooth; the
// argmax is where it is differentiable). The contrastive kernel update is the
// correlation of s_k with P^T(s_{k+1}) (models/conv_ops.h, one GEMM), the bias
// update the sum of s_{k+1} over the plane.
//
// Layout. Every state layer, the input and the drives are per-sample contiguous
// NCHW, i.e. (batch, C*H*W) row-major: what the trainer's per-row slicing, the ADC
// and copy_state assume, and PyTorch's flatten order for the dense tail. The
// convolution GEMMs want channel-major (Co, N*OH*OW) operands (kernels/im2col.h);
// with pooling, the pre-pool convolution output is written channel-major straight
// from the GEMM into a scratch array and the pooling reads it there and writes the
// NCHW drive (the pooling ops take both layouts), so the only layout conversion is
// fused into a pass the network needs anyway; unpooling writes the channel-major
// operand of the transposed convolution the same way. Without pooling, the
// forward and transposed convolutions pay one relayout pass each (conv_ops').
//
// Memory. im2col needs C*K*K*OH*OW floats per sample (9x the input for 3x3); the
// convolutions run over chunks of the batch (`chunk_samples()`) so that the
// workspace stays below a fixed budget whatever the evaluation batch size.
// The batch is relaxed as one (no per-core slices): each conv GEMM is large.
//
// Skip couplings (residual Hopfield networks; Vinayak & Srinivasan 2025, the
// Hopfield-ResNet13 of "Scaling equilibrium propagation to deeper neural network
// architectures"): optional terms -s_j . (K * s_i) between non-adjacent planes
// i < j - 1 of the conv stack (i = 0 the clamped input), K a learned 1x1
// convolution whose stride maps plane i onto plane j, no bias and no pooling. They
// add K * s_i to s_j's drive and K^T *' s_j to s_i's feedback, and
// -corr(s_i, s_j) to dE/dK. A skip joins two layers of the same parity when j - i
// is even (all of Hopfield-ResNet13's do), so with the asynchronous order those
// two move together from the previous values of each other: the half step is then
// a Jacobi step within its group, not an exact block minimisation (DESIGN.md §1,
// as the published code does it).
//
// Parameters: weights[k] (Co, C, K, K) and biases[k] (Co) for conv layer k,
// then weights (fan_in, units) and biases (units) for the dense layers as in
// DenseHopfield; with cross_entropy the last of these pairs is the softmax read-out
// of the top state layer, outside the energy (Laborieux et al. 2021, §3). Then one
// pair per skip: weights (C_j, C_i, 1, 1) and an empty bias.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/row_metrics.h"
#include "models/conv_ops.h"
#include "models/layered_model.h"

namespace eqprop {

enum class PoolKind : int { none = 0, max = 1, avg = 2 };

// How a nudged phase computes the couplings of the chain, and the update its
// states feed (ConvHopfield::set_nudged_couplings; DESIGN.md §1, "Nudged phases in
// reduced precision"):
//  - direct: each field from the state itself, as the free phase does; the update
//    as corr(x_a, u_a) - corr(x_b, u_b);
//  - from_reference: each linear map L (a convolution, its transpose, a dense
//    product) as L(r) + L(s - r), L(r) computed once per batch at the reference r,
//    the state the first nudged phase of the batch starts from (the free fixed
//    point); the update as corr(x_a, u_a - u_b) + corr(x_a - x_b, u_b). Equal in
//    exact arithmetic; a product's rounding of its operands then scales with the
//    O(beta) differences the update measures instead of with the states;
//  - automatic: from_reference where the backend's GEMMs and convolutions round
//    their operands (gemm_precision bf16 or tf32), direct in fp32 (bits unchanged).
enum class NudgedCouplings { automatic, direct, from_reference };

// A skip coupling between planes `from` and `to` of the conv stack (0 the input,
// k the state after conv layer k), from <= to - 2: a 1x1 convolution whose stride
// is the ratio of the planes' sizes.
struct SkipSpec {
  int from = 0;
  int to = 2;
};

struct ConvLayerSpec {
  int channels = 1;  // output channels
  int kernel = 3;
  int stride = 1;
  int padding = 0;
};

// A (channels, height, width) plane stack of one sample.
struct PlaneShape {
  int channels = 1, height = 1, width = 1;
  int units() const { return channels * height * width; }
  int plane() const { return height * width; }
};

struct ConvHopfieldShape {
  PlaneShape input;                  // (C, H, W) of one sample
  std::vector<ConvLayerSpec> convs;  // at least one
  PoolKind pool = PoolKind::max;     // 2x2, stride 2, after every convolution
  std::vector<int> dense;            // hidden..., output: the layers after the conv stack
  CostKind cost = CostKind::mse;
  float activation_max = kHardSigmoidMax;  // c of rho = clip(s, 0, c) (model.activation)
  std::vector<SkipSpec> skips;             // skip couplings, in parameter order

  // Throws std::invalid_argument naming the layer and the sizes that do not fit.
  void validate() const;

  int conv_layers() const { return static_cast<int>(convs.size()); }
  int skip_count() const { return static_cast<int>(skips.size()); }
  // The chain's tensors (conv layers, dense layers, read-out), then one per skip.
  int chain_tensors() const { return conv_layers() + static_cast<int>(dense.size()); }
  int weight_tensors() const { return chain_tensors() + skip_count(); }
  int skip_tensor(int s) const { return chain_tensors() + s; }
  int state_layers() const { return chain_tensors() - (cost == CostKind::cross_entropy ? 1 : 0); }
  int classes() const { return dense.back(); }
  // The planes of layer j: 0 the input, 1..K the conv states (after pooling).
  PlaneShape conv_plane(int j) const;
  // Units per sample of layer j: input, conv states, dense layers (read-out included).
  int units(int j) const;
  // The convolution of conv tensor k on a chunk of `rows` samples, NCHW both sides.
  ConvShape conv_shape(int k, int rows) const;
  // The pooling after conv tensor k on `rows` samples: input channel-major (the GEMM's
  // output), output NCHW.
  PoolShape pool_shape(int k, int rows) const;
  // Skip s's 1x1 convolution on `rows` samples, NCHW both sides.
  ConvShape skip_shape(int s, int rows) const;
};

class ConvHopfield final : public LayeredModel {
 public:
  // The default im2col workspace budget, in floats (256 MiB): a CIFAR-10 conv4 batch
  // of 128 fits in one chunk (conv2: 1152 x 128*256 = 38 M floats); an evaluation
  // batch of 1000 runs in a few chunks instead of needing 1.2 GB.
  static constexpr std::int64_t kDefaultWorkspaceFloats = std::int64_t(1) << 26;

  // workspace_floats bounds the im2col workspace (at least one sample's columns).
  ConvHopfield(Backend& backend, ConvHopfieldShape shape, int max_batch,
               std::int64_t workspace_floats = kDefaultWorkspaceFloats);

  const ConvHopfieldShape& shape() const { return shape_; }
  std::string kind() const override { return "conv_hopfield"; }
  // Samples per convolution call (the workspace budget over the widest layer).
  int chunk_samples() const { return chunk_; }
  // NudgedCouplings, from the next nudged phase (and the update after it) on.
  void set_nudged_couplings(NudgedCouplings mode) { nudged_couplings_ = mode; }

  // Uniform(+-gain/sqrt(fan_in)) weights and biases, fan_in = C*K*K for a kernel.
  void initialize(std::uint64_t seed, float gain) override;
  ParameterSet make_parameter_like() const override;
  std::vector<std::int64_t> tensor_shape(int l, bool bias) const override;

  // Clamps x (batch, C*H*W) and caches what depends only on x and the parameters:
  // the first layer's drive P(W_0 * x) with its pooling argmax, and the conv biases
  // broadcast over their planes. Reads the parameters: call it after changing them.
  void set_input(const float* x, int batch) override;
  // relax(): steps of every layer (fixed point, gradient flow or cSB: LayerStepOp),
  // synchronous or asynchronous (spec.order), on the whole batch at once. The
  // final step and every convergence check write the ADC reading.
  bool fuses_readout() const override { return true; }
  void energy(const NetworkState& state, float* energy) override;
  // As DenseHopfield::ep_gradient; the kernel update is one GEMM per chunk and
  // state (models/conv_ops.h), the conv bias update the plane sum of the states.
  void ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                   const float* target, ParameterSet& gradient) override;
  // Exact dLoss/dtheta at the free fixed point (EnergyModel::implicit_gradient):
  // the adjoint system of LayeredModel::solve_adjoint with the couplings linear in
  // mu (no biases, no input terms, max pooling through the free state's argmax),
  // then the correlations of mu with the free state, one GEMM per chunk each.
  float implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                          ParameterSet& gradient) override;
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override;
  double training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const override;

 private:
  // `shape` with this batch's weights_version (set_input's): the library may reuse
  // what it derived from the weights for every call until the next batch.
  ConvShape call_shape(ConvShape shape) const;
  // How conv tensor k's operands are held on a chunk of `rows` samples, decided
  // once per (k, rows) and the backend's precision and convolution path:
  //  - prepool_layout, of the pre-pooling tensor (conv_out_, the unpooled fields;
  //    kernels/plane_layout.h): channels-last where the backend's library reads and
  //    writes it so for every product of the layer
  //    (Backend::convolution_prefers_channels_last), channel-major otherwise;
  //  - bf16_input: the forward convolution's x, a state (less its reference), is
  //    handed to the library in bf16 channels-last (ChannelsLastBf16Op into
  //    input_bf16_) where it takes bf16 operands (conv_library_takes_bf16);
  //  - bf16_feedback / bf16_gradient: with max pooling into a channels-last tensor,
  //    the unpooled field is written in bf16 (operand_bf16_) for the library's
  //    backward-data / backward-weights call where it takes bf16 operands; the
  //    backward-data call then writes the feedback channels-last too, as the
  //    library keeps it (feedback_channels_last_), and a PlaneRelayoutOp transposes
  //    it into the state's NCHW.
  // Each conversion is done by the op that produces the operand, not by a further
  // pass of the library's own.
  struct ConvOperandPlan {
    PlaneLayout prepool_layout{};
    bool bf16_input = false;
    bool bf16_feedback = false;
    bool bf16_gradient = false;
  };
  const ConvOperandPlan& operand_plan(int k, int rows);
  // Sets conv's output layout to prepool_plan's and returns tensor k's pooling of it.
  PoolShape with_prepool_layout(int k, ConvShape& conv);
  // drive_[k] = P(W_k * below) for conv tensor k on the whole batch (chunk by
  // chunk), with the argmax of max pooling in argmax_[k]; when `above` is given
  // (k >= 1), feedback_[k - 1] = W_k^T *' P^T(above) through that argmax.
  //   below (batch, units(k)), above (batch, units(k + 1)) or null.
  // With `keep_argmax`, max pooling selects through argmax_[k] as it stands (the
  // coupling as the linear map of a fixed argmax) instead of finding it.
  void conv_coupling(int k, const float* below, const float* above, bool keep_argmax = false);
  // y = W_k * (below - reference) on conv's chunk from sample `begin` (reference
  // null: W_k * below), y in conv's output layout: in bf16 operands where
  // operand_plan says so, else through deviation_ and conv2d_forward.
  void conv_forward_of_state(int k, ConvShape conv, int begin, const float* below, const float* reference, float* y);
  // gradient += alpha * correlation of below with P^T(above) for conv tensor k
  // (overwrites when `overwrite`); the argmax is recomputed from `below` (k >= 1)
  // unless `keep_argmax`, or is the cached input's (k = 0).
  void conv_kernel_gradient(int k, const float* below, const float* above, float alpha, bool overwrite,
                            float* gradient, bool keep_argmax = false);
  // gradient += alpha * correlation of below (plane skip.from) with above (plane
  // skip.to) for skip s, chunk by chunk (overwrites when `overwrite`).
  void skip_kernel_gradient(int s, const float* below, const float* above, float alpha, bool overwrite,
                            float* gradient);
  // gradient (channels) = alpha_a * plane sums of a (+ alpha_b * those of b, where
  // given), summed over the batch: a conv bias's dE/db. a, b (batch, units(k + 1)).
  void conv_bias_gradient(int k, const float* a, const float* b, float alpha_a, float alpha_b, float* gradient);
  // feedback_[k - 1] = W_k^T *' P^T(above) for conv tensor k (k >= 1) through the
  // argmax of its last forward pass (conv_coupling), whole batch chunk by chunk;
  // conv_feedback_rows does the chunk of `rows` samples from `begin`.
  void conv_feedback(int k, const float* above);
  void conv_feedback_rows(int k, const float* above, int begin, int rows);
  // Adds the skip couplings' fields: for each skip into a state layer i of `group`,
  // K * s_from to drive_[i]; when `with_feedback`, for each skip out of one,
  // K^T *' s_to to feedback_[i]. Runs after couplings() wrote those arrays.
  // Without `with_input`, skips out of the input add nothing.
  void skip_couplings(const NetworkState& state, bool with_feedback, int group, int groups, bool with_input);
  // The values of plane j of the conv stack: the clamped input or state layer j - 1.
  const float* plane_values(const NetworkState& state, int j) const;
  // The fields at `state` of the state layers i with i % groups == group: every
  // drive but the cached input's and, when `with_feedback`, the feedbacks. Where
  // given, argmax_current[t] says that conv tensor t's pooling argmax is already
  // at the current s_{t-1} (a feedback then skips the forward pass); it is set
  // wherever a forward pass runs.
  // With `linear`, the couplings without the input's terms and with every max
  // pooling through argmax_ as it stands: K mu of the adjoint system.
  void couplings(const NetworkState& state, bool with_feedback, int group = 0, int groups = 1,
                 std::vector<char>* argmax_current = nullptr, bool linear = false);
  // One step of the whole batch (begin 0, rows batch): for each group of
  // spec.order, the fields of its layers, then their LayerStepOps.
  void step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                 int rows) override;
  // The per-unit bias of state layer i: the conv bias broadcast, or the dense bias.
  const float* unit_bias(int i) const;
  // NudgedCouplings resolved at the backend's gemm_precision().
  bool nudges_from_reference() const;
  // gradient = alpha * [corr(x_a, P_a^T(y_a)) - corr(x_b, P_b^T(y_b))] for conv tensor
  // k >= 1 as alpha * [corr(x_a, P_a^T(y_a) - P_b^T(y_b)) + corr(x_a - x_b, P_b^T(y_b))],
  // each argmax found from its own x. x (batch, units(k)), y (batch, units(k + 1)).
  void conv_kernel_gradient_from_difference(int k, const float* below_a, const float* above_a,
                                            const float* below_b, const float* above_b, float alpha,
                                            float* gradient);
  // P^T(above) for conv tensor k on `rows` samples from `begin` into `unpooled`
  // (channel-major, as conv_out_): the argmax of max pooling from below's forward pass.
  void unpool_through_own_argmax(int k, const float* below, const float* above, int begin, int rows,
                                 float* unpooled);
  // A nudged phase under NudgedCouplings::from_reference (or automatic in reduced
  // precision) takes `state` as the batch's reference unless one is already taken.
  void prepare_phase(const NetworkState& state, const PhaseSpec& spec) override;
  // The reference's fields: reference_state_ = state, then for every chain tensor t
  // >= 1 its pre-pool convolution (or dense drive), its feedback operand P^T(r_t)
  // and its feedback, and for every skip out of a state layer its drive and
  // feedback, all computed directly.
  void take_reference(const NetworkState& state);
  // operand - the reference's values at the same rows, into deviation_ (count floats
  // from `offset`): the operand of L(s - r).
  const float* deviation(const float* operand, const float* reference, std::size_t offset, std::size_t count);
  // values[0, count) += reference[0, count).
  void add_reference(float* values, const float* reference, std::size_t count);

  ConvHopfieldShape shape_;
  int chunk_ = 1;
  std::vector<DeviceBuffer<float>> drive_;             // per state layer (batch, units); [0]: the cached input drive
  std::vector<DeviceBuffer<float>> feedback_;          // per state layer (batch, units)
  std::uint64_t weights_version_ = 0;                   // fresh at every set_input (call_shape)
  std::vector<DeviceBuffer<std::int32_t>> argmax_;     // per conv tensor, max pooling (batch, pooled units)
  std::vector<DeviceBuffer<float>> expanded_bias_;     // per conv state layer (units)
  DeviceBuffer<float> columns_;                        // im2col workspace (C*K*K, chunk*OH*OW), widest layer
  DeviceBuffer<float> conv_out_;                       // (Co, chunk*OH*OW): pre-pool output / channel-major operand
  DeviceBuffer<std::uint16_t> operand_bf16_;           // conv_out_'s size: an unpooled field in bf16 (ConvOperandPlan)
  DeviceBuffer<std::uint16_t> input_bf16_;             // (chunk, widest conv input): a state in bf16 NHWC
  DeviceBuffer<float> feedback_channels_last_;         // (chunk, widest conv input): a feedback in NHWC
  // By (conv tensor, rows, gemm precision, convolution path).
  std::map<std::array<int, 4>, ConvOperandPlan> operand_plans_;
  DeviceBuffer<float> unit_sums_;                      // (widest conv state units) batch sums before the plane sum
  DeviceBuffer<float> ones_;                           // (widest plane) for plane sums as GEMV
  // NudgedCouplings::from_reference (allocated by the first reference taken, for its batch):
  NudgedCouplings nudged_couplings_ = NudgedCouplings::automatic;
  bool reference_taken_ = false;       // for this batch (set_input clears it)
  bool phase_uses_reference_ = false;  // the phase being relaxed is nudged and uses it
  bool from_reference_ = false;        // inside that phase's step_rows: the couplings use it
  int reference_rows_ = 0;             // the samples the reference's buffers hold
  NetworkState reference_state_;       // r (layers only), the state the batch's first nudged phase started from
  // Per chain tensor t >= 1: L(r) before pooling, as conv_out_ holds it chunk by
  // chunk (conv: (Co, rows*OH*OW) per chunk, NCHW without pooling; dense: the drive);
  // the feedback operand P^T(r_t) in the same layout (pooled convs only); and the
  // feedback L^T(P^T(r_t)) onto state layer t - 1.
  std::vector<DeviceBuffer<float>> reference_preactivation_, reference_operand_, reference_feedback_;
  // Per skip out of a state layer: K * r_from and K^T *' r_to.
  std::vector<DeviceBuffer<float>> reference_skip_drive_, reference_skip_feedback_;
  DeviceBuffer<float> deviation_;           // (reference rows, widest state layer) scratch of L(s - r)
  DeviceBuffer<float> second_deviation_;    // the same size: y_a - y_b of a dense update
  DeviceBuffer<float> unpooled_b_;          // conv_out_'s size: P_b^T(y_b) of a conv update
};

}  // namespace eqprop
