// Simulated annealing's Metropolis sweep (kernels/metropolis_sweep.h) on the CPU
// backend: against a naive sweep that recomputes every energy difference from the
// dense J (identical decisions for integer J), its bookkeeping of the local fields,
// draws keyed on logical indices, the acceptance rule's detailed balance, and a
// long chain at fixed temperature against the Boltzmann distribution over all
// 2^n states of a tiny system.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/metropolis_sweep.h"
#include "kernels/random_spins.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_bit_exact;

// A symmetric (n, n) J with zero diagonal: integers in [-k, k], or normals * scale.
std::vector<float> random_couplings(std::mt19937& rng, int n, bool integers, float scale) {
  std::vector<float> j(std::size_t(n) * n, 0.0f);
  std::uniform_int_distribution<int> integer(-2, 2);
  std::normal_distribution<float> normal(0.0f, scale);
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b)
      j[std::size_t(a) * n + b] = j[std::size_t(b) * n + a] = integers ? float(integer(rng)) : normal(rng);
  return j;
}

// Local fields F = S J by the backend's GEMM, as the solver sets them.
void set_fields(Backend& backend, const DeviceBuffer<float>& spins, const DeviceBuffer<float>& j,
                DeviceBuffer<float>& fields, int replicas, int n) {
  backend.gemm(Transpose::no, Transpose::no, replicas, n, n, 1.0f, spins.data(), n, j.data(), n, 0.0f, fields.data(), n);
}

// One sweep of one replica, every energy difference recomputed from J.
void naive_sweep(std::vector<float>& s, const std::vector<float>& j, int n, float beta, std::uint64_t seed,
                 std::uint64_t sweep, std::uint32_t round, std::uint32_t replica) {
  for (int i = 0; i < n; ++i) {
    double field = 0.0;
    for (int k = 0; k < n; ++k) field += double(j[std::size_t(i) * n + k]) * s[k];
    const float delta = static_cast<float>(2.0 * s[i] * field);
    if (delta > 0.0f) {
      const float u = metropolis_uniform(seed, round, replica, sweep * std::uint64_t(n) + std::uint64_t(i));
      if (!(u < std::exp(-beta * delta))) continue;
    }
    s[i] = -s[i];
  }
}

TEST_CASE("ising: the Metropolis sweep equals a naive sweep, and keeps its local fields exact for integer J") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(31);
  const int n = 37, replicas = 9;
  const std::vector<float> j_host = random_couplings(rng, n, true, 0);
  const std::size_t count = std::size_t(replicas) * n;
  DeviceBuffer<float> j(*backend, j_host.size()), spins(*backend, count), fields(*backend, count);
  j.copy_from_host(j_host);
  backend->run(RandomSpinsOp{spins.data(), 4, 0, 0}, static_cast<std::int64_t>(count));
  std::vector<float> reference = spins.to_host();
  set_fields(*backend, spins, j, fields, replicas, n);

  const float betas[] = {0.05f, 0.2f, 0.5f, 1.0f, 3.0f};
  int flips = 0;
  for (std::uint64_t sweep = 0; sweep < 5; ++sweep) {
    const std::vector<float> before = spins.to_host();
    backend->run(MetropolisSweepOp{spins.data(), fields.data(), j.data(), betas[sweep], 4, sweep, 2, 0, n}, replicas);
    for (int r = 0; r < replicas; ++r) {
      std::vector<float> row(reference.begin() + r * n, reference.begin() + (r + 1) * n);
      naive_sweep(row, j_host, n, betas[sweep], 4, sweep, 2, static_cast<std::uint32_t>(r));
      std::copy(row.begin(), row.end(), reference.begin() + r * n);
    }
    const std::vector<float> after = spins.to_host();
    for (std::size_t e = 0; e < count; ++e) flips += after[e] != before[e];
    check_bit_exact("spins after sweep " + std::to_string(sweep), after, reference);
  }
  CHECK(flips > int(count) / 2);  // the hot sweeps flip many spins, the cold ones few

  // The incrementally updated fields equal a fresh S J (integers: exactly).
  DeviceBuffer<float> fresh(*backend, count);
  set_fields(*backend, spins, j, fresh, replicas, n);
  check_bit_exact("local fields", fields.to_host(), fresh.to_host());
}

