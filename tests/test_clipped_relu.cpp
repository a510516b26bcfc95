// The clipped-ReLU activation rho(s) = clip(s, 0, c) (kernels/hard_sigmoid.h,
// model.activation): the per-unit math at and around its bounds, dense and conv
// networks with c = 6 against the double-precision references on every
// relaxation path, the EP gradient against the exact one, and the config.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "engine/config.h"
#include "engine/gradcheck.h"
#include "kernels/error.h"
#include "kernels/hard_sigmoid.h"
#include "kernels/layer_step.h"
#include "models/conv_hopfield.h"
#include "models/conv_hopfield_reference.h"
#include "models/dense_hopfield.h"
#include "models/dense_hopfield_reference.h"
#include "tests/hopfield_fixture.h"
#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

constexpr float kReluSix = 6.0f;  // ReLU6, the Hopfield-ResNets' activation

// Inputs scaled from [0, 1) to [0, 10): fields well past 1, some past 6, so the
// networks below have units at 0, at c and strictly inside, above the hard sigmoid's 1.
constexpr double kInputScale = 10.0;

void scale_inputs(test::FixtureBase& f, EnergyModel& model, int batch) {
  std::vector<float> host;
  for (auto& sample : f.xs)
    for (double& v : sample) {
      v = static_cast<double>(static_cast<float>(v * kInputScale));
      host.push_back(static_cast<float>(v));
    }
  f.x.copy_from_host(host);
  model.set_input(f.x.data(), batch);
}

using States = std::vector<std::vector<double>>;

double max_difference(const States& a, const States& b) {
  double worst = 0;
  for (std::size_t l = 0; l < a.size(); ++l)
    for (std::size_t i = 0; i < a[l].size(); ++i) worst = std::max(worst, std::abs(a[l][i] - b[l][i]));
  return worst;
}

// Units at the upper bound and strictly between 1 and c: the test exercises the
// part of the range the hard sigmoid does not have, and the bound itself.
struct RangeSeen {
  int at_bound = 0, above_one = 0;
  void add(const States& s, double c) {
    for (const auto& layer : s)
      for (double v : layer) {
        at_bound += v == c;
        above_one += v > 1.0 && v < c;
      }
  }
  void check() const {
    CHECK(at_bound > 0);
    CHECK(above_one > 0);
  }
};

}  // namespace

TEST_CASE("clipped relu: rho and rho' at and around 0 and c, hard sigmoid at c = 1") {
  for (float c : {1.0f, kReluSix, 0.25f}) {
    CAPTURE(c);
    const float above = std::nextafter(c, 2.0f * c), below = std::nextafter(c, 0.0f);
    struct Point {
      float s, rho, rho_prime;
    };
    // rho' is 1 on the closed interval [0, c] (DESIGN.md §1).
    const Point points[] = {{-1.0f, 0.0f, 0.0f},  {-1e-7f, 0.0f, 0.0f}, {0.0f, 0.0f, 1.0f},   {c / 2, c / 2, 1.0f},
                            {below, below, 1.0f}, {c, c, 1.0f},         {above, c, 0.0f},     {2 * c, c, 0.0f}};
    for (const Point& p : points) {
      CAPTURE(p.s);
      CHECK(clipped_relu(p.s, c) == p.rho);
      CHECK(clipped_relu_derivative(p.s, c) == p.rho_prime);
    }
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    CHECK(std::isnan(clipped_relu(nan, c)));
    CHECK(clipped_relu_derivative(nan, c) == 0.0f);
    CHECK(clipped_relu(inf, c) == c);
    CHECK(clipped_relu(-inf, c) == 0.0f);
  }
  for (float s : {-0.5f, 0.0f, 0.3f, 1.0f, 1.5f}) {
    CHECK(hard_sigmoid(s) == clipped_relu(s, 1.0f));
    CHECK(hard_sigmoid_derivative(s) == clipped_relu_derivative(s, 1.0f));
  }
}

