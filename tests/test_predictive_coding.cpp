// The predictive-coding network (models/predictive_coding.h) against its
// double-precision reference (models/predictive_coding_reference.h): the energy,
// the free phase as a fixed point, the descent of E + beta C under asynchronous
// nudged sweeps, the EP gradient against backprop (per backend and through the
// gradcheck), the implicit gradient, and a short training run from the CLI.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "engine/config.h"
#include "engine/gradcheck.h"
#include "hosttools/cli.h"
#include "models/predictive_coding.h"
#include "models/predictive_coding_reference.h"
#include "tests/backends.h"
#include "tests/model_fixture.h"
#include "tests/skip.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

namespace pc = predictive_coding_reference;

// A small network with the same random parameters in the engine and the reference.
struct PcFixture : test::FixtureBase {
  pc::Network net;
  PredictiveCoding model;
  int batch;

  PcFixture(std::vector<int> layers, PredictionActivation activation, int batch_size, unsigned seed,
            double weight_scale, const char* backend_name = "cpu")
      : FixtureBase(backend_name), model(*backend, layers, activation, batch_size), batch(batch_size) {
    std::mt19937 rng(seed);
    net.layers = layers;
    net.activation = activation;
    test::draw_matched_parameters(model.parameters(), rng, weight_scale, 0.1, 0.5, net.weights, net.biases);
    draw_batch(rng, batch, layers.front(), layers.back());
    model.set_input(x.data(), batch);
  }

  std::vector<std::vector<std::vector<double>>> states_of(const NetworkState& state) const {
    return test::states_per_sample(model, state, batch);
  }
  NetworkState free_state() { return test::relaxed_state(model, target.data(), free_phase()); }
  static PhaseSpec free_phase() { return nudged_phase(Integrator::fixed_point, 0.0f, 1); }
  static PhaseSpec nudged_phase(Integrator integrator, float beta, int steps) {
    PhaseSpec spec{integrator, 0.5f, steps, beta};
    spec.order = UpdateOrder::asynchronous;
    return spec;
  }
  // F = E + beta C of sample s at `states`, in double.
  double total_energy(const std::vector<std::vector<double>>& states, int s, double beta) const {
    return pc::energy(net, xs[s], states) + beta * pc::cost(net, states, labels[s]);
  }
};

const std::vector<std::vector<int>> kShapes = {{6, 5, 4}, {8, 6, 5, 3}, {7, 6, 5, 4, 3}};
const PredictionActivation kActivations[] = {PredictionActivation::sigmoid, PredictionActivation::hard_sigmoid};

}  // namespace

TEST_CASE("predictive_coding: the engine's energy is the reference's loops, at any state") {
  for (const auto& layers : kShapes)
    for (PredictionActivation activation : kActivations) {
      PcFixture f(layers, activation, 5, 21, 0.6);
      std::mt19937 rng(4);
      std::uniform_real_distribution<float> anywhere(-0.5f, 1.5f);
      NetworkState state = f.model.make_state();
      for (auto& layer : state.layers) {
        std::vector<float> values(layer.size());
        for (float& v : values) v = anywhere(rng);
        layer.copy_from_host(values);
      }
      DeviceBuffer<float> energy(*f.backend, f.batch);
      f.model.energy(state, energy.data());
      const std::vector<float> engine = energy.to_host();
      const auto states = f.states_of(state);
      double worst = 0;
      for (int s = 0; s < f.batch; ++s)
        worst = std::max(worst, std::abs(engine[s] - pc::energy(f.net, f.xs[s], states[s])) /
                                    std::max(1.0, pc::energy(f.net, f.xs[s], states[s])));
      test::check_within("max relative |E_engine - E_reference|", worst, 1e-5);
    }
}

