// Asynchronous (odd layers, then even layers) relaxation of the dense and conv
// Hopfield networks (models/update_order.h; Scellier et al. 2023): each half of a
// fixed-point step is the exact minimiser of E over the moving layers given the
// others (for max pooling, of a majorizer of E through the current argmax), so E
// never increases from one step to the next; the steps reach the fixed point the
// synchronous map reaches; and EP at small beta on asynchronously relaxed states
// matches the exact gradient (engine/gradcheck.h). Models that cannot order their
// updates refuse asynchronous.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/gradcheck.h"
#include "engine/trainer.h"
#include "kernels/error.h"
#include "models/conv_hopfield.h"
#include "models/oscillator_network.h"
#include "tests/hopfield_fixture.h"
#include "tests/model_fixture.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// A small conv network with random parameters (uniform +-weight_scale) and a batch
// of random inputs and labels.
struct ConvNetwork : test::FixtureBase {
  std::unique_ptr<ConvHopfield> model;
  int batch;

  ConvNetwork(const ConvHopfieldShape& shape, int batch_size, unsigned seed, double weight_scale = 0.5)
      : batch(batch_size) {
    model = std::make_unique<ConvHopfield>(*backend, shape, batch);
    std::mt19937 rng(seed);
    std::vector<std::vector<double>> weights, biases;  // the reference's copies, unused here
    test::draw_matched_parameters(model->parameters(), rng, weight_scale, -0.2, 0.3, weights, biases);
    draw_batch(rng, batch, shape.input.units(), shape.classes());
    model->set_input(x.data(), batch);
  }
};

// 2x6x6 -> conv 3 (3x3, pad 1) -> pool 3x3 -> conv 4 (2x2) -> pool 1x1 -> dense
// layers: with {5, 3} four state layers, so both parities hold conv and dense layers.
ConvHopfieldShape small_conv_shape(PoolKind pool, CostKind cost) {
  ConvHopfieldShape shape;
  shape.input = {2, 6, 6};
  shape.convs = {{3, 3, 1, 1}, {4, 2, 1, 0}};
  if (pool == PoolKind::none) shape.convs = {{3, 3, 1, 1}, {2, 3, 2, 0}};  // 6x6 -> 2x2
  shape.pool = pool;
  shape.dense = cost == CostKind::mse ? std::vector<int>{5, 3} : std::vector<int>{3};
  shape.cost = cost;
  return shape;
}

PhaseSpec fixed_point_spec(int steps, UpdateOrder order) {
  PhaseSpec spec{Integrator::fixed_point, 0.5f, steps, 0.0f};
  spec.order = order;
  return spec;
}

std::vector<float> energies(EnergyModel& model, const NetworkState& state, int batch) {
  DeviceBuffer<float> energy(model.backend(), std::size_t(batch));
  model.energy(state, energy.data());
  return energy.to_host();
}

double max_state_difference(const NetworkState& a, const NetworkState& b) {
  double worst = 0;
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const std::vector<float> x = a.layers[l].to_host(), y = b.layers[l].to_host();
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::fabs(x[i] - y[i])));
  }
  return worst;
}

// Free asynchronous fixed-point steps one at a time from the reset state: the
// largest rise of any system's energy from one step to the next, relative to
// max(1, |E|) (0 when E never rises), and the state after `steps` steps.
double largest_energy_rise(EnergyModel& model, const float* target, int batch, int steps, NetworkState& state) {
  state = model.make_state();
  model.reset(state);
  std::vector<float> previous = energies(model, state, batch);
  double worst = 0;
  for (int step = 0; step < steps; ++step) {
    model.relax(state, target, fixed_point_spec(1, UpdateOrder::asynchronous));
    const std::vector<float> now = energies(model, state, batch);
    for (int n = 0; n < batch; ++n)
      worst = std::max(worst, double(now[n] - previous[n]) / std::max(1.0, double(std::fabs(previous[n]))));
    previous = now;
  }
  return worst;
}

}  // namespace

