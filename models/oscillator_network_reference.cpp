// Naive double-precision reference of the phase-oscillator network; see the header.
//
// Exact gradient by implicit differentiation (Scellier & Bengio 2017, §2-3; the
// implicit function theorem at the free fixed point). At a free fixed point phi*
// (a strict local minimum of V over the state phases, the input phases clamped),
//   dV/dphi (phi*(theta), theta) = 0  =>  H dphi*/dtheta = -d2V/dphi dtheta,
// with H = d2V/dphi2 positive definite there. For the loss L = C(phi*),
//   dL/dtheta = dC/dphi dphi*/dtheta = -mu^T d2V/dphi dtheta,   H mu = (dC/dphi)^T.
// The mixed derivatives: for a coupling term -J_ab cos(phi_a - phi_b),
//   dV/dJ_ab = -cos(phi_a - phi_b), d/dphi_a of it = sin(phi_a - phi_b) = -d/dphi_b of it,
// so dL/dJ_ab = -(mu_a - mu_b) sin(phi_a - phi_b) (mu = 0 on the clamped input); for
// a bias term -h_a cos phi_a, dV/dh_a = -cos phi_a, so dL/dh_a = -mu_a sin phi_a.
// EP (Scellier & Bengio 2017, Theorem 1) gives the same gradient as
// d/dbeta dF/dtheta(phi^beta) at beta = 0: the engine's symmetric estimate is its
// central difference.
//
// The Hessian, term by term: -J cos(phi_a - phi_b) adds J cos(phi_a - phi_b) to
// H_aa and H_bb and -J cos(phi_a - phi_b) to H_ab = H_ba; -h cos phi adds h cos phi,
// -(S/2) cos 2 phi adds 2 S cos 2 phi to the diagonal; beta C on an output adds
// beta [sin^2 phi / 4 - (u - y) cos phi / 2].
#include "models/oscillator_network_reference.h"

