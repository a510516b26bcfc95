// engine/landscape: on two units whose energy inside the box is
// E = 1/2 (h^2 + o^2) - w h o + 0.4 (h + o), the minima are known. With w = 2 the
// Hessian is indefinite: the minima are the corners (0, 0) (E = 0, where the reset
// state already is) and (1, 1) (E = -0.2), (1, 0) and (0, 1) are not minima (the
// force points inwards), so every start ends in one of two, and the gap from the
// reset state's minimum to the lowest is 0.2. With w = 1/2 and biases 1/4 the
// energy is convex: one minimum, gap 0.
#include <doctest/doctest.h>

#include <numeric>

#include "engine/config.h"
#include "engine/landscape.h"
#include "engine/trainer.h"

namespace eqprop {

TEST_CASE("landscape: the distinct minima of a two-unit network and the reset state's gap") {
  struct Case {
    double coupling, bias;
    int minima;
    double lowest, reset;
  };
  for (const std::string integrator : {"gradient_flow", "csb"}) {
    for (const Case c : {Case{2.0, -0.4, 2, -0.2, 0.0}, Case{0.5, 0.25, 1, -0.125, -0.125}}) {
      CAPTURE(integrator);
      CAPTURE(c.coupling);
      const int batch = 3;
      const Config config = parse_config(
          nlohmann::json{{"model", {{"layers", {1, 1, 1}}}},
                         {"dynamics", {{"integrator", integrator}, {"t_free", 400}, {"dt", 0.2}, {"nudge_integrator", "csb"}, {"gamma", 1.0}}},
                         {"training", {{"batch_size", batch}, {"eval_batch_size", batch}}}},
          "test");
      auto backend = make_backend("cpu");
      Trainer trainer(*backend, config, 1, 1);
      EnergyModel& model = trainer.model();
      ParameterSet& p = model.parameters();
      p.weights[0].copy_from_host(std::vector<float>{0.0f});
      p.biases[0].copy_from_host(std::vector<float>{float(c.bias)});
      p.weights[1].copy_from_host(std::vector<float>{float(c.coupling)});
      p.biases[1].copy_from_host(std::vector<float>{float(c.bias)});
      DeviceBuffer<float> x(*backend, batch), target(*backend, batch);
      x.zero();
      target.zero();
      model.set_input(x.data(), batch);
      LandscapeOptions options;
      options.starts = 40;
      const auto result = explore_landscape(model, target.data(), batch, trainer.phase_spec(false, 0.0f, 0, 0), options);
      REQUIRE(result.size() == std::size_t(batch));
      for (const SampleLandscape& sample : result) {
        CHECK(int(sample.energies.size()) == c.minima);
        CHECK(sample.energies.front() == doctest::Approx(c.lowest).epsilon(1e-4));
        CHECK(sample.reset_energy == doctest::Approx(c.reset).epsilon(1e-4));
        CHECK(sample.gap == doctest::Approx(c.reset - c.lowest).epsilon(1e-4));
        CHECK(sample.reset_minimum == c.minima - 1);
        CHECK(sample.unsettled == 0);
        CHECK(std::accumulate(sample.visits.begin(), sample.visits.end(), 0) == options.starts + 1);
        if (c.minima == 2) CHECK(sample.visits[0] > 5);  // the random starts do find the lower corner
      }
    }
  }
}

}  // namespace eqprop
