// Physics of the convolutional Hopfield network on the CPU backend, against the
// independent double-precision reference (models/conv_hopfield_reference): the
// energy, the fixed point, energy descent under gradient flow, the contrastive
// kernel and bias updates, the EP gradient against central differences of the
// loss; then the config checks, a checkpoint round trip and a short training.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/gradcheck.h"
#include "engine/safetensors.h"
#include "engine/trainer.h"
#include "engine/training_run.h"
#include "kernels/error.h"
#include "models/conv_hopfield.h"
#include "models/conv_hopfield_reference.h"
#include "tests/backends.h"
#include "tests/model_fixture.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// A small conv network with the same random parameters in the engine and the
// reference, and a batch of random inputs in [0, 1) and labels.
struct ConvFixture : test::FixtureBase {
  ConvHopfieldShape shape;
  conv_reference::Network net;
  std::unique_ptr<ConvHopfield> model;
  int batch;

  ConvFixture(ConvHopfieldShape s, int batch_size, unsigned seed, double weight_scale = 0.5,
              std::int64_t workspace_floats = ConvHopfield::kDefaultWorkspaceFloats, const char* backend_name = "cpu")
      : FixtureBase(backend_name), shape(std::move(s)), batch(batch_size) {
    model = std::make_unique<ConvHopfield>(*backend, shape, batch, workspace_floats);
    net = conv_reference::network_of(shape);
    std::mt19937 rng(seed);
    test::draw_matched_parameters(model->parameters(), rng, weight_scale, -0.2, 0.3, net.weights, net.biases);
    draw_batch(rng, batch, shape.input.units(), shape.classes());
    model->set_input(x.data(), batch);
  }

  // Per sample, per state layer.
  std::vector<conv_reference::States> states_of(const NetworkState& state) const {
    return test::states_per_sample(*model, state, batch);
  }

  // A state with every unit uniform in [0, 1).
  NetworkState random_state(std::mt19937& rng) {
    NetworkState state = model->make_state();
    for (auto& layer : state.layers) layer.copy_from_host(test::random_vector(rng, layer.size(), 0.0f, 1.0f));
    return state;
  }

  NetworkState relaxed(const PhaseSpec& spec) { return test::relaxed_state(*model, target.data(), spec); }
};

ConvHopfieldShape tiny_shape(PoolKind pool, CostKind cost) {
  ConvHopfieldShape shape;
  shape.input = {2, 6, 6};
  shape.convs = {{3, 3, 1, 1}, {4, 2, 1, 0}};  // 6x6 -> pool 3x3 -> 2x2 -> pool 1x1
  if (pool == PoolKind::none) shape.convs = {{3, 3, 1, 1}, {2, 3, 2, 0}};  // 6x6 -> 2x2
  shape.pool = pool;
  shape.dense = cost == CostKind::mse ? std::vector<int>{5, 3} : std::vector<int>{3};
  shape.cost = cost;
  return shape;
}

// A tiny network with skip couplings (a residual Hopfield network): four conv
// layers 8x8 -> 8x8 -> 4x4 -> 4x4 -> 2x2 without pooling, skips of stride 2 and 4
// out of the input and out of state layers, joining layers of equal parity (0-2,
// 1-3, 2-4) and of different parity (1-4); or, with max pooling, 8 -> 4 -> 2 -> 1
// with a stride-4 skip out of the input and one between states.
ConvHopfieldShape skip_shape(PoolKind pool, CostKind cost) {
  ConvHopfieldShape shape;
  shape.input = {2, 8, 8};
  shape.pool = pool;
  if (pool == PoolKind::none) {
    shape.convs = {{3, 3, 1, 1}, {4, 3, 2, 1}, {3, 3, 1, 1}, {3, 3, 2, 1}};
    shape.skips = {{0, 2}, {1, 3}, {2, 4}, {1, 4}};
  } else {
    shape.convs = {{3, 3, 1, 1}, {4, 3, 1, 1}, {3, 3, 1, 1}};
    shape.skips = {{0, 2}, {1, 3}};
  }
  shape.dense = cost == CostKind::mse ? std::vector<int>{5, 3} : std::vector<int>{3};
  shape.cost = cost;
  return shape;
}

