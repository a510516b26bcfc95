// A naive double-precision reference of the convolutional predictive-coding
// network (models/conv_predictive_coding.h, DESIGN.md "Predictive coding"): the
// energy by loops, the forward pass, and the exact loss gradient by backprop
// through the forward pass (the implicit gradient at the free equilibrium, where
// every prediction error is zero). It shares no code with the engine: the
// convolution, the pooling and their adjoints are those of the convolutional
// Hopfield network's reference (models/conv_hopfield_reference.h: textbook sums,
// scatters), one sample at a time, in double.
//
// Conventions are that reference's: states and inputs per sample NCHW, weights[k]
// (Co, C, K, K) and biases[k] (Co) for conv layer k, then (fan_in, units) and
// (units) for the dense layers; a_l = P(W_l * s_{l-1} + b_l) (conv, the bias inside
// the pooling) or s_{l-1} W_l + b_l (dense); C = 1/2 ||s_L - y||^2.
#pragma once

#include <vector>

#include "kernels/predictive_coding.h"       // PredictionActivation only
#include "models/conv_hopfield_reference.h"  // conv_reference::Network, States

namespace eqprop {
namespace conv_predictive_coding_reference {

using conv_reference::States;  // [k] is state layer k

struct Network : conv_reference::Network {
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

// The batch-mean dC/dtheta at the forward pass, by backprop, shaped like the
// parameters (the weights and biases of a Network). For the hard
// sigmoid f'(a) = 1 on (0, 1) and 0 outside; max pooling routes through the first
// maximum of each window: valid away from both kinds of kink (kink_margin).
Network backprop_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                          const std::vector<int>& labels);

// The distance of the forward pass of x from the nearest kink of the loss: a
// max-pooling window whose two largest values are close, and for the hard sigmoid
// a pre-activation near 0 or 1.
double kink_margin(const Network& net, const std::vector<double>& x);

}  // namespace conv_predictive_coding_reference
}  // namespace eqprop
