// The CPU backend's bf16 GEMMs on oneDNN's matmul (kernels/dnnl_matmul.h): within
// the fp32-accumulation bound of a double-precision product of the bf16-rounded
// operands for every transpose, stride, alpha and beta; row slices equal the whole
// product (so results do not depend on the backend's thread count); and the backend
// takes it for bf16 GEMMs whose rows are long enough. Skips in a build without oneDNN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "kernels/backend.h"
#include "kernels/convolution_library.h"
#include "kernels/device_buffer.h"
#include "kernels/dnnl_matmul.h"
#include "kernels/gemm_precision.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

struct Operands {
  int m, n, k;
  Transpose ta, tb;
  int lda, ldb, ldc;
  std::vector<float> a, b, c;
};

Operands random_operands(int m, int n, int k, Transpose ta, Transpose tb, int pad, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Operands o{m, n, k, ta, tb, 0, 0, 0, {}, {}, {}};
  const int a_rows = ta == Transpose::yes ? k : m, a_cols = ta == Transpose::yes ? m : k;
  const int b_rows = tb == Transpose::yes ? n : k, b_cols = tb == Transpose::yes ? k : n;
  o.lda = a_cols + pad;
  o.ldb = b_cols + pad;
  o.ldc = n + pad;
  o.a = test::random_vector(rng, std::size_t(a_rows) * o.lda, -1.0f, 1.0f);
  o.b = test::random_vector(rng, std::size_t(b_rows) * o.ldb, -1.0f, 1.0f);
  o.c = test::random_vector(rng, std::size_t(m) * o.ldc, -1.0f, 1.0f);
  return o;
}

float at(const std::vector<float>& x, Transpose t, int ld, int row, int col) {
  return t == Transpose::yes ? x[std::size_t(col) * ld + row] : x[std::size_t(row) * ld + col];
}

// Checks C = alpha op(A) op(B) + beta C0 against the double product of the bf16 operands:
// |error| <= 2 (k + 2) 2^-24 (|alpha| sum |a b| + |beta c0|), the bound of fp32 accumulation.
void check_against_reference(const Operands& o, float alpha, float beta, const std::vector<float>& result) {
  double worst_ratio = 0;
  for (int i = 0; i < o.m; ++i)
    for (int j = 0; j < o.n; ++j) {
      double exact = 0, magnitude = 0;
      for (int p = 0; p < o.k; ++p) {
        const double product = double(round_to_precision(at(o.a, o.ta, o.lda, i, p), GemmPrecision::bf16)) *
                               double(round_to_precision(at(o.b, o.tb, o.ldb, p, j), GemmPrecision::bf16));
        exact += product;
        magnitude += std::abs(product);
      }
      const double c0 = o.c[std::size_t(i) * o.ldc + j];
      exact = alpha * exact + beta * c0;
      const double bound = 2.0 * (o.k + 2) * std::ldexp(1.0, -24) * (std::abs(alpha) * magnitude + std::abs(beta * c0)) +
                           1e-30;
      worst_ratio = std::max(worst_ratio, std::abs(result[std::size_t(i) * o.ldc + j] - exact) / bound);
    }
  CHECK(worst_ratio <= 1.0);
}

}  // namespace

TEST_CASE("dnnl bf16 gemm: every transpose, stride, alpha and beta within the fp32 accumulation bound") {
  const std::unique_ptr<Bf16Gemm> gemm = make_dnnl_bf16_gemm();
  if (test::skip_case_if(!gemm, "no oneDNN in this build (EQPROP_ENABLE_DNNL) or no bf16 instructions on this CPU")) return;
  std::uint32_t seed = 1;
  for (const Transpose ta : {Transpose::no, Transpose::yes})
    for (const Transpose tb : {Transpose::no, Transpose::yes})
      for (const int pad : {0, 3})
        for (const float alpha : {1.0f, -0.37f})
          for (const float beta : {0.0f, 1.0f, 0.5f}) {
            CAPTURE(static_cast<int>(ta));
            CAPTURE(static_cast<int>(tb));
            CAPTURE(pad);
            CAPTURE(alpha);
            CAPTURE(beta);
            Operands o = random_operands(37, 29, 301, ta, tb, pad, seed++);
            std::vector<float> c = o.c;
            REQUIRE(gemm->gemm(ta, tb, o.m, o.n, o.k, alpha, o.a.data(), o.lda, 0, o.b.data(), o.ldb, beta, c.data(),
                               o.ldc));
            check_against_reference(o, alpha, beta, c);
            // The padding between rows of C is left as it was.
            for (int i = 0; i < o.m; ++i)
              for (int j = o.n; j < o.ldc; ++j) CHECK(c[std::size_t(i) * o.ldc + j] == o.c[std::size_t(i) * o.ldc + j]);
          }
}