TEST_CASE("predictive_coding: the free phase is the forward pass, a fixed point of the nudged sweep at beta = 0") {
  for (const auto& layers : kShapes)
    for (PredictionActivation activation : kActivations) {
      PcFixture f(layers, activation, 5, 8, 0.6);
      NetworkState state = f.free_state();
      auto before = f.states_of(state);
      double worst = 0;
      for (int s = 0; s < f.batch; ++s) {
        const pc::States forward = pc::forward_pass(f.net, f.xs[s]);
        for (std::size_t l = 0; l < forward.size(); ++l)
          for (std::size_t j = 0; j < forward[l].size(); ++j)
            worst = std::max(worst, std::abs(before[s][l][j] - forward[l][j]));
      }
      test::check_within("max |s_engine - forward pass|", worst, 1e-6);
      DeviceBuffer<float> energy(*f.backend, f.batch);
      f.model.energy(state, energy.data());
      for (float e : energy.to_host()) CHECK(e == 0.0f);  // every term is exactly zero
      for (Integrator integrator : {Integrator::fixed_point, Integrator::gradient_flow}) {
        f.model.relax_by_iterations(state, f.target.data(), PcFixture::nudged_phase(integrator, 0.0f, 5));
        const auto after = f.states_of(state);
        double moved = 0;
        for (int s = 0; s < f.batch; ++s)
          for (std::size_t l = 0; l < after[s].size(); ++l)
            for (std::size_t j = 0; j < after[s][l].size(); ++j)
              moved = std::max(moved, std::abs(after[s][l][j] - before[s][l][j]));
        test::check_within("max state change of 5 sweeps at beta = 0", moved, 1e-6);
      }
    }
}

// At +beta the nudge pulls s_L towards y, inside [0, 1], and each sweep descends.
// At -beta it pushes s_L away from y, outside [0, 1]: a unit step of the layer
// below can then carry a pre-activation past a kink of f, where its pull stops,
// and F rises in that sweep (DESIGN.md, "Predictive coding"); the phase still
// ends below where it started, which is what is checked there.
TEST_CASE("predictive_coding: asynchronous nudged sweeps decrease E + beta C, monotonically at beta > 0") {
  for (const auto& layers : kShapes)
    for (PredictionActivation activation : kActivations)
      for (Integrator integrator : {Integrator::fixed_point, Integrator::gradient_flow})
        for (float beta : {0.5f, 2.0f, -0.5f}) {
          // Weights of norm below 1: the unit step of a hidden layer is then a
          // descent step away from the kinks (DESIGN.md, "Predictive coding").
          PcFixture f(layers, activation, 6, 13, 0.3);
          NetworkState state = f.free_state();
          std::vector<double> previous(f.batch);
          for (int s = 0; s < f.batch; ++s) previous[s] = f.total_energy(f.states_of(state)[s], s, beta);
          const std::vector<double> initial = previous;
          double worst_rise = 0;
          for (int sweep = 0; sweep < 12; ++sweep) {
            f.model.relax(state, f.target.data(), PcFixture::nudged_phase(integrator, beta, 1));
            const auto states = f.states_of(state);
            for (int s = 0; s < f.batch; ++s) {
              const double total = f.total_energy(states[s], s, beta);
              worst_rise = std::max(worst_rise, total - previous[s]);
              previous[s] = total;
            }
          }
          CAPTURE(layers.size());
          CAPTURE(static_cast<int>(activation));
          CAPTURE(static_cast<int>(integrator));
          CAPTURE(beta);
          if (beta > 0.0f)
            test::check_within("largest rise of E + beta C in a sweep", worst_rise, 1e-6);
          else
            MESSAGE("largest rise of E + beta C in a sweep at beta < 0: " << worst_rise);
          for (int s = 0; s < f.batch; ++s) CHECK(previous[s] < initial[s]);
        }
}

TEST_CASE_TEMPLATE("predictive_coding: EP at small beta matches backprop through the forward pass", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& layers : kShapes)
    for (PredictionActivation activation : kActivations)
      for (unsigned seed : {1u, 2u, 3u}) {
        PcFixture f(layers, activation, 6, 300 + seed, 0.6, OnBackend::name);
        const reference::Gradient exact = pc::backprop_gradient(f.net, f.xs, f.labels);
        // Enough sweeps to converge: the comparison is of the equilibria, not of K.
        const PhaseSpec base = PcFixture::nudged_phase(Integrator::fixed_point, 0.0f, 40);
        const reference::Gradient symmetric =
            test::engine_ep_gradient(f.model, f.target.data(), f.batch, 1e-3f, true, base);
        const reference::Gradient one_sided =
            test::engine_ep_gradient(f.model, f.target.data(), f.batch, 1e-3f, false, base);
        CAPTURE(layers.size());
        CAPTURE(static_cast<int>(activation));
        CAPTURE(seed);
        const double cosine = reference::cosine_similarity(symmetric, exact);
        MESSAGE("cosine " << cosine << ", relative error symmetric " << reference::relative_error(symmetric, exact)
                          << ", one-sided " << reference::relative_error(one_sided, exact));
        CHECK(cosine >= 0.999);
        CHECK(reference::cosine_similarity(one_sided, exact) >= 0.999);
      }
}

