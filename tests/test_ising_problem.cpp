// Energies and cuts of models/ising_problem.h against naive loops over a dense J,
// the MAX-CUT <-> Ising mapping, the dense coupling matrix, and the gauge trick that
// absorbs fields into one extra spin.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "models/ising_problem.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// A random problem with duplicate pairs and fields.
IsingProblem random_problem(std::mt19937& rng, int n, int pairs, bool fields) {
  std::uniform_int_distribution<int> node(0, n - 1);
  std::normal_distribution<double> value(0.0, 1.0);
  IsingProblem problem;
  problem.spins = n;
  while (static_cast<int>(problem.couplings.size()) < pairs) {
    const int i = node(rng), j = node(rng);
    if (i != j) problem.couplings.push_back({i, j, value(rng)});
  }
  if (fields) {
    problem.fields.resize(static_cast<std::size_t>(n));
    for (double& h : problem.fields) h = value(rng);
  }
  return problem;
}

std::vector<std::int8_t> random_spins(std::mt19937& rng, int n) {
  std::vector<std::int8_t> spins(static_cast<std::size_t>(n));
  for (auto& s : spins) s = (rng() & 1) ? 1 : -1;
  return spins;
}

// -1/2 s^T J s - h^T s over the dense matrix, in double.
double naive_energy(const std::vector<double>& j_dense, const std::vector<double>& h, const std::vector<std::int8_t>& s) {
  const std::size_t n = s.size();
  double energy = 0.0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < n; ++k) energy -= 0.5 * j_dense[i * n + k] * s[i] * s[k];
  for (std::size_t i = 0; i < h.size(); ++i) energy -= h[i] * s[i];
  return energy;
}

TEST_CASE("ising: the energy equals -1/2 s^T J s - h^T s over the dense J, duplicates and fields included") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 3 + trial;
    const IsingProblem problem = random_problem(rng, n, 3 * n, trial % 2 == 0);
    std::vector<double> j_dense(std::size_t(n) * n, 0.0);
    double scale = 0.0;
    for (const WeightedPair& pair : problem.couplings) {
      j_dense[std::size_t(pair.i) * n + pair.j] += pair.value;
      j_dense[std::size_t(pair.j) * n + pair.i] += pair.value;
      scale += std::fabs(pair.value);
    }
    for (int sample = 0; sample < 10; ++sample) {
      const auto spins = random_spins(rng, n);
      CHECK(ising_energy(problem, spins.data()) ==
            doctest::Approx(naive_energy(j_dense, problem.fields, spins)).epsilon(1e-12).scale(scale));
    }
    // The float dense matrix is the double one rounded once.
    const std::vector<float> dense = dense_couplings(problem, n);
    for (std::size_t k = 0; k < dense.size(); ++k) CHECK(dense[k] == static_cast<float>(j_dense[k]));
  }
}

TEST_CASE("maxcut: the cut equals the naive sum over edges and (W - E) / 2 of the mapped Ising problem") {
  std::mt19937 rng(12);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 4 + trial;
    Graph graph;
    graph.nodes = n;
    const IsingProblem shape = random_problem(rng, n, 2 * n, false);
    for (const WeightedPair& pair : shape.couplings)
      graph.edges.push_back({pair.i, pair.j, std::round(4 * pair.value)});  // integer weights of both signs
    REQUIRE(graph.integer_weights());
    const IsingProblem ising = maxcut_to_ising(graph);
    for (int sample = 0; sample < 10; ++sample) {
      const auto spins = random_spins(rng, n);
      double naive = 0.0;
      for (const WeightedPair& edge : graph.edges) naive += edge.value * (1 - spins[edge.i] * spins[edge.j]) / 2.0;
      const double cut = cut_value(graph, spins.data());
      CHECK(cut == naive);  // integers: exact
      CHECK(cut_from_energy(graph, ising_energy(ising, spins.data())) == cut);
    }
  }
}

TEST_CASE("ising: absorbing the fields into an extra spin keeps every energy (gauge trick)") {
  std::mt19937 rng(13);
  const int n = 6;
  const IsingProblem problem = random_problem(rng, n, 10, true);
  const IsingProblem extended = absorb_fields(problem);
  CHECK(extended.spins == n + 1);
  CHECK_FALSE(extended.has_fields());
  for (int state = 0; state < (1 << (n + 1)); ++state) {
    std::vector<std::int8_t> spins(n + 1);
    for (int i = 0; i <= n; ++i) spins[i] = (state >> i) & 1 ? 1 : -1;
    const std::vector<std::int8_t> restored = restore_gauge(spins.data(), n);
    CHECK(ising_energy(extended, spins.data()) == doctest::Approx(ising_energy(problem, restored.data())).epsilon(1e-12));
  }
}

TEST_CASE("ising: the coupling scale <J> of Goto et al. 2019, and the dense size limit") {
  // J = [[0, 3], [3, 0]]: sum_{i != j} J^2 = 18 over n (n - 1) = 2 entries.
  IsingProblem problem;
  problem.spins = 2;
  problem.couplings = {{0, 1, 3.0}};
  CHECK(coupling_rms(dense_couplings(problem, 2), 2) == doctest::Approx(3.0));
  problem.spins = 100;
  test::check_contains(test::thrown_message<DataError>([&] { dense_couplings(problem, 50); }),
                       {"100 spins", "at most 50"});
}

}  // namespace
}  // namespace eqprop
