// A small dense Hopfield network with the same random parameters in the engine (CPU
// backend) and in the double-precision reference, and a batch of random inputs and
// labels; shared by the physics tests.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "models/dense_hopfield.h"
#include "models/dense_hopfield_reference.h"

namespace eqprop {
namespace test {

// A small network with the same random parameters in the engine and the reference,
// and a batch of random inputs and labels.
struct Fixture {
  std::unique_ptr<Backend> backend = make_backend("cpu");
  reference::Network net;
  DenseHopfield model;
  std::vector<std::vector<double>> xs;
  std::vector<int> labels;
  DeviceBuffer<float> x, target;
  int batch;

  Fixture(std::vector<int> layers, CostKind cost, int batch_size, unsigned seed, double weight_scale = 0.5)
      : model(*backend, DenseHopfieldShape{layers, cost}, batch_size), batch(batch_size) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> weight(-weight_scale, weight_scale), unit(0.0, 1.0),
        bias(-0.3, 0.3);
    net.layers = layers;
    net.cost = cost;
    for (std::size_t l = 0; l + 1 < layers.size(); ++l) {
      std::vector<double> w(std::size_t(layers[l]) * layers[l + 1]), b(layers[l + 1]);
      for (double& v : w) v = static_cast<float>(weight(rng));  // exactly representable in float
      for (double& v : b) v = static_cast<float>(bias(rng));
      model.parameters().weights[l].copy_from_host(std::vector<float>(w.begin(), w.end()));
      model.parameters().biases[l].copy_from_host(std::vector<float>(b.begin(), b.end()));
      net.weights.push_back(w);
      net.biases.push_back(b);
    }
    const int inputs = layers.front(), classes = layers.back();
    std::vector<float> x_host, one_hot(std::size_t(batch) * classes, 0.0f);
    for (int s = 0; s < batch; ++s) {
      xs.emplace_back();
      for (int i = 0; i < inputs; ++i) {
        xs.back().push_back(static_cast<float>(unit(rng)));
        x_host.push_back(static_cast<float>(xs.back().back()));
      }
      labels.push_back(static_cast<int>(rng() % classes));
      one_hot[std::size_t(s) * classes + labels.back()] = 1.0f;
    }
    x = DeviceBuffer<float>(*backend, x_host.size());
    x.copy_from_host(x_host);
    target = DeviceBuffer<float>(*backend, one_hot.size());
    target.copy_from_host(one_hot);
    model.set_input(x.data(), batch);
  }

  // Per sample, per state layer, the engine's states.
  std::vector<std::vector<std::vector<double>>> states_of(const NetworkState& state) const {
    std::vector<std::vector<std::vector<double>>> result(batch);
    for (std::size_t layer = 0; layer < state.layers.size(); ++layer) {
      const std::vector<float> host = state.layers[layer].to_host();
      const int units = net.layers[layer + 1];
      for (int s = 0; s < batch; ++s)
        result[s].emplace_back(host.begin() + std::size_t(s) * units, host.begin() + std::size_t(s + 1) * units);
    }
    return result;
  }

  NetworkState relaxed(const PhaseSpec& spec) {
    NetworkState state = model.make_state();
    model.reset(state);
    model.relax(state, target.data(), spec);
    return state;
  }

  reference::Gradient engine_ep_gradient(float beta, bool symmetric, int steps) {
    NetworkState free = relaxed(PhaseSpec{Integrator::fixed_point, 0.5f, steps, 0.0f});
    NetworkState plus = model.make_state(), minus = model.make_state();
    model.copy_state(free, plus, batch);
    model.relax(plus, target.data(), PhaseSpec{Integrator::fixed_point, 0.5f, steps, beta});
    if (symmetric) {
      model.copy_state(free, minus, batch);
      model.relax(minus, target.data(), PhaseSpec{Integrator::fixed_point, 0.5f, steps, -beta});
    }
    ParameterSet gradient = model.make_parameter_like();
    model.ep_gradient(plus, beta, symmetric ? minus : free, symmetric ? -beta : 0.0f, target.data(), gradient);
    reference::Gradient result;
    for (std::size_t l = 0; l < gradient.weights.size(); ++l) {
      const auto w = gradient.weights[l].to_host();
      const auto b = gradient.biases[l].to_host();
      result.weights.emplace_back(w.begin(), w.end());
      result.biases.emplace_back(b.begin(), b.end());
    }
    return result;
  }
};

}  // namespace test
}  // namespace eqprop
