#include "models/ising_problem.h"

#include <cmath>
#include <cstddef>
#include <cstdio>

#include "kernels/error.h"

namespace eqprop {
namespace {

bool is_integer(double x) { return std::isfinite(x) && std::floor(x) == x; }

}  // namespace

double Graph::total_weight() const {
  double total = 0.0;
  for (const WeightedPair& edge : edges) total += edge.value;
  return total;
}

bool Graph::integer_weights() const {
  for (const WeightedPair& edge : edges)
    if (!is_integer(edge.value)) return false;
  return true;
}

bool IsingProblem::has_fields() const {
  for (double h : fields)
    if (h != 0.0) return true;
  return false;
}

bool IsingProblem::integer_coefficients() const {
  for (const WeightedPair& pair : couplings)
    if (!is_integer(pair.value)) return false;
  for (double h : fields)
    if (!is_integer(h)) return false;
  return true;
}

double cut_value(const Graph& graph, const std::int8_t* spins) {
  double cut = 0.0;
  for (const WeightedPair& edge : graph.edges)
    if (spins[edge.i] != spins[edge.j]) cut += edge.value;  // w (1 - s_i s_j) / 2
  return cut;
}

double ising_energy(const IsingProblem& problem, const std::int8_t* spins) {
  double energy = 0.0;
  for (const WeightedPair& pair : problem.couplings)
    energy -= pair.value * static_cast<double>(spins[pair.i] * spins[pair.j]);
  for (std::size_t i = 0; i < problem.fields.size(); ++i) energy -= problem.fields[i] * spins[i];
  return energy;
}

IsingProblem maxcut_to_ising(const Graph& graph) {
  IsingProblem problem;
  problem.spins = graph.nodes;
  problem.couplings.reserve(graph.edges.size());
  for (const WeightedPair& edge : graph.edges) problem.couplings.push_back({edge.i, edge.j, -edge.value});
  return problem;
}

double cut_from_energy(const Graph& graph, double energy) { return 0.5 * (graph.total_weight() - energy); }

std::vector<float> dense_couplings(const IsingProblem& problem, int max_spins) {
  const int n = problem.spins;
  if (n > max_spins) {
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.2f", 4.0 * n * double(n) / double(1u << 30));
    throw DataError("a problem of " + std::to_string(n) + " spins needs a dense " + std::to_string(n) + "x" +
                    std::to_string(n) + " float coupling matrix (" + gib +
                    " GiB); the dense solvers take at most " + std::to_string(max_spins) + " spins");
  }
  // Summed in double, then rounded once: duplicate pairs give the same J as a
  // single pair with the summed value.
  std::vector<double> sum(std::size_t(n) * n, 0.0);
  for (const WeightedPair& pair : problem.couplings) {
    sum[std::size_t(pair.i) * n + pair.j] += pair.value;
    sum[std::size_t(pair.j) * n + pair.i] += pair.value;
  }
  return std::vector<float>(sum.begin(), sum.end());
}

double coupling_rms(const std::vector<float>& dense, int n) {
  if (n < 2) return 0.0;
  double squares = 0.0;
  for (float value : dense) squares += double(value) * value;  // the diagonal is zero
  return std::sqrt(squares / (double(n) * (n - 1)));
}

double spectral_radius_estimate(const std::vector<float>& dense, int n, int iterations) {
  if (n < 1) return 0.0;
  // Start from an uneven vector: the all-ones vector alone would miss every
  // eigenvector orthogonal to it (e.g. the extreme ones of a bipartite graph).
  std::vector<double> v(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[i] = 1.0 + 0.5 * std::sin(1.0 + 7.0 * i);
  double norm = 0.0;
  for (double value : v) norm += value * value;
  for (double& value : v) value /= std::sqrt(norm);
  double radius = 0.0;
  for (int iteration = 0; iteration < iterations; ++iteration) {
#pragma omp parallel for schedule(static) if (n >= 256)
    for (int i = 0; i < n; ++i) {
      const float* row = dense.data() + std::size_t(i) * n;
      double sum = 0.0;
      for (int j = 0; j < n; ++j) sum += double(row[j]) * v[j];
      next[i] = sum;
    }
    double squares = 0.0;  // summed in order: the same on any thread count
    for (double value : next) squares += value * value;
    radius = std::sqrt(squares);  // ||J v|| with ||v|| = 1
    if (radius == 0.0) return 0.0;
    for (int i = 0; i < n; ++i) v[i] = next[i] / radius;
  }
  return radius;
}

IsingProblem absorb_fields(const IsingProblem& problem) {
  IsingProblem extended;
  extended.spins = problem.spins + 1;
  extended.couplings = problem.couplings;
  for (std::size_t i = 0; i < problem.fields.size(); ++i)
    if (problem.fields[i] != 0.0)
      extended.couplings.push_back({static_cast<std::int32_t>(i), problem.spins, problem.fields[i]});
  return extended;
}

std::vector<std::int8_t> restore_gauge(const std::int8_t* extended_spins, int spins) {
  std::vector<std::int8_t> restored(static_cast<std::size_t>(spins));
  const std::int8_t gauge = extended_spins[spins];
  for (int i = 0; i < spins; ++i) restored[i] = static_cast<std::int8_t>(extended_spins[i] * gauge);
  return restored;
}

}  // namespace eqprop