struct Variant {
  PoolKind pool;
  CostKind cost;
  bool skips = false;
  ConvHopfieldShape shape() const { return skips ? skip_shape(pool, cost) : tiny_shape(pool, cost); }
  std::string name() const { return "pool " + std::to_string(int(pool)) + (skips ? " with skips" : ""); }
};

const std::vector<Variant> kVariants = {
    {PoolKind::max, CostKind::mse},
    {PoolKind::max, CostKind::cross_entropy},
    {PoolKind::avg, CostKind::mse},
    {PoolKind::none, CostKind::cross_entropy},
    {PoolKind::none, CostKind::mse, true},
    {PoolKind::max, CostKind::cross_entropy, true},
};

// A workspace of two samples' columns of the widest conv layer: a batch of 5 runs in
// chunks of 2, 2, 1.
std::int64_t two_samples_of_columns(const ConvHopfieldShape& shape) {
  std::int64_t columns = 0;
  for (int k = 0; k < shape.conv_layers(); ++k) columns = std::max(columns, shape.conv_shape(k, 1).columns_size());
  return 2 * columns;
}

double max_difference(const conv_reference::States& a, const conv_reference::States& b) {
  double worst = 0;
  for (std::size_t l = 0; l < a.size(); ++l)
    for (std::size_t i = 0; i < a[l].size(); ++i) worst = std::max(worst, std::abs(a[l][i] - b[l][i]));
  return worst;
}

}  // namespace

TEST_CASE_TEMPLATE("conv hopfield: the energy equals the naive loops' at random states", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const Variant& v : kVariants) {
    ConvFixture f(v.shape(), 5, 3, 0.5, ConvHopfield::kDefaultWorkspaceFloats, OnBackend::name);
    std::mt19937 rng(9);
    const NetworkState state = f.random_state(rng);
    DeviceBuffer<float> energy(*f.backend, f.batch);
    f.model->energy(state, energy.data());
    const std::vector<float> engine = energy.to_host();
    const auto states = f.states_of(state);
    double worst = 0;
    for (int n = 0; n < f.batch; ++n) {
      const double expected = conv_reference::energy(f.net, f.xs[n], states[n]);
      worst = std::max(worst, std::abs(engine[n] - expected) / std::max(1.0, std::abs(expected)));
    }
    test::check_within(v.name() + ": max relative energy error", worst, 1e-5);
  }
}

TEST_CASE("conv hopfield: the free fixed point is the reference's, and a stationary point of E") {
  for (const Variant& v : kVariants) {
    // Weights small enough that the synchronous map contracts (stronger couplings
    // can make it oscillate between two states, with the same fixed points).
    ConvFixture f(v.shape(), 4, 5, v.skips ? 0.2 : 0.3);
    const auto engine = f.states_of(f.relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, 400, 0.0f}));
    double worst = 0, worst_stationarity = 0;
    for (int n = 0; n < f.batch; ++n) {
      worst = std::max(worst, max_difference(engine[n], conv_reference::free_fixed_point(f.net, f.xs[n])));
      // Projected stationarity: s = clip(-dE/ds + s) on the box [0, 1].
      const auto fields = conv_reference::fields(f.net, f.xs[n], engine[n]);
      for (std::size_t l = 0; l < fields.size(); ++l)
        for (std::size_t u = 0; u < fields[l].size(); ++u)
          worst_stationarity =
              std::max(worst_stationarity, std::abs(std::clamp(fields[l][u], 0.0, 1.0) - engine[n][l][u]));
    }
    const std::string variant = v.name();
    test::check_within(variant + ": max |s_engine - s_reference|", worst, 1e-5);
    test::check_within(variant + ": max |clip(field) - s|", worst_stationarity, 1e-5);
  }
}

