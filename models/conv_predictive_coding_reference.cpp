#include "models/conv_predictive_coding_reference.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "models/gradcheck_reference.h"  // hard_sigmoid_kink_margin

namespace eqprop {
namespace conv_predictive_coding_reference {
namespace {

double prediction(const Network& net, double a) {
  if (net.activation == PredictionActivation::sigmoid) return 1.0 / (1.0 + std::exp(-a));
  return a < 0.0 ? 0.0 : (a > 1.0 ? 1.0 : a);
}
double slope(const Network& net, double a) {
  if (net.activation == PredictionActivation::sigmoid) return prediction(net, a) * (1.0 - prediction(net, a));
  return a > 0.0 && a < 1.0 ? 1.0 : 0.0;
}

int state_layers(const Network& net) { return conv_reference::state_layer_count(net); }

}  // namespace

States pre_activations(const Network& net, const std::vector<double>& x, const States& states) {
  States a;
  for (int i = 0; i < state_layers(net); ++i) a.push_back(conv_reference::layer_drive(net, x, states, i));
  return a;
}

States forward_pass(const Network& net, const std::vector<double>& x) {
  States s(state_layers(net));
  for (int i = 0; i < state_layers(net); ++i) {
    // The drive of layer i reads layer i - 1 only, already set.
    s[i] = conv_reference::layer_drive(net, x, s, i);
    for (double& v : s[i]) v = prediction(net, v);
  }
  return s;
}

double energy(const Network& net, const std::vector<double>& x, const States& states) {
  const States a = pre_activations(net, x, states);
  double e = 0.0;
  for (std::size_t k = 0; k < states.size(); ++k)
    for (std::size_t j = 0; j < states[k].size(); ++j) {
      const double error = states[k][j] - prediction(net, a[k][j]);
      e += 0.5 * error * error;
    }
  return e;
}

double cost(const Network& net, const States& states, int label) { return conv_reference::cost(net, states, label); }

Network backprop_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                          const std::vector<int>& labels) {
  Network g = net;
  for (auto& w : g.weights) std::fill(w.begin(), w.end(), 0.0);
  for (auto& b : g.biases) std::fill(b.begin(), b.end(), 0.0);
  const int top = state_layers(net) - 1;
  const double mean = 1.0 / double(xs.size());
  for (std::size_t n = 0; n < xs.size(); ++n) {
    const States s = forward_pass(net, xs[n]);
    const States a = pre_activations(net, xs[n], s);
    // delta_k = dC/da_k, from the top down.
    std::vector<double> delta(s[top].size());
    for (std::size_t j = 0; j < delta.size(); ++j)
      delta[j] = (s[top][j] - (int(j) == labels[n] ? 1.0 : 0.0)) * slope(net, a[top][j]);
    for (int k = top; k >= 0; --k) {
      // The Hopfield reference's energy gradient of the coupling -s_k . a_k is
      // -(da_k/dtheta_k)^T s_k: with delta_k in place of s_k, minus dC/dtheta_k.
      States with_delta = s;
      with_delta[k] = delta;
      const conv_reference::Network coupling = conv_reference::energy_gradient(net, xs[n], with_delta);
      for (std::size_t i = 0; i < g.weights[k].size(); ++i) g.weights[k][i] -= mean * coupling.weights[k][i];
      for (std::size_t i = 0; i < g.biases[k].size(); ++i) g.biases[k][i] -= mean * coupling.biases[k][i];
      if (k == 0) break;
      // dC/ds_{k-1} = (da_k/ds_{k-1})^T delta_k, then through f.
      std::vector<double> below = conv_reference::layer_feedback(net, xs[n], with_delta, k);
      for (std::size_t j = 0; j < below.size(); ++j) below[j] *= slope(net, a[k - 1][j]);
      delta = below;
    }
  }
  return g;
}

double kink_margin(const Network& net, const std::vector<double>& x) {
  const States free = forward_pass(net, x);
  const double pooling = conv_reference::pooling_margin(net, x, free);
  if (net.activation == PredictionActivation::sigmoid) return pooling;
  return std::min(pooling, hard_sigmoid_kink_margin(pre_activations(net, x, free)));
}

}  // namespace conv_predictive_coding_reference
}  // namespace eqprop
