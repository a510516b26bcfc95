// The model registry (models/model_registry.h): a model kind that exists only in
// this test, registered through the registry alone, is declared in the config
// schema, built from a config naming it and trained by the unchanged Trainer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "engine/trainer.h"
#include "kernels/backend.h"
#include "kernels/error.h"
#include "models/model_registry.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using nlohmann::json;
using test::check_contains;
using test::thrown_message;

// E(s) = 1/2 ||s||^2 - s . (W^T x + b), one state layer of `classes` units, read
// out with the MSE cost. Its nudged fixed point is closed-form:
// s_beta = (W^T x + b + beta y) / (1 + beta), so one step relaxes a phase, and
// the loss 1/2 ||s_0 - y||^2 has the gradient dL/dW = x (s_0 - y)^T.
// Host loops on the CPU backend, whose buffers are host memory.
class QuadraticModel final : public EnergyModel {
 public:
  QuadraticModel(Backend& backend, int inputs, int classes, float weight_scale, int max_batch)
      : backend_(backend), inputs_(inputs), classes_(classes), weight_scale_(weight_scale), max_batch_(max_batch),
        parameters_(make_parameter_like()) {}

  std::string kind() const override { return "test_quadratic"; }
  Backend& backend() override { return backend_; }
  int input_size() const override { return inputs_; }
  int classes() const override { return classes_; }
  int max_batch() const override { return max_batch_; }

  void initialize(std::uint64_t seed, float gain) override {
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (DeviceBuffer<float>* tensor : {&parameters_.weights[0], &parameters_.biases[0]})
      for (std::size_t i = 0; i < tensor->size(); ++i) tensor->data()[i] = gain * weight_scale_ * uniform(rng);
  }
  ParameterSet& parameters() override { return parameters_; }
  const ParameterSet& parameters() const override { return parameters_; }
  ParameterSet make_parameter_like() const override {
    ParameterSet set;
    set.weights.emplace_back(backend_, std::size_t(inputs_) * classes_);
    set.biases.emplace_back(backend_, std::size_t(classes_));
    set.weights[0].zero();
    set.biases[0].zero();
    return set;
  }
  std::vector<std::int64_t> tensor_shape(int, bool bias) const override {
    return bias ? std::vector<std::int64_t>{classes_} : std::vector<std::int64_t>{inputs_, classes_};
  }

  NetworkState make_state() const override {
    NetworkState state;
    state.layers.emplace_back(backend_, std::size_t(max_batch_) * classes_);
    state.momenta.emplace_back(backend_, std::size_t(max_batch_) * classes_);
    return state;
  }
  int state_units(int) const override { return classes_; }
  void copy_state(const NetworkState& from, NetworkState& to, int batch) override {
    std::copy_n(from.layers[0].data(), std::size_t(batch) * classes_, to.layers[0].data());
  }
  void set_input(const float* x, int batch) override { x_ = x, batch_ = batch; }
  void reset(NetworkState& state) override { state.layers[0].zero(); }
  PhaseResult relax(NetworkState& state, const float* target, const PhaseSpec& spec) override {
    for (int n = 0; n < batch_; ++n)
      for (int c = 0; c < classes_; ++c) {
        const float nudge = spec.beta != 0.0f ? spec.beta * target[n * classes_ + c] : 0.0f;
        state.layers[0].data()[n * classes_ + c] = (drive(n, c) + nudge) / (1.0f + spec.beta);
      }
    return PhaseResult{1};
  }
  void energy(const NetworkState& state, float* energy) override {
    for (int n = 0; n < batch_; ++n) {
      energy[n] = 0.0f;
      for (int c = 0; c < classes_; ++c) {
        const float s = state.layers[0].data()[n * classes_ + c];
        energy[n] += 0.5f * s * s - s * drive(n, c);
      }
    }
  }
  // dE/dW = -x s^T, dE/db = -s: the EP estimate (dE/dtheta(s_a) - dE/dtheta(s_b)) / (beta_a - beta_b).
  void ep_gradient(const NetworkState& a, float beta_a, const NetworkState& b, float beta_b, const float*,
                   ParameterSet& gradient) override {
    gradient.weights[0].zero();
    gradient.biases[0].zero();
    const float scale = -1.0f / ((beta_a - beta_b) * batch_);
    for (int n = 0; n < batch_; ++n)
      for (int c = 0; c < classes_; ++c) {
        const float ds = a.layers[0].data()[n * classes_ + c] - b.layers[0].data()[n * classes_ + c];
        gradient.biases[0].data()[c] += scale * ds;
        for (int i = 0; i < inputs_; ++i)
          gradient.weights[0].data()[i * classes_ + c] += scale * x_[n * inputs_ + i] * ds;
      }
  }
  void metrics(const NetworkState& state, const float* target, float* loss, float* correct) override {
    for (int n = 0; n < batch_; ++n) {
      const float* s = state.layers[0].data() + n * classes_;
      const float* y = target + n * classes_;
      loss[n] = 0.0f;
      for (int c = 0; c < classes_; ++c) loss[n] += 0.5f * (s[c] - y[c]) * (s[c] - y[c]);
      correct[n] = std::max_element(s, s + classes_) - s == std::max_element(y, y + classes_) - y ? 1.0f : 0.0f;
    }
  }

