// Physics of the dense Hopfield model against the independent
// double-precision reference (models/dense_hopfield_reference): fixed points,
// energy descent, agreement of the two integrators, and the EP gradient against
// both the naive EP estimate and the exact implicit-differentiation gradient. The
// EP gradient cases run on every backend (tests/backends.h), the rest on the CPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/config.h"
#include "engine/gradcheck.h"
#include "models/dense_hopfield.h"
#include "models/dense_hopfield_reference.h"
#include "tests/backends.h"
#include "tests/hopfield_fixture.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

using test::Fixture;

double max_difference(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  double worst = 0;
  for (std::size_t l = 0; l < a.size(); ++l)
    for (std::size_t i = 0; i < a[l].size(); ++i) worst = std::max(worst, std::abs(a[l][i] - b[l][i]));
  return worst;
}

}  // namespace

TEST_CASE("hopfield: the engine's free fixed point is the reference's") {
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    Fixture f(layers, cost, 5, 11);
    const auto engine = f.states_of(f.relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, 400, 0.0f}));
    double worst = 0;
    for (int s = 0; s < f.batch; ++s)
      worst = std::max(worst, max_difference(engine[s], reference::free_fixed_point(f.net, f.xs[s])));
    test::check_within("max |s_engine - s_reference|", worst, 1e-5);
  }
}

TEST_CASE("hopfield: the energy never increases under gradient flow with a small step") {
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    Fixture f(layers, cost, 4, 5, 0.8);
    NetworkState state = f.model.make_state();
    f.model.reset(state);
    std::vector<double> previous(f.batch);
    for (int s = 0; s < f.batch; ++s) previous[s] = reference::energy(f.net, f.xs[s], f.states_of(state)[s]);
    const std::vector<double> initial = previous;
    double worst_rise = 0;
    for (int step = 0; step < 300; ++step) {
      f.model.relax(state, f.target.data(), PhaseSpec{Integrator::gradient_flow, 0.05f, 1, 0.0f});
      const auto states = f.states_of(state);
      for (int s = 0; s < f.batch; ++s) {
        const double energy = reference::energy(f.net, f.xs[s], states[s]);
        worst_rise = std::max(worst_rise, energy - previous[s]);
        previous[s] = energy;
      }
    }
    // Float states: a rise of a few float ulps of the energy is rounding, not physics.
    test::check_within("largest energy rise in a step", worst_rise, 1e-6);
    for (int s = 0; s < f.batch; ++s) CHECK(previous[s] < initial[s]);
  }
}

TEST_CASE("hopfield: fixed-point iteration and gradient flow reach the same fixed point") {
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    for (float beta : {0.0f, 0.3f, -0.3f}) {
      Fixture f(layers, cost, 4, 7);
      const auto by_iteration = f.states_of(f.relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, 400, beta}));
      const auto by_flow = f.states_of(f.relaxed(PhaseSpec{Integrator::gradient_flow, 0.2f, 3000, beta}));
      double worst = 0;
      for (int s = 0; s < f.batch; ++s) worst = std::max(worst, max_difference(by_iteration[s], by_flow[s]));
      CAPTURE(beta);
      test::check_within("worst state difference, fixed point vs flow", worst, 1e-4);
    }
  }
}

TEST_CASE_TEMPLATE("hopfield: the engine's EP gradient equals the naive double-precision EP estimate", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    for (bool symmetric : {true, false}) {
      Fixture f(layers, cost, 6, 3, 0.5, OnBackend::name);
      // Small enough that the synchronous map converges at -beta too (at 0.2 it
      // still drifts by 1e-4 after 400 steps on the 8-7-6-3 read-out network).
      const double beta = 0.05;
      const reference::Gradient engine = f.engine_ep_gradient(static_cast<float>(beta), symmetric, 400);
      const reference::Gradient naive = reference::ep_gradient(f.net, f.xs, f.labels, beta, symmetric, 0);
      const double error = reference::relative_error(engine, naive);
      CAPTURE(symmetric);
      test::check_within("relative error, engine vs naive EP", error, 1e-4);
    }
  }
}

TEST_CASE_TEMPLATE("hopfield: symmetric EP at small beta matches the implicit gradient, better than one-sided",
                   OnBackend, EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    for (unsigned seed : {1u, 2u, 3u}) {
      Fixture f(layers, cost, 6, 100 + seed, 0.5, OnBackend::name);
      const reference::Gradient exact = reference::implicit_gradient(f.net, f.xs, f.labels);
      const reference::Gradient symmetric = f.engine_ep_gradient(0.01f, true, 400);
      const reference::Gradient one_sided = f.engine_ep_gradient(0.01f, false, 400);
      const double cosine = reference::cosine_similarity(symmetric, exact);
      const double error_symmetric = reference::relative_error(symmetric, exact);
      const double error_one_sided = reference::relative_error(one_sided, exact);
      CAPTURE(seed);
      MESSAGE("cosine " << cosine << ", relative error symmetric " << error_symmetric << ", one-sided "
                        << error_one_sided);
      CHECK(cosine > 0.99);
      CHECK(error_symmetric < error_one_sided);
    }
  }
}

TEST_CASE("hopfield: gradcheck reports per-tensor agreement through the public API") {
  Config config = parse_config(nlohmann::json::parse(R"({
      "model": {"layers": [6, 5, 4]},
      "dynamics": {"t_free": 400, "t_nudge": 400},
      "ep": {"beta": 0.01}})"),
                               "test");
  auto backend = make_backend("cpu");
  const nlohmann::json report = run_gradcheck(*backend, config, GradcheckOptions{8});
  REQUIRE(report["tensors"].size() == 2);
  for (const auto& tensor : report["tensors"]) CHECK(tensor["cosine"].get<double>() > 0.99);
  CHECK(report["overall"]["relative_error"].get<double>() < 0.1);
}

}  // namespace eqprop
