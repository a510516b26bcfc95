// The GEMM precision option (kernels/gemm_precision.h) on the CPU backend: the mantissa rounding
// against a naive double-precision rounding, the CPU backend's fp32 GEMM unchanged
// by the option, the emulated tf32 / bf16 GEMM within its error bound against a
// double-precision reference (with the measured error reported), and a small EP
// training that still learns under bf16.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <limits>
#include <random>
#include <vector>

#include "engine/precision_summary.h"
#include "engine/training_run.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/dnnl_isa.h"
#include "kernels/gemm_precision.h"
#include "tests/gemm_error.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// Round to `bits` stored mantissa bits, to nearest, ties to even, in double:
// x = m * 2^e with m in [1, 2); the grid step is 2^(e - bits), and below the
// smallest normal exponent (-126, FP32's range, which TF32 and BF16 share) the
// subnormal step 2^(-126 - bits).
double naive_round(double x, int bits) {
  if (x == 0.0 || !std::isfinite(x)) return x;
  int exponent = 0;
  std::frexp(std::fabs(x), &exponent);  // |x| = f * 2^exponent, f in [0.5, 1)
  const double step = std::ldexp(1.0, std::max(exponent - 1, -126) - bits);
  const double scaled = std::fabs(x) / step;  // exact: a power-of-two scaling
  double whole = std::floor(scaled);
  const double fraction = scaled - whole;
  if (fraction > 0.5 || (fraction == 0.5 && std::fmod(whole, 2.0) == 1.0)) whole += 1.0;
  return std::copysign(whole * step, x);
}

}  // namespace

TEST_CASE("gemm precision: round_to_precision equals a naive rounding in double") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  for (GemmPrecision precision : {GemmPrecision::tf32, GemmPrecision::bf16}) {
    const int bits = mantissa_bits(precision);
    int mismatches = 0, ties = 0;
    for (int i = 0; i < 200000; ++i) {
      std::uint32_t word = any_bits(rng);
      // Every fourth value is an exact half-way case, to exercise ties to even.
      if (i % 4 == 0) {
        const int dropped = 23 - bits;
        word = (word & ~((1u << dropped) - 1u)) | (1u << (dropped - 1));
        ++ties;
      }
      float x;
      std::memcpy(&x, &word, sizeof x);
      if (!std::isfinite(x)) continue;
      const double expected = naive_round(x, bits);
      const float rounded = round_to_precision(x, precision);
      const bool overflow = std::fabs(expected) > std::numeric_limits<float>::max();
      const bool same = overflow ? std::isinf(rounded) : static_cast<double>(rounded) == expected;
      if (!same && mismatches++ < 3)
        FAIL_CHECK(std::string(gemm_precision_name(precision)) << ": " << x << " -> " << rounded << ", expected " << expected);
    }
    CHECK(mismatches == 0);
    CHECK(ties > 0);
  }
  CHECK(round_to_precision(1.0f + 0x1p-23f, GemmPrecision::fp32) == 1.0f + 0x1p-23f);
  CHECK(round_to_precision(1.0f + 0x1p-8f, GemmPrecision::bf16) == 1.0f);  // tie, to even
  CHECK(round_to_precision(1.0f + 3 * 0x1p-8f, GemmPrecision::bf16) == 1.0f + 0x1p-6f);  // tie, to even (up)
  CHECK(std::isnan(round_to_precision(std::nanf(""), GemmPrecision::bf16)));
  CHECK(std::isinf(round_to_precision(std::numeric_limits<float>::infinity(), GemmPrecision::tf32)));
}

TEST_CASE("gemm precision: fp32 is the default and is not changed by the option") {
  auto backend = make_backend("cpu");
  CHECK(backend->gemm_precision() == GemmPrecision::fp32);
  std::mt19937 rng(5);
  const int m = 13, n = 17, k = 29;
  const test::Matrix a = test::random_matrix(rng, m, k, 3), b = test::random_matrix(rng, k, n, 2);
  const std::vector<float> before = test::backend_gemm(*backend, GemmPrecision::fp32, false, false, m, n, k, a, b);
  (void)test::backend_gemm(*backend, GemmPrecision::bf16, false, false, m, n, k, a, b);
  const std::vector<float> after = test::backend_gemm(*backend, GemmPrecision::fp32, false, false, m, n, k, a, b);
  test::check_bit_exact("fp32 gemm after a bf16 gemm", after, before);
  // A fresh backend that never heard of the option computes the same bits.
  auto fresh = make_backend("cpu");
  test::check_bit_exact("fp32 gemm on a fresh backend", test::backend_gemm(*fresh, GemmPrecision::fp32, false, false, m, n,
                                                                      k, a, b), before);
}

