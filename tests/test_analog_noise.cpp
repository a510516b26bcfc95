// Tests of the analog hardware ops (kernels/dac_write.h, kernels/adc_read.h,
// kernels/range_calibration.h), their noise (kernels/analog_noise.h) and the host
// driver engine/hardware_model.h.
//
// Tolerances follow each op's declared determinism:
//  - the CPU backend must equal a plain loop written here over the philox.h draws
//    and the quantizer, bit for bit (same compiler, same math), at a small (serial)
//    and a large (OpenMP, > 8192 indices) size;
//  - min/max calibration is exact (no rounding in min and max);
//  - with everything off the ops are exact identities (NaN payloads, -0, Inf);
//  - noise and mismatch statistics: moments within 5 sigma of the estimator, each
//    check reporting the fraction of its budget used.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/hardware_config.h"
#include "engine/hardware_model.h"
#include "kernels/analog_noise.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "kernels/quantizer.h"
#include "kernels/range_calibration.h"
#include "tests/test_util.h"

namespace {

using eqprop::AdcReadOp;
using eqprop::Backend;
using eqprop::DacWriteOp;
using eqprop::DeviceBuffer;
using eqprop::LevelConvention;
using eqprop::NoiseUnit;
using eqprop::Philox4;
using eqprop::QuantizerSpec;
using eqprop::RngStream;
using eqprop::Rounding;
using eqprop::test::bits_of;
using eqprop::test::check_bit_exact;
using eqprop::test::random_vector;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr std::int64_t kSizes[] = {91, 19200};  // serial, and above the OpenMP threshold

using eqprop::test::check_within_sigmas;

// Sample mean and variance checked against (mean, variance) of the distribution:
// the mean's sigma is sqrt(var / n), the sample variance's sqrt(2 var^2 / (n - 1))
// (Gaussian data).
void check_moments(const std::string& what, const std::vector<double>& samples, double mean, double variance) {
  const double n = static_cast<double>(samples.size());
  double sum = 0.0;
  for (double x : samples) sum += x;
  const double sample_mean = sum / n;
  double squares = 0.0;
  for (double x : samples) squares += (x - sample_mean) * (x - sample_mean);
  const double sample_variance = squares / (n - 1.0);
  check_within_sigmas(what + ": mean", sample_mean, mean, std::sqrt(variance / n));
  check_within_sigmas(what + ": variance", sample_variance, variance, variance * std::sqrt(2.0 / (n - 1.0)));
}

float normal(const Philox4& w, int pair) { return eqprop::normal_from_words(w.v[2 * pair], w.v[2 * pair + 1]); }

std::uint64_t index_of(std::uint32_t tensor, std::int64_t i) {
  return (static_cast<std::uint64_t>(tensor) << 40) + static_cast<std::uint64_t>(i);
}

// Values for the ops: a spread over [-1.2, 1.2] with specials mixed in.
std::vector<float> test_values(std::int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<float> v = random_vector(rng, static_cast<std::size_t>(count), -1.2f, 1.2f);
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, kNaN, kInf, -kInf, 1e-40f, FLT_MAX};
  for (std::size_t k = 0; k < sizeof specials / sizeof specials[0] && 7 * k < v.size(); ++k) v[7 * k] = specials[k];
  return v;
}

DeviceBuffer<float> on_device(Backend& backend, const std::vector<float>& host) {
  DeviceBuffer<float> buffer(backend, host.size());
  buffer.copy_from_host(host);
  return buffer;
}

