// Invariants of the integrators (not research claims): cSB without damping conserves
// its Hamiltonian (symplectic Euler), damped cSB and gradient flow reach the same
// fixed point of a convex instance, the walls are inelastic, the Langevin term has
// the right statistics, early exit gives the update of running to the cap, and EP
// with cSB phases still matches the exact gradient.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/gradcheck.h"
#include "engine/trainer.h"
#include "kernels/layer_step.h"
#include "tests/hopfield_fixture.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::Fixture;

std::vector<float> host(const DeviceBuffer<float>& buffer) { return buffer.to_host(); }

// H = E(x) + a0/2 ||y||^2 for every system: the Hamiltonian of cSB with gamma = 0
// and no pump (dx/dt = a0 y, dy/dt = -dE/dx).
std::vector<double> hamiltonian(Fixture& f, const NetworkState& state, float a0) {
  DeviceBuffer<float> energy(*f.backend, f.batch);
  f.model.energy(state, energy.data());
  const std::vector<float> e = host(energy);
  std::vector<double> h(e.begin(), e.end());
  for (std::size_t layer = 0; layer < state.momenta.size(); ++layer) {
    const std::vector<float> y = host(state.momenta[layer]);
    const int units = f.net.layers[layer + 1];
    for (int s = 0; s < f.batch; ++s)
      for (int u = 0; u < units; ++u) h[s] += 0.5 * a0 * double(y[s * units + u]) * y[s * units + u];
  }
  return h;
}

bool strictly_inside(const NetworkState& state, float margin) {
  for (const auto& layer : state.layers)
    for (float s : host(layer))
      if (s < margin || s > 1.0f - margin) return false;
  return true;
}

PhaseSpec csb(int steps, float dt, float gamma) {
  PhaseSpec spec;
  spec.integrator = Integrator::csb;
  spec.steps = steps;
  spec.dt = dt;
  spec.gamma = gamma;
  spec.a0 = 1.0f;
  return spec;
}

}  // namespace

TEST_CASE("dynamics: cSB without damping or pump conserves its Hamiltonian (symplectic Euler)") {
  // Weak couplings and biases near 1/2 keep the fixed point, and the orbit around
  // it, strictly inside [0, 1], so the walls never act.
  Fixture f({6, 5, 4}, CostKind::mse, 3, 21, 0.15);
  for (auto& b : f.model.parameters().biases) {
    std::vector<float> values(b.size(), 0.5f);
    b.copy_from_host(values);
  }
  for (auto& b : f.net.biases) std::fill(b.begin(), b.end(), 0.5);
  NetworkState state = f.relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, 300, 0.0f});
  // Push the states off the minimum so that there is motion to conserve.
  for (auto& layer : state.layers) {
    std::vector<float> values = host(layer);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] += (i % 2 ? 0.08f : -0.08f);
    layer.copy_from_host(values);
  }
  const float dt = 0.02f;
  PhaseSpec spec = csb(1, dt, 0.0f);
  f.model.relax(state, f.target.data(), spec);  // zeroes the momenta, then one step
  spec.keep_momenta = true;
  const std::vector<double> start = hamiltonian(f, state, 1.0f);
  double worst = 0, early = 0, late = 0;
  const int steps = 3000;
  for (int step = 0; step < steps; ++step) {
    f.model.relax(state, f.target.data(), spec);
    const std::vector<double> h = hamiltonian(f, state, 1.0f);
    for (int s = 0; s < f.batch; ++s) {
      worst = std::max(worst, std::abs(h[s] - start[s]));
      if (step < 300) early += h[s];
      if (step >= steps - 300) late += h[s];
    }
    REQUIRE(strictly_inside(state, 1e-3f));
  }
  const double drift = std::abs(late - early) / (300.0 * f.batch);
  MESSAGE("cSB (gamma 0, dt " << dt << "): max |H - H0| = " << worst << ", mean drift " << drift);
  // Symplectic Euler keeps H within O(dt) of its start for all time, with no drift.
  eqprop::test::check_within("max |H - H0|", worst, 2e-3);
  eqprop::test::check_within("mean drift of H", drift, 2e-4);
}

TEST_CASE("dynamics: damped cSB and gradient flow reach the same fixed point of a convex instance") {
  for (const auto cost : {CostKind::mse, CostKind::cross_entropy}) {
    // Weights small enough that the Hessian I - W-blocks is positive definite: one minimum.
    Fixture f(cost == CostKind::mse ? std::vector<int>{6, 5, 4} : std::vector<int>{6, 5, 4, 3}, cost, 4, 9, 0.3);
    for (float beta : {0.0f, 0.2f}) {
      NetworkState flow = f.relaxed(PhaseSpec{Integrator::gradient_flow, 0.2f, 3000, beta});
      NetworkState momentum = f.model.make_state();
      f.model.reset(momentum);
      f.model.relax(momentum, f.target.data(), [&] {
        PhaseSpec spec = csb(4000, 0.2f, 1.0f);
        spec.beta = beta;
        return spec;
      }());
      double worst = 0;
      for (std::size_t layer = 0; layer < flow.layers.size(); ++layer) {
        const auto a = host(flow.layers[layer]), b = host(momentum.layers[layer]);
        for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
      }
      CAPTURE(beta);
      eqprop::test::check_within("max |s_flow - s_momentum|", worst, 1e-4);
    }
  }
}

