// Naive double-precision reference of the dense Hopfield network; see the header.
//
// Exact gradient by implicit differentiation (Scellier & Bengio 2017, "Equilibrium
// Propagation", §2-3; the implicit function theorem applied to the projected fixed
// point, as in recurrent back-propagation / Almeida-Pineda).
//
// Fixed point. For one sample, every state unit u satisfies s_u = clip(h_u, 0, 1)
// with h linear in the states: h = K s + c(theta, x), where K is the symmetric
// coupling matrix (K[(l-1,i),(l,j)] = K[(l,j),(l-1,i)] = W_l(i,j) between state
// layers) and c collects the biases and the input drive W_1^T x. This is exactly the
// KKT condition of min E over the box [0,1]^n (dE/ds = s - h there, since
// rho(s) = s on the box), so s* is the free equilibrium of EP.
//
// Active set. Let A = {u : 0 < h_u < 1} and P its complement. A unit in P has
// h_u <= 0 (s_u = 0) or h_u >= 1 (s_u = 1); where the inequality is strict, a small
// change of theta leaves it pinned, so ds_P/dtheta = 0 (where some h_u sits exactly
// on a bound L is not differentiable, and the tests avoid such points). On A,
//   G(s_A, theta) = s_A - h_A(s_A, s_P, theta) = 0,
//   J = dG/ds_A = I - K_AA            (symmetric, invertible at a stable fixed point)
// and the implicit function theorem gives ds_A/dtheta = J^{-1} dh_A/dtheta. Hence
//   dL/dtheta = dC/dtheta|_direct + dC/ds_A J^{-1} dh_A/dtheta
//             = dC/dtheta|_direct + mu^T dh_A/dtheta,   J^T mu = (dC/ds_A)^T.
// (J^T = J here; we solve with J^T anyway, by dense Gaussian elimination.)
//   dC/ds: MSE s_L - y on the output layer; cross-entropy W_out (p - y) on the top
//          state layer (logits = s_top W_out + b_out, p = softmax(logits)).
//   dh/dtheta: for W_l(i,j) coupling unit i of layer l-1 and unit j of layer l,
//          dh_{l,j}/dW_l(i,j) = rho(s_{l-1,i}) and, when layer l-1 is a state layer,
//          dh_{l-1,i}/dW_l(i,j) = rho(s_{l,j}); dh_{l,j}/db_{l,j} = 1.
//   So dL/dW_l(i,j) = mu_{l,j} rho(s_{l-1,i}) + mu_{l-1,i} rho(s_{l,j}),
//      dL/db_{l,j}  = mu_{l,j}   (mu = 0 on P),
//   and the direct term exists only for the cross-entropy read-out:
//      dC/dW_out(k,c) = s_top,k (p_c - y_c), dC/db_out,c = p_c - y_c.
//
// EP (Scellier & Bengio 2017, Theorem 1) states that the same gradient is
// d/dbeta dF/dtheta(s^beta) at beta = 0, with F = E + beta C; ep_gradient below is
// the finite-difference estimate of that derivative, one-sided or symmetric
// (Laborieux et al. 2021).
#include "models/dense_hopfield_reference.h"