#include "models/dense_linear_solve.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace eqprop {
namespace oscillator_reference {
namespace {

int state_layer_count(const Network& net) { return static_cast<int>(net.layers.size()) - 1; }

void validate(const Network& net, const std::vector<double>& x) {
  const int tensors = state_layer_count(net);
  if (tensors < 1) throw std::invalid_argument("oscillator_reference: needs at least two layers");
  if (static_cast<int>(net.weights.size()) != tensors || static_cast<int>(net.biases.size()) != tensors)
    throw std::invalid_argument("oscillator_reference: weights/biases count != layers.size() - 1");
  for (int t = 0; t < tensors; ++t)
    if (net.weights[t].size() != std::size_t(net.layers[t]) * net.layers[t + 1] ||
        net.biases[t].size() != std::size_t(net.layers[t + 1]))
      throw std::invalid_argument("oscillator_reference: tensor " + std::to_string(t) + " does not match layers");
  if (x.size() != std::size_t(net.layers[0]))
    throw std::invalid_argument("oscillator_reference: x has " + std::to_string(x.size()) + " entries, layers[0] = " +
                                std::to_string(net.layers[0]));
}

// The phases of net layer l: the clamped input for l = 0, else phases[l - 1].
std::vector<double> layer_phases(const Network& net, const std::vector<double>& x, const Phases& phases, int l) {
  if (l > 0) return phases[l - 1];
  std::vector<double> input(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) input[i] = net.input_scale * x[i];
  return input;
}

double readout(double phase) { return 0.5 * (1.0 + std::cos(phase)); }
double target(int label, int unit) { return unit == label ? 1.0 : 0.0; }

// Position of state layer k's first oscillator in the flattened state.
std::vector<int> offsets(const Network& net) {
  std::vector<int> result{0};
  for (int k = 0; k < state_layer_count(net); ++k) result.push_back(result.back() + net.layers[k + 1]);
  return result;
}

std::vector<double> flatten(const Phases& phases) {
  std::vector<double> flat;
  for (const auto& layer : phases) flat.insert(flat.end(), layer.begin(), layer.end());
  return flat;
}

double max_abs(const Phases& phases) {
  double largest = 0.0;
  for (const auto& layer : phases)
    for (double v : layer) largest = (std::fabs(v) > largest || v != v) ? std::fabs(v) : largest;
  return largest;
}

// dF/dphi = dV/dphi + beta dC/dphi.
Phases total_gradient(const Network& net, const std::vector<double>& x, int label, double beta, const Phases& phases) {
  Phases g = energy_gradient(net, x, phases);
  if (beta != 0.0) {
    const Phases c = cost_gradient(net, phases, label);
    for (std::size_t k = 0; k < g.size(); ++k)
      for (std::size_t j = 0; j < g[k].size(); ++j) g[k][j] += beta * c[k][j];
  }
  return g;
}

std::vector<double> solve(std::vector<double> a, std::vector<double> b, int n) {
  return reference_linear::solve_dense(std::move(a), std::move(b), n, 0.0, "oscillator_reference: singular Hessian");
}

constexpr double kFlowTolerance = 1e-9;
constexpr double kNewtonTolerance = 1e-13;
constexpr int kMaxFlowSteps = 2000000;
constexpr int kMaxNewtonSteps = 50;

// Newton steps on dF/dphi = 0 from `phases`; throws unless max |dF/dphi| < kNewtonTolerance.
Phases newton(const Network& net, const std::vector<double>& x, int label, double beta, Phases phases) {
  const int n = offsets(net).back();
  for (int iteration = 0; iteration < kMaxNewtonSteps; ++iteration) {
    const Phases g = total_gradient(net, x, label, beta, phases);
    if (max_abs(g) < kNewtonTolerance) return phases;
    const std::vector<double> step = solve(hessian(net, x, label, beta, phases), flatten(g), n);
    int u = 0;
    for (auto& layer : phases)
      for (double& phase : layer) phase -= step[u++];
  }
  throw std::runtime_error("oscillator_reference: Newton did not converge to a stationary point");
}

}  // namespace

Phases reset_phases(const Network& net) {
  Phases phases;
  for (int k = 0; k < state_layer_count(net); ++k)
    phases.emplace_back(net.layers[k + 1], 0.5 * 3.14159265358979323846);
  return phases;
}

double energy(const Network& net, const std::vector<double>& x, const Phases& phases) {
  validate(net, x);
  double v = 0.0;
  for (int l = 0; l < state_layer_count(net); ++l) {
    const std::vector<double> lower = layer_phases(net, x, phases, l);
    const std::vector<double>& upper = phases[l];
    for (int i = 0; i < net.layers[l]; ++i)
      for (int j = 0; j < net.layers[l + 1]; ++j)
        v -= net.weights[l][std::size_t(i) * net.layers[l + 1] + j] * std::cos(lower[i] - upper[j]);
    for (int j = 0; j < net.layers[l + 1]; ++j)
      v -= net.biases[l][j] * std::cos(upper[j]) + 0.5 * net.shil * std::cos(2.0 * upper[j]);
  }
  return v;
}

Phases energy_gradient(const Network& net, const std::vector<double>& x, const Phases& phases) {
  validate(net, x);
  Phases g;
  for (const auto& layer : phases) g.emplace_back(layer.size(), 0.0);
  for (int l = 0; l < state_layer_count(net); ++l) {
    const std::vector<double> lower = layer_phases(net, x, phases, l);
    const std::vector<double>& upper = phases[l];
    for (int i = 0; i < net.layers[l]; ++i)
      for (int j = 0; j < net.layers[l + 1]; ++j) {
        const double w = net.weights[l][std::size_t(i) * net.layers[l + 1] + j];
        g[l][j] += w * std::sin(upper[j] - lower[i]);
        if (l > 0) g[l - 1][i] += w * std::sin(lower[i] - upper[j]);
      }
    for (int j = 0; j < net.layers[l + 1]; ++j)
      g[l][j] += net.biases[l][j] * std::sin(upper[j]) + net.shil * std::sin(2.0 * upper[j]);
  }
  return g;
}

double cost(const Network& net, const Phases& phases, int label) {
  double c = 0.0;
  const std::vector<double>& out = phases.back();
  for (int k = 0; k < net.layers.back(); ++k) c += 0.5 * std::pow(readout(out[k]) - target(label, k), 2);
  return c;
}

Phases cost_gradient(const Network& net, const Phases& phases, int label) {
  Phases g;
  for (const auto& layer : phases) g.emplace_back(layer.size(), 0.0);
  const std::vector<double>& out = phases.back();
  for (int k = 0; k < net.layers.back(); ++k)
    g.back()[k] = (readout(out[k]) - target(label, k)) * (-0.5 * std::sin(out[k]));
  return g;
}

std::vector<double> hessian(const Network& net, const std::vector<double>& x, int label, double beta,
                            const Phases& phases) {
  validate(net, x);
  const std::vector<int> offset = offsets(net);
  const int n = offset.back();
  std::vector<double> h(std::size_t(n) * n, 0.0);
  auto at = [&](int a, int b) -> double& { return h[std::size_t(a) * n + b]; };
  for (int l = 0; l < state_layer_count(net); ++l) {
    const std::vector<double> lower = layer_phases(net, x, phases, l);
    const std::vector<double>& upper = phases[l];
    for (int i = 0; i < net.layers[l]; ++i)
      for (int j = 0; j < net.layers[l + 1]; ++j) {
        const double term = net.weights[l][std::size_t(i) * net.layers[l + 1] + j] * std::cos(lower[i] - upper[j]);
        const int b = offset[l] + j;
        at(b, b) += term;
        if (l > 0) {
          const int a = offset[l - 1] + i;
          at(a, a) += term;
          at(a, b) -= term;
          at(b, a) -= term;
        }
      }
    for (int j = 0; j < net.layers[l + 1]; ++j) {
      const int b = offset[l] + j;
      at(b, b) += net.biases[l][j] * std::cos(upper[j]) + 2.0 * net.shil * std::cos(2.0 * upper[j]);
    }
  }
  if (beta != 0.0) {
    const int top = state_layer_count(net) - 1;
    for (int k = 0; k < net.layers.back(); ++k) {
      const double phase = phases[top][k];
      const int b = offset[top] + k;
      at(b, b) += beta * (0.25 * std::sin(phase) * std::sin(phase) -
                          0.5 * (readout(phase) - target(label, k)) * std::cos(phase));
    }
  }
  return h;
}

bool positive_definite(std::vector<double> a, int n) {
  // Cholesky: succeeds exactly when the matrix is positive definite.
  for (int j = 0; j < n; ++j) {
    double d = a[std::size_t(j) * n + j];
    for (int k = 0; k < j; ++k) d -= a[std::size_t(j) * n + k] * a[std::size_t(j) * n + k];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    a[std::size_t(j) * n + j] = d;
    for (int i = j + 1; i < n; ++i) {
      double v = a[std::size_t(i) * n + j];
      for (int k = 0; k < j; ++k) v -= a[std::size_t(i) * n + k] * a[std::size_t(j) * n + k];
      a[std::size_t(i) * n + j] = v / d;
    }
  }
  return true;
}

double smallest_eigenvalue(const std::vector<double>& matrix, int n) {
  double bound = 0.0;  // Gershgorin: every eigenvalue lies in [-bound, bound]
  for (int i = 0; i < n; ++i) {
    double row = 0.0;
    for (int j = 0; j < n; ++j) row += std::fabs(matrix[std::size_t(i) * n + j]);
    bound = std::max(bound, row);
  }
  double lo = -bound - 1.0, hi = bound + 1.0;  // matrix - lo I is positive definite, matrix - hi I is not
  auto shifted = [&](double lambda) {
    std::vector<double> m = matrix;
    for (int i = 0; i < n; ++i) m[std::size_t(i) * n + i] -= lambda;
    return m;
  };
  while (hi - lo > 1e-12 * (bound + 1.0)) {
    const double mid = 0.5 * (lo + hi);
    (positive_definite(shifted(mid), n) ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Phases relax(const Network& net, const std::vector<double>& x, int label, double beta, const Phases& start,
             double dt) {
  Phases phases = start;
  for (int step = 0; step < kMaxFlowSteps; ++step) {
    const Phases g = total_gradient(net, x, label, beta, phases);
    const double residual = max_abs(g);
    if (std::isnan(residual)) throw std::runtime_error("oscillator_reference: the phases became NaN");
    if (residual < kFlowTolerance) return newton(net, x, label, beta, phases);
    for (std::size_t k = 0; k < phases.size(); ++k)
      for (std::size_t j = 0; j < phases[k].size(); ++j) phases[k][j] -= dt * g[k][j];
  }
  throw std::runtime_error("oscillator_reference: gradient flow did not converge");
}

Phases free_fixed_point(const Network& net, const std::vector<double>& x, double dt) {
  return relax(net, x, 0, 0.0, reset_phases(net), dt);
}

double nudge_nonlinearity(const Network& net, const std::vector<double>& x, int label, double beta, double dt) {
  const Phases free = free_fixed_point(net, x, dt);
  const int n = offsets(net).back();
  const std::vector<double> mu = solve(hessian(net, x, label, 0.0, free), flatten(cost_gradient(net, free, label)), n);
  double mu_max = 0.0, deviation = 0.0;
  for (double m : mu) mu_max = std::max(mu_max, std::fabs(m));
  for (double sign : {1.0, -1.0}) {
    const std::vector<double> nudged = flatten(relax(net, x, label, sign * beta, free, dt));
    const std::vector<double> start = flatten(free);
    for (int u = 0; u < n; ++u)
      deviation = std::max(deviation, std::fabs(nudged[u] - (start[u] - sign * beta * mu[u])));
  }
  return mu_max > 0.0 ? deviation / (beta * mu_max) : 0.0;
}

Gradient energy_parameter_gradient(const Network& net, const std::vector<double>& x, const Phases& phases) {
  validate(net, x);
  Gradient g;
  for (int l = 0; l < state_layer_count(net); ++l) {
    const std::vector<double> lower = layer_phases(net, x, phases, l);
    const std::vector<double>& upper = phases[l];
    g.weights.emplace_back(net.weights[l].size());
    g.biases.emplace_back(net.biases[l].size());
    for (int i = 0; i < net.layers[l]; ++i)
      for (int j = 0; j < net.layers[l + 1]; ++j)
        g.weights[l][std::size_t(i) * net.layers[l + 1] + j] = -std::cos(lower[i] - upper[j]);
    for (int j = 0; j < net.layers[l + 1]; ++j) g.biases[l][j] = -std::cos(upper[j]);
  }
  return g;
}

double batch_loss(const Network& net, const std::vector<std::vector<double>>& xs, const std::vector<int>& labels) {
  double total = 0.0;
  for (std::size_t s = 0; s < xs.size(); ++s) total += cost(net, free_fixed_point(net, xs[s]), labels[s]);
  return total / static_cast<double>(xs.size());
}

Gradient implicit_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                           const std::vector<int>& labels, double dt) {
  if (xs.empty() || xs.size() != labels.size())
    throw std::invalid_argument("oscillator_reference: xs and labels must be non-empty and equally long");
  const std::vector<int> offset = offsets(net);
  const int n = offset.back();
  Gradient g;
  for (int l = 0; l < state_layer_count(net); ++l) {
    g.weights.emplace_back(net.weights[l].size(), 0.0);
    g.biases.emplace_back(net.biases[l].size(), 0.0);
  }
  const double scale = 1.0 / static_cast<double>(xs.size());
  for (std::size_t s = 0; s < xs.size(); ++s) {
    const Phases phases = free_fixed_point(net, xs[s], dt);
    const std::vector<double> mu =
        solve(hessian(net, xs[s], labels[s], 0.0, phases), flatten(cost_gradient(net, phases, labels[s])), n);
    for (int l = 0; l < state_layer_count(net); ++l) {
      const std::vector<double> lower = layer_phases(net, xs[s], phases, l);
      const std::vector<double>& upper = phases[l];
      for (int i = 0; i < net.layers[l]; ++i)
        for (int j = 0; j < net.layers[l + 1]; ++j) {
          const double mu_lower = l > 0 ? mu[offset[l - 1] + i] : 0.0, mu_upper = mu[offset[l] + j];
          g.weights[l][std::size_t(i) * net.layers[l + 1] + j] -=
              scale * (mu_lower - mu_upper) * std::sin(lower[i] - upper[j]);
        }
      for (int j = 0; j < net.layers[l + 1]; ++j) g.biases[l][j] -= scale * mu[offset[l] + j] * std::sin(upper[j]);
    }
  }
  return g;
}

Gradient finite_difference_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                                    const std::vector<int>& labels, double eps) {
  std::vector<Phases> fixed_points;
  for (const auto& x : xs) fixed_points.push_back(free_fixed_point(net, x));
  auto loss_at = [&](const Network& perturbed) {
    double total = 0.0;
    for (std::size_t s = 0; s < xs.size(); ++s)
      total += cost(perturbed, newton(perturbed, xs[s], labels[s], 0.0, fixed_points[s]), labels[s]);
    return total / static_cast<double>(xs.size());
  };
  Gradient g;
  Network work = net;
  auto central = [&](double& parameter) {
    const double saved = parameter;
    parameter = saved + eps;
    const double up = loss_at(work);
    parameter = saved - eps;
    const double down = loss_at(work);
    parameter = saved;
    return (up - down) / (2.0 * eps);
  };
  for (int l = 0; l < state_layer_count(net); ++l) {
    g.weights.emplace_back(net.weights[l].size());
    g.biases.emplace_back(net.biases[l].size());
    for (std::size_t i = 0; i < net.weights[l].size(); ++i) g.weights[l][i] = central(work.weights[l][i]);
    for (std::size_t i = 0; i < net.biases[l].size(); ++i) g.biases[l][i] = central(work.biases[l][i]);
  }
  return g;
}

}  // namespace oscillator_reference
}  // namespace eqprop
