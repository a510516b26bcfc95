// A naive, double-precision reference of the layered phase-oscillator network
// (models/oscillator_network.h; DESIGN.md §1) and of the exact gradient of its loss
// by implicit differentiation through the free fixed point. It is the ground truth
// the engine's EP updates are tested against and shares no code with them: plain
// pairwise loops over sin(phi_i - phi_j) and cos(phi_i - phi_j), one sample at a
// time, no GEMM split, no backend, no float.
//
// Conventions are the engine's: layers = {n0, ..., nL}; the input x (n0) is clamped
// to the phases input_scale * x; weights[l] is row-major (layers[l], layers[l+1]),
// the couplings J between layers l and l+1; biases[l] (layers[l+1]) is h of layer
// l+1; every oscillator has the injection S = shil. Phases of the state layers are
// one vector per layer ([k] has layers[k+1] entries), not wrapped.
//   V = -sum_l sum_ij J^l_ij cos(phi_{l,i} - phi_{l+1,j}) - sum h cos phi - sum (S/2) cos 2 phi
//   C = 1/2 sum_k (u_k - y_k)^2,  u_k = (1 + cos phi_{L,k}) / 2,  F = V + beta C.
#pragma once

#include <vector>

#include "models/dense_hopfield_reference.h"  // reference::Gradient and its comparisons

namespace eqprop {
namespace oscillator_reference {

struct Network {
  std::vector<int> layers;                  // input, ..., output
  std::vector<std::vector<double>> weights;  // [l] is (layers[l], layers[l+1]) row-major
  std::vector<std::vector<double>> biases;   // [l] is (layers[l+1])
  double shil = 0.0;
  double input_scale = 3.14159265358979323846;
};

using Phases = std::vector<std::vector<double>>;
using Gradient = reference::Gradient;

// pi/2 for every oscillator (the engine's reset state).
Phases reset_phases(const Network& net);

// V at `phases` by pairwise loops over the couplings.
double energy(const Network& net, const std::vector<double>& x, const Phases& phases);
// dV/dphi by pairwise loops: sum_j J_ij sin(phi_i - phi_j) + h_i sin phi_i + S sin 2 phi_i.
Phases energy_gradient(const Network& net, const std::vector<double>& x, const Phases& phases);
// C against the one-hot target of `label`, and dC/dphi (zero below the output layer).
double cost(const Network& net, const Phases& phases, int label);
Phases cost_gradient(const Network& net, const Phases& phases, int label);

// A stationary point of F = V + beta C: gradient flow phi <- phi - dt dF/dphi from
// `start` until max |dF/dphi| < 1e-9, then Newton steps with the Hessian to
// max |dF/dphi| < 1e-13. Throws std::runtime_error if it does not converge.
Phases relax(const Network& net, const std::vector<double>& x, int label, double beta, const Phases& start,
             double dt = 0.1);
// The free fixed point from the reset state.
Phases free_fixed_point(const Network& net, const std::vector<double>& x, double dt = 0.1);

// The Hessian of F over the state phases, layers flattened in order, (n, n) row-major.
std::vector<double> hessian(const Network& net, const std::vector<double>& x, int label, double beta,
                            const Phases& phases);
// True if the symmetric (n, n) matrix is positive definite (a strict minimum).
bool positive_definite(std::vector<double> matrix, int n);
// The smallest eigenvalue of a symmetric (n, n) matrix, to 1e-12 relative to its
// Gershgorin bound (bisection on positive_definite(matrix - lambda I)).
double smallest_eigenvalue(const std::vector<double>& matrix, int n);

// How far the fixed points of F at +beta and -beta, relaxed from the free fixed
// point, stray from its linear response phi* -+ beta mu (H mu = dC/dphi), as
// max |deviation| / (beta max |mu|): of order beta where F is smooth around phi*,
// of order 1 where a nudge carries the state into another basin (near a
// bifurcation, where EP at that beta cannot match the derivative).
double nudge_nonlinearity(const Network& net, const std::vector<double>& x, int label, double beta,
                          double dt = 0.1);

// dV/dtheta at `phases`: dV/dJ_ij = -cos(phi_i - phi_j), dV/dh_i = -cos phi_i.
Gradient energy_parameter_gradient(const Network& net, const std::vector<double>& x, const Phases& phases);

// Batch mean of C at the free fixed point of each x.
double batch_loss(const Network& net, const std::vector<std::vector<double>>& xs, const std::vector<int>& labels);

// The exact batch-mean dL/dtheta by the implicit function theorem (derivation in the
// .cpp), at the free fixed points that gradient flow of step dt reaches from the
// reset state. The landscape is multistable (Wang, Wanjura & Marquardt 2024): to
// check an engine, relax with the engine's dt, so both descend into the same basin.
Gradient implicit_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                           const std::vector<int>& labels, double dt = 0.1);

// Central differences of batch_loss over every parameter; each perturbed fixed
// point is found by Newton from the unperturbed one (same basin). For validation.
Gradient finite_difference_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                                    const std::vector<int>& labels, double eps = 1e-6);

}  // namespace oscillator_reference
}  // namespace eqprop
