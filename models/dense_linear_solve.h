#pragma once
// Dense linear solve for the double-precision reference models (tests only):
// Gaussian elimination with partial pivoting, shared by the implicit-gradient
// reference of dense_hopfield_reference.cpp and the Hessian solves of
// oscillator_network_reference.cpp. n is at most a few hundred there.

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

namespace eqprop::reference_linear {

// Solves a x = b for a dense (n, n) row-major `a`. Throws std::runtime_error
// with `singular_message` when a pivot is 0 or smaller in magnitude than
// `singular_below`.
inline std::vector<double> solve_dense(std::vector<double> a, std::vector<double> b, int n, double singular_below,
                                       const char* singular_message) {
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int r = col + 1; r < n; ++r)
      if (std::fabs(a[std::size_t(r) * n + col]) > std::fabs(a[std::size_t(pivot) * n + col])) pivot = r;
    const double largest = a[std::size_t(pivot) * n + col];
    if (largest == 0.0 || std::fabs(largest) < singular_below) throw std::runtime_error(singular_message);
    if (pivot != col) {
      for (int c = 0; c < n; ++c) std::swap(a[std::size_t(col) * n + c], a[std::size_t(pivot) * n + c]);
      std::swap(b[col], b[pivot]);
    }
    const double diagonal = a[std::size_t(col) * n + col];
    for (int r = col + 1; r < n; ++r) {
      const double factor = a[std::size_t(r) * n + col] / diagonal;
      if (factor == 0.0) continue;
      for (int c = col; c < n; ++c) a[std::size_t(r) * n + c] -= factor * a[std::size_t(col) * n + c];
      b[r] -= factor * b[col];
    }
  }
  std::vector<double> x(n);
  for (int r = n - 1; r >= 0; --r) {
    double v = b[r];
    for (int c = r + 1; c < n; ++c) v -= a[std::size_t(r) * n + c] * x[c];
    x[r] = v / a[std::size_t(r) * n + r];
  }
  return x;
}

}  // namespace eqprop::reference_linear