// The DAC write written as a plain loop over philox.h and the quantizer.
void dac_reference(const DacWriteOp& op, const std::vector<float>& source, std::vector<float>* written,
                   std::vector<float>& effective, const float* host_range) {
  for (std::size_t i = 0; i < source.size(); ++i) {
    const std::uint64_t index = index_of(op.tensor, static_cast<std::int64_t>(i));
    float q = source[i];
    if (op.quantizer.bits > 0) {
      const float lo = host_range ? host_range[0] : op.quantizer.lo;
      const float hi = host_range ? host_range[1] : op.quantizer.hi;
      const auto levels = eqprop::quantizer_levels(op.quantizer.bits, op.quantizer.convention, lo, hi);
      const float u = eqprop::uniform_from_word(
          eqprop::random_words(op.seed, RngStream::dac_rounding, index, op.write_count.value()).v[0]);
      q = eqprop::quantize(q, levels, op.quantizer.rounding, 0.0f, op.quantizer.rounding == Rounding::stochastic ? u : 0.0f);
    }
    float w = q;
    const Philox4 noise = eqprop::random_words(op.seed, RngStream::programming_noise, index, op.write_count.value());
    if (op.noise_additive != 0.0f) w += op.noise_additive * normal(noise, 0);
    if (op.noise_multiplicative != 0.0f) w += op.noise_multiplicative * std::fabs(q) * normal(noise, 1);
    if (written) (*written)[i] = w;
    const Philox4 gain = eqprop::random_words(op.seed, RngStream::device_mismatch, index, 0);
    effective[i] = op.mismatch_sigma == 0.0f ? w : (1.0f + op.mismatch_sigma * normal(gain, 0)) * w;
  }
}

// The ADC read written as a plain loop.
std::vector<float> adc_reference(const AdcReadOp& read, const std::vector<float>& in, const float* host_range) {
  const eqprop::AdcSpec& op = read.adc;
  std::vector<float> out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::uint64_t index = index_of(op.tensor, static_cast<std::int64_t>(i));
    const Philox4 noise = eqprop::random_words(op.seed, RngStream::adc_noise, index, op.read_count.value());
    const float xi = normal(noise, 0);
    if (op.quantizer.bits == 0) {
      out[i] = op.noise_sigma == 0.0f ? in[i] : in[i] + op.noise_sigma * xi;
      continue;
    }
    const float lo = host_range ? host_range[0] : op.quantizer.lo;
    const float hi = host_range ? host_range[1] : op.quantizer.hi;
    const auto levels = eqprop::quantizer_levels(op.quantizer.bits, op.quantizer.convention, lo, hi);
    float noise_lsb = 0.0f;
    if (op.noise_sigma != 0.0f)
      noise_lsb = op.noise_unit == NoiseUnit::lsb ? op.noise_sigma * xi : op.noise_sigma * xi / levels.step;
    const float u = eqprop::uniform_from_word(
        eqprop::random_words(op.seed, RngStream::adc_rounding, index, op.read_count.value()).v[0]);
    out[i] = eqprop::quantize(in[i], levels, op.quantizer.rounding, noise_lsb,
                              op.quantizer.rounding == Rounding::stochastic ? u : 0.0f);
  }
  return out;
}

// [min, max] of a host array, NaN-propagating (the calibration rule).
std::vector<float> host_min_max(const std::vector<float>& x) {
  float lo = x[0], hi = x[0];
  for (float v : x) {
    if (std::isnan(v) || std::isnan(lo)) {
      lo = hi = kNaN;
      continue;
    }
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {lo, hi};
}

struct DacCase {
  const char* name;
  QuantizerSpec quantizer;
  bool calibrated;
  float additive, multiplicative, mismatch;
  bool write_back;
};

std::vector<DacCase> dac_cases() {
  const QuantizerSpec off = eqprop::quantizer_off();
  const QuantizerSpec sym8{8, LevelConvention::symmetric, Rounding::nearest, -1.0f, 1.0f, nullptr};
  const QuantizerSpec asym4_stochastic{4, LevelConvention::asymmetric, Rounding::stochastic, -0.5f, 1.0f, nullptr};
  const QuantizerSpec sym3_stochastic{3, LevelConvention::symmetric, Rounding::stochastic, 0.0f, 0.0f, nullptr};
  return {
      {"quantize only, symmetric 8 bits, fixed range", sym8, false, 0, 0, 0, false},
      {"quantize only, asymmetric 4 bits, stochastic", asym4_stochastic, false, 0, 0, 0, true},
      {"quantize, calibrated symmetric 3 bits, stochastic", sym3_stochastic, true, 0, 0, 0, true},
      {"programming noise only", off, false, 0.01f, 0.05f, 0, true},
      {"mismatch only", off, false, 0, 0, 0.1f, false},
      {"everything: calibrated 8 bits, noise, mismatch", sym8, true, 0.003f, 0.02f, 0.05f, true},
  };
}

}  // namespace

