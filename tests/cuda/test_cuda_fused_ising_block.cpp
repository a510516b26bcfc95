// CPU vs CUDA parity of the Ising network's fused annealing (kernels/fused_ising_block.h):
// the body over GpuBlockContext (several replica rows per block, one thread per spin,
// __syncthreads) against the CPU backend's fused path and the GPU's GEMM path, on the
// same couplings, input and keys. The draws are keyed on logical indices, so the
// spins agree wherever the fields (cuBLAS's input GEMM against the CPU BLAS, the
// GPU's expf) do not move a flip probability across its uniform: almost everywhere.
// Skips without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "models/ising_network.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// A free (annealed) phase then a nudged one on a backend; every spin layer.
std::vector<std::vector<float>> anneal_on(Backend& backend, RelaxationPath path, SpinUpdate rule) {
  const std::vector<int> layers = {64, 48, 24, 10};
  const int samples = 37, replicas = 2, spins_per_class = 2;
  std::mt19937 rng(29);
  IsingNetwork model(backend, IsingNetworkShape{layers, spins_per_class, replicas},
                     IsingDynamics{2.0f, 0.1f, rule, IsingRelaxation::annealing}, samples, path);
  for (std::size_t t = 0; t < model.parameters().weights.size(); ++t) {
    model.parameters().weights[t].copy_from_host(
        test::random_vector(rng, model.parameters().weights[t].size(), -0.3f, 0.3f));
    model.parameters().biases[t].copy_from_host(
        test::random_vector(rng, model.parameters().biases[t].size(), -0.2f, 0.2f));
  }
  DeviceBuffer<float> x(backend, std::size_t(samples) * layers.front()), target(backend, std::size_t(samples) * 10);
  x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
  target.copy_from_host(test::random_one_hot(rng, samples, 10));
  model.set_input(x.data(), samples);
  NetworkState state = model.make_state();
  model.reset(state);
  PhaseSpec spec;
  spec.steps = 20;
  spec.noise_seed = 5;
  spec.first_sample = 128;
  model.relax(state, target.data(), spec);
  spec.steps = 8;
  spec.beta = 2.0f;
  spec.noise_phase = 1;
  model.relax(state, target.data(), spec);
  std::vector<std::vector<float>> host;
  for (auto& layer : state.layers) host.push_back(layer.to_host());
  return host;
}

double fraction_equal(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  std::size_t same = 0, total = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t k = 0; k < a[i].size(); ++k, ++total) same += a[i][k] == b[i][k];
  return double(same) / double(total);
}

}  // namespace

TEST_CASE("cuda backend: the fused Ising annealing agrees with the cpu backend's and with the GEMM path on the GPU") {
  if (test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  for (const SpinUpdate rule : {SpinUpdate::gibbs, SpinUpdate::metropolis}) {
    CAPTURE(static_cast<int>(rule));
    const auto gpu_fused = anneal_on(*cuda, RelaxationPath::fused, rule);
    const auto cpu_fused = anneal_on(*cpu, RelaxationPath::fused, rule);
    const auto gpu_gemm = anneal_on(*cuda, RelaxationPath::gemm, rule);
    const double cpu_agreement = fraction_equal(gpu_fused, cpu_fused), path_agreement = fraction_equal(gpu_fused, gpu_gemm);
    MESSAGE("spins equal: gpu fused vs cpu fused " << cpu_agreement << ", gpu fused vs gpu gemm " << path_agreement);
    CHECK(cpu_agreement >= 0.95);
    CHECK(path_agreement >= 0.95);
  }
}

}  // namespace eqprop
