// CPU vs CUDA parity of the analog hardware ops (kernels/dac_write.h,
// kernels/adc_read.h, kernels/range_calibration.h) and of the driver
// (engine/hardware_model.h), on the same host data and keys.
//
// Tolerances follow the ops' declared determinism:
//  - quantization (nearest and stochastic), calibration and mismatch-free writes
//    without noise are bit-exact (IEEE +-*/, rint, floor, exact uniforms; needs
//    -fmad=false, see kernels/cuda_backend.cu), NaN bit patterns included;
//  - programming noise and mismatch go through normal_from_words (logf/cosf): a
//    few ulp of the magnitudes involved;
//  - ADC readout noise before rounding: a few-ulp difference in the noisy value can
//    move an element lying that close to a rounding boundary by one level, so the
//    readouts must be bit-exact except for a tiny fraction, which differ by one LSB.
// Skips with a message where no GPU is visible.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/hardware_config.h"
#include "engine/hardware_model.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace {

using eqprop::Backend;
using eqprop::DeviceBuffer;
using eqprop::LevelConvention;
using eqprop::NoiseUnit;
using eqprop::QuantizerSpec;
using eqprop::Rounding;

std::vector<float> values(std::size_t count, float lo, float hi) {
  std::mt19937 rng(13);
  std::vector<float> v = eqprop::test::random_vector(rng, count, lo, hi);
  v[1] = std::numeric_limits<float>::quiet_NaN();
  v[2] = std::numeric_limits<float>::infinity();
  v[3] = 0.0f;
  v[4] = hi;
  return v;
}

// Runs `submit` on a backend over device copies of `host` (one array in, one out)
// and returns {in after, out after}.
template <class Submit>
std::pair<std::vector<float>, std::vector<float>> run_on(Backend& backend, const std::vector<float>& host,
                                                         Submit submit) {
  DeviceBuffer<float> in(backend, host.size()), out(backend, host.size());
  in.copy_from_host(host);
  submit(backend, in.data(), out.data());
  backend.synchronize();
  return {in.to_host(), out.to_host()};
}

}  // namespace

TEST_CASE("cuda hardware: noise-free DAC writes, ADC reads and calibration are bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = eqprop::make_backend("cpu");
  auto cuda = eqprop::make_backend("cuda");
  const std::int64_t count = 300001;  // odd, several grid-stride rounds
  const std::vector<float> host = values(static_cast<std::size_t>(count), -0.7f, 1.3f);
  const QuantizerSpec specs[] = {
      {8, LevelConvention::symmetric, Rounding::nearest, -1.0f, 1.0f, nullptr},
      {4, LevelConvention::asymmetric, Rounding::stochastic, 0.0f, 1.0f, nullptr},
      {16, LevelConvention::asymmetric, Rounding::nearest, -0.5f, 1.0f, nullptr},
      {2, LevelConvention::symmetric, Rounding::stochastic, -0.3f, 0.3f, nullptr},
  };
  for (const QuantizerSpec& spec : specs) {
    CAPTURE(spec.bits);
    auto dac = [&](Backend& backend, float* in, float* out) {
      backend.run(eqprop::DacWriteOp{in, nullptr, out, spec, 0.0f, 0.0f, 0.0f, 3, 1, 17, count}, count);
    };
    auto adc = [&](Backend& backend, float* in, float* out) {
      backend.run(eqprop::AdcReadOp{in, out, {spec, 0.0f, NoiseUnit::lsb, 3, 1, 17}, count}, count);
    };
    eqprop::test::check_bit_exact("DacWriteOp (cuda vs cpu)", run_on(*cuda, host, dac).second, run_on(*cpu, host, dac).second);
    eqprop::test::check_bit_exact("AdcReadOp (cuda vs cpu)", run_on(*cuda, host, adc).second, run_on(*cpu, host, adc).second);
  }
  // Calibration (finite data: a NaN would poison the range) through the driver.
  std::vector<float> finite = host;
  for (float& x : finite)
    if (!std::isfinite(x)) x = 0.25f;
  eqprop::HardwareConfig config = eqprop::parse_hardware_config(
      nlohmann::json{{"dac", {{"enabled", true}, {"bits", 5}, {"rounding", "stochastic"}}},
                     {"adc", {{"enabled", true}, {"bits", 6}, {"range", "calibrated"}}}},
      "test");
  auto driver = [&](Backend& backend, float* in, float* out) {
    eqprop::HardwareModel hardware(backend, config, 9);
    hardware.write_parameter(in, out, count, 0, 4);
    hardware.read_states(in, count, eqprop::hardware_tensor::state(eqprop::hardware_tensor::ReadPhase::plus, 0), 4);
  };
  const auto on_cpu = run_on(*cpu, finite, driver);
  const auto on_cuda = run_on(*cuda, finite, driver);
  eqprop::test::check_bit_exact("calibrated DAC write (cuda vs cpu)", on_cuda.second, on_cpu.second);
  eqprop::test::check_bit_exact("calibrated ADC read (cuda vs cpu)", on_cuda.first, on_cpu.first);
}

TEST_CASE("cuda hardware: programming noise, mismatch and readout noise agree with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = eqprop::make_backend("cpu");
  auto cuda = eqprop::make_backend("cuda");
  const std::int64_t count = 200003;
  std::mt19937 rng(2);
  const std::vector<float> host = eqprop::test::random_vector(rng, static_cast<std::size_t>(count), -0.5f, 0.5f);
  const QuantizerSpec dac{6, LevelConvention::symmetric, Rounding::nearest, -0.5f, 0.5f, nullptr};
  auto write = [&](Backend& backend, float* in, float* out) {
    backend.run(eqprop::DacWriteOp{in, nullptr, out, dac, 0.002f, 0.03f, 0.05f, 5, 2, 8, count}, count);
  };
  const auto c = run_on(*cpu, host, write).second;
  const auto g = run_on(*cuda, host, write).second;
  // |w| <= 0.5 * 1.3 or so: a few ulp of 1.
  double worst = 0.0;
  for (std::int64_t i = 0; i < count; ++i) worst = std::fmax(worst, std::fabs(double(c[i]) - g[i]));
  const double tolerance = 8.0 * std::numeric_limits<float>::epsilon();
  MESSAGE("noisy DAC write: worst difference " << worst << " (" << 100.0 * worst / tolerance << "% of a few ulp of 1)");
  CHECK(worst <= tolerance);

  const QuantizerSpec adc{8, LevelConvention::asymmetric, Rounding::nearest, 0.0f, 1.0f, nullptr};
  const std::vector<float> states = eqprop::test::random_vector(rng, static_cast<std::size_t>(count), 0.0f, 1.0f);
  auto read = [&](Backend& backend, float* in, float* out) {
    backend.run(eqprop::AdcReadOp{in, out, {adc, 0.8f, NoiseUnit::lsb, 5, 3, 8}, count}, count);
  };
  const auto rc = run_on(*cpu, states, read).second;
  const auto rg = run_on(*cuda, states, read).second;
  std::int64_t differ = 0, beyond_one_level = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    if (rc[i] == rg[i]) continue;
    ++differ;
    if (std::fabs(double(rc[i]) - rg[i]) > 1.5 / 255.0) ++beyond_one_level;
  }
  MESSAGE("noisy ADC read: " << differ << " of " << count << " readouts differ by one level");
  CHECK(beyond_one_level == 0);
  CHECK(differ <= count / 10000);
}
