// A small dense Hopfield network with the same random parameters in the engine (on
// the CPU backend unless named) and in the double-precision reference, and a batch
// of random inputs and labels; shared by the physics tests.
#pragma once

#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "models/dense_hopfield.h"
#include "models/dense_hopfield_reference.h"
#include "tests/model_fixture.h"

namespace eqprop {
namespace test {

// A small network with the same random parameters in the engine and the reference,
// and a batch of random inputs and labels.
struct Fixture : FixtureBase {
  reference::Network net;
  DenseHopfield model;
  int batch;

  Fixture(std::vector<int> layers, CostKind cost, int batch_size, unsigned seed, double weight_scale = 0.5,
          const char* backend_name = "cpu", float activation_max = kHardSigmoidMax)
      : FixtureBase(backend_name),
        model(*backend, DenseHopfieldShape{layers, cost, activation_max}, batch_size),
        batch(batch_size) {
    std::mt19937 rng(seed);
    net.layers = layers;
    net.cost = cost;
    net.activation_max = activation_max;
    draw_matched_parameters(model.parameters(), rng, weight_scale, -0.3, 0.3, net.weights, net.biases);
    draw_batch(rng, batch, layers.front(), layers.back());
    model.set_input(x.data(), batch);
  }

  // Per sample, per state layer, the engine's states.
  std::vector<std::vector<std::vector<double>>> states_of(const NetworkState& state) const {
    return states_per_sample(model, state, batch);
  }

  NetworkState relaxed(const PhaseSpec& spec) { return relaxed_state(model, target.data(), spec); }

  reference::Gradient engine_ep_gradient(float beta, bool symmetric, int steps) {
    return test::engine_ep_gradient(model, target.data(), batch, beta, symmetric,
                                    PhaseSpec{Integrator::fixed_point, 0.5f, steps, 0.0f});
  }
};

// Small dense networks, MSE and cross-entropy, two and three couplings each, on which
// the engine is compared with the double-precision reference.
inline const std::vector<std::pair<std::vector<int>, CostKind>> kReferenceShapes = {
    {{6, 5, 4}, CostKind::mse},
    {{8, 6, 5, 3}, CostKind::mse},
    {{6, 5, 4}, CostKind::cross_entropy},
    {{8, 7, 6, 3}, CostKind::cross_entropy},
};

}  // namespace test
}  // namespace eqprop
