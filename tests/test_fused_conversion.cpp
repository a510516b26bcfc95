// The converters inside the fused passes: the ADC reading written by the
// relaxation's own final step (or the convergence check that ends the phase) equals
// an ADC pass over the relaxed states, bit for bit, for every way a phase can end.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/batch_loader.h"
#include "engine/hardware_model.h"
#include "engine/config.h"
#include "engine/model_factory.h"
#include "tests/hopfield_fixture.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_bit_exact;

HardwareConfig noisy_adc(int bits) {
  HardwareConfig config;
  config.adc.enabled = true;
  config.adc.bits = bits;
  config.adc.rounding = Rounding::stochastic;
  config.adc.noise_sigma = 0.3f;  // LSB
  return config;
}

// Relaxes `model` (input already set) with the ADC fused into the phase, for every
// way a phase can end, and compares the readings with an ADC pass over the result.
void check_fused_readout(EnergyModel& model, Backend& backend, const float* target) {
  struct Case {
    std::string name;
    Integrator integrator;
    int steps;
    float tolerance;
    int check_every;
    float noise;
  };
  const Case cases[] = {
      {"to the cap, no checks", Integrator::fixed_point, 12, 0.0f, 5, 0.0f},
      {"to the cap, the last step is a check", Integrator::gradient_flow, 10, 1e-30f, 5, 0.0f},
      {"ends early at a check", Integrator::fixed_point, 400, 1e-4f, 3, 0.0f},
      {"Langevin noise, cSB", Integrator::csb, 9, 0.0f, 5, 0.02f},
  };
  const std::uint32_t tensor = 1000, read_count = 4;
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const HardwareModel hardware(backend, noisy_adc(5), 11);
    PhaseSpec spec{c.integrator, 0.3f, c.steps, 0.0f};
    spec.tolerance = c.tolerance;
    spec.check_every = c.check_every;
    spec.noise_sigma = c.noise;
    spec.noise_seed = 3;
    spec.read_out = true;
    spec.adc = hardware.adc_spec(nullptr, tensor, read_count);

    NetworkState state = model.make_state();
    for (const auto& layer : state.layers) state.readouts.emplace_back(backend, layer.size());
    model.reset(state);
    const PhaseResult result = model.relax(state, target, spec);
    if (c.tolerance > 1e-20f) CHECK(result.steps < c.steps);  // the case must end early to test that path
    else CHECK(result.steps == c.steps);

    HardwareModel separate(backend, noisy_adc(5), 11);
    for (std::size_t i = 0; i < state.layers.size(); ++i) {
      CAPTURE(i);
      DeviceBuffer<float> read(backend, state.layers[i].size());
      backend.copy_on_device(read.data(), state.layers[i].data(), read.bytes());
      separate.read_states(read.data(), static_cast<std::int64_t>(read.size()), tensor + static_cast<std::uint32_t>(i),
                           read_count);
      const std::vector<float> fused = state.readouts[i].to_host();
      check_bit_exact(c.name + ": fused readout vs ADC pass", fused, read.to_host());
      // The readings are on the 5-bit grid and differ from the analog states.
      CHECK(fused != state.layers[i].to_host());
      for (float v : fused) CHECK(v * 31.0f == doctest::Approx(std::nearbyint(v * 31.0f)).epsilon(1e-6));
    }
  }
}

}  // namespace

TEST_CASE("fused ADC: the dense network's readout written inside the relaxation equals an ADC pass after it") {
  test::Fixture f({7, 9, 5, 3}, CostKind::mse, 6, 21);
  REQUIRE(f.model.fuses_readout());
  check_fused_readout(f.model, *f.backend, f.target.data());
}

TEST_CASE("fused ADC: the conv network's readout written inside the relaxation equals an ADC pass after it") {
  const Config config = parse_config(nlohmann::json::parse(R"({
      "model": {"kind": "conv_hopfield", "layers": [3]},
      "conv": {"input_shape": [2, 8, 8], "channels": [3, 4], "kernel": [3], "padding": [1], "pool": "max"}})"),
                                     "test");
  const auto backend = make_backend("cpu");
  const int batch = 5;
  std::unique_ptr<EnergyModel> model = make_model(*backend, config, batch);
  REQUIRE(model->fuses_readout());
  model->initialize(7, 1.0f);
  std::mt19937 rng(12);
  DeviceBuffer<float> x(*backend, std::size_t(batch) * model->input_size());
  x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
  std::vector<float> one_hot(std::size_t(batch) * model->classes(), 0.0f);
  for (int s = 0; s < batch; ++s) one_hot[std::size_t(s) * model->classes() + s % model->classes()] = 1.0f;
  DeviceBuffer<float> target(*backend, one_hot.size());
  target.copy_from_host(one_hot);
  model->set_input(x.data(), batch);
  check_fused_readout(*model, *backend, target.data());
}

