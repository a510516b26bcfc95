// The CPU backend's GEMM hands blocks of C to the threads as they come free
// (kernels/cpu_backend.cpp), so that a core shared with another process does not
// hold the team back. Each block is a serial sgemm over the whole K, so C must not
// depend on the thread count: checked bit for bit on the shapes of the default
// dense network's products (batch 128, 784-500-10: drive, feedback and weight
// gradient), on shapes cut by rows and by columns with ragged last blocks, on one
// whose blocks would be small enough for OpenBLAS's small-matrix kernel, with
// every transpose, and at fp32 and emulated bf16.
#include <doctest/doctest.h>

#include <cblas.h>
#include <omp.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/sgemm_cut_rules.h"
#include "tests/skip.h"
#include "tests/gemm_error.h"
#include "tests/tolerance.h"

namespace eqprop {

TEST_CASE("cpu gemm: results do not depend on the thread count") {
  struct Shape {
    int m, n, k;
  };
  const Shape shapes[] = {{128, 500, 784}, {128, 10, 500}, {784, 500, 128}, {500, 10, 128},
                          {301, 47, 77},   {47, 301, 77},  {1000, 10, 500}};  // the last: blocks near the small kernel
  auto backend = make_backend("cpu");
  const int threads_before = omp_get_max_threads();
  std::mt19937 rng(11);
  for (const Shape& s : shapes)
    for (int transposes = 0; transposes < 4; ++transposes)
      for (GemmPrecision precision : {GemmPrecision::fp32, GemmPrecision::bf16}) {
        const bool ta = transposes & 1, tb = transposes & 2;
        const test::Matrix a = ta ? test::random_matrix(rng, s.k, s.m, 1) : test::random_matrix(rng, s.m, s.k, 1);
        const test::Matrix b = tb ? test::random_matrix(rng, s.n, s.k, 2) : test::random_matrix(rng, s.k, s.n, 2);
        omp_set_num_threads(1);
        const std::vector<float> serial = test::backend_gemm(*backend, precision, ta, tb, s.m, s.n, s.k, a, b);
        for (int threads : {2, 3, 5}) {
          omp_set_num_threads(threads);
          const std::vector<float> parallel = test::backend_gemm(*backend, precision, ta, tb, s.m, s.n, s.k, a, b);
          test::check_bit_exact(std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) +
                                    " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " " +
                                    std::string(precision == GemmPrecision::fp32 ? "fp32" : "bf16") + ", " +
                                    std::to_string(threads) + " threads",
                                parallel, serial);
        }
      }
  omp_set_num_threads(threads_before);
}

TEST_CASE("cpu gemm: the kernel this process runs keeps every bit at the cuts its rules allow") {
  // kernels/sgemm_cut_rules.h, checked on OpenBLAS itself rather than through the
  // backend: products of every transpose cut into two calls at each allowed row
  // (and, where the rules allow them, column) and compared with the uncut call.
  // Where the kernel has a small-matrix kernel, only cuts whose two pieces stay
  // above its size (m n k > kSmallKernelMaxMnk) are the rule's: the backend never cuts a product
  // into pieces that small (its blocks are larger; a slice that small is padded,
  // kernels/cpu_backend.cpp), and on some CPUs (an Intel Xeon with AMX, family 6
  // model 167) the small kernel's tail columns differ in their last bits.
  const SgemmCutRules& rules = sgemm_cut_rules();
  if (test::skip_case_if(rules.block_rows == 0,
                         "OpenBLAS kernel " + rules.kernel + " has no measured cut rules: its products are not cut"))
    return;
  MESSAGE("OpenBLAS kernel " << rules.kernel);
  const int m = 130, n = 70, k = 600;  // ragged against both alignments
  // Whether an m' x n' piece is one the rules speak for (see above).
  const auto packed = [&](int rows, int cols) {
    return !rules.small_kernel || double(rows) * double(cols) * double(k) > kSmallKernelMaxMnk;
  };
  std::mt19937 rng(12);
  std::vector<float> a(std::size_t(m) * k), b(std::size_t(k) * n);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& v : a) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  const int threads_before = omp_get_max_threads();
  omp_set_num_threads(1);  // one serial call each, as the backend's blocks are
  for (int transposes = 0; transposes < 4; ++transposes) {
    const bool ta = transposes & 1, tb = transposes & 2;
    const CBLAS_TRANSPOSE op_a = ta ? CblasTrans : CblasNoTrans, op_b = tb ? CblasTrans : CblasNoTrans;
    const int lda = ta ? m : k, ldb = tb ? k : n;
    const auto product = [&](int row0, int rows, int col0, int cols, std::vector<float>& c) {
      const float* a_rows = ta ? a.data() + row0 : a.data() + std::size_t(row0) * lda;
      const float* b_cols = tb ? b.data() + std::size_t(col0) * ldb : b.data() + col0;
      cblas_sgemm(CblasRowMajor, op_a, op_b, rows, cols, k, 1.0f, a_rows, lda, b_cols, ldb, 0.0f,
                  c.data() + std::size_t(row0) * n + col0, n);
    };
    std::vector<float> whole(std::size_t(m) * n);
    product(0, m, 0, n, whole);
    const std::string what = "ta=" + std::to_string(ta) + " tb=" + std::to_string(tb);
    for (const int align : {rules.block_rows, rules.slice_rows})
      for (int cut = align; cut < m; cut += align) {
        if (!packed(cut, n) || !packed(m - cut, n)) continue;
        std::vector<float> pieces(whole.size());
        product(0, cut, 0, n, pieces);
        product(cut, m - cut, 0, n, pieces);
        test::check_bit_exact(what + ", rows cut at " + std::to_string(cut), pieces, whole);
      }
    if (rules.column_blocks)
      for (int cut = rules.block_rows; cut < n; cut += rules.block_rows) {
        if (!packed(m, cut) || !packed(m, n - cut)) continue;
        std::vector<float> pieces(whole.size());
        product(0, m, 0, cut, pieces);
        product(0, m, cut, n - cut, pieces);
        test::check_bit_exact(what + ", columns cut at " + std::to_string(cut), pieces, whole);
      }
  }
  omp_set_num_threads(threads_before);
}

}  // namespace eqprop