TEST_CASE("hardware: DacWriteOp on the CPU backend equals a direct loop, bit for bit") {
  auto backend = eqprop::make_backend("cpu");
  for (const DacCase& c : dac_cases()) {
    for (std::int64_t count : kSizes) {
      for (std::uint32_t write_count : {0u, 5u}) {
        CAPTURE(c.name);
        CAPTURE(count);
        CAPTURE(write_count);
        std::vector<float> source = test_values(count, 11);
        if (c.calibrated) {  // no NaN/Inf: they would poison the range (tested apart)
          for (float& x : source)
            if (!std::isfinite(x) || std::fabs(x) > 10.0f) x = 0.5f;
        }
        DeviceBuffer<float> source_device = on_device(*backend, source);
        DeviceBuffer<float> effective_device(*backend, source.size());
        const std::vector<float> host_range = host_min_max(source);
        DeviceBuffer<float> range_device = on_device(*backend, host_range);
        DacWriteOp op{source_device.data(), c.write_back ? source_device.data() : nullptr,
                      effective_device.data(), c.quantizer, c.additive, c.multiplicative, c.mismatch,
                      42, 3, write_count, count};
        if (c.calibrated) op.quantizer.range = range_device.data();
        backend->run(op, count);
        backend->synchronize();
        std::vector<float> written_expected(source.size()), effective_expected(source.size());
        dac_reference(op, source, &written_expected, effective_expected, c.calibrated ? host_range.data() : nullptr);
        check_bit_exact("effective", effective_device.to_host(), effective_expected);
        check_bit_exact("source after the write", source_device.to_host(), c.write_back ? written_expected : source);
        // op(i), what the GPU runs, equals the CPU's chunked row(r) bit for bit.
        std::vector<float> by_index_source = source, by_index_effective(source.size());
        DacWriteOp by_index = op;
        by_index.source = by_index_source.data();
        by_index.written = c.write_back ? by_index_source.data() : nullptr;
        by_index.effective = by_index_effective.data();
        for (std::int64_t i = 0; i < count; ++i) by_index(i);
        check_bit_exact("op(i) vs row(r)", by_index_effective, effective_device.to_host());
      }
    }
  }
}

