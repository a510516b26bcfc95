// bSB / dSB (kernels/simulated_bifurcation.h) on the CPU backend against naive loops
// written here: the fused step bit for bit against a float reference in the same
// order of operations, the keyed initial state, and whole trajectories (GEMM + step)
// against a naive matrix-vector loop — bit-exact for dSB with integer couplings
// (every field is an exact integer sum), within float rounding for bSB.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/simulated_bifurcation.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_bit_exact;
using test::random_vector;

struct Shape {
  int replicas;
  int units;
};
constexpr Shape kShapes[] = {{7, 13}, {64, 300}};  // serial, and above the OpenMP threshold

TEST_CASE("ising: SbStepOp equals the bSB/dSB update written out, walls included, bit for bit") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(21);
  for (const Shape shape : kShapes) {
    for (const bool discrete : {false, true}) {
      CAPTURE(shape.units);
      CAPTURE(discrete);
      const std::size_t count = std::size_t(shape.replicas) * shape.units;
      // Positions near the walls so that some cross them.
      std::vector<float> x = random_vector(rng, count, -1.0f, 1.0f);
      std::vector<float> y = random_vector(rng, count, -0.5f, 0.5f);
      const std::vector<float> field = random_vector(rng, count, -3.0f, 3.0f);
      const float detuning = 0.3f, a0 = 1.0f, c0 = 0.2f, dt = 0.7f;

      std::vector<float> x_ref = x, y_ref = y, signs_ref(count);
      std::size_t walls = 0;
      for (std::size_t i = 0; i < count; ++i) {
        y_ref[i] = y_ref[i] + dt * (c0 * field[i] - detuning * x_ref[i]);
        x_ref[i] = x_ref[i] + dt * a0 * y_ref[i];
        if (std::fabs(x_ref[i]) > 1.0f) {
          x_ref[i] = x_ref[i] > 0 ? 1.0f : -1.0f;
          y_ref[i] = 0.0f;
          ++walls;
        }
        signs_ref[i] = x_ref[i] >= 0 ? 1.0f : -1.0f;
      }
      CHECK(walls > 0);  // the walls are exercised

      DeviceBuffer<float> dx(*backend, count), dy(*backend, count), df(*backend, count), ds(*backend, count);
      dx.copy_from_host(x);
      dy.copy_from_host(y);
      df.copy_from_host(field);
      ds.zero();
      backend->run(SbStepOp{dx.data(), dy.data(), df.data(), discrete ? ds.data() : nullptr, detuning, a0, c0, dt, shape.units},
                   static_cast<std::int64_t>(count));
      check_bit_exact("x", dx.to_host(), x_ref);
      check_bit_exact("y", dy.to_host(), y_ref);
      check_bit_exact("signs", ds.to_host(), discrete ? signs_ref : std::vector<float>(count, 0.0f));

      // The per-element operator() (the GPU's thread body) gives the same bits as
      // the CPU's vectorized row loop.
      std::vector<float> x_flat = x, y_flat = y, signs_flat(count, 0.0f);
      const SbStepOp flat{x_flat.data(), y_flat.data(), field.data(), discrete ? signs_flat.data() : nullptr,
                          detuning, a0, c0, dt, shape.units};
      for (std::size_t i = 0; i < count; ++i) flat(static_cast<std::int64_t>(i));
      check_bit_exact("x, per element", x_flat, x_ref);
      check_bit_exact("y, per element", y_flat, y_ref);
      if (discrete) check_bit_exact("signs, per element", signs_flat, signs_ref);
    }
  }
}

TEST_CASE("ising: SbInitOp draws keyed on (seed, element, round), not on the launch") {
  auto backend = make_backend("cpu");
  const int replicas = 40, units = 301;
  const std::size_t count = std::size_t(replicas) * units;
  DeviceBuffer<float> x(*backend, count), y(*backend, count), s(*backend, count);
  backend->run(SbInitOp{x.data(), y.data(), s.data(), 5, 0, 3, 0.1f}, static_cast<std::int64_t>(count));
  const std::vector<float> x_all = x.to_host(), y_all = y.to_host(), s_all = s.to_host();
  for (std::size_t i = 0; i < count; ++i) {
    REQUIRE(std::fabs(x_all[i]) <= 0.1f);
    REQUIRE(std::fabs(y_all[i]) <= 0.1f);
    REQUIRE(s_all[i] == spin_of(x_all[i]));
  }
  // Replicas 10.. drawn alone, as a slice starting at element 10 * units.
  const std::size_t offset = std::size_t(10) * units;
  backend->run(SbInitOp{x.data(), y.data(), nullptr, 5, offset, 3, 0.1f}, static_cast<std::int64_t>(count - offset));
  const std::vector<float> x_slice = x.to_host();
  for (std::size_t i = 0; i < count - offset; ++i) REQUIRE(test::bits_of(x_slice[i]) == test::bits_of(x_all[offset + i]));
  // Another round starts elsewhere.
  backend->run(SbInitOp{x.data(), y.data(), nullptr, 5, 0, 4, 0.1f}, static_cast<std::int64_t>(count));
  const std::vector<float> x_other = x.to_host();
  std::size_t same = 0;
  for (std::size_t i = 0; i < count; ++i) same += x_other[i] == x_all[i];
  CHECK(same < count / 100);
}

