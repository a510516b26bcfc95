// The CPU backend's GEMM hands blocks of C to the threads as they come free
// (kernels/cpu_backend.cpp), so that a core shared with another process does not
// hold the team back. Each block is a serial sgemm over the whole K, so C must not
// depend on the thread count: checked bit for bit on the shapes of the default
// dense network's products (batch 128, 784-500-10: drive, feedback and weight
// gradient), on shapes cut by rows and by columns with ragged last blocks, on one
// whose blocks would be small enough for OpenBLAS's small-matrix kernel, with
// every transpose, and at fp32 and emulated bf16.
#include <doctest/doctest.h>

#include <omp.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
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

}  // namespace eqprop