TEST_CASE("conv hopfield: the energy never increases under gradient flow with a small step") {
  for (const Variant& v : kVariants) {
    ConvFixture f(v.shape(), 3, 7, 0.8);
    NetworkState state = f.model->make_state();
    f.model->reset(state);
    std::vector<double> previous(f.batch);
    for (int n = 0; n < f.batch; ++n) previous[n] = conv_reference::energy(f.net, f.xs[n], f.states_of(state)[n]);
    const std::vector<double> initial = previous;
    double worst_rise = 0;
    for (int step = 0; step < 200; ++step) {
      f.model->relax(state, f.target.data(), PhaseSpec{Integrator::gradient_flow, 0.05f, 1, 0.0f});
      const auto states = f.states_of(state);
      for (int n = 0; n < f.batch; ++n) {
        const double energy = conv_reference::energy(f.net, f.xs[n], states[n]);
        worst_rise = std::max(worst_rise, energy - previous[n]);
        previous[n] = energy;
      }
    }
    // Float states: a few ulps of E are rounding.
    test::check_within("largest energy rise in a step", worst_rise, 1e-6);
    for (int n = 0; n < f.batch; ++n) CHECK(previous[n] < initial[n]);
  }
}

TEST_CASE("conv hopfield: kernel and bias updates are the naive correlations, over batch chunks") {
  for (const Variant& v : kVariants) {
    const ConvHopfieldShape shape = v.shape();
    ConvFixture f(shape, 5, 13, 0.5, two_samples_of_columns(shape));
    REQUIRE(f.model->chunk_samples() == 2);
    std::mt19937 rng(21);
    const NetworkState a = f.random_state(rng), b = f.random_state(rng);
    const float beta_a = 0.3f, beta_b = -0.2f;
    ParameterSet gradient = f.model->make_parameter_like();
    f.model->ep_gradient(a, beta_a, b, beta_b, f.target.data(), gradient);
    // (dE/dtheta(a) - dE/dtheta(b)) / (beta_a - beta_b), batch mean, by naive loops.
    const auto states_a = f.states_of(a), states_b = f.states_of(b);
    conv_reference::Network expected = f.net;
    for (auto& w : expected.weights) std::fill(w.begin(), w.end(), 0.0);
    for (auto& w : expected.biases) std::fill(w.begin(), w.end(), 0.0);
    const double scale = 1.0 / ((beta_a - beta_b) * f.batch);
    for (int n = 0; n < f.batch; ++n) {
      const auto ga = conv_reference::energy_gradient(f.net, f.xs[n], states_a[n]);
      const auto gb = conv_reference::energy_gradient(f.net, f.xs[n], states_b[n]);
      for (std::size_t t = 0; t < expected.weights.size(); ++t) {
        for (std::size_t i = 0; i < expected.weights[t].size(); ++i)
          expected.weights[t][i] += scale * (ga.weights[t][i] - gb.weights[t][i]);
        for (std::size_t i = 0; i < expected.biases[t].size(); ++i)
          expected.biases[t][i] += scale * (ga.biases[t][i] - gb.biases[t][i]);
      }
    }
    conv_reference::Network engine = f.net;
    for (int t = 0; t < shape.weight_tensors(); ++t) {
      if (t == shape.state_layers() && shape.cost == CostKind::cross_entropy) continue;  // the read-out's
      const auto w = gradient.weights[t].to_host(), bias = gradient.biases[t].to_host();
      engine.weights[t].assign(w.begin(), w.end());
      engine.biases[t].assign(bias.begin(), bias.end());
      const double error = conv_reference::relative_error(engine, expected, t);
      test::check_within(v.name() + ", tensor " + std::to_string(t) + ": relative error",
                         error, 1e-5);
    }
  }
}