TEST_CASE("dynamics: cSB walls are inelastic") {
  float s = 0.95f, y = 2.0f;
  csb_unit_step(0.1f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, s, y);  // y = 2, s = 1.15 -> wall at 1
  CHECK(s == 1.0f);
  CHECK(y == 0.0f);
  s = 0.05f, y = -2.0f;
  csb_unit_step(0.1f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, s, y);
  CHECK(s == 0.0f);
  CHECK(y == 0.0f);
  s = 0.5f, y = 0.5f;  // inside: moves by dt * a0 * y, keeps its momentum
  csb_unit_step(0.1f, 0.0f, 2.0f, 0.0f, 0.0f, 0.0f, 1.0f, s, y);
  CHECK(s == doctest::Approx(0.6f));
  CHECK(y == 0.5f);
  // The pump pulls towards the reset state 0 with strength a0 - a(t).
  s = 0.9f, y = 0.0f;
  csb_unit_step(0.1f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f, 1.0f, s, y);
  CHECK(y == doctest::Approx(-0.09f));
}

TEST_CASE("dynamics: the cSB pump reaches full gain on the free phase's last step and leaves nudged phases alone") {
  Fixture f({6, 5, 4}, CostKind::mse, 3, 5, 0.5);
  auto relaxed_with = [&](bool pump, int steps, float beta, const NetworkState* from) {
    PhaseSpec spec = csb(steps, 0.2f, 1.0f);
    spec.pump = pump;
    spec.beta = beta;
    NetworkState state = f.model.make_state();
    if (from) {
      f.model.copy_state(*from, state, f.batch);
    } else {
      f.model.reset(state);
    }
    f.model.relax(state, f.target.data(), spec);
    std::vector<float> all;
    for (const auto& layer : state.layers)
      for (float s : host(layer)) all.push_back(s);
    return std::make_pair(all, std::move(state));
  };
  // A one-step free phase is its own last step: a(T) = a0, no pump term left.
  CHECK(relaxed_with(true, 1, 0.0f, nullptr).first == relaxed_with(false, 1, 0.0f, nullptr).first);
  // A longer free phase does feel the pump.
  auto [pumped, free] = relaxed_with(true, 40, 0.0f, nullptr);
  CHECK(pumped != relaxed_with(false, 40, 0.0f, nullptr).first);
  // Nudged phases from the free state run at full gain either way.
  for (float beta : {0.3f, -0.3f})
    CHECK(relaxed_with(true, 40, beta, &free).first == relaxed_with(false, 40, beta, &free).first);
}

TEST_CASE("dynamics: Langevin noise has mean 0 and variance sigma^2 dt, reproducibly") {
  auto backend = make_backend("cpu");
  const int rows = 400, units = 250;
  const std::size_t n = std::size_t(rows) * units;
  const float dt = 0.1f, sigma = 0.05f;
  for (const Integrator integrator : {Integrator::gradient_flow, Integrator::csb, Integrator::fixed_point}) {
    CAPTURE(static_cast<int>(integrator));
    DeviceBuffer<float> states(*backend, n), drive(*backend, n), bias(*backend, units), momenta(*backend, n);
    auto run = [&](std::uint32_t step) {
      states.copy_from_host(std::vector<float>(n, 0.5f));
      drive.copy_from_host(std::vector<float>(n, 0.5f));  // force = 0.5 - 0.5 = 0 at s = 1/2
      bias.zero();
      momenta.zero();
      LayerStepOp op{states.data(), drive.data(), nullptr, bias.data(), nullptr, 0.0f, dt, integrator, units};
      op.momenta = momenta.data();
      op.noise_sigma = sigma;
      op.noise_seed = 17;
      op.noise_row_stride = units;
      op.noise_step = step;
      backend->run(op, static_cast<std::int64_t>(n));
      return host(integrator == Integrator::csb ? momenta : states);
    };
    const std::vector<float> first = run(0);
    // Expected: the noise alone moves the unit (y for cSB, s otherwise) from its start.
    const double start = integrator == Integrator::csb ? 0.0 : 0.5;
    const double variance_expected =
        integrator == Integrator::fixed_point ? double(sigma) * sigma : double(sigma) * sigma * dt;
    double mean = 0, second = 0;
    for (float v : first) mean += v - start;
    mean /= n;
    for (float v : first) second += (v - start - mean) * (v - start - mean);
    const double variance = second / (n - 1);
    const double mean_bound = 5 * std::sqrt(variance_expected / n);
    const double variance_bound = 5 * variance_expected * std::sqrt(2.0 / (n - 1));
    MESSAGE("mean " << mean << " (" << 100 * std::abs(mean) / mean_bound << "% of 5 sigma), variance " << variance
                    << " vs " << variance_expected << " (" << 100 * std::abs(variance - variance_expected) / variance_bound
                    << "% of 5 sigma)");
    CHECK(std::abs(mean) < mean_bound);
    CHECK(std::abs(variance - variance_expected) < variance_bound);
    CHECK(run(0) == first);  // same keys, same draws
    CHECK(run(1) != first);  // another step, other draws
    // The CPU's row path and the per-element (GPU) path draw the same numbers.
    states.copy_from_host(std::vector<float>(n, 0.5f));
    momenta.zero();
    LayerStepOp op{states.data(), drive.data(), nullptr, bias.data(), nullptr, 0.0f, dt, integrator, units};
    op.momenta = momenta.data();
    op.noise_sigma = sigma;
    op.noise_seed = 17;
    op.noise_row_stride = units;
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) op(i);
    CHECK(host(integrator == Integrator::csb ? momenta : states) == first);
  }
}