#include "models/dense_linear_solve.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace eqprop {
namespace reference {
namespace {

using States = std::vector<std::vector<double>>;

constexpr int kMaxSweeps = 5000;
// Convergence: the fixed-point residual max |clip(h(s)) - s| (= the last change of
// the undamped map) below this. States are in [0, 1], so 1e-14 is a few dozen ulps;
// the remaining error, about tolerance * r / (1 - r) for a contraction rate r,
// keeps central differences at eps = 1e-6 accurate to ~1e-8 relative (measured:
// implicit vs finite differences agree to < 1e-8 in the tests).
constexpr double kTolerance = 1e-14;

// rho(v) = clip(v, 0, c), c = net.activation_max.
double rho(const Network& net, double v) { return v < 0.0 ? 0.0 : (v > net.activation_max ? net.activation_max : v); }

int weight_tensor_count(const Network& net) { return static_cast<int>(net.layers.size()) - 1; }

void validate(const Network& net) {
  const int tensors = weight_tensor_count(net);
  if (tensors < 1) throw std::invalid_argument("reference::Network: needs at least two layers");
  if (state_layer_count(net) < 1)
    throw std::invalid_argument("reference::Network: needs at least one state layer");
  if (static_cast<int>(net.weights.size()) != tensors ||
      static_cast<int>(net.biases.size()) != tensors)
    throw std::invalid_argument("reference::Network: weights/biases count != layers.size() - 1");
  for (int t = 0; t < tensors; ++t) {
    if (net.layers[t] < 1 || net.layers[t + 1] < 1)
      throw std::invalid_argument("reference::Network: a layer has no units");
    if (net.weights[t].size() != std::size_t(net.layers[t]) * net.layers[t + 1] ||
        net.biases[t].size() != std::size_t(net.layers[t + 1]))
      throw std::invalid_argument("reference::Network: tensor " + std::to_string(t) +
                                  " does not match layers");
  }
}

void check_input(const Network& net, const std::vector<double>& x) {
  if (x.size() != std::size_t(net.layers[0]))
    throw std::invalid_argument("reference: x has " + std::to_string(x.size()) +
                                " entries, layers[0] = " + std::to_string(net.layers[0]));
}

void check_label(const Network& net, int label) {
  if (label < 0 || label >= net.layers.back())
    throw std::invalid_argument("reference: label " + std::to_string(label) + " out of range");
}

void check_batch(const Network& net, const std::vector<std::vector<double>>& xs,
                 const std::vector<int>& labels) {
  if (xs.empty() || xs.size() != labels.size())
    throw std::invalid_argument("reference: xs and labels must be non-empty and equally long");
  for (std::size_t n = 0; n < xs.size(); ++n) {
    check_input(net, xs[n]);
    check_label(net, labels[n]);
  }
}

// y = one-hot(label) over the last layer's units.
double target(int label, int unit) { return unit == label ? 1.0 : 0.0; }

// p = softmax(s_top W_out + b_out) of the cross-entropy read-out, (classes).
std::vector<double> readout_probabilities(const Network& net, const States& states) {
  const int top = state_layer_count(net) - 1;  // index into states
  const int width = net.layers[top + 1], classes = net.layers.back();
  const std::vector<double>& w = net.weights[top + 1];
  const std::vector<double>& b = net.biases[top + 1];
  std::vector<double> logits(classes);
  for (int c = 0; c < classes; ++c) {
    double v = b[c];
    for (int k = 0; k < width; ++k) v += states[top][k] * w[std::size_t(k) * classes + c];
    logits[c] = v;
  }
  double max_logit = logits[0];
  for (int c = 1; c < classes; ++c) max_logit = std::max(max_logit, logits[c]);
  double total = 0.0;
  for (int c = 0; c < classes; ++c) total += std::exp(logits[c] - max_logit);
  std::vector<double> p(classes);
  for (int c = 0; c < classes; ++c) p[c] = std::exp(logits[c] - max_logit) / total;
  return p;
}

// dC/ds on the top state layer, (layers[top + 1]): MSE s_L - y, CE W_out (p - y).
std::vector<double> cost_state_gradient(const Network& net, const States& states, int label) {
  const int top = state_layer_count(net) - 1;
  const int width = net.layers[top + 1];
  std::vector<double> g(width, 0.0);
  if (net.cost == CostKind::mse) {
    for (int j = 0; j < width; ++j) g[j] = states[top][j] - target(label, j);
  } else {
    const int classes = net.layers.back();
    const std::vector<double> p = readout_probabilities(net, states);
    const std::vector<double>& w = net.weights[top + 1];
    for (int k = 0; k < width; ++k)
      for (int c = 0; c < classes; ++c)
        g[k] += w[std::size_t(k) * classes + c] * (p[c] - target(label, c));
  }
  return g;
}

// The field of F = E + beta C: the free field, plus -beta dC/ds on the top layer.
States nudged_fields(const Network& net, const std::vector<double>& x, const States& states,
                     double beta, int label) {
  States h = fields(net, x, states);
  if (beta != 0.0) {
    const std::vector<double> g = cost_state_gradient(net, states, label);
    std::vector<double>& top = h.back();
    for (std::size_t j = 0; j < top.size(); ++j) top[j] -= beta * g[j];
  }
  return h;
}

// Sweeps s <- (1 - damping) s + damping clip(h_beta(s)) synchronously (every field
// from the previous sweep's states, as the engine's fixed-point integrator), at
// most `sweeps` times. Returns true once the fixed-point residual
// max |clip(h_beta(s)) - s| falls below kTolerance; throws on NaN.
bool sweep_until_converged(const Network& net, const std::vector<double>& x, int label,
                           double beta, double damping, int sweeps, States& s) {
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    const States h = nudged_fields(net, x, s, beta, label);
    double residual = 0.0;
    for (std::size_t k = 0; k < s.size(); ++k)
      for (std::size_t j = 0; j < s[k].size(); ++j) {
        const double target_state = rho(net, h[k][j]);
        const double d = std::fabs(target_state - s[k][j]);
        if (!(d <= residual)) residual = d;  // NaN-propagating max
        s[k][j] += damping * (target_state - s[k][j]);
      }
    if (std::isnan(residual)) throw std::runtime_error("reference::relax: the state became NaN");
    if (residual < kTolerance) return true;
  }
  return false;
}

// Exactly `sweeps` undamped sweeps from `start` (stopping early once converged):
// the truncated relaxation an engine with a fixed step count performs.
States relax_truncated(const Network& net, const std::vector<double>& x, int label, double beta,
                       States start, int sweeps) {
  sweep_until_converged(net, x, label, beta, 1.0, sweeps, start);
  return start;
}

// The fixed point of F = E + beta C from `start`. The plain synchronous map comes
// first. Where it does not converge -- e.g. the MSE pull -beta (s_L - y) uses the
// previous s_L, so it adds an eigenvalue near -beta to the map's Jacobian and the
// undamped map oscillates for beta around 0.5 -- damped maps (same fixed points,
// Jacobian eigenvalues lambda -> 1 - a + a lambda) are tried. Throws if none
// converges. A damped map can also settle on a saddle of F that the plain map
// circles around (e.g. from a start symmetric under a swap of units); callers that
// need a minimum check it, as the tests do with the second-order condition.
States relax_converged(const Network& net, const std::vector<double>& x, int label, double beta,
                       const States& start) {
  for (double damping : {1.0, 0.5, 0.25, 0.125}) {
    States s = start;
    if (sweep_until_converged(net, x, label, beta, damping, kMaxSweeps, s)) return s;
  }
  throw std::runtime_error("reference::relax: the fixed-point map did not converge in " +
                           std::to_string(kMaxSweeps) + " sweeps, undamped or damped (beta = " +
                           std::to_string(beta) + "); scale the weights down");
}

States reset_state(const Network& net) {
  States s;
  for (int k = 0; k < state_layer_count(net); ++k) s.emplace_back(net.layers[k + 1], 0.0);
  return s;
}

// The read-out part of dC/dtheta (zero elsewhere) at `states`, added with `scale`.
void add_readout_cost_gradient(const Network& net, const States& states, int label, double scale,
                               Gradient& g) {
  if (net.cost != CostKind::cross_entropy) return;
  const int top = state_layer_count(net) - 1;
  const int width = net.layers[top + 1], classes = net.layers.back();
  const std::vector<double> p = readout_probabilities(net, states);
  for (int c = 0; c < classes; ++c) {
    const double r = p[c] - target(label, c);
    g.biases[top + 1][c] += scale * r;
    for (int k = 0; k < width; ++k)
      g.weights[top + 1][std::size_t(k) * classes + c] += scale * states[top][k] * r;
  }
}

// Adds scale * g into acc, tensor by tensor.
void accumulate(Gradient& acc, const Gradient& g, double scale) {
  for (std::size_t t = 0; t < acc.weights.size(); ++t) {
    for (std::size_t i = 0; i < acc.weights[t].size(); ++i) acc.weights[t][i] += scale * g.weights[t][i];
    for (std::size_t i = 0; i < acc.biases[t].size(); ++i) acc.biases[t][i] += scale * g.biases[t][i];
  }
}

std::vector<double> solve_dense(std::vector<double> a, std::vector<double> b, int n) {
  return reference_linear::solve_dense(std::move(a), std::move(b), n, 1e-300,
                                       "reference::implicit_gradient: singular Jacobian I - K_AA");
}

// The implicit gradient of one sample's C, added into g with `scale`.
void add_sample_implicit_gradient(const Network& net, const std::vector<double>& x, int label,
                                  double scale, Gradient& g) {
  const int states_count = state_layer_count(net);
  const States s = free_fixed_point(net, x);
  const States h = fields(net, x, s);

  // Active set: index of each active unit in the reduced system, or -1 if pinned.
  std::vector<std::vector<int>> index(states_count);
  int n = 0;
  for (int k = 0; k < states_count; ++k) {
    index[k].assign(s[k].size(), -1);
    for (std::size_t j = 0; j < s[k].size(); ++j)
      if (h[k][j] > 0.0 && h[k][j] < net.activation_max) index[k][j] = n++;
  }

  // mu (per state layer, zero on pinned units) from J^T mu = dC/ds_A.
  States mu;
  for (int k = 0; k < states_count; ++k) mu.emplace_back(s[k].size(), 0.0);
  if (n > 0) {
    // J = I - K_AA; K couples consecutive state layers k, k+1 through weights[k + 1]
    // (states[k] is layer k + 1, states[k + 1] is layer k + 2).
    std::vector<double> jacobian(std::size_t(n) * n, 0.0);
    for (int a = 0; a < n; ++a) jacobian[std::size_t(a) * n + a] = 1.0;
    for (int k = 0; k + 1 < states_count; ++k) {
      const int lower = net.layers[k + 1], upper = net.layers[k + 2];
      const std::vector<double>& w = net.weights[k + 1];
      for (int i = 0; i < lower; ++i) {
        const int a = index[k][i];
        if (a < 0) continue;
        for (int j = 0; j < upper; ++j) {
          const int b = index[k + 1][j];
          if (b < 0) continue;
          jacobian[std::size_t(a) * n + b] -= w[std::size_t(i) * upper + j];
          jacobian[std::size_t(b) * n + a] -= w[std::size_t(i) * upper + j];
        }
      }
    }
    std::vector<double> jacobian_t(std::size_t(n) * n);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) jacobian_t[std::size_t(c) * n + r] = jacobian[std::size_t(r) * n + c];

    std::vector<double> rhs(n, 0.0);
    const std::vector<double> dc = cost_state_gradient(net, s, label);
    for (std::size_t j = 0; j < dc.size(); ++j)
      if (index.back()[j] >= 0) rhs[index.back()[j]] = dc[j];
    const std::vector<double> reduced = solve_dense(jacobian_t, rhs, n);
    for (int k = 0; k < states_count; ++k)
      for (std::size_t j = 0; j < s[k].size(); ++j)
        if (index[k][j] >= 0) mu[k][j] = reduced[index[k][j]];
  }