TEST_CASE_TEMPLATE("conv hopfield: symmetric EP at small beta matches the exact gradient (central differences)",
                   OnBackend, EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  auto backend = make_backend(OnBackend::name);
  // The shipped config (max pooling, cross-entropy read-out), average pooling with
  // the MSE output layer in the energy, and no pooling. The float engine's EP
  // estimate at beta = 0.001 carries float rounding of the states divided by beta:
  // a relative error of order 1e-4 (up to 1e-3 seen), hence the 5e-3 tolerance.
  for (const char* pool : {"max", "avg", "none"}) {
    nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/gradcheck_tiny_conv.json");
    user["conv"]["pool"] = pool;
    if (std::string(pool) == "avg") user["model"]["cost"] = "mse";
    const nlohmann::json report = run_gradcheck(*backend, parse_config(user, "gradcheck_tiny_conv"), GradcheckOptions{6});
    MESSAGE(std::string(pool) << " pooling: " << report["tensors"].dump() << ", redrawn "
                              << report["samples_redrawn_near_a_kink"]);
    for (const auto& tensor : report["tensors"]) {
      CAPTURE(tensor.dump());
      CHECK(tensor["cosine"].get<double>() > 0.9999);
      eqprop::test::check_within("relative error of the tensor", tensor["relative_error"].get<double>(), 5e-3);
    }
  }
  // A residual network (skips out of the input and out of a state layer, clipped
  // ReLU, the asynchronous order): every tensor, the skips' kernels among them.
  const nlohmann::json report = run_gradcheck(
      *backend, parse_config(read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/gradcheck_tiny_resnet.json"),
                             "gradcheck_tiny_resnet"),
      GradcheckOptions{6});
  MESSAGE("skips: " << report["tensors"].dump());
  REQUIRE(report["tensors"].size() == 6);  // 3 conv, the read-out, 2 skips
  for (const auto& tensor : report["tensors"]) {
    CAPTURE(tensor.dump());
    CHECK(tensor["cosine"].get<double>() > 0.9999);
    eqprop::test::check_within("relative error of the tensor", tensor["relative_error"].get<double>(), 5e-3);
  }
}

TEST_CASE_TEMPLATE("conv hopfield: the implicit gradient equals central differences of the loss", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  auto backend = make_backend(OnBackend::name);
  // Max pooling with the read-out, average pooling with the MSE output, no pooling,
  // and the residual network: the adjoint runs through the free state's argmax.
  struct Case {
    const char* config;
    const char* pool;
    const char* cost;
  };
  for (const Case c : {Case{"gradcheck_tiny_conv", "max", "cross_entropy"}, Case{"gradcheck_tiny_conv", "avg", "mse"},
                       Case{"gradcheck_tiny_conv", "none", "cross_entropy"}, Case{"gradcheck_tiny_resnet", "none", "mse"}}) {
    nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/" + c.config + ".json");
    user["conv"]["pool"] = c.pool;
    user["model"]["cost"] = c.cost;
    user["training"]["algorithm"] = "implicit";
    user["training"]["adjoint_iterations"] = 400;
    const nlohmann::json report = run_gradcheck(*backend, parse_config(user, c.config), GradcheckOptions{6});
    MESSAGE(c.config << ", " << c.pool << ", " << c.cost << ": " << report["tensors"].dump());
    for (const auto& tensor : report["tensors"]) {
      CAPTURE(tensor.dump());
      CHECK(tensor["cosine"].get<double>() > 0.99999);
      eqprop::test::check_within("relative error of the tensor", tensor["relative_error"].get<double>(), 1e-3);
    }
  }
}

