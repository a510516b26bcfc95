// What the model test fixtures share: the CPU backend, parameters drawn at random
// and set alike in the engine and in a double-precision reference, a random
// labelled batch, the engine's states split per sample, and the engine's EP
// gradient in double. The fixtures (tests/hopfield_fixture.h, the oscillator and
// conv tests) add the model and its reference.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "models/dense_hopfield_reference.h"
#include "models/energy_model.h"
#include "models/gradcheck_reference.h"

namespace eqprop {
namespace test {

// Every weights[t], biases[t] of `parameters` (already sized) drawn uniform in
// +-weight_scale and [bias_low, bias_high), rounded to float so that the engine and
// the reference (weights, biases, appended in double) hold exactly the same values.
inline void draw_matched_parameters(ParameterSet& parameters, std::mt19937& rng, double weight_scale,
                                    double bias_low, double bias_high, std::vector<std::vector<double>>& weights,
                                    std::vector<std::vector<double>>& biases) {
  std::uniform_real_distribution<double> weight(-weight_scale, weight_scale), bias(bias_low, bias_high);
  for (std::size_t t = 0; t < parameters.weights.size(); ++t) {
    std::vector<double> w(parameters.weights[t].size()), b(parameters.biases[t].size());
    for (double& v : w) v = static_cast<float>(weight(rng));  // exactly representable in float
    for (double& v : b) v = static_cast<float>(bias(rng));
    parameters.weights[t].copy_from_host(std::vector<float>(w.begin(), w.end()));
    parameters.biases[t].copy_from_host(std::vector<float>(b.begin(), b.end()));
    weights.push_back(w);
    biases.push_back(b);
  }
}

// The base of a model fixture: a backend (the CPU's unless named; tests/backends.h
// runs a body on each) and a batch of random inputs in [0, 1) and labels, in double
// for the reference and on the device for the engine. A fixture derives from it and
// declares its model after it, so the model and these buffers go before the backend
// they live on.
struct FixtureBase {
  explicit FixtureBase(const char* backend_name = "cpu") : backend(make_backend(backend_name)) {}

  std::unique_ptr<Backend> backend;
  std::vector<std::vector<double>> xs;  // per sample: the inputs, exactly x's floats
  std::vector<int> labels;
  DeviceBuffer<float> x, target;        // (batch, inputs), (batch, classes) one-hot

  void draw_batch(std::mt19937& rng, int batch, int inputs, int classes) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
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
  }
};

// Per sample, per state layer: rows [0, batch) of the engine's state in double.
inline std::vector<std::vector<std::vector<double>>> states_per_sample(const EnergyModel& model,
                                                                       const NetworkState& state, int batch) {
  std::vector<std::vector<std::vector<double>>> result(batch);
  for (std::size_t layer = 0; layer < state.layers.size(); ++layer) {
    const std::vector<float> host = state.layers[layer].to_host();
    const int units = model.state_units(static_cast<int>(layer));
    for (int s = 0; s < batch; ++s)
      result[s].emplace_back(host.begin() + std::size_t(s) * units, host.begin() + std::size_t(s + 1) * units);
  }
  return result;
}

// The state of a free phase of `spec` from the reset state.
inline NetworkState relaxed_state(EnergyModel& model, const float* target, const PhaseSpec& spec) {
  NetworkState state = model.make_state();
  model.reset(state);
  model.relax(state, target, spec);
  return state;
}

// The engine's EP gradient in double: a free phase of `base` from the reset state,
// then from it a phase nudged at +beta and, when symmetric, one at -beta
// (otherwise the free state is the second).
inline reference::Gradient engine_ep_gradient(EnergyModel& model, const float* target, int batch, float beta,
                                              bool symmetric, const PhaseSpec& base) {
  NetworkState free = relaxed_state(model, target, base);
  NetworkState plus = model.make_state(), minus = model.make_state();
  PhaseSpec nudged = base;
  model.copy_state(free, plus, batch);
  nudged.beta = beta;
  model.relax(plus, target, nudged);
  if (symmetric) {
    model.copy_state(free, minus, batch);
    nudged.beta = -beta;
    model.relax(minus, target, nudged);
  }
  ParameterSet gradient = model.make_parameter_like();
  model.ep_gradient(plus, beta, symmetric ? minus : free, symmetric ? -beta : 0.0f, target, gradient);
  return host_tensors(gradient);
}

}  // namespace test
}  // namespace eqprop