TEST_CASE("dnnl bf16 gemm: row slices equal the whole product, at 1 and 2 threads") {
  const std::unique_ptr<Bf16Gemm> gemm = make_dnnl_bf16_gemm();
  if (test::skip_case_if(!gemm, "no oneDNN in this build (EQPROP_ENABLE_DNNL) or no bf16 instructions on this CPU")) return;
  // The backend's parallel_over_rows cuts a product into row slices starting at
  // multiples of 4; the default network's input drive is 128 x 500 x 784.
  const Operands o = random_operands(128, 500, 784, Transpose::no, Transpose::no, 0, 7);
  const int saved = omp_get_max_threads();
  std::vector<float> whole = o.c, sliced = o.c, two_threads = o.c;
  omp_set_num_threads(1);
  REQUIRE(gemm->gemm(o.ta, o.tb, o.m, o.n, o.k, 1.0f, o.a.data(), o.lda, 0, o.b.data(), o.ldb, 0.0f, whole.data(), o.ldc));
  for (const auto& [begin, end] : std::vector<std::pair<int, int>>{{0, 12}, {12, 68}, {68, 72}, {72, 128}})
    REQUIRE(gemm->gemm(o.ta, o.tb, end - begin, o.n, o.k, 1.0f, o.a.data() + std::size_t(begin) * o.lda, o.lda,
                       0, o.b.data(), o.ldb, 0.0f, sliced.data() + std::size_t(begin) * o.ldc, o.ldc));
  omp_set_num_threads(2);
  REQUIRE(gemm->gemm(o.ta, o.tb, o.m, o.n, o.k, 1.0f, o.a.data(), o.lda, 0, o.b.data(), o.ldb, 0.0f, two_threads.data(),
                     o.ldc));
  omp_set_num_threads(saved);
  test::check_bit_exact("row slices vs whole", sliced, whole);
  test::check_bit_exact("2 threads vs 1", two_threads, whole);
}

TEST_CASE("dnnl bf16 gemm: a constant A is converted once per address and version") {
  const std::unique_ptr<Bf16Gemm> gemm = make_dnnl_bf16_gemm();
  if (test::skip_case_if(!gemm, "no oneDNN in this build (EQPROP_ENABLE_DNNL) or no bf16 instructions on this CPU")) return;
  for (const Transpose ta : {Transpose::no, Transpose::yes}) {
    CAPTURE(static_cast<int>(ta));
    Operands o = random_operands(48, 64, 512, ta, Transpose::no, 0, 21);
    const Operands first = o;
    auto product = [&](std::uint64_t version) {
      std::vector<float> c = o.c;
      REQUIRE(gemm->gemm(ta, o.tb, o.m, o.n, o.k, 1.0f, o.a.data(), o.lda, version, o.b.data(), o.ldb, 0.0f, c.data(),
                         o.ldc));
      return c;
    };
    const std::uint64_t version = fresh_weights_version();
    const std::vector<float> converted = product(version);
    check_against_reference(o, 1.0f, 0.0f, converted);
    test::check_bit_exact("the same version again", product(version), converted);
    // A changed in place under the same promise: the conversion is reused, so the
    // product is still the first A's (the promise is the caller's to keep).
    for (float& a : o.a) a = -a;
    test::check_bit_exact("a broken promise reuses the conversion", product(version), converted);
    // A new version, or no promise, converts the new values.
    check_against_reference(o, 1.0f, 0.0f, product(fresh_weights_version()));
    check_against_reference(o, 1.0f, 0.0f, product(0));
    check_against_reference(first, 1.0f, 0.0f, converted);
  }
}

TEST_CASE("dnnl bf16 gemm: the cpu backend takes it for bf16 GEMMs with long rows, the emulation for short ones") {
  const std::unique_ptr<Bf16Gemm> gemm = make_dnnl_bf16_gemm();
  if (test::skip_case_if(!gemm, "no oneDNN in this build (EQPROP_ENABLE_DNNL) or no bf16 instructions on this CPU")) return;
  auto backend = make_backend("cpu");
  backend->set_gemm_precision(GemmPrecision::bf16);
  for (const int n : {500, 10}) {  // n k = 392 000 (library) and 7 840 (emulation)
    CAPTURE(n);
    const Operands o = random_operands(64, n, 784, Transpose::no, Transpose::no, 0, 11);
    DeviceBuffer<float> a(*backend, o.a.size()), b(*backend, o.b.size()), c(*backend, o.c.size());
    a.copy_from_host(o.a);
    b.copy_from_host(o.b);
    c.copy_from_host(o.c);
    backend->gemm(Transpose::no, Transpose::no, o.m, o.n, o.k, 1.0f, a.data(), o.lda, b.data(), o.ldb, 0.0f, c.data(),
                  o.ldc);
    std::vector<float> library = o.c;
    REQUIRE(gemm->gemm(o.ta, o.tb, o.m, o.n, o.k, 1.0f, o.a.data(), o.lda, 0, o.b.data(), o.ldb, 0.0f, library.data(),
                       o.ldc));
    const std::vector<float> by_backend = c.to_host();
    check_against_reference(o, 1.0f, 0.0f, by_backend);
    if (n == 500) test::check_bit_exact("backend vs oneDNN matmul", by_backend, library);
  }
}

}  // namespace eqprop