 private:
  // (W^T x + b) of unit c of sample n.
  float drive(int n, int c) const {
    float h = parameters_.biases[0].data()[c];
    for (int i = 0; i < inputs_; ++i) h += parameters_.weights[0].data()[i * classes_ + c] * x_[n * inputs_ + i];
    return h;
  }

  Backend& backend_;
  int inputs_, classes_;
  float weight_scale_;
  int max_batch_;
  ParameterSet parameters_;
  const float* x_ = nullptr;
  int batch_ = 0;
};

struct QuadraticOptions {
  float weight_scale;
};

// The whole recipe of a new model kind: its declaration, registered for the
// lifetime of this object.
class RegisteredQuadratic {
 public:
  RegisteredQuadratic() {
    ModelKind kind;
    kind.name = "test_quadratic";
    kind.help = "a quadratic energy with a closed-form fixed point (tests only)";
    kind.keys = {{"quadratic.weight_scale", ConfigValueType::number, 0.5, 0, 10, true, {},
                  "Initial weights and biases uniform in +-weight_scale * model.init_gain."}};
    kind.minimum_layers = [](CostKind) { return std::size_t(2); };
    kind.parse_options = [](const json& resolved, const std::string&) {
      return std::any(QuadraticOptions{resolved.at("quadratic").at("weight_scale").get<float>()});
    };
    kind.check = [](const ModelRulesInput& in) {
      if (in.model.layers.size() != 2 || in.model.cost != CostKind::mse)
        throw ConfigError(in.source + ": model.kind = \"test_quadratic\" takes model.layers = [inputs, classes] "
                          "and the mse cost");
    };
    kind.weight_tensors = [](const ModelConfig&) { return std::size_t(1); };
    kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
      const auto& options = std::any_cast<const QuadraticOptions&>(model.options);
      return std::make_unique<QuadraticModel>(backend, model.layers[0], model.layers[1], options.weight_scale,
                                              max_batch);
    };
    kind.no_gradcheck = "a test model";
    register_model_kind(std::move(kind));
  }
  ~RegisteredQuadratic() { unregister_model_kind("test_quadratic"); }
  RegisteredQuadratic(const RegisteredQuadratic&) = delete;
  RegisteredQuadratic& operator=(const RegisteredQuadratic&) = delete;
};

constexpr int kInputs = 5, kClasses = 3, kBatch = 16;

json quadratic_config() {
  return json::parse(R"({
      "model": {"kind": "test_quadratic", "layers": [5, 3]},
      "quadratic": {"weight_scale": 0.3},
      "dynamics": {"t_free": 1, "t_nudge": 1},
      "ep": {"beta": 0.1},
      "optimizer": {"lr": 0.5, "momentum": 0.0},
      "training": {"batch_size": 16}})");
}

struct Batch {
  DeviceBuffer<float> x, target;
  std::vector<float> host_x, host_target;
};

Batch random_batch(Backend& backend) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  Batch batch{DeviceBuffer<float>(backend, kBatch * kInputs), DeviceBuffer<float>(backend, kBatch * kClasses), {}, {}};
  for (int i = 0; i < kBatch * kInputs; ++i) batch.host_x.push_back(uniform(rng));
  batch.host_target.assign(kBatch * kClasses, 0.0f);
  for (int n = 0; n < kBatch; ++n) batch.host_target[n * kClasses + rng() % kClasses] = 1.0f;
  batch.x.copy_from_host(batch.host_x);
  batch.target.copy_from_host(batch.host_target);
  return batch;
}

TEST_CASE("model registry: the built-in kinds, in model.kind's choices and the reference") {
  std::vector<std::string> names;
  for (const ModelKind& kind : model_kinds()) names.push_back(kind.name);
  CHECK(names ==
        std::vector<std::string>{"dense_hopfield", "conv_hopfield", "oscillator", "ising", "predictive_coding",
                                 "conv_predictive_coding"});
  CHECK(parse_config(json::object(), "defaults").model.kind == "dense_hopfield");  // the first is the default
  const std::string reference = config_reference_markdown();
  for (const std::string& name : names) CHECK(reference.find("`" + name + "`") != std::string::npos);
  check_contains(thrown_message<ConfigError>([] { model_kind("no_such_model"); }),
                 {"no_such_model", "dense_hopfield", "ising"});
}