TEST_CASE("gemm precision: the cpu backend runs bf16 natively exactly where the CPU multiplies bf16") {
  // Independent of oneDNN's own dispatch: the kernel's list of the CPU's flags.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::stringstream text;
  text << cpuinfo.rdbuf();
  const std::string flags = " " + text.str() + " ";
  const bool bf16_instructions =
      flags.find(" avx512_bf16 ") != std::string::npos || flags.find(" amx_bf16 ") != std::string::npos;
  const bool expected = built_with_dnnl() && bf16_instructions;  // no oneDNN: always the emulation
  MESSAGE("bf16 instructions in /proc/cpuinfo: " << bf16_instructions);
  auto backend = make_backend("cpu");
  CHECK(backend->native_gemm_precision(GemmPrecision::fp32));
  CHECK_FALSE(backend->native_gemm_precision(GemmPrecision::tf32));
  CHECK(backend->native_gemm_precision(GemmPrecision::bf16) == expected);
  // The user's words agree: fp32 plain, tf32 emulated, bf16 as the flag says.
  CHECK(gemm_precision_summary(*backend, GemmPrecision::fp32) == "fp32");
  CHECK(gemm_precision_summary(*backend, GemmPrecision::tf32).rfind("tf32, emulated: ", 0) == 0);
  const std::string bf16 = gemm_precision_summary(*backend, GemmPrecision::bf16);
  MESSAGE(bf16);
  CHECK((bf16.find("emulated") == std::string::npos) == expected);
}

TEST_CASE("gemm precision: emulated tf32 and bf16 GEMMs stay within the rounding bound") {
  // Bound and typical error: tests/gemm_error.h. The typical ratio must show that
  // rounding happened (fp32 alone gives ~1e-5 u of the reduced modes).
  auto backend = make_backend("cpu");
  std::mt19937 rng(11);
  for (GemmPrecision precision : {GemmPrecision::fp32, GemmPrecision::tf32, GemmPrecision::bf16})
    for (const int k : {16, 256, 1152})
      for (const bool ta : {false, true})
        for (const bool tb : {false, true}) {
          const test::GemmError error = test::measure_gemm_error(*backend, precision, ta, tb, 19, 23, k, rng);
          const std::string name = gemm_precision_name(precision);
          CAPTURE(name);
          CAPTURE(k);
          CAPTURE(ta);
          CAPTURE(tb);
          CHECK(error.worst_of_bound <= 1.0);
          if (precision != GemmPrecision::fp32) {
            CHECK(error.typical_in_u > 0.1);
            CHECK(error.typical_in_u < 2.0);
          }
          if (ta && tb && k == 1152)
            MESSAGE(name << " k=" << k << ": worst entry used " << error.worst_of_bound * 100
                         << "% of the bound; rms error = " << error.typical_in_u << " u x rss(products), u = "
                         << test::unit_roundoff(precision));
        }
}

TEST_CASE("gemm precision: EP still learns the two-class problem with bf16 GEMMs") {
  // The accuracy difference is what README reports: same seed, same data, fp32 vs
  // emulated bf16 (and tf32) products in every relaxation step and update.
  const auto config_for = [](const char* precision) {
    return parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 2}}}},
                                       {"dynamics", {{"t_free", 15}, {"t_nudge", 6}}},
                                       {"optimizer", {{"lr", 0.1}}},
                                       {"training", {{"epochs", 4}, {"batch_size", 16}, {"eval_batch_size", 50},
                                                     {"gemm_precision", precision}}}},
                        "test");
  };
  auto backend = make_backend("cpu");
  double accuracy[3] = {0, 0, 0};
  const char* names[3] = {"fp32", "tf32", "bf16"};
  for (int i = 0; i < 3; ++i) {
    test::TempDir dir;
    const auto records = run_training(*backend, config_for(names[i]), test::halves(), dir.path().string(), false, {});
    REQUIRE(records.size() == 4);
    accuracy[i] = records.back().test_acc;
    CHECK(backend->gemm_precision() == (i == 0 ? GemmPrecision::fp32 : i == 1 ? GemmPrecision::tf32 : GemmPrecision::bf16));
  }
  MESSAGE("test accuracy after 4 epochs: fp32 " << accuracy[0] << ", tf32 " << accuracy[1] << ", bf16 "
                                                 << accuracy[2]);
  CHECK(accuracy[2] > 0.95);
  CHECK(accuracy[1] > 0.95);
}

}  // namespace eqprop
