// Tests of the double-precision dense Hopfield reference (models/dense_hopfield_reference.h):
// the free fixed point is the projected stationary point (a strict local minimum of
// E on the box), the implicit-differentiation gradient equals central finite
// differences of the loss, and the naive EP estimate converges to it as beta -> 0,
// symmetric EP faster than one-sided (Scellier & Bengio 2017; Laborieux et al. 2021).
// Every comparison reports how much of its tolerance budget the worst case used.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/dense_hopfield_reference.h"
#include "tests/tolerance.h"

namespace {

using eqprop::CostKind;
namespace ref = eqprop::reference;
using States = std::vector<std::vector<double>>;

// U(0, 1) from the raw 64-bit stream: std::uniform_real_distribution is
// implementation-defined, this is the same on every standard library.
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// A small network, a batch of 3 inputs in [0, 1] and labels, drawn from one seed.
struct Instance {
  ref::Network net;
  std::vector<std::vector<double>> xs;  // (3, layers[0])
  std::vector<int> labels;              // (3)
  int pinned = 0;                       // state units at a bound, over the batch
  int units = 0;                        // state units, over the batch
  double margin = 0.0;                  // min over units of |h| and |h - 1|
  std::uint64_t seed = 0;
};

// Weights U(-0.5, 0.5), biases U(-0.3, 0.3): large enough that a third to a half of
// the units sit at a bound, small enough that the synchronous map converges.
constexpr double kWeightBound = 0.5;
constexpr double kBiasBound = 0.3;
constexpr int kBatch = 3;

Instance draw_instance(const std::vector<int>& layers, CostKind cost, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Instance in;
  in.seed = seed;
  in.net.layers = layers;
  in.net.cost = cost;
  for (std::size_t t = 0; t + 1 < layers.size(); ++t) {
    std::vector<double> w(std::size_t(layers[t]) * layers[t + 1]), b(layers[t + 1]);
    for (double& v : w) v = kWeightBound * (2.0 * uniform(rng) - 1.0);
    for (double& v : b) v = kBiasBound * (2.0 * uniform(rng) - 1.0);
    in.net.weights.push_back(w);
    in.net.biases.push_back(b);
  }
  for (int n = 0; n < kBatch; ++n) {
    std::vector<double> x(layers[0]);
    for (double& v : x) v = uniform(rng);
    in.xs.push_back(x);
    in.labels.push_back(static_cast<int>(rng() % std::uint64_t(layers.back())));
  }
  return in;
}

// The first instance from `seed` on whose fixed points converge, whose fields all
// stay at least `min_margin` from the bounds (L is not differentiable where a field
// sits on a bound), and whose exact gradient is non-zero in every tensor (so that
// relative errors mean something).
Instance find_instance(const std::vector<int>& layers, CostKind cost, std::uint64_t seed,
                       double min_margin) {
  for (std::uint64_t attempt = seed; attempt < seed + 200; ++attempt) {
    Instance in = draw_instance(layers, cost, attempt);
    in.margin = 1e300;
    try {
      for (const auto& x : in.xs) {
        const States s = ref::free_fixed_point(in.net, x);
        const States h = ref::fields(in.net, x, s);
        for (const auto& layer : h)
          for (double v : layer) {
            ++in.units;
            if (v <= 0.0 || v >= 1.0) ++in.pinned;
            in.margin = std::min({in.margin, std::fabs(v), std::fabs(v - 1.0)});
          }
      }
    } catch (const std::runtime_error&) {
      continue;  // did not converge: draw another
    }
    if (in.margin < min_margin) continue;
    const ref::Gradient g = ref::implicit_gradient(in.net, in.xs, in.labels);
    const ref::Gradient zero = ref::zero_gradient(in.net);
    bool all_nonzero = true;
    for (std::size_t t = 0; t < g.weights.size(); ++t)
      all_nonzero = all_nonzero && ref::relative_error(zero, g, static_cast<int>(t)) > 0.0;
    if (all_nonzero) return in;
  }
  FAIL("no usable instance in 200 seeds from " << seed);
  return {};
}

struct Config {
  std::vector<int> layers;
  CostKind cost;
  const char* name;
};

const std::vector<Config>& configs() {
  static const std::vector<Config> all = {
      {{6, 5, 4}, CostKind::mse, "6-5-4 mse"},
      {{6, 5, 4}, CostKind::cross_entropy, "6-5-4 cross-entropy"},
      {{8, 6, 5, 3}, CostKind::mse, "8-6-5-3 mse"},
      {{8, 6, 5, 3}, CostKind::cross_entropy, "8-6-5-3 cross-entropy"},
  };
  return all;
}

constexpr std::uint64_t kSeeds[] = {1, 1001, 2001};

// Cholesky of a dense symmetric (n, n) matrix; true if it is positive definite.
bool positive_definite(std::vector<double> a, int n) {
  for (int j = 0; j < n; ++j) {
    double d = a[std::size_t(j) * n + j];
    for (int k = 0; k < j; ++k) d -= a[std::size_t(j) * n + k] * a[std::size_t(j) * n + k];
    if (!(d > 0.0)) return false;
    const double l = std::sqrt(d);
    a[std::size_t(j) * n + j] = l;
    for (int i = j + 1; i < n; ++i) {
      double v = a[std::size_t(i) * n + j];
      for (int k = 0; k < j; ++k) v -= a[std::size_t(i) * n + k] * a[std::size_t(j) * n + k];
      a[std::size_t(i) * n + j] = v / l;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("reference: the free fixed point is a projected stationary point and a local minimum of E") {
  double worst_residual = 0.0;
  for (const Config& config : configs()) {
    CAPTURE(config.name);
    const Instance in = find_instance(config.layers, config.cost, 1, 1e-4);
    std::mt19937_64 rng(in.seed + 7);
    for (const auto& x : in.xs) {
      const States s = ref::free_fixed_point(in.net, x);
      const States h = ref::fields(in.net, x, s);
      // KKT of min E on [0,1]^n: s = clip(h), since dE/ds = s - h on the box.
      for (std::size_t k = 0; k < s.size(); ++k)
        for (std::size_t j = 0; j < s[k].size(); ++j)
          worst_residual =
              std::max(worst_residual, std::fabs(s[k][j] - std::clamp(h[k][j], 0.0, 1.0)));

      // Second-order condition on the active units: I - K_AA positive definite.
      std::vector<std::vector<int>> index(s.size());
      int n = 0;
      for (std::size_t k = 0; k < s.size(); ++k)
        for (double v : h[k]) index[k].push_back(v > 0.0 && v < 1.0 ? n++ : -1);
      std::vector<double> hessian(std::size_t(n) * n, 0.0);
      for (int a = 0; a < n; ++a) hessian[std::size_t(a) * n + a] = 1.0;
      for (std::size_t k = 0; k + 1 < s.size(); ++k) {
        const int upper = in.net.layers[k + 2];
        for (std::size_t i = 0; i < s[k].size(); ++i)
          for (int j = 0; j < upper; ++j) {
            const int a = index[k][i], b = index[k + 1][j];
            if (a < 0 || b < 0) continue;
            hessian[std::size_t(a) * n + b] -= in.net.weights[k + 1][i * upper + j];
            hessian[std::size_t(b) * n + a] -= in.net.weights[k + 1][i * upper + j];
          }
      }
      CHECK(positive_definite(hessian, n));

      // Hence E does not decrease under small feasible perturbations: the first-order
      // term is >= margin * |delta| on pinned units, the second order is O(delta^2).
      const double e0 = ref::energy(in.net, x, s);
      for (int trial = 0; trial < 50; ++trial) {
        States p = s;
        for (auto& layer : p)
          for (double& v : layer) v = std::clamp(v + 1e-6 * (2.0 * uniform(rng) - 1.0), 0.0, 1.0);
        CHECK(ref::energy(in.net, x, p) >= e0 - 1e-15);
      }
    }
  }
  eqprop::test::check_within("largest fixed-point residual", worst_residual, 1e-12);
  MESSAGE("fixed point: max |s - clip(h)| = " << worst_residual << " (" << worst_residual / 1e-12 * 100.0
                                              << "% of 1e-12)");
}

TEST_CASE("reference: energy_gradient is the derivative of energy") {
  for (const Config& config : configs()) {
    CAPTURE(config.name);
    const Instance in = draw_instance(config.layers, config.cost, 5);
    std::mt19937_64 rng(11);
    // Any state in the box (E is linear in theta, so central differences are exact
    // up to rounding).
    States s;
    for (int k = 0; k < ref::state_layer_count(in.net); ++k) {
      s.emplace_back(in.net.layers[k + 1]);
      for (double& v : s.back()) v = uniform(rng);
    }
    const auto& x = in.xs[0];
    const ref::Gradient analytic = ref::energy_gradient(in.net, x, s);
    ref::Gradient numeric = ref::zero_gradient(in.net);
    ref::Network probe = in.net;
    const double eps = 1e-4;
    auto central = [&](double& parameter) {
      const double saved = parameter;
      parameter = saved + eps;
      const double plus = ref::energy(probe, x, s);
      parameter = saved - eps;
      const double minus = ref::energy(probe, x, s);
      parameter = saved;
      return (plus - minus) / (2.0 * eps);
    };
    for (std::size_t t = 0; t < probe.weights.size(); ++t) {
      for (std::size_t i = 0; i < probe.weights[t].size(); ++i) numeric.weights[t][i] = central(probe.weights[t][i]);
      for (std::size_t i = 0; i < probe.biases[t].size(); ++i) numeric.biases[t][i] = central(probe.biases[t][i]);
    }
    eqprop::test::check_within("relative error of energy_gradient vs central differences", ref::relative_error(analytic, numeric), 1e-9);
  }
}

TEST_CASE("reference: implicit gradient equals central finite differences of the loss") {
  double worst = 0.0;
  int most_pinned = 0, instances = 0;
  for (const Config& config : configs())
    for (std::uint64_t seed : kSeeds) {
      CAPTURE(config.name);
      const Instance in = find_instance(config.layers, config.cost, seed, 1e-4);
      CAPTURE(in.seed);
      const ref::Gradient exact = ref::implicit_gradient(in.net, in.xs, in.labels);
      const ref::Gradient numeric = ref::finite_difference_gradient(in.net, in.xs, in.labels);
      for (std::size_t t = 0; t < exact.weights.size(); ++t) {
        const double e = ref::relative_error(exact, numeric, static_cast<int>(t));
        CAPTURE(t);
        eqprop::test::check_within("relative error of the implicit gradient of layer " + std::to_string(t), e, 1e-5);
        worst = std::max(worst, e);
      }
      most_pinned = std::max(most_pinned, in.pinned);
      ++instances;
    }
  // The active-set logic must be exercised: some units sit at a bound.
  CHECK(most_pinned > 0);
  MESSAGE("implicit vs finite differences over " << instances << " instances: worst relative error "
                                                 << worst << " (" << worst / 1e-5 * 100.0
                                                 << "% of 1e-5); up to " << most_pinned
                                                 << " pinned units in one batch");
}

TEST_CASE("reference: symmetric EP at small beta matches the implicit gradient, one-sided less well") {
  const double beta = 1e-3;
  double worst_symmetric = 0.0, worst_cosine = 1.0;
  for (const Config& config : configs())
    for (std::uint64_t seed : kSeeds) {
      CAPTURE(config.name);
      // A margin of 1e-2 keeps the nudged fixed points (|shift| ~ beta) on the free
      // phase's active set, where the EP theorem applies.
      const Instance in = find_instance(config.layers, config.cost, seed, 1e-2);
      CAPTURE(in.seed);
      const ref::Gradient exact = ref::implicit_gradient(in.net, in.xs, in.labels);
      const ref::Gradient symmetric = ref::ep_gradient(in.net, in.xs, in.labels, beta, true, 0);
      const ref::Gradient one_sided = ref::ep_gradient(in.net, in.xs, in.labels, beta, false, 0);
      const double cosine = ref::cosine_similarity(symmetric, exact);
      const double error = ref::relative_error(symmetric, exact);
      const double error_one_sided = ref::relative_error(one_sided, exact);
      CAPTURE(error_one_sided);
      CHECK(cosine > 0.9999);
      eqprop::test::check_within("relative error of symmetric EP vs the implicit gradient", error, 1e-3);
      CHECK(error_one_sided > error);
      for (std::size_t t = 0; t < exact.weights.size(); ++t) {
        CAPTURE(t);
        eqprop::test::check_within("relative error of the symmetric EP estimate of layer " + std::to_string(t), ref::relative_error(symmetric, exact, static_cast<int>(t)), 1e-3);
      }
      worst_symmetric = std::max(worst_symmetric, error);
      worst_cosine = std::min(worst_cosine, cosine);
    }
  MESSAGE("symmetric EP at beta = " << beta << ": worst relative error " << worst_symmetric << " ("
                                    << worst_symmetric / 1e-3 * 100.0 << "% of 1e-3), worst 1 - cosine "
                                    << 1.0 - worst_cosine << " (" << (1.0 - worst_cosine) / 1e-4 * 100.0
                                    << "% of 1e-4)");
}

TEST_CASE("reference: EP with a few nudged sweeps is a worse estimate than the relaxed one") {
  const Instance in = find_instance({8, 6, 5, 3}, CostKind::mse, 1, 1e-2);
  const ref::Gradient exact = ref::implicit_gradient(in.net, in.xs, in.labels);
  const double relaxed = ref::relative_error(ref::ep_gradient(in.net, in.xs, in.labels, 1e-3, true, 0), exact);
  const double truncated = ref::relative_error(ref::ep_gradient(in.net, in.xs, in.labels, 1e-3, true, 1), exact);
  CHECK(truncated > relaxed);
}

TEST_CASE("reference: where the plain map oscillates, a damped map finds the fixed point of F") {
  // 1-1-1 MSE network with no couplings: F(s2) = 1/2 s2^2 - 0.2 s2 + beta/2 (s2 - 1)^2
  // has its minimum at s2 = (0.2 + beta) / (1 + beta) = 0.68 for beta = 1.5. The plain
  // map s2 <- clip(1.7 - 1.5 s2) (the MSE pull uses the previous s2) has slope -1.5
  // and oscillates; the damped retry converges to the minimum.
  const ref::Network net{{1, 1, 1}, CostKind::mse, {{0.0}, {0.0}}, {{0.2}, {0.2}}};
  const std::vector<double> x = {0.5};
  const States free_state = ref::free_fixed_point(net, x);
  CHECK(free_state[1][0] == doctest::Approx(0.2).epsilon(1e-12));
  const States nudged = ref::nudged_fixed_point(net, x, 0, 1.5, free_state);
  CHECK(nudged[1][0] == doctest::Approx(0.68).epsilon(1e-12));
  // A few plain sweeps, as an engine with a fixed step count runs, do not get there.
  const ref::Gradient relaxed = ref::ep_gradient(net, {x}, {0}, 1.5, false, 0);
  const ref::Gradient truncated = ref::ep_gradient(net, {x}, {0}, 1.5, false, 31);
  CHECK(ref::relative_error(truncated, relaxed) > 0.1);
}

TEST_CASE("reference: errors are reported, not hidden") {
  const Instance in = draw_instance({6, 5, 4}, CostKind::mse, 3);
  std::vector<double> nan_input = in.xs[0];
  nan_input[2] = std::nan("");
  CHECK_THROWS_AS(ref::free_fixed_point(in.net, nan_input), std::runtime_error);
  CHECK_THROWS_AS(ref::free_fixed_point(in.net, {0.5}), std::invalid_argument);
  CHECK_THROWS_AS(ref::loss(in.net, in.xs[0], 4), std::invalid_argument);
  CHECK_THROWS_AS(ref::ep_gradient(in.net, in.xs, in.labels, 0.0, true, 0), std::invalid_argument);
  ref::Network bad = in.net;
  bad.weights[1].pop_back();
  CHECK_THROWS_AS(ref::implicit_gradient(bad, in.xs, in.labels), std::invalid_argument);
}