TEST_CASE("async updates: dense fixed-point steps never increase E and reach the synchronous fixed point") {
  // Weights +-0.5 on four state layers: on some draws the synchronous map settles
  // into a 2-cycle (DESIGN.md §1) while the asynchronous steps still descend to the
  // reference's fixed point; the comparison with the synchronous map is made where
  // that one converges.
  int synchronous_converged = 0, synchronous_oscillated = 0;
  for (CostKind cost : {CostKind::mse, CostKind::cross_entropy})
    for (unsigned seed : {4u, 5u, 6u, 7u}) {
      CAPTURE(int(cost));
      CAPTURE(seed);
      test::Fixture f({8, 7, 6, 5, 3}, cost, 6, seed);
      NetworkState async_state;
      const double rise = largest_energy_rise(f.model, f.target.data(), f.batch, 40, async_state);
      CHECK(rise <= 1e-6);
      f.model.relax(async_state, f.target.data(), fixed_point_spec(400, UpdateOrder::asynchronous));
      // The double-precision reference's fixed point.
      const auto states = f.states_of(async_state);
      double worst = 0;
      for (int n = 0; n < f.batch; ++n) {
        const auto expected = reference::free_fixed_point(f.net, f.xs[n]);
        for (std::size_t l = 0; l < expected.size(); ++l)
          for (std::size_t i = 0; i < expected[l].size(); ++i)
            worst = std::max(worst, std::fabs(states[n][l][i] - expected[l][i]));
      }
      CHECK(worst < 1e-5);
      // The synchronous map's fixed point, where it converges (one more step moves nothing).
      const NetworkState sync_state = f.relaxed(fixed_point_spec(400, UpdateOrder::synchronous));
      NetworkState next = f.model.make_state();
      f.model.copy_state(sync_state, next, f.batch);
      f.model.relax(next, f.target.data(), fixed_point_spec(1, UpdateOrder::synchronous));
      const double sync_move = max_state_difference(sync_state, next);
      MESSAGE("dense cost " << int(cost) << " seed " << seed << ": largest energy rise per step " << rise
                            << " (tolerance 1e-6), |async - reference| " << worst
                            << ", synchronous map's last move " << sync_move);
      if (sync_move >= 1e-6) {
        ++synchronous_oscillated;
        continue;
      }
      ++synchronous_converged;
      CHECK(max_state_difference(async_state, sync_state) < 1e-5);
    }
  MESSAGE("synchronous map converged on " << synchronous_converged << " draws, oscillated on "
                                          << synchronous_oscillated);
  CHECK(synchronous_converged >= 2);
}

TEST_CASE("async updates: dense nudged fixed-point steps never increase F = E + beta C (mse)") {
  test::Fixture f({8, 7, 6, 5, 3}, CostKind::mse, 6, 5);
  NetworkState state = f.relaxed(fixed_point_spec(400, UpdateOrder::asynchronous));
  DeviceBuffer<float> loss(*f.backend, std::size_t(f.batch)), correct(*f.backend, std::size_t(f.batch));
  for (float beta : {0.5f, -0.5f}) {
    NetworkState nudged = f.model.make_state();
    f.model.copy_state(state, nudged, f.batch);
    auto total = [&] {
      std::vector<float> e = energies(f.model, nudged, f.batch);
      f.model.metrics(nudged, f.target.data(), loss.data(), correct.data());
      const std::vector<float> c = loss.to_host();  // C = 1/2 ||s_top - y||^2
      for (int n = 0; n < f.batch; ++n) e[n] += beta * c[n];
      return e;
    };
    std::vector<float> previous = total();
    double worst = 0;
    PhaseSpec spec = fixed_point_spec(1, UpdateOrder::asynchronous);
    spec.beta = beta;
    for (int step = 0; step < 30; ++step) {
      f.model.relax(nudged, f.target.data(), spec);
      const std::vector<float> now = total();
      for (int n = 0; n < f.batch; ++n)
        worst = std::max(worst, double(now[n] - previous[n]) / std::max(1.0, double(std::fabs(previous[n]))));
      previous = now;
    }
    MESSAGE("beta " << beta << ": largest rise of F per step " << worst << " (tolerance 1e-6)");
    CHECK(worst <= 1e-6);
  }
}

TEST_CASE("async updates: conv fixed-point steps never increase E and reach the synchronous fixed point") {
  const std::vector<std::pair<PoolKind, CostKind>> variants = {
      {PoolKind::max, CostKind::mse}, {PoolKind::max, CostKind::cross_entropy}, {PoolKind::avg, CostKind::mse},
      {PoolKind::none, CostKind::mse}};
  for (const auto& [pool, cost] : variants) {
    CAPTURE(int(pool));
    CAPTURE(int(cost));
    ConvNetwork f(small_conv_shape(pool, cost), 5, 3);
    NetworkState async_state;
    const double rise = largest_energy_rise(*f.model, f.target.data(), f.batch, 40, async_state);
    f.model->relax(async_state, f.target.data(), fixed_point_spec(400, UpdateOrder::asynchronous));
    MESSAGE("conv pool " << int(pool) << " cost " << int(cost) << ": largest energy rise per step " << rise);
    CHECK(rise <= 1e-6);
    const NetworkState sync_state =
        test::relaxed_state(*f.model, f.target.data(), fixed_point_spec(400, UpdateOrder::synchronous));
    NetworkState next = f.model->make_state();
    f.model->copy_state(sync_state, next, f.batch);
    f.model->relax(next, f.target.data(), fixed_point_spec(1, UpdateOrder::synchronous));
    REQUIRE(max_state_difference(sync_state, next) < 1e-6);
    const double difference = max_state_difference(async_state, sync_state);
    MESSAGE("conv: |async - sync| after 440 async steps " << difference);
    CHECK(difference < 1e-5);
  }
}