namespace {

// ||a - b|| / ||b|| over every weight and bias tensor of two gradients.
double gradient_distance(const reference::Gradient& a, const reference::Gradient& b) {
  double difference = 0, norm = 0;
  const auto add = [&](const std::vector<std::vector<double>>& x, const std::vector<std::vector<double>>& y) {
    for (std::size_t t = 0; t < x.size(); ++t)
      for (std::size_t i = 0; i < x[t].size(); ++i) {
        difference += (x[t][i] - y[t][i]) * (x[t][i] - y[t][i]);
        norm += y[t][i] * y[t][i];
      }
  };
  add(a.weights, b.weights);
  add(a.biases, b.biases);
  return std::sqrt(difference / norm);
}

// The EP gradient (symmetric, beta 0.1) of a fresh fixture of `variant` whose
// nudged phases compute their couplings by `mode`.
reference::Gradient ep_gradient_by(const Variant& variant, NudgedCouplings mode, UpdateOrder order,
                                   const char* backend_name) {
  const ConvHopfieldShape shape = variant.shape();
  ConvFixture f(shape, 5, 31, 0.5, two_samples_of_columns(shape), backend_name);
  REQUIRE(f.model->chunk_samples() == 2);
  f.model->set_nudged_couplings(mode);
  PhaseSpec spec{Integrator::fixed_point, 0.5f, 40, 0.0f};
  spec.order = order;
  return test::engine_ep_gradient(*f.model, f.target.data(), f.batch, 0.1f, true, spec);
}

}  // namespace

TEST_CASE_TEMPLATE("conv hopfield: nudged phases from the reference give the direct EP gradient in fp32", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  // L(r) + L(s - r) = L(s) for every linear map of the chain and of the skips, and
  // the update's products on differences sum to the same: in fp32 the two modes
  // differ by rounding only, for every pooling, with skips, both update orders and a
  // batch in chunks.
  for (const Variant& v : kVariants) {
    for (const UpdateOrder order : {UpdateOrder::synchronous, UpdateOrder::asynchronous}) {
      const std::string name = v.name() + (order == UpdateOrder::asynchronous ? ", asynchronous" : ", synchronous");
      const reference::Gradient direct = ep_gradient_by(v, NudgedCouplings::direct, order, OnBackend::name);
      const reference::Gradient from_reference =
          ep_gradient_by(v, NudgedCouplings::from_reference, order, OnBackend::name);
      test::check_within(name + ": from the reference against direct", gradient_distance(from_reference, direct),
                         1e-4);
      // automatic is direct in fp32: the same bits.
      const reference::Gradient automatic = ep_gradient_by(v, NudgedCouplings::automatic, order, OnBackend::name);
      CHECK(automatic.weights == direct.weights);
      CHECK(automatic.biases == direct.biases);
    }
  }
}

TEST_CASE("conv hopfield: the reference grows with the batch") {
  // Its buffers hold the batch of the first nudged phase; a larger batch later
  // allocates them again and gives what a model that saw only that batch gives.
  const Variant v = kVariants[5];  // max pooling, skips
  const PhaseSpec spec{Integrator::fixed_point, 0.5f, 30, 0.0f};
  ConvFixture grown(v.shape(), 5, 41);
  grown.model->set_nudged_couplings(NudgedCouplings::from_reference);
  grown.model->set_input(grown.x.data(), 2);
  (void)test::engine_ep_gradient(*grown.model, grown.target.data(), 2, 0.1f, true, spec);
  grown.model->set_input(grown.x.data(), 5);
  const reference::Gradient after = test::engine_ep_gradient(*grown.model, grown.target.data(), 5, 0.1f, true, spec);
  ConvFixture fresh(v.shape(), 5, 41);
  fresh.model->set_nudged_couplings(NudgedCouplings::from_reference);
  const reference::Gradient expected = test::engine_ep_gradient(*fresh.model, fresh.target.data(), 5, 0.1f, true, spec);
  CHECK(after.weights == expected.weights);
  CHECK(after.biases == expected.biases);
}

