// An Ising problem and a MAX-CUT graph, and the exact (double-precision, host-side)
// evaluation of an assignment: the objects the solver (engine/maxcut_solver.h)
// optimizes and the readers (hosttools/gset_reader.h) produce.
//
// Ising energy (DESIGN.md §1), spins s in {-1, +1}^n, symmetric J, zero diagonal:
//   E(s) = -1/2 s^T J s - h^T s = -sum_{i<j} J_ij s_i s_j - sum_i h_i s_i.
// MAX-CUT of a graph with edge weights w: cut(s) = sum_{(i,j)} w_ij (1 - s_i s_j) / 2.
// With J_ij = -w_ij and h = 0, E(s) = sum w_ij s_i s_j, so
//   cut(s) = (W - E(s)) / 2,  W = sum of all edge weights,
// and a maximum cut is a ground state (README of ../shared/gset).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eqprop {

// One undirected pair: nodes i != j, 0-based. `value` is w_ij for a graph and J_ij
// for an Ising problem. A pair listed twice is two terms: its values add.
struct WeightedPair {
  std::int32_t i;
  std::int32_t j;
  double value;
};

// A weighted undirected graph (G-set / rudy).
struct Graph {
  int nodes = 0;
  std::vector<WeightedPair> edges;

  double total_weight() const;   // W = sum of edge weights
  bool integer_weights() const;  // every weight an integer (cuts are then exact integers)
};

// E(s) = -sum_pairs J s_i s_j - sum_i h_i s_i.
struct IsingProblem {
  int spins = 0;
  std::vector<WeightedPair> couplings;  // J_ij for i != j
  std::vector<double> fields;           // (spins) h, or empty for h = 0

  bool has_fields() const;
  bool integer_coefficients() const;  // J and h integers: energies are exact integers
};

// spins: (n) values +1 or -1 (n = graph.nodes / problem.spins). Sums in double, in
// the order of the lists: exact for integer weights below 2^53.
double cut_value(const Graph& graph, const std::int8_t* spins);
double ising_energy(const IsingProblem& problem, const std::int8_t* spins);

// J_ij = -w_ij, h = 0: E(s) = W - 2 cut(s).
IsingProblem maxcut_to_ising(const Graph& graph);
// cut(s) from the energy of maxcut_to_ising(graph) at s.
double cut_from_energy(const Graph& graph, double energy);

// The dense (n, n) row-major float J: symmetric, zero diagonal, duplicate pairs
// summed. Throws DataError when n exceeds max_spins (the dense solvers' limit).
std::vector<float> dense_couplings(const IsingProblem& problem, int max_spins);

// The root-mean-square off-diagonal coupling <J> = sqrt(sum_{i != j} J_ij^2 / (n (n - 1)))
// of Goto et al. 2019 (Sci. Adv. 5, eaav2372), from a dense J (n, n); 0 when n < 2.
double coupling_rms(const std::vector<float>& dense, int n);

// An estimate of the spectral radius max |lambda| of a dense symmetric J (n, n) by
// `iterations` steps of power iteration from a fixed start (deterministic). It
// approaches the radius from below (||J v|| <= rho for a unit v). 0 for J = 0.
double spectral_radius_estimate(const std::vector<float>& dense, int n, int iterations);

// A problem without fields of one more spin with the same minima (the usual gauge
// trick): spin n is coupled to spin i by h_i, so
//   E'(s, s_n) = -1/2 s^T J s - s_n h^T s = E(s_n * s),
// and an assignment of the extended problem maps back by s_i <- s_i * s_n. The
// simulated-bifurcation and annealing kernels need no field term with it.
IsingProblem absorb_fields(const IsingProblem& problem);
// Maps an assignment (problem.spins + 1) of absorb_fields(problem) back to (problem.spins).
std::vector<std::int8_t> restore_gauge(const std::int8_t* extended_spins, int spins);

}  // namespace eqprop