TEST_CASE("fused ADC: LayerStepOp's readout is the same through op(i) and the CPU's row(r)") {
  std::mt19937 rng(8);
  const int batch = 5, units = 11;
  const std::size_t n = std::size_t(batch) * units;
  std::vector<float> states = test::random_vector(rng, n, 0.0f, 1.0f), drive = test::random_vector(rng, n, -1.0f, 2.0f);
  const std::vector<float> bias = test::random_vector(rng, units, -0.2f, 0.2f);
  const auto backend = make_backend("cpu");
  const HardwareModel hardware(*backend, noisy_adc(3), 5);
  auto run = [&](bool by_row) {
    std::vector<float> s = states, readout(n, -1.0f);
    LayerStepOp op{s.data(), drive.data(), nullptr, bias.data(), nullptr, 0.0f, 0.4f, Integrator::gradient_flow, units};
    op.noise_sigma = 0.05f;
    op.noise_seed = 9;
    op.noise_row_stride = units;
    op.readout = readout.data();
    op.adc = hardware.adc_spec(nullptr, 77, 2);
    op.readout_first = 3 * units;  // as for a slice starting at row 3
    if (by_row) {
      for (std::int64_t r = 0; r < op.row_count(std::int64_t(n)); ++r) op.row(r);
    } else {
      for (std::int64_t i = 0; i < std::int64_t(n); ++i) op(i);
    }
    return std::make_pair(s, readout);
  };
  const auto [s_element, read_element] = run(false);
  const auto [s_row, read_row] = run(true);
  check_bit_exact("states", s_row, s_element);
  check_bit_exact("readout", read_row, read_element);
  for (float v : read_row) CHECK(v != -1.0f);
}

TEST_CASE("fused DAC: the optimizer step fused with the write equals the step, then the write") {
  struct Case {
    std::string name;
    RangeMode range;
    bool keep_full_precision;
    std::int64_t count;
  };
  const Case cases[] = {
      {"fixed range", RangeMode::fixed, true, 5000},
      {"fixed range, no full-precision copy", RangeMode::fixed, false, 5000},
      {"calibrated, one reduction part", RangeMode::calibrated, true, 50},
      {"calibrated, several passes", RangeMode::calibrated, true, 70001},
      {"calibrated, no full-precision copy", RangeMode::calibrated, false, 9000},
  };
  const auto backend = make_backend("cpu");
  std::mt19937 rng(17);
  for (const Case& c : cases) {
    CAPTURE(c.name);
    HardwareConfig config;
    config.dac.enabled = true;
    config.dac.bits = 4;
    config.dac.range = c.range;
    config.dac.rounding = Rounding::stochastic;
    config.programming_noise.additive = 0.01f;
    config.mismatch_sigma = 0.05f;
    config.keep_full_precision = c.keep_full_precision;
    const std::size_t n = static_cast<std::size_t>(c.count);
    const std::vector<float> weights = test::random_vector(rng, n, -0.9f, 0.9f),
                             velocity = test::random_vector(rng, n, -0.1f, 0.1f),
                             gradient = test::random_vector(rng, n, -1.0f, 1.0f);
    auto run = [&](bool fused) {
      HardwareModel hardware(*backend, config, 23);
      DeviceBuffer<float> w(*backend, n), v(*backend, n), g(*backend, n), device(*backend, n);
      DeviceBuffer<float> learning_rate(*backend, 1);
      learning_rate.copy_from_host(std::vector<float>{0.05f});
      w.copy_from_host(weights);
      v.copy_from_host(velocity);
      g.copy_from_host(gradient);
      const SgdMomentumOp update{w.data(), v.data(), g.data(), learning_rate.data(), 0.9f, 1e-3f};
      if (fused) {
        hardware.update_parameter(update, device.data(), c.count, 3, 12);
      } else {
        backend->run(update, c.count);
        hardware.write_parameter(w.data(), device.data(), c.count, 3, 12);
      }
      return std::vector<std::vector<float>>{w.to_host(), v.to_host(), device.to_host()};
    };
    const auto fused = run(true), separate = run(false);
    check_bit_exact(c.name + ": optimizer copy", fused[0], separate[0]);
    check_bit_exact(c.name + ": velocity", fused[1], separate[1]);
    check_bit_exact(c.name + ": device values", fused[2], separate[2]);
    CHECK(fused[2] != fused[0]);  // the write did something
  }
}

TEST_CASE("fused DAC: the input DAC on the loader thread equals the device pass") {
  const Dataset data = test::make_halves(70, 3);
  const auto backend = make_backend("cpu");
  for (const RangeMode range : {RangeMode::fixed, RangeMode::calibrated}) {
    CAPTURE(static_cast<int>(range));
    HardwareConfig config;
    config.input_dac.enabled = true;
    config.input_dac.bits = 3;
    config.input_dac.range = range;
    config.input_dac.rounding = Rounding::stochastic;
    HardwareModel hardware(*backend, config, 31);
    BatchLoader::Options options;
    options.batch_size = 16;
    options.seed = 4;
    const std::uint64_t first_key = 40;
    auto batches = [&](bool convert) {
      BatchLoader::Options o = options;
      if (convert)
        o.convert_inputs = [&](float* x, std::int64_t count, std::int64_t index) {
          hardware.write_input_on_host(x, count, 9, static_cast<std::uint32_t>(first_key + index));
        };
      BatchLoader loader(*backend, data, Normalization::unit(1), 2, o);
      std::vector<std::vector<float>> result;
      while (const HostBatch* batch = loader.next()) {
        const std::int64_t count = std::int64_t(batch->size) * data.sample_size();
        result.emplace_back(batch->inputs, batch->inputs + count);
        loader.release(batch);
      }
      return result;
    };
    const auto on_loader = batches(true), raw = batches(false);
    REQUIRE(on_loader.size() == raw.size());
    for (std::size_t k = 0; k < raw.size(); ++k) {
      DeviceBuffer<float> x(*backend, raw[k].size());
      x.copy_from_host(raw[k]);
      hardware.write_input(x.data(), x.data(), static_cast<std::int64_t>(x.size()), 9,
                           static_cast<std::uint32_t>(first_key + k));
      check_bit_exact("batch " + std::to_string(k), on_loader[k], x.to_host());
      CHECK(on_loader[k] != raw[k]);  // 3 bits change the inputs
    }
  }
}

}  // namespace eqprop