  // mu^T dh_A/dtheta for the energy tensors t = 0..states_count-1 (W_{t+1} couples
  // layer t, the input when t = 0, to layer t + 1 = states[t]).
  for (int t = 0; t < states_count; ++t) {
    const int lower = net.layers[t], upper = net.layers[t + 1];
    const std::vector<double>& below = t == 0 ? x : s[t - 1];
    for (int j = 0; j < upper; ++j) g.biases[t][j] += scale * mu[t][j];
    for (int i = 0; i < lower; ++i)
      for (int j = 0; j < upper; ++j) {
        double d = mu[t][j] * below[i];
        if (t > 0) d += mu[t - 1][i] * s[t][j];
        g.weights[t][std::size_t(i) * upper + j] += scale * d;
      }
  }
  // The direct term: only the cross-entropy read-out depends on theta directly.
  add_readout_cost_gradient(net, s, label, scale, g);
}

// Sums over one tensor (t >= 0) or all tensors (t = -1).
template <class Fn>
void for_each_pair(const Gradient& a, const Gradient& b, int tensor, Fn&& fn) {
  if (a.weights.size() != b.weights.size() || a.biases.size() != b.biases.size())
    throw std::invalid_argument("reference: gradients of different shapes");
  const int count = static_cast<int>(a.weights.size());
  if (tensor < -1 || tensor >= count) throw std::invalid_argument("reference: bad tensor index");
  for (int t = 0; t < count; ++t) {
    if (tensor != -1 && t != tensor) continue;
    if (a.weights[t].size() != b.weights[t].size() || a.biases[t].size() != b.biases[t].size())
      throw std::invalid_argument("reference: gradients of different shapes");
    for (std::size_t i = 0; i < a.weights[t].size(); ++i) fn(a.weights[t][i], b.weights[t][i]);
    for (std::size_t i = 0; i < a.biases[t].size(); ++i) fn(a.biases[t][i], b.biases[t][i]);
  }
}

}  // namespace