TEST_CASE("ising: Metropolis draws are keyed on the replica number, not on the launch") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(32);
  const int n = 20, replicas = 12;
  const std::vector<float> j_host = random_couplings(rng, n, false, 0.7f);
  const std::size_t count = std::size_t(replicas) * n;
  DeviceBuffer<float> j(*backend, j_host.size()), spins(*backend, count), fields(*backend, count);
  j.copy_from_host(j_host);

  auto run = [&](bool sliced) {
    backend->run(RandomSpinsOp{spins.data(), 8, 0, 1}, static_cast<std::int64_t>(count));
    set_fields(*backend, spins, j, fields, replicas, n);
    for (std::uint64_t sweep = 0; sweep < 20; ++sweep) {
      if (!sliced) {
        backend->run(MetropolisSweepOp{spins.data(), fields.data(), j.data(), 1.0f, 8, sweep, 1, 0, n}, replicas);
        continue;
      }
      // Replicas 0..4 and 5..11 as two launches, in the reverse order.
      const std::size_t offset = std::size_t(5) * n;
      backend->run(MetropolisSweepOp{spins.data() + offset, fields.data() + offset, j.data(), 1.0f, 8, sweep, 1, 5, n},
                   replicas - 5);
      backend->run(MetropolisSweepOp{spins.data(), fields.data(), j.data(), 1.0f, 8, sweep, 1, 0, n}, 5);
    }
    return spins.to_host();
  };
  check_bit_exact("spins of sliced launches", run(true), run(false));
}

TEST_CASE("ising: the Metropolis rule satisfies detailed balance, and its empirical acceptance matches") {
  // pi(a) P(a -> b) = pi(b) P(b -> a) with pi ~ exp(-beta E) and E(b) - E(a) = dE.
  const float beta = 0.8f;
  for (const float delta : {0.0f, 0.25f, 1.0f, 2.5f, 6.0f}) {
    CAPTURE(delta);
    const double p_up = std::min(1.0, std::exp(-double(beta) * delta));  // a -> b
    const double p_down = 1.0;                                           // b -> a
    CHECK(std::exp(-double(beta) * 0.0) * p_up == doctest::Approx(std::exp(-double(beta) * delta) * p_down));
    // The rule with the keyed uniforms accepts uphill moves at that rate.
    const int trials = 200000;
    int accepted_up = 0, accepted_down = 0;
    for (int t = 0; t < trials; ++t) {
      const float u = metropolis_uniform(77, 0, 3, std::uint64_t(t));
      accepted_up += metropolis_accept(delta, beta, u);
      accepted_down += metropolis_accept(-delta, beta, u);
    }
    CHECK(accepted_down == trials);
    const double rate = double(accepted_up) / trials;
    const double sigma = std::sqrt(p_up * (1 - p_up) / trials) + 1e-9;
    eqprop::test::check_within_sigmas("acceptance rate", rate, p_up, sigma);
  }
}

TEST_CASE("ising: a long Metropolis chain samples the Boltzmann distribution over all states (TV < 0.02)") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(33);
  const int n = 8, replicas = 32, burn_in = 50, sweeps = 12000;
  const float beta = 1.0f;
  const std::vector<float> j_host = random_couplings(rng, n, false, 0.6f);

  // The exact distribution over the 2^n states.
  const int states = 1 << n;
  std::vector<double> boltzmann(states);
  double partition = 0.0;
  for (int state = 0; state < states; ++state) {
    double energy = 0.0;
    for (int a = 0; a < n; ++a)
      for (int b = a + 1; b < n; ++b)
        energy -= double(j_host[std::size_t(a) * n + b]) * ((state >> a) & 1 ? 1 : -1) * ((state >> b) & 1 ? 1 : -1);
    boltzmann[state] = std::exp(-beta * energy);
    partition += boltzmann[state];
  }
  for (double& p : boltzmann) p /= partition;

  const std::size_t count = std::size_t(replicas) * n;
  DeviceBuffer<float> j(*backend, j_host.size()), spins(*backend, count), fields(*backend, count);
  j.copy_from_host(j_host);
  backend->run(RandomSpinsOp{spins.data(), 12, 0, 0}, static_cast<std::int64_t>(count));
  std::vector<double> histogram(states, 0.0);
  double samples = 0.0;
  for (int sweep = 0; sweep < burn_in + sweeps; ++sweep) {
    if (sweep % 1000 == 0) set_fields(*backend, spins, j, fields, replicas, n);  // undo float drift
    backend->run(MetropolisSweepOp{spins.data(), fields.data(), j.data(), beta, 12, std::uint64_t(sweep), 0, 0, n},
                 replicas);
    if (sweep < burn_in) continue;
    const std::vector<float> s = spins.to_host();
    for (int r = 0; r < replicas; ++r) {
      int state = 0;
      for (int a = 0; a < n; ++a) state |= (s[std::size_t(r) * n + a] > 0 ? 1 : 0) << a;
      histogram[state] += 1.0;
      samples += 1.0;
    }
  }
  double total_variation = 0.0;
  for (int state = 0; state < states; ++state) total_variation += 0.5 * std::fabs(histogram[state] / samples - boltzmann[state]);
  MESSAGE("Metropolis chain, " << samples << " samples of " << states << " states: total variation "
                               << total_variation << " (budget 0.02)");
  CHECK(total_variation < 0.02);
}

}  // namespace
}  // namespace eqprop