TEST_CASE_TEMPLATE("conv hopfield: in bf16 the gradcheck passes with nudged phases from the reference, not direct ones",
                   OnBackend, EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  // bf16 products round their operands to 8 bits: a field computed from the state
  // carries an error of order 2^-9 |s| that differs between the two nudged phases,
  // and EP divides their difference by 2 beta (0.001 here). From the reference the
  // rounding scales with |s - r| = O(beta) (conv.nudged_couplings, models/conv_hopfield.h).
  struct Case {
    const char* config;
    const char* pool;  // null: the config's
  };
  for (const Case& c : {Case{"gradcheck_tiny_conv", "max"}, Case{"gradcheck_tiny_conv", "avg"},
                        Case{"gradcheck_tiny_conv", "none"}, Case{"gradcheck_tiny_resnet", nullptr}}) {
    double worst[2] = {1, 1};  // direct, auto
    const char* modes[2] = {"direct", "auto"};
    for (int m = 0; m < 2; ++m) {
      auto backend = make_backend(OnBackend::name);
      nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/" + c.config + ".json");
      if (c.pool) user["conv"]["pool"] = c.pool;
      if (c.pool && std::string(c.pool) == "avg") user["model"]["cost"] = "mse";
      user["conv"]["nudged_couplings"] = modes[m];
      user["training"]["gemm_precision"] = "bf16";
      const nlohmann::json report = run_gradcheck(*backend, parse_config(user, c.config), GradcheckOptions{6});
      for (const auto& tensor : report["tensors"]) worst[m] = std::min(worst[m], tensor["cosine"].get<double>());
      MESSAGE(c.config << (c.pool ? std::string(", pool ") + c.pool : std::string()) << ", bf16, " << modes[m]
                       << ": " << report["tensors"].dump());
    }
    CHECK(worst[1] > 0.999);  // 0.99987 or more seen
    CHECK(worst[0] < 0.99);   // 0.93 or less seen: the test tells the two apart
  }
}

TEST_CASE("conv hopfield: with skips, the asynchronous order reaches the synchronous map's fixed point") {
  for (const PoolKind pool : {PoolKind::none, PoolKind::max}) {
    ConvFixture f(skip_shape(pool, CostKind::mse), 3, 17, 0.3);
    PhaseSpec spec{Integrator::fixed_point, 0.5f, 400, 0.0f};
    spec.order = UpdateOrder::asynchronous;
    const auto engine = f.states_of(f.relaxed(spec));
    double worst = 0;
    for (int n = 0; n < f.batch; ++n)
      worst = std::max(worst, max_difference(engine[n], conv_reference::free_fixed_point(f.net, f.xs[n])));
    test::check_within("pool " + std::to_string(int(pool)) + ": max |s_async - s_reference|", worst, 1e-5);
  }
}