int state_layer_count(const Network& net) {
  return weight_tensor_count(net) - (net.cost == CostKind::cross_entropy ? 1 : 0);
}

Gradient zero_gradient(const Network& net) {
  Gradient g;
  for (int t = 0; t < weight_tensor_count(net); ++t) {
    g.weights.emplace_back(std::size_t(net.layers[t]) * net.layers[t + 1], 0.0);
    g.biases.emplace_back(net.layers[t + 1], 0.0);
  }
  return g;
}

std::vector<std::vector<double>> free_fixed_point(const Network& net,
                                                  const std::vector<double>& x) {
  validate(net);
  check_input(net, x);
  return relax_converged(net, x, 0, 0.0, reset_state(net));
}

std::vector<std::vector<double>> nudged_fixed_point(const Network& net,
                                                    const std::vector<double>& x, int label,
                                                    double beta,
                                                    const std::vector<std::vector<double>>& start) {
  validate(net);
  check_input(net, x);
  check_label(net, label);
  const States reset = reset_state(net);
  if (start.size() != reset.size())
    throw std::invalid_argument("reference::nudged_fixed_point: wrong number of state layers");
  for (std::size_t k = 0; k < start.size(); ++k)
    if (start[k].size() != reset[k].size())
      throw std::invalid_argument("reference::nudged_fixed_point: a start layer has the wrong size");
  return relax_converged(net, x, label, beta, start);
}