TEST_CASE("hardware: AdcReadOp on the CPU backend equals a direct loop, bit for bit") {
  auto backend = eqprop::make_backend("cpu");
  const QuantizerSpec adc8{8, LevelConvention::asymmetric, Rounding::nearest, 0.0f, 1.0f, nullptr};
  const QuantizerSpec adc5_stochastic{5, LevelConvention::asymmetric, Rounding::stochastic, 0.0f, 1.0f, nullptr};
  struct Case {
    const char* name;
    QuantizerSpec quantizer;
    bool calibrated;
    float sigma;
    NoiseUnit unit;
  };
  const Case cases[] = {
      {"8 bits, nearest", adc8, false, 0.0f, NoiseUnit::lsb},
      {"8 bits, noise 0.7 LSB", adc8, false, 0.7f, NoiseUnit::lsb},
      {"5 bits stochastic, noise 0.01 absolute", adc5_stochastic, false, 0.01f, NoiseUnit::absolute},
      {"calibrated 6 bits, noise 0.5 LSB", {6, LevelConvention::asymmetric, Rounding::nearest, 0, 0, nullptr}, true, 0.5f, NoiseUnit::lsb},
      {"no quantizer, noise 0.02 absolute", eqprop::quantizer_off(), false, 0.02f, NoiseUnit::absolute},
  };
  for (const Case& c : cases) {
    for (std::int64_t count : kSizes) {
      CAPTURE(c.name);
      CAPTURE(count);
      std::mt19937 rng(5);
      std::vector<float> states = random_vector(rng, static_cast<std::size_t>(count), -0.1f, 1.1f);
      if (!c.calibrated) states[3] = kNaN, states[4] = kInf;
      const std::vector<float> host_range = host_min_max(states);
      DeviceBuffer<float> range_device = on_device(*backend, host_range);
      DeviceBuffer<float> in = on_device(*backend, states);
      DeviceBuffer<float> out(*backend, states.size());
      AdcReadOp op{in.data(), out.data(), {c.quantizer, c.sigma, c.unit, 7, 9, 123}, count};
      if (c.calibrated) op.adc.quantizer.range = range_device.data();
      backend->run(op, count);
      // In place gives the same.
      AdcReadOp in_place = op;
      in_place.out = in.data();
      backend->run(in_place, count);
      backend->synchronize();
      const std::vector<float> expected = adc_reference(op, states, c.calibrated ? host_range.data() : nullptr);
      check_bit_exact("readout", out.to_host(), expected);
      check_bit_exact("readout in place", in.to_host(), expected);
      std::vector<float> by_index_out(states.size());
      AdcReadOp by_index = op;
      by_index.in = states.data();
      by_index.out = by_index_out.data();
      for (std::int64_t i = 0; i < count; ++i) by_index(i);
      check_bit_exact("op(i) vs row(r)", by_index_out, expected);
    }
  }
}

TEST_CASE("hardware: an op whose count field disagrees with the run count is refused on the CPU") {
  auto backend = eqprop::make_backend("cpu");
  DeviceBuffer<float> a(*backend, 100), b(*backend, 100);
  a.zero();
  DacWriteOp dac{a.data(), nullptr, b.data(), eqprop::quantizer_off(), 0, 0, 0, 1, 0, 0, 99};
  AdcReadOp adc{a.data(), b.data(), eqprop::quantizer_off(), 0, NoiseUnit::lsb, 1, 0, 0, 0};
  CHECK_THROWS_AS(backend->run(dac, 100), std::logic_error);
  CHECK_THROWS_AS(backend->run(adc, 100), std::logic_error);
}

TEST_CASE("hardware: range calibration passes give the exact min and max, and NaN poisons the range") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(3);
  for (std::int64_t count : {1, 2, 63, 64, 65, 4095, 4097, 262145, 392000}) {
    CAPTURE(count);
    std::vector<float> x = random_vector(rng, static_cast<std::size_t>(count), -2.0f, 3.0f);
    DeviceBuffer<float> scratch(*backend, 4 * static_cast<std::size_t>(eqprop::range_calibration_parts(count)));
    DeviceBuffer<float> range(*backend, 2);
    auto calibrate = [&](const std::vector<float>& values) {
      DeviceBuffer<float> device = on_device(*backend, values);
      eqprop::calibrate_range(*backend, device.data(), count, scratch.data(), range.data());
      return range.to_host();
    };
    const std::vector<float> got = calibrate(x);
    CHECK(bits_of(got[0]) == bits_of(*std::min_element(x.begin(), x.end())));
    CHECK(bits_of(got[1]) == bits_of(*std::max_element(x.begin(), x.end())));
    // A NaN anywhere (first, middle, last) gives a NaN range.
    for (std::int64_t where : {std::int64_t{0}, count / 2, count - 1}) {
      std::vector<float> poisoned = x;
      poisoned[static_cast<std::size_t>(where)] = kNaN;
      const std::vector<float> r = calibrate(poisoned);
      CHECK(std::isnan(r[0]));
      CHECK(std::isnan(r[1]));
    }
  }
}