TEST_CASE("conv hopfield: config errors name the key and the sizes") {
  auto parse = [](const nlohmann::json& conv) {
    return parse_config(nlohmann::json{{"model", {{"kind", "conv_hopfield"}, {"layers", {10}}}}, {"conv", conv}},
                        "test");
  };
  // 28 -> conv 3x3 no padding -> 26 -> pool 13 -> conv 3x3 pad 1 -> 13: odd, 2x2 pooling cannot tile it.
  test::check_contains(test::thrown_message<ConfigError>([&] {
                         parse({{"channels", {4, 8}}, {"kernel", {3}}, {"padding", {0, 1}}});
                       }),
                       {"conv layer 2", "13x13", "even"});
  test::check_contains(
      test::thrown_message<ConfigError>([&] { parse({{"channels", {4, 8}}, {"kernel", {3, 3, 3}}}); }),
      {"conv.kernel", "3 entries", "2 conv layers"});
  test::check_contains(test::thrown_message<ConfigError>([&] { parse({{"input_shape", {28, 28}}}); }),
                       {"conv.input_shape", "[channels, height, width]"});
  test::check_contains(test::thrown_message<ConfigError>([&] {
                         parse({{"input_shape", {1, 4, 4}}, {"channels", {2, 2}}, {"padding", {0}}, {"pool", "none"}});
                       }),
                       {"conv layer 2", "larger than the padded input 2x2"});
  // Skips: planes out of range, adjacent, twice, or no 1x1 stride that fits.
  auto parse_skips = [&](const nlohmann::json& skips) {
    return parse({{"input_shape", {1, 8, 8}}, {"channels", {2, 2, 2}}, {"stride", {1, 2, 1}}, {"pool", "none"},
                  {"skips", skips}});
  };
  test::check_contains(test::thrown_message<ConfigError>([&] { parse_skips({{0, 4}}); }),
                       {"conv.skips[0] = [0, 4]", "0 (the input) to 3"});
  test::check_contains(test::thrown_message<ConfigError>([&] { parse_skips({{1, 2}}); }),
                       {"conv.skips[0] = [1, 2]", "at least two apart"});
  test::check_contains(test::thrown_message<ConfigError>([&] { parse_skips({{0, 2}, {0, 2}}); }),
                       {"conv.skips[1]", "twice"});
  test::check_contains(test::thrown_message<ConfigError>([&] { parse_skips({{0}}); }),
                       {"conv.skips[0]", "pair"});
  test::check_contains(test::thrown_message<ConfigError>([&] {
                         // 9x9 -> 9x9 -> 4x4: strides 2 and 3 give 5x5 and 3x3.
                         parse({{"input_shape", {1, 9, 9}}, {"channels", {2, 2}}, {"kernel", {3}},
                                {"stride", {1, 2}}, {"padding", {1, 0}}, {"pool", "none"}, {"skips", {{0, 2}}}});
                       }),
                       {"conv.skips[0]", "1x9x9", "2x4x4"});
  // A valid one builds the expected model.
  const Config config = parse({{"channels", {4, 8}}, {"kernel", {5, 3}}, {"padding", {2, 1}}});
  auto backend = make_backend("cpu");
  Trainer trainer(*backend, config);
  CHECK(trainer.model().kind() == "conv_hopfield");
  CHECK(trainer.model().input_size() == 784);
  CHECK(trainer.model().state_units(1) == 8 * 7 * 7);
  CHECK(trainer.model().tensor_shape(1, false) == std::vector<std::int64_t>{8, 4, 3, 3});
}

namespace {

// 1x4x4 images, two classes (tests/synthetic_data.h): conv 3x3 pad 1 + max pool
// to 3x2x2, then the output layer.
Config halves_conv_config(int epochs, const char* cost) {
  return parse_config(nlohmann::json{{"model", {{"kind", "conv_hopfield"}, {"layers", {2}}, {"cost", cost}}},
                                     {"conv", {{"input_shape", {1, 4, 4}}, {"channels", {3}}, {"padding", {1}}}},
                                     {"dynamics", {{"t_free", 20}, {"t_nudge", 8}}},
                                     {"ep", {{"beta", 0.3}}},
                                     {"optimizer", {{"lr", 0.05}}},
                                     {"training", {{"epochs", epochs}, {"batch_size", 16}, {"eval_batch_size", 50}}}},
                      "test");
}

}  // namespace

TEST_CASE("conv hopfield: training on a synthetic image task learns it") {
  auto backend = make_backend("cpu");
  const DatasetSplits data = test::halves();
  for (const char* cost : {"mse", "cross_entropy"}) {
    const Config config = halves_conv_config(3, cost);
    Trainer trainer(*backend, config, 16, 2);
    const Normalization normalization = make_normalization(config, data.train);
    const double before = trainer.evaluate(data.test, normalization, 0).accuracy;
    double first_loss = 0, last_loss = 0;
    for (int epoch = 0; epoch < config.training.epochs; ++epoch) {
      const BatchResult result = trainer.train_epoch(data.train, normalization, epoch, {});
      (epoch == 0 ? first_loss : last_loss) = result.loss_sum / result.size;
    }
    const double after = trainer.evaluate(data.test, normalization, 0).accuracy;
    MESSAGE(std::string(cost) << ": test accuracy " << before << " before training, " << after << " after "
                              << config.training.epochs << " epochs");
    CHECK(before < 0.8);
    CHECK(after > 0.9);
    CHECK(last_loss < first_loss);
  }
}