std::vector<std::vector<double>> fields(const Network& net, const std::vector<double>& x,
                                        const std::vector<std::vector<double>>& states) {
  const int states_count = state_layer_count(net);
  if (static_cast<int>(states.size()) != states_count)
    throw std::invalid_argument("reference::fields: wrong number of state layers");
  States h(states_count);
  for (int k = 0; k < states_count; ++k) {
    // states[k] is layer k + 1; below it is weights[k] from layer k (x when k = 0),
    // above it weights[k + 1] to layer k + 2 (when that is a state layer).
    const int lower = net.layers[k], units = net.layers[k + 1];
    h[k].assign(units, 0.0);
    for (int j = 0; j < units; ++j) {
      double v = net.biases[k][j];
      for (int i = 0; i < lower; ++i) {
        const double rho_i = k == 0 ? x[i] : rho(net, states[k - 1][i]);  // x enters as is
        v += rho_i * net.weights[k][std::size_t(i) * units + j];
      }
      if (k + 1 < states_count) {
        const int upper = net.layers[k + 2];
        for (int m = 0; m < upper; ++m)
          v += net.weights[k + 1][std::size_t(j) * upper + m] * rho(net, states[k + 1][m]);
      }
      h[k][j] = v;
    }
  }
  return h;
}

double energy(const Network& net, const std::vector<double>& x,
              const std::vector<std::vector<double>>& states) {
  validate(net);
  check_input(net, x);
  const int states_count = state_layer_count(net);
  if (static_cast<int>(states.size()) != states_count)
    throw std::invalid_argument("reference::energy: wrong number of state layers");
  double e = 0.0;
  for (int k = 0; k < states_count; ++k) {
    const int lower = net.layers[k], units = net.layers[k + 1];
    for (int j = 0; j < units; ++j) {
      const double sj = states[k][j], rho_j = rho(net, sj);
      e += 0.5 * sj * sj - net.biases[k][j] * rho_j;
      for (int i = 0; i < lower; ++i) {
        const double rho_i = k == 0 ? x[i] : rho(net, states[k - 1][i]);
        e -= rho_i * net.weights[k][std::size_t(i) * units + j] * rho_j;
      }
    }
  }
  return e;
}

Gradient energy_gradient(const Network& net, const std::vector<double>& x,
                         const std::vector<std::vector<double>>& states) {
  validate(net);
  check_input(net, x);
  Gradient g = zero_gradient(net);
  const int states_count = state_layer_count(net);
  for (int k = 0; k < states_count; ++k) {
    const int lower = net.layers[k], units = net.layers[k + 1];
    for (int j = 0; j < units; ++j) {
      const double rho_j = rho(net, states[k][j]);
      g.biases[k][j] = -rho_j;
      for (int i = 0; i < lower; ++i) {
        const double rho_i = k == 0 ? x[i] : rho(net, states[k - 1][i]);
        g.weights[k][std::size_t(i) * units + j] = -rho_i * rho_j;
      }
    }
  }
  return g;
}