TEST_CASE("hardware: with everything off the ops and the driver are exact identities") {
  auto backend = eqprop::make_backend("cpu");
  for (std::int64_t count : kSizes) {
    const std::vector<float> values = test_values(count, 17);
    DeviceBuffer<float> source = on_device(*backend, values);
    DeviceBuffer<float> written(*backend, values.size()), effective(*backend, values.size()), read(*backend, values.size());
    backend->run(DacWriteOp{source.data(), written.data(), effective.data(), eqprop::quantizer_off(), 0.0f, 0.0f, 0.0f, 1, 0, 0, count},
                 count);
    backend->run(AdcReadOp{source.data(), read.data(), {eqprop::quantizer_off(), 0.0f, NoiseUnit::lsb, 1, 0, 0}, count}, count);
    backend->synchronize();
    check_bit_exact("DacWriteOp off: written", written.to_host(), values);
    check_bit_exact("DacWriteOp off: effective", effective.to_host(), values);
    check_bit_exact("AdcReadOp off", read.to_host(), values);

    // The driver with the default config runs nothing and copies where asked.
    const eqprop::HardwareConfig defaults = eqprop::parse_hardware_config(nlohmann::json::object(), "test");
    REQUIRE_FALSE(defaults.any());
    eqprop::HardwareModel hardware(*backend, defaults, 1);
    DeviceBuffer<float> master = on_device(*backend, values);
    DeviceBuffer<float> device(*backend, values.size()), inputs(*backend, values.size());
    hardware.write_parameter(master.data(), device.data(), count, 0, 1);
    hardware.write_input(master.data(), inputs.data(), count, eqprop::hardware_tensor::kTrainInput, 1);
    DeviceBuffer<float> states = on_device(*backend, values);
    hardware.read_states(states.data(), count, eqprop::hardware_tensor::state(eqprop::hardware_tensor::ReadPhase::plus, 0), 1);
    check_bit_exact("driver off: master", master.to_host(), values);
    check_bit_exact("driver off: device copy", device.to_host(), values);
    check_bit_exact("driver off: inputs", inputs.to_host(), values);
    check_bit_exact("driver off: states", states.to_host(), values);
  }
}

TEST_CASE("hardware: programming noise has the configured mean and variance, fresh at each write") {
  auto backend = eqprop::make_backend("cpu");
  const std::int64_t n = 200000;
  std::mt19937 rng(21);
  const std::vector<float> q = random_vector(rng, static_cast<std::size_t>(n), 0.2f, 1.5f);
  std::vector<float> signed_q = q;
  for (std::size_t i = 0; i < signed_q.size(); i += 2) signed_q[i] = -signed_q[i];
  DeviceBuffer<float> source = on_device(*backend, signed_q);
  DeviceBuffer<float> out(*backend, q.size());
  auto write = [&](float additive, float multiplicative, std::uint32_t write_count) {
    backend->run(DacWriteOp{source.data(), nullptr, out.data(), eqprop::quantizer_off(), additive, multiplicative, 0.0f,
                            99, 4, write_count, n},
                 n);
    return out.to_host();
  };
  struct Case {
    float additive, multiplicative;
  };
  for (Case c : {Case{0.01f, 0.0f}, Case{0.0f, 0.02f}, Case{0.005f, 0.03f}}) {
    CAPTURE(c.additive);
    CAPTURE(c.multiplicative);
    const std::vector<float> w0 = write(c.additive, c.multiplicative, 0);
    const std::vector<float> w1 = write(c.additive, c.multiplicative, 1);
    const std::vector<float> w0_again = write(c.additive, c.multiplicative, 0);
    check_bit_exact("same write count, same noise", w0_again, w0);
    // Standardized noise: (w - q) / sqrt(sa^2 + sm^2 q^2) ~ N(0, 1).
    std::vector<double> z0(q.size()), z1(q.size());
    double correlation = 0.0;
    for (std::size_t i = 0; i < q.size(); ++i) {
      const double scale = std::sqrt(double(c.additive) * c.additive + double(c.multiplicative) * c.multiplicative * q[i] * q[i]);
      z0[i] = (double(w0[i]) - signed_q[i]) / scale;
      z1[i] = (double(w1[i]) - signed_q[i]) / scale;
      correlation += z0[i] * z1[i];
    }
    check_moments("standardized programming noise", z0, 0.0, 1.0);
    // Fresh at each write: the noise of writes 0 and 1 is uncorrelated.
    check_within_sigmas("correlation of writes 0 and 1", correlation / n, 0.0, 1.0 / std::sqrt(double(n)));
  }
}

