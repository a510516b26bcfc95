// CPU vs CUDA parity of the Ising network (models/ising_network.h). With couplings
// and biases on a grid of 1/8 and inputs in {0, 1/2, 1}, every field is a sum of
// exact binary fractions, exact in float in any summation order, so the GEMMs agree
// bit for bit and the spins differ only where expf differs in its last bit between
// the backends exactly where a uniform falls (rare; the seeds are fixed, so the test
// is deterministic). The contrastive update and the read-out of equal states are
// exact sums times one scale (within 1e-6) and bit-exact. Skips without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "models/ising_network.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using HostArrays = std::vector<std::vector<float>>;

// A model on `backend` with the given parameters and input.
struct Network {
  IsingNetwork model;
  DeviceBuffer<float> x, target;

  Network(Backend& backend, const HostArrays& weights, const HostArrays& biases, const std::vector<float>& x_host,
          const std::vector<float>& target_host, int batch)
      : model(backend, IsingNetworkShape{{24, 16, 12, 3}, 2, 2}, IsingDynamics{2.0f, 0.1f, SpinUpdate::gibbs}, batch),
        x(backend, x_host.size()),
        target(backend, target_host.size()) {
    for (std::size_t l = 0; l < weights.size(); ++l) {
      model.parameters().weights[l].copy_from_host(weights[l]);
      model.parameters().biases[l].copy_from_host(biases[l]);
    }
    x.copy_from_host(x_host);
    target.copy_from_host(target_host);
    model.set_input(x.data(), batch);
  }
};

// The free state (12 annealing sweeps) and the nudged one (12 sweeps at beta = 3),
// layers of the free state first.
HostArrays relax_on(Network& net, int batch) {
  NetworkState free = net.model.make_state(), nudged = net.model.make_state();
  PhaseSpec spec;
  spec.steps = 12;
  spec.noise_seed = 5;
  net.model.reset(free);
  net.model.relax(free, net.target.data(), spec);
  net.model.copy_state(free, nudged, batch);
  spec.beta = 3.0f;
  spec.noise_phase = 1;
  net.model.relax(nudged, net.target.data(), spec);
  HostArrays states;
  for (const auto& layer : free.layers) states.push_back(layer.to_host());
  for (const auto& layer : nudged.layers) states.push_back(layer.to_host());
  return states;
}

// The contrastive update, the loss and the correctness from the given states.
HostArrays update_on(Network& net, const HostArrays& states, int batch) {
  NetworkState free = net.model.make_state(), nudged = net.model.make_state();
  const std::size_t layers = free.layers.size();
  for (std::size_t i = 0; i < layers; ++i) {
    free.layers[i].copy_from_host(states[i]);
    nudged.layers[i].copy_from_host(states[layers + i]);
  }
  ParameterSet gradient = net.model.make_parameter_like();
  net.model.ep_gradient(nudged, 3.0f, free, 0.0f, net.target.data(), gradient);
  HostArrays out;
  for (std::size_t l = 0; l < gradient.weights.size(); ++l) {
    out.push_back(gradient.weights[l].to_host());
    out.push_back(gradient.biases[l].to_host());
  }
  DeviceBuffer<float> loss(net.model.backend(), batch), correct(net.model.backend(), batch);
  net.model.metrics(nudged, net.target.data(), loss.data(), correct.data());
  out.push_back(loss.to_host());
  out.push_back(correct.to_host());
  return out;
}

}  // namespace

TEST_CASE("cuda backend: the Ising network's sweeps, update and read-out agree with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  std::mt19937 rng(31);
  std::uniform_int_distribution<int> eighths(-8, 8), halves(0, 2);
  const std::vector<int> units = {24, 16, 12, 6};
  std::vector<std::vector<float>> weights, biases;
  for (std::size_t l = 0; l + 1 < units.size(); ++l) {
    weights.emplace_back(std::size_t(units[l]) * units[l + 1]);
    biases.emplace_back(units[l + 1]);
    for (float& w : weights.back()) w = eighths(rng) / 8.0f;
    for (float& b : biases.back()) b = eighths(rng) / 8.0f;
  }
  const int batch = 200;
  std::vector<float> x(std::size_t(batch) * 24);
  for (float& v : x) v = halves(rng) / 2.0f;
  const std::vector<float> target = test::random_one_hot(rng, batch, 3);

  Network on_cpu(*cpu, weights, biases, x, target, batch), on_cuda(*cuda, weights, biases, x, target, batch);
  const HostArrays cpu_states = relax_on(on_cpu, batch), cuda_states = relax_on(on_cuda, batch);
  std::size_t same = 0, total = 0;
  for (std::size_t i = 0; i < cpu_states.size(); ++i)
    for (std::size_t k = 0; k < cpu_states[i].size(); ++k, ++total) same += cpu_states[i][k] == cuda_states[i][k];
  MESSAGE(same << " of " << total << " spins equal after the free and nudged phases");
  CHECK(same >= total - total / 1000);

  // The update and the read-out of the same states.
  const HostArrays cpu_update = update_on(on_cpu, cpu_states, batch), cuda_update = update_on(on_cuda, cpu_states, batch);
  const std::size_t read_out = cpu_update.size() - 2;  // loss and correct come last
  for (std::size_t k = 0; k < read_out; ++k) {
    // Exact sums times one scale; cuBLAS may apply alpha to partial sums.
    std::vector<double> budget(cpu_update[k].size());
    for (std::size_t i = 0; i < budget.size(); ++i) budget[i] = 1e-6 * std::max(1.0f, std::fabs(cpu_update[k][i]));
    test::check_within("update array " + std::to_string(k) + " (cuda vs cpu)", cuda_update[k], cpu_update[k], budget);
  }
  for (std::size_t k = read_out; k < cpu_update.size(); ++k)
    test::check_bit_exact("read-out array " + std::to_string(k - read_out) + " (cuda vs cpu)", cuda_update[k],
                          cpu_update[k]);
}

}  // namespace eqprop
