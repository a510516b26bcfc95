// A naive double-precision reference of the predictive-coding network
// (models/predictive_coding.h, DESIGN.md "Predictive coding"): the energy by
// loops, the forward pass, and the exact loss gradient by backprop through the
// forward pass (at the free equilibrium, where every prediction error is zero,
// the implicit gradient of EP's limit is backprop's: Whittington & Bogacz 2017).
// It shares no code with the engine: plain loops over std::vector<double>, one
// sample at a time, no backend, no float.
//
// Conventions are the engine's (models/dense_hopfield_reference.h's Network with
// the MSE cost): layers = {n0, ..., nL}, weights[l] row-major (layers[l],
// layers[l+1]), a_{l+1} = sum_i s_l[i] weights[l][i, j] + biases[l][j],
// f(a) = 1 / (1 + e^-a) or clip(a, 0, 1), C = 1/2 ||s_L - y||^2.
#pragma once

#include <vector>

#include "kernels/predictive_coding.h"        // PredictionActivation only
#include "models/dense_hopfield_reference.h"  // reference::Network, reference::Gradient

namespace eqprop {
namespace predictive_coding_reference {

using States = std::vector<std::vector<double>>;  // [k] is state layer k (layers[k + 1] units)

struct Network : reference::Network {
  PredictionActivation activation = PredictionActivation::sigmoid;
};

// a_l of every state layer at `states` (s_0 = x).
States pre_activations(const Network& net, const std::vector<double>& x, const States& states);

// The free equilibrium: s_l = f(a_l) layer by layer.
States forward_pass(const Network& net, const std::vector<double>& x);

// E = sum_l 1/2 ||s_l - f(a_l)||^2.
double energy(const Network& net, const std::vector<double>& x, const States& states);

// C = 1/2 ||s_L - y||^2 against the one-hot target of `label`.
double cost(const Network& net, const States& states, int label);

// The batch-mean dC/dtheta at the forward pass, by backprop (for the hard sigmoid
// f'(a) = 1 on (0, 1) and 0 outside: valid where no a_l sits on 0 or 1).
reference::Gradient backprop_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                                      const std::vector<int>& labels);

}  // namespace predictive_coding_reference
}  // namespace eqprop