TEST_CASE("hardware: mismatch gains are fixed across writes, reproducible from the seed, and differ by seed") {
  const std::int64_t n = 100000;
  const float sigma = 0.05f;
  auto effective_of = [&](std::uint64_t seed, std::uint32_t write_count, float additive) {
    auto backend = eqprop::make_backend("cpu");  // a fresh backend: no state carried over
    DeviceBuffer<float> source = on_device(*backend, std::vector<float>(static_cast<std::size_t>(n), 0.5f));
    DeviceBuffer<float> written(*backend, static_cast<std::size_t>(n)), effective(*backend, static_cast<std::size_t>(n));
    backend->run(DacWriteOp{source.data(), written.data(), effective.data(), eqprop::quantizer_off(), additive, 0.0f,
                            sigma, seed, 2, write_count, n},
                 n);
    return std::make_pair(written.to_host(), effective.to_host());
  };
  const auto first = effective_of(1, 0, 0.0f);
  check_bit_exact("mismatch at write 7 vs write 0", effective_of(1, 7, 0.0f).second, first.second);
  check_bit_exact("mismatch recomputed from the seed", effective_of(1, 0, 0.0f).second, first.second);
  // With programming noise the written value changes per write; the gain does not:
  // effective = gain(seed, element) * written at every write count.
  for (std::uint32_t write_count : {0u, 3u}) {
    const auto noisy = effective_of(1, write_count, 0.01f);
    int mismatched = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const float gain = eqprop::mismatch_gain(1, eqprop::hardware_index(2, i), sigma);
      if (bits_of(noisy.second[i]) != bits_of(gain * noisy.first[i])) ++mismatched;
    }
    CHECK(mismatched == 0);
  }
  // Another seed: other gains (all but a vanishing fraction of elements differ).
  const auto other = effective_of(2, 0, 0.0f);
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < n; ++i) same += first.second[i] == other.second[i];
  CHECK(same < n / 1000);
  // gain ~ 1 + sigma N(0, 1).
  std::vector<double> gains(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) gains[i] = first.second[i] / 0.5;
  check_moments("mismatch gain", gains, 1.0, double(sigma) * sigma);
  // sigma = 0: every gain exactly 1.
  CHECK(eqprop::mismatch_gain(1, 5, 0.0f) == 1.0f);
}