TEST_CASE("model registry: a kind registered in a test is configured, built and trained like the others") {
  auto backend = make_backend("cpu");
  const RegisteredQuadratic registered;

  // Its section is part of the schema: defaults, validation, --set, the reference.
  const Config defaults = parse_config(json{{"model", {{"kind", "test_quadratic"}, {"layers", {5, 3}}}}}, "q.json");
  CHECK(defaults.resolved["quadratic"]["weight_scale"] == 0.5);
  check_contains(config_reference_markdown(), {"`test_quadratic`", "`quadratic.weight_scale`"});
  json bad = quadratic_config();
  bad["quadratic"]["weight_scale"] = 0;
  check_contains(thrown_message<ConfigError>([&] { parse_config(bad, "q.json"); }),
                 {"q.json", "quadratic.weight_scale", "out of range"});
  bad = quadratic_config();
  bad["model"]["layers"] = json({5, 4, 3});
  check_contains(thrown_message<ConfigError>([&] { parse_config(bad, "q.json"); }), {"q.json", "test_quadratic"});
  check_contains(thrown_message<ConfigError>([] { register_model_kind(ModelKind{"test_quadratic"}); }),
                 {"test_quadratic", "twice"});

  const Config config = parse_config(quadratic_config(), "q.json");
  Trainer trainer(*backend, config);
  REQUIRE(trainer.model().kind() == "test_quadratic");
  const Batch batch = random_batch(*backend);

  SUBCASE("its EP gradient through the trainer is the closed form of symmetric nudging") {
    // s_{+beta} - s_{-beta} = 2 beta (y - s_0) / (1 - beta^2), so the symmetric EP
    // estimate is dL/dtheta / (1 - beta^2): exact in beta up to that factor.
    ParameterSet gradient = trainer.model().make_parameter_like();
    trainer.ep_gradient(batch.x.data(), batch.target.data(), kBatch, 0, gradient);
    const ParameterSet& theta = trainer.model().parameters();
    const double beta = config.ep.beta;
    for (int c = 0; c < kClasses; ++c) {
      std::vector<double> exact_w(kInputs, 0.0);
      double exact_b = 0.0;
      for (int n = 0; n < kBatch; ++n) {
        double s0 = theta.biases[0].data()[c];
        for (int i = 0; i < kInputs; ++i)
          s0 += theta.weights[0].data()[i * kClasses + c] * batch.host_x[n * kInputs + i];
        const double error = (s0 - batch.host_target[n * kClasses + c]) / (1.0 - beta * beta) / kBatch;
        exact_b += error;
        for (int i = 0; i < kInputs; ++i) exact_w[i] += batch.host_x[n * kInputs + i] * error;
      }
      CHECK(gradient.biases[0].data()[c] == doctest::Approx(exact_b).epsilon(1e-4));
      for (int i = 0; i < kInputs; ++i)
        CHECK(gradient.weights[0].data()[i * kClasses + c] == doctest::Approx(exact_w[i]).epsilon(1e-4));
    }
  }

  SUBCASE("training steps lower its loss") {
    std::vector<double> losses;
    for (int step = 0; step < 30; ++step) {
      trainer.train_step(batch.x.data(), batch.target.data(), kBatch, step, 1.0f);
      losses.push_back(trainer.flush_metrics().loss_sum / kBatch);
    }
    MESSAGE("loss " << losses.front() << " -> " << losses.back());
    CHECK(losses.back() < 0.5 * losses.front());
    for (std::size_t k = 1; k < losses.size(); ++k) CHECK(losses[k] <= losses[k - 1] + 1e-6);
  }
}

TEST_CASE("model registry: an unregistered kind is no longer a choice") {
  { const RegisteredQuadratic registered; }
  const std::string message = thrown_message<ConfigError>(
      [] { parse_config(json{{"model", {{"kind", "test_quadratic"}, {"layers", {5, 3}}}}}, "q.json"); });
  check_contains(message, {"q.json", "model.kind", "test_quadratic", "dense_hopfield"});
  // ...and its section is no longer a known key.
  const json stale_section = {{"quadratic", {{"weight_scale", 1}}}};
  check_contains(thrown_message<ConfigError>([&] { parse_config(stale_section, "q.json"); }), {"quadratic"});
}

}  // namespace
}  // namespace eqprop
