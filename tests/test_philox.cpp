// Tests of the counter-based generator (kernels/philox.h) and of FillRandomOp
// (kernels/fill_random.h), which draws from it on a backend.
//
// Declared determinism (philox.h): the 32-bit words and the uniform floats are
// bit-exact; normals go through logf/cosf. So:
//  - philox4x32_10 is checked against the published known-answer vectors;
//  - FillRandomOp on the CPU backend must equal a plain loop over random_words /
//    uniform_from_word / normal_from_words bit for bit (same compiler, same math);
//  - the distributions are statistical: moments within 5 sigma of the estimator,
//    each check reporting the fraction of its 5-sigma budget used.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ios>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/fill_random.h"
#include "kernels/philox.h"
#include "tests/test_util.h"

namespace {

using eqprop::Philox4;
using eqprop::test::bits_of;
using eqprop::test::check_bit_exact;
using eqprop::RngStream;

using eqprop::test::check_within_sigmas;

eqprop::FillRandomOp fill_op(float* out, std::uint64_t seed, RngStream stream, std::uint64_t first_index,
                             std::uint32_t step, eqprop::Distribution distribution, float scale,
                             float offset) {
  eqprop::FillRandomOp op{};
  op.out = out;
  op.seed = seed;
  op.stream = stream;
  op.first_index = first_index;
  op.step = step;
  op.distribution = distribution;
  op.scale = scale;
  op.offset = offset;
  return op;
}

// FillRandomOp run by the CPU backend on a device buffer of `count` elements.
std::vector<float> fill_on_backend(eqprop::Backend& backend, std::int64_t count, std::uint64_t seed,
                                   RngStream stream, std::uint64_t first_index, std::uint32_t step,
                                   eqprop::Distribution distribution, float scale = 1.0f,
                                   float offset = 0.0f) {
  eqprop::DeviceBuffer<float> out(backend, static_cast<std::size_t>(count));
  backend.run(fill_op(out.data(), seed, stream, first_index, step, distribution, scale, offset), count);
  backend.synchronize();
  return out.to_host();
}

// The same draws, written as a plain loop over the philox.h functions.
std::vector<float> fill_reference(std::int64_t count, std::uint64_t seed, RngStream stream,
                                  std::uint64_t first_index, std::uint32_t step,
                                  eqprop::Distribution distribution, float scale = 1.0f,
                                  float offset = 0.0f) {
  std::vector<float> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    const Philox4 w = eqprop::random_words(seed, stream, first_index + static_cast<std::uint64_t>(i), step);
    const float unit = distribution == eqprop::Distribution::uniform
                           ? eqprop::uniform_from_word(w.v[0])
                           : eqprop::normal_from_words(w.v[0], w.v[1]);
    out[static_cast<std::size_t>(i)] = offset + scale * unit;
  }
  return out;
}

std::size_t count_equal(const std::vector<float>& a, const std::vector<float>& b) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += bits_of(a[i]) == bits_of(b[i]);
  return same;
}

}  // namespace

