// The Langevin temperature (dynamics.temperature; DESIGN.md §1, "Langevin noise"):
// at one T every integrator samples exp(-E/T). A two-unit network whose energy is
// quadratic inside the box, E = 1/2 (h^2 + o^2) - w h o - b (h + o), has the
// stationary distribution N(m, T H^-1) with H = [[1, -w], [-w, 1]] while the states
// stay far from the walls; the trainer's free phase (the whole config path) is run
// on many systems at once and its end states compared with T H^-1.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/trainer.h"
#include "kernels/error.h"
#include "kernels/layer_step.h"

namespace eqprop {
namespace {

constexpr double kCoupling = 0.5;       // w, hidden to output
constexpr double kBias = 0.25;          // b of both units: the mean is (1/2, 1/2)
constexpr float kTemperature = 0.002f;  // std ~0.05: the walls are ~10 std away
constexpr int kSystems = 4096, kRuns = 8;

Config temperature_config(const std::string& integrator, int steps, float dt) {
  return parse_config(nlohmann::json{{"model", {{"layers", {1, 1, 1}}}},
                                     {"dynamics",
                                      {{"integrator", integrator},
                                       {"t_free", steps},
                                       {"dt", dt},
                                       {"nudge_integrator", "csb"},  // free phase only: gamma and a0 act
                                       {"gamma", 1.0},
                                       {"a0", 2.0},  // a0 != gamma: cSB's sigma differs from gradient flow's
                                       {"temperature", kTemperature}}},
                                     {"training", {{"batch_size", kSystems}, {"eval_batch_size", kSystems}}}},
                      "test");
}

struct Moments {
  double mean[2] = {};
  double covariance[2][2] = {};
};

// The end states of kRuns free phases from the reset state, each on kSystems
// systems with its own noise keys: kRuns * kSystems independent draws.
Moments stationary_moments(const Config& config) {
  auto backend = make_backend("cpu");
  Trainer trainer(*backend, config, 1, 1);
  EnergyModel& model = trainer.model();
  ParameterSet& parameters = model.parameters();
  parameters.weights[0].copy_from_host(std::vector<float>{0.0f});  // no drive from the input
  parameters.biases[0].copy_from_host(std::vector<float>{float(kBias)});
  parameters.weights[1].copy_from_host(std::vector<float>{float(kCoupling)});
  parameters.biases[1].copy_from_host(std::vector<float>{float(kBias)});
  DeviceBuffer<float> x(*backend, kSystems), target(*backend, kSystems);
  x.zero();
  target.zero();
  model.set_input(x.data(), kSystems);
  NetworkState state = model.make_state();
  std::vector<double> h, o;
  for (int run = 0; run < kRuns; ++run) {
    model.reset(state);
    model.relax(state, target.data(), trainer.phase_spec(false, 0.0f, run, 0));
    for (float v : state.layers[0].to_host()) h.push_back(v);
    for (float v : state.layers[1].to_host()) o.push_back(v);
  }
  Moments m;
  const double n = double(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) m.mean[0] += h[i] / n, m.mean[1] += o[i] / n;
  for (std::size_t i = 0; i < h.size(); ++i) {
    const double d[2] = {h[i] - m.mean[0], o[i] - m.mean[1]};
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) m.covariance[a][b] += d[a] * d[b] / (n - 1);
  }
  return m;
}

}  // namespace

TEST_CASE("temperature: every integrator's stationary states have covariance T H^-1 on a quadratic energy") {
  const double w = kCoupling, scale = kTemperature / (1 - w * w);
  const double variance = scale, covariance = scale * w;  // T H^-1
  struct Case {
    const char* integrator;
    int steps;
    float dt;
  };
  // 20 time units of relaxation: the slowest mode (rate 1 - w for gradient flow,
  // gamma/2 for cSB) forgets the start at 0. Gradient flow's Euler step inflates the
  // variance by 1/(1 - dt lambda/2) (<= 1.5% here), symplectic Euler by O(dt^2).
  for (const Case c : {Case{"gradient_flow", 1000, 0.02f}, Case{"csb", 1000, 0.02f}, Case{"fixed_point", 60, 0.5f}}) {
    CAPTURE(c.integrator);
    const Moments m = stationary_moments(temperature_config(c.integrator, c.steps, c.dt));
    const double h = m.covariance[0][0] / variance, o = m.covariance[1][1] / variance,
                 ho = m.covariance[0][1] / covariance;
    MESSAGE(std::string(c.integrator) << " at T = " << kTemperature << ": mean (" << m.mean[0] << ", " << m.mean[1]
                         << "), variance / (T H^-1)_ii: " << h << ", " << o << "; covariance / (T H^-1)_12: " << ho);
    CHECK(std::abs(m.mean[0] - 0.5) < 0.005);
    CHECK(std::abs(m.mean[1] - 0.5) < 0.005);
    CHECK(std::abs(h - 1) < 0.05);
    CHECK(std::abs(o - 1) < 0.05);
    // The fixed point updates both layers at once from the previous step: each layer
    // is an exact heat-bath chain, so the marginals are right, but the two layers
    // at one step come from interleaved chains and are uncorrelated.
    if (std::string(c.integrator) != "fixed_point") CHECK(std::abs(ho - 1) < 0.05);
  }
}

TEST_CASE("temperature: the sigma of each integrator, per phase") {
  const float t = 0.08f;
  CHECK(langevin_sigma_at_temperature(Integrator::gradient_flow, t, 0.3f, 2.0f) == doctest::Approx(0.4f));
  CHECK(langevin_sigma_at_temperature(Integrator::csb, t, 0.5f, 2.0f) == doctest::Approx(0.2f));
  CHECK(langevin_sigma_at_temperature(Integrator::csb, t, 0.0f, 2.0f) == 0.0f);  // no damping, no bath
  CHECK(langevin_sigma_at_temperature(Integrator::fixed_point, t, 0.3f, 2.0f) == doctest::Approx(std::sqrt(0.08f)));
  // The trainer picks the sigma of the phase's own integrator.
  const Config config = parse_config(
      nlohmann::json{{"model", {{"layers", {4, 3, 2}}}},
                     {"dynamics",
                      {{"integrator", "gradient_flow"}, {"nudge_integrator", "csb"}, {"gamma", 0.5}, {"a0", 2.0},
                       {"temperature", t}}}},
      "test");
  auto backend = make_backend("cpu");
  Trainer trainer(*backend, config, 4, 2);
  CHECK(trainer.phase_spec(false, 0.0f, 0, 0).noise_sigma == doctest::Approx(0.4f));
  CHECK(trainer.phase_spec(true, 0.1f, 0, 1).noise_sigma == doctest::Approx(0.2f));
}

TEST_CASE("temperature: dynamics.temperature and dynamics.noise are exclusive") {
  nlohmann::json user = {{"dynamics", {{"noise", 0.01}, {"temperature", 0.001}}}};
  try {
    parse_config(user, "both.json");
    FAIL("both accepted");
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    CHECK(message.find("dynamics.noise") != std::string::npos);
    CHECK(message.find("dynamics.temperature") != std::string::npos);
  }
  user["dynamics"]["noise"] = 0.0;  // an explicit 0 sets no noise
  CHECK(parse_config(user, "one.json").dynamics.temperature == doctest::Approx(0.001f));
}

}  // namespace eqprop