TEST_CASE("async updates: gradient flow and cSB in asynchronous order reach the same fixed point, with the early exit") {
  test::Fixture f({8, 7, 6, 5, 3}, CostKind::mse, 6, 4);
  const NetworkState fixed_point = f.relaxed(fixed_point_spec(400, UpdateOrder::asynchronous));
  for (Integrator integrator : {Integrator::gradient_flow, Integrator::csb}) {
    CAPTURE(int(integrator));
    PhaseSpec spec{integrator, 0.5f, 4000, 0.0f};
    spec.order = UpdateOrder::asynchronous;
    spec.tolerance = 1e-7f;
    NetworkState state = f.model.make_state();
    f.model.reset(state);
    const PhaseResult result = f.model.relax(state, f.target.data(), spec);
    MESSAGE("integrator " << int(integrator) << ": " << result.steps << " steps to tolerance 1e-7");
    CHECK(result.steps < spec.steps);
    CHECK(max_state_difference(state, fixed_point) < 1e-5);
  }
}

TEST_CASE("async updates: EP at small beta matches the exact gradient (dense and conv)") {
  auto backend = make_backend("cpu");
  struct Case {
    const char* config;
    const char* pool;  // conv only
    double relative_error;
  };
  // As the synchronous gradchecks (tests/test_dense_hopfield.cpp, test_conv_hopfield.cpp).
  for (const Case& c : {Case{"gradcheck_tiny.json", nullptr, 1e-2}, Case{"gradcheck_tiny_xent.json", nullptr, 1e-2},
                        Case{"gradcheck_tiny_conv.json", "max", 5e-3}, Case{"gradcheck_tiny_conv.json", "avg", 5e-3},
                        Case{"gradcheck_tiny_conv.json", "none", 5e-3}}) {
    nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/" + c.config);
    user["dynamics"]["order"] = "asynchronous";
    if (c.pool) {
      user["conv"]["pool"] = c.pool;
      if (std::string(c.pool) == "avg") user["model"]["cost"] = "mse";
    }
    const nlohmann::json report = run_gradcheck(*backend, parse_config(user, c.config), GradcheckOptions{6});
    MESSAGE(std::string(c.config) << (c.pool ? std::string(" pool ") + c.pool : std::string()) << ": "
                     << report["tensors"].dump());
    for (const auto& tensor : report["tensors"]) {
      CAPTURE(tensor.dump());
      CHECK(tensor["cosine"].get<double>() >= 0.999);
      CHECK(tensor["relative_error"].get<double>() < c.relative_error);
    }
  }
}

TEST_CASE("async updates: the config key, and models that cannot order their updates refuse it") {
  const Config config = parse_config(nlohmann::json{{"dynamics", {{"order", "asynchronous"}}}}, "test");
  CHECK(config.dynamics.order == UpdateOrder::asynchronous);
  CHECK(parse_config(nlohmann::json::object(), "test").dynamics.order == UpdateOrder::synchronous);
  test::check_contains(test::thrown_message<ConfigError>([] {
                         parse_config(nlohmann::json{{"dynamics", {{"order", "parallel"}}}}, "test");
                       }),
                       {"dynamics.order"});

  // The oscillator network orders its gradient-flow steps either way, but its fused
  // path runs the synchronous order only and says so when asked for it.
  auto backend = make_backend("cpu");
  OscillatorNetwork oscillator(*backend, OscillatorShape{{4, 3, 2}}, 2, RelaxationPath::fused);
  DeviceBuffer<float> x(*backend, 8);
  x.zero();
  oscillator.set_input(x.data(), 2);
  NetworkState state = oscillator.make_state();
  oscillator.reset(state);
  PhaseSpec spec{Integrator::gradient_flow, 0.1f, 3, 0.0f};
  spec.order = UpdateOrder::asynchronous;
  test::check_contains(test::thrown_message<std::invalid_argument>([&] { oscillator.relax(state, nullptr, spec); }),
                       {"OscillatorNetwork", "synchronous"});
}

}  // namespace eqprop
