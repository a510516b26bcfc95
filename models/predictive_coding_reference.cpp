#include "models/predictive_coding_reference.h"

#include <cmath>
#include <cstddef>

namespace eqprop {
namespace predictive_coding_reference {
namespace {

double prediction(const Network& net, double a) {
  if (net.activation == PredictionActivation::sigmoid) return 1.0 / (1.0 + std::exp(-a));
  return a < 0.0 ? 0.0 : (a > 1.0 ? 1.0 : a);
}
double slope(const Network& net, double a) {
  if (net.activation == PredictionActivation::sigmoid) return prediction(net, a) * (1.0 - prediction(net, a));
  return a > 0.0 && a < 1.0 ? 1.0 : 0.0;
}

// a (layers[l + 1]) = below (layers[l]) weights[l] + biases[l]
std::vector<double> affine(const Network& net, int l, const std::vector<double>& below) {
  const int in = net.layers[l], out = net.layers[l + 1];
  std::vector<double> a(net.biases[l]);
  for (int i = 0; i < in; ++i)
    for (int j = 0; j < out; ++j) a[j] += below[i] * net.weights[l][std::size_t(i) * out + j];
  return a;
}

}  // namespace

States pre_activations(const Network& net, const std::vector<double>& x, const States& states) {
  States a;
  for (std::size_t k = 0; k < states.size(); ++k) a.push_back(affine(net, int(k), k == 0 ? x : states[k - 1]));
  return a;
}

States forward_pass(const Network& net, const std::vector<double>& x) {
  States s;
  for (std::size_t l = 0; l + 1 < net.layers.size(); ++l) {
    std::vector<double> a = affine(net, int(l), l == 0 ? x : s.back());
    for (double& v : a) v = prediction(net, v);
    s.push_back(a);
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

double cost(const Network& net, const States& states, int label) {
  (void)net;
  double c = 0.0;
  for (std::size_t j = 0; j < states.back().size(); ++j) {
    const double d = states.back()[j] - (int(j) == label ? 1.0 : 0.0);
    c += 0.5 * d * d;
  }
  return c;
}

reference::Gradient backprop_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                                      const std::vector<int>& labels) {
  reference::Gradient g = reference::zero_gradient(net);
  const int last = int(net.layers.size()) - 2;  // the top state layer
  const double mean = 1.0 / double(xs.size());
  for (std::size_t n = 0; n < xs.size(); ++n) {
    const States s = forward_pass(net, xs[n]);
    const States a = pre_activations(net, xs[n], s);
    // delta_k = dC/da_k, from the top down.
    std::vector<double> delta(s[last].size());
    for (std::size_t j = 0; j < delta.size(); ++j)
      delta[j] = (s[last][j] - (int(j) == labels[n] ? 1.0 : 0.0)) * slope(net, a[last][j]);
    for (int k = last; k >= 0; --k) {
      const std::vector<double>& below = k == 0 ? xs[n] : s[k - 1];
      const int in = net.layers[k], out = net.layers[k + 1];
      for (int j = 0; j < out; ++j) {
        g.biases[k][j] += mean * delta[j];
        for (int i = 0; i < in; ++i) g.weights[k][std::size_t(i) * out + j] += mean * below[i] * delta[j];
      }
      if (k == 0) break;
      std::vector<double> delta_below(in, 0.0);
      for (int i = 0; i < in; ++i) {
        for (int j = 0; j < out; ++j) delta_below[i] += net.weights[k][std::size_t(i) * out + j] * delta[j];
        delta_below[i] *= slope(net, a[k - 1][i]);
      }
      delta = delta_below;
    }
  }
  return g;
}

}  // namespace predictive_coding_reference
}  // namespace eqprop
