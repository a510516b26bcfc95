// A naive, double-precision reference of the convolutional Hopfield network
// (models/conv_hopfield.h) and of the exact gradient of its loss, the ground truth
// the engine's EP update is tested against (engine/gradcheck, tests). It shares no
// code with the engine: plain nested loops over std::vector<double>, one sample at
// a time; the convolution is the textbook sum, its adjoint a scatter (the engine
// gathers through im2col / col2im GEMMs).
//
// Conventions are the engine's: states and inputs per sample in NCHW order;
// weights[k] (Co, C, K, K) and biases[k] (Co) for conv layer k, then (fan_in,
// units) and (units) for the dense layers; with cross-entropy the last of these
// pairs is a softmax read-out of the top state layer, outside the energy; then the
// skips' (Co, C) kernels with empty biases. A skip adds -s_to . (K * s_from) to E. The bias sits inside
// the pooling, E's conv term being s_{k+1} . P(W_k * s_k + b_k); pooling is 2x2,
// stride 2, over planes of even size. States are in [0, c] where rho(s) = clip(s, 0, c) = s.
#pragma once

#include <vector>

#include "kernels/row_metrics.h"  // CostKind only

namespace eqprop {

struct ConvHopfieldShape;

namespace conv_reference {

struct Conv {
  int channels, kernel, stride, padding;
};

// A skip coupling -s_to . (K * s_from) between planes of the conv stack, K a 1x1
// convolution of stride ceil(size_from / size_to), no bias.
struct Skip {
  int from, to;
};

struct Network {
  int in_channels = 1, in_h = 1, in_w = 1;
  std::vector<Conv> convs;
  int pool = 1;            // 0 none, 1 max, 2 average
  std::vector<int> dense;  // hidden..., output
  CostKind cost = CostKind::mse;
  std::vector<std::vector<double>> weights;
  std::vector<std::vector<double>> biases;
  double activation_max = 1.0;  // c of rho = clip(s, 0, c)
  std::vector<Skip> skips;      // their tensors follow the chain's: weights (Co, C), biases empty
};

using States = std::vector<std::vector<double>>;  // one vector per state layer

// The network the engine's `shape` (models/conv_hopfield.h) describes, without its
// parameters (weights and biases empty).
Network network_of(const ConvHopfieldShape& shape);

// Units per sample of layer j (0: the input; then conv states; then dense layers).
int units(const Network& net, int j);
int state_layer_count(const Network& net);

// E(x, s) (DESIGN.md §1, models/conv_hopfield.h), s per state layer.
double energy(const Network& net, const std::vector<double>& x, const States& states);
// The field of every state unit, -dE/ds + s (rho' = 1): the drive from below plus
// the feedback from above, max pooling through the argmax of `states`.
States fields(const Network& net, const std::vector<double>& x, const States& states);
// The smallest distance of any state unit's field from a kink of the hard sigmoid
// (0 or 1) and of any max-pooling window's largest pre-pool value from its second:
// where either is small the loss has a kink.
double kink_margin(const Network& net, const std::vector<double>& x, const States& states);

// The drive of state layer i from tensor i, bias included: P(W_i * s + b_i) for a
// conv tensor (s the layer below: the input for i = 0), W_i^T s + b_i for a dense one.
std::vector<double> layer_drive(const Network& net, const std::vector<double>& x, const States& states, int i);
// The adjoint of tensor t's drive (t >= 1) at `states`, applied to states[t]:
// d/d(layer t) of states[t] . drive_t (through the max-pooling argmax of `states`).
std::vector<double> layer_feedback(const Network& net, const std::vector<double>& x, const States& states, int t);
// The smallest gap between a max-pooling window's largest pre-pool value and its
// second (HUGE_VAL without max pooling): where it is small, the argmax flips.
double pooling_margin(const Network& net, const std::vector<double>& x, const States& states);

// The free fixed point s = clip(field(s)) from s = 0 by synchronous sweeps (damped
// ones where the plain map does not converge); throws std::runtime_error if none
// converges to max |change| < 1e-13 in 20000 sweeps.
States free_fixed_point(const Network& net, const std::vector<double>& x);

// C at `states`: MSE 1/2 ||s_out - y||^2 or the read-out's -log softmax[label].
double cost(const Network& net, const States& states, int label);
// Batch mean of C at each sample's free fixed point.
double batch_loss(const Network& net, const std::vector<std::vector<double>>& xs, const std::vector<int>& labels);

// dE/dtheta at (x, states), naive correlations: dE/dW_k[co,c,kh,kw] =
// -sum_{positions} P^T(s_{k+1})[co, p] x_k[c, p + tap], dE/db_k = -sum s_{k+1}; the
// read-out's entries are 0. Shaped like weights and biases.
Network energy_gradient(const Network& net, const std::vector<double>& x, const States& states);

// Central differences of batch_loss over every parameter (relaxing to the free fixed
// point each time): the exact gradient of the loss wherever it is differentiable.
Network finite_difference_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                                   const std::vector<int>& labels, double eps = 1e-5);

// Cosine similarity and relative error ||a - b|| / ||b|| of two gradients over
// tensor pair t (weights[t] with biases[t]) or, t = -1, over all.
double cosine_similarity(const Network& a, const Network& b, int t = -1);
double relative_error(const Network& a, const Network& b, int t = -1);

}  // namespace conv_reference
}  // namespace eqprop