TEST_CASE_TEMPLATE("predictive_coding: the implicit gradient is backprop's", OnBackend, EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& layers : kShapes)
    for (PredictionActivation activation : kActivations) {
      PcFixture f(layers, activation, 6, 40, 0.6, OnBackend::name);
      NetworkState state = f.free_state();
      ParameterSet gradient = f.model.make_parameter_like();
      CHECK(f.model.implicit_gradient(state, f.target.data(), 1, gradient) == 0.0f);
      const double error =
          reference::relative_error(host_tensors(gradient), pc::backprop_gradient(f.net, f.xs, f.labels));
      test::check_within("relative error, implicit gradient vs reference backprop", error, 1e-5);
    }
}

TEST_CASE("predictive_coding: configs/gradcheck_tiny_pc.json passes the gradcheck, cosine >= 0.999") {
  std::ifstream in(std::string(EQPROP_SOURCE_DIR) + "/configs/gradcheck_tiny_pc.json");
  REQUIRE(in.good());
  const Config config = parse_config(nlohmann::json::parse(in), "gradcheck_tiny_pc.json");
  auto backend = make_backend("cpu");
  const nlohmann::json report = run_gradcheck(*backend, config, GradcheckOptions{8});
  INFO(report.dump());
  REQUIRE(report["tensors"].size() == 3);
  for (const auto& tensor : report["tensors"]) CHECK(tensor["cosine"].get<double>() >= 0.999);
  CHECK(report["overall"]["cosine"].get<double>() >= 0.999);
}

TEST_CASE("predictive_coding: configs refuse what the model does not run, one line each") {
  const char* refused[] = {
      R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4]}})",  // synchronous by default
      R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4], "cost": "cross_entropy"},
          "dynamics": {"order": "asynchronous"}})",
      R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4]},
          "dynamics": {"order": "asynchronous", "nudge_integrator": "csb"}})",
      R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4]},
          "dynamics": {"order": "asynchronous", "noise": 0.1}})",
      R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4]},
          "dynamics": {"order": "asynchronous"}, "ep": {"beta": 1.5}})",
      R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4]},
          "dynamics": {"order": "asynchronous"}, "training": {"relaxation_path": "fused"}})",
  };
  for (const char* text : refused) {
    CAPTURE(text);
    CHECK_THROWS_AS(parse_config(nlohmann::json::parse(text), "test"), ConfigError);
  }
  CHECK_NOTHROW(parse_config(nlohmann::json::parse(R"({"model": {"kind": "predictive_coding", "layers": [6, 5, 4]},
      "dynamics": {"order": "asynchronous"}, "training": {"algorithm": "implicit"}})"),
                             "test"));
}

TEST_CASE("predictive_coding: a short CLI training run learns on a FashionMNIST subset") {
  constexpr const char* kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (test::skip_case_if(!std::filesystem::exists(kImages),
                         std::string(kImages) + " is not installed (Debian package dataset-fashion-mnist)"))
    return;
  test::TempDir dir;
  std::ifstream in(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_pc.json");
  REQUIRE(in.good());
  nlohmann::json config = nlohmann::json::parse(in);
  config["training"]["epochs"] = 3;
  config["data"]["train_limit"] = 2000;
  config["data"]["test_limit"] = 1000;
  const std::string path = dir.file("pc.json"), run_dir = dir.file("run");
  std::ofstream(path) << config.dump(2);
  std::ostringstream out, err;
  const int code = run_cli({"train", "--config", path, "--out", run_dir, "--device", "cpu"}, out, err);
  INFO(out.str() << err.str());
  REQUIRE(code == 0);
  std::ifstream metrics(run_dir + "/metrics.jsonl");
  std::string line;
  REQUIRE(std::getline(metrics, line));
  const nlohmann::json record = nlohmann::json::parse(line);
  std::string last = line;
  while (std::getline(metrics, line)) last = line;
  const double accuracy = nlohmann::json::parse(last)["test_acc"].get<double>();
  MESSAGE("test accuracy after the first of 3 epochs on 2000 images: " << record["test_acc"].get<double>()
                                                                       << ", after the last: " << accuracy);
  CHECK(accuracy > record["test_acc"].get<double>());
  CHECK(accuracy > 0.5);  // chance is 0.1; measured 0.682
}

}  // namespace eqprop