TEST_CASE("clipped relu: every integrator's unit step stays in [0, c] and is s = rho(h) at the fixed point") {
  const float c = kReluSix;
  // Fixed point: s = rho((h + beta y) / (1 + beta)).
  CHECK(hopfield_unit_step(Integrator::fixed_point, 0.5f, 0.0f, 4.0f, 0.0f, 0.0f, c) == 4.0f);
  CHECK(hopfield_unit_step(Integrator::fixed_point, 0.5f, 0.0f, 9.0f, 0.0f, 0.0f, c) == c);
  CHECK(hopfield_unit_step(Integrator::fixed_point, 0.5f, 0.0f, -2.0f, 0.0f, 0.0f, c) == 0.0f);
  // Gradient flow: the force rho'(s) h - s vanishes at s = h inside, and the wall
  // at c holds a unit whose field pushes it past (rho'(c) = 1: the closed interval).
  CHECK(hopfield_force(4.0f, 4.0f, 0.0f, 0.0f, c) == 0.0f);
  CHECK(hopfield_force(c, 9.0f, 0.0f, 0.0f, c) == 3.0f);
  CHECK(hopfield_unit_step(Integrator::gradient_flow, 0.5f, c, 9.0f, 0.0f, 0.0f, c) == c);
  CHECK(hopfield_unit_step(Integrator::gradient_flow, 0.5f, 5.0f, 5.5f, 0.0f, 0.0f, c) == 5.25f);
  // cSB: an inelastic wall at c, the momentum zeroed there.
  float s = 5.9f, y = 2.0f;
  csb_unit_step(0.1f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, c, s, y);
  CHECK(s == c);
  CHECK(y == 0.0f);
  // LayerStepOp carries c to every unit of a row.
  std::vector<float> states = {0.0f, 0.0f, 0.0f}, drive = {-1.0f, 3.0f, 8.0f}, bias = {0.0f, 0.0f, 0.0f};
  LayerStepOp op{states.data(), drive.data(), nullptr, bias.data(), nullptr, 0.0f, 0.5f, Integrator::fixed_point,
                 3, c};
  op.row(0);
  CHECK(states == std::vector<float>{0.0f, 3.0f, c});
}

TEST_CASE("clipped relu: a dense network with c = 6 reaches the reference's fixed point on every path") {
  RangeSeen seen;
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    CAPTURE(layers.size());
    test::Fixture f(layers, cost, 5, 11, 0.5, "cpu", kReluSix);
    scale_inputs(f, f.model, f.batch);
    std::vector<States> expected;
    for (int s = 0; s < f.batch; ++s) expected.push_back(reference::free_fixed_point(f.net, f.xs[s]));
    for (const PhaseSpec& spec :
         {PhaseSpec{Integrator::fixed_point, 0.5f, 400, 0.0f}, PhaseSpec{Integrator::gradient_flow, 0.5f, 800, 0.0f}}) {
      // GEMM path (the fixture's), then the fused path with the same parameters.
      DenseHopfield fused(*f.backend, DenseHopfieldShape{layers, cost, kReluSix}, f.batch, RelaxationPath::fused);
      for (std::size_t t = 0; t < fused.parameters().weights.size(); ++t) {
        fused.parameters().weights[t].copy_from_host(f.model.parameters().weights[t].to_host());
        fused.parameters().biases[t].copy_from_host(f.model.parameters().biases[t].to_host());
      }
      fused.set_input(f.x.data(), f.batch);
      const auto gemm = f.states_of(f.relaxed(spec));
      const auto fused_states =
          test::states_per_sample(fused, test::relaxed_state(fused, f.target.data(), spec), f.batch);
      double worst_gemm = 0, worst_fused = 0;
      for (int s = 0; s < f.batch; ++s) {
        worst_gemm = std::max(worst_gemm, max_difference(gemm[s], expected[s]));
        worst_fused = std::max(worst_fused, max_difference(fused_states[s], expected[s]));
        seen.add(gemm[s], kReluSix);
      }
      CAPTURE(static_cast<int>(spec.integrator));
      test::check_within("gemm path: max |s_engine - s_reference|", worst_gemm, 1e-4);
      test::check_within("fused path: max |s_engine - s_reference|", worst_fused, 1e-4);
    }
  }
  seen.check();
}

TEST_CASE("clipped relu: symmetric EP with c = 6 matches the implicit gradient") {
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    test::Fixture f(layers, cost, 6, 101, 0.5, "cpu", kReluSix);
    scale_inputs(f, f.model, f.batch);
    const reference::Gradient exact = reference::implicit_gradient(f.net, f.xs, f.labels);
    const reference::Gradient symmetric = f.engine_ep_gradient(0.01f, true, 400);
    const double cosine = reference::cosine_similarity(symmetric, exact);
    CAPTURE(layers.size());
    MESSAGE("cosine " << cosine << ", relative error " << reference::relative_error(symmetric, exact));
    CHECK(cosine > 0.99);
  }
}

