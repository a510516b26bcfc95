// The error of a backend's GEMM at a precision (kernels/gemm_precision.h) against
// a double-precision reference, shared by the CPU (emulated) and CUDA (tensor
// core) precision tests.
//
// Bound per entry: |c - c_exact| <= (2u + u^2 + g_k) sum_k |a_ik b_kj|, u the unit
// roundoff of the inputs, g_k = k 2^-24 / (1 - k 2^-24) for the FP32 sum. The
// typical error, for random signs, is ~u times the root-sum-square of the products
// (u sqrt(k) times a typical |a b|).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/gemm_precision.h"
#include "tests/test_util.h"

namespace eqprop {
namespace test {

// Unit roundoff of a mode: half an ulp of 1.
inline double unit_roundoff(GemmPrecision precision) { return std::ldexp(1.0, -1 - mantissa_bits(precision)); }

// Row-major (rows, cols) with row stride ld (the padding columns hold values the GEMM must not read).
struct Matrix {
  int rows, cols, ld;
  std::vector<float> values;
  float at(int r, int c) const { return values[std::size_t(r) * ld + c]; }
};

inline Matrix random_matrix(std::mt19937& rng, int rows, int cols, int padding) {
  Matrix m{rows, cols, cols + padding, {}};
  m.values = random_vector(rng, std::size_t(rows) * m.ld, -1.0f, 1.0f);
  return m;
}

// c (m, n) = op(a) op(b) on the backend at `precision` (restored to fp32 after).
inline std::vector<float> backend_gemm(Backend& backend, GemmPrecision precision, bool ta, bool tb, int m, int n,
                                       int k, const Matrix& a, const Matrix& b) {
  DeviceBuffer<float> da(backend, a.values.size()), db(backend, b.values.size()), dc(backend, std::size_t(m) * n);
  da.copy_from_host(a.values);
  db.copy_from_host(b.values);
  dc.zero();
  backend.set_gemm_precision(precision);
  backend.gemm(ta ? Transpose::yes : Transpose::no, tb ? Transpose::yes : Transpose::no, m, n, k, 1.0f, da.data(),
               a.ld, db.data(), b.ld, 0.0f, dc.data(), n);
  backend.set_gemm_precision(GemmPrecision::fp32);
  return dc.to_host();
}

struct GemmError {
  double worst_of_bound = 0;  // the largest entry error as a fraction of its bound
  double typical_in_u = 0;    // rms error / (u * rms of the entries' root-sum-square of products)
};

// One random (m, k) x (k, n) product on `backend` at `precision`, measured.
inline GemmError measure_gemm_error(Backend& backend, GemmPrecision precision, bool ta, bool tb, int m, int n, int k,
                                   std::mt19937& rng) {
  const Matrix a = ta ? random_matrix(rng, k, m, 1) : random_matrix(rng, m, k, 1);
  const Matrix b = tb ? random_matrix(rng, n, k, 2) : random_matrix(rng, k, n, 2);
  const std::vector<float> c = backend_gemm(backend, precision, ta, tb, m, n, k, a, b);
  const double u = unit_roundoff(precision);
  const double sum_error = k * 0x1p-24 / (1 - k * 0x1p-24);
  GemmError result;
  double error_squares = 0, scale_squares = 0;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double exact = 0, absolute = 0, squares = 0;
      for (int p = 0; p < k; ++p) {
        const double product = double(ta ? a.at(p, i) : a.at(i, p)) * (tb ? b.at(j, p) : b.at(p, j));
        exact += product;
        absolute += std::fabs(product);
        squares += product * product;
      }
      const double error = std::fabs(c[std::size_t(i) * n + j] - exact);
      result.worst_of_bound = std::max(result.worst_of_bound, error / ((2 * u + u * u + sum_error) * absolute));
      error_squares += error * error;
      scale_squares += squares;
    }
  result.typical_in_u = std::sqrt(error_squares / scale_squares) / u;
  return result;
}

}  // namespace test
}  // namespace eqprop