TEST_CASE("hardware: ADC readout noise has the configured variance, in LSB and absolute") {
  auto backend = eqprop::make_backend("cpu");
  const std::int64_t n = 200000;
  // Absolute sigma with a fine ADC (16 bits on [0, 1]): the readout error is noise
  // plus uniform rounding error, variance sigma^2 + step^2 / 12 (Sheppard).
  {
    const float sigma = 0.01f, x = 0.4f;
    const QuantizerSpec adc{16, LevelConvention::asymmetric, Rounding::nearest, 0.0f, 1.0f, nullptr};
    const double step = 1.0 / 65535.0;
    DeviceBuffer<float> in = on_device(*backend, std::vector<float>(static_cast<std::size_t>(n), x));
    DeviceBuffer<float> out(*backend, static_cast<std::size_t>(n));
    backend->run(AdcReadOp{in.data(), out.data(), {adc, sigma, NoiseUnit::absolute, 5, 1, 0}, n}, n);
    const std::vector<float> r = out.to_host();
    std::vector<double> error(r.begin(), r.end());
    for (double& e : error) e -= x;
    check_moments("readout error, absolute sigma 0.01", error, 0.0, double(sigma) * sigma + step * step / 12.0);
  }
  // Sigma in LSB (8 bits on [0, 255], step 1): sigma = 2.5 LSB dithers the rounding,
  // so the mean readout is x and the variance sigma^2 + 1/12.
  {
    const float sigma = 2.5f, x = 100.3f;
    const QuantizerSpec adc{8, LevelConvention::asymmetric, Rounding::nearest, 0.0f, 255.0f, nullptr};
    DeviceBuffer<float> in = on_device(*backend, std::vector<float>(static_cast<std::size_t>(n), x));
    DeviceBuffer<float> out(*backend, static_cast<std::size_t>(n));
    backend->run(AdcReadOp{in.data(), out.data(), {adc, sigma, NoiseUnit::lsb, 5, 1, 0}, n}, n);
    const std::vector<float> r0 = out.to_host();
    std::vector<double> readout(r0.begin(), r0.end());
    int off_grid = 0;
    for (double v : readout) off_grid += v != std::rint(v);
    CHECK(off_grid == 0);  // every readout is a level
    check_moments("readout, sigma 2.5 LSB", readout, x, double(sigma) * sigma + 1.0 / 12.0);
    // A new read count gives new noise; the same one the same readout.
    backend->run(AdcReadOp{in.data(), out.data(), {adc, sigma, NoiseUnit::lsb, 5, 1, 1}, n}, n);
    const std::vector<float> r1 = out.to_host();
    std::int64_t same = 0;
    for (std::int64_t i = 0; i < n; ++i) same += r0[i] == r1[i];
    CHECK(same < n / 4);  // two reads agree on ~16% of elements (sigma 2.5 LSB)
    backend->run(AdcReadOp{in.data(), out.data(), {adc, sigma, NoiseUnit::lsb, 5, 1, 0}, n}, n);
    check_bit_exact("same read count, same readout", out.to_host(), r0);
  }
}

TEST_CASE("hardware: stochastic rounding through the DAC is unbiased over writes") {
  // One element written many times (write counts 0..N-1) and many elements written
  // once: both average to the unquantized value.
  auto backend = eqprop::make_backend("cpu");
  const std::int64_t n = 200000;
  const QuantizerSpec dac{4, LevelConvention::symmetric, Rounding::stochastic, -1.0f, 1.0f, nullptr};  // step 1/7
  const float x = 0.3f;  // 2.1 steps
  DeviceBuffer<float> in = on_device(*backend, std::vector<float>(static_cast<std::size_t>(n), x));
  DeviceBuffer<float> out(*backend, static_cast<std::size_t>(n));
  backend->run(DacWriteOp{in.data(), nullptr, out.data(), dac, 0, 0, 0, 8, 1, 0, n}, n);
  const std::vector<float> across = out.to_host();
  double sum = 0.0;
  for (float v : across) sum += v;
  const double step = 1.0 / 7.0, fraction = x / step - 2.0;
  const double sigma = step * std::sqrt(fraction * (1.0 - fraction) / n);
  check_within_sigmas("mean over elements", sum / n, x, sigma);
  double over_writes = 0.0;
  for (std::uint32_t w = 0; w < 20000; ++w) {
    backend->run(DacWriteOp{in.data(), nullptr, out.data(), dac, 0, 0, 0, 8, 1, w, 1}, 1);
    over_writes += out.to_host()[0];
  }
  check_within_sigmas("mean over writes", over_writes / 20000, x, step * std::sqrt(fraction * (1.0 - fraction) / 20000));
}