TEST_CASE("conv hopfield: a residual network learns the synthetic task and checkpoints its skip kernels") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  // conv 3 channels at 4x4, conv stride 2 to 3x2x2, a skip from the input onto it.
  auto config_of = [](int epochs) {
    return parse_config(
        nlohmann::json{{"model", {{"kind", "conv_hopfield"}, {"layers", {2}}, {"cost", "cross_entropy"}}},
                       {"conv",
                        {{"input_shape", {1, 4, 4}}, {"channels", {3, 3}}, {"stride", {1, 2}}, {"padding", {1}},
                         {"pool", "none"}, {"skips", {{0, 2}}}}},
                       {"dynamics", {{"t_free", 20}, {"t_nudge", 8}, {"order", "asynchronous"}}},
                       {"ep", {{"beta", 0.3}}},
                       {"optimizer", {{"lr", 0.05}}},
                       {"training", {{"epochs", epochs}, {"batch_size", 16}, {"eval_batch_size", 50}}}},
        "test");
  };
  const auto records = run_training(*backend, config_of(3), test::halves(), dir.path().string(), false, {});
  REQUIRE(!records.empty());
  MESSAGE("test accuracy after 3 epochs: " << records.back().test_acc);
  CHECK(records.back().test_acc > 0.9);
  const SafetensorsFile file = read_safetensors((dir.path() / kModelFile).string());
  // Tensors: conv 0, conv 1, the read-out, then the skip (3, 1, 1, 1) with an empty bias.
  CHECK(file.tensors.at("weights.3").shape == std::vector<std::int64_t>{3, 1, 1, 1});
  CHECK(file.tensors.at("biases.3").shape == std::vector<std::int64_t>{0});
  Trainer reloaded(*backend, config_of(3), 16, 2);
  CHECK(load_checkpoint(dir.path().string(), reloaded, true) == 3);
  CHECK(reloaded.model().parameters().weights[3].to_host() == file.tensors.at("weights.3").data);
  // The skip kernel learned: it moved from its initial values.
  Trainer fresh(*backend, config_of(3), 16, 2);
  CHECK(fresh.model().parameters().weights[3].to_host() != file.tensors.at("weights.3").data);
}

TEST_CASE("conv hopfield: a checkpoint holds PyTorch-shaped kernels and reloads through the trainer") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const Config config = halves_conv_config(1, "cross_entropy");
  run_training(*backend, config, test::halves(), dir.path().string(), false, {});
  const SafetensorsFile file = read_safetensors((dir.path() / kModelFile).string());
  CHECK(file.metadata.at("format") == "eqprop.conv_hopfield");
  CHECK(file.tensors.at("weights.0").shape == std::vector<std::int64_t>{3, 1, 3, 3});
  CHECK(file.tensors.at("biases.0").shape == std::vector<std::int64_t>{3});
  CHECK(file.tensors.at("weights.1").shape == std::vector<std::int64_t>{12, 2});

  Trainer reloaded(*backend, config, 16, 2);
  CHECK(load_checkpoint(dir.path().string(), reloaded, true) == 1);
  for (int t = 0; t < 2; ++t) {
    CHECK(reloaded.model().parameters().weights[t].to_host() == file.tensors.at("weights." + std::to_string(t)).data);
    CHECK(reloaded.momentum().biases[t].to_host() == file.tensors.at("momentum.biases." + std::to_string(t)).data);
  }
  // A resumed run continues where it stopped.
  const auto continued = run_training(*backend, halves_conv_config(2, "cross_entropy"), test::halves(),
                                      dir.path().string(), true, {});
  REQUIRE(continued.size() == 1);
  CHECK(continued.front().epoch == 2);
}

}  // namespace eqprop