double cost(const Network& net, const std::vector<std::vector<double>>& states, int label) {
  validate(net);
  check_label(net, label);
  const int top = state_layer_count(net) - 1;
  if (net.cost == CostKind::mse) {
    double c = 0.0;
    for (int j = 0; j < net.layers[top + 1]; ++j) {
      const double d = states[top][j] - target(label, j);
      c += 0.5 * d * d;
    }
    return c;
  }
  return -std::log(readout_probabilities(net, states)[label]);
}

double loss(const Network& net, const std::vector<double>& x, int label) {
  return cost(net, free_fixed_point(net, x), label);
}

double batch_loss(const Network& net, const std::vector<std::vector<double>>& xs,
                  const std::vector<int>& labels) {
  validate(net);
  check_batch(net, xs, labels);
  double total = 0.0;
  for (std::size_t n = 0; n < xs.size(); ++n) total += loss(net, xs[n], labels[n]);
  return total / static_cast<double>(xs.size());
}

Gradient implicit_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                           const std::vector<int>& labels) {
  validate(net);
  check_batch(net, xs, labels);
  Gradient g = zero_gradient(net);
  const double scale = 1.0 / static_cast<double>(xs.size());
  for (std::size_t n = 0; n < xs.size(); ++n)
    add_sample_implicit_gradient(net, xs[n], labels[n], scale, g);
  return g;
}

Gradient finite_difference_gradient(const Network& net,
                                    const std::vector<std::vector<double>>& xs,
                                    const std::vector<int>& labels, double eps) {
  validate(net);
  check_batch(net, xs, labels);
  Gradient g = zero_gradient(net);
  Network probe = net;
  auto central = [&](double& parameter) {
    const double saved = parameter;
    parameter = saved + eps;
    const double plus = batch_loss(probe, xs, labels);
    parameter = saved - eps;
    const double minus = batch_loss(probe, xs, labels);
    parameter = saved;
    return (plus - minus) / (2.0 * eps);
  };
  for (std::size_t t = 0; t < probe.weights.size(); ++t) {
    for (std::size_t i = 0; i < probe.weights[t].size(); ++i) g.weights[t][i] = central(probe.weights[t][i]);
    for (std::size_t i = 0; i < probe.biases[t].size(); ++i) g.biases[t][i] = central(probe.biases[t][i]);
  }
  return g;
}

Gradient ep_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                     const std::vector<int>& labels, double beta, bool symmetric, int steps) {
  validate(net);
  check_batch(net, xs, labels);
  if (beta == 0.0) throw std::invalid_argument("reference::ep_gradient: beta must be non-zero");
  Gradient g = zero_gradient(net);
  const double batch = static_cast<double>(xs.size());
  for (std::size_t n = 0; n < xs.size(); ++n) {
    const std::vector<double>& x = xs[n];
    const int label = labels[n];
    const States free_state = free_fixed_point(net, x);
    const double beta_a = beta, beta_b = symmetric ? -beta : 0.0;
    auto nudged = [&](double b) {
      return steps > 0 ? relax_truncated(net, x, label, b, free_state, steps)
                       : relax_converged(net, x, label, b, free_state);
    };
    const States state_a = nudged(beta_a);
    const States state_b = symmetric ? nudged(beta_b) : free_state;
    const double c = 1.0 / ((beta_a - beta_b) * batch);
    accumulate(g, energy_gradient(net, x, state_a), c);
    accumulate(g, energy_gradient(net, x, state_b), -c);
    add_readout_cost_gradient(net, state_a, label, c * beta_a, g);
    add_readout_cost_gradient(net, state_b, label, -c * beta_b, g);
  }
  return g;
}

double cosine_similarity(const Gradient& a, const Gradient& b, int tensor) {
  double dot = 0.0, aa = 0.0, bb = 0.0;
  for_each_pair(a, b, tensor, [&](double u, double v) {
    dot += u * v;
    aa += u * u;
    bb += v * v;
  });
  if (aa == 0.0 && bb == 0.0) return 1.0;
  if (aa == 0.0 || bb == 0.0) return 0.0;
  return dot / std::sqrt(aa * bb);
}

double relative_error(const Gradient& a, const Gradient& b, int tensor) {
  double diff = 0.0, bb = 0.0;
  for_each_pair(a, b, tensor, [&](double u, double v) {
    diff += (u - v) * (u - v);
    bb += v * v;
  });
  if (bb == 0.0) return diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / bb);
}

}  // namespace reference
}  // namespace eqprop
