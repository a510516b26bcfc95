// The engine's implicit-differentiation gradient (DenseHopfield::implicit_gradient,
// DESIGN.md §1) against the exact double-precision one of the independent
// reference (models/dense_hopfield_reference), on every backend.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "hosttools/cli.h"
#include "models/dense_hopfield.h"
#include "models/dense_hopfield_reference.h"
#include "models/gradcheck_reference.h"
#include "tests/backends.h"
#include "tests/hopfield_fixture.h"
#include "tests/test_util.h"

namespace eqprop {

TEST_CASE_TEMPLATE("implicit gradient: the engine's equals the double-precision reference", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, cost] : test::kReferenceShapes) {
    for (unsigned seed : {1u, 2u, 3u}) {
      test::Fixture f(layers, cost, 6, 200 + seed, 0.5, OnBackend::name);
      const NetworkState free = f.relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, 400, 0.0f});
      ParameterSet gradient = f.model.make_parameter_like();
      const float residual = f.model.implicit_gradient(free, f.target.data(), 100, gradient);
      const reference::Gradient engine = host_tensors(gradient);
      const reference::Gradient exact = reference::implicit_gradient(f.net, f.xs, f.labels);
      const double cosine = reference::cosine_similarity(engine, exact);
      const double error = reference::relative_error(engine, exact);
      CAPTURE(seed);
      const std::string cost_name = cost == CostKind::mse ? "mse" : "cross_entropy";
      CAPTURE(cost_name);
      MESSAGE("cosine " << cosine << ", relative error " << error << ", adjoint residual " << residual);
      CHECK(cosine >= 0.9999);
      CHECK(error < 1e-3);
      CHECK(residual < 1e-4f);
    }
  }
}

TEST_CASE("implicit gradient: one adjoint step leaves a residual that more steps remove") {
  test::Fixture f({8, 6, 5, 3}, CostKind::mse, 6, 7);
  const NetworkState free = f.relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, 400, 0.0f});
  ParameterSet gradient = f.model.make_parameter_like();
  const float one = f.model.implicit_gradient(free, f.target.data(), 1, gradient);
  const float many = f.model.implicit_gradient(free, f.target.data(), 100, gradient);
  CHECK(one > many);
  CHECK_THROWS_AS(f.model.implicit_gradient(free, f.target.data(), 0, gradient), std::invalid_argument);
}

TEST_CASE("implicit gradient: training.algorithm = implicit learns FashionMNIST in a short run") {
  const char* images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(images)) {
    MESSAGE("skipped: " << images << " is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  test::TempDir dir;
  const std::string config = dir.file("implicit.json"), run_dir = dir.file("run");
  std::ofstream(config) << nlohmann::json{
      {"model", {{"layers", {784, 64, 10}}}},
      {"dynamics", {{"t_free", 20}}},
      {"optimizer", {{"lr", 0.05}}},
      {"training", {{"algorithm", "implicit"}, {"adjoint_iterations", 20}, {"epochs", 2}, {"batch_size", 50}}},
      {"data", {{"train_limit", 2000}, {"test_limit", 1000}}}}.dump();
  std::ostringstream out, err;
  const int code = run_cli({"train", "--config", config, "--out", run_dir, "--device", "cpu"}, out, err);
  REQUIRE_MESSAGE(code == 0, err.str());
  std::ifstream metrics(run_dir + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line))
    if (!line.empty()) last = line;
  const nlohmann::json record = nlohmann::json::parse(last);
  const double accuracy = record["test_acc"].get<double>();
  MESSAGE("test accuracy after 2 epochs on 2000 samples: " << accuracy);
  CHECK(accuracy > 0.6);
  // The epoch reports how far the adjoint solve was from converged (its worst batch).
  REQUIRE(record.contains("adjoint_residual_max"));
  const double residual = record["adjoint_residual_max"].get<double>();
  MESSAGE("largest adjoint residual: " << residual);
  CHECK(residual > 0.0);
  CHECK(residual < 0.1);
  CHECK(out.str().find("adjoint residual") != std::string::npos);
}

}  // namespace eqprop
