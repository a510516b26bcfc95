// CPU vs CUDA parity of the dense Hopfield network's fused relaxation
// (kernels/fused_relaxation_block.h) through the model: the same body over
// GpuBlockContext (several systems per block where they fit, one thread per
// element, __syncthreads) and over the CPU context. The body itself sums in a fixed
// order; the input drive before it is a GEMM (cuBLAS vs the CPU BLAS), so the
// promise checked is the declared one, exact up to reduction order; and the fused
// path agrees with the GEMM path on the GPU. Skips without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/fused_relaxation_block.h"
#include "models/dense_hopfield.h"
#include "tests/skip.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

// A free phase then a nudged one of `steps` each, from zero states, on a backend;
// every state layer's final states.
std::vector<std::vector<float>> relax_on(Backend& backend, const std::vector<int>& layers, int batch,
                                         RelaxationPath path, Integrator integrator, std::uint32_t seed) {
  std::mt19937 rng(seed);
  DenseHopfield model(backend, DenseHopfieldShape{layers, CostKind::mse}, batch, path);
  for (std::size_t t = 0; t < model.parameters().weights.size(); ++t) {
    model.parameters().weights[t].copy_from_host(
        test::random_vector(rng, model.parameters().weights[t].size(), -0.3f, 0.3f));
    model.parameters().biases[t].copy_from_host(test::random_vector(rng, model.parameters().biases[t].size(), -0.2f, 0.2f));
  }
  DeviceBuffer<float> x(backend, std::size_t(batch) * layers.front()), target(backend, std::size_t(batch) * layers.back());
  x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
  target.copy_from_host(test::random_one_hot(rng, batch, layers.back()));
  model.set_input(x.data(), batch);
  NetworkState state = model.make_state();
  model.reset(state);
  model.relax(state, target.data(), PhaseSpec{integrator, 0.4f, 20, 0.0f});
  model.relax(state, target.data(), PhaseSpec{integrator, 0.4f, 8, 0.5f});
  std::vector<std::vector<float>> host;
  for (auto& layer : state.layers) host.push_back(layer.to_host());
  return host;
}

TEST_CASE("cuda backend: the fused relaxation agrees with the cpu backend and with the GEMM path") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  // 53 state units: several systems per GPU block; 310: one system, threads take two elements.
  for (const std::vector<int>& layers : {std::vector<int>{20, 37, 11, 5}, std::vector<int>{50, 300, 10}})
    for (const Integrator integrator : {Integrator::fixed_point, Integrator::gradient_flow}) {
      const std::string name = std::to_string(layers[1]) + (integrator == Integrator::fixed_point ? " fp" : " gf");
      const auto on_cpu = relax_on(*cpu, layers, 37, RelaxationPath::fused, integrator, 81);
      const auto on_cuda = relax_on(*cuda, layers, 37, RelaxationPath::fused, integrator, 81);
      const auto gemm_on_cuda = relax_on(*cuda, layers, 37, RelaxationPath::gemm, integrator, 81);
      for (std::size_t i = 0; i < on_cpu.size(); ++i) {
        test::check_declared_agreement<FusedRelaxationBlock>(name + " layer " + std::to_string(i) + " (cuda vs cpu)",
                                                             on_cuda[i], on_cpu[i], double(layers[i]),
                                                             " (an FMA contraction? a missing barrier?)");
        test::check_within(name + " layer " + std::to_string(i) + " (fused vs gemm on cuda)", on_cuda[i],
                           gemm_on_cuda[i], 1e-4);
      }
    }
}

}  // namespace
}  // namespace eqprop
