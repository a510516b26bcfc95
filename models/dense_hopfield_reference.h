// A naive, double-precision reference of the layered (dense) Hopfield network of
// DESIGN.md §1 and of the exact gradient of its loss, obtained by implicit
// differentiation through the projected fixed point. It is the ground truth the
// engine's EP updates (models/dense_hopfield.{h,cpp}) are tested against, and
// deliberately shares no code with them: plain loops over std::vector<double>,
// one sample at a time, no backend, no float.
//
// Conventions are the engine's:
//   layers = {n0, n1, ..., nL}; n0 is the input x (clamped);
//   weights[l] is row-major (layers[l], layers[l+1]) and biases[l] has layers[l+1]
//   entries; weights[l-1] is the W_l of DESIGN.md coupling layer l-1 to layer l.
//   MSE: the state layers are 1..L, the output is s_L, C = 1/2 ||s_L - y||^2.
//   Cross-entropy: the state layers are 1..L-1; weights[L-1], biases[L-1] are a
//   softmax read-out of s_{L-1} (logits = s_{L-1} W + b, C = -log p_label) that is
//   not part of the energy.
// States are always in [0, c], where rho(s) = clip(s, 0, c) = s (c = 1: the hard sigmoid).
#pragma once

#include <vector>

#include "kernels/row_metrics.h"  // CostKind only

namespace eqprop {
namespace reference {

struct Network {
  std::vector<int> layers;                    // input, ..., output
  CostKind cost = CostKind::mse;
  std::vector<std::vector<double>> weights;   // [l] is (layers[l], layers[l+1]) row-major
  std::vector<std::vector<double>> biases;    // [l] is (layers[l+1])
  double activation_max = 1.0;                // c of rho = clip(s, 0, c)
};

// d(something)/dtheta, shaped like Network::weights and Network::biases.
struct Gradient {
  std::vector<std::vector<double>> weights;
  std::vector<std::vector<double>> biases;
};

// Number of state layers: layers.size() - 1 for MSE, one fewer for cross-entropy.
int state_layer_count(const Network& net);

// A zero Gradient shaped like net's parameters.
Gradient zero_gradient(const Network& net);

// The free (beta = 0) projected fixed point s = clip(h(s), 0, 1), reached by the
// synchronous fixed-point map from the reset state s = 0 (damped retries, which
// have the same fixed points, only where the plain map does not converge). Returns
// one vector per state layer ([k] has layers[k+1] units). Throws
// std::runtime_error if no map converges (max |clip(h) - s| < 1e-14 within 5000
// sweeps) or the state becomes NaN.
//   x is (layers[0]); it enters the fields unrectified, as in the engine.
std::vector<std::vector<double>> free_fixed_point(const Network& net,
                                                  const std::vector<double>& x);

// The fixed point of F = E + beta C for `label`, relaxed from `start` (normally the
// free fixed point) like free_fixed_point: s = clip(h - beta dC/ds) with the nudge
// on the top state layer (see ep_gradient).
std::vector<std::vector<double>> nudged_fixed_point(const Network& net,
                                                    const std::vector<double>& x, int label,
                                                    double beta,
                                                    const std::vector<std::vector<double>>& start);

// The free field h_l = W_l^T rho(s_{l-1}) + W_{l+1} rho(s_{l+1}) + b_l of every
// state layer at `states` (the term from above absent for the top state layer).
//   x is (layers[0]); states as returned by free_fixed_point.
std::vector<std::vector<double>> fields(const Network& net, const std::vector<double>& x,
                                        const std::vector<std::vector<double>>& states);

// E = sum_l 1/2 ||s_l||^2 - sum_l rho(s_{l-1})^T W_l rho(s_l) - sum_l b_l^T rho(s_l)
// over the state layers, s_0 = x. As in the engine, x enters the coupling
// unrectified (rho(s_0) = x); the tests draw x in [0, 1] where the two agree.
double energy(const Network& net, const std::vector<double>& x,
              const std::vector<std::vector<double>>& states);

// dE/dtheta at `states`: dE/dW_l(i,j) = -rho(s_{l-1,i}) rho(s_l,j), dE/db_l = -rho(s_l).
// The read-out tensor of the cross-entropy network (not in E) is zero.
Gradient energy_gradient(const Network& net, const std::vector<double>& x,
                         const std::vector<std::vector<double>>& states);

// The cost C(s, y) of `states` against the one-hot target of `label`.
double cost(const Network& net, const std::vector<std::vector<double>>& states, int label);

// C at the free fixed point of x (relaxes, then evaluates).
double loss(const Network& net, const std::vector<double>& x, int label);

// Batch mean of loss() over xs (batch of (layers[0])) and labels (batch).
double batch_loss(const Network& net, const std::vector<std::vector<double>>& xs,
                  const std::vector<int>& labels);

// The exact batch-mean dL/dtheta by the implicit function theorem on the active set
// of the projected fixed point (derivation in the .cpp). Valid where no unit's free
// field sits exactly on a bound (there L is not differentiable).
Gradient implicit_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                           const std::vector<int>& labels);

// Central differences (L(theta + eps) - L(theta - eps)) / 2 eps of batch_loss over
// every parameter, relaxing to the fixed point each time. For validation only.
Gradient finite_difference_gradient(const Network& net,
                                    const std::vector<std::vector<double>>& xs,
                                    const std::vector<int>& labels, double eps = 1e-6);

// The naive EP estimate of dL/dtheta, batch mean (DESIGN.md §1): relax free to s0,
// then from s0 relax F = E + beta C to s+ (and F = E - beta C to s- when
// `symmetric`), and
//   g = (dE/dtheta(s_a) - dE/dtheta(s_b)) / (beta_a - beta_b)          energy params
//   g = (beta_a dC/dtheta(s_a) - beta_b dC/dtheta(s_b)) / (beta_a - beta_b)  read-out
// with (s_a, beta_a), (s_b, beta_b) = (s+, beta), (s-, -beta) (symmetric) or
// (s_beta, beta), (s0, 0) (one-sided). The nudge is the field's -beta dC/ds on the
// top state layer, evaluated at the current states: MSE -beta (s_L - y), CE
// -beta W_out (p - y). The free phase always relaxes to convergence; each nudged
// phase, from s0, either runs `steps` plain synchronous sweeps (steps > 0, stopping
// early once converged: the truncated relaxation of an engine) or relaxes to
// convergence like free_fixed_point (steps <= 0; throws if it cannot).
Gradient ep_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                     const std::vector<int>& labels, double beta, bool symmetric, int steps);

// Comparisons of two gradients over one tensor (weights[tensor] together with
// biases[tensor]) or, with tensor = -1, over all parameters.
//   cosine_similarity: <a, b> / (||a|| ||b||); 1 if both are zero, 0 if only one is.
//   relative_error:    ||a - b|| / ||b||; 0 if both are zero, +inf if only b is.
double cosine_similarity(const Gradient& a, const Gradient& b, int tensor = -1);
double relative_error(const Gradient& a, const Gradient& b, int tensor = -1);

}  // namespace reference
}  // namespace eqprop