TEST_CASE("hardware: the driver programs parameters, inputs and readouts as configured") {
  auto backend = eqprop::make_backend("cpu");
  const std::int64_t count = 19200;
  std::mt19937 rng(4);
  const std::vector<float> w = random_vector(rng, static_cast<std::size_t>(count), -0.3f, 0.2f);

  for (bool keep : {true, false}) {
    CAPTURE(keep);
    nlohmann::json section = {{"dac", {{"enabled", true}, {"bits", 6}, {"rounding", "stochastic"}}},
                              {"programming_noise", {{"multiplicative", 0.02}}},
                              {"mismatch_sigma", 0.03},
                              {"keep_full_precision", keep}};
    const eqprop::HardwareConfig config = eqprop::parse_hardware_config(section, "test");
    eqprop::HardwareModel hardware(*backend, config, 77);
    DeviceBuffer<float> master = on_device(*backend, w);
    DeviceBuffer<float> device(*backend, w.size());
    hardware.write_parameter(master.data(), device.data(), count, eqprop::hardware_tensor::weights(1), 12);
    // Expected: calibrated symmetric 6 bits on +-max|w|, stochastic, noise, mismatch.
    const std::vector<float> range = host_min_max(w);
    DacWriteOp op{nullptr, nullptr, nullptr, eqprop::quantizer_spec(config.dac, nullptr), 0.0f, 0.02f, 0.03f, 77,
                  eqprop::hardware_tensor::weights(1), 12, count};
    std::vector<float> written(w.size()), effective(w.size());
    dac_reference(op, w, &written, effective, range.data());
    check_bit_exact("device copy", device.to_host(), effective);
    check_bit_exact("optimizer copy", master.to_host(), keep ? w : written);
    if (!keep) {
      // Resuming from the written values restores the same device copy.
      DeviceBuffer<float> restored(*backend, w.size());
      hardware.restore_parameter(master.data(), restored.data(), count, eqprop::hardware_tensor::weights(1));
      check_bit_exact("restored device copy", restored.to_host(), effective);
    } else {
      CHECK_THROWS_AS(hardware.write_parameter(master.data(), master.data(), count, 0, 0), std::invalid_argument);
    }
  }

  // Input DAC (default: 8 bits asymmetric on [0, 1]) and ADC with calibrated range.
  nlohmann::json section = {{"input_dac", {{"enabled", true}, {"bits", 3}}},
                            {"adc", {{"enabled", true}, {"bits", 5}, {"range", "calibrated"}, {"noise_sigma", 0.4}}}};
  const eqprop::HardwareConfig config = eqprop::parse_hardware_config(section, "test");
  eqprop::HardwareModel hardware(*backend, config, 5);
  const std::vector<float> x = random_vector(rng, static_cast<std::size_t>(count), 0.0f, 1.0f);
  DeviceBuffer<float> x_device = on_device(*backend, x);
  DeviceBuffer<float> x_dac(*backend, x.size());
  hardware.write_input(x_device.data(), x_dac.data(), count, eqprop::hardware_tensor::kTrainInput, 3);
  std::vector<float> expected_x(x.size());
  DacWriteOp input_op{nullptr, nullptr, nullptr, eqprop::quantizer_spec(config.input_dac, nullptr), 0, 0, 0, 5,
                      eqprop::hardware_tensor::kTrainInput, 3, count};
  dac_reference(input_op, x, nullptr, expected_x, nullptr);
  check_bit_exact("input DAC", x_dac.to_host(), expected_x);
  std::set<float> levels(expected_x.begin(), expected_x.end());
  CHECK(levels.size() == 8);

  const std::uint32_t tensor = eqprop::hardware_tensor::state(eqprop::hardware_tensor::ReadPhase::minus, 1);
  hardware.read_states(x_device.data(), count, tensor, 9);
  const std::vector<float> range = host_min_max(x);
  AdcReadOp adc_op{nullptr, nullptr, eqprop::quantizer_spec(config.adc, nullptr), 0.4f, NoiseUnit::lsb, 5, tensor, 9, count};
  check_bit_exact("ADC read", x_device.to_host(), adc_reference(adc_op, x, range.data()));
}