TEST_CASE("philox: philox4x32_10 reproduces the Random123 known-answer vectors") {
  // Random123 kat_vectors, "philox4x32 10" lines (Salmon et al. 2011):
  // counter (4 words), key (2 words) -> output (4 words).
  struct Vector {
    Philox4 counter;
    std::uint32_t key0, key1;
    Philox4 expected;
  };
  const Vector vectors[] = {
      {{{0u, 0u, 0u, 0u}}, 0u, 0u, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const Vector& v : vectors) {
    const Philox4 out = eqprop::philox4x32_10(v.counter, v.key0, v.key1);
    for (int k = 0; k < 4; ++k) {
      INFO("counter[0] = 0x" << std::hex << v.counter.v[0] << ", word " << std::dec << k);
      CHECK(out.v[k] == v.expected.v[k]);
    }
  }
}

TEST_CASE("philox: random_words maps (seed, stream, index, step) onto counter and key") {
  // counter = {index lo, index hi, step, stream}, key = {seed lo, seed hi}.
  const std::uint64_t seed = 0x0123456789abcdefull;
  const std::uint64_t index = 0xfedcba9876543210ull;
  const Philox4 direct = eqprop::philox4x32_10(
      Philox4{{0x76543210u, 0xfedcba98u, 17u, static_cast<std::uint32_t>(RngStream::dynamics_noise)}},
      0x89abcdefu, 0x01234567u);
  const Philox4 keyed = eqprop::random_words(seed, RngStream::dynamics_noise, index, 17u);
  for (int k = 0; k < 4; ++k) CHECK(keyed.v[k] == direct.v[k]);
}

TEST_CASE("philox: uniform_from_word is in [0, 1), uniform_open_zero in (0, 1], both exact") {
  // Extremes: the top 24 bits scaled by 2^-24.
  CHECK(eqprop::uniform_from_word(0u) == 0.0f);
  CHECK(eqprop::uniform_from_word(0xffffffffu) < 1.0f);
  CHECK(eqprop::uniform_from_word(0xffffffffu) == 1.0f - 0x1.0p-24f);
  CHECK(eqprop::uniform_from_word(0x000000ffu) == 0.0f);  // low 8 bits are dropped
  CHECK(eqprop::uniform_from_word(0x00000100u) == 0x1.0p-24f);
  CHECK(eqprop::uniform_open_zero(0u) > 0.0f);
  CHECK(eqprop::uniform_open_zero(0u) == 0x1.0p-24f);
  CHECK(eqprop::uniform_open_zero(0xffffffffu) == 1.0f);
  CHECK(eqprop::uniform_open_zero(0xffffffffu) <= 1.0f);

  // The normal is finite at the extremes of both words (log of the smallest
  // uniform_open_zero value is finite; the largest gives radius 0).
  for (std::uint32_t w0 : {0u, 1u, 0xffffffffu})
    for (std::uint32_t w1 : {0u, 0x80000000u, 0xffffffffu}) {
      INFO("words " << w0 << ", " << w1);
      CHECK(std::isfinite(eqprop::normal_from_words(w0, w1)));
    }
  CHECK(eqprop::normal_from_words(0xffffffffu, 0u) == 0.0f);
  // The largest |normal| possible: sqrt(-2 ln 2^-24) ~ 5.77.
  CHECK(std::fabs(eqprop::normal_from_words(0u, 0u)) == doctest::Approx(std::sqrt(48.0 * std::log(2.0))).epsilon(1e-6));

  // Every value on a random stream is in range and a multiple of 2^-24.
  for (std::uint64_t i = 0; i < 20000; ++i) {
    const Philox4 w = eqprop::random_words(7, RngStream::test, i, 0);
    for (int k = 0; k < 4; ++k) {
      const float u = eqprop::uniform_from_word(w.v[k]);
      const float v = eqprop::uniform_open_zero(w.v[k]);
      if (!(u >= 0.0f && u < 1.0f && v > 0.0f && v <= 1.0f)) FAIL_CHECK("out of range at " << i);
      const float scaled = u * 16777216.0f;
      if (scaled != std::floor(scaled) || v - u != 0x1.0p-24f) FAIL_CHECK("not exact at " << i);
    }
  }
}

TEST_CASE("philox: normal and uniform moments are within 5 sigma of their expected values") {
  constexpr std::int64_t n = 200000;
  double sum_normal = 0, sum_normal_sq = 0, sum_uniform = 0, sum_uniform_sq = 0;
  std::vector<double> normals(n), uniforms(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const Philox4 w = eqprop::random_words(2024, RngStream::test, static_cast<std::uint64_t>(i), 3);
    normals[i] = eqprop::normal_from_words(w.v[0], w.v[1]);
    uniforms[i] = eqprop::uniform_from_word(w.v[2]);
    sum_normal += normals[i];
    sum_uniform += uniforms[i];
  }
  const double mean_normal = sum_normal / n, mean_uniform = sum_uniform / n;
  for (std::int64_t i = 0; i < n; ++i) {
    sum_normal_sq += (normals[i] - mean_normal) * (normals[i] - mean_normal);
    sum_uniform_sq += (uniforms[i] - mean_uniform) * (uniforms[i] - mean_uniform);
  }
  const double var_normal = sum_normal_sq / (n - 1), var_uniform = sum_uniform_sq / (n - 1);

  // Standard errors: mean sigma/sqrt(n); sample variance sqrt((mu4 - sigma^4) / n),
  // mu4 = 3 for N(0,1) and 1/80 for U(0,1) (sigma^4 = 1/144).
  check_within_sigmas("normal mean", mean_normal, 0.0, 1.0 / std::sqrt(double(n)));
  check_within_sigmas("normal variance", var_normal, 1.0, std::sqrt(2.0 / n));
  check_within_sigmas("uniform mean", mean_uniform, 0.5, std::sqrt(1.0 / 12.0 / n));
  check_within_sigmas("uniform variance", var_uniform, 1.0 / 12.0,
                      std::sqrt((1.0 / 80.0 - 1.0 / 144.0) / n));

  // A shape check beyond two moments: P(|z| > 2) = 0.0455; binomial sigma.
  std::int64_t tails = 0;
  for (double z : normals) tails += std::fabs(z) > 2.0;
  const double p = 0.04550026389635842;
  check_within_sigmas("normal P(|z| > 2)", double(tails) / n, p, std::sqrt(p * (1 - p) / n));
}

TEST_CASE("philox: FillRandomOp on the cpu backend equals a plain loop over the philox functions") {
  auto backend = eqprop::make_backend("cpu");
  // An odd count (serial loop) and one above the OpenMP threshold (8192), a first
  // index with a nonzero high word, a 64-bit seed.
  const std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  const std::uint64_t first_index = (std::uint64_t{3} << 32) + 12345;
  for (std::int64_t count : {std::int64_t{1}, std::int64_t{1001}, std::int64_t{20011}}) {
    for (auto distribution : {eqprop::Distribution::uniform, eqprop::Distribution::normal}) {
      const std::string name = std::string(distribution == eqprop::Distribution::uniform ? "uniform" : "normal") +
                               ", count " + std::to_string(count);
      INFO(name);
      check_bit_exact(name + ", unit scale",
                      fill_on_backend(*backend, count, seed, RngStream::dynamics_noise, first_index, 5, distribution),
                      fill_reference(count, seed, RngStream::dynamics_noise, first_index, 5, distribution));
      check_bit_exact(name + ", scale 0.3 offset -2",
                      fill_on_backend(*backend, count, seed, RngStream::parameter_init, first_index, 0,
                                      distribution, 0.3f, -2.0f),
                      fill_reference(count, seed, RngStream::parameter_init, first_index, 0, distribution,
                                     0.3f, -2.0f));
    }
  }
}

TEST_CASE("philox: a FillRandomOp split into pieces draws the same numbers as one call") {
  // Element i depends only on first_index + i, not on how the range is cut.
  auto backend = eqprop::make_backend("cpu");
  const std::int64_t count = 9001;
  const std::vector<float> whole =
      fill_on_backend(*backend, count, 11, RngStream::test, 100, 2, eqprop::Distribution::normal);
  const std::int64_t cut = 4321;
  std::vector<float> pieces =
      fill_on_backend(*backend, cut, 11, RngStream::test, 100, 2, eqprop::Distribution::normal);
  const std::vector<float> rest =
      fill_on_backend(*backend, count - cut, 11, RngStream::test, 100 + cut, 2, eqprop::Distribution::normal);
  pieces.insert(pieces.end(), rest.begin(), rest.end());
  check_bit_exact("whole vs two pieces", pieces, whole);
}

TEST_CASE("philox: distinct seeds, streams, steps and indices give different values") {
  auto backend = eqprop::make_backend("cpu");
  constexpr std::int64_t n = 4096;
  const auto u = eqprop::Distribution::uniform;
  const std::vector<float> base = fill_on_backend(*backend, n, 42, RngStream::dynamics_noise, 0, 1, u);
  // Uniforms carry 24 bits: two independent arrays of 4096 share ~1 value by chance.
  const std::size_t allowed = 8;
  struct Variant {
    const char* what;
    std::vector<float> values;
  };
  const Variant variants[] = {
      {"seed 43", fill_on_backend(*backend, n, 43, RngStream::dynamics_noise, 0, 1, u)},
      {"seed + 2^32 (high word)", fill_on_backend(*backend, n, 42 + (std::uint64_t{1} << 32), RngStream::dynamics_noise, 0, 1, u)},
      {"stream parameter_init", fill_on_backend(*backend, n, 42, RngStream::parameter_init, 0, 1, u)},
      {"stream test", fill_on_backend(*backend, n, 42, RngStream::test, 0, 1, u)},
      {"step 2", fill_on_backend(*backend, n, 42, RngStream::dynamics_noise, 0, 2, u)},
      {"step 0", fill_on_backend(*backend, n, 42, RngStream::dynamics_noise, 0, 0, u)},
      {"index + 2^32 (high word)", fill_on_backend(*backend, n, 42, RngStream::dynamics_noise, std::uint64_t{1} << 32, 1, u)},
  };
  for (const Variant& v : variants) {
    const std::size_t same = count_equal(base, v.values);
    MESSAGE(std::string(v.what) << ": " << same << " of " << n << " values equal the base stream (allowed " << allowed << ")");
    CHECK(same <= allowed);
  }
  // Within one stream the values are not repeats of each other either.
  const std::set<float> distinct(base.begin(), base.end());
  CHECK(distinct.size() >= base.size() - allowed);
  // Same key, same numbers: a second call is identical.
  check_bit_exact("repeat", fill_on_backend(*backend, n, 42, RngStream::dynamics_noise, 0, 1, u), base);
}