TEST_CASE("clipped relu: a conv network with c = 6 settles at stationary points, the reference's by fixed point") {
  ConvHopfieldShape shape;
  shape.input = {2, 6, 6};
  shape.convs = {{3, 3, 1, 1}, {4, 2, 1, 0}};  // 6x6 -> pool 3x3 -> 2x2 -> pool 1x1
  shape.pool = PoolKind::max;
  shape.dense = {5, 3};
  shape.activation_max = kReluSix;
  RangeSeen seen;
  for (const PhaseSpec& spec :
       {PhaseSpec{Integrator::fixed_point, 0.5f, 400, 0.0f}, PhaseSpec{Integrator::gradient_flow, 0.5f, 800, 0.0f}}) {
    test::FixtureBase f;
    const int batch = 4;
    ConvHopfield model(*f.backend, shape, batch);
    conv_reference::Network net = conv_reference::network_of(shape);
    CHECK(net.activation_max == kReluSix);
    std::mt19937 rng(5);
    // Weights small enough that the synchronous map contracts (test_conv_hopfield.cpp).
    test::draw_matched_parameters(model.parameters(), rng, 0.3, -0.2, 0.3, net.weights, net.biases);
    f.draw_batch(rng, batch, shape.input.units(), shape.classes());
    scale_inputs(f, model, batch);
    const auto engine = test::states_per_sample(model, test::relaxed_state(model, f.target.data(), spec), batch);
    double worst = 0, worst_stationarity = 0;
    for (int n = 0; n < batch; ++n) {
      worst = std::max(worst, max_difference(engine[n], conv_reference::free_fixed_point(net, f.xs[n])));
      // Projected stationarity: s = clip(-dE/ds + s, 0, c).
      const auto fields = conv_reference::fields(net, f.xs[n], engine[n]);
      for (std::size_t l = 0; l < fields.size(); ++l)
        for (std::size_t u = 0; u < fields[l].size(); ++u)
          worst_stationarity =
              std::max(worst_stationarity, std::abs(std::clamp(fields[l][u], 0.0, 6.0) - engine[n][l][u]));
      seen.add(engine[n], kReluSix);
    }
    CAPTURE(static_cast<int>(spec.integrator));
    test::check_within("max |clip(field, 0, 6) - s|", worst_stationarity, 1e-4);
    // The fixed-point map is the reference's; gradient flow may settle in another of
    // the stationary points that max pooling allows.
    if (spec.integrator == Integrator::fixed_point)
      test::check_within("max |s_engine - s_reference|", worst, 1e-4);
    else
      MESSAGE("gradient flow: max |s_engine - s_fixed_point_reference| = " << worst);
  }
  seen.check();
}

TEST_CASE("clipped relu: gradcheck of the tiny dense config agrees to cosine 0.999") {
  nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/gradcheck_tiny.json");
  apply_override(user, "model.activation=clipped_relu");
  const Config config = parse_config(user, "gradcheck_tiny.json");
  CHECK(config.model.activation_max == kReluSix);
  auto backend = make_backend("cpu");
  const nlohmann::json report = run_gradcheck(*backend, config, GradcheckOptions{8});
  REQUIRE(report["tensors"].size() == 2);
  for (const auto& tensor : report["tensors"]) CHECK(tensor["cosine"].get<double>() >= 0.999);
}

TEST_CASE("clipped relu: config keys, and the kinds without a clipped activation refuse it") {
  const auto parsed = [](const nlohmann::json& model) {
    return parse_config(nlohmann::json{{"model", model}}, "test").model.activation_max;
  };
  CHECK(parsed(nlohmann::json::object()) == kHardSigmoidMax);
  CHECK(parsed({{"activation", "clipped_relu"}}) == kReluSix);
  CHECK(parsed({{"activation", "clipped_relu"}, {"activation_max", 2.5}}) == 2.5f);
  CHECK(parsed({{"kind", "conv_hopfield"}, {"layers", {10}}, {"activation", "clipped_relu"}}) == kReluSix);
  // The bound of a hard sigmoid is 1: setting c there would silently do nothing.
  test::check_contains(test::thrown_message<ConfigError>([&] { parsed({{"activation_max", 3.0}}); }),
                       {"model.activation_max", "model.activation=clipped_relu"});
  CHECK_THROWS_AS(parsed({{"activation", "clipped_relu"}, {"activation_max", 0.0}}), ConfigError);
  auto backend = make_backend("cpu");
  for (float c : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN()})
    CHECK_THROWS_AS(DenseHopfield(*backend, DenseHopfieldShape{{3, 2}, CostKind::mse, c}, 1), std::invalid_argument);
  for (const char* kind : {"ising", "oscillator", "predictive_coding"}) {
    CAPTURE(kind);
    const std::string message = test::thrown_message<ConfigError>([&] {
      parsed({{"kind", kind}, {"activation", "clipped_relu"}});
    });
    test::check_contains(message, {"model.activation", "clipped_relu", kind});
  }
}

}  // namespace eqprop