// K steps of SB through the backend: F = X J by GEMM, then SbStepOp.
std::vector<float> backend_trajectory(Backend& backend, const std::vector<float>& j_dense, int n, int replicas,
                                      bool discrete, int steps, float c0, float dt) {
  const std::size_t count = std::size_t(replicas) * n;
  DeviceBuffer<float> j(backend, j_dense.size()), x(backend, count), y(backend, count), f(backend, count),
      s(backend, count);
  j.copy_from_host(j_dense);
  backend.run(SbInitOp{x.data(), y.data(), s.data(), 9, 0, 0, 0.1f}, static_cast<std::int64_t>(count));
  for (int k = 0; k < steps; ++k) {
    backend.gemm(Transpose::no, Transpose::no, replicas, n, n, 1.0f, discrete ? s.data() : x.data(), n, j.data(), n,
                 0.0f, f.data(), n);
    const float pump = float(double(k + 1) / steps);
    backend.run(SbStepOp{x.data(), y.data(), f.data(), discrete ? s.data() : nullptr, 1.0f - pump, 1.0f, c0, dt, n},
                static_cast<std::int64_t>(count));
  }
  return x.to_host();
}

// The same with naive loops (the field summed in double, rounded once: exact for
// integer sums below 2^24, like the GEMM's float sum).
std::vector<float> naive_trajectory(Backend& backend, const std::vector<float>& j_dense, int n, int replicas,
                                    bool discrete, int steps, float c0, float dt) {
  const std::size_t count = std::size_t(replicas) * n;
  DeviceBuffer<float> x0(backend, count), y0(backend, count);
  backend.run(SbInitOp{x0.data(), y0.data(), nullptr, 9, 0, 0, 0.1f}, static_cast<std::int64_t>(count));
  std::vector<float> x = x0.to_host(), y = y0.to_host(), field(count);
  for (int k = 0; k < steps; ++k) {
    for (int r = 0; r < replicas; ++r)
      for (int i = 0; i < n; ++i) {
        double sum = 0.0;
        for (int j = 0; j < n; ++j) {
          const float xj = x[std::size_t(r) * n + j];
          sum += double(j_dense[std::size_t(i) * n + j]) * (discrete ? (xj >= 0 ? 1.0 : -1.0) : double(xj));
        }
        field[std::size_t(r) * n + i] = static_cast<float>(sum);
      }
    const float detuning = 1.0f - float(double(k + 1) / steps);
    for (std::size_t e = 0; e < count; ++e) {
      y[e] += dt * (c0 * field[e] - detuning * x[e]);
      x[e] += dt * y[e];
      if (x[e] > 1.0f) x[e] = 1.0f, y[e] = 0.0f;
      if (x[e] < -1.0f) x[e] = -1.0f, y[e] = 0.0f;
    }
  }
  return x;
}

TEST_CASE("ising: a dSB trajectory (GEMM + step) equals a naive loop bit for bit, bSB within float rounding") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(22);
  const int n = 24, replicas = 5, steps = 60;
  std::vector<float> j_dense(std::size_t(n) * n, 0.0f);
  std::uniform_int_distribution<int> weight(-2, 2);
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) j_dense[std::size_t(i) * n + j] = j_dense[std::size_t(j) * n + i] = float(weight(rng));
  const float c0 = 0.125f, dt = 0.5f;  // powers of two: c0 * field is exact

  const auto dsb = backend_trajectory(*backend, j_dense, n, replicas, true, steps, c0, dt);
  const auto dsb_naive = naive_trajectory(*backend, j_dense, n, replicas, true, steps, c0, dt);
  check_bit_exact("dSB positions after 60 steps", dsb, dsb_naive);
  std::size_t at_wall = 0;
  for (float v : dsb) at_wall += std::fabs(v) == 1.0f;
  CHECK(at_wall > dsb.size() / 2);  // the run bifurcated

  // bSB: the GEMM's float sums of float products round differently from the naive
  // double sum; over 60 steps the positions agree to ~1e-4 (chaotic growth of
  // rounding differences is small over so few steps with the walls damping it).
  const auto bsb = backend_trajectory(*backend, j_dense, n, replicas, false, steps, c0, dt);
  const auto bsb_naive = naive_trajectory(*backend, j_dense, n, replicas, false, steps, c0, dt);
  double worst = 0.0;
  for (std::size_t e = 0; e < bsb.size(); ++e) worst = std::max(worst, double(std::fabs(bsb[e] - bsb_naive[e])));
  test::check_within("bSB trajectory: largest position difference", worst, 1e-3);
}

}  // namespace
}  // namespace eqprop