TEST_CASE("dynamics: an early exit at convergence gives the update of running to the cap") {
  for (const std::string integrator : {"fixed_point", "gradient_flow", "csb"}) {
    CAPTURE(integrator);
    const int cap = 2000;
    nlohmann::json user = {{"model", {{"layers", {20, 16, 10}}}},
                           {"dynamics", {{"integrator", integrator}, {"t_free", cap}, {"t_nudge", cap}, {"dt", 0.2}}},
                           {"training", {{"batch_size", 16}, {"eval_batch_size", 16}}}};
    const Config to_cap = parse_config(user, "test");
    user["dynamics"]["tolerance"] = 1e-6;
    const Config early = parse_config(user, "test");
    auto backend = make_backend("cpu");
    Trainer a(*backend, to_cap, 20, 10), b(*backend, early, 20, 10);
    std::mt19937 rng(3);
    DeviceBuffer<float> x(*backend, 16 * 20), target(*backend, 16 * 10);
    x.copy_from_host(test::random_vector(rng, 16 * 20, 0.0f, 1.0f));
    target.copy_from_host(test::random_one_hot(rng, 16, 10));
    ParameterSet ga = a.model().make_parameter_like(), gb = b.model().make_parameter_like();
    a.ep_gradient(x.data(), target.data(), 16, 0, ga);
    b.ep_gradient(x.data(), target.data(), 16, 0, gb);
    b.train_step(x.data(), target.data(), 16, 0, 1.0f);
    const BatchResult steps = b.flush_metrics();
    MESSAGE("steps with tolerance 1e-6: free " << steps.free_steps << ", nudged " << steps.nudge_steps << " (cap "
                                                  << cap << ")");
    CHECK(steps.free_steps < cap);
    CHECK(steps.nudge_steps < cap);
    for (std::size_t l = 0; l < ga.weights.size(); ++l) {
      const auto wa = host(ga.weights[l]), wb = host(gb.weights[l]);
      double difference = 0, norm = 0;
      for (std::size_t i = 0; i < wa.size(); ++i) {
        difference += (double(wa[i]) - wb[i]) * (double(wa[i]) - wb[i]);
        norm += double(wa[i]) * wa[i];
      }
      eqprop::test::check_within("relative difference", std::sqrt(difference / norm), 1e-3);
    }
  }
}

TEST_CASE("dynamics: EP with cSB phases matches the implicit gradient (gradcheck)") {
  // The EP estimate at beta = 0.01 against the double-precision implicit gradient
  // (models/dense_hopfield_reference): its own error is O(beta^2) (about 1e-4 here),
  // so anything the dynamics leave in the phases' end states shows above 1e-3. The
  // pump must leave nothing: it ramps over the free phase only, reaches a(T) = a0 on
  // the last step, and the nudged phases run at full gain from the free state.
  for (const std::string pump : {"none", "linear"}) {
    for (const int steps : {100, 400, 2000}) {
      CAPTURE(pump);
      CAPTURE(steps);
      const Config config = parse_config(
          nlohmann::json{{"model", {{"layers", {6, 5, 4}}}},
                         {"dynamics",
                          {{"integrator", "csb"}, {"t_free", steps}, {"t_nudge", steps}, {"dt", 0.2}, {"gamma", 1.0},
                           {"pump", pump}}},
                         {"ep", {{"beta", 0.01}}}},
          "test");
      auto backend = make_backend("cpu");
      const nlohmann::json report = run_gradcheck(*backend, config, GradcheckOptions{8});
      const double error = report["overall"]["relative_error"].get<double>();
      MESSAGE("pump " << pump << ", " << steps << " steps per phase: relative error " << error << " ("
                      << 100 * error / 1e-3 << "% of 1e-3), cosine " << report["overall"]["cosine"].get<double>());
      CHECK(error < 1e-3);
    }
  }
}

}  // namespace eqprop
