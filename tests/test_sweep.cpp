// Sweeps: one run per (variant, value), CSV and plots of the results, and a repeated
// sweep that reuses finished runs instead of training them again.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "engine/checkpoint.h"
#include "engine/sweep.h"
#include "hosttools/svg_plot.h"
#include "kernels/error.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {

TEST_CASE("sweep: one run per variant and value, resumable, with a CSV of the results") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const nlohmann::json user = {{"model", {{"layers", {16, 12, 2}}}},
                               {"dynamics", {{"t_free", 10}, {"t_nudge", 4}, {"dt", 0.5}}},
                               {"optimizer", {{"lr", 0.1}}},
                               {"training", {{"epochs", 2}, {"batch_size", 16}, {"eval_batch_size", 50}}}};
  SweepSpec spec;
  spec.key = "dynamics.t_free";
  spec.values = {"4", "12"};
  spec.tied = {{"dynamics.t_nudge", {"2", "5"}}};
  spec.variants = {{"flow", {"dynamics.integrator=gradient_flow"}}, {"csb", {"dynamics.integrator=csb", "dynamics.gamma=1"}}};
  int reported = 0;
  const auto points = run_sweep(*backend, user, "test", spec, test::halves(), dir.path().string(), {},
                                [&](const SweepPoint&) { ++reported; });
  REQUIRE(points.size() == 4);
  CHECK(reported == 4);
  CHECK(points[0].variant == "flow");
  CHECK(points[3].variant == "csb");
  CHECK(points[3].value == "12");
  CHECK(points[3].tied == std::vector<std::string>{"5"});
  for (const SweepPoint& p : points) {
    CHECK(p.last.epoch == 2);
    CHECK(std::filesystem::exists(std::filesystem::path(p.run_dir) / kModelFile));
    // The run used the point's own config.
    const nlohmann::json config = read_checkpoint_config(p.run_dir);
    CHECK(config["dynamics"]["t_free"] == std::stoi(p.value));
    CHECK(config["dynamics"]["integrator"] == (p.variant == "flow" ? "gradient_flow" : "csb"));
    CHECK(p.last.free_steps_mean == doctest::Approx(std::stoi(p.value)));
  }
  const std::string csv = sweep_csv(spec, points);
  CHECK(csv.rfind("variant,dynamics.t_free,dynamics.t_nudge,epochs,test_acc", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);

  // Again: every run is already complete, so nothing trains and the results match.
  const auto before = std::filesystem::last_write_time(std::filesystem::path(points[0].run_dir) / kModelFile);
  const auto again = run_sweep(*backend, user, "test", spec, test::halves(), dir.path().string(), {}, {});
  CHECK(std::filesystem::last_write_time(std::filesystem::path(points[0].run_dir) / kModelFile) == before);
  CHECK(again[2].last.test_acc == points[2].last.test_acc);
}

TEST_CASE("sweep: a finished run is reused only when its resolved config is unchanged") {
  auto backend = make_backend("cpu");
  test::TempDir dir, fresh;
  nlohmann::json user = {{"model", {{"layers", {16, 12, 2}}}},
                         {"dynamics", {{"t_free", 6}, {"t_nudge", 3}, {"dt", 0.5}}},
                         {"optimizer", {{"lr", 0.1}}},
                         {"training", {{"epochs", 1}, {"batch_size", 16}, {"eval_batch_size", 50}}}};
  SweepSpec spec;
  spec.key = "dynamics.t_free";
  spec.values = {"4", "8"};
  const auto first = run_sweep(*backend, user, "test", spec, test::halves(), dir.path().string(), {}, {});
  const auto model = std::filesystem::path(first[0].run_dir) / kModelFile;
  const auto written = std::filesystem::last_write_time(model);

  SUBCASE("unchanged: reused, nothing trains") {
    const auto again = run_sweep(*backend, user, "test", spec, test::halves(), dir.path().string(), {}, {});
    CHECK(std::filesystem::last_write_time(model) == written);
    for (std::size_t i = 0; i < again.size(); ++i) {
      CHECK(again[i].retrained_because.empty());
      CHECK(again[i].last.test_loss == first[i].last.test_loss);
    }
  }
  SUBCASE("another learning rate (--set optimizer.lr): trained again, with the new results") {
    user["optimizer"]["lr"] = 0.02;
    const auto changed = run_sweep(*backend, user, "test", spec, test::halves(), dir.path().string(), {}, {});
    const auto expected = run_sweep(*backend, user, "test", spec, test::halves(), fresh.path().string(), {}, {});
    REQUIRE(changed.size() == 2);
    for (std::size_t i = 0; i < changed.size(); ++i) {
      CHECK(changed[i].retrained_because == "optimizer.lr");
      CHECK(read_checkpoint_config(changed[i].run_dir)["optimizer"]["lr"] == 0.02);
      CHECK(changed[i].last.epoch == 1);
      CHECK(changed[i].last.train_loss == expected[i].last.train_loss);
      CHECK(changed[i].last.test_loss == expected[i].last.test_loss);
      CHECK(changed[i].last.train_loss != first[i].last.train_loss);
    }
    // And now unchanged again: reused.
    const auto again = run_sweep(*backend, user, "test", spec, test::halves(), dir.path().string(), {}, {});
    CHECK(again[0].retrained_because.empty());
  }
}

TEST_CASE("sweep: a bad point is refused before anything trains") {
  SweepSpec spec;
  spec.key = "dynamics.t_free";
  spec.values = {"5", "-1"};
  test::check_contains(test::thrown_message<ConfigError>([&] { validate_sweep(nlohmann::json::object(), spec); }),
                       {"dynamics.t_free", "-1"});
  spec.values = {"5", "10"};
  spec.tied = {{"dynamics.t_nudge", {"2"}}};
  test::check_contains(test::thrown_message<ConfigError>([&] { validate_sweep(nlohmann::json::object(), spec); }),
                       {"dynamics.t_nudge", "1 values", "2"});
}

TEST_CASE("svg: a line plot has every series, point and label") {
  const std::string svg = line_plot_svg({{"gradient flow", {5, 10, 20}, {80.5, 85.25, 86}}, {"csb & co", {5, 10, 20}, {82, 86, 87}}},
                                        {"accuracy", "steps", "test accuracy (%)", true});
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(std::count(svg.begin(), svg.end(), '\n') > 10);
  test::check_contains(svg, {"gradient flow", "csb &amp; co", "steps (log scale)", "test accuracy (%)", ">10<"});
  std::size_t circles = 0;
  for (std::size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) ++circles;
  CHECK(circles == 6);
}

}  // namespace eqprop
